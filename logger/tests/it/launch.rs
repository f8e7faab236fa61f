//! The launch config reaches the run as with the official SDK: the same environment given to an
//! SDK script (offline) and to our logger yields the same run id, project and config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_logger::{InitOptions, Setup, SetupOptions};

use crate::common::{context, log_path, read_records, sdk_script_log};

/// The script's side of the comparison, run by the official SDK in offline mode: `init` with a
/// project, an id and a config, then an update (with `allow_val_change`, so that it works with
/// and without a launch context). Prints the run folder.
const SDK_SCRIPT: &str = r#"
import sys, wandb
run = wandb.init(mode="offline", project="scriptproj", id="scriptid0",
                 config={"lr": 0.1, "batch": 32, "nested": {"a": 1, "b": 2}})
run.config.update({"lr": 0.5, "extra": 7}, allow_val_change=True)
d = run.dir
run.finish()
print("RUNDIR", d)
"#;

/// What a run ended up with.
#[derive(Debug, PartialEq)]
struct Outcome {
    run_id: String,
    project: String,
    /// The final config without `_wandb`, keys sorted at every level.
    config: String,
    /// The `launch_*` keys of the config's `_wandb`, sorted.
    wandb_launch: String,
}

/// A JSON value with object keys sorted at every level, as text.
pub(crate) fn canonical(value: &json::Value) -> String {
    match value {
        json::Value::Object(map) => {
            let sorted: BTreeMap<&str, String> = map
                .iter()
                .map(|(k, v)| (k.as_str(), canonical(v)))
                .collect();
            let items: Vec<String> = sorted.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The run id, project and final config of a `.wandb` file (run record, then config updates).
fn outcome(path: &Path) -> Outcome {
    let mut config = json::Map::new();
    let mut run_id = String::new();
    let mut project = String::new();
    let apply = |record: &wandb_format::proto::ConfigRecord, config: &mut json::Map| {
        for item in &record.update {
            let key = if item.key.is_empty() {
                item.nested_key.join(".")
            } else {
                item.key.clone()
            };
            config.insert(key, json::parse(&item.value_json).unwrap());
        }
        for item in &record.remove {
            config.remove(&item.key);
        }
    };
    for record in read_records(path) {
        match &record.record_type {
            Some(RecordType::Run(run)) => {
                run_id.clone_from(&run.run_id);
                project.clone_from(&run.project);
                if let Some(c) = &run.config {
                    apply(c, &mut config);
                }
            }
            Some(RecordType::Config(c)) => apply(c, &mut config),
            _ => {}
        }
    }
    let wandb_launch: json::Map = config
        .remove("_wandb")
        .and_then(|wandb| wandb.into_object().ok())
        .map(|wandb| {
            wandb
                .into_iter()
                .filter(|(key, _)| key.starts_with("launch_"))
                .collect()
        })
        .unwrap_or_default();
    // The SDK names a project nobody gave "uncategorized" in the run record; our logger leaves
    // it empty (the server's default is the same). That is not about launch.
    if project.is_empty() {
        project = "uncategorized".to_owned();
    }
    Outcome {
        run_id,
        project,
        config: canonical(&json::Value::Object(config)),
        wandb_launch: canonical(&json::Value::Object(wandb_launch)),
    }
}

/// Runs the SDK script with `vars` in a fresh folder; returns the outcome.
fn sdk_outcome(python: &Path, vars: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    outcome(&sdk_script_log(python, SDK_SCRIPT, dir.path(), vars))
}

/// An SDK script's program with our logger: `init` with project `scriptproj`, id `scriptid0` and
/// config `lr` 0.1, `batch` 32, `nested` (JSON text), then an update of `lr` to 0.5 and a new
/// `extra`. Returns the run's log path and files folder.
pub(crate) fn log_script_program(setup: &Setup, nested: &str) -> (PathBuf, PathBuf) {
    let mut config = BTreeMap::new();
    config.insert("lr", json::parse("0.1").unwrap());
    config.insert("batch", json::parse("32").unwrap());
    config.insert("nested", json::parse(nested).unwrap());
    let run = setup
        .init(
            InitOptions::new()
                .project("scriptproj")
                .id("scriptid0")
                .config(&config),
        )
        .unwrap();
    let path = log_path(&run);
    let files_dir = run.files_dir().unwrap().to_path_buf();
    run.config_update(&json::parse(r#"{"lr": 0.5, "extra": 7}"#).unwrap())
        .unwrap();
    run.finish().unwrap();
    (path, files_dir)
}

/// Runs the same program with our logger, its environment injected.
fn our_outcome(vars: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(SetupOptions::default().context(context(dir.path(), vars))).unwrap();
    let (path, files_dir) = log_script_program(&setup, r#"{"a": 1, "b": 2}"#);
    if let Some((_, file)) = vars.iter().find(|(k, _)| *k == "WANDB_LAUNCH_CONFIG_PATH") {
        // Saved with the run, as the SDK does.
        let name = Path::new(file).file_name().unwrap();
        assert!(
            files_dir.join(name).is_file(),
            "launch config file not saved"
        );
    }
    outcome(&path)
}

/// A launch config longer than one chunk, split as the launch agent splits it.
fn chunked(config: &str, parts: usize) -> Vec<(String, String)> {
    let size = config.len().div_ceil(parts);
    config
        .as_bytes()
        .chunks(size)
        .enumerate()
        .map(|(i, c)| {
            (
                format!("WANDB_CONFIG_{i}"),
                String::from_utf8(c.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn launch_config_reaches_the_run_as_with_the_sdk() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let launch = r#"{"lr": 0.9, "nested": {"b": 20, "c": 3}, "-new-": "x"}"#;
    let chunks = chunked(launch, 3);
    let chunk_vars: Vec<(&str, &str)> = chunks
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let files = tempfile::tempdir().unwrap();
    let launch_file = files.path().join("launch-config.json");
    std::fs::write(
        &launch_file,
        r#"{"overrides": {"run_config": {"lr": 0.6, "nested": {"d": 4}}, "args": []}}"#,
    )
    .unwrap();
    let launch_file = launch_file.to_str().unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "whole variable, launcher's id and project",
            vec![
                ("WANDB_LAUNCH", "True"),
                ("WANDB_CONFIG", launch),
                ("WANDB_RUN_ID", "launchid1"),
                ("WANDB_PROJECT", "launchproj"),
                ("WANDB_LAUNCH_QUEUE_NAME", "gpu-queue"),
                ("WANDB_LAUNCH_QUEUE_ENTITY", "team"),
                ("WANDB_LAUNCH_TRACE_ID", "item-17"),
            ],
        ),
        (
            "chunks",
            [
                vec![("WANDB_LAUNCH", "True"), ("WANDB_RUN_ID", "launchid2")],
                chunk_vars.clone(),
            ]
            .concat(),
        ),
        (
            "WANDB_CONFIG beats the chunks",
            [
                vec![
                    ("WANDB_LAUNCH", "1"),
                    ("WANDB_CONFIG", r#"{"lr": 2}"#),
                    ("WANDB_RUN_ID", "launchid3"),
                ],
                chunk_vars.clone(),
            ]
            .concat(),
        ),
        (
            "a launch config file beats the chunks",
            [
                vec![
                    ("WANDB_LAUNCH", "True"),
                    ("WANDB_LAUNCH_CONFIG_PATH", launch_file),
                    ("WANDB_RUN_ID", "launchid5"),
                ],
                chunk_vars.clone(),
            ]
            .concat(),
        ),
        (
            "a path is not JSON: the script's config",
            vec![
                ("WANDB_LAUNCH", "True"),
                ("WANDB_CONFIG", "/tmp/config.json"),
                ("WANDB_RUN_ID", "launchid4"),
            ],
        ),
        (
            "no launch context: WANDB_CONFIG is ignored",
            vec![("WANDB_CONFIG", launch), ("WANDB_RUN_ID", "plainid")],
        ),
    ];
    for (name, vars) in cases {
        let theirs = sdk_outcome(&python, &vars);
        let ours = our_outcome(&vars);
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn launch_keys_are_locked_and_the_launcher_picks_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("WANDB_LAUNCH", "True"),
        ("WANDB_CONFIG", r#"{"lr": 0.9}"#),
        ("WANDB_RUN_ID", "launched"),
        ("WANDB_PROJECT", "launchproj"),
    ];
    let setup = Setup::new(SetupOptions::default().context(context(dir.path(), &vars))).unwrap();
    let run = setup
        .init(InitOptions::new().project("mine").id("mine0001"))
        .unwrap();
    assert_eq!(run.id(), "launched");
    assert_eq!(run.settings().project.as_deref(), Some("launchproj"));
    let folder = run.dir().unwrap().file_name().unwrap().to_owned();
    assert!(
        folder.to_str().unwrap().ends_with("-launched"),
        "{folder:?}"
    );
    let path = log_path(&run);
    run.config_set("lr", &0.1).unwrap();
    run.config_set("other", &1).unwrap();
    run.finish().unwrap();
    let got = outcome(&path);
    assert_eq!(got.config, r#"{"lr":0.9,"other":1}"#);
}
