//! Archives written by `wandb-archive`: `wandb-sync runs.tar.zst` gives the server what the run
//! folders give, and keeps its state in `runs.tar.zst.sync/`, so a second sync skips the run.

#![allow(clippy::unwrap_used)]

use wandb_archive::{PackOptions, pack};
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{RunSpec, assert_clean, assert_same, essence, options, write_run};

#[test]
fn an_archive_syncs_like_its_folders_and_resumes_from_its_state() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("arch", 400);
    spec.console_every = 100;
    let run = write_run(&home.path().join("wandb"), &spec);
    let archive = home.path().join("moved/runs.tar.zst");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    pack(&PackOptions {
        inputs: vec![run.clone()],
        output: archive.clone(),
        level: 1,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    })
    .unwrap();

    let from_folder = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_folder, vec![run])).unwrap();
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let from_archive = TestBackend::start().unwrap();
    let report = sync_paths(&options(&from_archive, vec![archive.clone()])).unwrap();
    assert_eq!(report.runs.len(), 1);
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let want = from_folder.state();
    let got = from_archive.state();
    assert_eq!(got.runs.len(), 1);
    assert_clean(&got.runs[0]);
    assert_same(
        &essence(&want.runs[0]),
        &essence(&got.runs[0]),
        "archive vs folder",
    );

    // The state is next to the archive; a second sync skips the synced run.
    let state = home.path().join("moved/runs.tar.zst.sync");
    let synced = std::fs::read_dir(&state)
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wandb.synced")
        });
    assert!(synced);
    let again = sync_paths(&options(&from_archive, vec![archive])).unwrap();
    assert!(again.runs.iter().all(|r| r.result != RunResult::Synced));
}
