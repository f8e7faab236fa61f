//! The runner abstraction: a [`Resource`] starts a [`PreparedJob`] and hands back a
//! [`RunningJob`] that the agent follows until it ends.
//!
//! # Contract (for every resource, `local-process` and `slurm` alike)
//!
//! - [`Resource::start`] returns as soon as the job is started (or submitted): it never waits
//!   for the job to end. The job's stdout and stderr go to [`PreparedJob::log_path`] (created
//!   or appended to).
//! - The job's environment is the agent's own environment less the names in
//!   [`PreparedJob::env_remove`] (stale `WANDB_CONFIG_<n>` chunks the agent may have inherited),
//!   plus [`PreparedJob::env`] (which holds every `WANDB_*` variable of W&B Launch, see
//!   `env.rs`); variables in `env` win. A resource that submits through a command (`sbatch`
//!   exports its own environment) applies both to that command.
//! - [`RunningJob::poll`] never blocks for long (a `squeue` call is fine): `Ok(None)` while the
//!   job runs (or is queued, or was requeued by the scheduler and will run again), `Ok(Some(_))`
//!   once it has ended for good, and `Err(_)` when its state could not be read this time (the
//!   agent logs it and polls again on its next tick; it does not fail the item for that).
//!   After `Some`, `poll` is not called again.
//! - [`RunningJob::terminate`] asks the job to stop (SIGTERM to its process group, `scancel
//!   --signal=TERM`, ...) and returns at once; `grace` is how long the agent will keep polling
//!   before it calls [`RunningJob::kill`]. A resource may pass `grace` on to its scheduler.
//! - [`RunningJob::kill`] stops the job for good (SIGKILL to its process group, `scancel`).
//!   Both are harmless on a job that has already ended.
//! - [`RunningJob::external_id`] is the scheduler's id for the job (a SLURM job id), or the
//!   process id for a local process: the agent records it in the item's attempt record.
//!
//! # Registry
//!
//! [`resource_for`] maps a resource name (as in W&B's `resource` field) to its runner:
//! `local-process` ([`crate::local::LocalProcess`]) and `slurm` (the `slurm` module; until
//! it is compiled in, `slurm` is refused with [`Error::UnknownResource`]). To add a resource,
//! add its module to `lib.rs`, one arm to [`resource_for`] and, if it checks its
//! `resource_args` at `add` time, one arm to [`validate_resource_args`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The resource names [`resource_for`] knows, in the order `--help` lists them.
pub const RESOURCE_NAMES: &[&str] = &["local-process", "slurm"];

/// Everything a resource needs to start one attempt of one item.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PreparedJob {
    /// The item's id (for messages, and as the job's name where a scheduler takes one).
    pub item_id: String,
    /// Which attempt of the item this is (0 for the first).
    pub attempt: u32,
    /// The command: program then arguments (never empty).
    pub argv: Vec<String>,
    /// The folder the job runs in (absolute).
    pub working_dir: PathBuf,
    /// Variables set for the job on top of the agent's environment: the `WANDB_*` launch
    /// variables (see `env.rs`) and the item's own.
    pub env: Vec<(String, String)>,
    /// Variables of the agent's environment the job must not inherit (removed before `env`
    /// is applied).
    pub env_remove: Vec<String>,
    /// Where the job's stdout and stderr go (one file, beside the item in the queue). Empty for
    /// `wandb-launch run` without a queue: the job then writes to the caller's stdout and
    /// stderr where the resource can do that (local-process), or to the resource's default.
    pub log_path: PathBuf,
    /// The item's `resource_args` (W&B's name), e.g. `{"partition": "gpu", "time": "01:00:00"}`
    /// for SLURM. Keys and values as the user gave them.
    pub resource_args: serde_json::Map<String, serde_json::Value>,
    /// The W&B run id the job will log to.
    pub run_id: String,
}

impl PreparedJob {
    /// A job running `argv` in `working_dir`, with no extra environment and no resource args.
    pub fn new(
        item_id: impl Into<String>,
        argv: Vec<String>,
        working_dir: impl Into<PathBuf>,
        log_path: impl Into<PathBuf>,
    ) -> Self {
        PreparedJob {
            item_id: item_id.into(),
            attempt: 0,
            argv,
            working_dir: working_dir.into(),
            env: Vec::new(),
            env_remove: Vec::new(),
            log_path: log_path.into(),
            resource_args: serde_json::Map::new(),
            run_id: String::new(),
        }
    }

    /// The same job with these variables added to its environment.
    #[must_use]
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// The same job with these resource args.
    #[must_use]
    pub fn with_resource_args(
        mut self,
        resource_args: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.resource_args = resource_args;
        self
    }

    /// The same job for this run id and attempt.
    #[must_use]
    pub fn with_run(mut self, run_id: impl Into<String>, attempt: u32) -> Self {
        self.run_id = run_id.into();
        self.attempt = attempt;
        self
    }
}

