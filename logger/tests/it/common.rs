//! Shared helpers: isolated setups with an injected environment, reading a run's records back,
//! replaying its summary, and running scenarios in a child process (a re-run of this test
//! binary) for anything that touches process-wide state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery, json, proto};
use wandb_logger::{Env, LoadContext, Run, Setup, SetupOptions};

/// Name of the variable that selects a child scenario.
pub(crate) const CHILD_VAR: &str = "WANDB_LOGGER_IT_CHILD";
/// Folder a child scenario works in.
pub(crate) const CHILD_DIR_VAR: &str = "WANDB_LOGGER_IT_DIR";

/// A temporary workspace with a setup whose environment is `vars` plus an offline mode
/// (unless `vars` sets one), working directory and home in the workspace.
pub(crate) struct Workspace {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) setup: Setup,
}

impl Workspace {
    pub(crate) fn new() -> Workspace {
        Workspace::with_env(&[])
    }

    pub(crate) fn with_env(vars: &[(&str, &str)]) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::new(SetupOptions::default().context(context(dir.path(), vars))).unwrap();
        Workspace { dir, setup }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A load context rooted at `dir` with environment `vars` (offline unless set).
pub(crate) fn context(dir: &Path, vars: &[(&str, &str)]) -> LoadContext {
    let mut env = Env::from_pairs(vars.iter().map(|(k, v)| (*k, *v)));
    if env.get("WANDB_MODE").is_none() {
        env.set("WANDB_MODE", "offline");
    }
    // Process-wide features stay off in in-process tests unless a test turns them on:
    // console capture would mix the output of concurrent tests, and sampling adds records.
    for (name, value) in [
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
    ] {
        if env.get(name).is_none() {
            env.set(name, value);
        }
    }
    LoadContext::new(env, dir)
        .with_home(dir)
        .with_hostname("testhost")
}

/// Every record of a `.wandb` file; panics on any damage.
pub(crate) fn read_records(path: &Path) -> Vec<proto::Record> {
    let file = LogFile::open(path).unwrap();
    file.records(Recovery::Strict)
        .map(|entry| match entry.unwrap() {
            Entry::Record { record, .. } => *record,
            Entry::Damage(damage) => panic!("damage in {}: {damage}", path.display()),
        })
        .collect()
}

/// The records of a file that may end in a torn tail, and whether it did.
pub(crate) fn read_records_tolerant(path: &Path) -> (Vec<proto::Record>, bool) {
    let file = LogFile::open(path).unwrap();
    let mut records = Vec::new();
    let mut torn = false;
    for entry in file.records(Recovery::TolerateTornTail) {
        match entry.unwrap() {
            Entry::Record { record, .. } => records.push(*record),
            Entry::Damage(_) => torn = true,
        }
    }
    (records, torn)
}

/// The record type's name, as the SDK's `WhichOneof` spells it.
pub(crate) fn kind(record: &proto::Record) -> &'static str {
    match &record.record_type {
        Some(RecordType::History(_)) => "history",
        Some(RecordType::Summary(_)) => "summary",
        Some(RecordType::Output(_)) => "output",
        Some(RecordType::Config(_)) => "config",
        Some(RecordType::Files(_)) => "files",
        Some(RecordType::Stats(_)) => "stats",
        Some(RecordType::Alert(_)) => "alert",
        Some(RecordType::Telemetry(_)) => "telemetry",
        Some(RecordType::Metric(_)) => "metric",
        Some(RecordType::OutputRaw(_)) => "output_raw",
        Some(RecordType::Run(_)) => "run",
        Some(RecordType::Exit(_)) => "exit",
        Some(RecordType::Header(_)) => "header",
        Some(RecordType::Preempting(_)) => "preempting",
        Some(RecordType::Environment(_)) => "environment",
        Some(_) => "other",
        None => "none",
    }
}

/// The log file of a finished run.
pub(crate) fn log_path(run: &Run) -> PathBuf {
    run.log_path().unwrap().to_path_buf()
}

/// A history row: its step and its items by dotted key path, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryRow {
    pub(crate) step: i64,
    pub(crate) items: BTreeMap<String, json::Value>,
}

