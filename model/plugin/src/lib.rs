//! The QEMU TCG plugin that drives the memory-system model (lab-model) from
//! a running guest: `libpmaplab_model.so`, plugin API version 1 (QEMU 7.2).
//!
//! ```text
//! qemu-system-x86_64 ... -accel tcg -icount shift=0,sleep=off \
//!   -plugin libpmaplab_model.so,profile=a.toml,profile=b.toml,out=m.out,doorbell=0x<hex>
//! ```
//!
//! Arguments (each `key=value`): `profile=PATH` (one or more; one
//! [`Model`] per profile, its metrics named `model.<profile name>.*`),
//! `out=PATH` (where the metrics go at exit), `doorbell=0xHEX` (the virtual
//! address of the kernel's hint doorbell, lab_core::model_hint). A bad or
//! missing argument makes `qemu_plugin_install` print why and fail, and
//! QEMU refuses to start.
//!
//! What the plugin feeds each model:
//! - every executed translation block: its instruction count, and whether
//!   it holds a PAUSE (a spin loop);
//! - every RAM access (virtual and physical address, size, load/store);
//!   MMIO and accesses QEMU cannot translate are left out;
//! - INVLPG (with the operand the kernel hinted right before it; without
//!   one the plugin conservatively flushes everything and counts
//!   `model.hint.invlpg_unhinted`), MOV to CR3 (a flush keeping global
//!   entries) and MOV to CR4 (a full flush; the model cannot see which bits
//!   changed);
//! - vCPU halt and resume;
//! - the kernel's hints: loads from the doorbell page, decoded per vCPU
//!   (IPI send/enter and interval marks). Doorbell accesses themselves are
//!   not modeled; stores to it (the protocol has none) count as
//!   `model.hint.errors`, like undecodable loads.
//!
//! At exit it writes every model's metrics, then the plugin's own counts
//! (`model.hints`, `model.hint.errors`, `model.hint.invlpg_unhinted`), then
//! `model.complete 1` as the last line, as lab_core report `metric` lines,
//! to a temporary file renamed over `out`: a reader sees the whole file or
//! none.
//!
//! Determinism: under `-icount shift=0,sleep=off` all vCPUs run round robin
//! on one host thread, so callbacks arrive in a reproducible order and the
//! model's output is bit-identical across runs. The state is behind one
//! global mutex anyway (one lock per callback, no allocation per access).
//!
//! Instruction decoding is deliberately small: legacy and REX prefixes
//! are skipped, then `F3 90` (PAUSE), `0F 01 /7` with a memory operand
//! (INVLPG) and `0F 22 /3`, `/4` (MOV to CR3, CR4; REX.R selects CR11/CR12,
//! ignored) are recognised. Nothing else matters to the model.

use lab_core::model_hint::{Decoder, Hint, DOORBELL_SIZE};
use lab_core::report::{write_metric, Scope};
use lab_model::{Model, Profile};
use qemu_plugin_sys::*;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::Mutex;

/// The plugin API version this plugin was built against (QEMU checks it).
#[no_mangle]
pub static qemu_plugin_version: c_int = QEMU_PLUGIN_VERSION as c_int;

/// What an instruction is, for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Insn {
    Other,
    Pause,
    Invlpg,
    MovCr3,
    MovCr4,
}

/// The insn_exec callback's userdata for each special instruction.
const UD_INVLPG: usize = 1;
const UD_CR3: usize = 2;
const UD_CR4: usize = 3;

/// Classifies one instruction from its bytes.
fn classify(bytes: &[u8]) -> Insn {
    let mut rep = false;
    let mut rex = 0u8;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x66 | 0x67 | 0xf2 | 0x2e | 0x3e | 0x26 | 0x64 | 0x65 | 0x36 => rex = 0,
            0xf3 => {
                rep = true;
                rex = 0;
            }
            // A REX prefix only counts right before the opcode.
            0x40..=0x4f => rex = b,
            _ => break,
        }
        i += 1;
    }
    match bytes.get(i..) {
        Some([0x90, ..]) if rep && rex & 1 == 0 => Insn::Pause,
        Some([0x0f, 0x01, modrm, ..]) if (modrm >> 3) & 7 == 7 && modrm >> 6 != 3 => Insn::Invlpg,
        Some([0x0f, 0x22, modrm, ..]) if rex & 4 == 0 => match (modrm >> 3) & 7 {
            3 => Insn::MovCr3,
            4 => Insn::MovCr4,
            _ => Insn::Other,
        },
        _ => Insn::Other,
    }
}

