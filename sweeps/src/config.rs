//! W&B's sweep configuration: reading, validating and defaulting it as W&B does.
//!
//! The rules are those of W&B's documentation and of its open-source reference implementation
//! (`wandb/sweeps`, `config/schema.json` and `params.py`): the top-level keys, `method`, `metric`,
//! the parameter distributions with their keys and defaults, the distribution inferred when
//! `distribution:` is left out, nested `parameters:`, `run_cap` and Hyperband's
//! `early_terminate`. Every error names the line and the dotted key it is about
//! ([`ConfigError`]). `SWEEPS.md` lists where we deliberately differ.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::command;
use crate::doc::{self, Node, NodeKind};
use crate::error::{ConfigError, ConfigErrorKind};

/// A validated sweep configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// `program`: the training script, for `${program}`.
    pub program: Option<String>,
    /// `command`: the command template; `None` means W&B's default
    /// (`${env} ${interpreter} ${program} ${args}`).
    pub command: Option<Vec<String>>,
    /// `method`: how runs are chosen.
    pub method: Method,
    /// `metric`: what bayes search and Hyperband optimise.
    pub metric: Option<Metric>,
    /// `parameters`, in document order (searches order them by name, as W&B does).
    pub parameters: Vec<(String, Parameter)>,
    /// `run_cap`: at most this many runs.
    pub run_cap: Option<u64>,
    /// `early_terminate`.
    pub early_terminate: Option<Hyperband>,
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `project`.
    pub project: Option<String>,
    /// `entity`.
    pub entity: Option<String>,
    warnings: Vec<String>,
    raw: Value,
}

/// `method:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every combination once.
    Grid,
    /// Independent draws from each parameter's distribution.
    Random,
    /// A Gaussian process over the finished runs' metric.
    Bayes,
}

impl Method {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Bayes => "bayes",
        }
    }
}

/// `metric.goal:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Lower is better (W&B's default).
    Minimize,
    /// Higher is better.
    Maximize,
}

impl Goal {
    /// True when `a` is better than `b` for this goal.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Minimize => a < b,
            Goal::Maximize => a > b,
        }
    }
}

/// `metric.impute` / `metric.impute_while_running`: the metric value given to a run that has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impute {
    /// The worst value any finished run reached (W&B's default).
    Worst,
    /// The run's own best value.
    Best,
    /// The run's latest value.
    Latest,
}

/// `metric:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The logged key to optimise.
    pub name: String,
    /// `goal`, default minimize.
    pub goal: Goal,
    /// `target`: once a run reaches it, no new runs are proposed.
    pub target: Option<f64>,
    /// `impute`, default worst: the value bayes search gives failed runs.
    pub impute: Impute,
    /// `impute_while_running`: when set, running runs count with this value instead of as
    /// runs in flight.
    pub impute_while_running: Option<Impute>,
}

impl Metric {
    /// True when `value` reaches `target` for the goal.
    pub fn reaches_target(&self, value: f64) -> bool {
        match (self.target, self.goal) {
            (Some(t), Goal::Minimize) => value <= t,
            (Some(t), Goal::Maximize) => value >= t,
            (None, _) => false,
        }
    }
}

/// One entry under `parameters:`.
#[derive(Debug, Clone, PartialEq)]
pub enum Parameter {
    /// A searched (or constant) value.
    Value(Distribution),
    /// `parameters:` inside a parameter: a group whose run config value is a mapping.
    Nested(Vec<(String, Parameter)>),
}

/// A quantisation step `q`, and whether it was written as an integer (W&B then returns integers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantum {
    /// The step, greater than 0.
    pub q: f64,
    /// True when `q` was an integer in the configuration.
    pub integer: bool,
}

impl Quantum {
    /// W&B's default, `q: 1.0` (a float, so results stay floats).
    pub const DEFAULT: Quantum = Quantum {
        q: 1.0,
        integer: false,
    };

    /// `round(x / q) * q`, with NumPy's rounding (half to even).
    pub fn apply(self, x: f64) -> Value {
        let v = (x / self.q).round_ties_even() * self.q;
        if self.integer {
            // An integer q of at most 2^53 gives an integral v; beyond i64 the float stays.
            if v.is_finite() && v.abs() < 9.2e18 {
                return Value::from(v as i64);
            }
        }
        float_value(v)
    }
}

