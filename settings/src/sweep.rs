//! The sweep context a sweep agent hands a run, found as the SDK 0.31 finds it.
//!
//! A sweep agent (W&B's `wandb agent`, or `wandb-launch sweep`) starts each run with
//! `WANDB_SWEEP_ID` (setting `sweep_id`: the run record carries it, and `init`'s project,
//! entity and run id are ignored) and `WANDB_SWEEP_PARAM_PATH` (setting `sweep_param_path`): a
//! YAML file `{name: {value: v}}` written by the agent (`wandb/sweep-<id>/config-<run>.yaml`),
//! read at setup with `must_exist=True` (`wandb_setup.py`'s `config` property), so a missing
//! file fails `init`. This module only reads the text; the logger parses it and merges the
//! values over the script's `config=` as the SDK's `merge_locked(user="sweep")` does.

use std::path::{Path, PathBuf};

use crate::error::SettingsError;
use crate::source::Source;

/// The sweep parameters file's text, unparsed, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepParams {
    /// The file (absolute).
    pub path: PathBuf,
    /// Its text: YAML `{name: {value: v}}`, perhaps with `wandb_version: 1`.
    pub text: String,
}

/// Reads the sweep parameters file at `path` (named by `sweep_param_path` from `origin`).
///
/// # Errors
///
/// [`SettingsError::SweepParamFile`] naming the file and the setting's source if it is missing
/// or cannot be read as text.
pub(crate) fn read_params(path: &Path, origin: &Source) -> Result<SweepParams, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::SweepParamFile {
        path: path.to_path_buf(),
        origin: origin.clone(),
        kind: e.kind(),
        message: e.to_string(),
    })?;
    Ok(SweepParams {
        path: path.to_path_buf(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{Key, Overrides};
    use crate::{Env, LoadContext, SetupSettings};

    fn setup(dir: &Path, pairs: &[(&str, &str)]) -> Result<SetupSettings, SettingsError> {
        let ctx = LoadContext::new(Env::from_pairs(pairs.iter().copied()), dir)
            .with_home(dir)
            .with_hostname("box");
        SetupSettings::load(&ctx, None, &Overrides::default())
    }

    #[test]
    fn the_sweep_id_and_a_relative_param_file_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wandb/sweep-s1")).unwrap();
        let file = dir.path().join("wandb/sweep-s1/config-r1.yaml");
        std::fs::write(&file, "lr:\n  value: 0.1\n").unwrap();
        let loaded = setup(
            dir.path(),
            &[
                ("WANDB_SWEEP_ID", "s1"),
                ("WANDB_SWEEP_PARAM_PATH", "wandb/sweep-s1/config-r1.yaml"),
            ],
        )
        .unwrap();
        assert_eq!(loaded.report().ignored, Vec::new());
        let settings = loaded.settings().unwrap();
        assert_eq!(settings.sweep_id.as_deref(), Some("s1"));
        let params = settings.sweep_params.unwrap();
        assert_eq!(params.path, file);
        assert_eq!(params.text, "lr:\n  value: 0.1\n");
    }

    #[test]
    fn a_missing_param_file_and_a_blank_sweep_id_are_errors_naming_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = setup(dir.path(), &[("WANDB_SWEEP_PARAM_PATH", "missing.yaml")]).unwrap();
        let err = loaded.settings().unwrap_err();
        assert_eq!(err.setting(), Key::SweepParamPath);
        let message = err.to_string();
        assert!(message.contains("missing.yaml"), "{message}");
        assert!(message.contains("WANDB_SWEEP_PARAM_PATH"), "{message}");
        let err = setup(dir.path(), &[("WANDB_SWEEP_ID", " s1")]).unwrap_err();
        assert_eq!(err.setting(), Key::SweepId);
        assert!(err.to_string().contains("WANDB_SWEEP_ID"), "{err}");
    }

    #[test]
    fn a_sweep_ignores_the_project_entity_and_run_id_given_to_init() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = setup(
            dir.path(),
            &[
                ("WANDB_SWEEP_ID", "s1"),
                ("WANDB_PROJECT", "sweep-project"),
                ("WANDB_RUN_ID", "agentrun"),
                ("WANDB_LAUNCH", "true"),
            ],
        )
        .unwrap();
        let mut args = Overrides::default();
        args.set(Key::Project, "script-project");
        args.set(Key::RunId, "scriptrun");
        let settings = loaded.resolve(&Overrides::default(), &args).unwrap();
        assert_eq!(settings.project.as_deref(), Some("sweep-project"));
        assert_eq!(settings.run_id.as_deref(), Some("agentrun"));
        assert_eq!(settings.launch_ignored.len(), 2);
        assert_eq!(
            settings.launch_ignored[0].to_string(),
            "ignoring project \"script-project\" from init argument when running a sweep"
        );
    }
}
