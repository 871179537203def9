//! Loading side of exec: finds an embedded program and checks its ELF
//! image, producing the [`LoadPlan`] that exec maps (segment by segment,
//! with each segment's protection). Nothing here touches page tables; the
//! validation rules are `lab_core::elf`'s (host-tested there).

use core::fmt;

pub use lab_core::elf::{ElfError, LoadPlan};
use lab_core::syscall::Errno;

use super::programs;

/// Why a program cannot be exec'd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// No program of that name is embedded.
    NoSuchProgram,
    /// Its image is not loadable.
    BadImage(ElfError),
}

impl LoadError {
    /// The error `exec` returns for it.
    pub fn errno(&self) -> Errno {
        match self {
            LoadError::NoSuchProgram => Errno::ENOENT,
            LoadError::BadImage(_) => Errno::ENOEXEC,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoSuchProgram => f.write_str("no such program"),
            LoadError::BadImage(e) => write!(f, "bad ELF image: {e}"),
        }
    }
}

/// The load plan of the embedded program `name`; its segments borrow the
/// image in the kernel's read-only data.
pub fn plan(name: &str) -> Result<LoadPlan<'static>, LoadError> {
    let image = programs::find(name).ok_or(LoadError::NoSuchProgram)?;
    lab_core::elf::load_plan(image).map_err(LoadError::BadImage)
}
