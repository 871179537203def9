//! `shoot-storm`: concurrent kernel shootdowns from every CPU at once, and
//! a stale-TLB oracle over them.
//!
//! Every CPU runs the same loop at the same time (the boot CPU posts it to
//! each AP with smp::post, runs it itself, then smp::wait's for them), so
//! shootdowns from all CPUs overlap: this is where the global slot (every
//! initiator queues on one counter, `shoot.wait.slot`) and the scoreboard
//! (per-CPU records, no lock) differ, before user processes exist.
//!
//! # Operations (each needs a shootdown to every other CPU)
//!
//! CPU k owns a 2 MiB block of kernel virtual memory: its *page* (slot 0,
//! always mapped, which also keeps the block's page table alive) and a
//! *window* of `pages` pages after it. Each op is one of:
//! - page op: remap the page to the next frame of its ring
//!   (`path=kenter`: pmap_kenter_pa, which swaps the entry under the
//!   kernel pmap lock and shoots the page down outside it, as OpenBSD's
//!   pmap_kenter_pa and FreeBSD's pmap_qenter take no pmap lock;
//!   `path=enter`: pmap_enter, which holds the kernel pmap lock across its
//!   shootdown, so initiators also queue on that lock). One shootpage.
//! - range op: pmap_remove over the window (one shootrange, or with
//!   `dfly-batch` one round with the VAs that were mapped), then, with
//!   `touch=on`, map every window page again to the next frame of its
//!   ring (entering into empty entries needs no shootdown). `touch=off`
//!   removes a window that was never mapped, as will-it-scale's mmap1
//!   munmaps an untouched region.
//!
//! `mode=page` does page ops, `mode=range` range ops, `mode=mixed`
//! alternates them; `ops` per CPU.
//!
//! # The oracle
//!
//! Mapping generation g of a page (0 at set-up, op n makes generation
//! n+1) maps frame `ring[g % RING]`, into which the owner writes tag g (by
//! the direct map) just before entering it, so a frame holds the
//! generation that maps it or a later one, never an earlier one. After the
//! op's shootwait returned, the owner publishes g (release). Between its
//! own ops, every CPU reads each other CPU's published generation p
//! (acquire) and then the tag v through the owner's mapping: a TLB entry
//! invalidated as it should have been gives v >= p; v < p is a read
//! through a translation that the owner's completed shootdown should have
//! removed, a stale read. The ring of RING frames keeps an old frame's tag
//! unchanged for RING - 1 more ops, so a stale entry has that long to be
//! caught. Window pages are unmapped during a range op, so readers of a
//! window hold its owner's reader lock (try-lock: they skip, never wait)
//! and the owner holds it for writing across the op.
//!
//! # Readers with interrupts off (`irqoff=N`)
//!
//! A target takes a shootdown IPI only when its interrupts are on; a CPU
//! in an interrupts-off section (a FreeBSD spin mutex, whose
//! spinlock_enter disables interrupts; the scheduler lock here) keeps
//! using its TLB until it leaves. That is why an initiator must wait for
//! every acknowledgement before it reuses what the old entry pointed at,
//! and why a reader that takes the IPI at its next instruction boundary,
//! as every reader does under TCG, cannot see a missing wait. With
//! `irqoff=N` every CPU, after its ordinary checks, makes N more passes
//! over the other CPUs' pages with interrupts off, each read checked as
//! above (`kstorm.irqoff_checks` of `kstorm.checks`): an initiator that
//! returned without waiting (`mutant-no-wait`) publishes a generation
//! while such a reader still holds the old translation, and the reader
//! sees the older tag. A correct initiator waits until the reader has
//! left the section and served the IPI, so the run stays clean; the
//! section takes no lock and waits for nothing, so it cannot deadlock.
//! Every 64 passes the reader executes PAUSE, as a spin-mutex waiter does;
//! under tcg-icount that ends its vCPU's turn inside the section, which is
//! what lets the other CPUs' ops overlap it there.
//! Off by default (0): it lengthens every acknowledgement, and
//! reproduce's D25510 experiment times the shootdowns themselves.
//!
//! # Readers (`readers=N`)
//!
//! The N highest-numbered CPUs make no ops: they check, interrupts on,
//! until the others finish. A CPU that makes ops flushes its own TLB
//! entries with each (under TCG an INVLPG in a region QEMU tracks as large
//! pages flushes its whole software TLB), which hides an invalidation it
//! had acknowledged and put off (`mutant-defer-kernel-flush`); a reader's
//! TLB is flushed by nothing but the shootdowns it serves. Off by default.
//!
//! # Under chaos mode (`chaos=<seed>`, arch::chaos)
//!
//! Every check of another CPU's page in an ordinary pass (interrupts on)
//! is followed by a chaos point: one time in eight the CPU spins there, and
//! under tcg-icount its PAUSEs hand the turn to the other CPUs, whose ops
//! and IPIs then land in the middle of its pass, after it cached their
//! pages; its next reads (the rest of the pass, then the irqoff passes)
//! go through whatever serving those IPIs left in its TLB. Plain passes
//! under icount run whole between two turns, so a target that
//! acknowledges a kernel request and defers the invalidation
//! (`mutant-defer-kernel-flush`) flushes it with its own next op before it
//! reads again; with the point it reads first (2 CPUs: caught with every
//! seed tried, missed without).
//!
//! Reports `workload.ops`, `workload.elapsed_ns` (the last CPU's finish
//! since the common start), `kstorm.ops` per CPU, `kstorm.checks`,
//! `kstorm.irqoff_checks`, `kstorm.stale`; the run fails if any read was
//! stale.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use lab_core::cmdline::{Kind, ParamSpec, Params};
use lab_core::physmem::PAGE_SIZE;
use lab_core::report::{Scope, Status};
use x86_64::{PhysAddr, VirtAddr};

