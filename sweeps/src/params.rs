//! The search space: nested parameters flattened into a sorted list, each distribution's
//! percent-point function (`ppf`, `[0,1]` → value) and cumulative distribution function (`cdf`,
//! value → `[0,1]`), and the way back from flat values to a run's nested config.
//!
//! As W&B's `HyperParameterSet`: names are sorted at each level, a nested parameter's value in
//! the run config is a mapping of its children, random draws are `ppf(uniform(0, 1))`, and bayes
//! search works on every parameter mapped through its `cdf` into `[0,1]`.

use rand::{Rng, RngExt};
use serde_json::{Map, Value};
use statrs::distribution::{Beta, Continuous, ContinuousCDF, Normal};

use crate::config::{Distribution, Parameter, float_value};
use crate::error::SweepError;

/// A parameter of the flattened search space: its path (`["optimizer", "lr"]`) and distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatParam<'a> {
    /// Names from the top level down.
    pub path: Vec<String>,
    /// Its distribution.
    pub dist: &'a Distribution,
}

impl FlatParam<'_> {
    /// The path joined with dots, for messages.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// Flattens nested parameters, sorting names at each level as W&B does.
pub fn flatten(params: &[(String, Parameter)]) -> Vec<FlatParam<'_>> {
    let mut out = Vec::new();
    flatten_into(params, &mut Vec::new(), &mut out);
    out
}

fn flatten_into<'a>(
    params: &'a [(String, Parameter)],
    prefix: &mut Vec<String>,
    out: &mut Vec<FlatParam<'a>>,
) {
    let mut sorted: Vec<&(String, Parameter)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, param) in sorted {
        prefix.push(name.clone());
        match param {
            Parameter::Value(dist) => out.push(FlatParam {
                path: prefix.clone(),
                dist,
            }),
            Parameter::Nested(children) => flatten_into(children, prefix, out),
        }
        prefix.pop();
    }
}

/// Builds a run's nested parameter values from flat (path, value) pairs.
pub fn unflatten(values: Vec<(Vec<String>, Value)>) -> Result<Map<String, Value>, SweepError> {
    let mut root = Map::new();
    for (path, value) in values {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut map = &mut root;
        for (depth, key) in parents.iter().enumerate() {
            let entry = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            map = match entry {
                Value::Object(m) => m,
                _ => {
                    return Err(SweepError::NestingConflict {
                        key: path[..=depth].join("."),
                    });
                }
            };
        }
        if map.contains_key(last) {
            return Err(SweepError::NestingConflict {
                key: path.join("."),
            });
        }
        map.insert(last.clone(), value);
    }
    Ok(root)
}

