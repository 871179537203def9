//! Program images: checks an ELF executable and turns it into a [`LoadPlan`].
//!
//! The user programs are static, non-PIE x86-64 executables embedded in the
//! kernel image. `exec` loads one in two steps: [`load_plan`] (here, pure,
//! host-tested) parses the headers with the `elf` crate, validates them and
//! lists what to map; the kernel's exec then maps each segment's pages with
//! its protection, copies the file bytes and leaves the rest zero.
//!
//! What a loadable image must be (anything else is an [`ElfError`] naming
//! what is wrong):
//! - ELF64, little-endian, `EM_X86_64`, `ET_EXEC` (not PIE, not a shared
//!   object); no `PT_INTERP`, `PT_DYNAMIC` or `PT_TLS` (static, no TLS);
//! - 1 to [`MAX_SEGMENTS`] `PT_LOAD` segments with `filesz <= memsz`, file
//!   bytes inside the image, `p_align` a power of two and `vaddr ≡ offset`
//!   modulo the page size, each lying in `IMAGE_BASE..IMAGE_END` of the
//!   user address space (`crate::syscall`), none sharing a page with
//!   another (each page gets one protection), none both writable and
//!   executable;
//! - the entry point inside an executable segment.

use core::fmt;

use elf::abi;
use elf::endian::LittleEndian;
use elf::ElfBytes;

use crate::syscall::{Prot, IMAGE_BASE, IMAGE_END, PAGE_SIZE};

/// Most `PT_LOAD` segments an image may have (ours have 3 or 4).
pub const MAX_SEGMENTS: usize = 8;

/// One segment to map: pages `page_start()..page_end()` with `prot`, the
/// bytes `file` copied to `vaddr`, the rest (up to `vaddr + memsz`) zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub vaddr: u64,
    pub memsz: u64,
    pub file: &'a [u8],
    pub prot: Prot,
}

impl Segment<'_> {
    /// First page-aligned address the segment touches.
    pub fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }

    /// End of its last page (exclusive, page-aligned).
    pub fn page_end(&self) -> u64 {
        (self.vaddr + self.memsz).next_multiple_of(PAGE_SIZE)
    }
}

/// What exec maps: the segments in address order, and where to start.
#[derive(Clone, Copy, Debug)]
pub struct LoadPlan<'a> {
    pub entry: u64,
    segments: [Option<Segment<'a>>; MAX_SEGMENTS],
    count: usize,
}

impl<'a> LoadPlan<'a> {
    pub fn segments(&self) -> impl Iterator<Item = &Segment<'a>> {
        self.segments[..self.count].iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of memory the segments span (whole pages).
    pub fn mapped_bytes(&self) -> u64 {
        self.segments().map(|s| s.page_end() - s.page_start()).sum()
    }
}

/// Why an image cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The `elf` crate could not parse the headers (its message).
    Parse(&'static str),
    NotElf64LittleEndian,
    WrongMachine(u16),
    NotExecutable(u16),
    /// A program header of a type we do not support (`PT_INTERP`, ...).
    Unsupported {
        index: usize,
        p_type: u32,
    },
    NoSegments,
    TooManySegments,
    /// A `PT_LOAD` whose fields are inconsistent; `what` says which rule.
    BadSegment {
        index: usize,
        what: &'static str,
    },
    /// Two segments share a page.
    Overlap {
        first: usize,
        second: usize,
    },
    EntryNotExecutable(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Parse(msg) => write!(f, "not a valid ELF file: {msg}"),
            ElfError::NotElf64LittleEndian => f.write_str("not a little-endian ELF64 file"),
            ElfError::WrongMachine(m) => write!(f, "machine {m} is not x86-64 (62)"),
            ElfError::NotExecutable(t) => {
                write!(f, "type {t} is not ET_EXEC (static non-PIE executable)")
            }
            ElfError::Unsupported { index, p_type } => {
                write!(f, "program header {index} has unsupported type {p_type:#x}")
            }
            ElfError::NoSegments => f.write_str("no PT_LOAD segment"),
            ElfError::TooManySegments => write!(f, "more than {MAX_SEGMENTS} PT_LOAD segments"),
            ElfError::BadSegment { index, what } => write!(f, "program header {index}: {what}"),
            ElfError::Overlap { first, second } => {
                write!(f, "program headers {first} and {second} share a page")
            }
            ElfError::EntryNotExecutable(e) => {
                write!(f, "entry point {e:#x} is not in an executable segment")
            }
        }
    }
}

