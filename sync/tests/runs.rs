//! Fragments of one run sync in start order and append; `--live` follows a run being written;
//! overrides apply; `latest-run` links are deduplicated.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wandb_format::Writer;
use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{RunSpec, assert_clean, options, records, write_run};

#[test]
fn fragments_append_in_start_order() {
    let home = tempfile::tempdir().unwrap();
    let mut first = RunSpec::new("frag", 300);
    first.console_every = 100;
    let mut second = RunSpec::new("frag", 200);
    second.start_seconds += 3600;
    second.console_every = 100;
    let a = write_run(&home.path().join("a/wandb"), &first);
    let b = write_run(&home.path().join("b/wandb"), &second);
    let backend = TestBackend::start().unwrap();
    // Given in reverse order: start time decides.
    let report = sync_paths(&options(&backend, vec![b, a])).unwrap();
    assert!(report.runs.iter().all(|r| r.result == RunResult::Synced));
    let state = backend.state();
    assert_eq!(state.runs.len(), 1);
    let run = &state.runs[0];
    assert_clean(run);
    assert_eq!(run.history.len(), 500);
    let steps: Vec<i64> = run
        .history
        .iter()
        .map(|r| r["_step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps[299], 299);
    assert_eq!(steps[300], 0, "the second fragment follows the first");
    assert_eq!(
        run.console_text().len(),
        5,
        "console appended: {:?}",
        run.console
    );
    assert_eq!(run.counters.console_overwrites, 0);
}

#[test]
fn live_follows_a_run_until_its_exit_record() {
    let home = tempfile::tempdir().unwrap();
    let spec = RunSpec::new("liverun", 300);
    let dir = home
        .path()
        .join("wandb/offline-run-20260101_000000-liverun");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run-liverun.wandb");
    let all = records(&spec);
    let mut writer = Writer::create(&path).unwrap();
    let (head, tail) = all.split_at(200);
    for r in head {
        writer.append_record(r).unwrap();
    }
    writer.persist(wandb_format::Durability::Flush).unwrap();
    let backend = TestBackend::start().unwrap();
    let mut opts = options(&backend, vec![path.clone()]);
    opts.live = true;
    std::thread::scope(|scope| {
        let syncing = scope.spawn(|| sync_paths(&opts).unwrap());
        let seen = backend.wait_for(Duration::from_secs(30), |s| {
            s.runs.first().is_some_and(|r| !r.history.is_empty())
        });
        assert!(
            seen.is_some(),
            "live sync sent nothing while the run was open"
        );
        assert!(!syncing.is_finished());
        for r in tail {
            writer.append_record(r).unwrap();
            writer.persist(wandb_format::Durability::Flush).unwrap();
        }
        let report = syncing.join().unwrap();
        assert_eq!(
            report.runs[0].result,
            RunResult::Synced,
            "{:?}",
            report.runs[0]
        );
    });
    let state = backend.state();
    assert_eq!(state.runs[0].history.len(), 300);
    assert_eq!(state.runs[0].exit_code, Some(0));
    assert_clean(&state.runs[0]);
}

#[test]
fn overrides_and_latest_run_links() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    let path = write_run(&wandb, &RunSpec::new("orig", 5));
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        path.parent().unwrap().file_name().unwrap(),
        wandb.join("latest-run"),
    )
    .unwrap();
    let backend = TestBackend::start().unwrap();
    let mut opts = options(&backend, vec![wandb.clone()]);
    opts.entity = Some("team".into());
    opts.project = Some("p2".into());
    opts.run_id = Some("newid".into());
    opts.job_type = Some("eval".into());
    opts.replace_tags = vec![("old".into(), "new".into()), ("t1".into(), String::new())];
    let report = sync_paths(&opts).unwrap();
    assert_eq!(
        report.runs.len(),
        1,
        "latest-run deduplicated: {:?}",
        report.runs
    );
    assert!(!report.runs[0].path.to_string_lossy().contains("latest-run"));
    let run = backend.run("team", "p2", "newid").unwrap();
    assert_eq!(run.tags, vec!["new".to_owned()]);
    assert_eq!(run.job_type.as_deref(), Some("eval"));
    assert_clean(&run);
}
