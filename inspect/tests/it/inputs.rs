//! Inputs: `wandb/` folders with `latest-run` links, run folders and glob patterns.

use wandb_inspect::Exit;

use crate::util::{fixture, inspect, json_lines, redact};

/// A `wandb/` folder holding copies of two fixtures and a `latest-run` link to the second.
fn wandb_folder(root: &std::path::Path) -> std::path::PathBuf {
    let wandb = root.join("wandb");
    for (run, scenario) in [
        ("offline-run-20261122_031918-fxplain0", "plain"),
        ("offline-run-20261122_032014-fxconsl0", "console"),
    ] {
        let dir = wandb.join(run);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        let source = fixture(scenario);
        std::fs::copy(&source, dir.join(source.file_name().unwrap())).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        wandb.join("offline-run-20261122_032014-fxconsl0"),
        wandb.join("latest-run"),
    )
    .unwrap();
    wandb
}

#[test]
fn wandb_folders_are_searched_and_latest_run_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let output = inspect(&[&"verify", &tmp.path(), &wandb, &wandb.join("latest-run")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(
        redact(&output.stdout, Some(tmp.path())),
        "[TMP]/wandb/offline-run-20261122_031918-fxplain0/run-fxplain0.wandb: OK (162 records, 21293 bytes)\n\
         [TMP]/wandb/offline-run-20261122_032014-fxconsl0/run-fxconsl0.wandb: OK (98 records, 6584 bytes)\n"
    );
}

#[test]
fn glob_patterns_are_expanded_here() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let pattern = wandb.join("*/run-*.wandb");
    let output = inspect(&[&"summary", &"--json", &pattern]);
    assert_eq!(output.exit, Exit::Ok);
    let ids: Vec<String> = json_lines(&output.stdout)
        .iter()
        .map(|line| line["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["fxplain0", "fxconsl0"]);
}

#[test]
fn a_run_folder_works_for_history() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let output = inspect(&[&"history", &wandb.join("latest-run")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(output.stdout.lines().count(), 1 + 4);
}

#[test]
fn folders_without_record_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let output = inspect(&[&"dump", &tmp.path()]);
    assert_eq!(output.exit, Exit::Error);
    assert!(
        output.stderr.contains("no .wandb file in this folder"),
        "{}",
        output.stderr
    );
}
