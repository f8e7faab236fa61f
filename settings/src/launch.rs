//! The launch config W&B Launch hands a job, found as the SDK's `wandb.init` finds it
//! (`_handle_launch_config` in `wandb/sdk/wandb_init.py`, SDK 0.31).
//!
//! Only when the `launch` setting is true (`WANDB_LAUNCH=True`, as the launch agent sets it), the
//! first of these that exists is the launch config, as JSON text:
//!
//! 1. `WANDB_CONFIG` (even when empty: its text is then malformed JSON);
//! 2. the file named by `launch_config_path` (`WANDB_LAUNCH_CONFIG_PATH`), if it exists: its
//!    `overrides.run_config` is the config;
//! 3. the chunks `WANDB_CONFIG_0`, `WANDB_CONFIG_1`, ... joined in index order up to the first
//!    missing index (the agent splits a config longer than 32,670 characters).
//!
//! `WANDB_CONFIG` is always JSON text, never a file path (the SDK parses a path as JSON and warns
//! that it is malformed). This module only finds the text and says where it came from; parsing
//! is the caller's (the logger parses W&B's JSON, `NaN` included, and merges the object over the
//! script's config with the SDK's `merge_locked`).

use std::fmt;
use std::path::PathBuf;

use crate::env::{
    WANDB_CONFIG, WANDB_CONFIG_CHUNK_PREFIX, WANDB_LAUNCH_QUEUE_ENTITY, WANDB_LAUNCH_QUEUE_NAME,
    WANDB_LAUNCH_TRACE_ID,
};
use crate::environment::Env;
use crate::raw::Key;
use crate::source::Source;

/// Where a launch config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchConfigOrigin {
    /// The `WANDB_CONFIG` variable.
    Env,
    /// The chunks `WANDB_CONFIG_0` .. `WANDB_CONFIG_<count - 1>`, joined.
    Chunks {
        /// How many chunks were joined (at least 1).
        count: usize,
    },
    /// A launch configuration file (`launch_config_path`); the config is its
    /// `overrides.run_config`.
    File {
        /// Path of the file.
        path: PathBuf,
    },
}

impl fmt::Display for LaunchConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchConfigOrigin::Env => write!(f, "environment variable {WANDB_CONFIG}"),
            LaunchConfigOrigin::Chunks { count: 1 } => {
                write!(f, "environment variable {WANDB_CONFIG_CHUNK_PREFIX}0")
            }
            LaunchConfigOrigin::Chunks { count } => write!(
                f,
                "environment variables {WANDB_CONFIG_CHUNK_PREFIX}0..{WANDB_CONFIG_CHUNK_PREFIX}{}",
                count - 1
            ),
            LaunchConfigOrigin::File { path } => {
                write!(f, "launch config file {}", path.display())
            }
        }
    }
}

/// The launch config's JSON text, unparsed, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    /// The JSON text: an object to merge over the script's config (for
    /// [`LaunchConfigOrigin::File`], the whole file, whose `overrides.run_config` is that object).
    pub text: String,
    /// Where it came from.
    pub origin: LaunchConfigOrigin,
}

/// The launch queue a run came from, as the SDK records it in the config's `_wandb`
/// (`launch_queue_name`, `launch_queue_entity`, `launch_trace_id`); read from
/// `WANDB_LAUNCH_QUEUE_NAME`, `WANDB_LAUNCH_QUEUE_ENTITY` and `WANDB_LAUNCH_TRACE_ID` whether or
/// not `WANDB_LAUNCH` is set, and empty values left out, as the SDK does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchQueue {
    /// The queue's name.
    pub name: Option<String>,
    /// The queue's entity.
    pub entity: Option<String>,
    /// The run-queue item's id.
    pub trace_id: Option<String>,
}

