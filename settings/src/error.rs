//! Validation errors, warnings and reports of ignored settings.
//!
//! Every message names the setting, the offending value (never for the API key) and the source
//! it came from, for example
//! `invalid mode "onlin" from environment variable WANDB_MODE: expected one of online, offline,
//! dryrun, disabled, shared, run`.

use std::fmt;
use std::path::PathBuf;

use crate::raw::Key;
use crate::source::Source;

/// A setting with an invalid value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `mode` is not one of W&B's modes.
    #[error(
        "invalid mode {value:?} from {origin}: expected one of online, offline, dryrun, disabled, shared, run"
    )]
    InvalidMode {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
    },
    /// `run_id` breaks W&B's rules.
    #[error("invalid run_id {value:?} from {origin}: {problem}")]
    InvalidRunId {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: RunIdProblem,
    },
    /// `project` breaks W&B's rules.
    #[error("invalid project {value:?} from {origin}: {problem}")]
    InvalidProject {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: ProjectProblem,
    },
    /// A tag in `run_tags` is empty or too long.
    #[error("invalid run_tags {value:?} from {origin}: {problem}")]
    InvalidRunTags {
        /// The tags given.
        value: Vec<String>,
        /// Where they came from.
        origin: Source,
        /// What is wrong with them.
        problem: TagProblem,
    },
    /// `resume` is not one of W&B's values.
    #[error("invalid resume {value:?} from {origin}: expected one of allow, must, never, auto")]
    InvalidResume {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
    },
    /// `console` is not one of W&B's values.
    #[error(
        "invalid console {value:?} from {origin}: expected one of auto, off, wrap, redirect, wrap_raw, wrap_emu"
    )]
    InvalidConsole {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
    },
    /// `x_stats_sampling_interval` is not a number of seconds of at least 0.1.
    #[error("invalid x_stats_sampling_interval {value:?} from {origin}: {problem}")]
    InvalidStatsSamplingInterval {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: IntervalProblem,
    },
    /// A boolean setting has a value that is not a boolean.
    #[error(
        "invalid {setting} {value:?} from {origin}: expected a boolean (true/false, yes/no, on/off, 1/0)"
    )]
    InvalidBool {
        /// The setting.
        setting: Key,
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
    },
    /// `base_url` is not a usable http(s) URL.
    #[error("invalid base_url {value:?} from {origin}: {problem}")]
    InvalidBaseUrl {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: BaseUrlProblem,
    },
    /// `api_key` is malformed. The value is never included.
    #[error("invalid api_key from {origin}: {problem}")]
    InvalidApiKey {
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: ApiKeyProblem,
    },
    /// The launch configuration file exists but cannot be read.
    #[error("cannot read the launch config file {} (launch_config_path from {origin}): {message}", path.display())]
    LaunchConfigFile {
        /// The file.
        path: PathBuf,
        /// Where `launch_config_path` came from.
        origin: Source,
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// `sweep_id` is empty or has surrounding whitespace.
    #[error("invalid sweep_id {value:?} from {origin}: {problem}")]
    InvalidSweepId {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: RunIdProblem,
    },
    /// The sweep parameters file is missing or cannot be read (W&B fails `init` too:
    /// `config file ... doesn't exist`).
    #[error("cannot read the sweep parameters file {} (sweep_param_path from {origin}): {message}", path.display())]
    SweepParamFile {
        /// The file.
        path: PathBuf,
        /// Where `sweep_param_path` came from.
        origin: Source,
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// An environment variable's value is not valid Unicode.
    #[error("invalid {setting} from {origin}: value is not valid unicode")]
    NotUnicode {
        /// The setting.
        setting: Key,
        /// Where it came from.
        origin: Source,
    },
}

impl SettingsError {
    /// The setting the error is about.
    pub fn setting(&self) -> Key {
        match self {
            SettingsError::InvalidMode { .. } => Key::Mode,
            SettingsError::InvalidRunId { .. } => Key::RunId,
            SettingsError::InvalidProject { .. } => Key::Project,
            SettingsError::InvalidRunTags { .. } => Key::RunTags,
            SettingsError::InvalidResume { .. } => Key::Resume,
            SettingsError::InvalidConsole { .. } => Key::Console,
            SettingsError::InvalidStatsSamplingInterval { .. } => Key::XStatsSamplingInterval,
            SettingsError::InvalidBool { setting, .. }
            | SettingsError::NotUnicode { setting, .. } => *setting,
            SettingsError::InvalidBaseUrl { .. } => Key::BaseUrl,
            SettingsError::InvalidApiKey { .. } => Key::ApiKey,
            SettingsError::LaunchConfigFile { .. } => Key::LaunchConfigPath,
            SettingsError::InvalidSweepId { .. } => Key::SweepId,
            SettingsError::SweepParamFile { .. } => Key::SweepParamPath,
        }
    }

    /// Where the offending value came from.
    pub fn origin(&self) -> &Source {
        match self {
            SettingsError::InvalidMode { origin, .. }
            | SettingsError::InvalidRunId { origin, .. }
            | SettingsError::InvalidProject { origin, .. }
            | SettingsError::InvalidRunTags { origin, .. }
            | SettingsError::InvalidResume { origin, .. }
            | SettingsError::InvalidConsole { origin, .. }
            | SettingsError::InvalidStatsSamplingInterval { origin, .. }
            | SettingsError::InvalidBool { origin, .. }
            | SettingsError::InvalidBaseUrl { origin, .. }
            | SettingsError::InvalidApiKey { origin, .. }
            | SettingsError::NotUnicode { origin, .. }
            | SettingsError::LaunchConfigFile { origin, .. }
            | SettingsError::InvalidSweepId { origin, .. }
            | SettingsError::SweepParamFile { origin, .. } => origin,
        }
    }
}

/// What is wrong with a run id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunIdProblem {
    /// It is empty.
    Empty,
    /// It starts or ends with whitespace.
    SurroundingWhitespace,
    /// It contains some of `:;,#?/'`.
    ReservedCharacters {
        /// The reserved characters found, in order of first appearance.
        found: Vec<char>,
    },
}

