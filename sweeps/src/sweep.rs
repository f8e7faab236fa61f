//! The state of one sweep, which `wandb-launch` keeps as JSON between calls: its configuration,
//! the proposals issued, the runs with their parameters and state, and the best run.
//!
//! How the launch controller uses it:
//!
//! 1. `Sweep::new(id, config, options)` once (`sweep create`), saved with `serde_json`.
//! 2. Each time it looks for work: load the sweep, build a [`SweepRun`] for every run it started
//!    (state, parameters, the metric's history read from the run's `.wandb` file), call
//!    [`Sweep::next_run`]; for a proposal, enqueue a job whose config is
//!    [`Proposal::wandb_config`] and whose argv is [`crate::command::expand`], then
//!    [`Sweep::attach`] the run id it gave the job; save.
//! 3. While runs are going: [`Sweep::stop_runs`] names the running runs Hyperband stops
//!    (SIGTERM them).
//! 4. `sweep pause | resume | stop | cancel` set [`SweepState`]; `sweep status` shows
//!    [`Sweep::runs`] and [`Sweep::best`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bayes::{self, BayesInfo};
use crate::config::{Method, SweepConfig};
use crate::error::SweepError;
use crate::hyperband;
use crate::run::{RunId, RunState, SweepRun};
use crate::{grid, random};

/// Choices made when the sweep is created, outside W&B's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SweepOptions {
    /// Seed of every random choice (random draws, bayes candidates, the grid's shuffle).
    pub seed: u64,
    /// Walk the grid in a shuffled (seeded) order instead of W&B's.
    pub randomize_grid: bool,
}

/// A sweep's state, with W&B's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepState {
    /// Proposing runs.
    Running,
    /// No new runs until resumed; running runs go on.
    Paused,
    /// No new runs, ever (stopped, grid done, target or run cap reached); running runs go on.
    Finished,
    /// No new runs, and the controller kills the running ones.
    Cancelled,
}

/// One set of parameters the sweep proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its number in the sweep, from 0.
    pub index: u64,
    /// The parameter values, nested as the run's config holds them.
    pub params: Map<String, Value>,
    /// The run started for it, once [`Sweep::attach`]ed.
    pub run_id: Option<RunId>,
    /// What the bayes model predicted for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bayes: Option<BayesInfo>,
}

impl Proposal {
    /// The run config in W&B's form for sweep runs: `{"lr": {"value": 0.01}, ...}` (the form of
    /// W&B's `config-<run>.yaml`; the values themselves are [`Proposal::params`]).
    pub fn wandb_config(&self) -> Map<String, Value> {
        self.params
            .iter()
            .map(|(k, v)| {
                let mut wrapped = Map::new();
                wrapped.insert("value".to_owned(), v.clone());
                (k.clone(), Value::Object(wrapped))
            })
            .collect()
    }
}

/// What the sweep records of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub id: RunId,
    /// The proposal it was started for.
    pub proposal: Option<u64>,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// Its state when last seen.
    pub state: RunState,
    /// Its best metric value when last seen.
    pub metric: Option<f64>,
}

/// The run with the best metric value so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestRun {
    /// The run id.
    pub id: RunId,
    /// Its best metric value.
    pub metric: f64,
    /// Its parameters.
    pub params: Map<String, Value>,
}

/// What `sweep status` shows: the sweep's state, its runs counted by state, the best run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStatus {
    /// The sweep id.
    pub id: String,
    /// Running, paused, finished or cancelled.
    pub state: SweepState,
    /// The search method.
    pub method: Method,
    /// Proposals issued.
    pub n_proposals: u64,
    /// Runs seen, by their last state (W&B's state names).
    pub runs_by_state: std::collections::BTreeMap<String, u64>,
    /// The metric, when the configuration has one.
    pub metric: Option<String>,
    /// The best run so far.
    pub best: Option<BestRun>,
}

/// A sweep: configuration, options, state, proposals and runs. Serialises to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The sweep id.
    pub id: String,
    /// The configuration (serialised as written).
    pub config: SweepConfig,
    /// Creation options.
    pub options: SweepOptions,
    /// Running, paused, finished or cancelled.
    pub state: SweepState,
    /// Every proposal issued, in order.
    pub proposals: Vec<Proposal>,
    /// Every run seen, in the order first seen.
    pub runs: Vec<RunRecord>,
    /// The best run so far (needs a `metric`).
    pub best: Option<BestRun>,
}

impl Sweep {
    /// A new sweep, running, with nothing proposed.
    pub fn new(id: impl Into<String>, config: SweepConfig, options: SweepOptions) -> Sweep {
        Sweep {
            id: id.into(),
            config,
            options,
            state: SweepState::Running,
            proposals: Vec::new(),
            runs: Vec::new(),
            best: None,
        }
    }

    /// Records the runs' states and metrics and updates the best run.
    pub fn observe(&mut self, runs: &[SweepRun]) {
        let goal = self.config.metric.as_ref().map(|m| m.goal);
        for run in runs {
            let metric = goal.and_then(|g| run.best(g));
            let proposal = self
                .proposals
                .iter()
                .find(|p| p.run_id.as_deref() == Some(run.id.as_str()))
                .map(|p| p.index);
            match self.runs.iter_mut().find(|r| r.id == run.id) {
                Some(record) => {
                    record.state = run.state;
                    record.metric = metric;
                    record.params = run.params.clone();
                    record.proposal = record.proposal.or(proposal);
                }
                None => self.runs.push(RunRecord {
                    id: run.id.clone(),
                    proposal,
                    params: run.params.clone(),
                    state: run.state,
                    metric,
                }),
            }
            if let (Some(goal), Some(value)) = (goal, metric) {
                let better = self
                    .best
                    .as_ref()
                    .is_none_or(|b| b.id == run.id || goal.better(value, b.metric));
                if better {
                    self.best = Some(BestRun {
                        id: run.id.clone(),
                        metric: value,
                        params: run.params.clone(),
                    });
                }
            }
        }
    }

