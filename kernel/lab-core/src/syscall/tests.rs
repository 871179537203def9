//! The syscall ABI's unit tests: numbers, errno and wait-status encodings,
//! report fields, argv packing, the initial stack, user ranges, the shared
//! page's clock.

use super::*;
use crate::report::Scope;

#[test]
fn sys_numbers_roundtrip_and_are_dense() {
    for (i, s) in Sys::ALL.iter().enumerate() {
        assert_eq!(*s as u64, i as u64);
        assert_eq!(Sys::from_number(i as u64), Some(*s));
    }
    assert_eq!(Sys::from_number(Sys::ALL.len() as u64), None);
    assert_eq!(Sys::from_number(u64::MAX), None);
}

#[test]
fn errno_roundtrip() {
    for e in Errno::ALL {
        assert_eq!(Errno::from_code(e.code()), Some(e));
        assert_eq!(decode_result(encode_result(Err(e))), Err(e));
        assert!(e.code() > 0 && e.code() <= MAX_ERRNO);
    }
    assert_eq!(Errno::from_code(0), None);
    assert_eq!(decode_result(0), Ok(0));
    assert_eq!(decode_result(0x40_0000), Ok(0x40_0000));
    // Kernel addresses are results, not errors.
    assert_eq!(
        decode_result(0xffff_8000_0000_0000),
        Ok(0xffff_8000_0000_0000)
    );
    assert_eq!(decode_result(-4095i64 as u64), Err(Errno::EINVAL));
    assert_eq!(decode_result(-4096i64 as u64), Ok(-4096i64 as u64));
    assert_eq!(Errno::EFAULT.to_string(), "EFAULT");
}

#[test]
fn wait_status_roundtrip() {
    let cases = [
        WaitStatus::Exited(0),
        WaitStatus::Exited(42),
        WaitStatus::Exited(-1),
        WaitStatus::Exited(i32::MAX),
        WaitStatus::Killed(KillReason::PageFault),
        WaitStatus::Killed(KillReason::OutOfMemory),
    ];
    for c in cases {
        assert_eq!(WaitStatus::decode(c.encode()), Some(c));
    }
    assert_eq!(WaitStatus::Exited(-1).encode(), 0xffff_ffff);
    assert_eq!(WaitStatus::decode(1 << 32), None);
    assert_eq!(WaitStatus::decode(1 << 40), None);
    assert_eq!(
        WaitStatus::Killed(KillReason::PageFault).to_string(),
        "killed (page-fault)"
    );
}

#[test]
fn scope_roundtrip() {
    for s in [
        Scope::Global,
        Scope::Cpu(0),
        Scope::Cpu(15),
        Scope::Pair { from: 3, to: 0 },
        Scope::Pair {
            from: 0xffff,
            to: 0xffff,
        },
    ] {
        assert_eq!(decode_scope(encode_scope(s).unwrap()), Some(s));
    }
    assert_eq!(encode_scope(Scope::Cpu(0x1_0000)), None);
    assert_eq!(decode_scope(1), None);
    assert_eq!(decode_scope(3 << 62), None);
    assert_eq!(decode_scope(SCOPE_CPU | 0x1_0000), None);
}

#[test]
fn report_field_rules() {
    assert!(valid_report_name(b"forkexit.loops"));
    assert!(valid_report_name(b"mmap-storm.ops_total"));
    assert!(!valid_report_name(b""));
    assert!(!valid_report_name(b"Loops"));
    assert!(!valid_report_name(b"a b"));
    assert!(!valid_report_name(&[b'a'; 65]));
    assert!(valid_report_unit(b"ns"));
    assert!(valid_report_unit(b"ops/s"));
    assert!(!valid_report_unit(b"n s"));
    assert!(valid_report_msg(b"child 3 exited with status 1"));
    assert!(!valid_report_msg(b"two\nlines"));
    assert!(!valid_report_msg(&[0xff]));
}

