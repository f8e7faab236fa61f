//! The crate's error type: every variant names the file, member or offset it is about.

use std::io;
use std::path::PathBuf;

/// Errors of packing, reading and unpacking archives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`open`, `read`, `rename`, ...).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The seek table is missing or inconsistent.
    #[error("seek table at offset {offset}: {reason}")]
    SeekTable {
        /// Archive offset of the faulty field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A frame could not be read or decompressed.
    #[error("frame {frame} at offset {offset}: {reason}")]
    Frame {
        /// Frame number.
        frame: usize,
        /// Archive offset of the frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The index member is missing or malformed.
    #[error("index: {reason}")]
    Index {
        /// What is wrong.
        reason: String,
    },
    /// A tar member is malformed or refused.
    #[error("member {member:?} at tar offset {offset}: {reason}")]
    Member {
        /// The member's name (as far as it could be read).
        member: String,
        /// Offset of its header in the decompressed tar stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The input resolver found nothing usable, or an input could not be packed.
    #[error("{path}: {reason}")]
    Input {
        /// The input.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// What `pack` wrote did not read back as it was written.
    #[error("{path}: verification of the written archive failed: {reason}")]
    Verify {
        /// The temporary archive.
        path: PathBuf,
        /// What differed.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