use super::Workload;
use crate::arch::{self, smp, tsc};
use crate::memlayout::{phys_to_virt, KVA_BASE};
use crate::mm::frame::{self, Fill};
use crate::mm::pmap::{self, Prot};
use crate::report;
use crate::stats::MAX_CPUS;

/// Frames each page cycles through.
const RING: usize = 4;
/// Most pages in a window (the block is 512 pages; one is the page).
const MAX_PAGES: usize = 64;
/// Where the blocks start: kernel virtual, clear of pmap-selftest's VAs.
const STORM_BASE: u64 = KVA_BASE + 0xc000_0000;
const BLOCK: u64 = 2 << 20;

pub static SHOOT_STORM: Workload = Workload {
    name: "shoot-storm",
    help: "every CPU remaps kernel pages at once (concurrent shootdowns), checked for stale reads",
    params: &[
        ParamSpec {
            key: "ops",
            kind: Kind::U64 {
                min: 1,
                max: 1_000_000,
            },
            default: "2000",
            help: "operations per CPU",
        },
        ParamSpec {
            key: "mode",
            kind: Kind::Choice(&["page", "range", "mixed"]),
            default: "page",
            help: "page: remap one page (shootpage); range: pmap_remove a window (shootrange); \
                   mixed: alternate",
        },
        ParamSpec {
            key: "pages",
            kind: Kind::U64 {
                min: 2,
                max: MAX_PAGES as u64,
            },
            default: "8",
            help: "pages in each CPU's window (range ops)",
        },
        ParamSpec {
            key: "touch",
            kind: Kind::Bool,
            default: "on",
            help: "map the window again after each range op (off: remove an untouched window)",
        },
        ParamSpec {
            key: "irqoff",
            kind: Kind::U64 { min: 0, max: 1024 },
            default: "0",
            help: "after each op, passes over the other CPUs' pages made with interrupts off \
                   (catches an initiator that does not wait for acknowledgements)",
        },
        ParamSpec {
            key: "readers",
            kind: Kind::U64 { min: 0, max: 63 },
            default: "0",
            help: "highest-numbered CPUs that make no ops and only check, interrupts on, until \
                   the others finish (catches a target that acknowledges and defers)",
        },
        ParamSpec {
            key: "path",
            kind: Kind::Choice(&["kenter", "enter"]),
            default: "kenter",
            help: "page ops by pmap_kenter_pa (no lock across the shootdown) or pmap_enter (lock held)",
        },
    ],
    run: |params, _| run(params),
};

