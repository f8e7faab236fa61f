//! Loading settings from every source in W&B's precedence, lowest first:
//! defaults < system settings file < workspace settings file < `WANDB_*` environment <
//! `setup` overrides < `init` settings < explicit `init` arguments.
//!
//! Like W&B's setup singleton, loading happens in two steps. [`SetupSettings::load`] reads the
//! files, a snapshot of the environment and the `setup` overrides once; each `init` then applies
//! its own layers with [`SetupSettings::resolve`]. Environment changes after setup are not
//! applied (W&B ignores them too, with a warning): compare [`SetupSettings::env_fingerprint`]
//! with a fresh fingerprint to notice them.
//!
//! Invalid values in the settings files only produce a warning (the files are then ignored, as
//! in W&B); invalid values from the environment, `setup` or `init` are errors, even when a
//! higher source overrides them, because W&B validates each source as it applies it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::env::{KNOWN_NON_SETTING_VARS, WANDB_PREFIX, is_launch_chunk, setting_for_var};
use crate::environment::{Env, EnvFingerprint, env_fingerprint};
use crate::error::{IgnoredReason, IgnoredSetting, SettingsError, Warning};
use crate::files::{load_files, system_settings_path, wandb_dir};
use crate::known::is_wandb_setting;
use crate::launch::{EnvLaunchConfig, LaunchIgnored};
use crate::raw::{Key, Overrides, RawSettings};
use crate::settings::{MachineDefaults, Settings};
use crate::source::{Source, Sourced};
use crate::validate::{self, validate_layer};

/// Everything loading needs from the outside world, so that tests can supply their own.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// The environment variables.
    pub env: Env,
    /// The working directory: the default root directory, the place of the workspace settings
    /// file, and the base of a relative root directory.
    pub cwd: PathBuf,
    /// The home directory (for `~` and the default system settings file).
    pub home: Option<PathBuf>,
    /// The host name; `None` asks the operating system at load time.
    pub hostname: Option<String>,
    /// The program that is running, if known (used when `program` is not set).
    pub program: Option<String>,
}

impl LoadContext {
    /// A context with the given environment and working directory; the home directory comes
    /// from the environment (`HOME`, or `USERPROFILE` on Windows).
    pub fn new(env: Env, cwd: impl Into<PathBuf>) -> Self {
        let home = env.home_dir();
        LoadContext {
            env,
            cwd: cwd.into(),
            home,
            hostname: None,
            program: None,
        }
    }

    /// The current process: its environment, working directory, host name and program path.
    pub fn from_process() -> std::io::Result<Self> {
        let cwd = std::env::current_dir()?;
        let mut ctx = LoadContext::new(Env::from_process(), cwd);
        ctx.hostname = Some(machine_hostname());
        ctx.program = std::env::args_os()
            .next()
            .map(|p| p.to_string_lossy().into_owned());
        Ok(ctx)
    }

    /// Returns this context with another home directory.
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// Returns this context with a fixed host name.
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Returns this context with a program name.
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = Some(program.into());
        self
    }
}

/// This machine's host name (lossy if it is not Unicode).
fn machine_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// What happened while loading, for callers to print.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadReport {
    /// The system settings file consulted (it may not exist).
    pub system_settings_path: Option<PathBuf>,
    /// The workspace settings file consulted (it may not exist).
    pub workspace_settings_path: PathBuf,
    /// Files that held at least one setting (W&B prints "Loading settings from ...").
    pub files_read: Vec<PathBuf>,
    /// Settings given but not applied: unknown or unsupported keys and variables, keys not
    /// allowed in files, deprecated keys, shadowed spellings.
    pub ignored: Vec<IgnoredSetting>,
    /// Problems that did not stop loading.
    pub warnings: Vec<Warning>,
}

/// Settings as loaded at setup time: defaults, files, environment and `setup` overrides.
#[derive(Debug, Clone)]
pub struct SetupSettings {
    merged: RawSettings,
    report: LoadReport,
    fingerprint: EnvFingerprint,
    machine: MachineDefaults,
    launch_env: EnvLaunchConfig,
}

