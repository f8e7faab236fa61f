//! Untrusted input: file paths leaving `files/` are refused and never uploaded; damaged and
//! truncated files upload everything valid and say what was skipped.

#![allow(clippy::unwrap_used)]

use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{RunSpec, assert_clean, options, write_run};

#[test]
fn paths_leaving_files_are_refused_and_never_uploaded() {
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let mut spec = RunSpec::new("escape", 20);
    spec.files = vec![
        "ok.txt".into(),
        "../../secret.txt".into(),
        "/etc/passwd".into(),
        "link.txt".into(),
        "sub/../../x".into(),
    ];
    let run_dir = home
        .path()
        .join("wandb/offline-run-20260101_000000-escape/files");
    std::fs::create_dir_all(&run_dir).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, run_dir.join("link.txt")).unwrap();
    let path = write_run(&home.path().join("wandb"), &spec);
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    let refused: Vec<&str> = run.refused.iter().map(|r| r.path.as_str()).collect();
    assert!(refused.contains(&"../../secret.txt"), "{refused:?}");
    assert!(refused.contains(&"/etc/passwd"), "{refused:?}");
    assert!(refused.contains(&"sub/../../x"), "{refused:?}");
    #[cfg(unix)]
    assert!(refused.contains(&"link.txt"), "{refused:?}");
    assert_eq!(report.exit_code(), 1);
    let state = backend.state();
    let server = &state.runs[0];
    assert!(server.file("ok.txt").is_some());
    for f in server.files.values() {
        assert!(f.text() != Some("top secret"), "a secret was uploaded");
    }
    assert!(
        !server
            .files
            .keys()
            .any(|k| k.contains("passwd") || k.contains("secret"))
    );
    assert_clean(server);
}

#[test]
fn damaged_files_upload_everything_valid() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("damaged", 2000));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 100] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert!(!run.damage.is_empty());
    assert!(
        run.rows_total > 1800 && run.rows_total < 2000,
        "{}",
        run.rows_total
    );
    let state = backend.state();
    assert_eq!(state.runs[0].history.len() as u64, run.rows_total);
    assert_eq!(state.runs[0].exit_code, Some(0), "the exit record survived");
    assert_clean(&state.runs[0]);
}

#[test]
fn a_truncated_run_is_marked_failed_on_the_server() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("trunc", 1000));
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len * 7 / 10 + 3).unwrap();
    drop(file);
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.exit_code, Some(1));
    assert!(
        run.warnings.iter().any(|w| w.contains("no exit record")),
        "{run:?}"
    );
    let state = backend.state();
    assert_eq!(state.runs[0].exit_code, Some(1));
    assert!(state.runs[0].history.len() > 600);
    assert_clean(&state.runs[0]);
}

#[test]
fn garbage_and_empty_files_fail_cleanly_and_others_go_on() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    let good = write_run(&wandb, &RunSpec::new("goodrun", 50));
    let bad_dir = wandb.join("offline-run-20260101_000000-badrun");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(
        bad_dir.join("run-badrun.wandb"),
        b"this is not a wandb file",
    )
    .unwrap();
    let empty_dir = wandb.join("offline-run-20260101_000000-empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("run-empty.wandb"), b"").unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![wandb])).unwrap();
    assert_eq!(report.runs.len(), 3);
    for run in &report.runs {
        if run.path == good {
            assert_eq!(run.result, RunResult::Synced);
        } else {
            assert_eq!(run.result, RunResult::Failed, "{run:?}");
            assert!(
                run.error
                    .as_deref()
                    .unwrap()
                    .contains(&*run.path.to_string_lossy()),
                "{run:?}"
            );
        }
    }
    assert_eq!(report.exit_code(), 1);
}
