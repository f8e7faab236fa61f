//! `wandb-sync`: parallel, resumable, exactly-once upload of offline W&B run folders.
//!
//! It reads `.wandb` transaction logs written by the official SDK (or by our logger) and speaks
//! the protocol the official `wandb sync` speaks: `UpsertBucket` with the W&B config form,
//! file_stream for history, summary, system metrics and console lines, `CreateRunFiles` and
//! PUTs for the run's files, then the final `complete`/`exitcode`.
//!
//! What it adds:
//!
//! * **Exactly once.** A ledger next to each `.wandb` file records what the server
//!   acknowledged; an interrupted sync resumes and every history line lands at its offset once.
//!   `.synced` is written only when everything was acknowledged.
//! * **Parallel.** Runs sync in parallel; fragments of the same run in start-time order.
//! * **Robust.** Damaged files upload everything valid; a saved file is uploaded only if the
//!   run's author could read it anyway (see `files.rs`), never with the API key in it; two
//!   processes never sync the same file at once; retries follow W&B's rules and every request
//!   is bounded by the run's time budget.
//!
//! ```no_run
//! use wandb_sync::{SyncOptions, sync_paths};
//!
//! let opts = SyncOptions::new(vec!["wandb/".into()], "http://127.0.0.1:8080", None);
//! let report = sync_paths(&opts)?;
//! assert_eq!(report.exit_code(), 0);
//! # Ok::<(), wandb_sync::Error>(())
//! ```

mod api;
mod artifacts;
mod cli;
mod console;
mod discover;
mod error;
mod fastrec;
mod files;
mod http;
mod jsonbuild;
mod ledger;
mod lock;
mod metadata;
mod options;
mod pace;
mod process;
mod report;
mod runconfig;
mod runsync;
mod source;
mod sweep;
mod sync;
mod yaml;

pub use crate::cli::{
    Cli, REQUESTS_CA_BUNDLE, WANDB_SYNC_NO_PROGRESS, WANDB_SYNC_TEST_FAST_RETRY, run,
};
pub use crate::error::{Error, Result};
pub use crate::http::RetryPolicy;
pub use crate::options::{MAX_JOBS, NoProgress, Observer, PlannedRun, SyncOptions, default_jobs};
pub use crate::report::{
    ArtifactReport, DamageReport, RefusedFile, Report, RunReport, RunResult, Totals,
};
pub use crate::sync::sync_paths;
