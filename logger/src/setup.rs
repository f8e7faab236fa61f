//! The library context ([`Setup`]) and the per-process singleton, after W&B's `wandb_setup.py`.
//!
//! A [`Setup`] holds the settings loaded once from files, the `WANDB_*` environment and `setup`
//! overrides, and the runs started from it. [`setup`] creates the process's singleton (or
//! updates its settings), [`singleton`] returns it, [`init`] starts a run from it (creating it
//! with defaults first if needed) and [`teardown`] finishes every unfinished run and drops it.
//!
//! The singleton is fork-aware: in a forked child, [`singleton`] returns `None` and [`setup`]
//! or [`init`] make a fresh one, so the child never writes to or finishes its parent's runs. A
//! [`Setup`] can also be made on its own with [`Setup::new`] (with an injected environment, as
//! the tests do); it is then independent of the singleton.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use wandb_settings::{Env, LoadContext, Overrides, Settings, SetupSettings};

use crate::error::{Error, FinishError, Result};
use crate::fork;
use crate::options::{InitOptions, SavePolicy, SetupOptions, WANDB_X_HANDLE_SIGTERM};
use crate::run::{FinishSummary, Run, RunCore, StartArgs};
use crate::signals;

/// The library context: settings loaded at setup time and the runs started from them.
///
/// Cloning is cheap; clones share the same runs.
#[derive(Clone)]
pub struct Setup {
    inner: Arc<SetupInner>,
}

struct SetupInner {
    settings: Mutex<SetupSettings>,
    /// The environment settings were loaded from, if it was injected rather than the
    /// process's.
    injected_env: Option<Env>,
    runs: Mutex<Vec<Weak<RunCore>>>,
    fork_gen: u64,
    handle_sigterm: Option<bool>,
    warned_env_change: AtomicBool,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("fork_gen", &self.inner.fork_gen)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// Loads settings (defaults, settings files, environment, `setup` overrides) into a new,
    /// independent context.
    ///
    /// # Errors
    ///
    /// [`Error::Settings`] naming the invalid setting and its source, or [`Error::Io`] if the
    /// working directory cannot be read.
    pub fn new(options: SetupOptions) -> Result<Setup> {
        fork::install();
        let injected = options.context.is_some();
        let context = match options.context {
            Some(context) => context,
            None => LoadContext::from_process()
                .map_err(|e| Error::io(".", "read the working directory", e))?,
        };
        let settings = SetupSettings::load(
            &context,
            options.settings_system.as_deref(),
            &options.settings,
        )?;
        for warning in &settings.report().warnings {
            crate::diag::warning!("{warning}");
        }
        for ignored in &settings.report().ignored {
            log::debug!("{ignored}");
        }
        let handle_sigterm = options
            .handle_sigterm
            .or_else(|| context.env.get(WANDB_X_HANDLE_SIGTERM).and_then(parse_bool));
        Ok(Setup {
            inner: Arc::new(SetupInner {
                settings: Mutex::new(settings),
                injected_env: injected.then_some(context.env),
                runs: Mutex::new(Vec::new()),
                fork_gen: fork::generation(),
                handle_sigterm,
                warned_env_change: AtomicBool::new(false),
            }),
        })
    }

    /// Applies more `setup` overrides (W&B's `setup()` called again).
    pub fn update(&self, settings: &Overrides) -> Result<()> {
        self.lock_settings().update(settings)?;
        Ok(())
    }

    /// The settings without any `init` layer.
    pub fn settings(&self) -> Result<Settings> {
        Ok(self.lock_settings().settings()?)
    }

    /// Whether the `WANDB_*` variables of the process changed (added, removed or new values)
    /// since the settings were loaded. Changes are not applied, as in W&B. For a setup loaded
    /// from an injected environment, compares with that environment.
    pub fn env_changed(&self) -> bool {
        let current = match &self.inner.injected_env {
            Some(env) => env.clone(),
            None => Env::from_process(),
        };
        self.env_changed_from(&current)
    }

