//! The validated settings, with a default for everything that has one, and the paths derived
//! from them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::SettingsError;
use crate::files::{expand_user, wandb_dir};
use crate::launch::{LaunchConfig, LaunchIgnored, LaunchQueue};
use crate::paths::{RunPaths, run_dir_name, timespec};
use crate::raw::{Key, RawSettings};
use crate::runid::generate_run_id;
use crate::secret::Secret;
use crate::source::Source;
use crate::sweep::SweepParams;
use crate::validate::{self as check, opt};
use crate::values::{Console, EffectiveMode, Mode, Resume};

/// W&B's default server.
pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";

/// W&B's default system metrics sampling interval, in seconds.
pub const DEFAULT_STATS_SAMPLING_INTERVAL: f64 = 15.0;

/// The source reported for keys nobody set.
static DEFAULT_SOURCE: Source = Source::Default;

/// Values used where no source sets a key and the default depends on the machine.
#[derive(Debug, Clone)]
pub(crate) struct MachineDefaults {
    /// Working directory: the default root and the base of relative roots.
    pub(crate) cwd: PathBuf,
    /// Home directory, for `~`.
    pub(crate) home: Option<PathBuf>,
    /// Host name.
    pub(crate) hostname: String,
    /// Detected program, if any.
    pub(crate) program: Option<String>,
}

/// Validated settings.
///
/// `mode` is what was asked for, with W&B's names; [`Settings::effective_mode`] is what this
/// implementation does: every mode but `disabled` writes an offline run, since logging never
/// touches the network. [`Settings::online_requested`] says whether someone explicitly asked
/// for an online mode, so that the logger can say it is running offline instead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// The mode asked for (default `online`, as in W&B).
    pub mode: Mode,
    /// Root directory, absolute (default: the working directory).
    pub root_dir: PathBuf,
    /// `<root_dir>/wandb`, or `<root_dir>/.wandb` (see `use_dot_wandb`).
    pub wandb_dir: PathBuf,
    /// Project name.
    pub project: Option<String>,
    /// Entity (user or team).
    pub entity: Option<String>,
    /// Run id, if given; see [`Settings::run_id_or_generate`].
    pub run_id: Option<String>,
    /// Run display name.
    pub run_name: Option<String>,
    /// Run notes.
    pub run_notes: Option<String>,
    /// Run tags (`None`: not given, which differs from an empty list when resuming).
    pub run_tags: Option<Vec<String>>,
    /// Run group.
    pub run_group: Option<String>,
    /// Run job type.
    pub run_job_type: Option<String>,
    /// Resume behaviour (`None`: do not resume).
    pub resume: Option<Resume>,
    /// Console capture (`auto` already resolved to `wrap`).
    pub console: Console,
    /// System metrics sampling interval in seconds (default 15, at least 0.1).
    pub x_stats_sampling_interval: f64,
    /// Whether system metrics are off.
    pub x_disable_stats: bool,
    /// Whether file_stream bodies go uncompressed to a server that accepts gzip; `None` when no
    /// source sets it (W&B's SDK then sends them uncompressed; `wandb-sync` compresses them).
    pub x_file_stream_no_gzip: Option<bool>,
    /// Server API URL without trailing `/` (default `https://api.wandb.ai`).
    pub base_url: String,
    /// API key from the settings sources, if any (sync also looks in `.netrc`; see
    /// [`crate::lookup_api_key`]).
    pub api_key: Option<Secret>,
    /// Suppress informational output.
    pub silent: bool,
    /// Reduce output.
    pub quiet: bool,
    /// Program that created the run, given or detected.
    pub program: Option<String>,
    /// Host name (default: this machine's).
    pub host: String,
    /// Globs of files not to upload.
    pub ignore_globs: Vec<String>,
    /// Whether `.wandb` was forced on or off (`None`: `.wandb` only if it already existed).
    pub use_dot_wandb: Option<bool>,
    /// Suffix appended to run directory names (default empty).
    pub x_sync_dir_suffix: String,
    /// Whether W&B Launch started the run (`WANDB_LAUNCH`).
    pub launch: bool,
    /// Launch configuration file, absolute (`WANDB_LAUNCH_CONFIG_PATH`).
    pub launch_config_path: Option<PathBuf>,
    /// The launch config to merge over the script's config (only when `launch`), unparsed; see
    /// the `launch` module docs for where it is looked for.
    pub launch_config: Option<LaunchConfig>,
    /// `init` settings ignored because the run was launched (project, entity, run id), for the
    /// caller to warn about as W&B does.
    pub launch_ignored: Vec<LaunchIgnored>,
    /// The launch queue the run came from (recorded in the config's `_wandb`).
    pub launch_queue: LaunchQueue,
    /// The sweep the run belongs to (`WANDB_SWEEP_ID`), recorded in the run record.
    pub sweep_id: Option<String>,
    /// The sweep parameters file, absolute (`WANDB_SWEEP_PARAM_PATH`, relative to the working
    /// directory as in W&B).
    pub sweep_param_path: Option<PathBuf>,
    /// The sweep parameters file's text, read when `sweep_param_path` is set (see the `sweep`
    /// module docs); the caller parses it.
    pub sweep_params: Option<SweepParams>,
    sources: BTreeMap<Key, Source>,
}

