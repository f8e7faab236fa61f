//! What the controller knows of a sweep's runs: their id, parameters, state and metric.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Goal;

/// A run id (W&B's run `name`, eight characters for runs it makes).
pub type RunId = String;

/// A run's state, with W&B's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Proposed or queued, not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Ended with exit code 0.
    Finished,
    /// Ended with a non-zero exit code.
    Failed,
    /// Stopped reporting without an exit record.
    Crashed,
    /// Stopped by a signal (by `cancel`, or by Hyperband).
    Killed,
    /// Asked to stop for a requeue.
    Preempting,
    /// Stopped for a requeue; it will run again.
    Preempted,
}

impl RunState {
    /// True for the states a run does not leave: finished, failed, crashed, killed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Finished | RunState::Failed | RunState::Crashed | RunState::Killed
        )
    }
}

/// One run of the sweep as the caller sees it now: its parameters (the nested values, as in
/// [`crate::Proposal::params`]), its state and its metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// The run id.
    pub id: RunId,
    /// The run's parameter values, nested as in its config (no `{"value": ...}` wrapping).
    pub params: Map<String, Value>,
    /// The run's state.
    pub state: RunState,
    /// The sweep metric's logged values in history order, non-finite ones left out
    /// (Hyperband counts iterations in this list).
    #[serde(default)]
    pub history: Vec<f64>,
    /// The metric's value in the run's summary, when it has one.
    #[serde(default)]
    pub summary: Option<f64>,
}

impl SweepRun {
    /// The run's best metric value over its history and summary (W&B's `metric_extremum`),
    /// `None` when it has no finite value.
    pub fn best(&self, goal: Goal) -> Option<f64> {
        self.extremum(goal == Goal::Maximize)
    }

    /// The run's worst metric value over its history and summary.
    pub fn worst(&self, goal: Goal) -> Option<f64> {
        self.extremum(goal == Goal::Minimize)
    }

    fn extremum(&self, maximum: bool) -> Option<f64> {
        self.history
            .iter()
            .chain(self.summary.iter())
            .copied()
            .filter(|v| v.is_finite())
            .reduce(|a, b| if (b > a) == maximum { b } else { a })
    }
}