    /// Whether `current`'s `WANDB_*` variables differ from the ones the settings were loaded
    /// from.
    pub fn env_changed_from(&self, current: &Env) -> bool {
        let settings = self.lock_settings();
        settings.env_fingerprint().changed(&current.fingerprint())
    }

    /// Starts a run.
    ///
    /// # Errors
    ///
    /// [`Error::Settings`] for an invalid setting (naming it and its source), [`Error::Io`] or
    /// [`Error::Write`] if the run folder or file cannot be created, [`Error::Serialize`] /
    /// [`Error::NotAnObject`] for a bad initial config.
    pub fn init(&self, options: InitOptions) -> Result<Run> {
        fork::install();
        let config = options.config.transpose()?.unwrap_or_default();
        let settings = self
            .lock_settings()
            .resolve(&options.settings, &options.args)?;
        if self.inner.injected_env.is_none()
            && self.env_changed()
            && !self.inner.warned_env_change.swap(true, Ordering::Relaxed)
        {
            crate::diag::warning!(
                "WANDB_* environment variables changed after setup; the changes are ignored \
                 (call teardown() and setup() again to apply them)"
            );
        }
        crate::diag::set_silenced(settings.silent || settings.quiet);
        let mut settings = settings;
        for ignored in &settings.launch_ignored {
            crate::diag::warning!("{ignored}");
        }
        let mut config = config;
        let resumed = if settings.is_disabled() {
            None
        } else {
            let run_id = crate::resume::run_id(&settings);
            settings.run_id = Some(run_id.clone());
            let resumed = crate::resume::prepare(&settings, &run_id)?;
            if let Some(resumed) = &resumed {
                // The carried config, then this init's, as W&B applies a resumed run's config.
                let mut carried = resumed.config.clone();
                for (key, value) in std::mem::take(&mut config) {
                    carried.insert(key, value);
                }
                config = carried;
                log::debug!(
                    "run {run_id} resumes at step {} after {} fragment(s)",
                    resumed.next_step,
                    resumed.fragments.len()
                );
            }
            resumed
        };
        // The sweep's parameters, then the launch config, each merged with `merge_locked` as
        // the SDK's `Run` does; a key both set stays locked by launch.
        let mut locked_config = BTreeMap::new();
        if let Some(params) = &settings.sweep_params {
            let sweep = crate::sweep::parse(params)?;
            for key in crate::launch::merge_locked(&mut config, sweep) {
                locked_config.insert(key, "sweep");
            }
        }
        if let Some(launch_config) = &settings.launch_config {
            match crate::launch::parse(launch_config) {
                Ok(launch) => {
                    for key in crate::launch::merge_locked(&mut config, launch) {
                        locked_config.insert(key, "launch");
                    }
                }
                Err(e) => crate::diag::warning!("{e}"),
            }
        }
        if let Some(notice) = settings.offline_notice() {
            say_once(&notice, settings.silent || settings.quiet);
        }
        if settings.is_disabled() {
            return Ok(Run::from_core(RunCore::disabled(settings)));
        }
        let handle_sigterm = options
            .handle_sigterm
            .or(self.inner.handle_sigterm)
            .unwrap_or(true);
        if handle_sigterm {
            signals::ensure_sigterm_handler();
        }
        signals::install_panic_hook();
        let launch_file = settings
            .launch_config_path
            .clone()
            .filter(|path| settings.launch && path.is_file());
        let start_time = SystemTime::now();
        let deferred = crate::integration::deferred_records(&settings, start_time);
        let core = RunCore::start(StartArgs {
            settings,
            start_time,
            config,
            writer: options.writer,
            handle_sigterm,
            deferred,
            locked_config,
            resumed,
        })?;
        crate::integration::attach(&core);
        {
            let mut runs = self.lock_runs();
            runs.retain(|w| w.strong_count() > 0);
            runs.push(Arc::downgrade(&core));
        }
        let run = Run::from_core(core);
        if let Some(file) = launch_file {
            // The SDK saves the launch configuration file with the run.
            if let Err(e) = run.save(&file, SavePolicy::Now) {
                crate::diag::warning!("run {}: launch config file not saved: {e}", run.id());
            }
        }
        Ok(run)
    }

