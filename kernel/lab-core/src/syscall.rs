//! The system-call ABI between the pmaplab kernel and its user programs.
//!
//! This module is the one place the ABI is defined: the numbers, the
//! argument conventions, the error codes, the user address-space layout,
//! the initial stack of a new process and the shared page. The kernel's
//! syscall dispatcher and `kernel/user`'s `ulib` are both written against
//! it; the encoding helpers here are unit-tested on the host.
//!
//! # Calling convention
//!
//! A user thread executes the `syscall` instruction with
//!
//! | register | holds |
//! |---|---|
//! | `rax` | the call number ([`Sys`]) |
//! | `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` | arguments 1 to 6 (`r10`, not `rcx`, for the fourth: `syscall` overwrites `rcx`) |
//! | `rax` (on return) | the result: `>= 0` success, `-1..=-4095` an error, `-(errno as i64)` ([`Errno`]) |
//!
//! `rcx` and `r11` are clobbered (the CPU stores the return `rip` and
//! `rflags` there); every other register, including `rsp`, is preserved.
//! Pointers are user virtual addresses; the kernel checks every pointer and
//! length it is given (the whole range must lie in user space, see
//! [`USER_END`], and be mapped with the access the call needs) and returns
//! [`Errno::EFAULT`] instead of faulting; a zero-length buffer is never
//! accessed, so any pointer goes with length 0. A call that fails has no
//! effect (e.g. `waitpid` stores the status before it reaps the child, so
//! a bad or vanished status page leaves the child waitable). What a process
//! may hold is bounded by [`crate::limits`]; a call that would exceed a
//! limit fails with `EAGAIN` or `ENOMEM` as documented there. No call ever crashes or corrupts
//! the kernel because of its arguments. Unknown numbers return
//! [`Errno::ENOSYS`]. Strings are passed as (pointer, length) pairs, UTF-8,
//! not NUL-terminated.
//!
//! User programs are built for `x86_64-unknown-none` (soft-float): they use
//! no x87/SSE/AVX state, so the kernel need not save it for them.
//!
//! # The calls
//!
//! See each [`Sys`] variant for its arguments, result and errors. Processes
//! are made by [`Sys::Fork`] and replaced by [`Sys::Exec`] (programs come
//! from the table of ELF images embedded in the kernel, by name); there is no
//! file system. Threads share their process's address space (its pmap).
//! Process ids and thread ids are drawn from one space; a process's first
//! thread has `tid == pid`.
//!
//! # Address space of a process
//!
//! | range | what |
//! |---|---|
//! | `0 .. IMAGE_BASE` | never mapped (catches null-pointer use) |
//! | [`IMAGE_BASE`] `..` [`IMAGE_END`] | the program's ELF segments (programs link at [`PROGRAM_LINK_ADDR`]) |
//! | [`MMAP_BASE`] `..` [`MMAP_END`] | where [`Sys::Mmap`] places mappings without [`MapFlags::FIXED`] |
//! | [`USER_STACK_TOP`]` - `[`USER_STACK_SIZE`] `..` [`USER_STACK_TOP`] | the first thread's stack (demand-zero) |
//! | [`SHARED_PAGE_VA`] | the shared page, read-only, in every process ([`SharedPage`]) |
//! | [`USER_END`] `..` | not user space: any access kills the process |
//!
//! # Initial stack
//!
//! [`Sys::Exec`] starts the new program's first thread at the ELF entry point
//! with every general register zero except `rsp`, which points at a
//! System V-like block (built by [`build_initial_stack`]):
//!
//! ```text
//!   rsp + 0              argc (u64)
//!   rsp + 8              argv[0] (pointer)
//!   ...
//!   rsp + 8 + 8*argc     0 (end of argv)
//!   rsp + 16 + 8*argc    0 (empty envp: a System V reader expects it)
//!   above                the argument strings, each NUL-terminated
//! ```
//!
//! `rsp` is 16-byte aligned at entry (so the entry code must not assume a
//! return address was pushed). The block lies just below [`USER_STACK_TOP`].
//!
//! # Argument vectors
//!
//! [`Sys::Exec`] takes argv as one *packed* buffer: the strings one after the
//! other, each followed by a NUL ([`pack_argv`], [`PackedArgv`]). `argv[0]`
//! is part of the buffer (by convention the program name). At most
//! [`ARGV_MAX`] strings and [`ARGV_MAX_BYTES`] bytes.
//!
//! # Exit and wait status
//!
//! [`Sys::Exit`] takes an `i32` status; [`Sys::Waitpid`] stores a
//! [`WaitStatus`] encoded as a `u64` ([`WaitStatus::encode`]): the child
//! either exited with a status, or was killed by the kernel because of a
//! fault it could not resolve ([`KillReason`]). The kernel also prints a
//! console line naming the process, the fault, its address and `rip`
//! (free-form, not an `error` record: `usertest` and `coherence` provoke
//! such kills on purpose, and judge them from the wait status).
//!
//! # Placement
//!
//! A thread runs on any CPU unless pinned ([`Sys::Pin`]). A thread made by
//! [`Sys::ThreadCreate`] starts unpinned; a child of [`Sys::Fork`] inherits
//! the forking thread's pin, and [`Sys::Exec`] keeps it.
//!
//! # Runs
//!
//! For a workload that is a user program (`crate::workloads`), the kernel
//! execs its program with `argv = [program]`; the run ends when that first
//! process exits, with `status=ok` only if it exited 0 and nothing called
//! [`Sys::ReportError`].

