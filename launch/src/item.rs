//! The documents of a queue: an [`Item`] (what to run, written once by `add`) and an
//! [`Attempt`] record (what happened to one claim of it, written by the agent holding it).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How many times an item whose lease expired goes back to the queue before it fails (W&B's
/// agent requeues a preempted run at most 5 times, `MAX_RESUME_COUNT`).
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// The version of the item document this crate writes.
pub const ITEM_VERSION: u32 = 1;

/// An item's priority: W&B's four levels, `critical` first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Level 0, served first.
    Critical,
    /// Level 1.
    High,
    /// Level 2 (the default).
    #[default]
    Medium,
    /// Level 3, served last.
    Low,
}

impl Priority {
    /// The level as a digit (0 critical .. 3 low), as in ticket names.
    pub fn digit(self) -> u8 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }

    /// The priority of a digit.
    pub fn from_digit(digit: u8) -> Option<Self> {
        match digit {
            0 => Some(Priority::Critical),
            1 => Some(Priority::High),
            2 => Some(Priority::Medium),
            3 => Some(Priority::Low),
            _ => None,
        }
    }

    /// The name (`critical`, `high`, `medium`, `low`).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Priority {
    type Err = Error;

    /// A name or W&B's number (0 critical .. 3 low).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "0" => Ok(Priority::Critical),
            "high" | "1" => Ok(Priority::High),
            "medium" | "2" => Ok(Priority::Medium),
            "low" | "3" => Ok(Priority::Low),
            other => Err(Error::invalid(
                None,
                "--priority",
                format!("{other:?} is not critical, high, medium, low (or 0..3)"),
            )),
        }
    }
}

/// One job in a queue: W&B's launch spec, reduced to what runs offline. Written once, by `add`,
/// at `items/<id>.json`; never changed afterwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Document version ([`ITEM_VERSION`]).
    pub version: u32,
    /// The item id (12 characters of `[a-z0-9]`).
    pub id: String,
    /// When it was added (RFC 3339, UTC).
    pub created: String,
    /// Its priority.
    pub priority: Priority,
    /// How many times a lease expiry sends it back to the queue before it fails.
    pub max_retries: u32,
    /// The command: program and arguments.
    pub command: Vec<String>,
    /// The folder the job runs in (absolute).
    pub working_dir: PathBuf,
    /// The run config handed to the job (`WANDB_CONFIG`).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// W&B project (`WANDB_PROJECT`).
    #[serde(default)]
    pub project: Option<String>,
    /// W&B entity (`WANDB_ENTITY`).
    #[serde(default)]
    pub entity: Option<String>,
    /// Run name (`WANDB_NAME`).
    #[serde(default)]
    pub name: Option<String>,
    /// The run id the job logs to (`WANDB_RUN_ID`).
    pub run_id: String,
    /// The resource that runs it (`local-process`, `slurm`).
    pub resource: String,
    /// Resource arguments, as W&B's `resource_args`.
    #[serde(default)]
    pub resource_args: serde_json::Map<String, serde_json::Value>,
    /// More variables for the job's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The state of an item (in `list`) or of one attempt (in its record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting in the queue.
    Pending,
    /// Taken by an agent, not started yet.
    Claimed,
    /// Its job runs.
    Running,
    /// Its job exited with 0.
    Finished,
    /// Its job failed, or it could not be run (the reason says which).
    Failed,
    /// Cancelled by `cancel`.
    Cancelled,
    /// (Attempts only.) Given back to the queue unfinished by an agent that was stopped.
    Returned,
    /// (Attempts only.) Its agent stopped renewing the lease; the item went back to the queue.
    Expired,
}

impl State {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Claimed => "claimed",
            State::Running => "running",
            State::Finished => "finished",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Returned => "returned",
            State::Expired => "expired",
        }
    }

    /// The final states of an item (its ticket is in `done/`).
    pub fn from_done_name(name: &str) -> Option<Self> {
        match name {
            "finished" => Some(State::Finished),
            "failed" => Some(State::Failed),
            "cancelled" => Some(State::Cancelled),
            _ => None,
        }
    }

    /// Whether the state is final.
    pub fn is_final(self) -> bool {
        matches!(self, State::Finished | State::Failed | State::Cancelled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened to one claim of an item: `items/<id>.<attempt>.json`, written by the agent
/// holding the claim (and, for an expired lease, once by the agent that returned the item).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The item id.
    pub item: String,
    /// The attempt number (0 for the first claim).
    pub attempt: u32,
    /// Its state.
    pub state: Option<State>,
    /// The agent that claimed it (`host:pid:token`).
    pub agent: String,
    /// When it was claimed (RFC 3339).
    pub claimed_at: Option<String>,
    /// When its job started.
    pub started_at: Option<String>,
    /// When its job ended.
    pub ended_at: Option<String>,
    /// The job's exit code.
    pub exit_code: Option<i32>,
    /// The signal that ended the job.
    pub signal: Option<i32>,
    /// Why it failed (or was returned, or expired).
    pub reason: Option<String>,
    /// The resource's id for the job (process id, SLURM job id).
    pub external_id: Option<String>,
    /// The job's stdout and stderr.
    pub log: Option<PathBuf>,
    /// The run folder(s) the job wrote (found after it ended).
    #[serde(default)]
    pub run_dirs: Vec<PathBuf>,
}