    /// The ids of the unfinished runs started from this setup (in this process).
    pub fn active_runs(&self) -> Vec<String> {
        self.live_runs()
            .iter()
            .map(|core| core.run_id.clone())
            .collect()
    }

    fn live_runs(&self) -> Vec<Arc<RunCore>> {
        self.lock_runs()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|core| !core.is_foreign() && !core.is_finishing())
            .collect()
    }

    /// Finishes every unfinished run started from this setup (exit code 0) and returns once
    /// their data is on disk.
    ///
    /// # Errors
    ///
    /// The first run that failed; the other runs are finished all the same.
    pub fn teardown(&self) -> std::result::Result<Vec<FinishSummary>, FinishError> {
        let mut summaries = Vec::new();
        let mut first_error = None;
        for core in self.live_runs() {
            match core.finish(0) {
                Ok(summary) => summaries.push(summary),
                Err(e) => {
                    summaries.push((*e.summary).clone());
                    first_error.get_or_insert(e);
                }
            }
        }
        self.lock_runs().clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(summaries),
        }
    }

    fn lock_settings(&self) -> std::sync::MutexGuard<'_, SetupSettings> {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_runs(&self) -> std::sync::MutexGuard<'_, Vec<Weak<RunCore>>> {
        self.inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Says `message` once per process: on stderr (a library must not print to stdout), or only
/// through the `log` facade when `quiet`.
fn say_once(message: &str, quiet: bool) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    log::warn!("{message}");
    if !quiet {
        eprintln!("wandb: {message}");
    }
}

/// W&B's boolean spellings.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

static GLOBAL: Mutex<Option<Setup>> = Mutex::new(None);

fn lock_global() -> std::sync::MutexGuard<'static, Option<Setup>> {
    GLOBAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates the process's setup singleton from `settings`, or applies `settings` to it if it
/// exists (W&B's `wandb.setup(settings=...)`).
pub fn setup(settings: Overrides) -> Result<Setup> {
    setup_with(SetupOptions::default().settings(settings))
}

/// [`setup`] with every option. Options other than the settings only matter when the
/// singleton is created.
pub fn setup_with(options: SetupOptions) -> Result<Setup> {
    let mut global = lock_global();
    if let Some(current) = global.as_ref()
        && current.inner.fork_gen == fork::generation()
    {
        current.update(&options.settings)?;
        return Ok(current.clone());
    }
    let created = Setup::new(options)?;
    *global = Some(created.clone());
    Ok(created)
}

/// The process's setup singleton, if [`setup`] (or [`init`]) made one in this process. A
/// forked child does not see its parent's.
pub fn singleton() -> Option<Setup> {
    lock_global()
        .as_ref()
        .filter(|s| s.inner.fork_gen == fork::generation())
        .cloned()
}

/// Starts a run from the singleton, setting it up with defaults first if needed (W&B's
/// `wandb.init`).
///
/// ```no_run
/// use wandb_logger::{InitOptions, row};
/// let run = wandb_logger::init(InitOptions::new().project("demo"))?;
/// run.log(row! {"loss" => 0.5})?;
/// run.finish()?;
/// # Ok::<(), wandb_logger::Error>(())
/// ```
pub fn init(options: InitOptions) -> Result<Run> {
    let setup = match singleton() {
        Some(setup) => setup,
        None => setup_with(SetupOptions::default())?,
    };
    setup.init(options)
}

/// Finishes every unfinished run of the singleton, returns once their data is on disk, and
/// drops the singleton (W&B's `wandb.teardown`). Does nothing without a singleton.
pub fn teardown() -> std::result::Result<Vec<FinishSummary>, FinishError> {
    let taken = {
        let mut global = lock_global();
        match global.as_ref() {
            Some(s) if s.inner.fork_gen == fork::generation() => global.take(),
            _ => {
                *global = None;
                None
            }
        }
    };
    match taken {
        Some(setup) => setup.teardown(),
        None => Ok(Vec::new()),
    }
}