use core::fmt;

// ---- Address-space layout --------------------------------------------------

pub const PAGE_SIZE: u64 = 4096;
/// Lowest address a program segment may use: page 0 (and a bit more) stays
/// unmapped so null-pointer accesses fault.
pub const IMAGE_BASE: u64 = 0x0001_0000;
/// Where `kernel/user/user.ld` links every program.
pub const PROGRAM_LINK_ADDR: u64 = 0x0040_0000;
/// End (exclusive) of the region program segments may use.
pub const IMAGE_END: u64 = 0x0000_1000_0000_0000;
/// Start of the region where the kernel places mappings that have no fixed
/// address.
pub const MMAP_BASE: u64 = 0x0000_1000_0000_0000;
/// End (exclusive) of that region.
pub const MMAP_END: u64 = 0x0000_7000_0000_0000;
/// Top (exclusive) of the first thread's stack.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_fff0_0000;
/// Size of the first thread's stack region (demand-zero: only touched pages
/// take frames).
pub const USER_STACK_SIZE: u64 = 1024 * 1024;
/// The shared page: one read-only page mapped at exec into every process.
pub const SHARED_PAGE_VA: u64 = 0x0000_7fff_fffe_0000;
/// End (exclusive) of user space. The 64 KiB below the canonical boundary
/// (0x0000_8000_0000_0000) are never mapped, so no user instruction or
/// access can run into the non-canonical hole.
pub const USER_END: u64 = 0x0000_7fff_ffff_0000;

// The layout's invariants, checked at compile time.
const _: () = {
    assert!(IMAGE_BASE < PROGRAM_LINK_ADDR && PROGRAM_LINK_ADDR < IMAGE_END);
    assert!(IMAGE_END <= MMAP_BASE && MMAP_BASE < MMAP_END);
    assert!(MMAP_END <= USER_STACK_TOP - USER_STACK_SIZE);
    assert!(USER_STACK_TOP < SHARED_PAGE_VA);
    assert!(SHARED_PAGE_VA + PAGE_SIZE <= USER_END);
    assert!(USER_END < 0x0000_8000_0000_0000);
    let all = [
        IMAGE_BASE,
        IMAGE_END,
        MMAP_BASE,
        MMAP_END,
        USER_STACK_TOP,
        USER_STACK_SIZE,
        SHARED_PAGE_VA,
        USER_END,
    ];
    let mut i = 0;
    while i < all.len() {
        assert!(all[i].is_multiple_of(PAGE_SIZE));
        i += 1;
    }
    assert!(core::mem::size_of::<SharedPage>() <= PAGE_SIZE as usize);
};

/// Whether `[addr, addr + len)` lies entirely in user space (`len` may be 0;
/// no overflow).
pub const fn user_range_ok(addr: u64, len: u64) -> bool {
    match addr.checked_add(len) {
        Some(end) => end <= USER_END,
        None => false,
    }
}

// ---- Call numbers ----------------------------------------------------------

