//! Names of the environment variables this crate reads, plus the W&B names it knows but ignores.
//!
//! W&B maps `WANDB_FOO` to the setting `foo` and `WANDB__FOO` (double underscore) to `x_foo`; a few
//! variables have special names (for example `WANDB_DIR` is `root_dir`). The constants below are the
//! documented spelling of every variable we act on. Other spellings that W&B's general rule accepts
//! (`WANDB_RUN_NAME`, `WANDB__STATS_SAMPLING_INTERVAL`, `WANDB_mode`, ...) are honoured too, but lose
//! to the documented spelling when both are set.

/// Prefix shared by every W&B environment variable.
pub const WANDB_PREFIX: &str = "WANDB_";

/// Prefix of W&B's private form: `WANDB__FOO` sets the setting `x_foo`.
pub const WANDB_PRIVATE_PREFIX: &str = "WANDB__";

/// Mode (`online`, `offline`, `dryrun`, `disabled`, `shared`, `run`). This implementation never
/// talks to the network while logging, so every mode but `disabled` writes an offline run.
pub const WANDB_MODE: &str = "WANDB_MODE";

/// Root directory (setting `root_dir`); the run folders go under `<root>/wandb`. Defaults to the
/// working directory.
pub const WANDB_DIR: &str = "WANDB_DIR";

/// Directory of the system settings file `settings` (default `~/.config/wandb`). Read directly,
/// not through a setting.
pub const WANDB_CONFIG_DIR: &str = "WANDB_CONFIG_DIR";

/// Project name (setting `project`).
pub const WANDB_PROJECT: &str = "WANDB_PROJECT";

/// Entity, i.e. user or team (setting `entity`).
pub const WANDB_ENTITY: &str = "WANDB_ENTITY";

/// Run id (setting `run_id`).
pub const WANDB_RUN_ID: &str = "WANDB_RUN_ID";

/// Run display name (setting `run_name`).
pub const WANDB_NAME: &str = "WANDB_NAME";

/// Run notes (setting `run_notes`).
pub const WANDB_NOTES: &str = "WANDB_NOTES";

/// Comma-separated run tags (setting `run_tags`).
pub const WANDB_TAGS: &str = "WANDB_TAGS";

/// Run group (setting `run_group`).
pub const WANDB_RUN_GROUP: &str = "WANDB_RUN_GROUP";

/// Run job type (setting `run_job_type`).
pub const WANDB_JOB_TYPE: &str = "WANDB_JOB_TYPE";

/// Resume behaviour: `allow`, `must`, `never` or `auto` (setting `resume`).
pub const WANDB_RESUME: &str = "WANDB_RESUME";

/// Console capture: `auto`, `off`, `wrap`, `redirect`, `wrap_raw`, `wrap_emu` (setting `console`).
pub const WANDB_CONSOLE: &str = "WANDB_CONSOLE";

/// Server API URL (setting `base_url`, default `https://api.wandb.ai`).
pub const WANDB_BASE_URL: &str = "WANDB_BASE_URL";

/// API key (setting `api_key`); also the first place the sync API-key lookup looks.
pub const WANDB_API_KEY: &str = "WANDB_API_KEY";

/// Path of an OIDC identity token file; W&B refuses it together with `WANDB_API_KEY`.
pub const WANDB_IDENTITY_TOKEN_FILE: &str = "WANDB_IDENTITY_TOKEN_FILE";

/// Suppress informational output (setting `silent`).
pub const WANDB_SILENT: &str = "WANDB_SILENT";

/// Reduce output (setting `quiet`).
pub const WANDB_QUIET: &str = "WANDB_QUIET";

/// System metrics sampling interval in seconds (setting `x_stats_sampling_interval`).
pub const WANDB_X_STATS_SAMPLING_INTERVAL: &str = "WANDB_X_STATS_SAMPLING_INTERVAL";

/// Private spelling of [`WANDB_X_STATS_SAMPLING_INTERVAL`] (`WANDB__FOO` means `x_foo`). Note that
/// `WANDB__X_STATS_SAMPLING_INTERVAL` would mean `x_x_stats_sampling_interval`, which W&B ignores.
pub const WANDB__STATS_SAMPLING_INTERVAL: &str = "WANDB__STATS_SAMPLING_INTERVAL";

/// Disable system metrics (setting `x_disable_stats`).
pub const WANDB_X_DISABLE_STATS: &str = "WANDB_X_DISABLE_STATS";

/// Private spelling of [`WANDB_X_DISABLE_STATS`].
pub const WANDB__DISABLE_STATS: &str = "WANDB__DISABLE_STATS";

/// Send file_stream bodies uncompressed even when the server accepts gzip (setting
/// `x_file_stream_no_gzip`).
pub const WANDB_X_FILE_STREAM_NO_GZIP: &str = "WANDB_X_FILE_STREAM_NO_GZIP";