impl SetupSettings {
    /// Loads the files, the environment and the `setup` overrides.
    ///
    /// `settings_system` replaces the system settings file location (W&B's `settings_system`
    /// setting given to `setup`).
    pub fn load(
        ctx: &LoadContext,
        settings_system: Option<&Path>,
        setup: &Overrides,
    ) -> Result<SetupSettings, SettingsError> {
        let system = system_settings_path(settings_system, &ctx.env, ctx.home.as_deref());
        // W&B reads the workspace file before it applies WANDB_DIR or any override, so it is
        // always relative to the working directory.
        let workspace = wandb_dir(&ctx.cwd, None).join("settings");
        let files = load_files(system.as_deref(), &workspace);

        let (env_layer, env_ignored) = env_layer(&ctx.env)?;

        let mut report = LoadReport {
            system_settings_path: system,
            workspace_settings_path: workspace,
            files_read: files.files_read,
            ignored: files.ignored,
            warnings: files.warnings,
        };
        report.ignored.extend(env_ignored);

        let mut merged = files.raw;
        merged.merge_from(env_layer);

        let mut setup_settings = SetupSettings {
            merged,
            report,
            fingerprint: env_fingerprint(&ctx.env),
            machine: MachineDefaults {
                cwd: ctx.cwd.clone(),
                home: ctx.home.clone(),
                hostname: ctx.hostname.clone().unwrap_or_else(machine_hostname),
                program: ctx.program.clone(),
            },
            launch_env: EnvLaunchConfig::from_env(&ctx.env),
        };
        setup_settings.update(setup)?;
        Ok(setup_settings)
    }

    /// Applies more `setup` overrides (W&B's `setup()` called again).
    pub fn update(&mut self, setup: &Overrides) -> Result<(), SettingsError> {
        let layer = RawSettings::from_overrides(setup, &Source::Setup);
        validate_layer(&layer)?;
        self.merged.merge_from(layer);
        Ok(())
    }

    /// The settings without any `init` layer.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        self.resolve(&Overrides::default(), &Overrides::default())
    }

    /// The settings for one `init`: `init_settings` (W&B's `init(settings=...)`) and then
    /// `init_args` (explicit arguments such as `project=`) over the setup layers.
    pub fn resolve(
        &self,
        init_settings: &Overrides,
        init_args: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut merged = self.merged.clone();
        // W&B decides on the setup-level settings (files, environment, `setup`) whether the run
        // is launched, and then ignores the project, entity and run id given to `init`.
        let launched = validate::opt(&self.merged.launch, |s| validate::boolean(Key::Launch, s))?
            .unwrap_or(false);
        // A sweep run is treated the same way (W&B's `clear_run_path_if_sweep_or_launch`),
        // decided on the setup-level `sweep_id` too.
        let context = if self.merged.sweep_id.is_some() {
            Some(crate::launch::IgnoredContext::Sweep)
        } else if launched {
            Some(crate::launch::IgnoredContext::Launch)
        } else {
            None
        };
        let mut launch_ignored = Vec::new();
        for (overrides, source) in [
            (init_settings, Source::InitSettings),
            (init_args, Source::InitArg),
        ] {
            let mut layer = RawSettings::from_overrides(overrides, &source);
            validate_layer(&layer)?;
            if let Some(context) = context {
                for key in [Key::Project, Key::Entity, Key::RunId] {
                    let value = match key {
                        Key::Project => layer.project.take(),
                        Key::Entity => layer.entity.take(),
                        _ => layer.run_id.take(),
                    };
                    if let Some(value) = value {
                        launch_ignored.push(LaunchIgnored {
                            key,
                            value: value.value,
                            origin: value.source,
                            context,
                        });
                    }
                }
            }
            merged.merge_from(layer);
        }
        let mut settings = Settings::build(&merged, &self.machine)?;
        if settings.launch {
            let path = settings
                .launch_config_path
                .as_ref()
                .map(|path| (path, settings.source(Key::LaunchConfigPath)));
            settings.launch_config = self.launch_env.resolve(path)?;
        }
        settings.launch_ignored = launch_ignored;
        settings.launch_queue = self.launch_env.queue.clone();
        if let Some(path) = &settings.sweep_param_path {
            settings.sweep_params = Some(crate::sweep::read_params(
                path,
                settings.source(Key::SweepParamPath),
            )?);
        }
        Ok(settings)
    }

    /// The merged raw layers (files, environment, `setup`), with each value's source.
    pub fn raw(&self) -> &RawSettings {
        &self.merged
    }

    /// What happened while loading.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The fingerprint of the `WANDB_*` variables seen at load time.
    pub fn env_fingerprint(&self) -> &EnvFingerprint {
        &self.fingerprint
    }

    /// W&B's check: whether the set of `WANDB_*` variable names in `current` differs from the
    /// one at load time (W&B then warns that the changes are ignored). See also
    /// [`EnvFingerprint::changed`], which also notices changed values.
    pub fn env_changed(&self, current: &Env) -> bool {
        self.fingerprint.names_changed(&env_fingerprint(current))
    }
}