/// System-call numbers (`rax`). Arguments are listed as `(rdi, rsi, rdx,
/// r10, r8, r9)`; "returns" is `rax` on success.
///
/// The numbers are stable: new calls get new numbers, old ones are never
/// reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sys {
    /// `exit(status: i32) -> !`: ends the calling process (every thread).
    /// Its parent's `waitpid` sees [`WaitStatus::Exited`]`(status)`.
    Exit = 0,
    /// `fork() -> pid`: copies the calling process (copy-on-write); only the
    /// calling thread is copied. Returns the child's pid in the parent and 0
    /// in the child. Errors: `ENOMEM`, `EAGAIN` (process table full:
    /// `limits::PROCS`, or `limits::THREADS` thread records).
    Fork = 1,
    /// `exec(name: *const u8, name_len, argv: *const u8, argv_len) -> !`:
    /// replaces the calling process's program with the embedded program
    /// `name`, argv given packed ([`pack_argv`]). The process must have one
    /// thread. On success it does not return; the new program starts with
    /// the initial stack described in the module doc. Errors: `ENOENT` (no
    /// such program), `E2BIG` (argv too large), `EINVAL` (argv not packed
    /// properly, or more than one thread), `EFAULT`, `ENOMEM`, `ENOEXEC`
    /// (the embedded image failed to load).
    Exec = 2,
    /// `waitpid(pid: i64, status: *mut u64, flags: u64) -> pid`: waits for
    /// the child `pid` (or any child if `pid == -1`) to end, reaps it and
    /// stores its encoded [`WaitStatus`] at `status` (if not null). With
    /// [`WaitFlags::NOHANG`], returns 0 at once if no such child has ended.
    /// Errors: `ECHILD` (no such child), `EFAULT`, `EINVAL` (bad flags).
    Waitpid = 3,
    /// `getpid() -> pid`.
    Getpid = 4,
    /// `yield() -> 0`: gives up the CPU to another runnable thread, if any.
    Yield = 5,
    /// `write(fd, buf: *const u8, len) -> len`: writes to the console (fd 1
    /// or 2; bytes, written as one piece so lines do not interleave).
    /// Errors: `EBADF`, `EFAULT`.
    Write = 6,
    /// `clock() -> ns`: monotonic nanoseconds since boot.
    Clock = 7,
    /// `mmap(addr, len, prot: Prot, flags: MapFlags) -> addr`: maps `len`
    /// bytes (rounded up to pages) of anonymous, private, zero-filled memory
    /// (frames are allocated on first touch). Without `FIXED`, `addr` is a
    /// hint (0: none) and the kernel picks a free range in
    /// `MMAP_BASE..MMAP_END`. With `FIXED`, the mapping is placed exactly at
    /// `addr` (page-aligned) and any mappings already in the range are
    /// removed first, within the same call: no other thread of the process
    /// can observe the range unmapped (a concurrent fault in it waits for
    /// the call and resolves against the new mapping). Errors: `EINVAL`
    /// (len 0, bad prot or flags, unaligned FIXED address, range outside
    /// user space or overlapping the image, stack or shared page), `ENOMEM`
    /// (no free range, or the process would pass
    /// `limits::REGIONS_PER_PROC` regions, counting a split; a mapping
    /// next to one of the same protection joins it and adds none).
    Mmap = 8,
    /// `munmap(addr, len) -> 0`: removes every mapping in `[addr, addr+len)`
    /// (`addr` page-aligned, `len` rounded up; holes are fine), frees the
    /// frames and invalidates the translations on every CPU before
    /// returning. A later access to the range kills the process. Errors:
    /// `EINVAL` (unaligned, len 0, outside the mmap region or the stack),
    /// `ENOMEM` (a split would pass `limits::REGIONS_PER_PROC`).
    Munmap = 9,
    /// `mprotect(addr, len, prot) -> 0`: changes the protection of every
    /// page in the range, which must be wholly mapped; like `munmap`, the
    /// change is visible on every CPU when the call returns. Errors:
    /// `EINVAL` (unaligned, bad prot), `ENOMEM` (part of the range is not
    /// mapped, or a split would pass `limits::REGIONS_PER_PROC`).
    Mprotect = 10,
    /// `thread_create(entry, arg, stack_top) -> tid`: starts a thread in
    /// the calling process at `entry` with `rdi = arg` and `rsp =
    /// stack_top` (16-byte aligned; nothing pushed), other registers zero.
    /// The entry must never return; it ends with `thread_exit`. The stack is
    /// the caller's business (ulib mmaps one). Errors: `EINVAL` (unaligned
    /// stack, entry or stack outside user space), `EAGAIN`
    /// (`limits::THREADS_PER_PROC` threads not yet joined, dead ones
    /// included, or `limits::THREADS` in all), `ENOMEM`.
    ThreadCreate = 11,
    /// `thread_exit(value: u64) -> !`: ends the calling thread; `value` is
    /// what `thread_join` stores. The last thread of a process exiting this
    /// way ends the process with status 0.
    ThreadExit = 12,
    /// `thread_join(tid, value: *mut u64) -> 0`: waits for thread `tid` of
    /// the calling process to exit and stores its exit value (any `u64`,
    /// also one that would read as an error in `rax`) at `value` if not
    /// null; a thread can be joined once. Errors: `ESRCH` (no such thread in
    /// this process, or already joined), `EDEADLK` (`tid` is the caller),
    /// `EFAULT` (the thread stays joinable).
    ThreadJoin = 13,
    /// `getcpu() -> cpu`: the CPU the caller was running on (it may have
    /// moved by the time it looks, unless pinned).
    Getcpu = 14,
    /// `pin(cpu: i64) -> 0`: pins the calling thread to `cpu` (it runs only
    /// there, and is running there when the call returns); `-1` unpins.
    /// Errors: `EINVAL` (no such CPU).
    Pin = 15,
    /// `ncpus() -> n`: the number of online CPUs.
    Ncpus = 16,
    /// `report_metric(name: *const u8, name_len, value: i64, unit: *const
    /// u8, unit_len, scope: u64) -> 0`: writes a `metric` record to the run's
    /// report (`lab_core::report`), scope encoded by [`encode_scope`].
    /// Errors: `EINVAL` (name not `[a-z0-9._-]{1,64}`, unit not
    /// `[a-z0-9_/]{1,16}`, bad scope), `EFAULT`.
    ReportMetric = 17,
    /// `report_error(kind: *const u8, kind_len, msg: *const u8, msg_len) ->
    /// 0`: writes an `error` record (kind as for a metric name, msg at most
    /// [`REPORT_MSG_MAX`] bytes, one line) and marks the run failed: its
    /// `end` line will say `status=failed`. Errors: `EINVAL`, `EFAULT`.
    ReportError = 18,
    /// `getparam(key: *const u8, key_len, buf: *mut u8, buf_len) -> len`:
    /// the value of the workload parameter `key`: from the kernel command
    /// line, else the default the workload declares (the kernel validated
    /// the command line against `lab_core::workloads`). Copies
    /// `min(len, buf_len)` bytes and returns the full length. Errors:
    /// `ENOENT` (the workload declares no such key), `EINVAL` (key longer
    /// than [`REPORT_NAME_MAX`]), `EFAULT`.
    Getparam = 19,
    /// `gettid() -> tid`.
    Gettid = 20,
    /// `busy(us) -> 0`: spins in the kernel for `us` microseconds (at most
    /// [`BUSY_MAX_US`], else `EINVAL`) with interrupts on, as a long
    /// syscall would: a lab probe of what a CPU busy in the kernel does to
    /// the shootdowns that target it (the `busy-target` workload).
    Busy = 21,
    /// `ack_last() -> cycles`: the latency of the last TLB shootdown this
    /// CPU initiated and waited for (TSC cycles from the request going out
    /// until every target acknowledged, as the kernel's
    /// `shoot.ack.<kind>` samples), or 0 if it waited for none since the
    /// previous call, which this call clears. Per CPU: pin the caller.
    AckLast = 22,
}

