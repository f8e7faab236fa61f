//! The real binary: kill -9 mid-sync then re-run ends in the exact state of a clean sync; two
//! processes on the same folders never sync a run twice; a locked run is skipped or waited for.

#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use wandb_testkit::{Route, TestBackend};

use crate::common::{
    RunSpec, assert_clean, assert_same, essence, kill_when_rows, sync_command, write_run,
};

fn command(backend: &TestBackend, home: &Path) -> Command {
    sync_command(backend, home)
}

fn output(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().unwrap()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn spec(id: &str) -> RunSpec {
    let mut spec = RunSpec::new(id, 800);
    spec.console_every = 50;
    spec.stats_every = 100;
    spec.files = vec!["a.txt".into()];
    spec
}

#[test]
fn kill_9_then_rerun_gives_the_clean_state() {
    // The clean result.
    let clean = TestBackend::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &spec("killrun"));
    let out = output({
        let mut c = command(&clean, home.path());
        c.arg("--chunk-bytes").arg("8192").arg(&path);
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = essence(&clean.state().runs[0]);

    for kill_after_rows in [1usize, 150, 500] {
        let home = tempfile::tempdir().unwrap();
        let path = write_run(&home.path().join("wandb"), &spec("killrun"));
        let backend = TestBackend::start().unwrap();
        backend
            .faults()
            .delay_all(Route::FileStream, Duration::from_millis(25));
        let child = spawn({
            let mut c = command(&backend, home.path());
            c.arg("--chunk-bytes").arg("8192").arg(&path);
            c
        });
        kill_when_rows(&backend, child, kill_after_rows);
        assert!(!synced_marker(&path).exists(), "killed run marked synced");
        backend.faults().clear();
        let out = output({
            let mut c = command(&backend, home.path());
            c.arg("--chunk-bytes").arg("8192").arg(&path);
            c
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(synced_marker(&path).exists());
        let state = backend.state();
        assert_clean(&state.runs[0]);
        assert_same(&want, &essence(&state.runs[0]), "after kill -9");
    }
}

fn synced_marker(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".synced");
    PathBuf::from(name)
}

fn lock_file(path: &Path) -> std::fs::File {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))
        .unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn a_locked_run_is_skipped_or_waited_for() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &spec("lockrun"));
    let backend = TestBackend::start().unwrap();
    let held = lock_file(&path);

    let out = output({
        let mut c = command(&backend, home.path());
        c.arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("locked"), "{stdout}");
    assert!(backend.state().runs.is_empty(), "a locked run was uploaded");

    let child = spawn({
        let mut c = command(&backend, home.path());
        c.arg("--wait-locked").arg(&path);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(backend.state().runs.is_empty());
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_clean(&backend.state().runs[0]);
}

#[test]
fn two_processes_never_sync_a_run_twice() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for i in 0..6 {
        write_run(&wandb, &spec(&format!("twin{i}")));
    }
    let backend = TestBackend::start().unwrap();
    backend
        .faults()
        .delay_all(Route::FileStream, Duration::from_millis(10));
    let a = spawn({
        let mut c = command(&backend, home.path());
        c.arg("--json").arg(&wandb);
        c
    });
    let b = spawn({
        let mut c = command(&backend, home.path());
        c.arg("--json").arg(&wandb);
        c
    });
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stdout)
    );
    let mut synced = 0;
    for line in String::from_utf8_lossy(&a.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&b.stdout).lines())
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "run" && v["data"]["result"] == "synced" {
            synced += 1;
        }
    }
    assert_eq!(synced, 6, "each run synced by exactly one process");
    let state = backend.state();
    assert_eq!(state.runs.len(), 6);
    for run in &state.runs {
        assert_clean(run);
        assert_eq!(run.history.len(), 800);
        assert_eq!(
            run.counters.identical_line_rewrites, 0,
            "{} re-sent",
            run.run_id
        );
        assert!(
            run.files.values().all(|f| f.put_count == 1),
            "{} files re-sent",
            run.run_id
        );
    }
}