/// The history rows of `records`, checking that `step.num` equals `_step` and that every item
/// uses `nested_key`.
pub(crate) fn history(records: &[proto::Record]) -> Vec<HistoryRow> {
    records
        .iter()
        .filter_map(|r| match &r.record_type {
            Some(RecordType::History(h)) => Some(h),
            _ => None,
        })
        .map(|h| {
            let step = h.step.as_ref().map_or(-1, |s| s.num);
            let items: BTreeMap<String, json::Value> = h
                .item
                .iter()
                .map(|item| {
                    assert!(item.key.is_empty(), "history items use nested_key");
                    (
                        item.nested_key.join("."),
                        json::parse(&item.value_json).unwrap(),
                    )
                })
                .collect();
            assert_eq!(items.get("_step").and_then(json::Value::as_i64), Some(step));
            HistoryRow { step, items }
        })
        .collect()
}

/// The user keys of a row (without `_step`, `_runtime`, `_timestamp`).
pub(crate) fn user_keys(row: &HistoryRow) -> Vec<String> {
    row.items
        .keys()
        .filter(|k| !k.starts_with('_'))
        .cloned()
        .collect()
}

/// The summary after replaying every summary record, by dotted key path.
pub(crate) fn replay_summary(records: &[proto::Record]) -> BTreeMap<String, json::Value> {
    let mut summary = BTreeMap::new();
    for record in records {
        if let Some(RecordType::Summary(s)) = &record.record_type {
            for item in &s.update {
                summary.insert(
                    item_path(&item.key, &item.nested_key),
                    json::parse(&item.value_json).unwrap(),
                );
            }
            for item in &s.remove {
                summary.remove(&item_path(&item.key, &item.nested_key));
            }
        }
    }
    summary
}

fn item_path(key: &str, nested: &[String]) -> String {
    if key.is_empty() {
        nested.join(".")
    } else {
        key.to_owned()
    }
}

/// Runs child scenario `name` (the `child::entry` test of this binary) with extra environment
/// `vars`, in `dir`. Returns the child without waiting.
pub(crate) fn spawn_child(name: &str, dir: &Path, vars: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args(["--exact", "child::entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .env(CHILD_DIR_VAR, dir)
        .env("WANDB_DIR", dir)
        .env("WANDB_CONFIG_DIR", dir)
        .env("HOME", dir)
        .env("WANDB_MODE", "offline")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("WANDB_") && name != "WANDB_SDK_PYTHON" {
            command.env_remove(name);
        }
    }
    command
        .env("WANDB_DIR", dir)
        .env("WANDB_MODE", "offline")
        .env("WANDB_CONFIG_DIR", dir)
        .env("WANDB_CONSOLE", "off")
        .env("WANDB_X_DISABLE_STATS", "true");
    for (k, v) in vars {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

/// Runs child scenario `name` to the end.
pub(crate) fn run_child(name: &str, dir: &Path, vars: &[(&str, &str)]) -> Output {
    spawn_child(name, dir, vars).wait_with_output().unwrap()
}

/// The single run folder under `<dir>/wandb/` whose name ends with `-<id>`, and its log.
pub(crate) fn find_run(dir: &Path, id: &str) -> PathBuf {
    let wandb = dir.join("wandb");
    let entry = std::fs::read_dir(&wandb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(&format!("-{id}"))
        })
        .unwrap_or_else(|| panic!("no run {id} in {}", wandb.display()));
    entry.join(format!("run-{id}.wandb"))
}

/// Runs a Python `script` with the official SDK in `cwd` (also its home), the caller's `WANDB_*`
/// variables removed and `vars` set (silent, no system stats); the script prints `RUNDIR <run.dir>`.
/// Returns the path of the run's `.wandb` file.
pub(crate) fn sdk_script_log(
    python: &Path,
    script: &str,
    cwd: &Path,
    vars: &[(&str, &str)],
) -> PathBuf {
    let mut command = Command::new(python);
    command
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("HOME", cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("WANDB_") && name != "WANDB_SDK_PYTHON" {
            command.env_remove(name);
        }
    }
    command
        .env("WANDB_SILENT", "true")
        .env("WANDB_X_DISABLE_STATS", "true");
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files_dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RUNDIR "))
        .map(PathBuf::from)
        .unwrap();
    let run_dir = files_dir.parent().unwrap();
    std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap()
}