/// How a job ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobOutcome {
    /// The exit code, when the job exited by itself (for SLURM, the first number of
    /// `sacct`'s `ExitCode`).
    pub exit_code: Option<i32>,
    /// The signal that ended the job, if one did.
    pub signal: Option<i32>,
    /// Why the job failed when that is not told by its exit code alone, e.g. SLURM's
    /// `TIMEOUT`, `NODE_FAIL`, `OUT_OF_MEMORY`, or "cancelled".
    pub failure: Option<String>,
}

impl JobOutcome {
    /// An outcome with an exit code.
    pub fn exited(code: i32) -> Self {
        JobOutcome {
            exit_code: Some(code),
            ..JobOutcome::default()
        }
    }

    /// An outcome ended by a signal.
    pub fn signaled(signal: i32) -> Self {
        JobOutcome {
            signal: Some(signal),
            ..JobOutcome::default()
        }
    }

    /// An outcome that failed for `reason` (with an exit code if one is known).
    pub fn failed(exit_code: Option<i32>, reason: impl Into<String>) -> Self {
        JobOutcome {
            exit_code,
            signal: None,
            failure: Some(reason.into()),
        }
    }

    /// Whether the job succeeded: exit code 0, no signal, no failure.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && self.failure.is_none()
    }

    /// The exit status a shell would report: the exit code, or 128 + the signal, or 1.
    pub fn shell_status(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(code), _) if self.failure.is_none() || code != 0 => code,
            (_, Some(signal)) => 128 + signal,
            _ => 1,
        }
    }
}

/// A runner: starts jobs somewhere (local processes, a SLURM cluster).
pub trait Resource: Send + Sync {
    /// The resource's name, as items name it (`local-process`, `slurm`).
    fn name(&self) -> &'static str;

    /// Starts (or submits) the job and returns at once; see the module docs for the contract.
    fn start(&self, job: &PreparedJob) -> Result<Box<dyn RunningJob>>;
}

/// A job started by a [`Resource`].
pub trait RunningJob: Send {
    /// `Ok(None)` while the job runs, `Ok(Some(outcome))` once it has ended, `Err` when its
    /// state could not be read this time.
    fn poll(&mut self) -> Result<Option<JobOutcome>>;

    /// Asks the job to stop (SIGTERM or the scheduler's equivalent) and returns at once; the
    /// agent calls [`RunningJob::kill`] if the job is still running `grace` later.
    fn terminate(&mut self, grace: Duration) -> Result<()>;

    /// Stops the job for good (SIGKILL or the scheduler's equivalent).
    fn kill(&mut self) -> Result<()>;

    /// The scheduler's id for the job (a SLURM job id) or the local process id.
    fn external_id(&self) -> Option<String>;
}

/// The resources this build can run (those [`resource_for`] accepts).
pub fn available_resources() -> Vec<&'static str> {
    RESOURCE_NAMES
        .iter()
        .copied()
        .filter(|name| resource_for(name, &ResourceOptions::default(), None).is_ok())
        .collect()
}

/// Settings a resource may use (the same for every job of one agent).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResourceOptions {
    /// How often the agent polls its jobs; a resource that asks a scheduler may cache
    /// answers for this long.
    pub poll_interval: Duration,
    /// The `wandb-launch` binary, which `local-process` runs as `job-wrapper` around queued
    /// jobs (see `wrapper.rs`). Default: this process's executable when it is `wandb-launch`.
    pub job_wrapper: Option<PathBuf>,
}

impl Default for ResourceOptions {
    fn default() -> Self {
        ResourceOptions {
            poll_interval: Duration::from_secs(10),
            job_wrapper: default_job_wrapper(),
        }
    }
}

/// This process's executable if it is the `wandb-launch` binary.
pub fn default_job_wrapper() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "wandb-launch").then_some(exe)
}

/// The runner for resource `name` (`item` names the item asking, for the error message).
pub fn resource_for(
    name: &str,
    options: &ResourceOptions,
    item: Option<&str>,
) -> Result<Box<dyn Resource>> {
    match name {
        "local-process" => Ok(Box::new(crate::local::LocalProcess::new(
            options.job_wrapper.clone(),
        ))),
        "slurm" => Ok(Box::new(crate::slurm::Slurm::default())),
        _ => Err(Error::UnknownResource {
            name: name.to_owned(),
            item: item.map(str::to_owned),
        }),
    }
}

/// Checks an item's resource and its `resource_args` when it is added (so that a typo fails
/// at `add`, not hours later on the agent). Unknown resources are refused here too.
pub fn validate_resource_args(
    name: &str,
    resource_args: &serde_json::Map<String, serde_json::Value>,
    item: Option<&str>,
) -> Result<()> {
    let _ = resource_args;
    match name {
        "local-process" => Ok(()),
        "slurm" => crate::slurm::sbatch_options(resource_args, item).map(|_| ()),
        _ => Err(Error::UnknownResource {
            name: name.to_owned(),
            item: item.map(str::to_owned),
        }),
    }
}
