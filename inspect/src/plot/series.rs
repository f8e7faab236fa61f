//! The data behind each chart: which metrics get a panel, each run's points on the chosen x axis,
//! W&B's smoothing, and the downsampling that keeps drawing fast whatever the history length.
//!
//! * **x axis**: `--x` if given, else the metric's `define_metric` step metric, else `_step`.
//! * **Smoothing** (`--smooth W`, 0 ≤ W < 1): the exponential moving average with debiasing that
//!   W&B's UI (like TensorBoard) applies: `last = last·W + (1−W)·y`, shown as
//!   `last / (1 − W^n)` after the n-th finite value. Non-finite values are gaps and do not move it.
//! * **Gaps**: NaN, ±inf (and, with a log y axis, values ≤ 0) split a line into segments.
//! * **Downsampling**: the x range is cut into one bucket per pixel column; each run of points in
//!   one bucket keeps its first, smallest, largest and last point, in their order (min/max per
//!   column, also called M4), so the drawn line covers exactly the pixels the full line would.

use std::collections::BTreeSet;

use crate::plot::data::{RunData, glob_match};

/// How charts are made.
#[derive(Clone, Debug)]
pub(crate) struct ChartOptions {
    /// `--metrics` globs; empty: every metric.
    pub(crate) metrics: Vec<String>,
    /// `--x`; `None`: each metric's step metric.
    pub(crate) x: Option<String>,
    /// `--smooth`, 0 for none.
    pub(crate) smooth: f64,
    /// `--log-y`.
    pub(crate) log_y: bool,
    /// Pixel columns a panel's plot area has (the buckets of downsampling).
    pub(crate) columns: usize,
}

/// One run's line in a panel: its finite points, split at gaps, downsampled.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Line {
    /// The run's name (the legend).
    pub(crate) run: String,
    /// Segments of (x, y) points; y is log10 of the value under `--log-y`.
    pub(crate) segments: Vec<Vec<(f64, f64)>>,
    /// Points the metric has before downsampling (gaps included).
    pub(crate) points: usize,
}

/// One panel: a metric, its x axis and a line per run that logged it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Panel {
    pub(crate) metric: String,
    /// The x key (`_step`, `_runtime`, `_timestamp` or a metric).
    pub(crate) x: String,
    pub(crate) lines: Vec<Line>,
}

impl Panel {
    /// The range of x and y over all lines (`None` when no line has a point).
    pub(crate) fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let mut points = self
            .lines
            .iter()
            .flat_map(|l| l.segments.iter().flatten().copied())
            .peekable();
        let &(x0, y0) = points.peek()?;
        let mut b: ((f64, f64), (f64, f64)) = ((x0, x0), (y0, y0));
        for (x, y) in points {
            b.0.0 = b.0.0.min(x);
            b.0.1 = b.0.1.max(x);
            b.1.0 = b.1.0.min(y);
            b.1.1 = b.1.1.max(y);
        }
        Some(b)
    }
}

/// Whether `key` is selected by the `--metrics` patterns (all keys when there are none).
pub(crate) fn selected(patterns: &[String], key: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob_match(p, key))
}

