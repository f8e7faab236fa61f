//! The data behind each chart: which metrics get a panel, each run's points on the chosen x axis,
//! W&B's smoothing, and the downsampling that keeps drawing fast whatever the history length.
//!
//! * **x axis**: `--x` if given, else the metric's `define_metric` step metric, else `_step`;
//!   decided when the metric's first value is read (the SDK defines metrics before logging them).
//! * **Smoothing** (`--smooth W`, 0 ≤ W < 1): the exponential moving average with debiasing that
//!   W&B's UI (like TensorBoard) applies: `last = last·W + (1−W)·y`, shown as
//!   `last / (1 − W^n)` after the n-th finite value. Non-finite values are gaps and do not move it.
//! * **Gaps**: NaN, ±inf (and, with a log y axis, values ≤ 0) split a line into segments.
//! * **Downsampling**: the x range is cut into one bucket per pixel column; each run of points in
//!   one bucket keeps its first, smallest, largest and last point, in their order (min/max per
//!   column, also called M4), so the drawn line covers exactly the pixels the full line would.
//!   Series are reduced as they are read ([`Stream`]): exactly up to 64 points per column, and
//!   beyond that to 4 buckets per column by the same rule, so a history of any length is held in
//!   bounded memory and drawn within a quarter of a column of its full line.

use std::collections::BTreeSet;

use crate::plot::data::{RunData, Series, glob_match};

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
///
/// The runs were read with `options.read()` (x axis, smoothing and log scale are applied as the
/// series are read); here each line is downsampled to `options.columns` over the panel's x range.
pub(crate) fn panels(runs: &[RunData], options: &ChartOptions) -> Vec<Panel> {
    let mut keys = BTreeSet::new();
    let mut x_keys = BTreeSet::new();
    for run in runs {
        for series in &run.metrics {
            if selected(&options.metrics, &series.name) {
                keys.insert(series.name.as_str());
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
            let lines: Vec<(&str, &Series)> = runs
                .iter()
                .filter_map(|run| Some((run.name.as_str(), run.metric(metric)?)))
                .collect();
            // One x range for the panel, so every line is cut at the same pixel columns.
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (_, series) in &lines {
                if let Some((a, b)) = series.stream.range() {
                    lo = lo.min(a);
                    hi = hi.max(b);
                }
            }
            let x = lines
                .first()
                .map_or_else(|| "_step".to_string(), |(_, s)| s.x.clone());
            let lines = lines
                .into_iter()
                .map(|(run, series)| Line {
                    run: run.to_string(),
                    points: series.stream.count(),
                    segments: series
                        .stream
                        .segments(options.log_y, (lo, hi), options.columns),
                })
                .collect();
            Panel {
                metric: metric.to_string(),
                x,
                lines,
            }
        })
        .collect()
}

/// W&B's debiased exponential moving average, one value at a time (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Ema {
    weight: f64,
    last: f64,
    n: i32,
}

impl Ema {
    /// An average of weight `weight`; ≤ 0 (or NaN) passes values through.
    pub(crate) fn new(weight: f64) -> Self {
        Ema {
            weight: if weight.is_nan() {
                0.0
            } else {
                weight.min(0.999)
            },
            last: 0.0,
            n: 0,
        }
    }

    /// The smoothed value of the next value `y` (non-finite values pass and do not move it).
    #[inline]
    pub(crate) fn next(&mut self, y: f64) -> f64 {
        if self.weight <= 0.0 || !y.is_finite() {
            return y;
        }
        let weight = self.weight;
        self.last = self.last * weight + (1.0 - weight) * y;
        self.n = self.n.saturating_add(1);
        let debias = 1.0 - weight.powi(self.n);
        if debias > 0.0 { self.last / debias } else { y }
    }
}

/// W&B's debiased exponential moving average of `values` (see [`Ema`]).
#[cfg(test)]
pub(crate) fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let mut ema = Ema::new(weight);
    values.iter().map(|&y| ema.next(y)).collect()
}

