//! Names for the guest physical addresses the memory-system model reports
//! (`model.<profile>.hot.<r>.paddr`, `--accel tcg-model`): which kernel
//! symbol holds a cache line, and where in it.
//!
//! The PVH loader copies each PT_LOAD segment of the kernel ELF to its
//! physical address (kernel/linker.ld): `.boot` at 1 MiB, linked there,
//! the rest linked at `KERNEL_VMA` (0xffff_ffff_8000_0000) + physical. A
//! physical address inside a segment is turned into the segment's virtual
//! address and looked up in the ELF's symbol table; one outside every
//! segment is memory the frame allocator hands out (heap, page frames,
//! page tables), which no symbol names.
//!
//! Rust names are demangled with the `rustc-demangle` crate (the hash and
//! LLVM's `.llvm.<n>` suffix dropped). The model's doorbell
//! ([`crate::model::doorbell`]) is found here too.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};

/// Where `KERNEL_VMA` puts the kernel (kernel/src/memlayout.rs).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// What the table says of a line outside the image.
pub const OUTSIDE: &str = "not in the kernel image (heap or frame)";

/// One data or code symbol: its virtual address, size and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

/// A loaded segment: physical start, size in memory, virtual start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub memsz: u64,
    pub vaddr: u64,
}

/// Where a physical address is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Inside `name`, `offset` bytes from its start (`size` bytes long).
    Symbol {
        vaddr: u64,
        name: String,
        offset: u64,
        size: u64,
    },
    /// Inside the image but in no sized symbol (padding, a linker-made
    /// area); `after` is the nearest symbol below, if any, and the offset
    /// from it.
    Image {
        vaddr: u64,
        after: Option<(String, u64)>,
    },
    /// Outside every loaded segment: heap, page frames, page tables.
    Outside,
}

impl Place {
    /// `kernel::mm::shootdown::SLOT+0x40`, or [`OUTSIDE`].
    pub fn label(&self) -> String {
        match self {
            Place::Symbol { name, offset, .. } => format!("{name}+{offset:#x}"),
            Place::Image {
                after: Some((name, off)),
                ..
            } => format!("{name}+{off:#x} (past its end)"),
            Place::Image { vaddr, after: None } => format!("in the image at {vaddr:#x}"),
            Place::Outside => OUTSIDE.to_string(),
        }
    }

    /// The symbol's last two path components (`ipi::MAILBOXES+0x840`),
    /// or a short word, for tight labels.
    pub fn short(&self) -> String {
        let tail = |name: &str| {
            let parts: Vec<&str> = name.rsplitn(3, "::").take(2).collect();
            parts.into_iter().rev().collect::<Vec<_>>().join("::")
        };
        match self {
            Place::Symbol { name, offset, .. } => format!("{}+{offset:#x}", tail(name)),
            Place::Image {
                after: Some((name, off)),
                ..
            } => format!("past {}+{off:#x}", tail(name)),
            Place::Image { .. } => "in the image".into(),
            Place::Outside => "heap or frame".into(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// The kernel image's segments and symbols, sorted by address.
#[derive(Clone, Debug, Default)]
pub struct Symbolizer {
    segments: Vec<Segment>,
    symbols: Vec<Symbol>,
}

impl Symbolizer {
    /// From a segment list and a symbol list (any order; names demangled
    /// here).
    pub fn new(segments: Vec<Segment>, symbols: Vec<Symbol>) -> Symbolizer {
        let mut symbols: Vec<Symbol> = symbols
            .into_iter()
            .map(|s| Symbol {
                name: demangle(&s.name),
                ..s
            })
            .collect();
        // By address; at one address the larger first, so a sized symbol
        // wins over a label at its start.
        symbols.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)));
        Symbolizer { segments, symbols }
    }

    /// Reads the kernel ELF at `path`: its PT_LOAD segments and its
    /// function and object symbols.
    pub fn from_elf(path: &Path) -> Result<Symbolizer> {
        use elf::abi::{PT_LOAD, STT_FUNC, STT_OBJECT};
        use elf::endian::AnyEndian;
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = elf::ElfBytes::<AnyEndian>::minimal_parse(&data)
            .with_context(|| format!("{} is not an ELF file", path.display()))?;
        let segments = file
            .segments()
            .with_context(|| format!("{} has no program headers", path.display()))?
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
            .map(|p| Segment {
                paddr: p.p_paddr,
                memsz: p.p_memsz,
                vaddr: p.p_vaddr,
            })
            .collect();
        let (table, names) = file
            .symbol_table()
            .with_context(|| format!("cannot read the symbol table of {}", path.display()))?
            .with_context(|| format!("{} has no symbol table", path.display()))?;
        let symbols = table
            .iter()
            .filter(|s| matches!(s.st_symtype(), STT_OBJECT | STT_FUNC) && s.st_value != 0)
            .filter_map(|s| {
                let name = names.get(s.st_name as usize).ok()?;
                Some(Symbol {
                    addr: s.st_value,
                    size: s.st_size,
                    name: name.to_string(),
                })
            })
            .collect();
        Ok(Symbolizer::new(segments, symbols))
    }

    /// The virtual address the image gives physical `paddr`, if it is in
    /// a loaded segment.
    pub fn vaddr_of(&self, paddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| paddr >= s.paddr && paddr - s.paddr < s.memsz)
            .map(|s| s.vaddr + (paddr - s.paddr))
    }

