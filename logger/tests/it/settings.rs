//! Settings reach the run in W&B's precedence, bad values are errors naming the setting and its
//! source, and the disabled and online modes behave.

use std::fs;

use wandb_format::proto::record::RecordType;
use wandb_logger::{Error, InitOptions, Overrides, Setup, SetupOptions, row};
use wandb_settings::{Key, Source};

use crate::common::{Workspace, context, kind, log_path, read_records};

/// The settings checked, with their settings-file name and environment variable.
const KEYS: [(Key, &str, &str); 6] = [
    (Key::Project, "project", "WANDB_PROJECT"),
    (Key::Entity, "entity", "WANDB_ENTITY"),
    (Key::RunGroup, "run_group", "WANDB_RUN_GROUP"),
    (Key::RunJobType, "run_job_type", "WANDB_JOB_TYPE"),
    (Key::RunName, "run_name", "WANDB_NAME"),
    (Key::RunNotes, "run_notes", "WANDB_NOTES"),
];

/// Source levels, lowest first: system file, workspace file, env, setup, init settings, init
/// argument.
const LEVELS: usize = 6;

fn value(key_idx: usize, level: usize) -> String {
    format!("k{key_idx}-level{level}")
}

fn init_arg(options: InitOptions, key: Key, value: String) -> InitOptions {
    match key {
        Key::Project => options.project(value),
        Key::Entity => options.entity(value),
        Key::RunGroup => options.group(value),
        Key::RunJobType => options.job_type(value),
        Key::RunName => options.name(value),
        Key::RunNotes => options.notes(value),
        _ => unreachable!(),
    }
}

#[test]
fn precedence_from_defaults_to_init_arguments() {
    // For each round, key k is set at every level up to its top level, which differs per key,
    // and the value from the top level must win.
    for round in 0..LEVELS {
        let dir = tempfile::tempdir().unwrap();
        let top = |k: usize| (k + round) % LEVELS;
        let mut system = String::from("[default]\n");
        let mut workspace = String::from("[default]\n");
        let mut env: Vec<(String, String)> = Vec::new();
        let mut setup = Overrides::default();
        let mut init_settings = Overrides::default();
        let mut options = InitOptions::new();
        for (k, (key, file_name, var)) in KEYS.iter().enumerate() {
            for level in 0..=top(k) {
                let v = value(k, level);
                match level {
                    0 => system.push_str(&format!("{file_name} = {v}\n")),
                    1 => workspace.push_str(&format!("{file_name} = {v}\n")),
                    2 => env.push(((*var).to_owned(), v)),
                    3 => setup.set(*key, &v),
                    4 => init_settings.set(*key, &v),
                    _ => options = init_arg(options, *key, v),
                }
            }
        }
        fs::create_dir_all(dir.path().join(".config/wandb")).unwrap();
        fs::write(dir.path().join(".config/wandb/settings"), system).unwrap();
        fs::create_dir_all(dir.path().join("wandb")).unwrap();
        fs::write(dir.path().join("wandb/settings"), workspace).unwrap();
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let setup = Setup::new(
            SetupOptions::default()
                .context(context(dir.path(), &env_refs))
                .settings(setup),
        )
        .unwrap();
        let run = setup.init(options.settings(init_settings)).unwrap();
        let settings = run.settings().clone();
        for (k, (key, _, var)) in KEYS.iter().enumerate() {
            let expected = value(k, top(k));
            let got = match key {
                Key::Project => settings.project.clone(),
                Key::Entity => settings.entity.clone(),
                Key::RunGroup => settings.run_group.clone(),
                Key::RunJobType => settings.run_job_type.clone(),
                Key::RunName => settings.run_name.clone(),
                Key::RunNotes => settings.run_notes.clone(),
                _ => unreachable!(),
            };
            assert_eq!(
                got.as_deref(),
                Some(expected.as_str()),
                "round {round} key {key}"
            );
            let source = settings.source(*key);
            let ok = match top(k) {
                0 => matches!(source, Source::SystemFile { .. }),
                1 => matches!(source, Source::WorkspaceFile { .. }),
                2 => {
                    *source
                        == Source::Env {
                            var: (*var).to_owned(),
                        }
                }
                3 => *source == Source::Setup,
                4 => *source == Source::InitSettings,
                _ => *source == Source::InitArg,
            };
            assert!(ok, "round {round} key {key}: source {source}");
        }
        let path = log_path(&run);
        run.finish().unwrap();
        // The run record carries the winners.
        let records = read_records(&path);
        let Some(RecordType::Run(rec)) = &records[1].record_type else {
            panic!("second record is {}", kind(&records[1]));
        };
        let winners: Vec<String> = (0..KEYS.len()).map(|k| value(k, top(k))).collect();
        assert_eq!(
            [
                &rec.project,
                &rec.entity,
                &rec.run_group,
                &rec.job_type,
                &rec.display_name,
                &rec.notes
            ]
            .map(String::as_str),
            winners
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
        );
    }
}

#[test]
fn dir_id_and_tags_follow_precedence() {
    let ws = Workspace::with_env(&[("WANDB_RUN_ID", "fromenv1"), ("WANDB_TAGS", "env-a,env-b")]);
    let run = ws.setup.init(InitOptions::new()).unwrap();
    assert_eq!(run.id(), "fromenv1");
    assert_eq!(
        run.settings().run_tags.as_deref(),
        Some(&["env-a".to_owned(), "env-b".to_owned()][..])
    );
    run.finish().unwrap();

    let other = tempfile::tempdir().unwrap();
    let run = ws
        .setup
        .init(
            InitOptions::new()
                .id("fromarg1")
                .tags(["x"])
                .dir(other.path()),
        )
        .unwrap();
    assert_eq!(run.id(), "fromarg1");
    let dir = run.dir().unwrap().to_path_buf();
    assert!(
        dir.starts_with(other.path().join("wandb")),
        "{}",
        dir.display()
    );
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("offline-run-") && name.ends_with("-fromarg1"),
        "{name}"
    );
    run.finish().unwrap();
}