#[test]
fn argv_pack_and_read_back() {
    let mut buf = [0u8; 64];
    let n = pack_argv(&["cc", "src/vm.c", "12345"], &mut buf).unwrap();
    assert_eq!(&buf[..n], b"cc\0src/vm.c\x0012345\0");
    let argv = PackedArgv::new(&buf[..n]).unwrap();
    assert_eq!(argv.argc(), 3);
    let mut it = argv.iter();
    assert_eq!(it.next(), Some("cc"));
    assert_eq!(it.next(), Some("src/vm.c"));
    assert_eq!(it.next(), Some("12345"));
    assert_eq!(it.next(), None);
    drop(it);
    // Empty strings are strings.
    let mut buf = [0u8; 64];
    let n = pack_argv(&["", "x"], &mut buf).unwrap();
    assert_eq!(PackedArgv::new(&buf[..n]).unwrap().argc(), 2);
    assert_eq!(PackedArgv::new(&[]).unwrap().argc(), 0);
}

#[test]
fn argv_rejects_bad_input() {
    let mut buf = [0u8; 8];
    assert_eq!(pack_argv(&["toolong"; 2], &mut buf), Err(Errno::E2BIG));
    assert_eq!(pack_argv(&["a\0b"], &mut buf), Err(Errno::EINVAL));
    let mut big = [0u8; 4096];
    assert_eq!(pack_argv(&["a"; ARGV_MAX + 1], &mut big), Err(Errno::E2BIG));
    let long = [b'x'; ARGV_MAX_BYTES];
    let long = core::str::from_utf8(&long).unwrap();
    assert_eq!(pack_argv(&[long], &mut big), Err(Errno::E2BIG));
    assert_eq!(PackedArgv::new(b"no-nul").unwrap_err(), Errno::EINVAL);
    assert_eq!(PackedArgv::new(b"\xff\0").unwrap_err(), Errno::EINVAL);
    assert_eq!(
        PackedArgv::new(&[0u8; ARGV_MAX + 1]).unwrap_err(),
        Errno::E2BIG
    );
}

#[test]
fn initial_stack_layout() {
    let mut packed = [0u8; 64];
    let n = pack_argv(&["usertest", "child", "x"], &mut packed).unwrap();
    let argv = PackedArgv::new(&packed[..n]).unwrap();
    let mut out = [0u8; INITIAL_STACK_MAX];
    let top = USER_STACK_TOP;
    let st = build_initial_stack(&argv, top, &mut out).unwrap();
    assert_eq!(st.rsp % 16, 0);
    assert_eq!(st.rsp + st.len as u64, top);
    let img = &out[..st.len];
    let word = |i: usize| u64::from_le_bytes(img[8 * i..8 * i + 8].try_into().unwrap());
    assert_eq!(word(0), 3);
    let expect = ["usertest", "child", "x"];
    for (i, want) in expect.iter().enumerate() {
        let ptr = word(1 + i);
        assert!(ptr >= st.rsp && ptr < top);
        let off = (ptr - st.rsp) as usize;
        let s = &img[off..off + want.len()];
        assert_eq!(s, want.as_bytes());
        assert_eq!(img[off + want.len()], 0);
    }
    assert_eq!(word(4), 0, "argv terminator");
    assert_eq!(word(5), 0, "envp terminator");
    // Empty argv still gives argc=0 and the terminators.
    let empty = PackedArgv::new(&[]).unwrap();
    let st = build_initial_stack(&empty, top, &mut out).unwrap();
    assert_eq!(st.len, 32);
    assert_eq!(&out[..24], &[0u8; 24]);
    assert_eq!(
        build_initial_stack(&empty, top - 8, &mut out),
        Err(Errno::EINVAL)
    );
}

#[test]
fn user_ranges() {
    assert!(user_range_ok(0, USER_END));
    assert!(!user_range_ok(1, USER_END));
    assert!(!user_range_ok(u64::MAX, 2));
    assert!(user_range_ok(SHARED_PAGE_VA, PAGE_SIZE));
    assert!(!user_range_ok(0xffff_8000_0000_0000, 8));
}

#[test]
fn shared_page_clock() {
    let page = SharedPage::new(4, 2_000_000_000, 1000);
    assert_eq!(page.tsc_to_ns(1000), Some(0));
    assert_eq!(page.tsc_to_ns(1000 + 2_000_000_000), Some(1_000_000_000));
    let ns = page.tsc_to_ns(1000 + 3 * 2_000_000_000 * 3600).unwrap();
    // Within 1 ppm over an hour.
    assert!(ns.abs_diff(3 * 3600 * 1_000_000_000) < 3600 * 1000 * 3);
    assert_eq!(SharedPage::new(1, 0, 0).tsc_to_ns(5), None);
    assert_eq!(&SHARED_PAGE_MAGIC.to_le_bytes()[..7], b"pmaplab");
}