/// Suffix appended to run directory names (setting `x_sync_dir_suffix`).
pub const WANDB_X_SYNC_DIR_SUFFIX: &str = "WANDB_X_SYNC_DIR_SUFFIX";

/// Program that created the run (setting `program`).
pub const WANDB_PROGRAM: &str = "WANDB_PROGRAM";

/// Host name to record (setting `host`, default: this machine's host name).
pub const WANDB_HOST: &str = "WANDB_HOST";

/// Comma-separated globs of files not to upload (setting `ignore_globs`).
pub const WANDB_IGNORE_GLOBS: &str = "WANDB_IGNORE_GLOBS";

/// Force `.wandb` (true) or `wandb` (false) as the directory name (setting `use_dot_wandb`).
pub const WANDB_USE_DOT_WANDB: &str = "WANDB_USE_DOT_WANDB";

/// Whether the run is started by W&B Launch (setting `launch`, boolean). Only then are the launch
/// variables below read, and `init`'s project, entity and run id ignored.
pub const WANDB_LAUNCH: &str = "WANDB_LAUNCH";

/// Path of a launch configuration file whose `overrides.run_config` is the launch config (setting
/// `launch_config_path`); read when `WANDB_CONFIG` is not set.
pub const WANDB_LAUNCH_CONFIG_PATH: &str = "WANDB_LAUNCH_CONFIG_PATH";

/// The launch config, a JSON object merged over the script's `config=` (not a setting). Beats
/// [`WANDB_LAUNCH_CONFIG_PATH`] and the chunks [`WANDB_CONFIG_CHUNK_PREFIX`]`0..n`.
pub const WANDB_CONFIG: &str = "WANDB_CONFIG";

/// Prefix of the chunks of a launch config too long for one variable: `WANDB_CONFIG_0`,
/// `WANDB_CONFIG_1`, ... are joined in order up to the first missing index.
pub const WANDB_CONFIG_CHUNK_PREFIX: &str = "WANDB_CONFIG_";

/// Id of the sweep the run belongs to (setting `sweep_id`), set by a sweep agent for each run it
/// starts; `init`'s project, entity and run id are then ignored.
pub const WANDB_SWEEP_ID: &str = "WANDB_SWEEP_ID";

/// The YAML file of the run's sweep parameters, `{name: {value: v}}` (setting
/// `sweep_param_path`), written by a sweep agent; merged over the script's `config=`.
pub const WANDB_SWEEP_PARAM_PATH: &str = "WANDB_SWEEP_PARAM_PATH";

/// Name of the launch queue the run came from (W&B records it in the config's `_wandb`).
pub const WANDB_LAUNCH_QUEUE_NAME: &str = "WANDB_LAUNCH_QUEUE_NAME";

/// Entity of the launch queue the run came from.
pub const WANDB_LAUNCH_QUEUE_ENTITY: &str = "WANDB_LAUNCH_QUEUE_ENTITY";

/// The launch run-queue item id (W&B's trace id).
pub const WANDB_LAUNCH_TRACE_ID: &str = "WANDB_LAUNCH_TRACE_ID";

/// Artifacts W&B Launch hands to the job (JSON); not applied by this crate.
pub const WANDB_ARTIFACTS: &str = "WANDB_ARTIFACTS";

/// Set by W&B for its service process; excluded from the environment fingerprint.
pub const WANDB_SERVICE: &str = "WANDB_SERVICE";

/// Set by Kubeflow integrations; excluded from the environment fingerprint.
pub const WANDB_KUBEFLOW_URL: &str = "WANDB_KUBEFLOW_URL";

/// Path of the netrc file holding API keys (default `~/.netrc`, else `~/_netrc`).
pub const NETRC: &str = "NETRC";

/// Home directory on Unix-like systems (for `~` and the default file locations).
pub const HOME: &str = "HOME";

/// Home directory on Windows.
pub const USERPROFILE: &str = "USERPROFILE";

