//! Process events, each in a child process: the setup singleton, fork, `kill -9`, panics and
//! SIGTERM.

#![allow(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;

use wandb_format::proto::record::RecordType;

use crate::common::{
    find_run, history, kind, read_records, read_records_tolerant, run_child, spawn_child,
};

fn assert_ok(output: &std::process::Output, marker: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(marker),
        "child failed ({:?}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn exit_code(records: &[wandb_format::proto::Record]) -> Option<i32> {
    records.iter().find_map(|r| match &r.record_type {
        Some(RecordType::Exit(exit)) => Some(exit.exit_code),
        _ => None,
    })
}

#[test]
fn singleton_setup_init_teardown() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("singleton", dir.path(), &[]);
    assert_ok(&output, "SINGLETON OK");
    for id in ["singlea1", "singleb1"] {
        let records = read_records(&find_run(dir.path(), id));
        assert_eq!(exit_code(&records), Some(0));
    }
}

#[test]
fn forked_child_logs_its_own_run_and_leaves_the_parents_alone() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("fork", dir.path(), &[]);
    assert_ok(&output, "FORK OK");
    let parent = read_records(&find_run(dir.path(), "forkpare"));
    let rows = history(&parent);
    assert_eq!(rows.len(), 20);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r.step == i as i64 && r.items["i"].as_i64() == Some(i as i64))
    );
    assert_eq!(parent.iter().filter(|r| kind(r) == "exit").count(), 1);
    assert_eq!(exit_code(&parent), Some(0));
    let child = read_records(&find_run(dir.path(), "forkchld"));
    assert_eq!(history(&child).len(), 5);
    assert_eq!(exit_code(&child), Some(0));
}

#[test]
fn kill_dash_nine_keeps_everything_up_to_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child("kill9", dir.path(), &[]);
    let stdout = child.stdout.take().unwrap();
    let mut flushed = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("FLUSHED ") {
            flushed = n.parse().unwrap();
            if flushed >= 20_000 {
                break;
            }
        }
    }
    assert!(flushed >= 20_000, "child stopped early");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let (records, _torn) = read_records_tolerant(&find_run(dir.path(), "killnine"));
    assert_eq!(
        &records.iter().map(kind).take(2).collect::<Vec<_>>(),
        &["header", "run"]
    );
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record.num,
            i as i64 + 1,
            "records are numbered without gaps"
        );
    }
    let rows = history(&records);
    assert!(
        rows.len() as u64 >= flushed,
        "{} rows < {flushed} flushed",
        rows.len()
    );
    for (i, row) in rows.iter().enumerate() {
        // Nothing invented: every row is the one logged for its step.
        assert_eq!(row.step, i as i64);
        assert_eq!(row.items["i"].as_i64(), Some(i as i64));
        assert_eq!(row.items["x"].as_f64(), Some(i as f64 * 0.5));
    }
    assert!(!records.iter().any(|r| kind(r) == "exit"));
}

#[test]
fn panic_unwinding_through_the_owner_marks_the_run_failed() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("panic_drop", dir.path(), &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("PANICKING"));
    let records = read_records(&find_run(dir.path(), "panicdrp"));
    assert_eq!(history(&records).len(), 1);
    assert_eq!(exit_code(&records), Some(1));
}

#[test]
fn panic_hook_flushes_and_finishes_runs_owned_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("panic_elsewhere", dir.path(), &[]);
    assert_ok(&output, "PANICKED");
    let records = read_records(&find_run(dir.path(), "panicels"));
    assert_eq!(history(&records).len(), 2);
    assert_eq!(exit_code(&records), Some(1));
}

fn sigterm_child(handle: &str) -> (std::process::ExitStatus, Vec<wandb_format::proto::Record>) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child("sigterm", dir.path(), &[("WANDB_X_HANDLE_SIGTERM", handle)]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.unwrap() == "READY"),
        "child did not get ready"
    );
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let (records, torn) = read_records_tolerant(&find_run(dir.path(), "sigterm0"));
    assert!(!torn);
    (status, records)
}

#[test]
fn sigterm_writes_preempting_flushes_and_terminates() {
    let (status, records) = sigterm_child("true");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(
        records.iter().filter(|r| kind(r) == "preempting").count(),
        1
    );
    let rows = history(&records);
    assert_eq!(rows.len(), 101, "the pending row is written too");
    assert_eq!(rows[100].step, 100);
    // The run ends with the process, after the preempting record: exit code 128 + SIGTERM.
    assert_eq!(exit_code(&records), Some(143));
    let preempting = records.iter().position(|r| kind(r) == "preempting");
    let exit = records.iter().position(|r| kind(r) == "exit");
    assert!(preempting < exit, "preempting before exit");
}

#[test]
fn sigterm_handling_can_be_turned_off() {
    let (status, records) = sigterm_child("false");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!records.iter().any(|r| kind(r) == "preempting"));
    assert_eq!(history(&records).len(), 100);
}

#[test]
fn console_output_is_captured_and_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("console", dir.path(), &[("WANDB_CONSOLE", "wrap")]);
    assert_ok(&output, "CONSOLE DONE");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The terminal (here the parent's pipe) still sees everything.
    assert!(stdout.contains("stdout line 1"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("stderr line"));
    let records = read_records(&find_run(dir.path(), "console0"));
    let mut out = String::new();
    let mut err = String::new();
    for record in &records {
        if let Some(RecordType::OutputRaw(raw)) = &record.record_type {
            if raw.output_type == 1 {
                out.push_str(&raw.line);
            } else {
                err.push_str(&raw.line);
            }
            assert!(raw.timestamp.is_some());
        }
    }
    assert!(out.contains("stdout line 1\n"), "{out:?}");
    assert!(out.contains("progress 10%\rprogress 100%\n"), "{out:?}");
    assert!(out.contains("utf-8: héllo ✓\n"), "{out:?}");
    assert!(out.ends_with("no newline at the end"), "{out:?}");
    assert!(!out.contains("CONSOLE DONE"), "captured after finish");
    assert_eq!(err, "stderr line\n");
    // The output records come before the exit record.
    assert_eq!(kind(records.last().unwrap()), "exit");
    let log = std::fs::read_to_string(
        find_run(dir.path(), "console0")
            .parent()
            .unwrap()
            .join("files/output.log"),
    )
    .unwrap();
    assert!(log.contains("stdout line 1\n"), "{log}");
    assert!(log.contains("\nprogress 100%\n"), "{log}");
    assert!(log.contains("stderr line\n"), "{log}");
    assert!(log.ends_with("no newline at the end\n"), "{log}");
}

#[test]
fn dropped_row_warns_on_stderr_without_a_logger() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("dropped_row", dir.path(), &[]);
    assert_ok(&output, "out_of_order=1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("wandb: WARNING run dropped: step 2 is less than the current step 5"),
        "no warning on stderr:\n{stderr}"
    );

    let quiet = tempfile::tempdir().unwrap();
    let output = run_child("dropped_row", quiet.path(), &[("WANDB_SILENT", "true")]);
    assert_ok(&output, "out_of_order=1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("wandb: WARNING"),
        "WANDB_SILENT did not silence the warning:\n{stderr}"
    );
}
