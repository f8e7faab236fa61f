//! Typed errors: [`ConfigError`] for a bad sweep configuration (file, line, key, what is wrong),
//! [`SweepError`] for what goes wrong while proposing runs or stopping them.

use std::fmt;

/// A sweep configuration that W&B's rules refuse, with where it is.
///
/// `Display` writes `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are unknown
/// (a configuration given as JSON value has no lines), e.g.
/// `sweep.yaml:7: parameters.lr.min: expected a number, found "abc"`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    /// The file the configuration came from, when it came from one.
    pub file: Option<String>,
    /// The 1-based line of the offending key or value; 0 when unknown.
    pub line: usize,
    /// The dotted path of the offending key (`parameters.lr.min`); empty for the whole document.
    pub key: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{file}: ")?,
            (Some(file), line) => write!(f, "{file}:{line}: ")?,
            (None, 0) => {}
            (None, line) => write!(f, "line {line}: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// The ways a sweep configuration can be wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The text is not YAML (or JSON).
    #[error("not valid YAML: {message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// The document is empty.
    #[error("the configuration is empty")]
    Empty,
    /// Flow collections (`[`, `{`) nested deeper than the parser is allowed to go.
    #[error("collections nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More than one YAML document (`---`) in the file.
    #[error("a second YAML document starts here; a sweep configuration is one document")]
    MultipleDocuments,
    /// A YAML alias (`*name`).
    #[error("YAML aliases are not supported in a sweep configuration")]
    Alias,
    /// A tagged value that does not parse as its tag says (`!!int abc`).
    #[error("the value does not match its YAML tag")]
    BadTaggedValue,
    /// A value of the wrong type.
    #[error("expected {expected}, found {found}")]
    ExpectedType {
        /// What was expected ("a number", "a list").
        expected: &'static str,
        /// What was found, as written.
        found: String,
    },
    /// `.inf` or `.nan` where a JSON-representable value is needed.
    #[error("non-finite number {found} is not allowed here")]
    NonFinite {
        /// The value.
        found: String,
    },
    /// A key W&B does not know at this place.
    #[error("unknown key (known keys here: {})", known.join(", "))]
    UnknownKey {
        /// The keys allowed here.
        known: Vec<&'static str>,
    },
    /// A required key is missing.
    #[error("required key `{missing}` is missing")]
    Missing {
        /// The missing key.
        missing: &'static str,
    },
    /// A key that the parameter's distribution does not take.
    #[error("`{found}` does not apply to distribution {distribution} (its keys: {})", allowed.join(", "))]
    NotForDistribution {
        /// The key.
        found: String,
        /// The distribution.
        distribution: &'static str,
        /// The keys it takes.
        allowed: Vec<&'static str>,
    },
    /// `distribution:` names no distribution W&B knows.
    #[error("unknown distribution {found:?} (known: {})", known.join(", "))]
    UnknownDistribution {
        /// The name found.
        found: String,
        /// Every distribution W&B knows.
        known: Vec<&'static str>,
    },
    /// A value outside the set W&B allows (method, goal, early_terminate type, impute).
    #[error("unknown value {found:?} (expected one of: {})", allowed.join(", "))]
    UnknownValue {
        /// The value found.
        found: String,
        /// The values allowed.
        allowed: Vec<&'static str>,
    },
    /// `min` is not below `max`.
    #[error("min {min} is not less than max {max}")]
    MinNotLessThanMax {
        /// `min` as written.
        min: String,
        /// `max` as written.
        max: String,
    },
    /// A number outside its range (`sigma` below 0, `q` not above 0, `eta` not above 1).
    #[error("{found} is out of range: {rule}")]
    OutOfRange {
        /// The value as written.
        found: String,
        /// The rule it breaks ("must be greater than 0").
        rule: &'static str,
    },
    /// A parameter whose distribution cannot be told from its keys.
    #[error(
        "cannot tell the distribution: give `value`, `values`, `min` and `max`, `parameters`, or `distribution`"
    )]
    CannotInferDistribution,
    /// Top-level `min` and `max` without `distribution`, one an integer and one a float.
    #[error(
        "min and max mix an integer and a float: write both as floats (uniform) or both as integers (int_uniform), or give `distribution`"
    )]
    AmbiguousBounds,
    /// An empty `values:` list or `parameters:` mapping.
    #[error("must not be empty")]
    EmptyList,
    /// `probabilities` and `values` differ in length.
    #[error("{n_probabilities} probabilities for {n_values} values")]
    ProbabilitiesLength {
        /// Number of values.
        n_values: usize,
        /// Number of probabilities.
        n_probabilities: usize,
    },
    /// `probabilities` do not sum to 1.
    #[error("probabilities sum to {sum}, not 1")]
    ProbabilitiesSum {
        /// Their sum.
        sum: f64,
    },
    /// A grid over a parameter that has no finite set of values.
    #[error(
        "grid search needs a finite set of values: use value, values, int_uniform or q_uniform, not {distribution}"
    )]
    GridNeedsDiscrete {
        /// The parameter's distribution.
        distribution: &'static str,
    },
    /// A grid with more combinations than [`crate::config::MAX_GRID`].
    #[error("the grid has {combinations} combinations, more than the {max} a sweep may have")]
    GridTooLarge {
        /// Its number of combinations (saturating).
        combinations: u64,
        /// The limit.
        max: u64,
    },
    /// Bayesian search or Hyperband without a `metric`.
    #[error("{feature} needs a `metric` with a `name`")]
    NeedsMetric {
        /// "method: bayes" or "early_terminate".
        feature: &'static str,
    },
    /// Bayesian search over constants only.
    #[error("bayes search needs at least one parameter that is not a constant")]
    NothingToSearch,
    /// A `${...}` command item that is no macro W&B's agent knows.
    #[error("unknown command macro {found} (known: {})", known.join(", "))]
    UnknownMacro {
        /// The item.
        found: String,
        /// The macros the agent knows.
        known: Vec<&'static str>,
    },
    /// A key W&B's schema knows that this offline implementation does not run.
    #[error("{what} is not supported offline")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
    },
    /// Hyperband settings that give no bracket.
    #[error("the hyperband settings give no bracket: increase s or max_iter, or decrease eta")]
    NoBrackets,
}

/// What goes wrong while running a sweep.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// A run's parameters do not fit the sweep's parameter space.
    #[error("run {run}: parameter {param}: {reason}")]
    RunParams {
        /// The run id.
        run: String,
        /// The parameter, as a dotted path.
        param: String,
        /// What does not fit.
        reason: String,
    },
    /// `attach` named a proposal this sweep never issued.
    #[error("sweep {sweep}: no proposal #{index}")]
    NoSuchProposal {
        /// The sweep id.
        sweep: String,
        /// The proposal index.
        index: u64,
    },
    /// A nested parameter collides with a flat one while building a run's config.
    #[error("parameter {key} is both a value and a group of nested parameters")]
    NestingConflict {
        /// The colliding key.
        key: String,
    },
    /// A command macro that needs a value the caller did not give (`${program}` without `program`).
    #[error("command item {item} needs {needs}")]
    CommandNeeds {
        /// The command item.
        item: String,
        /// What it needs.
        needs: &'static str,
    },
    /// The Gaussian process could not be fitted (a matrix that is not positive definite even with
    /// the nugget); the proposal falls back to random, so this only surfaces from the low-level API.
    #[error("the Gaussian process could not be fitted: {reason}")]
    GaussianProcess {
        /// Why.
        reason: &'static str,
    },
}
