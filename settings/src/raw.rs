//! The raw, unvalidated settings layer: one optional value per setting, with its source.
//!
//! Every source (a settings file, the environment, `setup`, `init`) produces a [`RawSettings`];
//! the layers are merged key by key, the higher precedence winning, and the result is validated
//! into a [`crate::Settings`]. Values stay as text here (as in W&B's files and environment), so that
//! one validation path produces one kind of error, naming the source.
//! [`Overrides`] is the same layer without sources, for callers of `setup` and `init`.

use std::fmt;
use std::path::PathBuf;

use crate::env;
use crate::secret::Secret;
use crate::source::{Source, Sourced};

/// Conversion from the text form used in files and the environment.
trait FromRawText {
    fn from_raw_text(text: &str) -> Self;
}

impl FromRawText for String {
    fn from_raw_text(text: &str) -> Self {
        text.to_owned()
    }
}

impl FromRawText for PathBuf {
    fn from_raw_text(text: &str) -> Self {
        PathBuf::from(text)
    }
}

impl FromRawText for Secret {
    fn from_raw_text(text: &str) -> Self {
        Secret::new(text)
    }
}

impl FromRawText for Vec<String> {
    /// Lists are split on commas, without trimming, as W&B does.
    fn from_raw_text(text: &str) -> Self {
        text.split(',').map(str::to_owned).collect()
    }
}