/// How a series is reduced as it is read.
#[derive(Clone, Debug)]
pub(crate) struct ReadOptions {
    /// `--x`; `None`: each metric's step metric.
    pub(crate) x: Option<String>,
    /// `--smooth`, 0 for none.
    pub(crate) smooth: f64,
    /// `--log-y`: values ≤ 0 are gaps.
    pub(crate) log_y: bool,
    /// The most pixel columns a line will be drawn on.
    pub(crate) columns: usize,
}

impl ChartOptions {
    /// How the runs behind these charts are read.
    pub(crate) fn read(&self) -> ReadOptions {
        ReadOptions {
            x: self.x.clone(),
            smooth: self.smooth,
            log_y: self.log_y,
            columns: self.columns,
        }
    }
}

/// Fine buckets per pixel column that a compaction of a [`Stream`] keeps.
const FINE_PER_COLUMN: usize = 4;
/// Points per pixel column a [`Stream`] holds before it compacts.
const CAP_PER_COLUMN: usize = 64;

/// One series downsampled as it is read, so memory stays bounded whatever the history length.
///
/// Points (x, smoothed y) are kept as they come until there are [`CAP_PER_COLUMN`] per pixel
/// column; then they are reduced, by the same first/min/max/last rule as [`downsample`], to
/// [`FINE_PER_COLUMN`] buckets per column over the x range seen so far, and the threshold is
/// raised to twice what is left. A series that never reaches the threshold is drawn from all of
/// its points, exactly; a longer one from a reduction at least four times finer than its pixel
/// columns, whose points are all real points, its extremes included (a column's first and last
/// point may be off by a quarter of a column).
#[derive(Clone, Debug)]
pub(crate) struct Stream {
    /// The points kept, in order; a point with a non-finite x or y is a gap.
    points: Vec<(f64, f64)>,
    /// Points read, gaps included.
    count: usize,
    /// The range of the finite x values read.
    lo: f64,
    hi: f64,
    /// Length at which the points are reduced.
    cap: usize,
    /// Buckets a reduction keeps.
    fine: usize,
    ema: Ema,
    log_y: bool,
}

impl Stream {
    /// An empty series read with `options`.
    pub(crate) fn new(options: &ReadOptions) -> Self {
        let columns = options.columns.max(1);
        Stream {
            points: Vec::new(),
            count: 0,
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            cap: CAP_PER_COLUMN.saturating_mul(columns),
            fine: FINE_PER_COLUMN.saturating_mul(columns),
            ema: Ema::new(options.smooth),
            log_y: options.log_y,
        }
    }

    /// Adds the next point: `y` is smoothed, and under a log scale a value ≤ 0 becomes a gap.
    #[inline]
    pub(crate) fn push(&mut self, x: f64, y: f64) {
        self.count += 1;
        if x.is_finite() {
            self.lo = self.lo.min(x);
            self.hi = self.hi.max(x);
        }
        let y = self.ema.next(y);
        let y = if self.log_y && (y <= 0.0 || y.is_nan()) {
            f64::NAN
        } else {
            y
        };
        self.points.push((x, y));
        if self.points.len() >= self.cap {
            self.compact();
        }
    }

    /// Points read, gaps included.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Points held now (for tests and the memory bound).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.points.len()
    }

    /// The range of finite x values read, if any.
    pub(crate) fn range(&self) -> Option<(f64, f64)> {
        (self.lo <= self.hi).then_some((self.lo, self.hi))
    }

    /// The line, split at gaps and downsampled to `columns` over `range` (see [`downsample`]).
    pub(crate) fn segments(
        &self,
        log_y: bool,
        range: (f64, f64),
        columns: usize,
    ) -> Vec<Vec<(f64, f64)>> {
        downsample_points(self.points.iter().copied(), log_y, range, columns)
    }

    fn compact(&mut self) {
        let gap_last = self
            .points
            .last()
            .is_some_and(|&(x, y)| !(x.is_finite() && y.is_finite()));
        let segments = downsample_points(
            self.points.iter().copied(),
            false,
            (self.lo, self.hi),
            self.fine,
        );
        self.points.clear();
        for (i, segment) in segments.into_iter().enumerate() {
            if i > 0 {
                self.points.push((f64::NAN, f64::NAN));
            }
            self.points.extend(segment);
        }
        // A gap at the end still separates what was read from what comes next.
        if gap_last {
            self.points.push((f64::NAN, f64::NAN));
        }
        self.cap = self.cap.max(self.points.len().saturating_mul(2));
    }
}

