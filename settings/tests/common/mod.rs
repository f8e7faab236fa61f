//! Shared fixture for the integration tests: a temporary home and working directory, and an
//! injected environment (the real process environment is never touched).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use wandb_settings::{Env, LoadContext, Overrides, Settings, SettingsError, SetupSettings};

/// A temporary home and working directory plus an environment map.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub cwd: PathBuf,
    pub env: Env,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let cwd = dir.path().join("cwd");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&cwd).expect("cwd");
        let env = Env::empty().with(home_var(), home.as_os_str());
        Fixture {
            _dir: dir,
            home,
            cwd,
            env,
        }
    }

    /// The default system settings file.
    pub fn system_file(&self) -> PathBuf {
        self.home.join(".config").join("wandb").join("settings")
    }

    /// The default workspace settings file.
    pub fn workspace_file(&self) -> PathBuf {
        self.cwd.join("wandb").join("settings")
    }

    pub fn write(&self, path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.set(name, value);
    }

    pub fn ctx(&self) -> LoadContext {
        LoadContext::new(self.env.clone(), &self.cwd).with_hostname("test-host")
    }

    pub fn setup(&self, setup: &Overrides) -> Result<SetupSettings, SettingsError> {
        SetupSettings::load(&self.ctx(), None, setup)
    }

    pub fn load(&self) -> Result<Settings, SettingsError> {
        self.setup(&Overrides::default())?.settings()
    }
}

pub fn home_var() -> &'static str {
    if cfg!(windows) { "USERPROFILE" } else { "HOME" }
}
