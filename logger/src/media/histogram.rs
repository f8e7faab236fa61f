//! [`Histogram`]: counts over equal-width bins, computed as NumPy's `np.histogram` does.

use wandb_format::json;

use crate::error::{Error, Result};
use crate::value::Value;

/// A histogram, logged as the SDK's `{"_type": "histogram", "values": [...], "bins": [...]}`.
///
/// `bins` are the `values.len() + 1` bin edges.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    values: Vec<f64>,
    bins: Vec<f64>,
}

impl Histogram {
    /// The SDK's default number of bins.
    pub const DEFAULT_BINS: usize = 64;
    /// The most bins the SDK accepts.
    pub const MAX_BINS: usize = 512;

    /// The histogram of `values` over `num_bins` equal bins from their minimum to their
    /// maximum, with the same edges and counts as `np.histogram(values, bins=num_bins)` (what
    /// the SDK's `wandb.Histogram(sequence, num_bins=...)` computes): a range of one value is
    /// widened by 0.5 on each side, no values make the range 0 to 1, the last bin includes
    /// its right edge.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `num_bins` is 0 or above [`Histogram::MAX_BINS`], or a
    /// value is NaN or infinite (NumPy cannot place the bins then).
    pub fn from_values(values: &[f64], num_bins: usize) -> Result<Histogram> {
        let invalid = |reason: String| Error::InvalidArgument {
            what: "histogram",
            reason,
        };
        if num_bins == 0 {
            return Err(invalid("num_bins must be positive".to_owned()));
        }
        if num_bins > Histogram::MAX_BINS {
            return Err(invalid(format!(
                "{num_bins} bins: the maximum length of a histogram is {}",
                Histogram::MAX_BINS
            )));
        }
        let (mut first, mut last) = match values.first() {
            None => (0.0, 1.0),
            Some(&v) => values
                .iter()
                .fold((v, v), |(lo, hi), &x| (min_nan(lo, x), max_nan(hi, x))),
        };
        if !(first.is_finite() && last.is_finite()) {
            return Err(invalid(format!(
                "autodetected range of [{}, {}] is not finite",
                py_float(first),
                py_float(last)
            )));
        }
        if first == last {
            first -= 0.5;
            last += 0.5;
        }
        let bins = linspace(first, last, num_bins);
        let mut counts = vec![0u64; num_bins];
        let denom = last - first;
        let n = num_bins as f64;
        let top = num_bins - 1;
        for &x in values {
            // np.histogram's uniform-bin fast path: a first guess from the position, then
            // corrected against the computed edges.
            let guess = ((x - first) / denom) * n;
            // Truncation toward zero, as NumPy's `astype(intp)`.
            let mut idx = if guess >= 0.0 { guess as usize } else { 0 };
            idx = idx.min(num_bins);
            if idx == num_bins {
                idx -= 1;
            }
            if idx > 0 && x < bins[idx] {
                idx -= 1;
            }
            if idx != top && x >= bins[idx + 1] {
                idx += 1;
            }
            counts[idx] += 1;
        }
        Ok(Histogram {
            values: counts.into_iter().map(|c| c as f64).collect(),
            bins,
        })
    }

    /// A precomputed histogram (the SDK's `np_histogram=(values, bins)`): `values[i]` counts
    /// what lies between `bins[i]` and `bins[i + 1]`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if there are more than [`Histogram::MAX_BINS`] values or
    /// `bins` is not one longer than `values`.
    pub fn from_bins(values: Vec<f64>, bins: Vec<f64>) -> Result<Histogram> {
        if values.len() > Histogram::MAX_BINS {
            return Err(Error::InvalidArgument {
                what: "histogram",
                reason: format!(
                    "{} values: the maximum length of a histogram is {}",
                    values.len(),
                    Histogram::MAX_BINS
                ),
            });
        }
        if values.len() + 1 != bins.len() {
            return Err(Error::InvalidArgument {
                what: "histogram",
                reason: format!(
                    "len(bins) must be len(histogram) + 1: {} bins for {} values",
                    bins.len(),
                    values.len()
                ),
            });
        }
        Ok(Histogram { values, bins })
    }