impl LaunchQueue {
    /// Reads the three variables from `env`.
    pub(crate) fn from_env(env: &Env) -> LaunchQueue {
        let get = |name: &str| {
            env.get_os(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
        };
        LaunchQueue {
            name: get(WANDB_LAUNCH_QUEUE_NAME),
            entity: get(WANDB_LAUNCH_QUEUE_ENTITY),
            trace_id: get(WANDB_LAUNCH_TRACE_ID),
        }
    }

    /// The `_wandb` config keys and values, in the SDK's order.
    pub fn wandb_config_items(&self) -> Vec<(&'static str, &str)> {
        [
            ("launch_queue_name", &self.name),
            ("launch_queue_entity", &self.entity),
            ("launch_trace_id", &self.trace_id),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }
}

/// The launch config text the environment holds: `WANDB_CONFIG` if set, and the joined chunks
/// `WANDB_CONFIG_0..n` otherwise (kept apart, because a launch config file ranks between them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EnvLaunchConfig {
    whole: Option<LaunchConfig>,
    chunks: Option<LaunchConfig>,
    pub(crate) queue: LaunchQueue,
}

impl EnvLaunchConfig {
    /// Reads `WANDB_CONFIG` and the chunks from `env` (values that are not Unicode are taken
    /// lossily: they then fail to parse, as in the SDK).
    pub(crate) fn from_env(env: &Env) -> EnvLaunchConfig {
        let whole = env.get_os(WANDB_CONFIG).map(|text| LaunchConfig {
            text: text.to_string_lossy().into_owned(),
            origin: LaunchConfigOrigin::Env,
        });
        let mut text = String::new();
        let mut count = 0;
        while let Some(chunk) = env.get_os(&format!("{WANDB_CONFIG_CHUNK_PREFIX}{count}")) {
            text.push_str(&chunk.to_string_lossy());
            count += 1;
        }
        let chunks = (count > 0).then_some(LaunchConfig {
            text,
            origin: LaunchConfigOrigin::Chunks { count },
        });
        EnvLaunchConfig {
            whole,
            chunks,
            queue: LaunchQueue::from_env(env),
        }
    }

    /// The launch config by the SDK's order: `WANDB_CONFIG`, then the file at `config_path` if
    /// it exists, then the chunks.
    ///
    /// # Errors
    ///
    /// [`crate::SettingsError::LaunchConfigFile`] if the file exists but cannot be read.
    pub(crate) fn resolve(
        &self,
        config_path: Option<(&PathBuf, &Source)>,
    ) -> Result<Option<LaunchConfig>, crate::SettingsError> {
        if let Some(whole) = &self.whole {
            return Ok(Some(whole.clone()));
        }
        if let Some((path, source)) = config_path
            && path.exists()
        {
            let text = std::fs::read_to_string(path).map_err(|e| {
                crate::SettingsError::LaunchConfigFile {
                    path: path.clone(),
                    origin: source.clone(),
                    kind: e.kind(),
                    message: e.to_string(),
                }
            })?;
            return Ok(Some(LaunchConfig {
                text,
                origin: LaunchConfigOrigin::File { path: path.clone() },
            }));
        }
        Ok(self.chunks.clone())
    }
}

/// Why W&B ignores the project, entity and run id given to `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredContext {
    /// The run belongs to a sweep (`sweep_id` is set); this wins over launch, as in W&B.
    Sweep,
    /// W&B Launch started the run.
    Launch,
}

impl fmt::Display for IgnoredContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoredContext::Sweep => "when running a sweep",
            IgnoredContext::Launch => "when running from a wandb launch context",
        })
    }
}

/// A setting given to `init` that W&B ignores in a sweep or launch context (the agent chose the
/// project, entity and run id): W&B warns `Ignoring project 'x' when running from a wandb launch
/// context.` (or `... when running a sweep.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchIgnored {
    /// The setting ([`Key::Project`], [`Key::Entity`] or [`Key::RunId`]).
    pub key: Key,
    /// The value given to `init`.
    pub value: String,
    /// Where it was given.
    pub origin: Source,
    /// Why it is ignored.
    pub context: IgnoredContext,
}