#[test]
fn generated_ids_are_eight_base36_characters() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    let id = run.id().to_owned();
    assert_eq!(id.len(), 8);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{id}"
    );
    run.finish().unwrap();
}

#[test]
fn invalid_values_name_the_setting_and_source() {
    let dir = tempfile::tempdir().unwrap();
    // Errors from setup-time sources.
    type Case<'a> = (&'a [(&'a str, &'a str)], Overrides, &'a str);
    let cases: [Case<'_>; 4] = [
        (
            &[("WANDB_MODE", "onlin")],
            Overrides::default(),
            "invalid mode \"onlin\" from environment variable WANDB_MODE",
        ),
        (
            &[("WANDB_RESUME", "sometimes")],
            Overrides::default(),
            "invalid resume \"sometimes\" from environment variable WANDB_RESUME",
        ),
        (
            &[],
            Overrides::default().project("a/b"),
            "invalid project \"a/b\" from setup settings",
        ),
        (
            &[("WANDB_X_STATS_SAMPLING_INTERVAL", "fast")],
            Overrides::default(),
            "invalid x_stats_sampling_interval \"fast\" from environment variable",
        ),
    ];
    for (env, setup, expected) in cases {
        let err = Setup::new(
            SetupOptions::default()
                .context(context(dir.path(), env))
                .settings(setup),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Settings(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{err} / {expected}");
    }

    // Errors from init-time sources.
    let ws = Workspace::new();
    let cases: [(InitOptions, &str); 4] = [
        (
            InitOptions::new().id("a:b"),
            "invalid run_id \"a:b\" from init argument",
        ),
        (
            InitOptions::new().console("tty"),
            "invalid console \"tty\" from init argument",
        ),
        (
            InitOptions::new().settings(Overrides::default().x_stats_sampling_interval("0.01")),
            "invalid x_stats_sampling_interval \"0.01\" from init settings: must be at least 0.1",
        ),
        (InitOptions::new().tags([""]), "invalid run_tags"),
    ];
    for (options, expected) in cases {
        let err = ws.setup.init(options).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} / {expected}");
    }
    // Nothing was created for the failed inits.
    assert!(!ws.path().join("wandb").exists());
}

#[test]
fn api_key_and_base_url_never_reach_files_or_errors() {
    let key = "local-0123456789abcdef0123456789abcdef01234567";
    let ws = Workspace::with_env(&[
        ("WANDB_API_KEY", key),
        ("WANDB_BASE_URL", "https://wandb.secret-host.example"),
    ]);
    let run = ws.setup.init(InitOptions::new().project("p")).unwrap();
    run.log(row! {"a" => 1}).unwrap();
    let dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    for entry in walk(&dir) {
        let bytes = fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(key), "{} holds the key", entry.display());
        assert!(
            !text.contains("secret-host"),
            "{} holds the base url",
            entry.display()
        );
    }
    // A malformed key (surrounding whitespace) is reported without its value.
    let dir = tempfile::tempdir().unwrap();
    let err = Setup::new(SetupOptions::default().context(context(
        dir.path(),
        &[("WANDB_API_KEY", " short-secret-value ")],
    )))
    .unwrap_err();
    assert!(err.to_string().contains("api_key"), "{err}");
    assert!(!err.to_string().contains("short-secret-value"), "{err}");
    assert!(
        !format!("{err:?}").contains("short-secret-value"),
        "{err:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn disabled_mode_writes_nothing() {
    for ws in [
        Workspace::with_env(&[("WANDB_MODE", "disabled")]),
        Workspace::new(),
    ] {
        let options = if ws.setup.settings().unwrap().is_disabled() {
            InitOptions::new()
        } else {
            InitOptions::new().mode("disabled")
        };
        let run = ws.setup.init(options).unwrap();
        assert!(run.is_disabled());
        assert_eq!(run.dir(), None);
        for i in 0..1000 {
            run.log(row! {"x" => i}).unwrap();
        }
        run.summary_set("best", &1).unwrap();
        run.config_set("lr", &0.1).unwrap();
        run.flush().unwrap();
        run.sync().unwrap();
        assert_eq!(run.summary().unwrap().len(), 0);
        let summary = run.finish().unwrap();
        assert_eq!((summary.rows, summary.records, summary.bytes), (0, 0, 0));
        assert!(
            !ws.path().join("wandb").exists(),
            "disabled created a folder"
        );
    }
}

#[test]
fn online_mode_runs_offline() {
    let ws = Workspace::with_env(&[("WANDB_MODE", "online"), ("WANDB_SILENT", "true")]);
    let run = ws.setup.init(InitOptions::new()).unwrap();
    assert!(run.settings().online_requested());
    let name = run
        .dir()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("offline-run-"), "{name}");
    run.finish().unwrap();
}

#[test]
fn env_changes_after_setup_are_detectable() {
    let ws = Workspace::with_env(&[("WANDB_PROJECT", "a")]);
    let same = context(ws.path(), &[("WANDB_PROJECT", "a")]).env;
    assert!(!ws.setup.env_changed_from(&same));
    assert!(!ws.setup.env_changed());
    let changed = same.clone().with("WANDB_PROJECT", "b");
    assert!(ws.setup.env_changed_from(&changed));
    let added = same.with("WANDB_ENTITY", "me");
    assert!(ws.setup.env_changed_from(&added));
}