/// Options for a one-shot [`load`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Replaces the system settings file location.
    pub settings_system: Option<PathBuf>,
    /// `setup` overrides.
    pub setup: Overrides,
    /// `init(settings=...)` overrides.
    pub init_settings: Overrides,
    /// Explicit `init` arguments.
    pub init_args: Overrides,
}

/// The result of a one-shot [`load`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// What happened while loading.
    pub report: LoadReport,
    /// The fingerprint of the `WANDB_*` variables used.
    pub env_fingerprint: EnvFingerprint,
}

/// Loads settings from every source at once (setup and init in one step).
pub fn load(ctx: &LoadContext, options: &LoadOptions) -> Result<Loaded, SettingsError> {
    let setup = SetupSettings::load(ctx, options.settings_system.as_deref(), &options.setup)?;
    let settings = setup.resolve(&options.init_settings, &options.init_args)?;
    Ok(Loaded {
        settings,
        report: setup.report,
        env_fingerprint: setup.fingerprint,
    })
}

/// A variable chosen for a key: its name, value, and whether it is the documented spelling.
struct EnvChoice<'a> {
    var: &'a str,
    value: &'a OsStr,
    primary: bool,
}

/// The `WANDB_*` layer of `env`, and the variables ignored.
fn env_layer(env: &Env) -> Result<(RawSettings, Vec<IgnoredSetting>), SettingsError> {
    let mut chosen: BTreeMap<Key, EnvChoice<'_>> = BTreeMap::new();
    let mut ignored = Vec::new();
    let ignore = |var: &str, reason| IgnoredSetting {
        name: var.to_owned(),
        origin: Source::Env {
            var: var.to_owned(),
        },
        reason,
    };

    for (var, value) in env.iter() {
        if !var.starts_with(WANDB_PREFIX) {
            continue;
        }
        let Some(setting) = setting_for_var(var) else {
            continue;
        };
        let Some(key) = Key::from_name(&setting) else {
            if KNOWN_NON_SETTING_VARS.contains(&var) || is_launch_chunk(var) {
                continue;
            }
            let reason = if is_wandb_setting(&setting) {
                IgnoredReason::Unsupported
            } else {
                IgnoredReason::Unknown
            };
            ignored.push(ignore(var, reason));
            continue;
        };
        let choice = EnvChoice {
            var,
            value,
            primary: key.env_var() == var,
        };
        match chosen.get(&key) {
            None => {
                chosen.insert(key, choice);
            }
            // The documented spelling beats the others; among the others the first (by name) wins.
            Some(current) if choice.primary && !current.primary => {
                ignored.push(ignore(
                    current.var,
                    IgnoredReason::Shadowed { by: var.to_owned() },
                ));
                chosen.insert(key, choice);
            }
            Some(current) => {
                ignored.push(ignore(
                    var,
                    IgnoredReason::Shadowed {
                        by: current.var.to_owned(),
                    },
                ));
            }
        }
    }

    let mut raw = RawSettings::default();
    for (key, choice) in chosen {
        let source = Source::Env {
            var: choice.var.to_owned(),
        };
        if key == Key::RootDir {
            raw.root_dir = Some(Sourced::new(PathBuf::from(choice.value), source));
            continue;
        }
        let Some(text) = choice.value.to_str() else {
            return Err(SettingsError::NotUnicode {
                setting: key,
                origin: source,
            });
        };
        raw.set_text(key, text, source);
    }
    validate_layer(&raw)?;
    Ok((raw, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::LaunchConfigOrigin;

    fn setup(vars: &[(&str, &str)], cwd: &Path) -> SetupSettings {
        let env = Env::from_pairs(vars.iter().copied());
        let ctx = LoadContext::new(env, cwd)
            .with_home(cwd)
            .with_hostname("box");
        SetupSettings::load(&ctx, None, &Overrides::default()).unwrap()
    }

    #[test]
    fn launch_config_is_read_only_in_a_launch_context() {
        let dir = tempfile::tempdir().unwrap();
        let plain = setup(&[("WANDB_CONFIG", r#"{"lr": 1}"#)], dir.path());
        let settings = plain.settings().unwrap();
        assert!(!settings.launch);
        assert_eq!(settings.launch_config, None);

        let launched = setup(
            &[("WANDB_LAUNCH", "True"), ("WANDB_CONFIG", r#"{"lr": 1}"#)],
            dir.path(),
        );
        let settings = launched.settings().unwrap();
        assert!(settings.launch);
        let config = settings.launch_config.unwrap();
        assert_eq!(config.text, r#"{"lr": 1}"#);
        assert_eq!(config.origin, LaunchConfigOrigin::Env);
    }

    #[test]
    fn launch_variables_are_not_reported_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = setup(
            &[
                ("WANDB_LAUNCH", "True"),
                ("WANDB_CONFIG_0", "{"),
                ("WANDB_CONFIG_1", "}"),
                ("WANDB_LAUNCH_QUEUE_NAME", "q"),
                ("WANDB_ARTIFACTS", "{}"),
            ],
            dir.path(),
        );
        assert_eq!(loaded.report().ignored, Vec::new());
        let config = loaded.settings().unwrap().launch_config.unwrap();
        assert_eq!(config.text, "{}");
        assert_eq!(config.origin, LaunchConfigOrigin::Chunks { count: 2 });
    }

    #[test]
    fn launch_ignores_the_project_entity_and_run_id_given_to_init() {
        let dir = tempfile::tempdir().unwrap();
        let launched = setup(
            &[
                ("WANDB_LAUNCH", "true"),
                ("WANDB_PROJECT", "from-launch"),
                ("WANDB_RUN_ID", "launchid"),
            ],
            dir.path(),
        );
        let args = Overrides::default()
            .project("from-script")
            .run_id("scriptid")
            .entity("me")
            .run_name("kept");
        let settings = launched.resolve(&Overrides::default(), &args).unwrap();
        assert_eq!(settings.project.as_deref(), Some("from-launch"));
        assert_eq!(settings.run_id.as_deref(), Some("launchid"));
        assert_eq!(settings.entity, None);
        assert_eq!(settings.run_name.as_deref(), Some("kept"));
        let ignored: Vec<_> = settings
            .launch_ignored
            .iter()
            .map(|i| (i.key, i.value.as_str()))
            .collect();
        assert_eq!(
            ignored,
            [
                (Key::Project, "from-script"),
                (Key::Entity, "me"),
                (Key::RunId, "scriptid")
            ]
        );
        assert_eq!(
            settings.launch_ignored[0].to_string(),
            "ignoring project \"from-script\" from init argument when running from a wandb launch context"
        );

        // Without launch, init's arguments win as usual.
        let plain = setup(&[("WANDB_PROJECT", "env")], dir.path());
        let settings = plain.resolve(&Overrides::default(), &args).unwrap();
        assert_eq!(settings.project.as_deref(), Some("from-script"));
        assert!(settings.launch_ignored.is_empty());
    }

    #[test]
    fn a_bad_launch_flag_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("WANDB_LAUNCH", "maybe")]);
        let ctx = LoadContext::new(env, dir.path()).with_hostname("box");
        let err = SetupSettings::load(&ctx, None, &Overrides::default()).unwrap_err();
        assert_eq!(err.setting(), Key::Launch);
        assert!(err.to_string().contains("WANDB_LAUNCH"), "{err}");
    }

    #[test]
    fn a_relative_launch_config_path_is_taken_from_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("launch.json"),
            r#"{"overrides": {"run_config": {"a": 1}}}"#,
        )
        .unwrap();
        let launched = setup(
            &[
                ("WANDB_LAUNCH", "1"),
                ("WANDB_LAUNCH_CONFIG_PATH", "launch.json"),
            ],
            dir.path(),
        );
        let config = launched.settings().unwrap().launch_config.unwrap();
        assert_eq!(
            config.origin,
            LaunchConfigOrigin::File {
                path: dir.path().join("launch.json")
            }
        );
    }
}
