//! The crate's error type: what can stop `wandb-inspect` from reading an input at all.
//!
//! Damage inside a readable `.wandb` file is not an error; it is data that the commands report
//! (see `damage.rs`). Errors are for inputs that cannot be found or read, and for usage mistakes.

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an input could not be read, or a command could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a file or folder.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done, e.g. "read folder".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An error from the format crate (opening or following a file).
    #[error(transparent)]
    Format(#[from] wandb_format::Error),
    /// A chart could not be drawn or written.
    #[error("{path}: drawing the chart: {message}", path = .path.display())]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
}
