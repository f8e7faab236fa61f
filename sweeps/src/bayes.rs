//! Bayesian search: a Gaussian process over the runs' metric, as W&B's `bayes_search.py`.
//!
//! Each searchable parameter is mapped into `[0,1]` through its distribution's `cdf` (categorical
//! values by index). Finished runs give their best metric value; failed, crashed and killed runs
//! the imputed one (`metric.impute`, default the worst value any finished run reached); running
//! and pending runs (and issued proposals not yet running) are "in flight": the process is fitted
//! once, predicts their values, and is fitted again with those predictions, so the next proposal
//! avoids them. The metric is minimised (negated for `maximize`) and normalised to mean 0 and
//! deviation 1. The kernel is Matérn with ν = 1.5 and one length scale, chosen by maximum
//! marginal likelihood within `[1e-5, 1e5]`, with a nugget of 1e-7 on the diagonal, as W&B's
//! scikit-learn process. The proposal is the best of 1000 uniform random points by expected
//! improvement; with fewer than two observed runs, or a length scale at its bounds (a bad fit),
//! it is a uniform random point, as W&B's.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Goal, Impute, Metric, SweepConfig};
use crate::error::SweepError;
use crate::params::{FlatParam, flatten, lookup, std_normal_cdf, std_normal_pdf, unflatten};
use crate::run::{RunState, SweepRun};

/// W&B's nugget (scikit-learn's `alpha`).
const NUGGET: f64 = 1e-7;
/// Added to deviations before dividing by them.
const EPSILON: f64 = 1e-6;
/// The process is fitted on at most this many runs (a random subset past it).
const MAX_SAMPLES: usize = 100;
/// Random candidate points scored by expected improvement.
const N_CANDIDATES: usize = 1000;
const LOG_LENGTH_MIN: f64 = -11.512_925_464_970_229; // ln(1e-5)
const LOG_LENGTH_MAX: f64 = 11.512_925_464_970_229; // ln(1e5)

/// What the model said about its proposal (W&B's `search_info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BayesInfo {
    /// Probability that the proposal improves on the best run.
    pub success_probability: Option<f64>,
    /// Predicted metric value, in the metric's own sign.
    pub predicted_value: Option<f64>,
    /// Predicted deviation of the metric.
    pub predicted_value_std_dev: Option<f64>,
    /// Expected improvement (normalised units).
    pub expected_improvement: Option<f64>,
    /// True when the point was drawn at random (too few runs, or a bad fit).
    pub random: bool,
}

/// A fitted Gaussian process with a Matérn ν = 1.5 kernel.
#[derive(Debug, Clone)]
pub struct GaussianProcess {
    x: Vec<Vec<f64>>,
    alpha: DVector<f64>,
    chol: Cholesky<f64, Dyn>,
    length_scale: f64,
}

fn matern(a: &[f64], b: &[f64], length_scale: f64) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let r = 3f64.sqrt() * d2.sqrt() / length_scale;
    (1.0 + r) * (-r).exp()
}

fn factor(x: &[Vec<f64>], length_scale: f64) -> Option<Cholesky<f64, Dyn>> {
    let n = x.len();
    let k = DMatrix::from_fn(n, n, |i, j| {
        matern(&x[i], &x[j], length_scale) + if i == j { NUGGET } else { 0.0 }
    });
    Cholesky::new(k)
}

/// The log marginal likelihood of `y` under the kernel with this length scale.
fn log_marginal_likelihood(x: &[Vec<f64>], y: &DVector<f64>, length_scale: f64) -> Option<f64> {
    let chol = factor(x, length_scale)?;
    let alpha = chol.solve(y);
    let log_det: f64 = chol.l_dirty().diagonal().iter().map(|d| d.ln()).sum();
    let n = x.len() as f64;
    let lml = -0.5 * y.dot(&alpha) - log_det - 0.5 * n * (2.0 * std::f64::consts::PI).ln();
    lml.is_finite().then_some(lml)
}