/// The panels for `runs`: one per selected metric (in byte order), each with a line per run.
/// A metric used as another metric's x axis gets no panel of its own unless it was named.
pub(crate) fn panels(runs: &[RunData], options: &ChartOptions) -> Vec<Panel> {
    let mut keys = BTreeSet::new();
    let mut x_keys = BTreeSet::new();
    for run in runs {
        for key in run.metrics.keys() {
            if selected(&options.metrics, key) {
                keys.insert(key.as_str());
            }
        }
        x_keys.extend(run.step_metric.values().map(String::as_str));
        x_keys.extend(run.glob_step_metric.iter().map(|(_, s)| s.as_str()));
    }
    if options.metrics.is_empty() {
        keys.retain(|key| !x_keys.contains(key));
    }
    keys.into_iter()
        .map(|metric| {
            let mut x_name = None;
            let lines = runs
                .iter()
                .filter_map(|run| {
                    let series = run.metrics.get(metric)?;
                    let x = options
                        .x
                        .as_deref()
                        .or_else(|| run.step_metric_of(metric))
                        .unwrap_or("_step");
                    x_name.get_or_insert_with(|| x.to_string());
                    let xs = run.x_values(series, x);
                    let ys = smooth(&series.values, options.smooth);
                    Some((run.name.clone(), xs, ys))
                })
                .collect::<Vec<_>>();
            // One x range for the panel, so every line is cut at the same pixel columns.
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (_, xs, _) in &lines {
                for &x in xs.iter().filter(|x| x.is_finite()) {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            let lines = lines
                .into_iter()
                .map(|(run, xs, ys)| Line {
                    run,
                    points: ys.len(),
                    segments: downsample(&xs, &ys, options.log_y, (lo, hi), options.columns),
                })
                .collect();
            Panel {
                metric: metric.to_string(),
                x: x_name.unwrap_or_else(|| "_step".to_string()),
                lines,
            }
        })
        .collect()
}

/// W&B's debiased exponential moving average (see the module docs); `weight` ≤ 0 returns the
/// values as they are.
pub(crate) fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    if weight <= 0.0 || weight.is_nan() {
        return values.to_vec();
    }
    let weight = weight.min(0.999);
    let mut last = 0.0;
    let mut n = 0i32;
    values
        .iter()
        .map(|&y| {
            if !y.is_finite() {
                return y;
            }
            last = last * weight + (1.0 - weight) * y;
            n = n.saturating_add(1);
            let debias = 1.0 - weight.powi(n);
            if debias > 0.0 { last / debias } else { y }
        })
        .collect()
}

/// Splits at gaps and keeps, per bucket of x, the first, lowest, highest and last point.
pub(crate) fn downsample(
    xs: &[f64],
    ys: &[f64],
    log_y: bool,
    (lo, hi): (f64, f64),
    columns: usize,
) -> Vec<Vec<(f64, f64)>> {
    let columns = columns.max(1);
    let span = hi - lo;
    let scale = if span > 0.0 {
        columns as f64 / span
    } else {
        0.0
    };
    let mut segments = Vec::new();
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let mut bucket = Bucket::default();
    for (&x, &y) in xs.iter().zip(ys) {
        let y = if log_y {
            if y > 0.0 { y.log10() } else { f64::NAN }
        } else {
            y
        };
        if !(x.is_finite() && y.is_finite()) {
            bucket.flush(&mut segment);
            if !segment.is_empty() {
                segments.push(std::mem::take(&mut segment));
            }
            continue;
        }
        // Truncation is the bucketing; x is finite and inside [lo, hi].
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let column = (((x - lo) * scale) as usize).min(columns - 1);
        if bucket.column != Some(column) {
            bucket.flush(&mut segment);
            bucket.column = Some(column);
        }
        bucket.add((x, y));
    }
    bucket.flush(&mut segment);
    if !segment.is_empty() {
        segments.push(segment);
    }
    segments
}

/// The points of one pixel column seen so far.
#[derive(Default)]
struct Bucket {
    column: Option<usize>,
    /// (index within the bucket, point) of first, min, max, last.
    first: Option<(usize, (f64, f64))>,
    min: (usize, (f64, f64)),
    max: (usize, (f64, f64)),
    last: (usize, (f64, f64)),
    n: usize,
}

impl Bucket {
    fn add(&mut self, point: (f64, f64)) {
        let i = self.n;
        self.n += 1;
        if self.first.is_none() {
            self.first = Some((i, point));
            self.min = (i, point);
            self.max = (i, point);
        } else {
            if point.1 < self.min.1.1 {
                self.min = (i, point);
            }
            if point.1 > self.max.1.1 {
                self.max = (i, point);
            }
        }
        self.last = (i, point);
    }

    fn flush(&mut self, out: &mut Vec<(f64, f64)>) {
        if let Some(first) = self.first.take() {
            let mut picks = [first, self.min, self.max, self.last];
            picks.sort_by_key(|&(i, _)| i);
            let mut previous = None;
            for (i, point) in picks {
                if previous != Some(i) {
                    out.push(point);
                    previous = Some(i);
                }
            }
        }
        self.n = 0;
        self.column = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased_ema() {
        let out = smooth(&[1.0, 1.0, f64::NAN, 1.0], 0.6);
        assert!((out[0] - 1.0).abs() < 1e-12);
        assert!((out[1] - 1.0).abs() < 1e-12);
        assert!(out[2].is_nan());
        let out = smooth(&[0.0, 10.0], 0.5);
        // last = 0 then 5; debiased: 0/(0.5) = 0, 5/(0.75).
        assert!((out[1] - 5.0 / 0.75).abs() < 1e-12);
    }

    #[test]
    fn downsampling_keeps_extremes_and_splits_at_gaps() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut ys: Vec<f64> = xs.iter().map(|x| (x / 10.0).sin()).collect();
        ys[500] = f64::NAN;
        ys[250] = 5.0;
        let segments = downsample(&xs, &ys, false, (0.0, 999.0), 10);
        assert_eq!(segments.len(), 2);
        let n: usize = segments.iter().map(Vec::len).sum();
        assert!(n <= 4 * 11, "{n} points");
        assert!(segments[0].contains(&(250.0, 5.0)));
        assert_eq!(segments[0][0], (0.0, 0.0));
        assert_eq!(segments[1].last().unwrap().0, 999.0);
    }

    #[test]
    fn log_y_drops_non_positive() {
        let segments = downsample(&[0.0, 1.0, 2.0], &[10.0, 0.0, 100.0], true, (0.0, 2.0), 100);
        assert_eq!(segments, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0)]]);
    }
}