/// `WANDB_*` variables that are not settings but that W&B reads elsewhere, and that this crate
/// therefore does not report as unknown. Those this crate uses itself are included too.
pub(crate) const KNOWN_NON_SETTING_VARS: &[&str] = &[
    WANDB_CONFIG_DIR,
    WANDB_SERVICE,
    WANDB_KUBEFLOW_URL,
    "WANDB_AGENT_DISABLE_FLAPPING",
    "WANDB_AGENT_KILL_DELAY",
    "WANDB_AGENT_MAX_INITIAL_FAILURES",
    "WANDB_AGENT_REPORT_INTERVAL",
    "WANDB_ARGS",
    WANDB_ARTIFACTS,
    WANDB_CONFIG,
    "WANDB_ARTIFACT_DIR",
    "WANDB_ARTIFACT_FETCH_FILE_URL_BATCH_SIZE",
    "WANDB_CACHE_DIR",
    "WANDB_CORE_DEBUG",
    "WANDB_CRASH_NOSYNC_TIME",
    "WANDB_DATA_DIR",
    "WANDB_DEBUG",
    "WANDB_DESCRIPTION",
    "WANDB_DISABLE_CODE",
    "WANDB_DISABLE_GIT",
    "WANDB_ENABLE_DCGM_PROFILING",
    "WANDB_ERROR_REPORTING",
    "WANDB_INITED",
    "WANDB_JUPYTER",
    "WANDB_LAUNCH_FILE_OVERRIDES",
    WANDB_LAUNCH_QUEUE_ENTITY,
    WANDB_LAUNCH_QUEUE_NAME,
    WANDB_LAUNCH_TRACE_ID,
    "WANDB_MAGIC",
    "WANDB_RUN_DIR",
    "WANDB_RUN_STORAGE_ID",
    "WANDB_SAVE_CODE",
    "WANDB_SENTRY_DSN",
    "WANDB_SHOW_RUN",
    "WANDB_USE_V1_ARTIFACTS",
];

/// Whether `name` is a numbered chunk W&B Launch splits a long value into (`WANDB_CONFIG_3`,
/// `WANDB_LAUNCH_FILE_OVERRIDES_0`): not a setting.
pub(crate) fn is_launch_chunk(name: &str) -> bool {
    [WANDB_CONFIG_CHUNK_PREFIX, "WANDB_LAUNCH_FILE_OVERRIDES_"]
        .iter()
        .filter_map(|prefix| name.strip_prefix(prefix))
        .any(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// W&B's special variable names whose setting is not `lowercase(name without WANDB_)`.
pub(crate) const SPECIAL_NAMES: &[(&str, &str)] = &[
    ("WANDB_APP_URL", "app_url_override"),
    ("WANDB_SERVICE_TRANSPORT", "x_service_transport"),
    (WANDB_DIR, "root_dir"),
    (WANDB_NAME, "run_name"),
    (WANDB_NOTES, "run_notes"),
    (WANDB_TAGS, "run_tags"),
    (WANDB_JOB_TYPE, "run_job_type"),
    ("WANDB_HTTP_TIMEOUT", "x_graphql_timeout_seconds"),
    (
        "WANDB_FILE_PUSHER_TIMEOUT",
        "x_file_transfer_timeout_seconds",
    ),
    ("WANDB_USER_EMAIL", "email"),
];

/// The setting a `WANDB_*` variable maps to under W&B's rules, or `None` for other variables.
pub(crate) fn setting_for_var(name: &str) -> Option<String> {
    if let Some((_, setting)) = SPECIAL_NAMES.iter().find(|(var, _)| *var == name) {
        return Some((*setting).to_owned());
    }
    if let Some(rest) = name.strip_prefix(WANDB_PRIVATE_PREFIX) {
        return Some(format!("x_{}", rest.to_lowercase()));
    }
    name.strip_prefix(WANDB_PREFIX).map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_and_special_rules() {
        assert_eq!(setting_for_var("WANDB_MODE").as_deref(), Some("mode"));
        assert_eq!(setting_for_var("WANDB_Mode").as_deref(), Some("mode"));
        assert_eq!(setting_for_var("WANDB_DIR").as_deref(), Some("root_dir"));
        assert_eq!(setting_for_var("WANDB_NAME").as_deref(), Some("run_name"));
        assert_eq!(
            setting_for_var("WANDB__STATS_SAMPLING_INTERVAL").as_deref(),
            Some("x_stats_sampling_interval")
        );
        assert_eq!(
            setting_for_var("WANDB_X_STATS_SAMPLING_INTERVAL").as_deref(),
            Some("x_stats_sampling_interval")
        );
        assert_eq!(
            setting_for_var("WANDB__X_STATS_SAMPLING_INTERVAL").as_deref(),
            Some("x_x_stats_sampling_interval")
        );
        assert_eq!(setting_for_var("HOME"), None);
    }

    #[test]
    fn launch_chunks_are_not_settings() {
        assert!(is_launch_chunk("WANDB_CONFIG_0"));
        assert!(is_launch_chunk("WANDB_CONFIG_12"));
        assert!(is_launch_chunk("WANDB_LAUNCH_FILE_OVERRIDES_1"));
        assert!(!is_launch_chunk("WANDB_CONFIG_DIR"));
        assert!(!is_launch_chunk("WANDB_CONFIG_"));
        assert!(!is_launch_chunk("WANDB_CONFIG"));
    }
}