/// The value at `path` in a run's nested parameters.
pub fn lookup<'a>(params: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = params.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// A text that is equal for two values W&B's grid treats as equal: numbers compare by value
/// (`3000000.0` is `3000000`), mappings by their sorted keys.
pub fn canonical_key(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    out.push_str(&(f as i64).to_string());
                }
                _ => out.push_str(&n.to_string()),
            },
            Value::Array(items) => {
                out.push('[');
                for item in items {
                    write(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    if let Some(v) = map.get(k) {
                        write(v, out);
                    }
                    out.push(',');
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn std_normal() -> Option<Normal> {
    Normal::new(0.0, 1.0).ok()
}

/// Φ⁻¹(x) · sigma + mu, with a zero sigma giving mu.
fn normal_ppf(x: f64, mu: f64, sigma: f64) -> f64 {
    if sigma == 0.0 {
        return mu;
    }
    std_normal().map_or(mu, |n| mu + sigma * n.inverse_cdf(x))
}

fn normal_cdf(v: f64, mu: f64, sigma: f64) -> f64 {
    if sigma == 0.0 {
        return if v < mu { 0.0 } else { 1.0 };
    }
    std_normal().map_or(0.5, |n| n.cdf((v - mu) / sigma))
}

/// The standard normal density, for expected improvement.
pub(crate) fn std_normal_pdf(z: f64) -> f64 {
    std_normal().map_or(0.0, |n| n.pdf(z))
}

/// The standard normal distribution function, for expected improvement.
pub(crate) fn std_normal_cdf(z: f64) -> f64 {
    normal_cdf(z, 0.0, 1.0)
}

/// SciPy's `randint.ppf(x, 0, n)`, kept inside `0..n`.
fn randint_ppf(x: f64, n: usize) -> usize {
    let idx = (x * n as f64).ceil() - 1.0;
    if idx <= 0.0 {
        0
    } else {
        (idx as usize).min(n.saturating_sub(1))
    }
}

fn unit(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

/// The log-space bounds of a log-uniform distribution (exponents as given, or logs of values).
fn log_bounds(min: f64, max: f64, values: bool) -> (f64, f64) {
    if values {
        (min.ln(), max.ln())
    } else {
        (min, max)
    }
}

impl Distribution {
    /// The value at quantile `x` in `[0,1]` (W&B's `HyperParameter.ppf`).
    pub fn ppf(&self, x: f64) -> Value {
        let x = unit(x);
        // The normal tails are infinite at 0 and 1; keep their quantiles finite.
        let tail = x.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        match self {
            Distribution::Constant { value } => value.clone(),
            Distribution::Categorical {
                values,
                probabilities: None,
            } => values
                .get(randint_ppf(x, values.len()))
                .cloned()
                .unwrap_or(Value::Null),
            Distribution::Categorical {
                values,
                probabilities: Some(probs),
            } => {
                let mut acc = 0.0;
                let mut chosen = values.len().saturating_sub(1);
                for (idx, p) in probs.iter().enumerate() {
                    acc += p;
                    if x < acc {
                        chosen = idx;
                        break;
                    }
                }
                values.get(chosen).cloned().unwrap_or(Value::Null)
            }
            Distribution::IntUniform { min, max } => {
                // In i128 and f64, so that no range of i64 overflows.
                let n = (i128::from(*max) - i128::from(*min) + 1) as f64;
                let idx = ((x * n).ceil() - 1.0).clamp(0.0, n - 1.0);
                let v = i128::from(*min) + idx as i128;
                Value::from(v.clamp(i128::from(*min), i128::from(*max)) as i64)
            }
            Distribution::Uniform { min, max } => float_value(min + x * (max - min)),
            Distribution::QUniform { min, max, q, .. } => q.apply(min + x * (max - min)),
            Distribution::LogUniform { min, max, values } => {
                let (lo, hi) = log_bounds(*min, *max, *values);
                float_value((lo + x * (hi - lo)).exp())
            }
            Distribution::QLogUniform {
                min,
                max,
                values,
                q,
            } => {
                let (lo, hi) = log_bounds(*min, *max, *values);
                q.apply((lo + x * (hi - lo)).exp())
            }
            Distribution::InvLogUniform { min, max, values } => {
                // log(1/X) uniform on [min, max] (exponents), or on [-log(max), -log(min)].
                let (lo, hi) = if *values {
                    (-max.ln(), -min.ln())
                } else {
                    (*min, *max)
                };
                float_value((-(lo + (1.0 - x) * (hi - lo))).exp())
            }
            Distribution::Normal { mu, sigma } => float_value(normal_ppf(tail, *mu, *sigma)),
            Distribution::QNormal { mu, sigma, q } => q.apply(normal_ppf(tail, *mu, *sigma)),
            Distribution::LogNormal { mu, sigma } => {
                float_value(normal_ppf(tail, *mu, *sigma).exp())
            }
            Distribution::QLogNormal { mu, sigma, q } => {
                q.apply(normal_ppf(tail, *mu, *sigma).exp())
            }
            Distribution::Beta { a, b } => float_value(beta_ppf(x, *a, *b)),
            Distribution::QBeta { a, b, q } => q.apply(beta_ppf(x, *a, *b)),
        }
    }

    /// The quantile of `value` in `[0,1]` (W&B's `HyperParameter.cdf`; categorical values by their
    /// index), or `None` when the value does not belong to the distribution.
    pub fn cdf(&self, value: &Value) -> Option<f64> {
        if let Distribution::Categorical {
            values,
            probabilities,
        } = self
        {
            let key = canonical_key(value);
            let idx = values.iter().position(|v| canonical_key(v) == key)?;
            return Some(match probabilities {
                None => (idx + 1) as f64 / values.len() as f64,
                Some(p) => p[..=idx].iter().sum(),
            });
        }
        if let Distribution::Constant { .. } = self {
            return Some(0.0);
        }
        let v = value.as_f64()?;
        let out = match self {
            Distribution::IntUniform { min, max } => {
                (v.floor() - *min as f64 + 1.0) / (*max as f64 - *min as f64 + 1.0)
            }
            Distribution::Uniform { min, max } | Distribution::QUniform { min, max, .. } => {
                (v - min) / (max - min)
            }
            Distribution::LogUniform { min, max, values }
            | Distribution::QLogUniform {
                min, max, values, ..
            } => {
                if v <= 0.0 {
                    return None;
                }
                let (lo, hi) = log_bounds(*min, *max, *values);
                (v.ln() - lo) / (hi - lo)
            }
            Distribution::InvLogUniform { min, max, values } => {
                if v <= 0.0 {
                    return None;
                }
                let (lo, hi) = if *values {
                    (-max.ln(), -min.ln())
                } else {
                    (*min, *max)
                };
                1.0 - ((1.0 / v).ln() - lo) / (hi - lo)
            }
            Distribution::Normal { mu, sigma } | Distribution::QNormal { mu, sigma, .. } => {
                normal_cdf(v, *mu, *sigma)
            }
            Distribution::LogNormal { mu, sigma } | Distribution::QLogNormal { mu, sigma, .. } => {
                if v <= 0.0 {
                    0.0
                } else {
                    normal_cdf(v.ln(), *mu, *sigma)
                }
            }
            Distribution::Beta { a, b } | Distribution::QBeta { a, b, .. } => {
                Beta::new(*a, *b).map_or(0.5, |beta| beta.cdf(v.clamp(0.0, 1.0)))
            }
            Distribution::Constant { .. } | Distribution::Categorical { .. } => 0.0,
        };
        out.is_finite().then(|| unit(out))
    }

    /// A random draw: `ppf` of a uniform number in (0, 1).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        self.ppf(open_unit(rng))
    }
}

/// A uniform number in the open interval (0, 1), so that no ppf is asked for an infinite tail.
pub(crate) fn open_unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let x: f64 = rng.random();
        if x > 0.0 {
            return x;
        }
    }
}

fn beta_ppf(x: f64, a: f64, b: f64) -> f64 {
    Beta::new(a, b).map_or(0.5, |beta| beta.inverse_cdf(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quantum;
    use serde_json::json;

    #[test]
    fn ppf_and_cdf_agree() {
        let dists = [
            Distribution::Uniform {
                min: -1.0,
                max: 3.0,
            },
            Distribution::LogUniform {
                min: 1e-4,
                max: 1e-1,
                values: true,
            },
            Distribution::LogUniform {
                min: -9.0,
                max: -2.0,
                values: false,
            },
            Distribution::InvLogUniform {
                min: 0.01,
                max: 10.0,
                values: true,
            },
            Distribution::Normal {
                mu: 2.0,
                sigma: 0.5,
            },
            Distribution::LogNormal {
                mu: 0.0,
                sigma: 1.0,
            },
            Distribution::Beta { a: 2.0, b: 5.0 },
        ];
        for dist in &dists {
            for x in [0.05, 0.3, 0.5, 0.9] {
                let v = dist.ppf(x);
                let back = dist.cdf(&v).unwrap_or(f64::NAN);
                assert!(
                    (back - x).abs() < 1e-6,
                    "{} at {x}: {v} -> {back}",
                    dist.name()
                );
            }
        }
    }

    #[test]
    fn discrete_ppf() {
        let cat = Distribution::Categorical {
            values: vec![json!("a"), json!("b"), json!("c")],
            probabilities: None,
        };
        assert_eq!(cat.ppf(0.0), json!("a"));
        assert_eq!(cat.ppf(0.34), json!("b"));
        assert_eq!(cat.ppf(1.0), json!("c"));
        assert_eq!(cat.cdf(&json!("b")), Some(2.0 / 3.0));
        let ints = Distribution::IntUniform { min: 1, max: 4 };
        assert_eq!(ints.ppf(0.26), json!(2));
        let q = Distribution::QUniform {
            min: 0.0,
            max: 10.0,
            q: Quantum {
                q: 4.0,
                integer: true,
            },
            integers: true,
        };
        // 0.5 * 10 = 5, 5 / 4 = 1.25 -> 1 -> 4
        assert_eq!(q.ppf(0.5), json!(4));
        let probs = Distribution::Categorical {
            values: vec![json!(1), json!(2)],
            probabilities: Some(vec![0.9, 0.1]),
        };
        assert_eq!(probs.ppf(0.85), json!(1));
        assert_eq!(probs.ppf(0.95), json!(2));
    }

    #[test]
    fn unflatten_nests() {
        let map = unflatten(vec![
            (vec!["a".into()], json!(1)),
            (vec!["opt".into(), "lr".into()], json!(0.1)),
            (vec!["opt".into(), "beta".into(), "b1".into()], json!(0.9)),
        ])
        .unwrap_or_default();
        assert_eq!(
            Value::Object(map.clone()),
            json!({"a": 1, "opt": {"lr": 0.1, "beta": {"b1": 0.9}}})
        );
        assert_eq!(
            lookup(&map, &["opt".into(), "beta".into(), "b1".into()]),
            Some(&json!(0.9))
        );
    }
}
