//! exec: replacing a process's program, and building a program's address
//! space (also for the run's first process).
//!
//! The new address space is built completely (ELF segments as private
//! copies, the stack with the initial block of lab_core::syscall, the
//! shared-page region) before the old one is touched, so a failed exec has
//! no effect. Exec is refused while other threads are live; the ones that
//! have begun to exit are waited for until they are off every CPU. Then the
//! old one is taken down while still loaded here (FreeBSD's
//! exec_new_vmspace: pmap_remove_pages and the per-region removes on a pmap
//! active on this CPU only), the new one is loaded, and the old pmap's last
//! reference dropped.

use core::sync::atomic::Ordering;

use lab_core::syscall::{
    build_initial_stack, Errno, PackedArgv, Prot, ARGV_MAX_BYTES, INITIAL_STACK_MAX, PAGE_SIZE,
    PROGRAM_NAME_MAX, SHARED_PAGE_VA, USER_STACK_SIZE, USER_STACK_TOP,
};

use super::elf;
use super::process;
use super::sched;
use super::thread;
use super::vm::{Kind, Region, Teardown, Vm};
use crate::arch::trap::TrapFrame;
use crate::mm::pmap::Pmap;
use crate::stats::{self, Event};

/// The address space of program `name` started with `argv`, and its entry
/// point and initial stack pointer. Loaded nowhere; freed on failure.
pub fn build_image(name: &str, argv: &PackedArgv<'_>) -> Result<(Vm, u64, u64), Errno> {
    let plan = elf::plan(name).map_err(|e| e.errno())?;
    if !crate::mm::heap::room() {
        return Err(Errno::ENOMEM);
    }
    let mut vm = Vm::new()?;
    let build = |vm: &mut Vm| -> Result<u64, Errno> {
        for seg in plan.segments() {
            vm.add_region(Region {
                start: seg.page_start(),
                end: seg.page_end(),
                prot: seg.prot,
                kind: Kind::Image,
            })?;
            vm.load_bytes(seg.vaddr, seg.file)?;
        }
        vm.add_region(Region {
            start: USER_STACK_TOP - USER_STACK_SIZE,
            end: USER_STACK_TOP,
            prot: Prot::RW,
            kind: Kind::Stack,
        })?;
        let mut block = [0u8; INITIAL_STACK_MAX];
        let stack = build_initial_stack(argv, USER_STACK_TOP, &mut block)?;
        vm.load_bytes(stack.rsp, &block[..stack.len])?;
        vm.add_region(Region {
            start: SHARED_PAGE_VA,
            end: SHARED_PAGE_VA + PAGE_SIZE,
            prot: Prot::READ,
            kind: Kind::Shared,
        })?;
        Ok(stack.rsp)
    };
    match build(&mut vm) {
        Ok(rsp) => Ok((vm, plan.entry, rsp)),
        Err(e) => {
            vm.discard();
            Err(e)
        }
    }
}

/// `exec(name, name_len, argv, argv_len)`: on success the calling thread
/// returns to user mode at the new program's entry with the registers of
/// its initial state (written into `frame`).
pub fn sys_exec(
    frame: &mut TrapFrame,
    name_ptr: u64,
    name_len: u64,
    argv_ptr: u64,
    argv_len: u64,
) -> Result<u64, Errno> {
    if name_len > PROGRAM_NAME_MAX as u64 {
        return Err(Errno::ENOENT);
    }
    if argv_len > ARGV_MAX_BYTES as u64 {
        return Err(Errno::E2BIG);
    }
    let p = process::current();
    let mut name = [0u8; PROGRAM_NAME_MAX];
    let mut packed = [0u8; ARGV_MAX_BYTES];
    let name = &mut name[..name_len as usize];
    let packed = &mut packed[..argv_len as usize];
    {
        let mut vm = p.vm.lock();
        let vm = vm.as_mut().ok_or(Errno::EFAULT)?;
        vm.copyin(name_ptr, name)?;
        vm.copyin(argv_ptr, packed)?;
    }
    let name = core::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
    let argv = PackedArgv::new(packed)?;
    if p.live.load(Ordering::Acquire) > 1 {
        return Err(Errno::EINVAL);
    }
    // Threads that have begun to exit may still run on other CPUs, on the
    // old tables and in their LOADED slot; wait until they are off every
    // CPU, as exit's last thread does, before the old pmap can be freed
    // (else their CPUs deactivate a freed, maybe reused, pmap).
    super::exit::wait_others_dead(p);
    let (new, entry, rsp) = build_image(name, &argv)?;

    // Past the point of no return.
    let new_pmap: *const Pmap = &*new.pmap;
    let old =
        p.vm.lock()
            .replace(new)
            .expect("exec without an address space");
    let old_pmap = old.teardown(Teardown::Exec);
    p.pmap_ptr.store(new_pmap.cast_mut(), Ordering::Release);
    sched::load_pmap(new_pmap);
    crate::mm::lazy_tlb::evict(&old_pmap);
    drop(old_pmap);
    p.set_name(name);
    *frame = thread::user_frame(entry, rsp, 0);
    stats::count(Event::ProcExecs);
    Ok(0)
}
