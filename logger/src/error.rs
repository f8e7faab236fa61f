//! The crate's error type.
//!
//! Errors are cheap to clone (sources are shared), because the writer thread keeps its first
//! failure and hands a copy to every later call on the run. No message ever contains an API
//! key: settings errors come from `wandb-settings`, which never prints one.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use wandb_format::json::JsonError;
use wandb_settings::SettingsError;

use crate::run::FinishSummary;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while logging.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has an invalid value; the message names the setting and where it came from.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// An operating-system error on a file or folder of the run.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done, e.g. "create run directory".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Writing the run's `.wandb` file failed. Everything written before the failure is intact;
    /// the run accepts no more data.
    #[error("writing the run log failed: {source}")]
    Write {
        /// The underlying error.
        #[source]
        source: Arc<wandb_format::Error>,
    },
    /// The run was already finished.
    #[error("run {run_id} is already finished")]
    Finished {
        /// The run's id.
        run_id: String,
    },
    /// The run was created by the parent of this (forked) process; a child never writes to or
    /// finishes its parent's runs, it starts its own.
    #[error("run {run_id} belongs to the parent process; a forked child must start its own run")]
    ForkedChild {
        /// The run's id.
        run_id: String,
    },
    /// The run's writer thread is gone (it panicked); what it wrote before is intact.
    #[error("the writer thread of run {run_id} stopped unexpectedly")]
    WriterGone {
        /// The run's id.
        run_id: String,
    },
    /// A value could not be converted to JSON.
    #[error("{source}")]
    Serialize {
        /// The conversion error.
        #[source]
        source: JsonError,
    },
    /// A row, config or summary update must be an object (a map or a struct).
    #[error("expected an object (a map or a struct), found {found}")]
    NotAnObject {
        /// What was found instead.
        found: &'static str,
    },
    /// `resume="must"`, but the wandb folder holds no earlier fragment of the run.
    #[error(
        "resume=\"must\": run {run_id} has no earlier fragment (offline-run-*-{run_id}/run-{run_id}.wandb) in {}",
        wandb_dir.display()
    )]
    ResumeNotFound {
        /// The run id.
        run_id: String,
        /// The wandb folder searched.
        wandb_dir: PathBuf,
    },
    /// `resume="never"`, but the run already has a fragment in the wandb folder.
    #[error(
        "resume=\"never\": run {run_id} already exists in {}; choose another id or resume it",
        fragment.display()
    )]
    ResumeExists {
        /// The run id.
        run_id: String,
        /// The earlier fragment's `.wandb` file.
        fragment: PathBuf,
    },
    /// The sweep parameters file (`WANDB_SWEEP_PARAM_PATH`) is not what a sweep agent writes.
    #[error(transparent)]
    SweepParams(#[from] crate::sweep::SweepParamsError),
    /// An argument was rejected; the message says which and why.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was invalid, e.g. "metric name".
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source: Arc::new(source),
        }
    }

    pub(crate) fn write(source: wandb_format::Error) -> Error {
        Error::Write {
            source: Arc::new(source),
        }
    }
}

/// The error of a failed [`crate::Run::finish`]: what went wrong, and what was written anyway.
#[derive(Debug, Clone, thiserror::Error)]
#[error("finishing run {}: {error}", summary.run_id)]
pub struct FinishError {
    /// What was written before the failure.
    pub summary: Box<FinishSummary>,
    /// The first error the run met.
    #[source]
    pub error: Error,
}

impl From<FinishError> for Error {
    fn from(error: FinishError) -> Error {
        error.error
    }
}