    /// The count (or weight) of each bin.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The bin edges.
    pub fn bins(&self) -> &[f64] {
        &self.bins
    }

    /// The value logged: `{"_type": "histogram", "values": [...], "bins": [...]}`, whole
    /// counts as integers.
    pub fn to_json(&self) -> json::Value {
        let mut map = json::Map::with_capacity(3);
        map.insert("_type", json::Value::String("histogram".to_owned()));
        map.insert(
            "values",
            json::Value::Array(self.values.iter().map(|&v| count_json(v)).collect()),
        );
        map.insert(
            "bins",
            json::Value::Array(self.bins.iter().map(|&b| json::Value::Float(b)).collect()),
        );
        json::Value::Object(map)
    }
}

impl From<&Histogram> for Value {
    fn from(histogram: &Histogram) -> Value {
        Value::from(histogram.to_json())
    }
}

impl From<Histogram> for Value {
    fn from(histogram: Histogram) -> Value {
        Value::from(&histogram)
    }
}

/// `np.linspace(first, last, n + 1)` in float64: `i * step + first`, the last edge exact.
fn linspace(first: f64, last: f64, n: usize) -> Vec<f64> {
    let delta = last - first;
    let step = delta / n as f64;
    let mut edges: Vec<f64> = (0..=n)
        .map(|i| {
            let i = i as f64;
            if step == 0.0 {
                (i / n as f64) * delta + first
            } else {
                i * step + first
            }
        })
        .collect();
    if let Some(end) = edges.last_mut() {
        *end = last;
    }
    edges
}

/// NumPy's `min`: NaN wins.
fn min_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// NumPy's `max`: NaN wins.
fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// A float as Python prints it in NumPy's message (`nan`, `inf`, `-inf`, `1.5`).
fn py_float(f: f64) -> String {
    if f.is_nan() {
        "nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{f:?}")
    }
}

/// A bin's count as JSON: an integer when it is whole.
fn count_json(v: f64) -> json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json::Value::Int(v as i64)
    } else {
        json::Value::Float(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_on_the_sdk_example() {
        // np.histogram([1, 2, ..., 9, 10.5], bins=4)
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.5];
        let h = Histogram::from_values(&values, 4).unwrap();
        assert_eq!(h.values(), &[3.0, 2.0, 3.0, 2.0]);
        assert_eq!(h.bins(), &[1.0, 3.375, 5.75, 8.125, 10.5]);
    }

    #[test]
    fn single_value_and_empty_ranges() {
        let h = Histogram::from_values(&[2.0, 2.0], 2).unwrap();
        assert_eq!(h.bins(), &[1.5, 2.0, 2.5]);
        assert_eq!(h.values(), &[0.0, 2.0]);
        let h = Histogram::from_values(&[], 2).unwrap();
        assert_eq!(h.bins(), &[0.0, 0.5, 1.0]);
        assert_eq!(h.values(), &[0.0, 0.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let err = Histogram::from_values(&[1.0, f64::NAN], 4).unwrap_err();
        assert!(
            err.to_string().contains("[nan, nan] is not finite"),
            "{err}"
        );
        let err = Histogram::from_values(&[1.0, f64::INFINITY], 4).unwrap_err();
        assert!(
            err.to_string().contains("[1.0, inf] is not finite"),
            "{err}"
        );
        assert!(Histogram::from_values(&[1.0], 0).is_err());
        assert!(Histogram::from_values(&[1.0], 513).is_err());
        assert!(Histogram::from_bins(vec![1.0], vec![0.0]).is_err());
        assert!(Histogram::from_bins(vec![1.0; 513], vec![0.0; 514]).is_err());
    }

    #[test]
    fn json_has_the_sdk_fields() {
        let h = Histogram::from_bins(vec![1.0, 2.5], vec![0.0, 1.0, 2.0]).unwrap();
        let mut text = String::new();
        h.to_json().write_to(&mut text);
        assert_eq!(
            text,
            r#"{"_type":"histogram","values":[1,2.5],"bins":[0,1,2]}"#
        );
    }
}
