//! The launch config W&B Launch (or `wandb-launch`) hands a job, applied to the run's config as
//! the SDK 0.31 applies it.
//!
//! `wandb-settings` finds the text ([`wandb_settings::Settings::launch_config`]: `WANDB_CONFIG`,
//! else the `WANDB_LAUNCH_CONFIG_PATH` file's `overrides.run_config`, else the chunks
//! `WANDB_CONFIG_0..n`, and only under `WANDB_LAUNCH`); this module parses it and merges it over
//! the script's `config=` with the SDK's `Config.merge_locked`: keys lose leading and trailing
//! `-`, an object value is merged key by key into an object already there (recursively), any
//! other value replaces, and every top-level key it sets is locked, so a later `config_update`
//! or `config_set` of that key is ignored with a warning (`Config item 'lr' was locked by
//! 'launch' (ignored update).`).
//!
//! A launch config that is not JSON (a file path in `WANDB_CONFIG`, an empty value, a truncated
//! chunk) is a warning naming the variable, and the script's config is used, as the SDK does; a
//! JSON value that is not an object is handled the same way (the SDK fails with an
//! `AttributeError` there).

use std::collections::BTreeSet;
use std::fmt;

use wandb_format::json;
use wandb_settings::{LaunchConfig, LaunchConfigOrigin};

/// Why a launch config was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchConfigError {
    /// The text is not JSON.
    #[error(
        "malformed launch config in {origin} at byte {offset}: {reason}; using the script's config"
    )]
    Malformed {
        /// Where the text came from.
        origin: LaunchConfigOrigin,
        /// Byte offset of the problem in the (joined) text.
        offset: usize,
        /// The parser's message.
        reason: String,
    },
    /// The JSON is not an object (for a file: its `overrides.run_config` is not one).
    #[error("launch config in {origin} is {found}, not a JSON object; using the script's config")]
    NotAnObject {
        /// Where the text came from.
        origin: LaunchConfigOrigin,
        /// What was found instead.
        found: LaunchConfigFound,
    },
}

/// The kind of JSON value found where an object was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchConfigFound {
    /// Nothing (a launch config file without `overrides.run_config`).
    Missing,
    /// Another JSON value.
    Kind(&'static str),
}

impl fmt::Display for LaunchConfigFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchConfigFound::Missing => f.write_str("missing"),
            LaunchConfigFound::Kind(kind) => write!(f, "{kind}"),
        }
    }
}

/// The launch config as an object.
///
/// # Errors
///
/// [`LaunchConfigError`] naming where the text came from.
pub(crate) fn parse(config: &LaunchConfig) -> Result<json::Map, LaunchConfigError> {
    let value = json::parse(&config.text).map_err(|e| LaunchConfigError::Malformed {
        origin: config.origin.clone(),
        offset: e.offset(),
        reason: e.to_string(),
    })?;
    let value = match &config.origin {
        LaunchConfigOrigin::File { .. } => value
            .get("overrides")
            .and_then(|overrides| overrides.get("run_config"))
            .cloned(),
        _ => Some(value),
    };
    match value.map(json::Value::into_object) {
        Some(Ok(map)) => Ok(map),
        Some(Err(other)) => Err(LaunchConfigError::NotAnObject {
            origin: config.origin.clone(),
            found: LaunchConfigFound::Kind(crate::value::json_kind(&other)),
        }),
        None => Err(LaunchConfigError::NotAnObject {
            origin: config.origin.clone(),
            found: LaunchConfigFound::Missing,
        }),
    }
}

/// Merges `launch` over `config` as the SDK's `merge_locked`, and returns the keys it locks.
pub(crate) fn merge_locked(config: &mut json::Map, launch: json::Map) -> BTreeSet<String> {
    let mut locked = BTreeSet::new();
    for (key, value) in launch {
        let key = key.trim_matches('-').to_owned();
        merge_value(config, &key, value);
        locked.insert(key);
    }
    locked
}

/// The SDK's `config_util.merge_dicts`: objects merge key by key, anything else replaces.
fn merge_dicts(dest: &mut json::Map, src: json::Map) {
    for (key, value) in src {
        merge_value(dest, &key, value);
    }
}

/// Sets `dest[key]` to `value`, merging an object into an object already there.
fn merge_value(dest: &mut json::Map, key: &str, value: json::Value) {
    let value = match (dest.get_mut(key), value.into_object()) {
        (Some(json::Value::Object(current)), Ok(update)) => {
            merge_dicts(current, update);
            return;
        }
        (_, Ok(update)) => json::Value::Object(update),
        (_, Err(other)) => other,
    };
    dest.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> json::Map {
        json::parse(text).unwrap().into_object().unwrap()
    }

    fn env_config(text: &str) -> LaunchConfig {
        LaunchConfig {
            text: text.to_owned(),
            origin: LaunchConfigOrigin::Env,
        }
    }

    #[test]
    fn merges_like_merge_locked() {
        let mut config = map(r#"{"lr": 0.1, "batch": 32, "nested": {"a": 1, "b": {"x": 1}}}"#);
        let launch = map(r#"{"lr": 0.9, "nested": {"b": {"y": 2}, "c": 3}, "-new-": 1}"#);
        let locked = merge_locked(&mut config, launch);
        let expected = r#"{"lr": 0.9, "batch": 32, "nested": {"a": 1, "b": {"x": 1, "y": 2}, "c": 3}, "new": 1}"#;
        assert_eq!(json::Value::Object(config), json::parse(expected).unwrap());
        assert_eq!(
            locked.into_iter().collect::<Vec<_>>(),
            ["lr", "nested", "new"]
        );
    }

    #[test]
    fn malformed_and_non_object_configs_name_their_origin() {
        let err = parse(&env_config("/tmp/config.json")).unwrap_err();
        assert!(matches!(
            err,
            LaunchConfigError::Malformed { offset: 0, .. }
        ));
        assert!(
            err.to_string()
                .starts_with("malformed launch config in environment variable WANDB_CONFIG"),
            "{err}"
        );
        let chunks = LaunchConfig {
            text: r#"{"lr": "#.to_owned(),
            origin: LaunchConfigOrigin::Chunks { count: 2 },
        };
        let err = parse(&chunks).unwrap_err();
        assert!(
            err.to_string().contains("WANDB_CONFIG_0..WANDB_CONFIG_1"),
            "{err}"
        );
        let err = parse(&env_config("[1, 2]")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "launch config in environment variable WANDB_CONFIG is an array, not a JSON object; \
             using the script's config"
        );
    }

    #[test]
    fn a_file_gives_its_run_config_overrides() {
        let file = LaunchConfig {
            text: r#"{"overrides": {"run_config": {"lr": 0.6}, "args": []}}"#.to_owned(),
            origin: LaunchConfigOrigin::File {
                path: "/x/launch.json".into(),
            },
        };
        assert_eq!(
            json::Value::Object(parse(&file).unwrap()),
            json::Value::Object(map(r#"{"lr": 0.6}"#))
        );
        let empty = LaunchConfig {
            text: "{}".to_owned(),
            ..file
        };
        let err = parse(&empty).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn nan_is_accepted_as_python_does() {
        let config = parse(&env_config(r#"{"lr": NaN}"#)).unwrap();
        assert!(
            config
                .get("lr")
                .and_then(json::Value::as_f64)
                .unwrap()
                .is_nan()
        );
    }
}