/// One CPU's published state and figures, on its own cache line.
#[repr(C, align(64))]
struct PerCpu {
    /// The page's current generation, published after its shootdown.
    page_gen: AtomicU64,
    /// The window's current generation (0: never mapped).
    window_gen: AtomicU64,
    ops: AtomicU64,
    checks: AtomicU64,
    irqoff_checks: AtomicU64,
    stale: AtomicU64,
    finished_at: AtomicU64,
}

static CPUS: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        page_gen: AtomicU64::new(0),
        window_gen: AtomicU64::new(0),
        ops: AtomicU64::new(0),
        checks: AtomicU64::new(0),
        irqoff_checks: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        finished_at: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Frames (physical addresses): the page's ring, and each window page's.
static PAGE_RING: [[AtomicU64; RING]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; RING] }; MAX_CPUS];
static WINDOW_RING: [[[AtomicU64; RING]; MAX_PAGES]; MAX_CPUS] =
    [const { [const { [const { AtomicU64::new(0) }; RING] }; MAX_PAGES] }; MAX_CPUS];
/// Readers of a window hold its owner's lock shared; the owner, exclusive.
static WINDOW_LOCK: [spin::RwLock<()>; MAX_CPUS] = [const { spin::RwLock::new(()) }; MAX_CPUS];

/// The run's parameters, set by the boot CPU before the jobs start.
static OPS: AtomicU64 = AtomicU64::new(0);
static MODE: AtomicU32 = AtomicU32::new(0);
static PAGES: AtomicU64 = AtomicU64::new(0);
static TOUCH: AtomicBool = AtomicBool::new(true);
static LOCKED_PATH: AtomicBool = AtomicBool::new(false);
static IRQOFF_PASSES: AtomicU64 = AtomicU64::new(0);
static READERS: AtomicU32 = AtomicU32::new(0);
/// CPUs that have made all their ops (the readers stop when all have).
static DONE: AtomicU32 = AtomicU32::new(0);
/// A PAUSE every this many interrupts-off passes.
const IRQOFF_PAUSE_EVERY: u64 = 64;
/// Start barrier: CPUs ready, and the go signal (with its TSC).
static READY: AtomicU32 = AtomicU32::new(0);
static START: AtomicU64 = AtomicU64::new(0);

const MODE_PAGE: u32 = 0;
const MODE_RANGE: u32 = 1;
const MODE_MIXED: u32 = 2;

fn page_va(cpu: u32) -> VirtAddr {
    VirtAddr::new(STORM_BASE + u64::from(cpu) * BLOCK)
}

fn window_va(cpu: u32, i: usize) -> VirtAddr {
    page_va(cpu) + (1 + i as u64) * PAGE_SIZE
}

fn window_end(cpu: u32) -> VirtAddr {
    window_va(cpu, PAGES.load(Ordering::Relaxed) as usize)
}

fn write_tag(pa: u64, tag: u64) {
    // SAFETY: a frame this workload owns, not mapped anywhere now (its
    // last mapping was shot down RING - 1 ops ago), through the direct map.
    unsafe { phys_to_virt(pa).as_mut_ptr::<u64>().write_volatile(tag) }
}

fn read_tag(va: VirtAddr) -> u64 {
    // SAFETY: a page mapped at set-up and only ever remapped (the page),
    // or read under its owner's window lock while mapped (the window).
    unsafe { va.as_ptr::<u64>().read_volatile() }
}

fn uses_window() -> bool {
    MODE.load(Ordering::Relaxed) != MODE_PAGE
}