/// A JSON number for a float; the non-finite ones become `null` (no JSON form).
pub(crate) fn float_value(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A parameter's distribution, with W&B's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// `value`: always this value.
    Constant {
        /// The value.
        value: Value,
    },
    /// `values`, optionally with `probabilities`.
    Categorical {
        /// The values.
        values: Vec<Value>,
        /// One probability per value, summing to 1; `None` means uniform.
        probabilities: Option<Vec<f64>>,
    },
    /// Integers from `min` to `max`, both included.
    IntUniform {
        /// Lowest value.
        min: i64,
        /// Highest value.
        max: i64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `round(uniform / q) * q`.
    QUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// The step.
        q: Quantum,
        /// True when `min`, `max` and `q` are all integers (a grid then holds integers).
        integers: bool,
    },
    /// `exp(uniform(min, max))`: `min` and `max` are base-e exponents (`log_uniform`,
    /// deprecated by W&B), or with `values: true` the limit values (`log_uniform_values`).
    LogUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Bounds are values, not exponents.
        values: bool,
    },
    /// Quantised [`Distribution::LogUniform`] (`q_log_uniform`, `q_log_uniform_values`).
    QLogUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Bounds are values, not exponents.
        values: bool,
        /// The step.
        q: Quantum,
    },
    /// `X` with `log(1/X)` uniform (`inv_log_uniform` on exponents, `inv_log_uniform_values`
    /// on values).
    InvLogUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Bounds are values, not exponents.
        values: bool,
    },
    /// Normal with mean `mu` (default 0) and deviation `sigma` (default 1).
    Normal {
        /// Mean.
        mu: f64,
        /// Standard deviation.
        sigma: f64,
    },
    /// Quantised normal.
    QNormal {
        /// Mean.
        mu: f64,
        /// Standard deviation.
        sigma: f64,
        /// The step.
        q: Quantum,
    },
    /// `exp(normal(mu, sigma))`.
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
    /// Quantised log-normal.
    QLogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
        /// The step.
        q: Quantum,
    },
    /// Beta with shapes `a` and `b` (default 1).
    Beta {
        /// Shape a.
        a: f64,
        /// Shape b.
        b: f64,
    },
    /// Quantised beta.
    QBeta {
        /// Shape a.
        a: f64,
        /// Shape b.
        b: f64,
        /// The step.
        q: Quantum,
    },
}

/// The most combinations a grid may have (a larger grid is refused when the sweep is created).
pub const MAX_GRID: u64 = 1_000_000;

/// Every `distribution:` name W&B knows, in its documentation's order.
pub const DISTRIBUTIONS: &[&str] = &[
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
    "categorical_w_probabilities",
];