/// Longest [`Sys::Busy`] spin, in microseconds (one second).
pub const BUSY_MAX_US: u64 = 1_000_000;

impl Sys {
    pub const ALL: [Sys; 23] = [
        Sys::Exit,
        Sys::Fork,
        Sys::Exec,
        Sys::Waitpid,
        Sys::Getpid,
        Sys::Yield,
        Sys::Write,
        Sys::Clock,
        Sys::Mmap,
        Sys::Munmap,
        Sys::Mprotect,
        Sys::ThreadCreate,
        Sys::ThreadExit,
        Sys::ThreadJoin,
        Sys::Getcpu,
        Sys::Pin,
        Sys::Ncpus,
        Sys::ReportMetric,
        Sys::ReportError,
        Sys::Getparam,
        Sys::Gettid,
        Sys::Busy,
        Sys::AckLast,
    ];

    /// The call with number `n` (the kernel's dispatch; `None` means
    /// `ENOSYS`).
    pub fn from_number(n: u64) -> Option<Sys> {
        Sys::ALL.into_iter().find(|s| *s as u64 == n)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Sys::Exit => "exit",
            Sys::Fork => "fork",
            Sys::Exec => "exec",
            Sys::Waitpid => "waitpid",
            Sys::Getpid => "getpid",
            Sys::Yield => "yield",
            Sys::Write => "write",
            Sys::Clock => "clock",
            Sys::Mmap => "mmap",
            Sys::Munmap => "munmap",
            Sys::Mprotect => "mprotect",
            Sys::ThreadCreate => "thread_create",
            Sys::ThreadExit => "thread_exit",
            Sys::ThreadJoin => "thread_join",
            Sys::Getcpu => "getcpu",
            Sys::Pin => "pin",
            Sys::Ncpus => "ncpus",
            Sys::ReportMetric => "report_metric",
            Sys::ReportError => "report_error",
            Sys::Getparam => "getparam",
            Sys::Gettid => "gettid",
            Sys::Busy => "busy",
            Sys::AckLast => "ack_last",
        }
    }
}