impl GaussianProcess {
    /// Fits the process to points `x` (each in `[0,1]^d`) and normalised values `y`, choosing the
    /// length scale that maximises the marginal likelihood (a scan over its log range, then a
    /// golden-section search around the best).
    pub fn fit(x: Vec<Vec<f64>>, y: &[f64]) -> Result<GaussianProcess, SweepError> {
        let y = DVector::from_column_slice(y);
        let score =
            |log_l: f64| log_marginal_likelihood(&x, &y, log_l.exp()).unwrap_or(f64::NEG_INFINITY);
        const STEPS: usize = 40;
        let step = (LOG_LENGTH_MAX - LOG_LENGTH_MIN) / STEPS as f64;
        let mut best = (LOG_LENGTH_MIN, score(LOG_LENGTH_MIN));
        for i in 1..=STEPS {
            let t = LOG_LENGTH_MIN + i as f64 * step;
            let s = score(t);
            if s > best.1 {
                best = (t, s);
            }
        }
        let (mut lo, mut hi) = (
            (best.0 - step).max(LOG_LENGTH_MIN),
            (best.0 + step).min(LOG_LENGTH_MAX),
        );
        let ratio = (5f64.sqrt() - 1.0) / 2.0;
        let mut c = hi - ratio * (hi - lo);
        let mut d = lo + ratio * (hi - lo);
        let (mut fc, mut fd) = (score(c), score(d));
        for _ in 0..30 {
            if fc > fd {
                hi = d;
                d = c;
                fd = fc;
                c = hi - ratio * (hi - lo);
                fc = score(c);
            } else {
                lo = c;
                c = d;
                fc = fd;
                d = lo + ratio * (hi - lo);
                fd = score(d);
            }
        }
        let mut log_l = (lo + hi) / 2.0;
        if score(log_l) < best.1 {
            log_l = best.0;
        }
        let length_scale = log_l.exp();
        let chol = factor(&x, length_scale).ok_or(SweepError::GaussianProcess {
            reason: "the kernel matrix is not positive definite",
        })?;
        let alpha = chol.solve(&y);
        Ok(GaussianProcess {
            x,
            alpha,
            chol,
            length_scale,
        })
    }

    /// The fitted length scale.
    pub fn length_scale(&self) -> f64 {
        self.length_scale
    }

    /// True when the length scale sits at a bound of its range (W&B then proposes at random).
    pub fn at_bounds(&self) -> bool {
        let t = self.length_scale.ln();
        let close = |b: f64| (t - b).abs() <= 1e-8 + 1e-5 * b.abs();
        close(LOG_LENGTH_MIN) || close(LOG_LENGTH_MAX)
    }

    /// Predicted mean and standard deviation (normalised units) at `point`.
    pub fn predict(&self, point: &[f64]) -> (f64, f64) {
        let k = DVector::from_iterator(
            self.x.len(),
            self.x.iter().map(|xi| matern(xi, point, self.length_scale)),
        );
        let mean = k.dot(&self.alpha);
        let v = self.chol.l_dirty().solve_lower_triangular(&k).unwrap_or(k);
        let var = (1.0 - v.dot(&v)).max(0.0);
        (mean, var.sqrt())
    }
}

/// `(y - mean) / std` as W&B normalises: one value gives mean y, std 1.
fn normalise(y: &[f64]) -> (Vec<f64>, f64, f64) {
    let n = y.len() as f64;
    let (mean, std) = if y.len() == 1 {
        (y[0], 1.0)
    } else {
        let mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        (mean, var.sqrt() + EPSILON)
    };
    (y.iter().map(|v| (v - mean) / std).collect(), mean, std)
}

fn fit_normalised(x: Vec<Vec<f64>>, y: &[f64]) -> Result<(GaussianProcess, f64, f64), SweepError> {
    let (y_norm, mean, std) = normalise(y);
    Ok((GaussianProcess::fit(x, &y_norm)?, mean, std))
}

/// The point in `[0,1]^d` to try next, minimising: W&B's `next_sample`.
///
/// `x`/`y` are the observed points and values, `in_flight` the points whose value is not known.
pub fn next_sample<R: Rng + ?Sized>(
    x: &[Vec<f64>],
    y: &[f64],
    in_flight: &[Vec<f64>],
    dims: usize,
    rng: &mut R,
) -> (Vec<f64>, BayesInfo) {
    let random_point = |rng: &mut R| (0..dims).map(|_| rng.random::<f64>()).collect::<Vec<f64>>();
    let rows: Vec<usize> = (0..x.len())
        .filter(|&i| y[i].is_finite() && x[i].iter().all(|v| v.is_finite()))
        .collect();
    if rows.len() < 2 {
        return (
            random_point(rng),
            BayesInfo {
                success_probability: Some(1.0),
                predicted_value: rows.first().map(|&i| y[i]).or(Some(0.0)),
                predicted_value_std_dev: None,
                expected_improvement: None,
                random: true,
            },
        );
    }
    let rows: Vec<usize> = if rows.len() > MAX_SAMPLES {
        (0..MAX_SAMPLES)
            .map(|_| rows[rng.random_range(0..rows.len())])
            .collect()
    } else {
        rows
    };
    let mut sample_x: Vec<Vec<f64>> = rows.iter().map(|&i| x[i].clone()).collect();
    let mut sample_y: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
    let best_y = sample_y.iter().copied().fold(f64::INFINITY, f64::min);
    let fitted = fit_normalised(sample_x.clone(), &sample_y).and_then(|(gp, mean, std)| {
        let in_flight: Vec<&Vec<f64>> = in_flight
            .iter()
            .filter(|p| p.iter().all(|v| v.is_finite()))
            .take(MAX_SAMPLES.saturating_sub(5))
            .collect();
        if in_flight.is_empty() {
            return Ok((gp, mean, std));
        }
        for point in in_flight {
            sample_y.push(gp.predict(point).0 * std + mean);
            sample_x.push(point.clone());
        }
        fit_normalised(sample_x, &sample_y)
    });
    let Ok((gp, mean, std)) = fitted else {
        return (
            random_point(rng),
            BayesInfo {
                success_probability: None,
                predicted_value: None,
                predicted_value_std_dev: None,
                expected_improvement: None,
                random: true,
            },
        );
    };
    let best_norm = (best_y - mean) / std;
    let candidates: Vec<Vec<f64>> = (0..N_CANDIDATES).map(|_| random_point(rng)).collect();
    let scored: Vec<(f64, f64, f64, f64)> = candidates
        .iter()
        .map(|c| {
            let (mu, sd) = gp.predict(c);
            let z = -(mu - best_norm) / (sd + EPSILON);
            let ei = -(mu - best_norm) * std_normal_cdf(z) + sd * std_normal_pdf(z);
            (ei, std_normal_cdf(z), mu, sd)
        })
        .collect();
    let mut pick = scored
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
        .map_or(0, |(i, _)| i);
    let random = gp.at_bounds();
    if random {
        pick = rng.random_range(0..N_CANDIDATES - 1);
    }
    let (ei, prob, mu, sd) = scored[pick];
    (
        candidates[pick].clone(),
        BayesInfo {
            success_probability: Some(prob),
            predicted_value: Some(mu * std + mean),
            predicted_value_std_dev: Some(sd * std),
            expected_improvement: Some(ei),
            random,
        },
    )
}

