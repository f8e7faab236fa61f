//! The errors of `wandb-launch sweep ...`: each names the sweep, the file or the field it is
//! about, and keeps its source.

use std::path::PathBuf;

/// A `Result` with the sweep [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong creating, driving or changing a sweep.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A sweep configuration that W&B's rules refuse (the message names file, line and key).
    #[error("{0}")]
    Config(#[from] wandb_sweeps::ConfigError),
    /// The sweep core refused an operation (a command macro without its input, say).
    #[error("sweep {sweep}: {source}")]
    Sweep {
        /// The sweep id.
        sweep: String,
        /// The core's error.
        #[source]
        source: wandb_sweeps::SweepError,
    },
    /// A queue operation failed (it names the item or the path).
    #[error(transparent)]
    Launch(#[from] crate::error::Error),
    /// An I/O error on a path.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A sweep state file that is not valid JSON or not a sweep.
    #[error("sweep {sweep}: {path}: not a valid sweep state: {source}", path = .path.display())]
    StateJson {
        /// The sweep id.
        sweep: String,
        /// The state file.
        path: PathBuf,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// No sweep with this id under the queues searched.
    #[error("no sweep {sweep} in {searched}")]
    NoSuchSweep {
        /// The id asked for.
        sweep: String,
        /// Where it was looked for (a queue folder, or every queue of a queue root).
        searched: String,
    },
    /// Another process held the sweep's lock for too long.
    #[error("sweep {sweep}: {path} is held by another process (remove it if that process is gone)", path = .path.display())]
    Locked {
        /// The sweep id.
        sweep: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A value on the command line that is not valid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The option.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// An [`Error::Sweep`] for sweep `sweep`.
    pub fn sweep(sweep: &str, source: wandb_sweeps::SweepError) -> Self {
        Error::Sweep {
            sweep: sweep.to_owned(),
            source,
        }
    }
}
