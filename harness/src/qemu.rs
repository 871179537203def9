//! Everything about starting QEMU: the only module that builds a QEMU
//! command line (as vmtest keeps it in one place).
//!
//! A boot is: `qemu-system-x86_64` with no default devices, no display, no
//! reboot (a triple fault or reset exits QEMU with 0 instead of looping),
//! COM1 written to a log file, and the isa-debug-exit device through which
//! the kernel ends the run with one of `lab_core::report::ExitCode`'s
//! statuses. The kernel is loaded by `-kernel` through its PVH note. QEMU's
//! stderr goes to a file beside the serial log. [`boot`] waits for QEMU
//! until a deadline and kills it there.
//!
//! Stopping: QEMU runs in its own process group, so a Ctrl-C at the
//! terminal reaches only the harness, which decides what to do with the
//! runs in flight ([`request_stop`] makes every [`boot`] kill its QEMU and
//! return [`Interrupted`]); and it is told by the kernel to die with the
//! harness thread that started it (`PR_SET_PDEATHSIG`), so a harness killed
//! outright leaves no QEMU behind.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::accel::Accel;

/// The default QEMU binary.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The machine model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    /// QEMU's minimal PVH-booted machine (fastest boot: no PCI, no firmware).
    Microvm,
    /// A PC with PCIe, HPET and MCFG in ACPI.
    Q35,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

/// One boot's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub qemu: PathBuf,
    pub machine: Machine,
    pub accel: Accel,
    pub cpus: u32,
    pub mem_mib: u32,
    pub kernel: PathBuf,
    /// The kernel command line (`-append`).
    pub append: String,
    /// Where COM1's output is written.
    pub serial_log: PathBuf,
    /// The memory-system model's plugin, under [`Accel::TcgModel`] only.
    pub plugin: Option<Plugin>,
}

/// The memory-system model's TCG plugin and its arguments (model/plugin).
#[derive(Clone, Debug)]
pub struct Plugin {
    /// The plugin's shared library.
    pub lib: PathBuf,
    /// Cost profiles (model/profiles/*.toml): one model each.
    pub profiles: Vec<PathBuf>,
    /// Where the plugin writes its metrics when QEMU exits.
    pub out: PathBuf,
    /// The kernel's doorbell page (`lab_core::model_hint`), virtual.
    pub doorbell: u64,
}

/// The arguments after the QEMU binary for `cfg`.
pub fn args(cfg: &Config) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    push("-machine");
    match cfg.machine {
        // microvm adds virtio-mmio `device=` entries to the command line
        // unless told not to; the kernel must see exactly ours.
        Machine::Microvm => push("microvm,auto-kernel-cmdline=off"),
        Machine::Q35 => push("q35"),
    }
    push("-cpu");
    match cfg.accel {
        // Under some KVMs (paravirtual ones, as on this workplace's hosts)
        // both `host` and `max` abort QEMU setting MSR 0x10a
        // (IA32_ARCH_CAPABILITIES); the kernel never reads it, so hide it.
        Accel::Kvm => push("max,arch-capabilities=off"),
        Accel::Tcg | Accel::TcgIcount | Accel::TcgModel => push("max"),
    }
    push("-m");
    push(&format!("{}M", cfg.mem_mib));
    push("-smp");
    push(&cfg.cpus.to_string());
    match cfg.accel {
        Accel::Kvm => {
            push("-accel");
            push("kvm");
        }
        // MTTCG: one host thread per vCPU, so CPUs really run concurrently.
        Accel::Tcg => {
            push("-accel");
            push("tcg,thread=multi");
        }
        // Deterministic virtual time: one instruction = 1 ns, vCPUs run
        // round robin on one thread, no sleeping when idle. The model's
        // plugin leaves that virtual time unchanged (it only observes).
        Accel::TcgIcount | Accel::TcgModel => {
            push("-accel");
            push("tcg");
            push("-icount");
            push("shift=0,sleep=off");
        }
    }
    for a in ["-nodefaults", "-nographic", "-no-reboot"] {
        push(a);
    }
    push("-device");
    push("isa-debug-exit,iobase=0xf4,iosize=4");
    if let (Accel::TcgModel, Some(plugin)) = (cfg.accel, &cfg.plugin) {
        let mut arg = OsString::from(&plugin.lib);
        for profile in &plugin.profiles {
            arg.push(",profile=");
            arg.push(profile);
        }
        arg.push(",out=");
        arg.push(&plugin.out);
        arg.push(format!(",doorbell={:#x}", plugin.doorbell));
        args.push("-plugin".into());
        args.push(arg);
    }
    let mut serial = OsString::from("file:");
    serial.push(&cfg.serial_log);
    args.push("-serial".into());
    args.push(serial);
    args.push("-kernel".into());
    args.push(cfg.kernel.clone().into());
    args.push("-append".into());
    args.push(cfg.append.clone().into());
    args
}