impl Distribution {
    /// The `distribution:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::Constant { .. } => "constant",
            Distribution::Categorical {
                probabilities: None,
                ..
            } => "categorical",
            Distribution::Categorical { .. } => "categorical_w_probabilities",
            Distribution::IntUniform { .. } => "int_uniform",
            Distribution::Uniform { .. } => "uniform",
            Distribution::QUniform { .. } => "q_uniform",
            Distribution::LogUniform { values: false, .. } => "log_uniform",
            Distribution::LogUniform { values: true, .. } => "log_uniform_values",
            Distribution::QLogUniform { values: false, .. } => "q_log_uniform",
            Distribution::QLogUniform { values: true, .. } => "q_log_uniform_values",
            Distribution::InvLogUniform { values: false, .. } => "inv_log_uniform",
            Distribution::InvLogUniform { values: true, .. } => "inv_log_uniform_values",
            Distribution::Normal { .. } => "normal",
            Distribution::QNormal { .. } => "q_normal",
            Distribution::LogNormal { .. } => "log_normal",
            Distribution::QLogNormal { .. } => "q_log_normal",
            Distribution::Beta { .. } => "beta",
            Distribution::QBeta { .. } => "q_beta",
        }
    }

    /// True for `constant`: not part of the search space.
    pub fn is_constant(&self) -> bool {
        matches!(self, Distribution::Constant { .. })
    }

    /// The number of values a grid walks (saturating), or `None` for a distribution without a grid.
    pub fn grid_len(&self) -> Option<u64> {
        match self {
            Distribution::Constant { .. } => Some(1),
            Distribution::Categorical {
                values,
                probabilities: None,
            } => Some(values.len() as u64),
            Distribution::IntUniform { min, max } => {
                Some(u64::try_from(i128::from(*max) - i128::from(*min) + 1).unwrap_or(u64::MAX))
            }
            Distribution::QUniform { min, max, q, .. } => {
                // Saturates: a float beyond u64's range casts to u64::MAX.
                Some(((max - min) / q.q).ceil().max(0.0) as u64)
            }
            _ => None,
        }
    }

    /// The finite list of values a grid walks, or `None` for a distribution without one.
    ///
    /// The list is built in memory: a validated grid configuration holds at most
    /// [`MAX_GRID`] combinations, a distribution of another method may not (see [`Self::grid_len`]).
    ///
    /// As W&B's grid search: `values` as given, a constant as one value, `int_uniform` as
    /// `min..=max`, `q_uniform` as NumPy's `arange(min, max, q)` (so `max` itself is left out).
    /// Categorical values with `probabilities` have no grid.
    pub fn grid_values(&self) -> Option<Vec<Value>> {
        match self {
            Distribution::Constant { value } => Some(vec![value.clone()]),
            Distribution::Categorical {
                values,
                probabilities: None,
            } => Some(values.clone()),
            Distribution::IntUniform { min, max } => Some((*min..=*max).map(Value::from).collect()),
            Distribution::QUniform {
                min,
                max,
                q,
                integers,
            } => {
                let n = ((max - min) / q.q).ceil().max(0.0) as u64;
                Some(
                    (0..n)
                        .map(|i| {
                            let v = min + i as f64 * q.q;
                            if *integers {
                                Value::from(v as i64)
                            } else {
                                float_value(v)
                            }
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

/// `early_terminate: {type: hyperband, ...}`, with W&B's defaults (`eta: 3`, `strict: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperband {
    /// How the brackets are set.
    pub brackets: Brackets,
    /// The bracket multiplier, greater than 1.
    pub eta: f64,
    /// Judge a run by its value at the bracket (true) instead of its best value so far.
    pub strict: bool,
}

/// How Hyperband's brackets are given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Brackets {
    /// `min_iter`: brackets at `min_iter`, `min_iter * eta`, `min_iter * eta^2`, ...
    MinIter(u64),
    /// `max_iter` and `s`: brackets at `max_iter / eta`, `max_iter / eta^2`, ... (`s` of them).
    MaxIter {
        /// `max_iter`.
        max_iter: u64,
        /// `s`.
        s: u64,
    },
}

/// The top-level keys W&B's schema knows.
const TOP_LEVEL_KEYS: &[&str] = &[
    "program",
    "command",
    "method",
    "metric",
    "parameters",
    "run_cap",
    "early_terminate",
    "name",
    "description",
    "project",
    "entity",
    "controller",
    "apiVersion",
    "kind",
    "job",
    "image_uri",
];

impl SweepConfig {
    /// Reads a configuration from YAML (or JSON) text; `file` names it in errors.
    pub fn from_yaml_str(
        text: &str,
        file: Option<&str>,
    ) -> std::result::Result<SweepConfig, ConfigError> {
        let root = doc::parse(text, file)?;
        Parser { file }.config(&root)
    }

    /// Reads a configuration from a JSON value (as persisted in a [`crate::Sweep`]).
    pub fn from_json_value(value: &Value) -> std::result::Result<SweepConfig, ConfigError> {
        Parser { file: None }.config(&Node::from_json(value))
    }

    /// The configuration as written (keys in their order, no defaults filled), as JSON:
    /// what `UpsertSweep` sends to W&B.
    pub fn to_json(&self) -> &Value {
        &self.raw
    }

    /// The configuration as the text `UpsertSweep` sends W&B (its `config` variable): YAML, with
    /// the distribution filled in for top-level parameters given by `min` and `max` alone, as the
    /// SDK's `wandb sweep` fills it (`int_uniform` for two integers, `uniform` for two floats).
    pub fn upsert_yaml(&self) -> String {
        let mut value = self.raw.clone();
        if let Some(params) = value.get_mut("parameters").and_then(Value::as_object_mut) {
            for param in params.values_mut() {
                let Some(p) = param.as_object_mut() else {
                    continue;
                };
                if p.contains_key("distribution") {
                    continue;
                }
                if let (Some(min), Some(max)) = (p.get("min"), p.get("max")) {
                    let integers = !min.is_f64() && !max.is_f64();
                    let name = if integers { "int_uniform" } else { "uniform" };
                    p.insert("distribution".to_owned(), Value::from(name));
                }
            }
        }
        let mut out = String::new();
        let yaml = to_yaml(&value);
        if saphyr::YamlEmitter::new(&mut out).dump(&yaml).is_err() {
            // Writing to a String cannot fail; JSON is YAML too.
            return value.to_string();
        }
        let body = out.strip_prefix("---\n").unwrap_or(&out);
        format!("{body}\n")
    }

    /// Non-fatal remarks, e.g. a distribution W&B has deprecated.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True when `${args_json_file}` is in the command: the caller writes the parameters as
    /// JSON to the file it names (see [`crate::command`]).
    pub fn wants_args_json_file(&self) -> bool {
        self.command
            .as_deref()
            .is_some_and(|items| items.iter().any(|c| c == "${args_json_file}"))
    }
}

impl Serialize for SweepConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SweepConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SweepConfig::from_json_value(&value).map_err(serde::de::Error::custom)
    }
}

/// A mapping node seen from the validator: its entries, its line and its path.
struct MapView<'a> {
    entries: &'a [(String, usize, Node)],
    line: usize,
    path: String,
}

impl<'a> MapView<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }

    fn key_line(&self, key: &str) -> usize {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or(self.line, |(_, line, _)| *line)
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

struct Parser<'f> {
    file: Option<&'f str>,
}

type PResult<T> = std::result::Result<T, ConfigError>;

impl Parser<'_> {
    fn err(&self, line: usize, key: impl Into<String>, kind: ConfigErrorKind) -> ConfigError {
        ConfigError {
            file: self.file.map(str::to_owned),
            line,
            key: key.into(),
            kind,
        }
    }

    fn map<'a>(&self, node: &'a Node, path: &str) -> PResult<MapView<'a>> {
        match &node.kind {
            NodeKind::Map(entries) => Ok(MapView {
                entries,
                line: node.line,
                path: path.to_owned(),
            }),
            _ => Err(self.err(
                node.line,
                path,
                ConfigErrorKind::ExpectedType {
                    expected: "a mapping",
                    found: node.describe(),
                },
            )),
        }
    }

    fn expected(&self, node: &Node, path: &str, expected: &'static str) -> ConfigError {
        self.err(
            node.line,
            path,
            ConfigErrorKind::ExpectedType {
                expected,
                found: node.describe(),
            },
        )
    }

    fn string(&self, node: &Node, path: &str) -> PResult<String> {
        match &node.kind {
            NodeKind::Str(s) => Ok(s.clone()),
            _ => Err(self.expected(node, path, "a string")),
        }
    }

    fn number(&self, node: &Node, path: &str) -> PResult<f64> {
        match node.kind {
            NodeKind::Int(i) => Ok(i as f64),
            NodeKind::Float(f) if f.is_finite() => Ok(f),
            NodeKind::Float(f) => Err(self.err(
                node.line,
                path,
                ConfigErrorKind::NonFinite {
                    found: format!("{f}"),
                },
            )),
            _ => Err(self.expected(node, path, "a number")),
        }
    }

    /// An integer, also from an integral float (JSON Schema's `integer`).
    fn integer(&self, node: &Node, path: &str) -> PResult<i64> {
        match node.kind {
            NodeKind::Int(i) => Ok(i),
            NodeKind::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(self.expected(node, path, "an integer")),
        }
    }

    fn positive_integer(
        &self,
        node: &Node,
        path: &str,
        rule: &'static str,
        min: i64,
    ) -> PResult<u64> {
        let i = self.integer(node, path)?;
        if i < min {
            return Err(self.err(
                node.line,
                path,
                ConfigErrorKind::OutOfRange {
                    found: i.to_string(),
                    rule,
                },
            ));
        }
        Ok(i as u64)
    }

    fn boolean(&self, node: &Node, path: &str) -> PResult<bool> {
        match node.kind {
            NodeKind::Bool(b) => Ok(b),
            _ => Err(self.expected(node, path, "true or false")),
        }
    }

    fn json(&self, node: &Node, path: &str) -> PResult<Value> {
        node.to_json()
            .map_err(|(line, kind)| self.err(line, path, kind))
    }

    fn check_keys(&self, view: &MapView<'_>, known: &[&'static str]) -> PResult<()> {
        for (key, line, _) in view.entries {
            if !known.contains(&key.as_str()) {
                return Err(self.err(
                    *line,
                    view.child(key),
                    ConfigErrorKind::UnknownKey {
                        known: known.to_vec(),
                    },
                ));
            }
        }
        Ok(())
    }

    fn one_of<T: Copy>(
        &self,
        node: &Node,
        path: &str,
        choices: &[(&'static str, T)],
    ) -> PResult<T> {
        let s = self.string(node, path)?;
        choices
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                self.err(
                    node.line,
                    path,
                    ConfigErrorKind::UnknownValue {
                        found: s.clone(),
                        allowed: choices.iter().map(|(n, _)| *n).collect(),
                    },
                )
            })
    }

    fn opt_string(&self, view: &MapView<'_>, key: &str) -> PResult<Option<String>> {
        view.get(key)
            .map(|n| self.string(n, &view.child(key)))
            .transpose()
    }

    fn config(&self, root: &Node) -> PResult<SweepConfig> {
        let top = self.map(root, "")?;
        for (key, line, _) in top.entries {
            match key.as_str() {
                "scheduler" => {
                    return Err(self.err(
                        *line,
                        key.clone(),
                        ConfigErrorKind::Unsupported {
                            what: "a custom scheduler",
                        },
                    ));
                }
                "metrics" => {
                    return Err(self.err(
                        *line,
                        key.clone(),
                        ConfigErrorKind::Unsupported {
                            what: "multi-objective `metrics` (it needs method: custom)",
                        },
                    ));
                }
                _ => {}
            }
        }
        self.check_keys(&top, TOP_LEVEL_KEYS)?;

        let method_node = top.get("method").ok_or_else(|| {
            self.err(
                root.line,
                "",
                ConfigErrorKind::Missing { missing: "method" },
            )
        })?;
        if matches!(&method_node.kind, NodeKind::Str(s) if s == "custom") {
            return Err(self.err(
                method_node.line,
                "method",
                ConfigErrorKind::Unsupported {
                    what: "method: custom",
                },
            ));
        }
        let method = self.one_of(
            method_node,
            "method",
            &[
                ("grid", Method::Grid),
                ("random", Method::Random),
                ("bayes", Method::Bayes),
            ],
        )?;

        let program = self.opt_string(&top, "program")?;
        let name = self.opt_string(&top, "name")?;
        let description = self.opt_string(&top, "description")?;
        let project = self.opt_string(&top, "project")?;
        let entity = self.opt_string(&top, "entity")?;
        for key in ["apiVersion", "job", "image_uri"] {
            self.opt_string(&top, key)?;
        }
        if let Some(kind) = top.get("kind") {
            self.one_of(kind, "kind", &[("sweep", ())])?;
        }
        if let Some(controller) = top.get("controller") {
            let view = self.map(controller, "controller")?;
            match view.get("type") {
                Some(t) => {
                    self.one_of(t, "controller.type", &[("local", ()), ("cloud", ())])?;
                }
                None => {
                    return Err(self.err(
                        view.line,
                        "controller",
                        ConfigErrorKind::Missing { missing: "type" },
                    ));
                }
            }
        }

        let metric = top.get("metric").map(|n| self.metric(n)).transpose()?;
        let run_cap = top
            .get("run_cap")
            .map(|n| self.positive_integer(n, "run_cap", "must be greater than 0", 1))
            .transpose()?;
        let early_terminate = top
            .get("early_terminate")
            .map(|n| self.early_terminate(n))
            .transpose()?;
        let command = top.get("command").map(|n| self.command(n)).transpose()?;

        let params_node = top.get("parameters").ok_or_else(|| {
            self.err(
                root.line,
                "",
                ConfigErrorKind::Missing {
                    missing: "parameters",
                },
            )
        })?;
        let mut warnings = Vec::new();
        let parameters = self.parameters(params_node, "parameters", method, &mut warnings)?;
        if method == Method::Grid {
            let combinations = crate::params::flatten(&parameters)
                .iter()
                .map(|p| p.dist.grid_len().unwrap_or(0))
                .fold(1u64, u64::saturating_mul);
            if combinations > MAX_GRID {
                return Err(self.err(
                    top.key_line("parameters"),
                    "parameters",
                    ConfigErrorKind::GridTooLarge {
                        combinations,
                        max: MAX_GRID,
                    },
                ));
            }
        }

        if method == Method::Bayes {
            if metric.is_none() {
                return Err(self.err(
                    method_node.line,
                    "method",
                    ConfigErrorKind::NeedsMetric {
                        feature: "method: bayes",
                    },
                ));
            }
            if !has_searchable(&parameters) {
                return Err(self.err(
                    params_node.line,
                    "parameters",
                    ConfigErrorKind::NothingToSearch,
                ));
            }
        }
        if early_terminate.is_some() && metric.is_none() {
            return Err(self.err(
                top.key_line("early_terminate"),
                "early_terminate",
                ConfigErrorKind::NeedsMetric {
                    feature: "early_terminate",
                },
            ));
        }
        let raw = self.json(root, "")?;
        Ok(SweepConfig {
            program,
            command,
            method,
            metric,
            parameters,
            run_cap,
            early_terminate,
            name,
            description,
            project,
            entity,
            warnings,
            raw,
        })
    }

    fn metric(&self, node: &Node) -> PResult<Metric> {
        let view = self.map(node, "metric")?;
        self.check_keys(
            &view,
            &["name", "goal", "target", "impute", "impute_while_running"],
        )?;
        let name = match view.get("name") {
            Some(n) => self.string(n, "metric.name")?,
            None => {
                return Err(self.err(
                    view.line,
                    "metric",
                    ConfigErrorKind::Missing { missing: "name" },
                ));
            }
        };
        let goal = view
            .get("goal")
            .map(|n| {
                self.one_of(
                    n,
                    "metric.goal",
                    &[("minimize", Goal::Minimize), ("maximize", Goal::Maximize)],
                )
            })
            .transpose()?
            .unwrap_or(Goal::Minimize);
        let target = view
            .get("target")
            .map(|n| self.number(n, "metric.target"))
            .transpose()?;
        let imputes = [
            ("worst", Impute::Worst),
            ("best", Impute::Best),
            ("latest", Impute::Latest),
        ];
        let impute = view
            .get("impute")
            .map(|n| self.one_of(n, "metric.impute", &imputes))
            .transpose()?
            .unwrap_or(Impute::Worst);
        let impute_while_running = match view.get("impute_while_running") {
            None => None,
            Some(Node {
                kind: NodeKind::Bool(false),
                ..
            }) => None,
            Some(n) => self.one_of(
                n,
                "metric.impute_while_running",
                &[
                    ("latest", Some(Impute::Latest)),
                    ("best", Some(Impute::Best)),
                    ("worst", Some(Impute::Worst)),
                    ("false", None),
                ],
            )?,
        };
        Ok(Metric {
            name,
            goal,
            target,
            impute,
            impute_while_running,
        })
    }

    fn early_terminate(&self, node: &Node) -> PResult<Hyperband> {
        let view = self.map(node, "early_terminate")?;
        match view.get("type") {
            Some(t) => self.one_of(t, "early_terminate.type", &[("hyperband", ())])?,
            None => {
                return Err(self.err(
                    view.line,
                    "early_terminate",
                    ConfigErrorKind::Missing { missing: "type" },
                ));
            }
        }
        self.check_keys(
            &view,
            &["type", "min_iter", "max_iter", "s", "eta", "strict"],
        )?;
        let eta = match view.get("eta") {
            Some(n) => {
                let eta = self.number(n, "early_terminate.eta")?;
                if eta <= 1.0 {
                    return Err(self.err(
                        n.line,
                        "early_terminate.eta",
                        ConfigErrorKind::OutOfRange {
                            found: format!("{eta}"),
                            rule: "must be greater than 1",
                        },
                    ));
                }
                eta
            }
            None => 3.0,
        };
        let strict = view
            .get("strict")
            .map(|n| self.boolean(n, "early_terminate.strict"))
            .transpose()?
            .unwrap_or(true);
        let brackets = if let Some(max_iter) = view.get("max_iter") {
            let max_iter = self.positive_integer(
                max_iter,
                "early_terminate.max_iter",
                "must be at least 1",
                1,
            )?;
            let s = match view.get("s") {
                Some(n) => {
                    self.positive_integer(n, "early_terminate.s", "must be at least 1", 1)?
                }
                None => {
                    return Err(self.err(
                        view.key_line("max_iter"),
                        "early_terminate",
                        ConfigErrorKind::Missing { missing: "s" },
                    ));
                }
            };
            Brackets::MaxIter { max_iter, s }
        } else if let Some(min_iter) = view.get("min_iter") {
            Brackets::MinIter(self.positive_integer(
                min_iter,
                "early_terminate.min_iter",
                "must be at least 1",
                1,
            )?)
        } else {
            return Err(self.err(
                view.line,
                "early_terminate",
                ConfigErrorKind::Missing {
                    missing: "min_iter` or `max_iter",
                },
            ));
        };
        let hyperband = Hyperband {
            brackets,
            eta,
            strict,
        };
        if crate::hyperband::brackets(&hyperband).is_empty() {
            return Err(self.err(view.line, "early_terminate", ConfigErrorKind::NoBrackets));
        }
        Ok(hyperband)
    }

    fn command(&self, node: &Node) -> PResult<Vec<String>> {
        let NodeKind::Seq(items) = &node.kind else {
            return Err(self.expected(node, "command", "a list"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (idx, item) in items.iter().enumerate() {
            let path = format!("command[{idx}]");
            let text = match &item.kind {
                NodeKind::Str(s) => s.clone(),
                NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) | NodeKind::Null => {
                    // The agent runs `str(c)` on every item.
                    crate::pyfmt::python_str(&self.json(item, &path)?)
                }
                _ => return Err(self.expected(item, &path, "a string")),
            };
            // `${envvar:NAME}` is replaced before macros are looked at, as the agent does.
            if let Some(name) = command::whole_macro(&text)
                && !name.starts_with("envvar:")
                && !command::MACROS.contains(&name)
            {
                return Err(self.err(
                    item.line,
                    path,
                    ConfigErrorKind::UnknownMacro {
                        found: text.clone(),
                        known: command::MACROS.to_vec(),
                    },
                ));
            }
            out.push(text);
        }
        Ok(out)
    }

    fn parameters(
        &self,
        node: &Node,
        path: &str,
        method: Method,
        warnings: &mut Vec<String>,
    ) -> PResult<Vec<(String, Parameter)>> {
        let view = self.map(node, path)?;
        if view.entries.is_empty() {
            return Err(self.err(node.line, path, ConfigErrorKind::EmptyList));
        }
        let mut out = Vec::with_capacity(view.entries.len());
        let top = path == "parameters";
        for (name, line, value) in view.entries {
            let param_path = view.child(name);
            if !valid_param_name(name) {
                return Err(self.err(
                    *line,
                    param_path,
                    ConfigErrorKind::ExpectedType {
                        expected: "a parameter name of letters, digits, `_`, `.` and `-`, not starting with a digit",
                        found: format!("{name:?}"),
                    },
                ));
            }
            let param = self.parameter(value, &param_path, method, top, warnings)?;
            out.push((name.clone(), param));
        }
        Ok(out)
    }

    fn parameter(
        &self,
        node: &Node,
        path: &str,
        method: Method,
        top: bool,
        warnings: &mut Vec<String>,
    ) -> PResult<Parameter> {
        let view = self.map(node, path)?;
        if let Some(nested) = view.get("parameters") {
            self.check_keys(&view, &["parameters"])?;
            let child = view.child("parameters");
            return Ok(Parameter::Nested(
                self.parameters(nested, &child, method, warnings)?,
            ));
        }
        let name: String = match view.get("distribution") {
            Some(d) => {
                let s = self.string(d, &view.child("distribution"))?;
                if !DISTRIBUTIONS.contains(&s.as_str()) {
                    return Err(self.err(
                        d.line,
                        view.child("distribution"),
                        ConfigErrorKind::UnknownDistribution {
                            found: s,
                            known: DISTRIBUTIONS.to_vec(),
                        },
                    ));
                }
                s
            }
            None if top && mixed_bounds(&view) => {
                // The SDK's `wandb sweep` refuses these at the top level (nested ones are
                // inferred as uniform by the controller).
                let line = view.get("min").map_or(node.line, |n| n.line);
                return Err(self.err(line, path, ConfigErrorKind::AmbiguousBounds));
            }
            None => infer_distribution(&view)
                .ok_or_else(|| self.err(node.line, path, ConfigErrorKind::CannotInferDistribution))?
                .to_owned(),
        };
        let dist = self.distribution(&view, &name, path)?;
        if matches!(
            dist,
            Distribution::LogUniform { values: false, .. }
                | Distribution::QLogUniform { values: false, .. }
                | Distribution::InvLogUniform { values: false, .. }
        ) {
            warnings.push(format!(
                "{path}: {} takes min and max as base-e exponents; {}_values takes the limit values",
                dist.name(),
                dist.name()
            ));
        }
        if method == Method::Grid && dist.grid_len().is_none() {
            let line = view.get("distribution").map_or(node.line, |d| d.line);
            return Err(self.err(
                line,
                path,
                ConfigErrorKind::GridNeedsDiscrete {
                    distribution: if matches!(dist, Distribution::Categorical { .. }) {
                        "categorical with probabilities"
                    } else {
                        dist.name()
                    },
                },
            ));
        }
        Ok(Parameter::Value(dist))
    }

    fn distribution(&self, view: &MapView<'_>, name: &str, path: &str) -> PResult<Distribution> {
        let (allowed, required): (&[&'static str], &[&'static str]) = match name {
            "constant" => (&["value"], &["value"]),
            "categorical" => (&["values", "probabilities"], &["values"]),
            "categorical_w_probabilities" => {
                (&["values", "probabilities"], &["values", "probabilities"])
            }
            "int_uniform"
            | "uniform"
            | "log_uniform"
            | "log_uniform_values"
            | "inv_log_uniform"
            | "inv_log_uniform_values" => (&["min", "max"], &["min", "max"]),
            "q_uniform" | "q_log_uniform" | "q_log_uniform_values" => {
                (&["min", "max", "q"], &["min", "max"])
            }
            "normal" | "log_normal" => (&["mu", "sigma"], &[]),
            "q_normal" | "q_log_normal" => (&["mu", "sigma", "q"], &[]),
            "beta" => (&["a", "b"], &[]),
            _ => (&["a", "b", "q"], &[]),
        };
        let static_name = DISTRIBUTIONS
            .iter()
            .copied()
            .find(|d| *d == name)
            .unwrap_or("q_beta");
        for (key, line, _) in view.entries {
            if key != "distribution" && !allowed.contains(&key.as_str()) {
                return Err(self.err(
                    *line,
                    view.child(key),
                    ConfigErrorKind::NotForDistribution {
                        found: key.clone(),
                        distribution: static_name,
                        allowed: allowed.to_vec(),
                    },
                ));
            }
        }
        for key in required {
            if view.get(key).is_none() {
                return Err(self.err(view.line, path, ConfigErrorKind::Missing { missing: key }));
            }
        }
        let num = |key: &str, default: f64| -> PResult<f64> {
            view.get(key)
                .map_or(Ok(default), |n| self.number(n, &view.child(key)))
        };
        let range_check = |key: &str, value: f64, ok: bool, rule: &'static str| -> PResult<()> {
            if ok {
                return Ok(());
            }
            let line = view.get(key).map_or(view.line, |n| n.line);
            Err(self.err(
                line,
                view.child(key),
                ConfigErrorKind::OutOfRange {
                    found: format!("{value}"),
                    rule,
                },
            ))
        };
        let quantum = || -> PResult<Quantum> {
            match view.get("q") {
                None => Ok(Quantum::DEFAULT),
                Some(n) => {
                    let q = self.number(n, &view.child("q"))?;
                    range_check("q", q, q > 0.0, "must be greater than 0")?;
                    Ok(Quantum {
                        q,
                        integer: matches!(n.kind, NodeKind::Int(_)),
                    })
                }
            }
        };
        let min_max = |positive: bool| -> PResult<(f64, f64)> {
            let min = num("min", 0.0)?;
            let max = num("max", 0.0)?;
            if positive {
                range_check("min", min, min > 0.0, "must be greater than 0")?;
            }
            if min >= max {
                let line = view.get("max").map_or(view.line, |n| n.line);
                let show = |key: &str| view.get(key).map(Node::describe).unwrap_or_default();
                return Err(self.err(
                    line,
                    path,
                    ConfigErrorKind::MinNotLessThanMax {
                        min: show("min"),
                        max: show("max"),
                    },
                ));
            }
            Ok((min, max))
        };
        let mu_sigma = || -> PResult<(f64, f64)> {
            let mu = num("mu", 0.0)?;
            let sigma = num("sigma", 1.0)?;
            range_check("sigma", sigma, sigma >= 0.0, "must be at least 0")?;
            Ok((mu, sigma))
        };
        let shapes = || -> PResult<(f64, f64)> {
            let a = num("a", 1.0)?;
            let b = num("b", 1.0)?;
            range_check("a", a, a > 0.0, "must be greater than 0")?;
            range_check("b", b, b > 0.0, "must be greater than 0")?;
            Ok((a, b))
        };
        Ok(match name {
            "constant" => {
                let value = view
                    .get("value")
                    .map_or(Ok(Value::Null), |n| self.json(n, &view.child("value")))?;
                Distribution::Constant { value }
            }
            "categorical" | "categorical_w_probabilities" => self.categorical(view)?,
            "int_uniform" => {
                let int = |key: &str| -> PResult<i64> {
                    let node = view.get(key).ok_or_else(|| {
                        let missing = if key == "min" { "min" } else { "max" };
                        self.err(view.line, path, ConfigErrorKind::Missing { missing })
                    })?;
                    match node.kind {
                        NodeKind::Int(i) => Ok(i),
                        _ => Err(self.expected(node, &view.child(key), "an integer")),
                    }
                };
                let (min, max) = (int("min")?, int("max")?);
                min_max(false)?;
                Distribution::IntUniform { min, max }
            }
            "uniform" => {
                let (min, max) = min_max(false)?;
                Distribution::Uniform { min, max }
            }
            "q_uniform" => {
                let (min, max) = min_max(false)?;
                let q = quantum()?;
                let is_int =
                    |key: &str| matches!(view.get(key).map(|n| &n.kind), Some(NodeKind::Int(_)));
                let integers = is_int("min") && is_int("max") && q.integer;
                Distribution::QUniform {
                    min,
                    max,
                    q,
                    integers,
                }
            }
            "log_uniform" | "log_uniform_values" => {
                let values = name == "log_uniform_values";
                let (min, max) = min_max(values)?;
                Distribution::LogUniform { min, max, values }
            }
            "q_log_uniform" | "q_log_uniform_values" => {
                let values = name == "q_log_uniform_values";
                let (min, max) = min_max(values)?;
                let q = quantum()?;
                Distribution::QLogUniform {
                    min,
                    max,
                    values,
                    q,
                }
            }
            "inv_log_uniform" | "inv_log_uniform_values" => {
                let values = name == "inv_log_uniform_values";
                let (min, max) = min_max(values)?;
                Distribution::InvLogUniform { min, max, values }
            }
            "normal" => {
                let (mu, sigma) = mu_sigma()?;
                Distribution::Normal { mu, sigma }
            }
            "q_normal" => {
                let (mu, sigma) = mu_sigma()?;
                Distribution::QNormal {
                    mu,
                    sigma,
                    q: quantum()?,
                }
            }
            "log_normal" => {
                let (mu, sigma) = mu_sigma()?;
                Distribution::LogNormal { mu, sigma }
            }
            "q_log_normal" => {
                let (mu, sigma) = mu_sigma()?;
                Distribution::QLogNormal {
                    mu,
                    sigma,
                    q: quantum()?,
                }
            }
            "beta" => {
                let (a, b) = shapes()?;
                Distribution::Beta { a, b }
            }
            _ => {
                let (a, b) = shapes()?;
                Distribution::QBeta {
                    a,
                    b,
                    q: quantum()?,
                }
            }
        })
    }

    fn categorical(&self, view: &MapView<'_>) -> PResult<Distribution> {
        let key = view.child("values");
        let node = view.get("values").ok_or_else(|| {
            self.err(
                view.line,
                &view.path,
                ConfigErrorKind::Missing { missing: "values" },
            )
        })?;
        let NodeKind::Seq(items) = &node.kind else {
            return Err(self.expected(node, &key, "a list"));
        };
        if items.is_empty() {
            return Err(self.err(node.line, key, ConfigErrorKind::EmptyList));
        }
        let values = items
            .iter()
            .enumerate()
            .map(|(idx, item)| self.json(item, &format!("{key}[{idx}]")))
            .collect::<PResult<Vec<_>>>()?;
        let probabilities = match view.get("probabilities") {
            None => None,
            Some(p) => {
                let pkey = view.child("probabilities");
                let NodeKind::Seq(ps) = &p.kind else {
                    return Err(self.expected(p, &pkey, "a list"));
                };
                let mut probs = Vec::with_capacity(ps.len());
                for (idx, item) in ps.iter().enumerate() {
                    let path = format!("{pkey}[{idx}]");
                    let v = self.number(item, &path)?;
                    if v < 0.0 {
                        return Err(self.err(
                            item.line,
                            path,
                            ConfigErrorKind::OutOfRange {
                                found: format!("{v}"),
                                rule: "must be at least 0",
                            },
                        ));
                    }
                    probs.push(v);
                }
                if probs.len() != values.len() {
                    return Err(self.err(
                        p.line,
                        pkey,
                        ConfigErrorKind::ProbabilitiesLength {
                            n_values: values.len(),
                            n_probabilities: probs.len(),
                        },
                    ));
                }
                let sum: f64 = probs.iter().sum();
                // NumPy's isclose(sum, 1.0): |sum - 1| <= 1e-8 + 1e-5.
                if (sum - 1.0).abs() > 1e-8 + 1e-5 {
                    return Err(self.err(p.line, pkey, ConfigErrorKind::ProbabilitiesSum { sum }));
                }
                Some(probs)
            }
        };
        Ok(Distribution::Categorical {
            values,
            probabilities,
        })
    }
}