    /// Where physical `paddr` is.
    pub fn place(&self, paddr: u64) -> Place {
        let Some(vaddr) = self.vaddr_of(paddr) else {
            return Place::Outside;
        };
        // The last symbol starting at or below vaddr; among those that
        // start below, the innermost one that holds it.
        let upto = self.symbols.partition_point(|s| s.addr <= vaddr);
        let below = &self.symbols[..upto];
        if let Some(s) = below
            .iter()
            .rev()
            .take(64)
            .find(|s| s.size > 0 && vaddr - s.addr < s.size)
        {
            return Place::Symbol {
                vaddr,
                name: s.name.clone(),
                offset: vaddr - s.addr,
                size: s.size,
            };
        }
        Place::Image {
            vaddr,
            after: below.last().map(|s| (s.name.clone(), vaddr - s.addr)),
        }
    }

    /// Where the 64-byte line at physical `paddr` is: its first byte's
    /// place, or, if that is in no symbol, the first symbol that starts
    /// inside the line (a small static that shares a line with padding).
    pub fn place_line(&self, paddr: u64) -> Place {
        let first = self.place(paddr);
        if !matches!(first, Place::Image { .. }) {
            return first;
        }
        for off in 1..64 {
            let p = self.place(paddr + off);
            if matches!(p, Place::Symbol { offset: 0, .. }) {
                return p;
            }
        }
        first
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }
}