/// One vCPU's hint state.
struct VcpuHints {
    decoder: Decoder,
    /// The operand the kernel hinted for this CPU's next INVLPG.
    pending_invlpg: Option<u64>,
}

/// Everything the callbacks share.
struct State {
    models: Vec<Model>,
    /// `model.<profile name>.` for each model.
    prefixes: Vec<String>,
    vcpus: Vec<VcpuHints>,
    doorbell: u64,
    out: String,
    hints: u64,
    hint_errors: u64,
    invlpg_unhinted: u64,
    /// The vCPU that ran the last block, and how many times the
    /// emulation switched to another one: under icount the vCPUs run in
    /// turns on one thread, and a turn's length (instructions / turns) is
    /// the grain at which the model sees CPUs interleave.
    last_vcpu: Option<usize>,
    turns: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Runs `f` on the state, if the plugin is installed.
#[inline]
fn with_state(f: impl FnOnce(&mut State)) {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = guard.as_mut() {
        f(s)
    }
}

/// Reports `msg`: on QEMU's plugin log (qemu_plugin_outs, which QEMU 7.2
/// shows only under `-d plugin`) and on stderr, so it is seen either way.
fn outs(msg: &str) {
    let line = format!("pmaplab_model: {msg}\n").replace('\0', " ");
    eprint!("{line}");
    let c = CString::new(line).expect("NULs were replaced");
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // QEMU copies it.
    unsafe { qemu_plugin_outs(c.as_ptr()) };
}

/// The parsed arguments.
#[derive(Debug)]
struct Args {
    profiles: Vec<String>,
    out: String,
    doorbell: u64,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut profiles = Vec::new();
    let mut out = None;
    let mut doorbell = None;
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("argument '{arg}' is not key=value"));
        };
        if value.is_empty() {
            return Err(format!("argument '{key}=' has no value"));
        }
        match key {
            "profile" => profiles.push(value.to_string()),
            "out" if out.is_some() => return Err("out= given twice".into()),
            "out" => out = Some(value.to_string()),
            "doorbell" if doorbell.is_some() => return Err("doorbell= given twice".into()),
            "doorbell" => {
                let hex = value
                    .strip_prefix("0x")
                    .ok_or_else(|| format!("doorbell={value}: want 0x<hex>"))?;
                let va =
                    u64::from_str_radix(hex, 16).map_err(|e| format!("doorbell={value}: {e}"))?;
                if va % DOORBELL_SIZE != 0 {
                    return Err(format!(
                        "doorbell={value}: not aligned to its size ({DOORBELL_SIZE} bytes)"
                    ));
                }
                doorbell = Some(va);
            }
            _ => {
                return Err(format!(
                    "unknown argument '{key}' (want profile=PATH..., out=PATH, doorbell=0xHEX)"
                ))
            }
        }
    }
    if profiles.is_empty() {
        return Err("no profile=PATH given".into());
    }
    Ok(Args {
        profiles,
        out: out.ok_or("no out=PATH given")?,
        doorbell: doorbell.ok_or("no doorbell=0xHEX given")?,
    })
}