// ---- Errors ----------------------------------------------------------------

/// Error codes, returned negated in `rax`. The numbers are Linux's, so they
/// read familiarly in a debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Errno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such entry (program, parameter).
    ENOENT = 2,
    /// No such process or thread.
    ESRCH = 3,
    /// Argument list too long.
    E2BIG = 7,
    /// The program image is not a loadable executable.
    ENOEXEC = 8,
    /// Bad file descriptor.
    EBADF = 9,
    /// No child to wait for.
    ECHILD = 10,
    /// Resource temporarily unavailable (a table is full).
    EAGAIN = 11,
    /// Out of memory, or (mprotect) part of the range not mapped.
    ENOMEM = 12,
    /// A pointer argument is not valid user memory.
    EFAULT = 14,
    /// Resource busy.
    EBUSY = 16,
    /// Already exists.
    EEXIST = 17,
    /// An argument is out of range or malformed.
    EINVAL = 22,
    /// Result out of range.
    ERANGE = 34,
    /// Would deadlock (joining oneself).
    EDEADLK = 35,
    /// No such call.
    ENOSYS = 38,
}

impl Errno {
    pub const ALL: [Errno; 16] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::ESRCH,
        Errno::E2BIG,
        Errno::ENOEXEC,
        Errno::EBADF,
        Errno::ECHILD,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::ERANGE,
        Errno::EDEADLK,
        Errno::ENOSYS,
    ];

    /// The positive error number.
    pub const fn code(self) -> i64 {
        self as i64
    }

    /// The `rax` value that returns this error.
    pub const fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// The error with positive number `code`.
    pub fn from_code(code: i64) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.code() == code)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::E2BIG => "E2BIG",
            Errno::ENOEXEC => "ENOEXEC",
            Errno::EBADF => "EBADF",
            Errno::ECHILD => "ECHILD",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::ERANGE => "ERANGE",
            Errno::EDEADLK => "EDEADLK",
            Errno::ENOSYS => "ENOSYS",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The highest error number a return value can carry: `rax` values in
/// `-MAX_ERRNO..=-1` are errors, everything else is a result.
pub const MAX_ERRNO: i64 = 4095;

/// Encodes a call's outcome as the `rax` value (the kernel's side).
pub fn encode_result(result: Result<u64, Errno>) -> u64 {
    match result {
        Ok(value) => value,
        Err(errno) => errno.to_ret() as u64,
    }
}

/// Decodes `rax` after a call (the user's side). The kernel only returns
/// the numbers in [`Errno::ALL`]; any other value in the error range decodes
/// as `EINVAL`, so a caller never mistakes it for a result.
pub fn decode_result(rax: u64) -> Result<u64, Errno> {
    let signed = rax as i64;
    if (-MAX_ERRNO..=-1).contains(&signed) {
        Err(Errno::from_code(-signed).unwrap_or(Errno::EINVAL))
    } else {
        Ok(rax)
    }
}

// ---- Flags -----------------------------------------------------------------

/// Page protection for `mmap` and `mprotect`. `WRITE` implies `READ` on
/// x86-64 (a writable page is readable); `NONE` (0) leaves the range mapped
/// but inaccessible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Prot(pub u64);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: Prot = Prot(1);
    pub const WRITE: Prot = Prot(2);
    pub const EXEC: Prot = Prot(4);
    pub const RW: Prot = Prot(1 | 2);
    pub const ALL_BITS: u64 = 7;

    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }
    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }
    /// `Some` if no undefined bit is set.
    pub const fn from_bits(bits: u64) -> Option<Prot> {
        if bits & !Self::ALL_BITS == 0 {
            Some(Prot(bits))
        } else {
            None
        }
    }
}

/// `mmap` flags. Every mapping is anonymous and private; these only say
/// where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MapFlags(pub u64);

impl MapFlags {
    pub const NONE: MapFlags = MapFlags(0);
    /// Place the mapping exactly at `addr`, replacing what is there
    /// atomically with respect to the process's other threads.
    pub const FIXED: MapFlags = MapFlags(1);
    pub const ALL_BITS: u64 = 1;