impl fmt::Display for LaunchIgnored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignoring {} {:?} from {} {}",
            self.key, self.value, self.origin, self.context
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn whole_variable_beats_file_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("launch.json");
        std::fs::write(&file, r#"{"overrides": {"run_config": {"lr": 3}}}"#).unwrap();
        let found = EnvLaunchConfig::from_env(&env(&[
            ("WANDB_CONFIG", r#"{"lr": 1}"#),
            ("WANDB_CONFIG_0", r#"{"lr": 2}"#),
        ]));
        let config = found
            .resolve(Some((&file, &Source::Setup)))
            .unwrap()
            .unwrap();
        assert_eq!(config.text, r#"{"lr": 1}"#);
        assert_eq!(config.origin, LaunchConfigOrigin::Env);
        assert_eq!(
            config.origin.to_string(),
            "environment variable WANDB_CONFIG"
        );
    }

    #[test]
    fn an_existing_file_beats_the_chunks_and_a_missing_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("launch.json");
        let found = EnvLaunchConfig::from_env(&env(&[("WANDB_CONFIG_0", r#"{"lr": 2}"#)]));
        let missing = found
            .resolve(Some((&file, &Source::Setup)))
            .unwrap()
            .unwrap();
        assert_eq!(missing.origin, LaunchConfigOrigin::Chunks { count: 1 });
        std::fs::write(&file, "{}").unwrap();
        let present = found
            .resolve(Some((&file, &Source::Setup)))
            .unwrap()
            .unwrap();
        assert_eq!(present.origin, LaunchConfigOrigin::File { path: file });
    }

    #[test]
    fn chunks_join_in_order_up_to_the_first_gap() {
        let found = EnvLaunchConfig::from_env(&env(&[
            ("WANDB_CONFIG_1", r#"0.9, "x": "#),
            ("WANDB_CONFIG_0", r#"{"lr": "#),
            ("WANDB_CONFIG_2", "1}"),
            ("WANDB_CONFIG_4", "ignored after the gap"),
        ]));
        let config = found.resolve(None).unwrap().unwrap();
        assert_eq!(config.text, r#"{"lr": 0.9, "x": 1}"#);
        assert_eq!(config.origin, LaunchConfigOrigin::Chunks { count: 3 });
        assert_eq!(
            config.origin.to_string(),
            "environment variables WANDB_CONFIG_0..WANDB_CONFIG_2"
        );
        let gap = EnvLaunchConfig::from_env(&env(&[("WANDB_CONFIG_1", "{}")]));
        assert_eq!(gap.resolve(None).unwrap(), None);
    }

    #[test]
    fn the_queue_is_read_without_launch_and_empty_values_are_left_out() {
        let queue = LaunchQueue::from_env(&env(&[
            ("WANDB_LAUNCH_QUEUE_NAME", "gpu"),
            ("WANDB_LAUNCH_QUEUE_ENTITY", ""),
            ("WANDB_LAUNCH_TRACE_ID", "item-7"),
        ]));
        assert_eq!(
            queue.wandb_config_items(),
            [("launch_queue_name", "gpu"), ("launch_trace_id", "item-7")]
        );
    }

    #[test]
    fn an_empty_variable_counts_and_a_path_is_text() {
        let found = EnvLaunchConfig::from_env(&env(&[("WANDB_CONFIG", "")]));
        assert_eq!(found.resolve(None).unwrap().unwrap().text, "");
        let path = EnvLaunchConfig::from_env(&env(&[("WANDB_CONFIG", "/tmp/c.json")]));
        assert_eq!(path.resolve(None).unwrap().unwrap().text, "/tmp/c.json");
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A folder exists but cannot be read as text.
        let path = dir.path().to_path_buf();
        let source = Source::Env {
            var: "WANDB_LAUNCH_CONFIG_PATH".into(),
        };
        let err = EnvLaunchConfig::default()
            .resolve(Some((&path, &source)))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("WANDB_LAUNCH_CONFIG_PATH"), "{message}");
        assert_eq!(err.setting(), Key::LaunchConfigPath);
    }
}
