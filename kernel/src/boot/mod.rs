//! Boot: the PVH entry into long mode, and what the loader hands over.
pub mod pvh;
pub mod start_info;