    /// The number of runs the sweep counts against `run_cap`: every run seen and every proposal
    /// not yet attached to one.
    pub fn n_runs(&self) -> u64 {
        let unattached = self
            .proposals
            .iter()
            .filter(|p| {
                p.run_id
                    .as_ref()
                    .is_none_or(|id| !self.runs.iter().any(|r| &r.id == id))
            })
            .count();
        (self.runs.len() + unattached) as u64
    }

    /// The next run's parameters, or `None` when the sweep proposes no more now (paused,
    /// finished, cancelled, run cap or metric target reached, grid done). `runs` are all the
    /// sweep's runs as the caller sees them now; they are [`Sweep::observe`]d first.
    pub fn next_run(&mut self, runs: &[SweepRun]) -> Result<Option<Proposal>, SweepError> {
        self.observe(runs);
        if self.state != SweepState::Running {
            return Ok(None);
        }
        if let (Some(metric), Some(best)) = (&self.config.metric, &self.best)
            && metric.reaches_target(best.metric)
        {
            self.state = SweepState::Finished;
            return Ok(None);
        }
        if self.config.run_cap.is_some_and(|cap| self.n_runs() >= cap) {
            self.state = SweepState::Finished;
            return Ok(None);
        }
        let index = self.proposals.len() as u64;
        let pending: Vec<&Map<String, Value>> = self
            .proposals
            .iter()
            .filter(|p| {
                p.run_id
                    .as_ref()
                    .is_none_or(|id| !runs.iter().any(|r| &r.id == id))
            })
            .map(|p| &p.params)
            .collect();
        let (params, bayes_info) = match self.config.method {
            Method::Grid => {
                let mut taken: Vec<&Map<String, Value>> = runs.iter().map(|r| &r.params).collect();
                taken.extend(pending.iter().copied());
                let shuffle = self.options.randomize_grid.then_some(self.options.seed);
                match grid::next(&self.config, &taken, shuffle)? {
                    Some(params) => (params, None),
                    None => {
                        self.state = SweepState::Finished;
                        return Ok(None);
                    }
                }
            }
            Method::Random => (random::next(&self.config, self.options.seed, index)?, None),
            Method::Bayes => {
                let Some(metric) = &self.config.metric else {
                    // The configuration refuses bayes without a metric; fall back to random.
                    return Ok(Some(self.issue(
                        random::next(&self.config, self.options.seed, index)?,
                        None,
                    )));
                };
                let mut rng = random::rng_for(self.options.seed, index);
                let (params, info) = bayes::next(&self.config, metric, runs, &pending, &mut rng)?;
                (params, Some(info))
            }
        };
        Ok(Some(self.issue(params, bayes_info)))
    }

    fn issue(&mut self, params: Map<String, Value>, bayes: Option<BayesInfo>) -> Proposal {
        let proposal = Proposal {
            index: self.proposals.len() as u64,
            params,
            run_id: None,
            bayes,
        };
        self.proposals.push(proposal.clone());
        proposal
    }

    /// Binds proposal `index` to the run started for it.
    pub fn attach(&mut self, index: u64, run_id: impl Into<RunId>) -> Result<(), SweepError> {
        let sweep = self.id.clone();
        let proposal = self
            .proposals
            .iter_mut()
            .find(|p| p.index == index)
            .ok_or(SweepError::NoSuchProposal { sweep, index })?;
        proposal.run_id = Some(run_id.into());
        Ok(())
    }

    /// The running runs to stop now: Hyperband's decision when `early_terminate` is set, and
    /// every running run when the sweep is cancelled.
    pub fn stop_runs(&self, runs: &[SweepRun]) -> Vec<RunId> {
        if self.state == SweepState::Cancelled {
            return runs
                .iter()
                .filter(|r| matches!(r.state, RunState::Running | RunState::Pending))
                .map(|r| r.id.clone())
                .collect();
        }
        match (&self.config.early_terminate, &self.config.metric) {
            (Some(hb), Some(metric)) => hyperband::decide(hb, metric.goal, runs).stop,
            _ => Vec::new(),
        }
    }

    /// The sweep's status as last observed, for `sweep status` (and `--json`).
    pub fn status(&self) -> SweepStatus {
        let mut runs_by_state = std::collections::BTreeMap::new();
        for run in &self.runs {
            let name = serde_json::to_value(run.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *runs_by_state.entry(name).or_insert(0) += 1;
        }
        SweepStatus {
            id: self.id.clone(),
            state: self.state,
            method: self.config.method,
            n_proposals: self.proposals.len() as u64,
            runs_by_state,
            metric: self.config.metric.as_ref().map(|m| m.name.clone()),
            best: self.best.clone(),
        }
    }

    /// `sweep pause`.
    pub fn pause(&mut self) {
        if self.state == SweepState::Running {
            self.state = SweepState::Paused;
        }
    }

    /// `sweep resume`.
    pub fn resume(&mut self) {
        if self.state == SweepState::Paused {
            self.state = SweepState::Running;
        }
    }

    /// `sweep stop`: no new runs; running runs finish.
    pub fn stop(&mut self) {
        if self.state != SweepState::Cancelled {
            self.state = SweepState::Finished;
        }
    }

    /// `sweep cancel`: no new runs, and [`Sweep::stop_runs`] names every running run.
    pub fn cancel(&mut self) {
        self.state = SweepState::Cancelled;
    }
}
