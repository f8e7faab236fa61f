//! Serviceless, offline W&B logging for training code.
//!
//! `wandb-logger` writes W&B runs the way the official SDK (0.31) does in offline mode — the
//! same `offline-run-<time>-<id>/run-<id>.wandb` folders and records — without a service
//! process and without the network. Upload them later with our `wandb-sync` or the official
//! `wandb sync`.
//!
//! # Usage
//!
//! ```no_run
//! use wandb_logger::{InitOptions, Metric, SummaryStat, row};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run = wandb_logger::init(
//!     InitOptions::new()
//!         .project("demo")
//!         .config(&[("lr", 0.001)].into_iter().collect::<std::collections::BTreeMap<_, _>>()),
//! )?;
//! run.define_metric(Metric::new("loss").summary(SummaryStat::Min))?;
//! for step in 0..1000 {
//!     let loss = 1.0 / (step as f64 + 1.0);
//!     run.log(row! {"loss" => loss, "epoch" => step / 100})?;
//! }
//! run.summary_set("best_loss", &0.001)?;
//! let summary = run.finish()?;
//! println!("{} rows in {}", summary.rows, summary.run_dir.unwrap_or_default().display());
//! # Ok(())
//! # }
//! ```
//!
//! # Settings
//!
//! Settings come from `wandb-settings`, in W&B's precedence: defaults < system settings file <
//! workspace settings file < `WANDB_*` environment < [`setup`] settings < `init` settings <
//! explicit [`InitOptions`] arguments. Invalid values are errors naming the setting and its
//! source. `mode = "disabled"` makes every call a no-op; `online` runs offline and says so once.
//! The API key and base URL are never written to a record or a log.
//!
//! # Launch
//!
//! A program started by W&B Launch or `wandb-launch` (`WANDB_LAUNCH=True`) finds the launch
//! config in its run's config, as with the SDK: `WANDB_CONFIG` (or the chunks `WANDB_CONFIG_0..n`,
//! or the `WANDB_LAUNCH_CONFIG_PATH` file) is merged over the `config` given to `init`, its keys
//! are locked against later updates, and `WANDB_PROJECT`, `WANDB_ENTITY` and `WANDB_RUN_ID` beat
//! the project, entity and id given to `init`. A launch config that is not a JSON object is a
//! warning ([`LaunchConfigError`]) and the script's config is used.
//!
//! # Sweeps
//!
//! A run started by a sweep agent (`wandb agent`, `wandb-launch sweep`) carries the sweep id
//! (`WANDB_SWEEP_ID`) in its run record, and the parameters of the YAML file
//! `WANDB_SWEEP_PARAM_PATH` names (`{name: {value: v}}`) are merged over the `config` given to
//! `init` and locked, before a launch config (which wins on a key both set), as with the SDK; a
//! missing or malformed file fails `init` ([`SweepParamsError`]), as the SDK's `ConfigError`.
//!
//! # Writing
//!
//! Each run has a writer thread that owns its file; `log` only builds a compact row and queues
//! it (a bounded queue; [`Backpressure`] says what happens when it is full, blocking by
//! default). Data is handed to the operating system at least every second
//! ([`WriterOptions::flush_interval`]), synced every 30 s and at finish, and on demand with
//! [`Run::flush`] and [`Run::sync`]. I/O errors come back from the next call and from
//! [`Run::finish`], never as a panic. Derived summaries are coalesced and written at each
//! flush; the final summary is exact.
//!
//! # Media
//!
//! Images (8-bit grey, RGB or RGBA pixels encoded as PNG, or a PNG or JPEG file), histograms
//! (NumPy's bins for a list of values, or precomputed bins) and tables are written as the
//! official SDK writes them: see [`media`]. [`Run::media`] stores an image or table file under
//! `files/media/` and returns the value to log under its key; a table is also the SDK's
//! `run_table` artifact (its record and staged file), which both syncs upload.
//!
//! # Process events
//!
//! * A forked child gets a fresh [`singleton`] and never writes to or finishes its parent's
//!   runs.
//! * A panic finishes the run with exit code 1 (through [`Run`]'s `Drop`, and a chained panic
//!   hook for runs owned elsewhere).
//! * SIGTERM writes a preempting record, syncs, and then lets the previous disposition act
//!   (see [`SetupOptions::handle_sigterm`], or `WANDB_X_HANDLE_SIGTERM=false`); when that is to
//!   terminate, each run is first finished with exit code 143, so a requeued job can resume it.
//!
//! # Resume
//!
//! [`InitOptions::resume`] (or `WANDB_RESUME`) applies W&B's `allow`, `must`, `never` and
//! `auto` to the run folders on this disk: a run started with the id of an earlier offline run
//! finds that run's fragments in the wandb folder (tolerating damage and a missing exit
//! record), continues at the step after the last one written, with the summary, config and
//! `_runtime` carried over, in a new fragment folder that `wandb-sync` uploads after the
//! earlier ones. `must` without an earlier fragment ([`Error::ResumeNotFound`]) and `never` with
//! one ([`Error::ResumeExists`]) are errors naming the run. [`Run::resumed`] and
//! [`Run::starting_step`] tell what happened. `resume_from` and `fork_from` are not supported.
//! * `std::process::exit` skips destructors: call [`Run::finish`] or [`teardown`] first.

mod console;
mod diag;
mod error;
mod fork;
mod integration;
mod launch;
pub mod media;
mod options;
mod records;
mod registry;
mod resume;
mod run;
mod setup;
mod signals;
mod sweep;
mod system;
mod value;
mod writer;

pub use wandb_format::json;
pub use wandb_format::proto;
pub use wandb_settings::{Env, LoadContext, Overrides, Settings, Source};

pub use crate::error::{Error, FinishError, Result};
pub use crate::launch::{LaunchConfigError, LaunchConfigFound};
pub use crate::options::{
    Alert, AlertLevel, Backpressure, DEFAULT_FLUSH_INTERVAL, DEFAULT_FSYNC_INTERVAL,
    DEFAULT_QUEUE_CAPACITY, Goal, InitOptions, LogOptions, Metric, SavePolicy, SetupOptions,
    SummaryStat, WANDB_X_HANDLE_SIGTERM, WriterOptions,
};
pub use crate::records::PRODUCER;
pub use crate::run::{FinishSummary, OutputStream, Run, RunSink};
pub use crate::setup::{Setup, init, setup, setup_with, singleton, teardown};
pub use crate::sweep::SweepParamsError;
pub use crate::value::{Key, Row, Value};
