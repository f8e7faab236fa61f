//! Every validation message, in full, with the source it names.

mod common;

use common::Fixture;
use wandb_settings::{Env, Key, LoadContext, Overrides, SettingsError, SetupSettings, Source};

/// The error from loading with one environment variable set.
fn env_error(var: &str, value: &str) -> String {
    let mut fx = Fixture::new();
    fx.set_env(var, value);
    match fx.setup(&Overrides::default()) {
        Ok(_) => panic!("{var}={value:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

/// The error from resolving with one init argument set.
fn arg_error(key: Key, value: &str) -> String {
    let fx = Fixture::new();
    let setup = fx.setup(&Overrides::default()).expect("loads");
    match setup.resolve(
        &Overrides::default(),
        &Overrides::default().with(key, value),
    ) {
        Ok(_) => panic!("{key}={value:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mode() {
    assert_eq!(
        env_error("WANDB_MODE", "onlin"),
        "invalid mode \"onlin\" from environment variable WANDB_MODE: expected one of online, offline, dryrun, disabled, shared, run"
    );
    assert_eq!(
        arg_error(Key::Mode, "OFFLINE"),
        "invalid mode \"OFFLINE\" from init argument: expected one of online, offline, dryrun, disabled, shared, run"
    );
}

#[test]
fn run_id() {
    assert_eq!(
        arg_error(Key::RunId, "a/b"),
        "invalid run_id \"a/b\" from init argument: must not contain any of the characters :;,#?/'"
    );
    assert_eq!(
        env_error("WANDB_RUN_ID", ""),
        "invalid run_id \"\" from environment variable WANDB_RUN_ID: must not be empty"
    );
    assert_eq!(
        arg_error(Key::RunId, " abc"),
        "invalid run_id \" abc\" from init argument: must not start or end with whitespace"
    );
    for c in [":", ";", ",", "#", "?", "/", "'"] {
        let id = format!("x{c}y");
        assert!(
            arg_error(Key::RunId, &id).contains("must not contain"),
            "{id}"
        );
    }
}

#[test]
fn project() {
    let long = "p".repeat(129);
    let fx = Fixture::new();
    let err = fx
        .setup(&Overrides::default())
        .expect("loads")
        .resolve(
            &Overrides::default().project(long.as_str()),
            &Overrides::default(),
        )
        .expect_err("too long");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid project \"{long}\" from init settings: must be at most 128 characters, has 129"
        )
    );
    let err = fx
        .setup(&Overrides::default().project("a%b"))
        .expect_err("reserved");
    assert_eq!(
        err.to_string(),
        "invalid project \"a%b\" from setup settings: must not contain any of the characters /\\#?%:"
    );
    for c in ["/", "\\", "#", "?", "%", ":"] {
        assert!(
            arg_error(Key::Project, &format!("a{c}b")).contains("must not contain"),
            "{c}"
        );
    }
}

#[test]
fn sampling_interval() {
    assert_eq!(
        env_error("WANDB_X_STATS_SAMPLING_INTERVAL", "fast"),
        "invalid x_stats_sampling_interval \"fast\" from environment variable WANDB_X_STATS_SAMPLING_INTERVAL: expected a number of seconds"
    );
    assert_eq!(
        env_error("WANDB__STATS_SAMPLING_INTERVAL", "0.01"),
        "invalid x_stats_sampling_interval \"0.01\" from environment variable WANDB__STATS_SAMPLING_INTERVAL: must be at least 0.1 seconds"
    );
    assert_eq!(
        arg_error(Key::XStatsSamplingInterval, "NaN"),
        "invalid x_stats_sampling_interval \"NaN\" from init argument: expected a finite number of seconds"
    );
}

#[test]
fn console() {
    assert_eq!(
        env_error("WANDB_CONSOLE", "wrapped"),
        "invalid console \"wrapped\" from environment variable WANDB_CONSOLE: expected one of auto, off, wrap, redirect, wrap_raw, wrap_emu"
    );
}

#[test]
fn resume() {
    assert_eq!(
        env_error("WANDB_RESUME", "maybe"),
        "invalid resume \"maybe\" from environment variable WANDB_RESUME: expected one of allow, must, never, auto"
    );
    // W&B takes booleans only from code.
    assert_eq!(
        env_error("WANDB_RESUME", "true"),
        "invalid resume \"true\" from environment variable WANDB_RESUME: expected one of allow, must, never, auto"
    );
    let fx = Fixture::new();
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup
        .resolve(&Overrides::default(), &Overrides::default().resume("true"))
        .expect("valid");
    assert_eq!(s.resume.map(|r| r.as_str()), Some("auto"));
    let mut fx = Fixture::new();
    fx.set_env("WANDB_RESUME", "must");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup
        .resolve(&Overrides::default(), &Overrides::default().resume("false"))
        .expect("valid");
    assert_eq!(s.resume, None);
}

#[test]
fn base_url() {
    assert_eq!(
        env_error("WANDB_BASE_URL", "ftp://files.example"),
        "invalid base_url \"ftp://files.example\" from environment variable WANDB_BASE_URL: scheme must be http or https, not \"ftp\""
    );
    assert_eq!(
        arg_error(Key::BaseUrl, "api.example.com"),
        "invalid base_url \"api.example.com\" from init argument: not a valid url: relative url without a base"
    );
    assert_eq!(
        arg_error(Key::BaseUrl, "https://wandb.ai"),
        "invalid base_url \"https://wandb.ai\" from init argument: not a valid server address, did you mean https://api.wandb.ai?"
    );
    assert_eq!(
        arg_error(Key::BaseUrl, "http://api.wandb.ai"),
        "invalid base_url \"http://api.wandb.ai\" from init argument: http is not secure, use https://api.wandb.ai"
    );
}

#[test]
fn booleans_and_tags() {
    assert_eq!(
        env_error("WANDB_SILENT", "sure"),
        "invalid silent \"sure\" from environment variable WANDB_SILENT: expected a boolean (true/false, yes/no, on/off, 1/0)"
    );
    assert_eq!(
        env_error("WANDB_X_DISABLE_STATS", "2"),
        "invalid x_disable_stats \"2\" from environment variable WANDB_X_DISABLE_STATS: expected a boolean (true/false, yes/no, on/off, 1/0)"
    );
    assert_eq!(
        env_error("WANDB_TAGS", "a,,b"),
        "invalid run_tags [\"a\", \"\", \"b\"] from environment variable WANDB_TAGS: tag 1 is empty; tags must be 1 to 64 characters"
    );
    let long = "t".repeat(65);
    assert_eq!(
        arg_error(Key::RunTags, &long),
        format!(
            "invalid run_tags [\"{long}\"] from init argument: tag 0 has 65 characters; tags must be 1 to 64 characters"
        )
    );
}

#[test]
fn api_key_whitespace_names_source_not_value() {
    let msg = env_error("WANDB_API_KEY", " secretvalue123");
    assert_eq!(
        msg,
        "invalid api_key from environment variable WANDB_API_KEY: must not start or end with whitespace"
    );
}

#[cfg(unix)]
#[test]
fn non_unicode_env_value() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let env = Env::empty().with("WANDB_PROJECT", OsString::from_vec(vec![0x66, 0xff]));
    let err = SetupSettings::load(&LoadContext::new(env, "/"), None, &Overrides::default())
        .expect_err("not unicode");
    assert_eq!(
        err.to_string(),
        "invalid project from environment variable WANDB_PROJECT: value is not valid unicode"
    );
    // Paths need not be Unicode.
    let env = Env::empty().with("WANDB_DIR", OsString::from_vec(vec![b'/', 0xff]));
    assert!(SetupSettings::load(&LoadContext::new(env, "/"), None, &Overrides::default()).is_ok());
}

#[test]
fn bad_lower_source_is_an_error_even_if_overridden() {
    let mut fx = Fixture::new();
    fx.set_env("WANDB_MODE", "onlin");
    let err = SetupSettings::load(&fx.ctx(), None, &Overrides::default().mode("offline"))
        .expect_err("W&B validates each source as it applies it");
    assert_eq!(
        err.origin(),
        &Source::Env {
            var: "WANDB_MODE".to_owned()
        }
    );
    assert_eq!(err.setting(), Key::Mode);
}

#[test]
fn errors_are_typed() {
    let err = Fixture::new()
        .setup(&Overrides::default().run_id(""))
        .expect_err("empty id");
    assert!(matches!(err, SettingsError::InvalidRunId { .. }));
    assert_eq!(err.origin(), &Source::Setup);
}
