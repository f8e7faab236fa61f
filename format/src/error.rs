//! The crate's error type, and the description of damaged spans that readers report.
//!
//! Damage is data, not an error: readers yield it next to the records they recover. It only becomes an
//! [`Error::Corrupt`] when the caller's [`crate::Recovery`] mode says it must.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a `.wandb` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the file it concerned and what we were doing.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done, e.g. "create", "write", "fsync".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with W&B's 7-byte header, so it is not a `.wandb` log at all.
    #[error("{path}: not a .wandb file: header is {found}, expected 3a572642e1be00", path = .path.display(), found = hex(.found))]
    BadHeader {
        /// The file concerned.
        path: PathBuf,
        /// The bytes found where the header should be (up to 7).
        found: Vec<u8>,
    },
    /// Damage that the chosen recovery mode does not tolerate.
    #[error("{path}: {damage}", path = .path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// Where the damage is and what it is.
        damage: Damage,
    },
    /// The path is not a regular file (a directory, FIFO, socket or device), so it was not opened.
    #[error("{path}: not a regular file: it is a {kind}", path = .path.display())]
    NotRegularFile {
        /// The path concerned.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// A previous write or sync failed, so the file's tail is unknown; the writer refuses more data.
    #[error("{path}: writer is unusable after an earlier write error", path = .path.display())]
    Poisoned {
        /// The file concerned.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

/// What a path that is not a regular file is instead (see [`Error::NotRegularFile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else that is not a regular file.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Directory => "directory",
            Self::Fifo => "FIFO (named pipe)",
            Self::Socket => "socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Other => "special file",
        })
    }
}

/// A span of a file that could not be read as records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Absolute file offset where the damage starts.
    pub offset: u64,
    /// Number of bytes skipped.
    pub length: u64,
    /// Why the span was skipped (the first problem found in it).
    pub reason: DamageReason,
}

impl Damage {
    /// The offset just past the damaged span.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "damage at offset {} ({} bytes): {}",
            self.offset, self.length, self.reason
        )
    }
}

/// What was wrong with a damaged span.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageReason {
    /// A chunk's stored checksum does not match its type and payload.
    ChecksumMismatch {
        /// The checksum in the chunk header.
        stored: u32,
        /// The checksum computed from the bytes.
        computed: u32,
    },
    /// A chunk header's type byte is not FULL, FIRST, MIDDLE or LAST.
    BadChunkType {
        /// The type byte found.
        chunk_type: u8,
    },
    /// A chunk's length runs past the end of its block.
    ChunkTooLong {
        /// The payload length in the chunk header.
        length: u16,
    },
    /// The file ends inside a chunk header or payload (typically a write cut short by a crash).
    TruncatedChunk,
    /// The file ends before the LAST chunk of a record that began with a FIRST chunk.
    UnfinishedRecord,
    /// A FULL or FIRST chunk started while a record was still open (its LAST chunk is missing).
    InterruptedRecord,
    /// A MIDDLE or LAST chunk with no FIRST chunk before it.
    OrphanChunk {
        /// The type byte of the chunk.
        chunk_type: u8,
    },
    /// The padding at the end of a block (fewer than 7 bytes) is not all zero.
    NonZeroPadding,
    /// A run of zero bytes where a chunk should start (a preallocated block, or a file system's zero
    /// fill after a crash).
    ZeroedSpan,
    /// The record's bytes are intact but are not a valid protobuf `Record`.
    Undecodable {
        /// The decoder's message.
        message: String,
    },
    /// The file shrank while it was being read (another process truncated or rewrote it); the span
    /// from its new end to its old one is gone.
    FileShrank {
        /// The file's length when reading started (or the longest it was seen).
        from: u64,
        /// Its length when the shrinking was noticed.
        to: u64,
    },
}

impl fmt::Display for DamageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Self::BadChunkType { chunk_type } => write!(f, "invalid chunk type {chunk_type}"),
            Self::ChunkTooLong { length } => {
                write!(f, "chunk length {length} runs past the end of its block")
            }
            Self::TruncatedChunk => f.write_str("file ends inside a chunk"),
            Self::UnfinishedRecord => f.write_str("file ends before the record's LAST chunk"),
            Self::InterruptedRecord => {
                f.write_str("record interrupted by a new record before its LAST chunk")
            }
            Self::OrphanChunk { chunk_type } => {
                write!(
                    f,
                    "chunk of type {chunk_type} without a FIRST chunk before it"
                )
            }
            Self::NonZeroPadding => f.write_str("non-zero bytes in block padding"),
            Self::ZeroedSpan => f.write_str("zeroed bytes where a chunk should start"),
            Self::Undecodable { message } => write!(f, "not a valid Record: {message}"),
            Self::FileShrank { from, to } => {
                write!(f, "file shrank from {from} to {to} bytes while being read")
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    if out.is_empty() {
        out.push_str("empty");
    }
    out
}
