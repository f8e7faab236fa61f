//! Environment variables: W&B's naming rules, aliases, ignored names, the online→offline notice,
//! and the fingerprint that detects changes after setup.

mod common;

use common::Fixture;
use wandb_settings::{
    EffectiveMode, Env, IgnoredReason, IgnoredSetting, Key, Overrides, Source, env_fingerprint,
};

fn ignored_names(fx: &Fixture) -> Vec<(String, IgnoredReason)> {
    fx.setup(&Overrides::default())
        .expect("loads")
        .report()
        .ignored
        .iter()
        .map(|i| (i.name.clone(), i.reason.clone()))
        .collect()
}

#[test]
fn special_names_and_general_rule() {
    let mut fx = Fixture::new();
    for (var, value) in [
        ("WANDB_NAME", "name"),
        ("WANDB_NOTES", "notes"),
        ("WANDB_TAGS", "a,b"),
        ("WANDB_JOB_TYPE", "train"),
        ("WANDB_RUN_GROUP", "g"),
        ("WANDB_IGNORE_GLOBS", "*.ckpt,tmp/*"),
        ("WANDB_HOST", "override-host"),
        ("WANDB_PROGRAM", "train.py"),
        ("WANDB_QUIET", "yes"),
        ("WANDB__DISABLE_STATS", "true"),
        ("WANDB_X_SYNC_DIR_SUFFIX", "sfx"),
    ] {
        fx.set_env(var, value);
    }
    let s = fx.load().expect("loads");
    assert_eq!(s.run_name.as_deref(), Some("name"));
    assert_eq!(s.run_notes.as_deref(), Some("notes"));
    assert_eq!(s.run_tags, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(s.run_job_type.as_deref(), Some("train"));
    assert_eq!(s.run_group.as_deref(), Some("g"));
    assert_eq!(s.ignore_globs, ["*.ckpt", "tmp/*"]);
    assert_eq!(s.host, "override-host");
    assert_eq!(s.program.as_deref(), Some("train.py"));
    assert!(s.quiet);
    assert!(s.x_disable_stats);
    assert_eq!(
        s.source(Key::XDisableStats),
        &Source::Env {
            var: "WANDB__DISABLE_STATS".to_owned()
        }
    );
    assert_eq!(s.x_sync_dir_suffix, "sfx");
}

#[test]
fn defaults() {
    let fx = Fixture::new();
    let s = fx.load().expect("loads");
    assert_eq!(s.mode.as_str(), "online");
    assert_eq!(s.base_url, "https://api.wandb.ai");
    assert_eq!(s.x_stats_sampling_interval, 15.0);
    assert_eq!(
        s.stats_sampling_interval(),
        std::time::Duration::from_secs(15)
    );
    assert_eq!(s.console.as_str(), "wrap");
    assert_eq!(s.host, "test-host");
    assert_eq!(s.root_dir, fx.cwd);
    assert_eq!(s.wandb_dir, fx.cwd.join("wandb"));
    assert!(!s.silent && !s.quiet && !s.x_disable_stats);
    assert_eq!(s.resume, None);
    assert_eq!(s.run_tags, None);
    assert!(s.ignore_globs.is_empty());
    assert_eq!(s.api_key, None);
    assert_eq!(s.source(Key::Mode), &Source::Default);
}

#[test]
fn documented_spelling_wins_over_aliases() {
    let mut fx = Fixture::new();
    fx.set_env("WANDB_NAME", "documented");
    fx.set_env("WANDB_RUN_NAME", "alias");
    fx.set_env("WANDB_X_STATS_SAMPLING_INTERVAL", "2");
    fx.set_env("WANDB__STATS_SAMPLING_INTERVAL", "3");
    fx.set_env("WANDB_mode", "offline");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.run_name.as_deref(), Some("documented"));
    assert_eq!(s.x_stats_sampling_interval, 2.0);
    // W&B lowercases the rest of the name, so WANDB_mode is the mode.
    assert_eq!(s.mode.as_str(), "offline");
    let shadowed: Vec<String> = setup
        .report()
        .ignored
        .iter()
        .filter(|i| matches!(i.reason, IgnoredReason::Shadowed { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shadowed,
        [
            "ignoring WANDB_RUN_NAME from environment variable WANDB_RUN_NAME: overridden by WANDB_NAME",
            "ignoring WANDB__STATS_SAMPLING_INTERVAL from environment variable WANDB__STATS_SAMPLING_INTERVAL: overridden by WANDB_X_STATS_SAMPLING_INTERVAL",
        ]
    );
}

#[test]
fn unknown_and_unsupported_vars_are_listed() {
    let mut fx = Fixture::new();
    fx.set_env("WANDB_PROJCT", "typo");
    fx.set_env("WANDB__X_STATS_SAMPLING_INTERVAL", "5");
    fx.set_env("WANDB_HEARTBEAT_SECONDS", "10");
    fx.set_env("WANDB_CONFIG_DIR", "/nonexistent");
    fx.set_env("WANDB_CACHE_DIR", "/c");
    fx.set_env("WANDB_SERVICE", "x");
    fx.set_env("NOT_WANDB", "x");
    assert_eq!(
        ignored_names(&fx),
        vec![
            (
                "WANDB_HEARTBEAT_SECONDS".to_owned(),
                IgnoredReason::Unsupported
            ),
            ("WANDB_PROJCT".to_owned(), IgnoredReason::Unknown),
            (
                "WANDB__X_STATS_SAMPLING_INTERVAL".to_owned(),
                IgnoredReason::Unknown
            ),
        ]
    );
    let s = fx.load().expect("loads");
    assert_eq!(s.x_stats_sampling_interval, 15.0);
    let i = IgnoredSetting {
        name: "WANDB_PROJCT".into(),
        origin: Source::Env {
            var: "WANDB_PROJCT".into(),
        },
        reason: IgnoredReason::Unknown,
    };
    assert_eq!(
        i.to_string(),
        "ignoring WANDB_PROJCT from environment variable WANDB_PROJCT: unknown setting"
    );
}

#[test]
fn online_is_offline_and_says_so() {
    let fx = Fixture::new();
    let s = fx.load().expect("loads");
    assert_eq!(s.effective_mode(), EffectiveMode::Offline);
    assert!(!s.online_requested(), "the default is not a request");
    assert_eq!(s.offline_notice(), None);

    let mut fx = Fixture::new();
    fx.set_env("WANDB_MODE", "online");
    let s = fx.load().expect("loads");
    assert_eq!(s.effective_mode(), EffectiveMode::Offline);
    assert!(s.online_requested());
    assert_eq!(
        s.offline_notice().as_deref(),
        Some(
            "mode \"online\" requested by environment variable WANDB_MODE: this logger writes runs offline; upload them later with wandb-sync"
        )
    );

    let setup = fx.setup(&Overrides::default()).expect("loads");
    for (mode, online, effective) in [
        ("offline", false, EffectiveMode::Offline),
        ("dryrun", false, EffectiveMode::Offline),
        ("shared", true, EffectiveMode::Offline),
        ("run", true, EffectiveMode::Offline),
        ("disabled", false, EffectiveMode::Disabled),
    ] {
        let s = setup
            .resolve(&Overrides::default(), &Overrides::default().mode(mode))
            .expect("valid");
        assert_eq!(s.online_requested(), online, "{mode}");
        assert_eq!(s.effective_mode(), effective, "{mode}");
        assert_eq!(s.is_disabled(), effective == EffectiveMode::Disabled);
    }
}

#[test]
fn fingerprint_detects_changes_after_setup() {
    let mut fx = Fixture::new();
    fx.set_env("WANDB_PROJECT", "p");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    assert!(!setup.env_changed(&fx.env));

    let changed_value = fx.env.clone().with("WANDB_PROJECT", "q");
    // W&B's own check compares names only...
    assert!(!setup.env_changed(&changed_value));
    // ...the fingerprint also sees values.
    assert!(
        setup
            .env_fingerprint()
            .changed(&env_fingerprint(&changed_value))
    );

    let added = fx.env.clone().with("WANDB_MODE", "offline");
    assert!(setup.env_changed(&added));
    assert_eq!(
        setup
            .env_fingerprint()
            .changed_vars(&env_fingerprint(&added)),
        ["WANDB_MODE"]
    );

    // Later changes are not applied to the loaded settings.
    assert_eq!(
        setup.settings().expect("valid").project.as_deref(),
        Some("p")
    );
}

#[test]
fn process_env_snapshot_is_usable() {
    // Reads the real environment but never changes it.
    let env = Env::from_process();
    let _ = env.fingerprint();
    let ctx = wandb_settings::LoadContext::from_process().expect("cwd");
    assert!(!ctx.cwd.as_os_str().is_empty());
}