fn run(params: &Params<'_>) -> Status {
    let _cause = crate::mm::shootdown::cause::set(lab_core::cause::ShootCause::Kernel);
    let ncpu = smp::online().len();
    OPS.store(params.u64("ops"), Ordering::Relaxed);
    MODE.store(
        match params.choice("mode") {
            "range" => MODE_RANGE,
            "mixed" => MODE_MIXED,
            _ => MODE_PAGE,
        },
        Ordering::Relaxed,
    );
    PAGES.store(params.u64("pages"), Ordering::Relaxed);
    TOUCH.store(params.flag("touch"), Ordering::Relaxed);
    LOCKED_PATH.store(params.choice("path") == "enter", Ordering::Relaxed);
    IRQOFF_PASSES.store(params.u64("irqoff"), Ordering::Relaxed);
    // At least one CPU (the boot CPU) makes ops.
    let readers = (params.u64("readers") as u32).min(ncpu - 1);
    READERS.store(readers, Ordering::Relaxed);

    if let Err(what) = set_up(ncpu) {
        report::error("shoot-storm", format_args!("set-up: {what}"));
        return Status::Failed;
    }
    for cpu in 1..ncpu {
        smp::post(cpu, storm, 0);
    }
    // Everyone (this CPU included) checks in, then go.
    storm_start(ncpu);
    storm(0);
    for cpu in 1..ncpu {
        smp::wait(cpu);
    }
    let start = START.load(Ordering::Relaxed);
    tear_down(ncpu);

    let (mut ops, mut checks, mut irqoff_checks, mut stale, mut end) = (0, 0, 0, 0, start);
    for (cpu, c) in CPUS.iter().enumerate().take(ncpu as usize) {
        let n = c.ops.load(Ordering::Relaxed);
        report::metric("kstorm.ops", n, "count", Scope::Cpu(cpu as u32));
        ops += n;
        checks += c.checks.load(Ordering::Relaxed);
        irqoff_checks += c.irqoff_checks.load(Ordering::Relaxed);
        stale += c.stale.load(Ordering::Relaxed);
        end = end.max(c.finished_at.load(Ordering::Relaxed));
    }
    let elapsed_ns = tsc::cycles_to_ns(end - start);
    report::metric("workload.ops", ops, "count", Scope::Global);
    report::metric("workload.elapsed_ns", elapsed_ns, "ns", Scope::Global);
    report::metric("kstorm.checks", checks, "count", Scope::Global);
    report::metric(
        "kstorm.irqoff_checks",
        irqoff_checks,
        "count",
        Scope::Global,
    );
    report::metric("kstorm.stale", stale, "count", Scope::Global);
    if stale > 0 {
        report::error(
            "shoot-storm",
            format_args!("{stale} of {checks} reads saw a mapping whose shootdown had completed"),
        );
        return Status::Failed;
    }
    Status::Ok
}

/// Frames for every CPU's rings, each page mapped at generation 0, all
/// from this CPU before the others start (entering into empty entries: no
/// shootdown).
fn set_up(ncpu: u32) -> Result<(), &'static str> {
    let alloc = || {
        frame::alloc(Fill::Zeroed)
            .map(|f| f.start_address().as_u64())
            .ok_or("out of frames")
    };
    let pages = PAGES.load(Ordering::Relaxed) as usize;
    READY.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
    DONE.store(0, Ordering::Relaxed);
    for cpu in 0..ncpu {
        let c = &CPUS[cpu as usize];
        for (name, v) in [
            (&c.page_gen, 0),
            (&c.window_gen, 0),
            (&c.ops, 0),
            (&c.checks, 0),
            (&c.irqoff_checks, 0),
            (&c.stale, 0),
        ] {
            name.store(v, Ordering::Relaxed);
        }
        for slot in &PAGE_RING[cpu as usize] {
            slot.store(alloc()?, Ordering::Relaxed);
        }
        enter(
            page_va(cpu),
            PAGE_RING[cpu as usize][0].load(Ordering::Relaxed),
        )?;
        if uses_window() && TOUCH.load(Ordering::Relaxed) {
            for (i, ring) in WINDOW_RING[cpu as usize][..pages].iter().enumerate() {
                for slot in ring {
                    slot.store(alloc()?, Ordering::Relaxed);
                }
                enter(window_va(cpu, i), ring[0].load(Ordering::Relaxed))?;
            }
            c.window_gen.store(0, Ordering::Release);
        }
    }
    Ok(())
}