/// `cfg`'s whole command line, quoted for a POSIX shell, to keep with a
/// run so it can be repeated by hand.
pub fn shell_command(cfg: &Config) -> String {
    std::iter::once(cfg.qemu.clone().into_os_string())
        .chain(args(cfg))
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a QEMU process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// QEMU exited with this status.
    Status(i32),
    /// QEMU was killed by a signal it was not sent by us.
    Signal(i32),
    /// Still running at the deadline; we killed it.
    TimedOut,
    /// QEMU could not be started at all (missing binary, no permission).
    SpawnFailed(String),
}

/// A finished boot.
#[derive(Clone, Debug)]
pub struct Boot {
    pub exit: Exit,
    /// From just before spawning QEMU to its exit (or our kill).
    pub wall: Duration,
    /// QEMU's stderr (also kept in the file given to [`boot`]).
    pub stderr: String,
}

/// Set once the harness has been asked to stop (Ctrl-C, SIGTERM).
static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every [`boot`] in progress, and every later one, to kill its QEMU
/// and return [`Interrupted`]. Async-signal-safe (one atomic store), so a
/// signal handler may call it.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether [`request_stop`] has been called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The error [`boot`] returns when it killed QEMU because the harness was
/// asked to stop: the run did not finish and must not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: QEMU was stopped before the run finished")]
pub struct Interrupted;

/// Boots `cfg`, kills QEMU if it is still running after `timeout`, and
/// returns how it ended. QEMU's stderr is written to `stderr_path`. An `Err`
/// means the harness itself could not set up (e.g. cannot create the log
/// files), or [`Interrupted`] when [`request_stop`] was called; QEMU
/// failing to start is an [`Exit::SpawnFailed`].
pub fn boot(cfg: &Config, timeout: Duration, stderr_path: &Path) -> Result<Boot> {
    let stderr_file = File::create(stderr_path)
        .with_context(|| format!("cannot create {}", stderr_path.display()))?;
    // The serial log is created by QEMU; remove a stale one so a QEMU that
    // never starts leaves no old report behind.
    match std::fs::remove_file(&cfg.serial_log) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove {}", cfg.serial_log.display()))
        }
    }
    if stop_requested() {
        return Err(Interrupted.into());
    }
    let start = Instant::now();
    // A bare name goes to duct as a string, so PATH is searched as std
    // does (duct takes a relative Path as relative to the current directory).
    let expression = duct::cmd(cfg.qemu.as_os_str(), args(cfg))
        .stdin_null()
        .stdout_null()
        .stderr_file(stderr_file)
        .unchecked()
        .before_spawn(|command| {
            command.process_group(0);
            // SAFETY: the hook runs in the child between fork and exec and
            // makes one async-signal-safe system call (prctl); it touches
            // no locks or allocations of the parent.
            unsafe {
                command.pre_exec(die_with_parent);
            }
            Ok(())
        });
    let handle = match expression.start() {
        Ok(handle) => handle,
        Err(e) => {
            let why = format!("cannot start {}: {e}", cfg.qemu.display());
            std::fs::write(stderr_path, format!("{why}\n")).ok();
            return Ok(Boot {
                exit: Exit::SpawnFailed(why),
                wall: start.elapsed(),
                stderr: String::new(),
            });
        }
    };
    let deadline = start + timeout;
    // duct waits on SIGCHLD (no polling of the child); the wait is cut
    // into slices only to notice a stop request.
    let exit = loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(STOP_CHECK);
        if let Some(output) = handle.wait_timeout(slice).context("cannot wait for QEMU")? {
            let status = output.status;
            break match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Status(code),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Status(-1),
            };
        }
        if stop_requested() {
            kill_and_reap(&handle)?;
            return Err(Interrupted.into());
        }
        if Instant::now() >= deadline {
            kill_and_reap(&handle)?;
            break Exit::TimedOut;
        }
    };
    let wall = start.elapsed();
    let stderr = std::fs::read(stderr_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(Boot { exit, wall, stderr })
}