    pub const fn contains(self, other: MapFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn from_bits(bits: u64) -> Option<MapFlags> {
        if bits & !Self::ALL_BITS == 0 {
            Some(MapFlags(bits))
        } else {
            None
        }
    }
}

/// `waitpid` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WaitFlags(pub u64);

impl WaitFlags {
    pub const NONE: WaitFlags = WaitFlags(0);
    /// Return 0 at once instead of waiting.
    pub const NOHANG: WaitFlags = WaitFlags(1);
    pub const ALL_BITS: u64 = 1;
}

// ---- Wait status -----------------------------------------------------------

/// Why the kernel killed a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KillReason {
    /// A page fault it could not resolve: an unmapped address, a write to a
    /// read-only page (not copy-on-write), a user access to a kernel page.
    PageFault = 1,
    /// A general-protection fault (e.g. a non-canonical address, a
    /// privileged instruction).
    GeneralProtection = 2,
    /// An invalid opcode.
    InvalidOpcode = 3,
    /// Any other exception (divide error, alignment, ...).
    OtherException = 4,
    /// The kernel could not give it memory it needed (out of frames while
    /// resolving a fault).
    OutOfMemory = 5,
}

impl KillReason {
    pub const ALL: [KillReason; 5] = [
        KillReason::PageFault,
        KillReason::GeneralProtection,
        KillReason::InvalidOpcode,
        KillReason::OtherException,
        KillReason::OutOfMemory,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            KillReason::PageFault => "page-fault",
            KillReason::GeneralProtection => "general-protection",
            KillReason::InvalidOpcode => "invalid-opcode",
            KillReason::OtherException => "exception",
            KillReason::OutOfMemory => "out-of-memory",
        }
    }
}

/// How a child ended, as `waitpid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// It called `exit(status)` (or its last thread `thread_exit`: 0).
    Exited(i32),
    /// The kernel killed it.
    Killed(KillReason),
}

/// Bit 32 of an encoded status: set when killed.
const KILLED_BIT: u64 = 1 << 32;

impl WaitStatus {
    /// The `u64` stored by `waitpid`: `Exited(s)` is `s as u32` (bits 0-31,
    /// bit 32 clear); `Killed(r)` is `1 << 32 | r as u32`.
    pub const fn encode(self) -> u64 {
        match self {
            WaitStatus::Exited(status) => status as u32 as u64,
            WaitStatus::Killed(reason) => KILLED_BIT | reason as u32 as u64,
        }
    }

    /// The status `encode` produced, or `None` for a value it cannot.
    pub fn decode(raw: u64) -> Option<WaitStatus> {
        if raw & KILLED_BIT == 0 {
            (raw >> 32 == 0).then_some(WaitStatus::Exited(raw as u32 as i32))
        } else {
            let reason = raw & !KILLED_BIT;
            KillReason::ALL
                .into_iter()
                .find(|r| *r as u32 as u64 == reason)
                .map(WaitStatus::Killed)
        }
    }
}

impl fmt::Display for WaitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitStatus::Exited(s) => write!(f, "exited with status {s}"),
            WaitStatus::Killed(r) => write!(f, "killed ({})", r.name()),
        }
    }
}

// ---- Report records from user space -----------------------------------------

/// Longest metric name or error kind a user program may report.
pub const REPORT_NAME_MAX: usize = 64;
/// Longest unit.
pub const REPORT_UNIT_MAX: usize = 16;
/// Longest error message.
pub const REPORT_MSG_MAX: usize = 256;

/// Whether `name` is a valid metric name or error kind
/// (`[a-z0-9._-]{1,64}`, as `lab_core::report` requires).
pub fn valid_report_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= REPORT_NAME_MAX
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

/// Whether `unit` is a valid unit (`[a-z0-9_/]{1,16}`).
pub fn valid_report_unit(unit: &[u8]) -> bool {
    !unit.is_empty()
        && unit.len() <= REPORT_UNIT_MAX
        && unit
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_/".contains(b))
}

/// Whether `msg` can be an error record's message: at most
/// [`REPORT_MSG_MAX`] bytes of UTF-8, no control characters (so it stays
/// one line).
pub fn valid_report_msg(msg: &[u8]) -> bool {
    msg.len() <= REPORT_MSG_MAX
        && core::str::from_utf8(msg).is_ok_and(|s| !s.chars().any(char::is_control))
}

const SCOPE_KIND_SHIFT: u32 = 62;
const SCOPE_CPU: u64 = 1 << SCOPE_KIND_SHIFT;
const SCOPE_PAIR: u64 = 2 << SCOPE_KIND_SHIFT;
const SCOPE_MAX_CPU: u32 = 0xffff;