/// Unmaps every block (freeing its page tables) and frees the frames.
fn tear_down(ncpu: u32) {
    let pages = PAGES.load(Ordering::Relaxed) as usize;
    for cpu in 0..ncpu {
        pmap::pmap_remove(pmap::pmap_kernel(), page_va(cpu), page_va(cpu) + BLOCK);
        let window = &WINDOW_RING[cpu as usize][..pages];
        for slot in PAGE_RING[cpu as usize]
            .iter()
            .chain(window.iter().flatten())
        {
            let pa = slot.swap(0, Ordering::Relaxed);
            if pa != 0 {
                frame::free(x86_64::structures::paging::PhysFrame::containing_address(
                    PhysAddr::new(pa),
                ));
            }
        }
    }
}

fn enter(va: VirtAddr, pa: u64) -> Result<(), &'static str> {
    let pa = PhysAddr::new(pa);
    let r = if LOCKED_PATH.load(Ordering::Relaxed) {
        pmap::pmap_enter(pmap::pmap_kernel(), va, pa, Prot::READ, false)
    } else {
        pmap::pmap_kenter_pa(va, pa, Prot::READ)
    };
    r.map_err(|_| "out of frames for a page table")
}

/// The boot CPU's side of the start barrier: wait until every other CPU
/// has checked in, then give the signal (its TSC is the run's start).
fn storm_start(ncpu: u32) {
    while READY.load(Ordering::Acquire) != ncpu - 1 {
        core::hint::spin_loop();
    }
    START.store(tsc::now().max(1), Ordering::Release);
}

/// The loop every CPU runs (the boot CPU after storm_start).
fn storm(_: u64) {
    let _cause = crate::mm::shootdown::cause::set(lab_core::cause::ShootCause::Kernel);
    let me = arch::cpu_id();
    if me != 0 {
        READY.fetch_add(1, Ordering::AcqRel);
        while START.load(Ordering::Acquire) == 0 {
            core::hint::spin_loop();
        }
    }
    let ncpu = smp::online().len();
    let c = &CPUS[me as usize];
    let workers = ncpu - READERS.load(Ordering::Relaxed);
    if me >= workers {
        // A reader: only ordinary checks, interrupts on, so it takes every
        // shootdown IPI between two reads and its TLB is flushed by
        // nothing else (no ops of its own): a target that acknowledges a
        // kernel request and leaves the invalidation for later is seen.
        while DONE.load(Ordering::Acquire) < workers {
            check_others(me, ncpu);
            core::hint::spin_loop();
        }
        c.finished_at.store(tsc::now(), Ordering::Release);
        return;
    }
    let mode = MODE.load(Ordering::Relaxed);
    for n in 0..OPS.load(Ordering::Relaxed) {
        let range = mode == MODE_RANGE || (mode == MODE_MIXED && n % 2 == 1);
        if range {
            range_op(me);
        } else {
            page_op(me);
        }
        c.ops.fetch_add(1, Ordering::Relaxed);
        check_others(me, ncpu);
        check_others_irqoff(me, ncpu);
    }
    c.finished_at.store(tsc::now(), Ordering::Release);
    DONE.fetch_add(1, Ordering::AcqRel);
}

/// Remaps this CPU's page to the next frame of its ring; publishes the new
/// generation once the shootdown has completed.
fn page_op(me: u32) {
    let c = &CPUS[me as usize];
    let g = c.page_gen.load(Ordering::Relaxed) + 1;
    let pa = PAGE_RING[me as usize][g as usize % RING].load(Ordering::Relaxed);
    write_tag(pa, g);
    enter(page_va(me), pa).expect("shoot-storm: remap of a mapped page failed");
    c.page_gen.store(g, Ordering::Release);
}

