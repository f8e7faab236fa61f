//! Real programs through the queue: an unmodified official-SDK script (offline) and a program
//! using our `wandb-logger` get their config and run id from the item; their runs are found
//! by `list` with their final metric, and synced to the test backend with the right config.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wandb_settings::Secret;
use wandb_sync::{RetryPolicy, SyncOptions, sync_paths};
use wandb_testkit::TestBackend;

mod common;

/// When set, [`logger_job_child`] is the job: a `wandb-logger` program.
const CHILD: &str = "WANDB_LAUNCH_TEST_LOGGER_CHILD";

fn launch(dir: &Path, args: &[&str]) -> String {
    common::succeeds(
        common::command(dir, args)
            .env("WANDB_MODE", "offline")
            .env_remove(CHILD),
    )
}

/// The item of `list --json`.
fn listed(dir: &Path, id: &str) -> Value {
    launch(dir, &["list", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["data"].clone())
        .find(|v| v["id"] == id)
        .unwrap()
}

/// Syncs run folders to a fresh test backend; the one run's config, keys to values.
fn synced_config(run_dirs: &[PathBuf]) -> (String, serde_json::Map<String, Value>) {
    let backend = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        run_dirs.to_vec(),
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    options.retry = RetryPolicy::fast();
    let report = sync_paths(&options).unwrap();
    assert_eq!(report.runs.len(), 1, "{report:?}");
    let state = backend.state();
    assert_eq!(state.runs.len(), 1);
    let run = &state.runs[0];
    let config = run.config.clone().unwrap();
    let values = config
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect();
    (run.run_id.clone(), values)
}

fn run_dirs(item: &Value) -> Vec<PathBuf> {
    item["record"]["run_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect()
}

/// Runs the agent until the queue is empty; item `id` must have finished with one run folder
/// and a `loss` metric. The item and its run folders.
fn run_the_item(dir: &Path, id: &str) -> (Value, Vec<PathBuf>) {
    launch(dir, &["agent", "--poll", "100ms", "--exit-when-empty"]);
    let item = listed(dir, id);
    assert_eq!(item["state"], "finished", "{item:#}");
    let dirs = run_dirs(&item);
    assert_eq!(dirs.len(), 1, "{item:#}");
    assert_eq!(item["metric"]["name"], "loss");
    (item, dirs)
}

#[test]
fn an_unmodified_sdk_script_gets_its_config_and_run_id() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.py"),
        "import wandb\n\
         run = wandb.init(project='launched', config={'lr': 0.5, 'epochs': 2})\n\
         for step in range(3):\n    run.log({'loss': 1.0 / (step + 1), 'acc': step / 4})\n\
         run.finish()\n",
    )
    .unwrap();
    let id = launch(
        dir.path(),
        &[
            "add",
            "-c",
            "lr=0.1",
            "-c",
            "optimizer=sgd",
            "--run-id",
            "sdkrun01",
            "--",
            python.to_str().unwrap(),
            "train.py",
        ],
    );
    let id = id.trim();
    let (item, dirs) = run_the_item(dir.path(), id);
    assert_eq!(item["run_id"], "sdkrun01");
    assert!(dirs[0].to_string_lossy().ends_with("-sdkrun01"));
    let loss = item["metric"]["value"].as_f64().unwrap();
    assert!((loss - 1.0 / 3.0).abs() < 1e-9, "{loss}");
    let table = launch(dir.path(), &["list", "--metric", "acc"]);
    assert!(table.contains("acc=0.5"), "{table}");
    let (run_id, config) = synced_config(&dirs);
    assert_eq!(run_id, "sdkrun01");
    assert_eq!(
        config["lr"], 0.1,
        "launch config wins over init's: {config:?}"
    );
    assert_eq!(config["optimizer"], "sgd");
    assert_eq!(config["epochs"], 2);
}

#[test]
fn a_wandb_logger_program_gets_its_config_and_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let id = launch(
        dir.path(),
        &[
            "add",
            "-c",
            "lr=0.1",
            "-c",
            "layers=[64,32]",
            "--run-id",
            "logrun01",
            "--project",
            "launched",
            "--env",
            &format!("{CHILD}=1"),
            "--",
            exe.to_str().unwrap(),
            "logger_job_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    let id = id.trim();
    let (item, dirs) = run_the_item(dir.path(), id);
    assert_eq!(item["metric"]["value"], 0.25);
    let (run_id, config) = synced_config(&dirs);
    assert_eq!(run_id, "logrun01");
    assert_eq!(config["lr"], 0.1, "{config:?}");
    assert_eq!(config["layers"], serde_json::json!([64, 32]));
    assert_eq!(config["batch"], 16, "init's own config is kept: {config:?}");
}

/// Not a test of its own: the job of [`a_wandb_logger_program_gets_its_config_and_run_id`]
/// (that test runs this binary with this filter and [`CHILD`] set).
#[test]
fn logger_job_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let run = wandb_logger::init(
        wandb_logger::InitOptions::new().config(&serde_json::json!({"lr": 0.5, "batch": 16})),
    )
    .unwrap();
    assert_eq!(run.id(), "logrun01");
    for step in 1..=4u32 {
        run.log(wandb_logger::row! {"loss" => 1.0 / f64::from(step)})
            .unwrap();
    }
    run.finish().unwrap();
}