/// A run's point in `[0,1]^d` (NaN where a parameter is missing or outside its distribution).
fn point(params: &Map<String, Value>, searchable: &[FlatParam<'_>]) -> Vec<f64> {
    searchable
        .iter()
        .map(|p| {
            lookup(params, &p.path)
                .and_then(|v| p.dist.cdf(v))
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// The value W&B imputes for a run without a usable metric.
fn impute(strategy: Impute, run: &SweepRun, worst: f64, goal: Goal) -> f64 {
    match strategy {
        Impute::Worst => worst,
        Impute::Best => run.best(goal).unwrap_or(0.0),
        Impute::Latest => run.history.last().copied().unwrap_or(0.0),
    }
}

/// The next bayes proposal from the runs so far; `pending` are parameters already proposed but
/// not among `runs` yet.
pub fn next<R: Rng + ?Sized>(
    config: &SweepConfig,
    metric: &Metric,
    runs: &[SweepRun],
    pending: &[&Map<String, Value>],
    rng: &mut R,
) -> Result<(Map<String, Value>, BayesInfo), SweepError> {
    let flat = flatten(&config.parameters);
    let searchable: Vec<FlatParam<'_>> = flat
        .iter()
        .filter(|p| !p.dist.is_constant())
        .cloned()
        .collect();
    let goal = metric.goal;
    // The worst value among ended runs: each run's worst, then the worst of those.
    let worst = runs
        .iter()
        .filter(|r| r.state.is_terminal())
        .filter_map(|r| r.worst(goal))
        .reduce(|a, b| if goal.better(a, b) { b } else { a })
        .unwrap_or(0.0);
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut in_flight: Vec<Vec<f64>> = pending.iter().map(|p| point(p, &searchable)).collect();
    for run in runs {
        let p = point(&run.params, &searchable);
        let value = match run.state {
            RunState::Finished => Some(
                run.best(goal)
                    .unwrap_or_else(|| impute(metric.impute, run, worst, goal)),
            ),
            RunState::Failed | RunState::Crashed | RunState::Killed => {
                Some(impute(metric.impute, run, worst, goal))
            }
            RunState::Running => metric.impute_while_running.map(|strategy| {
                run.best(goal)
                    .unwrap_or_else(|| impute(strategy, run, worst, goal))
            }),
            RunState::Pending | RunState::Preempting | RunState::Preempted => None,
        };
        match value {
            Some(v) => {
                let v = if v.is_finite() { v } else { worst };
                y.push(if goal == Goal::Maximize { -v } else { v });
                x.push(p);
            }
            None => in_flight.push(p),
        }
    }
    let (suggested, mut info) = next_sample(&x, &y, &in_flight, searchable.len(), rng);
    if goal == Goal::Maximize {
        info.predicted_value = info.predicted_value.map(|v| -v);
    }
    let mut values = Vec::with_capacity(flat.len());
    let mut next_searchable = suggested.iter();
    for p in &flat {
        let value = if p.dist.is_constant() {
            p.dist.ppf(0.0)
        } else {
            p.dist.ppf(next_searchable.next().copied().unwrap_or(0.5))
        };
        values.push((p.path.clone(), value));
    }
    Ok((unflatten(values)?, info))
}