/// Builds the state from the arguments and the vCPU count.
fn setup(args: &[String], ncpus: usize) -> Result<State, String> {
    let args = parse_args(args)?;
    if !(1..=lab_model::model::MAX_CPUS).contains(&ncpus) {
        return Err(format!(
            "{ncpus} vCPUs: the model holds 1..={}",
            lab_model::model::MAX_CPUS
        ));
    }
    let mut models: Vec<Model> = Vec::new();
    for path in &args.profiles {
        let p = Profile::load(path).map_err(|e| e.to_string())?;
        if models.iter().any(|m| m.profile().name == p.name) {
            return Err(format!("{path}: profile name '{}' given twice", p.name));
        }
        models.push(Model::new(p, ncpus));
    }
    // Fail now, not at exit, if the output cannot be written.
    std::fs::write(tmp_path(&args.out), b"")
        .and_then(|()| std::fs::remove_file(tmp_path(&args.out)))
        .map_err(|e| format!("out={}: cannot write next to it: {e}", args.out))?;
    Ok(State {
        prefixes: models
            .iter()
            .map(|m| format!("model.{}.", m.profile().name))
            .collect(),
        models,
        vcpus: (0..ncpus)
            .map(|_| VcpuHints {
                decoder: Decoder::new(),
                pending_invlpg: None,
            })
            .collect(),
        doorbell: args.doorbell,
        out: args.out,
        hints: 0,
        hint_errors: 0,
        invlpg_unhinted: 0,
        last_vcpu: None,
        turns: 0,
    })
}

fn tmp_path(out: &str) -> String {
    format!("{out}.tmp.{}", std::process::id())
}

/// The plugin's entry point: parses the arguments, loads the profiles and
/// registers the callbacks. Non-zero: QEMU refuses to start.
///
/// # Safety
/// Called by QEMU with a valid `info` and `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    info: *const qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let mut args = Vec::new();
    for i in 0..argc.max(0) as usize {
        // SAFETY: QEMU passes `argc` valid NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        args.push(arg.to_string_lossy().into_owned());
    }
    // SAFETY: `info` is valid for the call; `system` is the union's only
    // member, and QEMU fills it in system emulation (checked first).
    let (system, info_max) = unsafe {
        let info = &*info;
        (
            info.system_emulation,
            info.__bindgen_anon_1.system.max_vcpus,
        )
    };
    if !system {
        outs("needs full-system emulation (qemu-system-*)");
        return 1;
    }
    // SAFETY: a plain query of QEMU's configuration.
    let n = unsafe { qemu_plugin_n_max_vcpus() };
    let ncpus = if n > 0 { n } else { info_max }.max(0) as usize;
    let state = match setup(&args, ncpus) {
        Ok(s) => s,
        Err(e) => {
            outs(&e);
            return 1;
        }
    };
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    // SAFETY: registering callbacks with the id QEMU gave us; the
    // callbacks are `extern "C"` functions of the right types.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(tb_trans));
        qemu_plugin_register_vcpu_idle_cb(id, Some(vcpu_idle));
        qemu_plugin_register_vcpu_resume_cb(id, Some(vcpu_resume));
        qemu_plugin_register_atexit_cb(id, Some(at_exit), std::ptr::null_mut());
    }
    0
}

/// A block was translated: instrument it.
unsafe extern "C" fn tb_trans(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    // SAFETY: `tb` is valid during this callback, and so are its
    // instructions and their bytes (`size` bytes at `data`).
    unsafe {
        let n = qemu_plugin_tb_n_insns(tb);
        let mut pause = false;
        for i in 0..n {
            let insn = qemu_plugin_tb_get_insn(tb, i);
            let data = qemu_plugin_insn_data(insn) as *const u8;
            let size = qemu_plugin_insn_size(insn);
            let bytes = if data.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(data, size)
            };
            let ud = match classify(bytes) {
                Insn::Other => None,
                Insn::Pause => {
                    pause = true;
                    None
                }
                Insn::Invlpg => Some(UD_INVLPG),
                Insn::MovCr3 => Some(UD_CR3),
                Insn::MovCr4 => Some(UD_CR4),
            };
            if let Some(ud) = ud {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    Some(insn_exec),
                    qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                    ud as *mut c_void,
                );
            }
            qemu_plugin_register_vcpu_mem_cb(
                insn,
                Some(mem_access),
                qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_RW,
                std::ptr::null_mut(),
            );
        }
        // The userdata is not a pointer: it packs (n << 1) | pause.
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb,
            Some(tb_exec),
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            ((n << 1) | pause as usize) as *mut c_void,
        );
    }
}