/// Splits at gaps and keeps, per bucket of x, the first, lowest, highest and last point.
pub(crate) fn downsample(
    xs: &[f64],
    ys: &[f64],
    log_y: bool,
    range: (f64, f64),
    columns: usize,
) -> Vec<Vec<(f64, f64)>> {
    downsample_points(
        xs.iter().copied().zip(ys.iter().copied()),
        log_y,
        range,
        columns,
    )
}

/// [`downsample`] over (x, y) points.
fn downsample_points(
    points: impl Iterator<Item = (f64, f64)>,
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
    let last = i64::try_from(columns - 1).unwrap_or(i64::MAX);
    let mut segments = Vec::new();
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let mut bucket = Bucket::default();
    for (x, y) in points {
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
        // Truncation is the bucketing; x is finite and inside [lo, hi]. Through i64, whose
        // conversion from f64 is one instruction where usize's takes several.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let column = (((x - lo) * scale) as i64).clamp(0, last) as usize;
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
    fn a_long_stream_stays_small_and_keeps_its_extremes() {
        let options = ReadOptions {
            x: None,
            smooth: 0.0,
            log_y: false,
            columns: 100,
        };
        let mut stream = Stream::new(&options);
        let n = 1_000_000;
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..n {
            let x = f64::from(i);
            let mut y = (x / 1000.0).sin();
            if i == 123_456 {
                y = 9.0;
            }
            if i == 777_777 {
                y = f64::NAN;
            }
            stream.push(x, y);
            xs.push(x);
            ys.push(y);
            assert!(
                stream.held() <= CAP_PER_COLUMN * 100,
                "{} held",
                stream.held()
            );
        }
        assert_eq!(stream.count(), n as usize);
        assert_eq!(stream.range(), Some((0.0, f64::from(n - 1))));
        let range = (0.0, f64::from(n - 1));
        let streamed = stream.segments(false, range, 100);
        let full = downsample(&xs, &ys, false, range, 100);
        // The same gaps, the same ends and extremes; at most four points per column.
        assert_eq!(streamed.len(), 2);
        assert_eq!(streamed.len(), full.len());
        for (a, b) in streamed.iter().zip(&full) {
            assert_eq!(a.first(), b.first());
            assert_eq!(a.last(), b.last());
            assert!(a.len() <= 4 * 101);
        }
        assert!(streamed[0].contains(&(123_456.0, 9.0)));
        let lowest = |s: &[Vec<(f64, f64)>]| {
            s.iter()
                .flatten()
                .map(|p| p.1)
                .fold(f64::INFINITY, f64::min)
        };
        assert_eq!(lowest(&streamed), lowest(&full));
        // A short stream is drawn from all of its points: exactly what `downsample` gives.
        let mut short = Stream::new(&options);
        for (&x, &y) in xs.iter().zip(&ys).take(5000) {
            short.push(x, y);
        }
        assert_eq!(
            short.segments(false, (0.0, 4999.0), 100),
            downsample(&xs[..5000], &ys[..5000], false, (0.0, 4999.0), 100)
        );
    }

    #[test]
    fn log_y_drops_non_positive() {
        let segments = downsample(&[0.0, 1.0, 2.0], &[10.0, 0.0, 100.0], true, (0.0, 2.0), 100);
        assert_eq!(segments, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0)]]);
    }
}