/// How often a waiting [`boot`] looks at [`stop_requested`].
const STOP_CHECK: Duration = Duration::from_millis(50);

/// `pre_exec` hook: ask the kernel to SIGKILL this child when the harness
/// thread that started it dies, so a harness killed outright (SIGKILL, a
/// crash) leaves no QEMU behind.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and takes no
    // pointers.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kills a started QEMU and waits for it to be reaped.
fn kill_and_reap(handle: &duct::Handle) -> Result<()> {
    handle.kill().ok();
    handle.wait().context("cannot reap QEMU after killing it")?;
    Ok(())
}

/// The first line of `qemu --version` (e.g. `QEMU emulator version 7.2.22`).
pub fn version(qemu: &Path) -> Result<String> {
    let out = duct::cmd(qemu.as_os_str(), ["--version"])
        .stdin_null()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .with_context(|| format!("cannot run {} --version", qemu.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(machine: Machine, accel: Accel) -> Config {
        Config {
            qemu: DEFAULT_QEMU.into(),
            machine,
            accel,
            cpus: 4,
            mem_mib: 256,
            kernel: "/k/fixed.elf".into(),
            append: "workload=hello n=1".into(),
            serial_log: "/r/serial.log".into(),
            plugin: Some(Plugin {
                lib: "/t/libpmaplab_model.so".into(),
                profiles: vec!["/m/a.toml".into(), "/m/b.toml".into()],
                out: "/r/model.out".into(),
                doorbell: 0xffff_ffff_8010_0000,
            }),
        }
    }

    fn line(machine: Machine, accel: Accel) -> String {
        args(&cfg(machine, accel))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn microvm_tcg_line() {
        assert_eq!(
            line(Machine::Microvm, Accel::Tcg),
            "-machine microvm,auto-kernel-cmdline=off -cpu max -m 256M -smp 4 \
             -accel tcg,thread=multi -nodefaults -nographic -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=4 -serial file:/r/serial.log \
             -kernel /k/fixed.elf -append workload=hello n=1"
        );
    }

    #[test]
    fn accelerators() {
        let kvm = line(Machine::Q35, Accel::Kvm);
        assert!(
            kvm.contains("-machine q35 ")
                && kvm.contains("-accel kvm ")
                && kvm.contains("-cpu max")
        );
        assert!(!kvm.contains("host"));
        let icount = line(Machine::Microvm, Accel::TcgIcount);
        assert!(icount.contains("-accel tcg -icount shift=0,sleep=off"));
        assert!(
            !icount.contains("-plugin"),
            "the plugin only under tcg-model"
        );
        let model = line(Machine::Microvm, Accel::TcgModel);
        assert!(model.contains("-accel tcg -icount shift=0,sleep=off "));
        assert!(model.contains(
            " -plugin /t/libpmaplab_model.so,\
             profile=/m/a.toml,profile=/m/b.toml,out=/r/model.out,doorbell=0xffffffff80100000 "
        ));
    }

    #[test]
    fn shell_command_quotes_the_cmdline() {
        let s = shell_command(&cfg(Machine::Microvm, Accel::Tcg));
        assert!(s.starts_with("qemu-system-x86_64 -machine"));
        assert!(s.ends_with("-append 'workload=hello n=1'"));
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
