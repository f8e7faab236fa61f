//! Hyperband early termination, as W&B's `hyperband_stopping.py` decides it.
//!
//! Brackets are iteration counts: with `max_iter` and `s`, `max_iter / eta^k` for `k = 1..=s`
//! while at least 1 (truncated, sorted); with `min_iter`, `min_iter * eta^k`. An iteration is one
//! logged value of the metric. At each bracket the threshold is the value at position
//! `floor(len / eta)` of the sorted values every run had at that iteration (lower is better; a
//! maximised metric is negated). A running run is stopped when, at the last bracket it has
//! reached, its value at the bracket (`strict`, W&B's default) or its best value so far is worse
//! than the threshold.

use crate::config::{Brackets, Goal, Hyperband};
use crate::run::{RunId, RunState, SweepRun};

/// The bracket iterations, ascending.
pub fn brackets(hyperband: &Hyperband) -> Vec<u64> {
    let eta = hyperband.eta;
    let mut out = Vec::new();
    match hyperband.brackets {
        Brackets::MaxIter { max_iter, s } => {
            let mut band = max_iter as f64;
            for _ in 0..s {
                band /= eta;
                if band < 1.0 {
                    break;
                }
                out.push(band as u64);
            }
            out.sort_unstable();
        }
        Brackets::MinIter(min_iter) => {
            // W&B makes 100 brackets; past 2^53 iterations none can be reached.
            let mut band = min_iter as f64;
            for _ in 0..100 {
                if band > 9.0e15 {
                    break;
                }
                out.push(band as u64);
                band *= eta;
            }
        }
    }
    out
}

/// Why each stopped run was stopped, and the bracket thresholds, for logs and `sweep status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The runs to stop.
    pub stop: Vec<RunId>,
    /// The brackets, ascending.
    pub brackets: Vec<u64>,
    /// The threshold at each bracket, in the metric's own sign (`None`: no run reached it yet).
    pub thresholds: Vec<Option<f64>>,
}

/// Which running runs Hyperband stops now.
pub fn decide(hyperband: &Hyperband, goal: Goal, runs: &[SweepRun]) -> Decision {
    let brackets = brackets(hyperband);
    let sign = if goal == Goal::Maximize { -1.0 } else { 1.0 };
    let histories: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| r.history.iter().map(|v| v * sign).collect())
        .collect();
    let r = 1.0 / hyperband.eta;
    let thresholds: Vec<Option<f64>> = brackets
        .iter()
        .map(|&band| {
            let mut at_band: Vec<f64> = histories
                .iter()
                .filter_map(|h| h.get(band as usize - 1).copied())
                .collect();
            at_band.sort_by(f64::total_cmp);
            let idx = (r * at_band.len() as f64) as usize;
            at_band
                .get(idx.min(at_band.len().saturating_sub(1)))
                .copied()
        })
        .collect();
    let mut stop = Vec::new();
    for (run, history) in runs.iter().zip(&histories) {
        if run.state != RunState::Running {
            continue;
        }
        let reached = brackets
            .iter()
            .zip(&thresholds)
            .take_while(|(band, _)| **band as usize <= history.len())
            .last();
        let Some((&band, &Some(threshold))) = reached else {
            continue;
        };
        let value = if hyperband.strict {
            history[band as usize - 1]
        } else {
            history.iter().copied().fold(f64::INFINITY, f64::min)
        };
        if value > threshold {
            stop.push(run.id.clone());
        }
    }
    Decision {
        stop,
        brackets,
        thresholds: thresholds
            .into_iter()
            .map(|t| t.map(|v| v * sign))
            .collect(),
    }
}
