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

use elf::abi::PT_LOAD;
use elf::endian::AnyEndian;
use elf::ElfBytes;

use crate::common::{kernel, repo};

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
