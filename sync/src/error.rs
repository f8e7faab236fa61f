//! The crate's error type.
//!
//! [`Error`] covers what stops a whole sync (bad usage, missing credentials) and what stops one
//! run (an I/O failure on its files, a permanent server refusal, an exhausted retry budget).
//! Run-level errors never stop the other runs: [`crate::sync_paths`] records them in the
//! [`crate::Report`]. No variant ever carries the API key: HTTP errors are built from the status,
//! a redacted URL and the server's message only.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while syncing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or argument of the command line is unusable (exit code 2).
    #[error("{option}: {problem}")]
    Usage {
        /// The option or argument, e.g. `--jobs` or `PATH`.
        option: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The working directory, where settings files are looked up, cannot be read.
    #[error("cannot read the working directory: {source}")]
    WorkingDir {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Paths given on the command line that do not exist, or patterns that are invalid or match
    /// nothing (one line per problem; exit code 2).
    #[error("{}", lines(.0))]
    Inputs(Vec<wandb_format::inputs::InputError>),
    /// No API key was found for the server.
    #[error(
        "no api key for {base_url}: set WANDB_API_KEY or add a `machine {host}` entry to your netrc file"
    )]
    NoApiKey {
        /// The server.
        base_url: String,
        /// The `host[:port]` looked up in netrc.
        host: String,
    },
    /// The settings (files, `WANDB_*` variables, `--base-url`) are invalid; the message names
    /// the setting, its value and where it came from.
    #[error("{}", settings_message(.source))]
    Settings {
        /// The settings error.
        #[source]
        source: wandb_settings::SettingsError,
    },
    /// The API key could not be looked up (unreadable netrc, identity-token file).
    #[error(transparent)]
    ApiKey(#[from] wandb_settings::ApiKeyError),
    /// The API key holds characters an HTTP header cannot carry (the key is not shown).
    #[error("the api key contains characters not allowed in an HTTP header")]
    ApiKeyNotAHeader,
    /// An operating-system I/O error, with the file it concerned and what we were doing.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done, e.g. "read", "write ledger".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The `.wandb` file could not be read at all (bad header, I/O).
    #[error(transparent)]
    Format(#[from] wandb_format::Error),
    /// A run's `.wandb` member could not be read out of its archive (not a `.wandb` log, or
    /// damage the recovery mode rejects); the archive error names the member and offset.
    #[error("{}{source}", archive_prefix(.archive.as_deref()))]
    Archive {
        /// The archive, once known.
        archive: Option<PathBuf>,
        /// What went wrong, with the member and its offset.
        #[source]
        source: wandb_archive::Error,
    },
    /// The file holds no `run` record, so there is nothing to sync it to.
    #[error("{path}: no run record found", path = .path.display())]
    NoRunRecord {
        /// The `.wandb` file.
        path: PathBuf,
    },
    /// The ledger next to a `.wandb` file is unreadable or does not match the file.
    #[error("{path}: {problem}", path = .path.display())]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The server refused a request for good (a status W&B does not retry, or GraphQL errors).
    #[error("{what}: server refused the request: {detail}")]
    Permanent {
        /// The request, e.g. "UpsertBucket" or "PUT config.yaml".
        what: String,
        /// Status and server message.
        detail: String,
    },
    /// A request kept failing until its retry limit or the run's time budget ran out.
    #[error("{what}: gave up after {attempts} attempt(s) in {elapsed:.1?}: {last}")]
    RetriesExhausted {
        /// The request.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// The run's time budget (`--timeout`) ran out while a request was being tried.
    #[error(
        "{what}: the run's time budget (--timeout) ran out after {attempts} attempt(s) in {elapsed:.1?}: {last}"
    )]
    BudgetExhausted {
        /// The request.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent on this request.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// The server could not be reached at all (connection refused, DNS, TLS certificate).
    #[error("{what}: cannot reach {host}: {cause}")]
    Unreachable {
        /// The request.
        what: String,
        /// `host[:port]` of the server.
        host: String,
        /// The client's error (no credentials, no query string).
        cause: String,
    },
    /// The server's reply could not be understood.
    #[error("{what}: unexpected reply: {detail}")]
    BadReply {
        /// The request.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client could not be built (bad CA bundle, TLS setup).
    #[error("http client{}: {source}", ca_bundle_note(.ca_bundle.as_deref()))]
    Client {
        /// The extra CA bundle being loaded, if that is what failed.
        ca_bundle: Option<PathBuf>,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The run's overall time budget ran out.
    #[error("time budget of {0:?} for this run ran out")]
    Timeout(Duration),
    /// The server asked the run to stop (the UI's Stop button).
    #[error("the server asked this run to stop")]
    Stopped,
    /// Something that cannot happen did: a worker thread ended or panicked, a thread could not
    /// be started, a body could not be built.
    #[error("internal error: {what}: {detail}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// What went wrong.
        detail: String,
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

    /// The same error, naming `archive` if it is about one of its members.
    pub(crate) fn in_archive(self, archive: &std::path::Path) -> Self {
        match self {
            Error::Archive { source, .. } => Error::Archive {
                archive: Some(archive.to_path_buf()),
                source,
            },
            other => other,
        }
    }

    /// Whether this error is the user's to fix before anything can run (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Usage { .. }
                | Error::WorkingDir { .. }
                | Error::Inputs(_)
                | Error::NoApiKey { .. }
                | Error::Settings { .. }
                | Error::ApiKey(_)
                | Error::ApiKeyNotAHeader
        )
    }
}

/// A settings error as the CLI shows it: the setting given as `init` argument is `--base-url`.
fn settings_message(error: &wandb_settings::SettingsError) -> String {
    error
        .to_string()
        .replace("from init argument", "from --base-url")
}

impl From<wandb_archive::Error> for Error {
    fn from(source: wandb_archive::Error) -> Self {
        Error::Archive {
            archive: None,
            source,
        }
    }
}

/// `<archive>: `, or nothing.
fn archive_prefix(archive: Option<&std::path::Path>) -> String {
    archive
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// ` (CA bundle <path>)`, or nothing.
fn ca_bundle_note(path: Option<&std::path::Path>) -> String {
    path.map(|p| format!(" (CA bundle {})", p.display()))
        .unwrap_or_default()
}

/// One problem per line.
fn lines(problems: &[wandb_format::inputs::InputError]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
