//! W&B settings for the offline logger and for `wandb-sync`: loaded and validated in W&B's
//! precedence, without a service process and without the network.
//!
//! # Sources
//!
//! From the lowest precedence to the highest, each overriding the one below key by key:
//!
//! 1. defaults;
//! 2. the system settings file, `$WANDB_CONFIG_DIR/settings` or `~/.config/wandb/settings`
//!    (INI read like Python's `configparser`, `[default]` section only);
//! 3. the workspace settings file, `./wandb/settings` (`./.wandb/settings` if `./.wandb` exists);
//! 4. `WANDB_*` environment variables (names in the constants below; W&B's general rule
//!    `WANDB_FOO` → `foo`, `WANDB__FOO` → `x_foo` also applies);
//! 5. `setup` overrides;
//! 6. `init` settings;
//! 7. explicit `init` arguments.
//!
//! Every source yields a [`RawSettings`] layer in which each value carries its [`Source`]; the
//! merged layer is validated into [`Settings`], and every [`SettingsError`] names the setting,
//! the value (never for the API key) and its source, e.g. `invalid mode "onlin" from
//! environment variable WANDB_MODE: expected one of online, offline, dryrun, disabled, shared,
//! run`.
//!
//! # Online means offline here
//!
//! The logger never uploads while logging: [`Settings::effective_mode`] is `offline` for every
//! mode but `disabled`, and [`Settings::online_requested`] / [`Settings::offline_notice`] tell
//! when a user explicitly asked for `online`, so that it can be said.
//!
//! # Example
//!
//! ```
//! use wandb_settings::{Env, LoadContext, Overrides, SetupSettings, Source, Key};
//!
//! let env = Env::from_pairs([("WANDB_PROJECT", "demo"), ("WANDB_MODE", "online")]);
//! let ctx = LoadContext::new(env, "/work").with_hostname("box");
//! let setup = SetupSettings::load(&ctx, None, &Overrides::default())?;
//! let settings = setup.resolve(&Overrides::default(), &Overrides::default().entity("me"))?;
//! assert_eq!(settings.project.as_deref(), Some("demo"));
//! assert_eq!(settings.source(Key::Entity), &Source::InitArg);
//! assert_eq!(settings.effective_mode().as_str(), "offline");
//! assert!(settings.online_requested());
//! # Ok::<(), wandb_settings::SettingsError>(())
//! ```
//!
//! # Launch
//!
//! With `WANDB_LAUNCH=True` (set by W&B Launch and by `wandb-launch`), [`Settings::launch_config`]
//! holds the launch config found as the SDK finds it (`WANDB_CONFIG`, else the file at
//! `WANDB_LAUNCH_CONFIG_PATH`, else the chunks `WANDB_CONFIG_0..n` joined), and the project,
//! entity and run id given to `init` are ignored ([`Settings::launch_ignored`]), so that the
//! launcher's `WANDB_PROJECT`, `WANDB_ENTITY` and `WANDB_RUN_ID` win.
//!
//! # Sweeps
//!
//! A run started by a sweep agent has `WANDB_SWEEP_ID` ([`Settings::sweep_id`], recorded in the
//! run record) and `WANDB_SWEEP_PARAM_PATH` ([`Settings::sweep_params`]: the text of the YAML
//! file `{name: {value: v}}`, read at load; a missing file is an error, as in W&B); the project,
//! entity and run id given to `init` are ignored then too (`... when running a sweep`).
//!
//! For uploads, [`lookup_api_key`] finds the key in `WANDB_API_KEY` or the netrc file.

mod apikey;
mod env;
mod environment;
mod error;
mod files;
mod ini;
mod known;
mod launch;
mod load;
mod netrc;
mod paths;
mod raw;
mod runid;
mod secret;
mod settings;
mod source;
mod sweep;
mod validate;
mod values;

pub use apikey::{
    ApiKeyError, ApiKeyLookup, ApiKeySource, ApiKeyWarning, FoundApiKey, api_key, lookup_api_key,
    netloc, netrc_path,
};
pub use env::{
    HOME, NETRC, USERPROFILE, WANDB__DISABLE_STATS, WANDB__STATS_SAMPLING_INTERVAL, WANDB_API_KEY,
    WANDB_ARTIFACTS, WANDB_BASE_URL, WANDB_CONFIG, WANDB_CONFIG_CHUNK_PREFIX, WANDB_CONFIG_DIR,
    WANDB_CONSOLE, WANDB_DIR, WANDB_ENTITY, WANDB_HOST, WANDB_IDENTITY_TOKEN_FILE,
    WANDB_IGNORE_GLOBS, WANDB_JOB_TYPE, WANDB_KUBEFLOW_URL, WANDB_LAUNCH, WANDB_LAUNCH_CONFIG_PATH,
    WANDB_LAUNCH_QUEUE_ENTITY, WANDB_LAUNCH_QUEUE_NAME, WANDB_LAUNCH_TRACE_ID, WANDB_MODE,
    WANDB_NAME, WANDB_NOTES, WANDB_PREFIX, WANDB_PRIVATE_PREFIX, WANDB_PROGRAM, WANDB_PROJECT,
    WANDB_QUIET, WANDB_RESUME, WANDB_RUN_GROUP, WANDB_RUN_ID, WANDB_SERVICE, WANDB_SILENT,
    WANDB_SWEEP_ID, WANDB_SWEEP_PARAM_PATH, WANDB_TAGS, WANDB_USE_DOT_WANDB, WANDB_X_DISABLE_STATS,
    WANDB_X_FILE_STREAM_NO_GZIP, WANDB_X_STATS_SAMPLING_INTERVAL, WANDB_X_SYNC_DIR_SUFFIX,
};
pub use environment::{Env, EnvFingerprint, env_fingerprint};
pub use error::{
    ApiKeyProblem, BaseUrlProblem, IgnoredReason, IgnoredSetting, IntervalProblem, ProjectProblem,
    RunIdProblem, SettingsError, TagProblem, Warning,
};
pub use launch::{IgnoredContext, LaunchConfig, LaunchConfigOrigin, LaunchIgnored, LaunchQueue};
pub use load::{LoadContext, LoadOptions, LoadReport, Loaded, SetupSettings, load};
pub use paths::{OFFLINE_RUN_PREFIX, RunPaths, run_dir_name, timespec, timespec_at_offset};
pub use raw::{Key, Overrides, RawSettings};
pub use runid::{RUN_ID_LEN, generate_id, generate_run_id};
pub use secret::Secret;
pub use settings::{DEFAULT_BASE_URL, DEFAULT_STATS_SAMPLING_INTERVAL, Settings};
pub use source::{Source, Sourced};
pub use sweep::SweepParams;
pub use validate::check_api_key_format;
pub use values::{Console, EffectiveMode, Mode, Resume};