/// Encodes a metric scope for `report_metric`'s sixth argument: 0 is the
/// whole machine; `1 << 62 | cpu` one CPU; `2 << 62 | from << 16 | to` a
/// pair. CPU numbers must fit in 16 bits (`None` otherwise).
pub fn encode_scope(scope: crate::report::Scope) -> Option<u64> {
    use crate::report::Scope;
    match scope {
        Scope::Global => Some(0),
        Scope::Cpu(cpu) if cpu <= SCOPE_MAX_CPU => Some(SCOPE_CPU | cpu as u64),
        Scope::Pair { from, to } if from <= SCOPE_MAX_CPU && to <= SCOPE_MAX_CPU => {
            Some(SCOPE_PAIR | (from as u64) << 16 | to as u64)
        }
        _ => None,
    }
}

/// Decodes [`encode_scope`]'s encoding; `None` for anything else.
pub fn decode_scope(raw: u64) -> Option<crate::report::Scope> {
    use crate::report::Scope;
    let payload = raw & ((1 << SCOPE_KIND_SHIFT) - 1);
    match raw >> SCOPE_KIND_SHIFT {
        0 if payload == 0 => Some(Scope::Global),
        1 if payload <= SCOPE_MAX_CPU as u64 => Some(Scope::Cpu(payload as u32)),
        2 if payload >> 32 == 0 => Some(Scope::Pair {
            from: (payload >> 16) as u32,
            to: (payload & 0xffff) as u32,
        }),
        _ => None,
    }
}

// ---- Argument vectors --------------------------------------------------------

/// Most strings in an argv.
pub const ARGV_MAX: usize = 32;
/// Most bytes in a packed argv (strings and their NULs).
pub const ARGV_MAX_BYTES: usize = 1024;
/// Longest program name `exec` accepts.
pub const PROGRAM_NAME_MAX: usize = 32;

/// Packs `args` into `out` as `exec` wants them (each string followed by a
/// NUL) and returns the number of bytes used. Errors: `E2BIG` (too many or
/// too long, or `out` too small), `EINVAL` (a string contains a NUL).
pub fn pack_argv(args: &[&str], out: &mut [u8]) -> Result<usize, Errno> {
    if args.len() > ARGV_MAX {
        return Err(Errno::E2BIG);
    }
    let mut len = 0;
    for arg in args {
        let bytes = arg.as_bytes();
        if bytes.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let end = len + bytes.len() + 1;
        if end > ARGV_MAX_BYTES || end > out.len() {
            return Err(Errno::E2BIG);
        }
        out[len..end - 1].copy_from_slice(bytes);
        out[end - 1] = 0;
        len = end;
    }
    Ok(len)
}

/// A packed argv, validated ([`PackedArgv::new`]); iterates its strings.
#[derive(Clone, Copy, Debug)]
pub struct PackedArgv<'a> {
    bytes: &'a [u8],
    argc: usize,
}

impl<'a> PackedArgv<'a> {
    /// Checks `bytes` (as copied in from user space by `exec`): at most
    /// [`ARGV_MAX_BYTES`], empty or ending in a NUL, at most [`ARGV_MAX`]
    /// strings, each valid UTF-8. Errors: `E2BIG`, `EINVAL`.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Errno> {
        if bytes.len() > ARGV_MAX_BYTES {
            return Err(Errno::E2BIG);
        }
        if bytes.last().is_some_and(|b| *b != 0) {
            return Err(Errno::EINVAL);
        }
        let argc = bytes.iter().filter(|b| **b == 0).count();
        if argc > ARGV_MAX {
            return Err(Errno::E2BIG);
        }
        let argv = PackedArgv { bytes, argc };
        for arg in argv.raw() {
            core::str::from_utf8(arg).map_err(|_| Errno::EINVAL)?;
        }
        Ok(argv)
    }

    pub fn argc(&self) -> usize {
        self.argc
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn raw(&self) -> impl Iterator<Item = &'a [u8]> {
        let bytes = self.bytes;
        // Every string ends in a NUL, so the piece after the last is empty.
        bytes
            .split(|b| *b == 0)
            .take(bytes.iter().filter(|b| **b == 0).count())
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> {
        self.raw()
            .map(|arg| core::str::from_utf8(arg).expect("checked by new"))
    }
}

/// The initial stack image for a new program ([`build_initial_stack`]):
/// `bytes` go at user address `rsp`, and `rsp` is the new thread's stack
/// pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialStack {
    pub rsp: u64,
    pub len: usize,
}