/// A block is about to execute.
unsafe extern "C" fn tb_exec(vcpu: c_uint, udata: *mut c_void) {
    let packed = udata as usize;
    let (n, pause) = ((packed >> 1) as u64, packed & 1 != 0);
    with_state(|s| {
        if s.last_vcpu != Some(vcpu as usize) {
            s.last_vcpu = Some(vcpu as usize);
            s.turns += 1;
        }
        for m in &mut s.models {
            m.insns(vcpu as usize, n, pause);
        }
    });
}

/// An INVLPG or MOV to CR3/CR4 is about to execute.
unsafe extern "C" fn insn_exec(vcpu: c_uint, udata: *mut c_void) {
    let cpu = vcpu as usize;
    with_state(|s| match udata as usize {
        UD_INVLPG => {
            let hinted = s.vcpus.get_mut(cpu).and_then(|v| v.pending_invlpg.take());
            match hinted {
                Some(va) => s.models.iter_mut().for_each(|m| m.invlpg(cpu, va)),
                None => {
                    // No operand: assume the worst, everything is gone.
                    s.invlpg_unhinted += 1;
                    s.models.iter_mut().for_each(|m| m.flush(cpu, true));
                }
            }
        }
        UD_CR3 => s.models.iter_mut().for_each(|m| m.flush(cpu, false)),
        UD_CR4 => s.models.iter_mut().for_each(|m| m.flush(cpu, true)),
        _ => {}
    });
}

/// A memory access happened.
unsafe extern "C" fn mem_access(
    vcpu: c_uint,
    info: qemu_plugin_meminfo_t,
    vaddr: u64,
    _udata: *mut c_void,
) {
    let cpu = vcpu as usize;
    // SAFETY: `info` is the handle QEMU passed to this callback, and the
    // hwaddr handle is used only within it.
    let (phys, store, size) = unsafe {
        let hw = qemu_plugin_get_hwaddr(info, vaddr);
        if hw.is_null() || qemu_plugin_hwaddr_is_io(hw) {
            return;
        }
        (
            qemu_plugin_hwaddr_phys_addr(hw),
            qemu_plugin_mem_is_store(info),
            1u64 << qemu_plugin_mem_size_shift(info),
        )
    };
    with_state(|s| {
        let off = vaddr.wrapping_sub(s.doorbell);
        if off < DOORBELL_SIZE {
            if store {
                s.hint_errors += 1;
            } else {
                hint_load(s, cpu, off as u16);
            }
            return;
        }
        for m in &mut s.models {
            m.access(cpu, vaddr, phys, size, store);
        }
    });
}

/// A doorbell load at `off` on `cpu`.
fn hint_load(s: &mut State, cpu: usize, off: u16) {
    let Some(v) = s.vcpus.get_mut(cpu) else {
        return;
    };
    let hint = match v.decoder.feed(off) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(_) => {
            s.hint_errors += 1;
            return;
        }
    };
    s.hints += 1;
    match hint {
        Hint::Invlpg { va } => v.pending_invlpg = Some(va),
        Hint::IpiSend { target } => {
            for m in &mut s.models {
                m.ipi_send(cpu, target as usize);
            }
        }
        Hint::IpiEnter => s.models.iter_mut().for_each(|m| m.ipi_enter(cpu)),
        Hint::Mark(mark) => s.models.iter_mut().for_each(|m| m.mark(cpu, mark)),
        Hint::Covers { va, pages } => s
            .models
            .iter_mut()
            .for_each(|m| m.covers(cpu, va, pages as u64)),
    }
}

unsafe extern "C" fn vcpu_idle(_id: qemu_plugin_id_t, vcpu: c_uint) {
    with_state(|s| {
        s.models
            .iter_mut()
            .for_each(|m| m.idle(vcpu as usize, true))
    });
}

unsafe extern "C" fn vcpu_resume(_id: qemu_plugin_id_t, vcpu: c_uint) {
    with_state(|s| {
        s.models
            .iter_mut()
            .for_each(|m| m.idle(vcpu as usize, false))
    });
}

