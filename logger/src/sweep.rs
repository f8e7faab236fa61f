//! The sweep parameters a sweep agent hands a run, applied to the run's config as the SDK 0.31
//! applies them.
//!
//! `wandb-settings` reads the file named by `WANDB_SWEEP_PARAM_PATH`
//! ([`wandb_settings::Settings::sweep_params`]); this module parses it as the SDK's
//! `config_util.dict_from_config_file` does: a YAML mapping `{name: {value: v}}`, an optional
//! `wandb_version: 1` left out, each parameter's `value` taken. The values are then merged over
//! the script's `config=` with `merge_locked(user="sweep")` (before a launch config, which wins
//! over them), so the sweep's values beat the script's and later updates of those keys are
//! ignored with a warning. Unlike a bad launch config (a warning), a bad parameters file fails
//! `init`, as the SDK's `ConfigError` does.

use std::path::PathBuf;

use wandb_format::json;
use wandb_settings::SweepParams;

/// Why a sweep parameters file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SweepParamsError {
    /// The text is not YAML.
    #[error("sweep parameters file {}: invalid YAML: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The document is not a mapping of parameter names.
    #[error("sweep parameters file {}: expected a mapping of parameter names, found {found}", path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: &'static str,
    },
    /// A parameter has no `value`.
    #[error("sweep parameters file {}: parameter {key:?} has no value (expected {{value: ...}})", path.display())]
    NoValue {
        /// The file.
        path: PathBuf,
        /// The parameter.
        key: String,
    },
    /// `wandb_version` is not 1.
    #[error("sweep parameters file {}: unknown config version {version}", path.display())]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: String,
    },
}

/// The parameters as a config object (`{"lr": 0.1}`), in file order; an empty file gives an
/// empty object (the SDK warns and applies nothing).
///
/// # Errors
///
/// [`SweepParamsError`] naming the file.
pub(crate) fn parse(params: &SweepParams) -> Result<json::Map, SweepParamsError> {
    let path = || params.path.clone();
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&params.text).map_err(|e| SweepParamsError::Malformed {
            path: path(),
            reason: e.to_string(),
        })?;
    let value = json::to_value(&doc).map_err(|e| SweepParamsError::Malformed {
        path: path(),
        reason: e.to_string(),
    })?;
    let map = match value.into_object() {
        Ok(map) => map,
        Err(json::Value::Null) => return Ok(json::Map::new()),
        Err(other) => {
            return Err(SweepParamsError::NotAMapping {
                path: path(),
                found: crate::value::json_kind(&other),
            });
        }
    };
    let mut config = json::Map::with_capacity(map.len());
    for (key, entry) in map {
        if key == "wandb_version" {
            if entry.as_i64() != Some(1) && !entry.is_null() {
                return Err(SweepParamsError::UnknownVersion {
                    path: path(),
                    version: entry.to_string(),
                });
            }
            continue;
        }
        let value = match entry.into_object() {
            Ok(mut entry) if entry.contains_key("value") => {
                entry.remove("value").unwrap_or_default()
            }
            _ => return Err(SweepParamsError::NoValue { path: path(), key }),
        };
        config.insert(key, value);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> SweepParams {
        SweepParams {
            path: PathBuf::from("/w/sweep-s/config-r.yaml"),
            text: text.to_owned(),
        }
    }

    #[test]
    fn values_are_unwrapped_in_file_order() {
        let config = parse(&params(
            "wandb_version: 1\nlr:\n  value: 1.0e-05\nlayers:\n  value: [64, 128]\nopt:\n  value:\n    name: adam\n    beta: .nan\n",
        ))
        .unwrap();
        assert_eq!(
            json::Value::Object(config).to_string(),
            r#"{"lr":1e-05,"layers":[64,128],"opt":{"name":"adam","beta":NaN}}"#
        );
        assert!(parse(&params("")).unwrap().is_empty());
    }

    #[test]
    fn bad_files_name_the_file_and_the_key() {
        let err = parse(&params("lr: 0.1\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sweep parameters file /w/sweep-s/config-r.yaml: parameter \"lr\" has no value (expected {value: ...})"
        );
        let err = parse(&params("[1, 2]")).unwrap_err();
        assert!(
            matches!(
                err,
                SweepParamsError::NotAMapping {
                    found: "an array",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&params("lr: {value: [1, 2}\n")).unwrap_err();
        assert!(err.to_string().contains("invalid YAML"), "{err}");
        let err = parse(&params("wandb_version: 2\n")).unwrap_err();
        assert!(
            matches!(err, SweepParamsError::UnknownVersion { .. }),
            "{err}"
        );
    }
}
