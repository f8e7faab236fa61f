//! The crate's one error type: every variant names what it concerns (the item id, the path, the
//! field), and keeps its source error.

use std::io;
use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wandb-launch`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path.
    #[error("{path}: {action}: {source}", path = .path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What was being done, e.g. "create queue folder".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An item document that is not valid JSON or not an item (malformed, truncated).
    #[error("item {item}: {path}: not a valid item document: {source}", path = .path.display())]
    ItemJson {
        /// The item id.
        item: String,
        /// The item document.
        path: PathBuf,
        /// The parse error (line and column inside).
        #[source]
        source: serde_json::Error,
    },
    /// An item whose document is missing (its ticket is in the queue, its `items/<id>.json` is not).
    #[error("item {item}: its document {path} is missing", path = .path.display())]
    ItemMissing {
        /// The item id.
        item: String,
        /// Where the document should be.
        path: PathBuf,
    },
    /// No item with this id in the queue.
    #[error("queue {queue}: no item {item}")]
    NoSuchItem {
        /// The queue searched.
        queue: String,
        /// The id asked for.
        item: String,
    },
    /// An item that is not in a state that allows the operation.
    #[error("item {item}: cannot {action}: it is {state}")]
    WrongState {
        /// The item id.
        item: String,
        /// The operation, e.g. "requeue".
        action: &'static str,
        /// Its current state.
        state: String,
    },
    /// A resource name that no runner implements.
    #[error("{}unknown resource {name:?} (this build runs: {known})", item_prefix(.item), known = crate::resource::available_resources().join(", "))]
    UnknownResource {
        /// The name asked for.
        name: String,
        /// The item that asked for it, if any.
        item: Option<String>,
    },
    /// A job without a command (no `-- COMMAND` and no entry point).
    #[error("item {item}: the job has no command (give `-- COMMAND...` or --entry-point)")]
    MissingCommand {
        /// The item id.
        item: String,
    },
    /// A value given on the command line or in an item that is not valid.
    #[error("{}{field}: {reason}", item_prefix(.item))]
    Invalid {
        /// The item concerned, if any.
        item: Option<String>,
        /// The option or field, e.g. `--config` or `priority`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A config file that cannot be parsed.
    #[error("{path}: {reason}", path = .path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The job's program could not be started.
    #[error("item {item}: cannot start {program:?}: {source}")]
    Spawn {
        /// The item id.
        item: String,
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A resource (runner) failed to start or follow a job, e.g. `sbatch` refused it.
    #[error("item {item}: {resource}: {reason}")]
    Resource {
        /// The resource, e.g. `slurm`.
        resource: String,
        /// The item id.
        item: String,
        /// What the resource reported (the command and its stderr, say).
        reason: String,
    },
}

/// `"item X: "` when there is an item, nothing otherwise.
fn item_prefix(item: &Option<String>) -> String {
    item.as_ref()
        .map(|id| format!("item {id}: "))
        .unwrap_or_default()
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(
        item: Option<&str>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            item: item.map(str::to_owned),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
