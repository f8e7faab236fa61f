//! A run written by `wandb-logger` is uploaded correctly by both the official `wandb sync` (0.31.0)
//! and `wandb-sync`: the test backend reconstructs the same run from each (config, summary, every
//! history row, console, uploaded files, exit state), and that run holds what was logged.

use std::time::Duration;

use wandb_logger::{InitOptions, Metric, SavePolicy, SummaryStat, row};
use wandb_settings::Secret;
use wandb_sync::{RunResult, SyncOptions, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::official_sync_of_a_copy;
use wandb_testkit::compare::{assert_same, essence};

const ROWS: usize = 500;

/// Logs a small but varied run into `dir` and returns its run folder.
fn log_run(dir: &std::path::Path) -> std::path::PathBuf {
    let config =
        serde_json::json!({"lr": 0.001, "model": {"layers": 4, "act": "gelu"}, "seeds": [1, 2]});
    let run = wandb_logger::init(
        InitOptions::new()
            .mode("offline")
            .dir(dir)
            .project("compat")
            .id("compat01")
            .name("compatibility run")
            .tags(["a", "b"])
            .console("off")
            .config(&config),
    )
    .unwrap();
    run.define_metric(Metric::new("val/loss").summary(SummaryStat::Min))
        .unwrap();
    for step in 0..ROWS {
        let x = step as f64;
        let odd = if step == 7 {
            f64::NAN
        } else {
            (x / 10.0).sin()
        };
        run.log(row! {"loss" => 1.0 / (x + 1.0), "odd" => odd, "train" => row!{"acc" => x / ROWS as f64}})
            .unwrap();
        if step % 100 == 0 {
            run.log(row! {"val/loss" => 2.0 - x / 1000.0}).unwrap();
        }
    }
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "saved with the run\n").unwrap();
    run.save(&notes, SavePolicy::Now).unwrap();
    run.summary_set("best", &0.99).unwrap();
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    run_dir
}

#[test]
fn official_and_our_sync_reconstruct_the_same_run_from_our_logger() {
    let Some(python) = wandb_integration_tests::sdk_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let run_dir = log_run(scratch.path());

    // The official client first, on a copy (it writes its own markers next to the file).
    let theirs = official_sync_of_a_copy(&python, &run_dir, scratch.path());

    let ours = TestBackend::start().unwrap();
    let mut options = SyncOptions::new(
        vec![run_dir.clone()],
        ours.base_url(),
        Some(Secret::new(ours.api_key())),
    );
    options.run_timeout = Duration::from_secs(120);
    let report = sync_paths(&options).unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );

    let theirs_run = theirs
        .find_run("compat01")
        .expect("official sync uploaded nothing");
    let ours_run = ours
        .find_run("compat01")
        .expect("our sync uploaded nothing");
    assert_same(&essence(&theirs_run), &essence(&ours_run), "logger run");

    // And the run holds what was logged.
    assert_eq!(ours_run.history.len(), ROWS + ROWS / 100);
    assert_eq!(ours_run.exit_code, Some(0));
    assert!(ours_run.complete);
    let summary = ours_run.summary.as_ref().unwrap();
    assert_eq!(summary["best"], 0.99);
    assert_eq!(summary["val/loss"]["min"], 2.0 - 400.0 / 1000.0);
    assert!(
        ours_run.file("notes.txt").is_some(),
        "saved file not uploaded"
    );
    let config = ours_run.config.as_ref().unwrap();
    assert_eq!(config["model"]["value"]["layers"], 4);
}