/// Removes this CPU's window (one range shootdown) and, with touch=on,
/// maps it again at the next generation.
fn range_op(me: u32) {
    let k = pmap::pmap_kernel();
    if !TOUCH.load(Ordering::Relaxed) {
        pmap::pmap_remove(k, window_va(me, 0), window_end(me));
        return;
    }
    let c = &CPUS[me as usize];
    let _writer = WINDOW_LOCK[me as usize].write();
    pmap::pmap_remove(k, window_va(me, 0), window_end(me));
    let g = c.window_gen.load(Ordering::Relaxed) + 1;
    let pages = PAGES.load(Ordering::Relaxed) as usize;
    for (i, ring) in WINDOW_RING[me as usize][..pages].iter().enumerate() {
        let pa = ring[g as usize % RING].load(Ordering::Relaxed);
        write_tag(pa, g);
        enter(window_va(me, i), pa).expect("shoot-storm: out of frames re-entering the window");
    }
    c.window_gen.store(g, Ordering::Release);
}

/// One check of CPU `other`'s page: its published generation, then the
/// tag through its mapping; true if the tag is older (a stale read).
fn page_read_is_stale(other: u32) -> bool {
    let p = CPUS[other as usize].page_gen.load(Ordering::Acquire);
    read_tag(page_va(other)) < p
}

/// Reads every other CPU's page (and window, if mapped and not being
/// changed) after its published generation; counts checks and stale reads.
fn check_others(me: u32, ncpu: u32) {
    let c = &CPUS[me as usize];
    let window = uses_window() && TOUCH.load(Ordering::Relaxed);
    let pages = PAGES.load(Ordering::Relaxed) as usize;
    let (mut checks, mut stale) = (0, 0);
    for other in (0..ncpu).filter(|&o| o != me) {
        let o = &CPUS[other as usize];
        checks += 1;
        stale += u64::from(page_read_is_stale(other));
        // Chaos mode: maybe stop here, interrupts on (arch::chaos).
        arch::chaos::point(arch::chaos::Point::OracleCheck);
        if window {
            if let Some(_reader) = WINDOW_LOCK[other as usize].try_read() {
                let p = o.window_gen.load(Ordering::Acquire);
                for i in 0..pages {
                    let v = read_tag(window_va(other, i));
                    checks += 1;
                    stale += u64::from(v < p);
                }
            }
        }
    }
    c.checks.fetch_add(checks, Ordering::Relaxed);
    c.stale.fetch_add(stale, Ordering::Relaxed);
}

/// `irqoff` passes over every other CPU's page with interrupts off (see
/// the module's "Readers with interrupts off"): from the first pass on,
/// this CPU's TLB holds each page's translation, and a shootdown IPI sent
/// meanwhile waits in the local APIC until the section ends. Windows are
/// left out: their readers take a lock the owner may hold.
fn check_others_irqoff(me: u32, ncpu: u32) {
    let passes = IRQOFF_PASSES.load(Ordering::Relaxed);
    if passes == 0 || ncpu < 2 {
        return;
    }
    let (checks, stale) = x86_64::instructions::interrupts::without_interrupts(|| {
        let (mut checks, mut stale) = (0u64, 0u64);
        for pass in 0..passes {
            for other in (0..ncpu).filter(|&o| o != me) {
                checks += 1;
                stale += u64::from(page_read_is_stale(other));
            }
            if pass % IRQOFF_PAUSE_EVERY == IRQOFF_PAUSE_EVERY - 1 {
                // A spin-wait hint, as a CPU spinning for a spin mutex
                // with interrupts off executes. Under tcg-icount it also
                // ends this vCPU's turn inside the section, so the other
                // CPUs' ops run while this one holds its translations.
                core::hint::spin_loop();
            }
        }
        (checks, stale)
    });
    let c = &CPUS[me as usize];
    c.checks.fetch_add(checks, Ordering::Relaxed);
    c.irqoff_checks.fetch_add(checks, Ordering::Relaxed);
    c.stale.fetch_add(stale, Ordering::Relaxed);
}
