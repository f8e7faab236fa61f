//! Reader and writer for W&B's `.wandb` transaction log, byte-compatible with the official SDK.
//!
//! A `.wandb` file is a LevelDB-style log of protobuf `Record` messages:
//!
//! | what | layout |
//! |---|---|
//! | file header | 7 bytes: `:W&B`, magic `0xBEE1` (little-endian), version `0` |
//! | blocks | 32 KiB, aligned to absolute offsets; block 0 includes the header |
//! | chunk | checksum u32 LE, length u16 LE, type u8 (FULL 1, FIRST 2, MIDDLE 3, LAST 4), payload |
//! | checksum | plain CRC-32/IEEE of the type byte followed by the payload |
//! | padding | a block tail of fewer than 7 bytes is zero-filled |
//!
//! `format/FORMAT.md` in the repository has the full specification, the recovery rules and where this
//! crate is stricter than W&B's own readers.
//!
//! # Writing
//!
//! ```
//! use wandb_format::{Durability, LogFile, Recovery, Writer, proto};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("run-abc.wandb");
//! let mut writer = Writer::create(&path)?;
//! let record = proto::Record { num: 1, ..Default::default() };
//! let offset = writer.append_record(&record)?;
//! assert_eq!(offset, 7);
//! writer.persist(Durability::SyncData)?;
//!
//! let file = LogFile::open(&path)?;
//! let n_records = file.records(Recovery::default()).count();
//! assert_eq!(n_records, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Reading damaged files
//!
//! Readers yield records and, separately, [`Damage`]: the offset, length and reason of each span they
//! could not read. A [`Recovery`] mode says which damage is acceptable; [`Error`] is reserved for I/O
//! failures, files that are not `.wandb` logs at all, and damage the mode rejects.

pub mod artifact;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod inputs;
pub mod json;
pub mod outside;
pub mod proto;
pub mod pyrepr;
pub mod time;
pub mod wire;

mod error;
mod framing;
mod gofloat;
mod mmap;
mod reader;
mod scan;
mod view;
mod writeback;
mod writer;

pub use crate::error::{Damage, DamageReason, Error, FileKind, Result};
pub use crate::framing::{
    BLOCK_SIZE, CHUNK_HEADER_LEN, ChunkType, FILE_HEADER, FILE_HEADER_LEN, MAX_CHUNK_PAYLOAD,
    chunk_checksum,
};
pub use crate::reader::{
    Entry, Follower, LogFile, RawRecords, Records, check_regular_file, decode,
};
pub use crate::scan::{RawRecord, Recovery, ScanItem, Scanner};
pub use crate::view::{
    Change, Changes, HistoryView, ItemView, Items, KeyPath, RecordView, TypedValue, UpdatesView,
    ViewError,
};
pub use crate::writer::{AppendRecovery, Durability, Framer, Writer, frame_all};