/// Most bytes [`build_initial_stack`] writes: the argv strings, the pointer
/// array, argc, the two terminators, and alignment.
pub const INITIAL_STACK_MAX: usize = ARGV_MAX_BYTES + 8 * (ARGV_MAX + 3) + 16;

/// Builds, in `out`, the block the module doc describes, to be copied to
/// user address `rsp = stack_top - len` (the returned [`InitialStack`]);
/// `out[..len]` holds it. `stack_top` must be 16-byte aligned and `out` at
/// least [`INITIAL_STACK_MAX`] bytes. Pure: the kernel's exec copies the
/// bytes into the new address space.
pub fn build_initial_stack(
    argv: &PackedArgv<'_>,
    stack_top: u64,
    out: &mut [u8],
) -> Result<InitialStack, Errno> {
    if !stack_top.is_multiple_of(16) || out.len() < INITIAL_STACK_MAX {
        return Err(Errno::EINVAL);
    }
    let strings = argv.bytes();
    let argc = argv.argc();
    // Words: argc, argv[0..argc], NULL, NULL (envp).
    let words = 1 + argc + 2;
    let unpadded = strings.len() + 8 * words;
    let len = unpadded.next_multiple_of(16);
    let rsp = stack_top - len as u64;
    let strings_at = len - strings.len();
    let strings_va = rsp + strings_at as u64;
    out[..len].fill(0);
    out[strings_at..len].copy_from_slice(strings);
    let mut put = |index: usize, value: u64| {
        out[8 * index..8 * index + 8].copy_from_slice(&value.to_le_bytes());
    };
    put(0, argc as u64);
    let mut offset = 0u64;
    for (i, arg) in argv.iter().enumerate() {
        put(1 + i, strings_va + offset);
        offset += arg.len() as u64 + 1;
    }
    // argv[argc] and envp[0] are zero from the fill.
    Ok(InitialStack { rsp, len })
}

// ---- The shared page -------------------------------------------------------

/// `SharedPage::magic`: "pmaplab" and a version byte.
pub const SHARED_PAGE_MAGIC: u64 = u64::from_le_bytes(*b"pmaplab\x01");

/// The contents of the shared page at [`SHARED_PAGE_VA`] (the rest of the
/// page is zero). The kernel fills it once at boot, before the first
/// process, and never changes it, so readers need no lock.
///
/// Timekeeping: `ns = (rdtsc() - tsc_base) * tsc_mult >> tsc_shift` when
/// `tsc_mult != 0` (an invariant TSC the kernel calibrated); otherwise use
/// [`Sys::Clock`]. [`SharedPage::tsc_to_ns`] does the arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SharedPage {
    /// [`SHARED_PAGE_MAGIC`].
    pub magic: u64,
    /// Online CPUs.
    pub ncpus: u32,
    pub tsc_shift: u32,
    /// TSC frequency in Hz (0 if not calibrated).
    pub tsc_hz: u64,
    /// TSC value at the clock's zero (boot).
    pub tsc_base: u64,
    /// Multiplier of the TSC-to-ns conversion (0: use `Sys::Clock`).
    pub tsc_mult: u64,
}

impl SharedPage {
    /// The values for a TSC running at `tsc_hz`, counting from `tsc_base`.
    pub fn new(ncpus: u32, tsc_hz: u64, tsc_base: u64) -> SharedPage {
        // mult / 2^shift ~= 1e9 / tsc_hz. The product delta * mult is taken
        // in u128, so it cannot overflow for any realistic uptime, and a
        // 32-bit fraction keeps the error far below 1 ppm.
        let shift = 32;
        let mult = if tsc_hz == 0 {
            0
        } else {
            ((1_000_000_000u128 << shift) / tsc_hz as u128) as u64
        };
        SharedPage {
            magic: SHARED_PAGE_MAGIC,
            ncpus,
            tsc_shift: shift,
            tsc_hz,
            tsc_base,
            tsc_mult: mult,
        }
    }

    /// Nanoseconds since `tsc_base` at TSC value `tsc`, or `None` if the TSC
    /// is not usable.
    pub fn tsc_to_ns(&self, tsc: u64) -> Option<u64> {
        if self.tsc_mult == 0 {
            return None;
        }
        let delta = tsc.saturating_sub(self.tsc_base) as u128;
        Some(((delta * self.tsc_mult as u128) >> self.tsc_shift) as u64)
    }
}

#[cfg(test)]
mod tests;
