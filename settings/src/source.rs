//! Where a setting's value came from, so that errors and reports can name it.

use std::fmt;
use std::path::PathBuf;

/// The origin of a setting's value, from the lowest precedence to the highest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The built-in default (or a value detected from the machine, such as the host name).
    Default,
    /// The system settings file (`$WANDB_CONFIG_DIR/settings` or `~/.config/wandb/settings`).
    SystemFile {
        /// Path of the file.
        path: PathBuf,
        /// 1-based line of the key in the file.
        line: usize,
    },
    /// The workspace settings file (`./wandb/settings`, or `./.wandb/settings`).
    WorkspaceFile {
        /// Path of the file.
        path: PathBuf,
        /// 1-based line of the key in the file.
        line: usize,
    },
    /// A `WANDB_*` environment variable.
    Env {
        /// Name of the variable.
        var: String,
    },
    /// Settings passed to `setup`.
    Setup,
    /// Settings passed to `init`.
    InitSettings,
    /// An explicit `init` argument (`mode=`, `project=`, ...).
    InitArg,
}

impl Source {
    /// Rank in the precedence order: a source with a higher rank overrides a lower one.
    pub fn precedence(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::SystemFile { .. } => 1,
            Source::WorkspaceFile { .. } => 2,
            Source::Env { .. } => 3,
            Source::Setup => 4,
            Source::InitSettings => 5,
            Source::InitArg => 6,
        }
    }

    /// Whether the value was explicitly given (anything but [`Source::Default`]).
    pub fn is_explicit(&self) -> bool {
        !matches!(self, Source::Default)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::SystemFile { path, line } | Source::WorkspaceFile { path, line } => {
                write!(f, "file {} line {line}", path.display())
            }
            Source::Env { var } => write!(f, "environment variable {var}"),
            Source::Setup => f.write_str("setup settings"),
            Source::InitSettings => f.write_str("init settings"),
            Source::InitArg => f.write_str("init argument"),
        }
    }
}

/// A value together with the source it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// The value as given.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Sourced<T> {
    /// Pairs a value with its source.
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_origin() {
        let file = Source::SystemFile {
            path: PathBuf::from("/x/settings"),
            line: 3,
        };
        assert_eq!(file.to_string(), "file /x/settings line 3");
        let var = Source::Env {
            var: "WANDB_MODE".into(),
        };
        assert_eq!(var.to_string(), "environment variable WANDB_MODE");
        assert_eq!(Source::InitArg.to_string(), "init argument");
        assert_eq!(Source::InitSettings.to_string(), "init settings");
        assert_eq!(Source::Setup.to_string(), "setup settings");
        assert_eq!(Source::Default.to_string(), "default");
    }

    #[test]
    fn precedence_is_strictly_increasing() {
        let order = [
            Source::Default,
            Source::SystemFile {
                path: PathBuf::new(),
                line: 1,
            },
            Source::WorkspaceFile {
                path: PathBuf::new(),
                line: 1,
            },
            Source::Env { var: String::new() },
            Source::Setup,
            Source::InitSettings,
            Source::InitArg,
        ];
        assert!(
            order
                .windows(2)
                .all(|w| w[0].precedence() < w[1].precedence())
        );
    }
}