impl Settings {
    /// Validates a merged raw layer, filling defaults.
    pub(crate) fn build(
        raw: &RawSettings,
        machine: &MachineDefaults,
    ) -> Result<Settings, SettingsError> {
        let root_dir = match &raw.root_dir {
            Some(root) => machine
                .cwd
                .join(expand_user(&root.value, machine.home.as_deref())),
            None => machine.cwd.clone(),
        };
        let use_dot_wandb = opt(&raw.use_dot_wandb, |s| check::boolean(Key::UseDotWandb, s))?;
        let wandb_dir = wandb_dir(&root_dir, use_dot_wandb);
        let text = |v: &Option<crate::source::Sourced<String>>| v.as_ref().map(|s| s.value.clone());

        Ok(Settings {
            mode: opt(&raw.mode, check::mode)?.unwrap_or(Mode::Online),
            root_dir,
            wandb_dir,
            project: opt(&raw.project, check::project)?,
            entity: text(&raw.entity),
            run_id: opt(&raw.run_id, check::run_id)?,
            run_name: text(&raw.run_name),
            run_notes: text(&raw.run_notes),
            run_tags: opt(&raw.run_tags, check::run_tags)?,
            run_group: text(&raw.run_group),
            run_job_type: text(&raw.run_job_type),
            resume: opt(&raw.resume, check::resume)?.flatten(),
            console: opt(&raw.console, check::console)?.unwrap_or(Console::Wrap),
            x_stats_sampling_interval: opt(
                &raw.x_stats_sampling_interval,
                check::sampling_interval,
            )?
            .unwrap_or(DEFAULT_STATS_SAMPLING_INTERVAL),
            x_disable_stats: opt(&raw.x_disable_stats, |s| {
                check::boolean(Key::XDisableStats, s)
            })?
            .unwrap_or(false),
            x_file_stream_no_gzip: opt(&raw.x_file_stream_no_gzip, |s| {
                check::boolean(Key::XFileStreamNoGzip, s)
            })?,
            base_url: opt(&raw.base_url, check::base_url)?
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            api_key: opt(&raw.api_key, check::api_key)?,
            silent: opt(&raw.silent, |s| check::boolean(Key::Silent, s))?.unwrap_or(false),
            quiet: opt(&raw.quiet, |s| check::boolean(Key::Quiet, s))?.unwrap_or(false),
            program: text(&raw.program).or_else(|| machine.program.clone()),
            host: text(&raw.host).unwrap_or_else(|| machine.hostname.clone()),
            ignore_globs: raw
                .ignore_globs
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            use_dot_wandb,
            x_sync_dir_suffix: text(&raw.x_sync_dir_suffix).unwrap_or_default(),
            launch: opt(&raw.launch, |s| check::boolean(Key::Launch, s))?.unwrap_or(false),
            launch_config_path: raw.launch_config_path.as_ref().map(|path| {
                machine
                    .cwd
                    .join(expand_user(&path.value, machine.home.as_deref()))
            }),
            launch_config: None,
            launch_ignored: Vec::new(),
            launch_queue: LaunchQueue::default(),
            sweep_id: opt(&raw.sweep_id, check::sweep_id)?,
            sweep_param_path: raw.sweep_param_path.as_ref().map(|path| {
                machine
                    .cwd
                    .join(expand_user(&path.value, machine.home.as_deref()))
            }),
            sweep_params: None,
            sources: raw
                .keys()
                .into_iter()
                .filter_map(|k| Some((k, raw.source(k)?.clone())))
                .collect(),
        })
    }

    /// Where the value of `key` came from ([`Source::Default`] if nobody set it).
    pub fn source(&self, key: Key) -> &Source {
        self.sources.get(&key).unwrap_or(&DEFAULT_SOURCE)
    }

    /// What the logger does: write offline, or nothing (`disabled`).
    pub fn effective_mode(&self) -> EffectiveMode {
        self.mode.effective()
    }

    /// Whether an online mode (`online`, `shared`, `run`) was explicitly asked for by some source.
    /// W&B's default is `online` too, but a default is not a request: this is `false` then.
    pub fn online_requested(&self) -> bool {
        self.mode.wants_online() && self.source(Key::Mode).is_explicit()
    }

    /// A one-line notice for the user when an online mode was asked for, or `None`.
    pub fn offline_notice(&self) -> Option<String> {
        self.online_requested().then(|| {
            format!(
                "mode {:?} requested by {}: this logger writes runs offline; upload them later with wandb-sync",
                self.mode.as_str(),
                self.source(Key::Mode)
            )
        })
    }

    /// Whether logging is a no-op (`disabled`).
    pub fn is_disabled(&self) -> bool {
        self.effective_mode() == EffectiveMode::Disabled
    }

    /// The sampling interval as a duration.
    pub fn stats_sampling_interval(&self) -> Duration {
        Duration::from_secs_f64(self.x_stats_sampling_interval)
    }

    /// The run id if one was given, else a fresh random one.
    pub fn run_id_or_generate(&self) -> String {
        self.run_id.clone().unwrap_or_else(generate_run_id)
    }

    /// The workspace settings file for these settings, `<wandb_dir>/settings` (where W&B's
    /// `wandb offline` writes).
    pub fn settings_workspace(&self) -> PathBuf {
        self.wandb_dir.join("settings")
    }

    /// The `latest-run` symlink in the wandb directory.
    pub fn latest_run_symlink(&self) -> PathBuf {
        self.wandb_dir.join("latest-run")
    }

    /// The resume state file, `<wandb_dir>/wandb-resume.json`.
    pub fn resume_file(&self) -> PathBuf {
        self.wandb_dir.join("wandb-resume.json")
    }

    /// Name of a run directory: `offline-run-<YYYYMMDD_HHMMSS local time>-<run_id>[-<suffix>]`.
    pub fn run_dir_name(&self, run_id: &str, start: SystemTime) -> String {
        run_dir_name(run_id, &timespec(start), &self.x_sync_dir_suffix)
    }

    /// The paths of a run started at `start` with id `run_id`.
    pub fn run_paths(&self, run_id: &str, start: SystemTime) -> RunPaths {
        RunPaths::new(
            &self.wandb_dir.join(self.run_dir_name(run_id, start)),
            run_id,
        )
    }
}
