//! The kernel image does not depend on where the checkout is.
//!
//! A panic's location names its source file, by absolute path for every
//! crate but the one being built, and the user programs' symbol names
//! carry hashes of such paths; both sat in the image's loaded bytes, so a
//! checkout at another path moved the kernel's statics and with them the
//! cache lines the memory-system model sees shared (one tree's modeled
//! shootdown time 11.5 M cycles in one directory and 14.7 M in another,
//! scoreboard-padded on shoot-storm, tcg-model). The build maps the
//! checkout's and cargo's directories to fixed names and strips the user
//! programs (harness/src/kernel_build.rs, kernel/build.rs).
//!
//! Those two checks look for the causes found so far; a third cause (cargo
//! hashing lab-core's absolute path into the user programs' crate hashes,
//! which reorder their generic functions: kernel/Cargo.toml) passed both
//! and failed CI's exact gate on a clone elsewhere. So the last test builds
//! the kernel in a copy of the checkout and compares the loaded bytes.

use elf::abi::PT_LOAD;
use elf::endian::AnyEndian;
use elf::ElfBytes;

use harness::{kernel_build, variants, workspace::Workspace};

use crate::common::{kernel, repo, workspace};

/// The bytes of `image`'s loaded segments, as the guest's memory holds them.
fn loaded(image: &[u8]) -> Vec<u8> {
    let file = ElfBytes::<AnyEndian>::minimal_parse(image).unwrap();
    let mut bytes = Vec::new();
    for p in file
        .segments()
        .unwrap()
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
    {
        let start = p.p_offset as usize;
        bytes.extend_from_slice(&image[start..start + p.p_filesz as usize]);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_image_names_no_directory_of_this_machine() {
    let image = std::fs::read(&kernel().path).unwrap();
    let bytes = loaded(&image);
    let root = repo().canonicalize().unwrap();
    let mut dirs = vec![root.display().to_string()];
    if let Some(home) = harness::kernel_build::cargo_home() {
        dirs.push(home.display().to_string());
    }
    for dir in &dirs {
        assert!(
            !contains(&bytes, dir.as_bytes()),
            "the kernel's loaded bytes name {dir}"
        );
    }
    // The embedded user programs: whole ELF files, with no symbol table.
    let mut programs = 0;
    for at in (0..bytes.len().saturating_sub(4)).filter(|&i| &bytes[i..i + 4] == b"\x7fELF") {
        let Ok(file) = ElfBytes::<AnyEndian>::minimal_parse(&bytes[at..]) else {
            continue;
        };
        let Ok((Some(headers), Some(names))) = file.section_headers_with_strtab() else {
            continue;
        };
        programs += 1;
        for h in headers.iter() {
            let name = names.get(h.sh_name as usize).unwrap_or("");
            assert_ne!(
                name, ".symtab",
                "user program at image byte {at} keeps its symbols"
            );
        }
    }
    assert!(programs >= 5, "found {programs} embedded user programs");
}

/// The first byte at which `a` and `b` differ, if they do (or the shorter
/// one's length when one is a prefix of the other).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[test]
fn a_checkout_elsewhere_loads_the_same_bytes() {
    // The kernel's sources as git lists them (no target/; a file deleted
    // but not yet staged is skipped), in a directory whose path has
    // another length than this checkout's.
    let copy = tempfile::Builder::new()
        .prefix("pmaplab-elsewhere-")
        .tempdir()
        .unwrap();
    // rust-toolchain.toml too: the same compiler builds both.
    let listed = duct::cmd!("git", "ls-files", "-z", "kernel", "rust-toolchain.toml")
        .dir(repo())
        .read()
        .unwrap();
    let mut files = 0;
    for path in listed.split('\0').filter(|p| repo().join(p).is_file()) {
        let to = copy.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(path), &to).unwrap();
        files += 1;
    }
    assert!(files > 50, "git lists {files} files under kernel/");
    std::fs::create_dir(copy.path().join("variants")).unwrap();

    let variant = variants::load(&workspace(), "fixed").unwrap();
    let elsewhere = Workspace::at(copy.path()).unwrap();
    let there = kernel_build::build(&elsewhere, &variant, kernel_build::Output::OnFailure).unwrap();
    let here = loaded(&std::fs::read(&kernel().path).unwrap());
    let there = loaded(&std::fs::read(&there.path).unwrap());
    assert_eq!(
        first_difference(&here, &there),
        None,
        "the fixed kernel built in {} differs from this checkout's in its loaded bytes \
         ({} and {} bytes; offset shown)",
        copy.path().display(),
        here.len(),
        there.len()
    );
}

#[test]
fn first_difference_finds_a_change_and_a_length() {
    assert_eq!(first_difference(b"abc", b"abc"), None);
    assert_eq!(first_difference(b"abc", b"abd"), Some(2));
    assert_eq!(first_difference(b"ab", b"abc"), Some(2));
}