fn parse_error(err: elf::ParseError) -> ElfError {
    use elf::ParseError as P;
    ElfError::Parse(match err {
        P::BadMagic(_) => "bad magic",
        P::UnsupportedElfClass(_) => "unsupported class",
        P::UnsupportedElfEndianness(_) => "unsupported endianness",
        P::UnsupportedVersion(_) => "unsupported version",
        P::BadOffset(_) => "bad offset",
        P::StringTableMissingNul(_) => "string table without NUL",
        P::BadEntsize(_) => "bad header entry size",
        P::UnexpectedSectionType(_) => "unexpected section type",
        P::UnexpectedSegmentType(_) => "unexpected segment type",
        P::UnexpectedAlignment(_) => "unexpected alignment",
        P::SliceReadError(_) => "headers run past the end of the file",
        P::IntegerOverflow => "integer overflow in the headers",
        P::Utf8Error(_) => "bad UTF-8",
        P::TryFromSliceError(_) => "truncated header",
        P::TryFromIntError(_) => "header field out of range",
        #[allow(unreachable_patterns)]
        _ => "malformed headers",
    })
}

/// Parses and validates `image` (rules in the module doc) and returns what
/// to map. Touches nothing but `image`.
pub fn load_plan(image: &[u8]) -> Result<LoadPlan<'_>, ElfError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(parse_error)?;
    let ehdr = &file.ehdr;
    if ehdr.class != elf::file::Class::ELF64 {
        return Err(ElfError::NotElf64LittleEndian);
    }
    if ehdr.e_machine != abi::EM_X86_64 {
        return Err(ElfError::WrongMachine(ehdr.e_machine));
    }
    if ehdr.e_type != abi::ET_EXEC {
        return Err(ElfError::NotExecutable(ehdr.e_type));
    }
    let phdrs = file.segments().ok_or(ElfError::NoSegments)?;

    let mut plan = LoadPlan {
        entry: ehdr.e_entry,
        segments: [None; MAX_SEGMENTS],
        count: 0,
    };
    let mut indices = [0usize; MAX_SEGMENTS];
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type {
            abi::PT_LOAD => {}
            abi::PT_INTERP | abi::PT_DYNAMIC | abi::PT_TLS | abi::PT_SHLIB => {
                return Err(ElfError::Unsupported {
                    index,
                    p_type: ph.p_type,
                })
            }
            // PT_PHDR, PT_NOTE, PT_GNU_STACK, PT_GNU_RELRO, ...: nothing to map.
            _ => continue,
        }
        let bad = |what| ElfError::BadSegment { index, what };
        if ph.p_memsz == 0 {
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(bad("filesz is larger than memsz"));
        }
        let file_end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or(bad("file range overflows"))?;
        if file_end > image.len() as u64 {
            return Err(bad("file bytes run past the end of the image"));
        }
        if ph.p_align > 1 && !ph.p_align.is_power_of_two() {
            return Err(bad("alignment is not a power of two"));
        }
        if ph.p_vaddr % PAGE_SIZE != ph.p_offset % PAGE_SIZE {
            return Err(bad("vaddr and offset differ modulo the page size"));
        }
        let end = ph
            .p_vaddr
            .checked_add(ph.p_memsz)
            .ok_or(bad("address range overflows"))?;
        if ph.p_vaddr < IMAGE_BASE || end > IMAGE_END {
            return Err(bad("segment outside the user image region"));
        }
        let (r, w, x) = (
            ph.p_flags & abi::PF_R != 0,
            ph.p_flags & abi::PF_W != 0,
            ph.p_flags & abi::PF_X != 0,
        );
        if w && x {
            return Err(bad("segment is both writable and executable"));
        }
        let mut prot = Prot::NONE;
        for (set, bit) in [(r, Prot::READ), (w, Prot::WRITE), (x, Prot::EXEC)] {
            if set {
                prot = prot.union(bit);
            }
        }
        if plan.count == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        plan.segments[plan.count] = Some(Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            file: &image[ph.p_offset as usize..file_end as usize],
            prot,
        });
        indices[plan.count] = index;
        plan.count += 1;
    }
    if plan.count == 0 {
        return Err(ElfError::NoSegments);
    }

    // Address order (insertion sort: at most MAX_SEGMENTS), then no two
    // segments may share a page.
    for i in 1..plan.count {
        let mut j = i;
        while j > 0 && plan.segments[j - 1].unwrap().vaddr > plan.segments[j].unwrap().vaddr {
            plan.segments.swap(j - 1, j);
            indices.swap(j - 1, j);
            j -= 1;
        }
    }
    for i in 1..plan.count {
        let (a, b) = (plan.segments[i - 1].unwrap(), plan.segments[i].unwrap());
        if a.page_end() > b.page_start() {
            return Err(ElfError::Overlap {
                first: indices[i - 1],
                second: indices[i],
            });
        }
    }
    let entry_ok = plan
        .segments()
        .any(|s| s.prot.contains(Prot::EXEC) && (s.vaddr..s.vaddr + s.memsz).contains(&plan.entry));
    if !entry_ok {
        return Err(ElfError::EntryNotExecutable(plan.entry));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program header for [`image`]: (type, flags, offset, vaddr, filesz,
    /// memsz, align).
    type Ph = (u32, u32, u64, u64, u64, u64, u64);

    const TEXT: Ph = (
        abi::PT_LOAD,
        abi::PF_R | abi::PF_X,
        0x1000,
        0x40_1000,
        0x20,
        0x20,
        0x1000,
    );
    const DATA: Ph = (
        abi::PT_LOAD,
        abi::PF_R | abi::PF_W,
        0x1020,
        0x40_2020,
        0x10,
        0x3000,
        0x1000,
    );

    /// A hand-built ELF64 executable of 0x1100 bytes with these program
    /// headers; `patch` edits the header before it is written.
    fn image(phdrs: &[Ph], entry: u64, patch: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut out = vec![0u8; 0x1100];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little-endian
        out[6] = 1; // EV_CURRENT
        let put16 =
            |o: &mut [u8], at: usize, v: u16| o[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |o: &mut [u8], at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |o: &mut [u8], at: usize, v: u64| o[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put16(&mut out, 16, abi::ET_EXEC);
        put16(&mut out, 18, abi::EM_X86_64);
        put32(&mut out, 20, 1);
        put64(&mut out, 24, entry);
        put64(&mut out, 32, 64); // e_phoff
        put16(&mut out, 52, 64); // e_ehsize
        put16(&mut out, 54, 56); // e_phentsize
        put16(&mut out, 56, phdrs.len() as u16);
        for (i, &(ty, flags, off, va, fsz, msz, align)) in phdrs.iter().enumerate() {
            let at = 64 + 56 * i;
            put32(&mut out, at, ty);
            put32(&mut out, at + 4, flags);
            put64(&mut out, at + 8, off);
            put64(&mut out, at + 16, va);
            put64(&mut out, at + 24, va);
            put64(&mut out, at + 32, fsz);
            put64(&mut out, at + 40, msz);
            put64(&mut out, at + 48, align);
        }
        for (i, b) in out[0x1000..].iter_mut().enumerate() {
            *b = i as u8;
        }
        patch(&mut out);
        out
    }

    #[test]
    fn good_image_gives_its_plan() {
        let img = image(&[DATA, TEXT], 0x40_1000, |_| {});
        let plan = load_plan(&img).unwrap();
        assert_eq!(plan.entry, 0x40_1000);
        let segs: Vec<_> = plan.segments().copied().collect();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].vaddr, 0x40_1000);
        assert_eq!(segs[0].prot, Prot::READ.union(Prot::EXEC));
        assert_eq!(segs[0].file, &img[0x1000..0x1020]);
        assert_eq!(segs[1].prot, Prot::RW);
        assert_eq!(segs[1].file.len(), 0x10);
        assert_eq!(
            (segs[1].page_start(), segs[1].page_end()),
            (0x40_2000, 0x40_6000)
        );
        assert_eq!(plan.mapped_bytes(), 0x5000);
    }

    #[test]
    fn bad_images_are_named() {
        let err = |phdrs: &[Ph], entry, patch: fn(&mut [u8])| {
            load_plan(&image(phdrs, entry, patch)).unwrap_err()
        };
        assert_eq!(
            err(&[TEXT], 0x40_1000, |o| o[0] = 0),
            ElfError::Parse("bad magic")
        );
        assert_eq!(
            err(&[TEXT], 0x40_1000, |o| o[18] = 3),
            ElfError::WrongMachine(3)
        );
        assert_eq!(
            err(&[TEXT], 0x40_1000, |o| o[16] = 3),
            ElfError::NotExecutable(3)
        );
        assert_eq!(err(&[], 0x40_1000, |_| {}), ElfError::NoSegments);
        assert_eq!(
            err(
                &[TEXT, (abi::PT_INTERP, 0, 0, 0, 0, 0, 0)],
                0x40_1000,
                |_| {}
            ),
            ElfError::Unsupported {
                index: 1,
                p_type: abi::PT_INTERP
            }
        );
        let mut big = TEXT;
        big.4 = 0x40;
        assert!(matches!(
            err(&[big], 0x40_1000, |_| {}),
            ElfError::BadSegment {
                what: "filesz is larger than memsz",
                ..
            }
        ));
        let mut past = TEXT;
        past.4 = 0x200;
        past.5 = 0x200;
        assert!(matches!(
            err(&[past], 0x40_1000, |_| {}),
            ElfError::BadSegment {
                what: "file bytes run past the end of the image",
                ..
            }
        ));
        let mut low = TEXT;
        low.3 = 0x1000;
        assert!(matches!(
            err(&[low], 0x1000, |_| {}),
            ElfError::BadSegment {
                what: "segment outside the user image region",
                ..
            }
        ));
        let mut kernel = TEXT;
        kernel.3 = 0xffff_8000_0000_1000;
        assert!(matches!(
            err(&[kernel], 0xffff_8000_0000_1000, |_| {}),
            ElfError::BadSegment { .. }
        ));
        let mut wx = TEXT;
        wx.1 |= abi::PF_W;
        assert!(matches!(
            err(&[wx], 0x40_1000, |_| {}),
            ElfError::BadSegment {
                what: "segment is both writable and executable",
                ..
            }
        ));
        let mut skew = TEXT;
        skew.3 += 8;
        assert!(matches!(
            err(&[skew], 0x40_1008, |_| {}),
            ElfError::BadSegment {
                what: "vaddr and offset differ modulo the page size",
                ..
            }
        ));
        let mut odd = TEXT;
        odd.6 = 0x3000;
        assert!(matches!(
            err(&[odd], 0x40_1000, |_| {}),
            ElfError::BadSegment {
                what: "alignment is not a power of two",
                ..
            }
        ));
        let mut shared = DATA;
        shared.3 = 0x40_1020;
        assert_eq!(
            err(&[TEXT, shared], 0x40_1000, |_| {}),
            ElfError::Overlap {
                first: 0,
                second: 1
            }
        );
        assert_eq!(
            err(&[TEXT, DATA], 0x40_2020, |_| {}),
            ElfError::EntryNotExecutable(0x40_2020)
        );
        assert_eq!(
            err(&[TEXT; MAX_SEGMENTS + 1], 0x40_1000, |_| {}),
            ElfError::TooManySegments
        );
        assert!(load_plan(&[]).is_err());
        assert!(load_plan(b"\x7fELF").is_err());
    }

    /// The real programs, when kernel/user has been built (by `cd kernel &&
    /// cargo build`); skipped otherwise so the host tests never need the
    /// guest target.
    #[test]
    fn built_user_programs_load() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/user/x86_64-unknown-none/release"
        );
        let Ok(entries) = std::fs::read_dir(dir) else {
            eprintln!("skipped: {dir} not built");
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some() || !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if !bytes.starts_with(b"\x7fELF") {
                continue;
            }
            let plan = load_plan(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(plan.segments().any(|s| s.prot.contains(Prot::EXEC)));
        }
    }
}