/// QEMU is exiting: write the metrics.
unsafe extern "C" fn at_exit(_id: qemu_plugin_id_t, _udata: *mut c_void) {
    with_state(|s| {
        if let Err(e) = write_out(s) {
            outs(&format!("writing {}: {e}", s.out));
        }
    });
}

/// Writes every metric to a temporary file and renames it to `out`.
fn write_out(s: &State) -> std::io::Result<()> {
    let mut text = String::new();
    let fmt_err = |_| std::io::Error::other("formatting failed");
    for (m, prefix) in s.models.iter().zip(&s.prefixes) {
        lab_model::report::write_all(&mut text, prefix, &m.metrics()).map_err(fmt_err)?;
    }
    for (name, value) in [
        ("model.hints", s.hints),
        ("model.hint.errors", s.hint_errors),
        ("model.hint.invlpg_unhinted", s.invlpg_unhinted),
        ("model.turns", s.turns),
        // Last: its presence says the file is whole.
        ("model.complete", 1),
    ] {
        write_metric(&mut text, name, value, "count", Scope::Global).map_err(fmt_err)?;
    }
    let tmp = tmp_path(&s.out);
    std::fs::write(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, &s.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_instructions_that_matter() {
        assert_eq!(classify(&[0xf3, 0x90]), Insn::Pause);
        assert_eq!(classify(&[0x90]), Insn::Other);
        // invlpg (%rax), invlpg 0x10(%rdi), with a segment prefix.
        assert_eq!(classify(&[0x0f, 0x01, 0x38]), Insn::Invlpg);
        assert_eq!(classify(&[0x0f, 0x01, 0x7f, 0x10]), Insn::Invlpg);
        assert_eq!(classify(&[0x65, 0x0f, 0x01, 0x38]), Insn::Invlpg);
        assert_eq!(classify(&[0x41, 0x0f, 0x01, 0x38]), Insn::Invlpg);
        // mod == 3 with reg 7 is SWAPGS / RDTSCP, not INVLPG.
        assert_eq!(classify(&[0x0f, 0x01, 0xf8]), Insn::Other);
        assert_eq!(classify(&[0x0f, 0x01, 0xf9]), Insn::Other);
        // mov %rax,%cr3; mov %rdi,%cr4; mov %rax,%cr0; mov %rax,%cr8.
        assert_eq!(classify(&[0x0f, 0x22, 0xd8]), Insn::MovCr3);
        assert_eq!(classify(&[0x0f, 0x22, 0xe7]), Insn::MovCr4);
        assert_eq!(classify(&[0x0f, 0x22, 0xc0]), Insn::Other);
        assert_eq!(classify(&[0x44, 0x0f, 0x22, 0xc0]), Insn::Other);
        // REX.B with a reg 3 operand is still CR3 (the source is r8..r15).
        assert_eq!(classify(&[0x41, 0x0f, 0x22, 0xd8]), Insn::MovCr3);
        assert_eq!(classify(&[]), Insn::Other);
    }

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let ok = a(&[
            "profile=a.toml",
            "profile=b.toml",
            "out=/tmp/x",
            "doorbell=0xffffffff80001000",
        ])
        .unwrap();
        assert_eq!(ok.profiles, ["a.toml", "b.toml"]);
        assert_eq!(ok.doorbell, 0xffff_ffff_8000_1000);
        assert!(a(&["out=/tmp/x", "doorbell=0x1000"])
            .unwrap_err()
            .contains("profile"));
        assert!(a(&["profile=a", "doorbell=0x1000"])
            .unwrap_err()
            .contains("out"));
        assert!(a(&["profile=a", "out=x"]).unwrap_err().contains("doorbell"));
        assert!(a(&["profile=a", "out=x", "doorbell=1000"])
            .unwrap_err()
            .contains("0x"));
        assert!(a(&["profile=a", "out=x", "doorbell=0x1001"])
            .unwrap_err()
            .contains("aligned"));
        assert!(a(&["profile=a", "out=x", "doorbell=0x1000", "bogus=1"])
            .unwrap_err()
            .contains("bogus"));
    }
}