impl fmt::Display for RunIdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunIdProblem::Empty => f.write_str("must not be empty"),
            RunIdProblem::SurroundingWhitespace => {
                f.write_str("must not start or end with whitespace")
            }
            RunIdProblem::ReservedCharacters { .. } => {
                f.write_str("must not contain any of the characters :;,#?/'")
            }
        }
    }
}

/// What is wrong with a project name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectProblem {
    /// It is longer than 128 characters.
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// It contains some of `/\#?%:`.
    ReservedCharacters {
        /// The reserved characters found, in order of first appearance.
        found: Vec<char>,
    },
}

impl fmt::Display for ProjectProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectProblem::TooLong { chars } => {
                write!(f, "must be at most 128 characters, has {chars}")
            }
            ProjectProblem::ReservedCharacters { .. } => {
                f.write_str("must not contain any of the characters /\\#?%:")
            }
        }
    }
}

/// What is wrong with a list of run tags.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagProblem {
    /// The tag at `index` is empty.
    Empty {
        /// 0-based position of the tag.
        index: usize,
    },
    /// The tag at `index` is longer than 64 characters.
    TooLong {
        /// 0-based position of the tag.
        index: usize,
        /// Its length in characters.
        chars: usize,
    },
}

impl fmt::Display for TagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagProblem::Empty { index } => {
                write!(f, "tag {index} is empty; tags must be 1 to 64 characters")
            }
            TagProblem::TooLong { index, chars } => {
                write!(
                    f,
                    "tag {index} has {chars} characters; tags must be 1 to 64 characters"
                )
            }
        }
    }
}

/// What is wrong with a sampling interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntervalProblem {
    /// It is not a number.
    NotANumber,
    /// It is infinite or NaN.
    NotFinite,
    /// It is less than 0.1 seconds.
    TooSmall,
}