/// A Rust mangled name in source form without its hash
/// (`kernel::mm::SLOT`), by the `rustc-demangle` crate; a `.<n>` suffix
/// (a part LLVM split off a static) is kept, `.llvm.<n>` dropped; anything
/// that is not a Rust name is returned unchanged.
pub fn demangle(mangled: &str) -> String {
    let (name, suffix) = match mangled.find("E.") {
        Some(i) if mangled.starts_with("_ZN") => mangled.split_at(i + 1),
        _ => (mangled, ""),
    };
    let kept: String = suffix
        .split('.')
        .skip(1)
        .take_while(|p| *p != "llvm")
        .filter(|p| !p.is_empty())
        .map(|p| format!(".{p}"))
        .collect();
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}{kept}"),
        Err(_) => mangled.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_the_legacy_scheme() {
        assert_eq!(
            demangle("_ZN6kernel2mm9shootdown11global_slot4SLOT17h93de3ade6e1022eaE.llvm.3148599881213440569"),
            "kernel::mm::shootdown::global_slot::SLOT"
        );
        assert_eq!(
            demangle("_ZN6kernel2mm13FREE_AT_START17h1fb43af9e4ceab40E.0.llvm.66"),
            "kernel::mm::FREE_AT_START.0"
        );
        assert_eq!(
            demangle(
                "_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE"
            ),
            "core::ptr::drop_in_place<alloc::string::String>"
        );
        assert_eq!(
            demangle(
                "_ZN50_$LT$T$u20$as$u20$core..convert..Into$LT$U$GT$$GT$4into17h0123456789abcdefE"
            ),
            "<T as core::convert::Into<U>>::into"
        );
        assert_eq!(demangle("pvh_start32"), "pvh_start32");
        assert_eq!(demangle("_ZN3bad"), "_ZN3bad");
    }

    /// TEST FIXTURE (made up): a `.boot` segment identity-linked at 1 MiB
    /// and a data segment linked at KERNEL_VMA + 2 MiB.
    fn synthetic() -> Symbolizer {
        let data = KERNEL_VMA + 0x20_0000;
        Symbolizer::new(
            vec![
                Segment {
                    paddr: 0x10_0000,
                    memsz: 0x1000,
                    vaddr: 0x10_0000,
                },
                Segment {
                    paddr: 0x20_0000,
                    memsz: 0x1000,
                    vaddr: data,
                },
            ],
            vec![
                Symbol {
                    addr: 0x10_0000,
                    size: 0x100,
                    name: "boot_tables".into(),
                },
                Symbol {
                    addr: data,
                    size: 0x200,
                    name: "_ZN6kernel2mm9shootdown7SENT_AT17he8c741f63486cdc8E".into(),
                },
                Symbol {
                    addr: data + 0x220,
                    size: 8,
                    name: "_ZN6kernel3FOO17h0000000000000000E".into(),
                },
            ],
        )
    }

    #[test]
    fn places_lines_in_symbols_or_outside() {
        let s = synthetic();
        assert_eq!(
            s.place(0x20_0040),
            Place::Symbol {
                vaddr: KERNEL_VMA + 0x20_0040,
                name: "kernel::mm::shootdown::SENT_AT".into(),
                offset: 0x40,
                size: 0x200,
            }
        );
        assert_eq!(
            s.place(0x20_0040).label(),
            "kernel::mm::shootdown::SENT_AT+0x40"
        );
        assert_eq!(s.place(0x20_0040).short(), "shootdown::SENT_AT+0x40");
        // .boot is linked at its physical address.
        assert_eq!(s.place(0x10_0080).label(), "boot_tables+0x80");
        // Past SENT_AT's end, before FOO: in the image, in no symbol; its
        // line holds FOO, which starts inside it.
        assert!(matches!(s.place(0x20_0200), Place::Image { .. }));
        assert_eq!(s.place_line(0x20_0200).label(), "kernel::FOO+0x0");
        assert_eq!(
            s.place(0x20_0f00).label(),
            "kernel::FOO+0xce0 (past its end)"
        );
        // Frames and heap are outside every segment.
        assert_eq!(s.place(0x90_0000), Place::Outside);
        assert_eq!(s.place(0x90_0000).label(), OUTSIDE);
        assert_eq!(s.place(0x20_1000), Place::Outside);
    }

    #[test]
    fn reads_a_built_kernel_if_there_is_one() {
        // The fixed kernel a matrix or run built, if this checkout has one.
        let Ok(ws) = crate::workspace::Workspace::locate() else {
            return;
        };
        let dir = ws.cache_dir().join("kernels");
        let Some(elf) = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("fixed-"))
                    && p.extension().is_some_and(|x| x == "elf")
            })
        }) else {
            return;
        };
        let s = Symbolizer::from_elf(&elf).unwrap();
        // The doorbell symbol, found the model's way, is placed back in
        // itself from its physical address.
        let doorbell = crate::model::doorbell(&elf).unwrap();
        let place = s.place(doorbell - KERNEL_VMA);
        assert!(
            matches!(&place, Place::Symbol { offset: 0, .. }),
            "{place:?}"
        );
        assert_eq!(s.vaddr_of(doorbell - KERNEL_VMA), Some(doorbell));
        // 64 MiB is page-frame memory, far past the image.
        assert_eq!(s.place(64 << 20), Place::Outside);
    }
}
