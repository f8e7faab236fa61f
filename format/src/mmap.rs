//! Memory-mapping a file for reading (one of the few modules allowed `unsafe`).
//!
//! Mapping avoids copying a whole record file into memory before scanning it. The risk is the usual
//! one for maps: if another process truncates the file while it is mapped, touching the lost pages
//! raises SIGBUS. Callers therefore map only files they treat as complete; files still being written
//! are read with ordinary reads (see `reader.rs`, `Follower`).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// Bytes of a file, mapped or (for empty files and in-memory data) owned.
#[derive(Debug)]
pub(crate) enum Mapping {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Mapping {
    /// Maps `file` read-only. An empty file gets an empty buffer (mapping zero bytes is an error).
    pub(crate) fn map(file: &File) -> io::Result<Self> {
        if file.metadata()?.len() == 0 {
            return Ok(Mapping::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and private to this process. Its contents can change only if
        // another process modifies the file, which the public API documents as a precondition
        // (`LogFile::open`: the file must be complete and not truncated while mapped).
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Mapping::Mapped(map))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Mapping::Mapped(map) => map,
            Mapping::Owned(bytes) => bytes,
        }
    }
}