impl fmt::Display for IntervalProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IntervalProblem::NotANumber => "expected a number of seconds",
            IntervalProblem::NotFinite => "expected a finite number of seconds",
            IntervalProblem::TooSmall => "must be at least 0.1 seconds",
        })
    }
}

/// What is wrong with a base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaseUrlProblem {
    /// It does not parse as a URL; holds the parser's reason.
    NotAUrl(String),
    /// Its scheme is neither `http` nor `https`.
    Scheme(String),
    /// A `wandb.ai` address other than `api.wandb.ai`.
    NotApiHost,
    /// `api.wandb.ai` over plain http.
    Insecure,
}

impl fmt::Display for BaseUrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseUrlProblem::NotAUrl(reason) => write!(f, "not a valid url: {reason}"),
            BaseUrlProblem::Scheme(scheme) => {
                write!(f, "scheme must be http or https, not {scheme:?}")
            }
            BaseUrlProblem::NotApiHost => {
                f.write_str("not a valid server address, did you mean https://api.wandb.ai?")
            }
            BaseUrlProblem::Insecure => f.write_str("http is not secure, use https://api.wandb.ai"),
        }
    }
}

/// What is wrong with an API key. Never carries the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeyProblem {
    /// It starts or ends with whitespace.
    SurroundingWhitespace,
    /// It is empty.
    Empty,
    /// After an optional `prefix-`, it holds characters other than letters, digits, `_`, `-`.
    BadCharacters,
    /// After an optional `prefix-`, it is shorter than 40 characters.
    TooShort {
        /// Length of the part after the prefix.
        chars: usize,
    },
}

impl fmt::Display for ApiKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeyProblem::SurroundingWhitespace => {
                f.write_str("must not start or end with whitespace")
            }
            ApiKeyProblem::Empty => f.write_str("is empty"),
            ApiKeyProblem::BadCharacters => {
                f.write_str("may only contain letters, digits and underscores")
            }
            ApiKeyProblem::TooShort { chars } => {
                write!(f, "must have at least 40 characters, has {chars}")
            }
        }
    }
}

/// A problem that did not stop loading.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A settings file exists but could not be read or parsed; it was treated as empty (W&B
    /// does the same and prints the problem).
    SettingsFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why it could not be used.
        problem: String,
    },
    /// A value in the settings files is invalid. As in W&B, no setting from either file was
    /// applied.
    SettingsFilesRejected {
        /// The first invalid value.
        error: SettingsError,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SettingsFileUnreadable { path, problem } => {
                write!(f, "ignoring settings file {}: {problem}", path.display())
            }
            Warning::SettingsFilesRejected { error } => {
                write!(f, "ignoring all settings files: {error}")
            }
        }
    }
}

/// A setting that was given but not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoredSetting {
    /// The key in the file or the variable name, as written.
    pub name: String,
    /// Where it was given.
    pub origin: Source,
    /// Why it was ignored.
    pub reason: IgnoredReason,
}

impl fmt::Display for IgnoredSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignoring {} from {}: {}",
            self.name, self.origin, self.reason
        )
    }
}

/// Why a setting was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoredReason {
    /// W&B has no such setting (often a typo).
    Unknown,
    /// A W&B setting (or variable) that this implementation does not use.
    Unsupported,
    /// `root_dir` and `settings_system` may not be set in a settings file.
    NotAllowedInFile,
    /// Deprecated in W&B and without effect (`anonymous`).
    Deprecated,
    /// Another spelling of the same setting was set too and won.
    Shadowed {
        /// The winning variable.
        by: String,
    },
}

impl fmt::Display for IgnoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoredReason::Unknown => f.write_str("unknown setting"),
            IgnoredReason::Unsupported => f.write_str("not supported by this implementation"),
            IgnoredReason::NotAllowedInFile => f.write_str("not allowed in a settings file"),
            IgnoredReason::Deprecated => f.write_str("deprecated and has no effect"),
            IgnoredReason::Shadowed { by } => write!(f, "overridden by {by}"),
        }
    }
}