/// A JSON value as a `saphyr` YAML tree, for the emitter.
fn to_yaml(value: &Value) -> saphyr::Yaml<'static> {
    use saphyr::{Scalar, Yaml};
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or(f64::NAN).into())),
        },
        Value::String(s) => Yaml::Value(Scalar::String(s.clone().into())),
        Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut out = saphyr::Mapping::new();
            for (k, v) in map {
                out.insert(Yaml::Value(Scalar::String(k.clone().into())), to_yaml(v));
            }
            Yaml::Mapping(out)
        }
    }
}

/// The distribution W&B infers when `distribution:` is left out (the first of its schemas that
/// matches): `values` → categorical, `min`/`max` both integers → int_uniform, other numbers →
/// uniform, `value` → constant.
fn infer_distribution(view: &MapView<'_>) -> Option<&'static str> {
    if view.get("values").is_some() {
        return Some(if view.get("probabilities").is_some() {
            "categorical_w_probabilities"
        } else {
            "categorical"
        });
    }
    if let (Some(min), Some(max)) = (view.get("min"), view.get("max")) {
        let both_int = matches!(min.kind, NodeKind::Int(_)) && matches!(max.kind, NodeKind::Int(_));
        return Some(if both_int { "int_uniform" } else { "uniform" });
    }
    if view.get("value").is_some() {
        return Some("constant");
    }
    None
}

/// `min` and `max` both numbers, one an integer and the other a float.
fn mixed_bounds(view: &MapView<'_>) -> bool {
    match (
        view.get("min").map(|n| &n.kind),
        view.get("max").map(|n| &n.kind),
    ) {
        (Some(NodeKind::Int(_)), Some(NodeKind::Float(_)))
        | (Some(NodeKind::Float(_)), Some(NodeKind::Int(_))) => view.get("distribution").is_none(),
        _ => false,
    }
}

/// W&B's parameter names: `^[A-Za-z_][A-Za-z0-9_.-]*$`.
fn valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn has_searchable(params: &[(String, Parameter)]) -> bool {
    params.iter().any(|(_, p)| match p {
        Parameter::Value(d) => !d.is_constant(),
        Parameter::Nested(children) => has_searchable(children),
    })
}