macro_rules! settings_keys {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident : $ty:ty, $variant:ident, $var:path;
    )*) => {
        /// A setting this crate understands, named as in W&B.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Key {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Key {
            /// Every key, in declaration (and validation) order.
            pub const ALL: &'static [Key] = &[$(Key::$variant),*];

            /// The setting's W&B name, as used in settings files (`run_id`, `base_url`, ...).
            pub fn name(self) -> &'static str {
                match self { $(Key::$variant => stringify!($field),)* }
            }

            /// The documented environment variable that sets this key.
            pub fn env_var(self) -> &'static str {
                match self { $(Key::$variant => $var,)* }
            }

            /// The key with W&B name `name`, if this crate models it.
            pub fn from_name(name: &str) -> Option<Key> {
                match name {
                    $(stringify!($field) => Some(Key::$variant),)*
                    _ => None,
                }
            }
        }

        /// Settings given by a caller of `setup` or `init`: every field is optional, and values
        /// use the same text form as settings files (`"offline"`, `"true"`, `"2.5"`). List fields
        /// hold the items; [`Overrides::set`] splits text on commas instead.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Overrides {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
        }

        impl Overrides {
            $(
                #[doc = concat!("Returns these overrides with `", stringify!($field), "` set.")]
                pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// Sets `key` from its text form (lists are split on commas).
            pub fn set(&mut self, key: Key, text: &str) {
                match key {
                    $(Key::$variant => {
                        self.$field = Some(<$ty as FromRawText>::from_raw_text(text));
                    })*
                }
            }

            /// Returns these overrides with `key` set from its text form.
            pub fn with(mut self, key: Key, text: &str) -> Self {
                self.set(key, text);
                self
            }

            /// Whether `key` is set.
            pub fn is_set(&self, key: Key) -> bool {
                match key { $(Key::$variant => self.$field.is_some(),)* }
            }
        }

        /// One layer of settings: every field optional, each value with its [`Source`].
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct RawSettings {
            $( $(#[doc = $doc])* pub $field: Option<Sourced<$ty>>, )*
        }

        impl RawSettings {
            /// The layer made of `overrides`, every value attributed to `source`.
            pub fn from_overrides(overrides: &Overrides, source: &Source) -> Self {
                RawSettings {
                    $($field: overrides.$field.clone().map(|v| Sourced::new(v, source.clone())),)*
                }
            }

            /// Overrides, key by key, every value of `self` with the value in `higher`, if any.
            pub fn merge_from(&mut self, higher: RawSettings) {
                $(if higher.$field.is_some() { self.$field = higher.$field; })*
            }

            /// Sets `key` from its text form (lists are split on commas).
            pub fn set_text(&mut self, key: Key, text: &str, source: Source) {
                match key {
                    $(Key::$variant => {
                        let value = <$ty as FromRawText>::from_raw_text(text);
                        self.$field = Some(Sourced::new(value, source));
                    })*
                }
            }

            /// Unsets `key`.
            pub fn clear(&mut self, key: Key) {
                match key { $(Key::$variant => self.$field = None,)* }
            }

            /// The source of `key`'s value, or `None` if this layer does not set it.
            pub fn source(&self, key: Key) -> Option<&Source> {
                match key { $(Key::$variant => self.$field.as_ref().map(|s| &s.source),)* }
            }

            /// The keys this layer sets, in [`Key::ALL`] order.
            pub fn keys(&self) -> Vec<Key> {
                Key::ALL.iter().copied().filter(|k| self.source(*k).is_some()).collect()
            }

            /// Whether this layer sets no key.
            pub fn is_empty(&self) -> bool {
                self.keys().is_empty()
            }
        }
    };
}

settings_keys! {
    /// Mode: `online` (default), `offline`, `dryrun`, `disabled`, `shared` or `run`.
    mode: String, Mode, env::WANDB_MODE;
    /// Directory that holds the `wandb/` directory; defaults to the working directory.
    root_dir: PathBuf, RootDir, env::WANDB_DIR;
    /// Project name: at most 128 characters, none of `/\#?%:`.
    project: String, Project, env::WANDB_PROJECT;
    /// Entity (user or team).
    entity: String, Entity, env::WANDB_ENTITY;
    /// Run id: not empty, no surrounding whitespace, none of `:;,#?/'`.
    run_id: String, RunId, env::WANDB_RUN_ID;
    /// Run display name.
    run_name: String, RunName, env::WANDB_NAME;
    /// Run notes.
    run_notes: String, RunNotes, env::WANDB_NOTES;
    /// Run tags, each 1 to 64 characters.
    run_tags: Vec<String>, RunTags, env::WANDB_TAGS;
    /// Run group.
    run_group: String, RunGroup, env::WANDB_RUN_GROUP;
    /// Run job type.
    run_job_type: String, RunJobType, env::WANDB_JOB_TYPE;
    /// Resume behaviour: `allow`, `must`, `never` or `auto`.
    resume: String, Resume, env::WANDB_RESUME;
    /// Console capture: `auto` (default, means `wrap`), `off`, `wrap`, `redirect`, `wrap_raw`,
    /// `wrap_emu`.
    console: String, Console, env::WANDB_CONSOLE;
    /// System metrics sampling interval in seconds (default 15, at least 0.1).
    x_stats_sampling_interval: String, XStatsSamplingInterval, env::WANDB_X_STATS_SAMPLING_INTERVAL;
    /// Whether system metrics are off (boolean).
    x_disable_stats: String, XDisableStats, env::WANDB_X_DISABLE_STATS;
    /// Whether file_stream bodies go uncompressed even to a server that accepts gzip (boolean).
    x_file_stream_no_gzip: String, XFileStreamNoGzip, env::WANDB_X_FILE_STREAM_NO_GZIP;
    /// Server API URL (default `https://api.wandb.ai`).
    base_url: String, BaseUrl, env::WANDB_BASE_URL;
    /// API key.
    api_key: Secret, ApiKey, env::WANDB_API_KEY;
    /// Suppress informational output (boolean).
    silent: String, Silent, env::WANDB_SILENT;
    /// Reduce output (boolean).
    quiet: String, Quiet, env::WANDB_QUIET;
    /// Program that created the run.
    program: String, Program, env::WANDB_PROGRAM;
    /// Host name to record (default: this machine's).
    host: String, Host, env::WANDB_HOST;
    /// Globs of files not to upload.
    ignore_globs: Vec<String>, IgnoreGlobs, env::WANDB_IGNORE_GLOBS;
    /// Use `.wandb` (true) or `wandb` (false); by default `.wandb` only if it already exists.
    use_dot_wandb: String, UseDotWandb, env::WANDB_USE_DOT_WANDB;
    /// Suffix appended to run directory names.
    x_sync_dir_suffix: String, XSyncDirSuffix, env::WANDB_X_SYNC_DIR_SUFFIX;
    /// Whether W&B Launch started the run (boolean): the launch config is then read and `init`'s
    /// project, entity and run id are ignored.
    launch: String, Launch, env::WANDB_LAUNCH;
    /// Launch configuration file (its `overrides.run_config` is the launch config).
    launch_config_path: PathBuf, LaunchConfigPath, env::WANDB_LAUNCH_CONFIG_PATH;
    /// Id of the sweep the run belongs to (set by a sweep agent): not empty, no surrounding
    /// whitespace; `init`'s project, entity and run id are then ignored.
    sweep_id: String, SweepId, env::WANDB_SWEEP_ID;
    /// The run's sweep parameters, a YAML file `{name: {value: v}}` (set by a sweep agent).
    sweep_param_path: PathBuf, SweepParamPath, env::WANDB_SWEEP_PARAM_PATH;
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for key in Key::ALL {
            assert_eq!(Key::from_name(key.name()), Some(*key));
            assert!(key.env_var().starts_with("WANDB_"));
        }
        assert_eq!(Key::from_name("nope"), None);
    }

    #[test]
    fn merge_is_per_key() {
        let mut low = RawSettings::default();
        low.set_text(Key::Project, "a", Source::Setup);
        low.set_text(Key::Entity, "e", Source::Setup);
        let mut high = RawSettings::default();
        high.set_text(Key::Project, "b", Source::InitArg);
        low.merge_from(high);
        assert_eq!(low.project.as_ref().map(|s| s.value.as_str()), Some("b"));
        assert_eq!(low.source(Key::Project), Some(&Source::InitArg));
        assert_eq!(low.source(Key::Entity), Some(&Source::Setup));
        assert_eq!(low.keys(), [Key::Project, Key::Entity]);
    }

    #[test]
    fn overrides_builders_and_text() {
        let o = Overrides::default()
            .project("p")
            .run_tags(vec!["a".to_owned()])
            .with(Key::IgnoreGlobs, "*.tmp,x");
        assert_eq!(o.project.as_deref(), Some("p"));
        assert_eq!(
            o.ignore_globs,
            Some(vec!["*.tmp".to_owned(), "x".to_owned()])
        );
        assert!(o.is_set(Key::RunTags));
        assert!(!o.is_set(Key::Mode));
        let raw = RawSettings::from_overrides(&o, &Source::Setup);
        assert_eq!(raw.source(Key::Project), Some(&Source::Setup));
    }

    #[test]
    fn api_key_is_redacted_in_debug() {
        let o = Overrides::default().api_key("topsecretkey");
        assert!(!format!("{o:?}").contains("topsecret"));
        let raw = RawSettings::from_overrides(&o, &Source::InitArg);
        assert!(!format!("{raw:?}").contains("topsecret"));
    }
}
