//! Shared helpers for the sync integration tests: synthetic run folders written with
//! `wandb_format::Writer` in the SDK's shape, fixture copies, options against a test backend,
//! and a comparison of reconstructed runs that ignores only what legitimately differs
//! (console timestamps, the random `_wandb.e` key, set ordering in `_wandb.t`/`m`).

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use wandb_format::Writer;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    ConfigItem, ConfigRecord, FilesItem, FilesRecord, HeaderRecord, HistoryItem, HistoryRecord,
    HistoryStep, OutputRawRecord, Record, RunExitRecord, RunRecord, StatsItem, StatsRecord,
    SummaryItem, SummaryRecord,
};
use wandb_settings::Secret;
use wandb_sync::{RetryPolicy, SyncOptions};
use wandb_testkit::{RunState, TestBackend};

/// Shape of a synthetic run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: String,
    pub project: String,
    pub rows: u64,
    pub floats: usize,
    pub console_every: u64,
    pub stats_every: u64,
    pub exit: bool,
    pub start_seconds: i64,
    pub files: Vec<String>,
}

impl RunSpec {
    pub fn new(run_id: &str, rows: u64) -> Self {
        RunSpec {
            run_id: run_id.to_owned(),
            project: "proj".to_owned(),
            rows,
            floats: 10,
            console_every: 0,
            stats_every: 0,
            exit: true,
            start_seconds: 1_795_000_000,
            files: Vec::new(),
        }
    }
}

fn record(kind: RecordType, num: i64) -> Record {
    Record {
        num,
        record_type: Some(kind),
        ..Default::default()
    }
}

fn nested(key: &str, value: String) -> HistoryItem {
    HistoryItem {
        nested_key: vec![key.to_owned()],
        value_json: value,
        ..Default::default()
    }
}

fn float(f: f64) -> String {
    let mut s = String::new();
    wandb_format::json::format_f64(f, &mut s);
    s
}

/// The records of a synthetic run, in the order wandb-core writes them.
pub fn records(spec: &RunSpec) -> Vec<Record> {
    let mut out = Vec::new();
    let mut num = 0;
    let mut next = |kind| {
        num += 1;
        record(kind, num)
    };
    out.push(next(RecordType::Header(HeaderRecord::default())));
    out.push(next(RecordType::Run(RunRecord {
        run_id: spec.run_id.clone(),
        project: spec.project.clone(),
        display_name: format!("name-{}", spec.run_id),
        tags: vec!["t1".into(), "old".into()],
        start_time: Some(prost_types::Timestamp {
            seconds: spec.start_seconds,
            nanos: 0,
        }),
        config: Some(ConfigRecord {
            update: vec![
                ConfigItem {
                    key: "lr".into(),
                    value_json: "0.001".into(),
                    ..Default::default()
                },
                ConfigItem {
                    key: "_wandb".into(),
                    value_json: "{}".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    })));
    if !spec.files.is_empty() {
        out.push(next(RecordType::Files(FilesRecord {
            files: spec
                .files
                .iter()
                .map(|p| FilesItem {
                    path: p.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })));
    }
    for step in 0..spec.rows {
        let ts = spec.start_seconds as f64 + step as f64 * 0.01 + 0.123;
        let runtime = step as f64 * 0.01 + 0.5;
        let mut items = vec![
            nested("_step", step.to_string()),
            nested("_runtime", float(runtime)),
            nested("_timestamp", float(ts)),
        ];
        for k in 0..spec.floats {
            items.push(nested(
                &format!("m{k}"),
                float((step as f64 + 1.0) / (k as f64 + 3.0)),
            ));
        }
        out.push(next(RecordType::Summary(SummaryRecord {
            update: vec![
                SummaryItem {
                    nested_key: vec!["_wandb".into(), "runtime".into()],
                    value_json: (step / 100).to_string(),
                    ..Default::default()
                },
                SummaryItem {
                    key: "_runtime".into(),
                    value_json: (step / 100).to_string(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })));
        out.push(next(RecordType::Summary(SummaryRecord {
            update: items
                .iter()
                .map(|i| SummaryItem {
                    nested_key: i.nested_key.clone(),
                    value_json: i.value_json.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })));
        out.push(next(RecordType::History(HistoryRecord {
            item: items,
            step: Some(HistoryStep { num: step as i64 }),
            ..Default::default()
        })));
        if spec.console_every > 0 && step % spec.console_every == 0 {
            out.push(next(RecordType::OutputRaw(OutputRawRecord {
                output_type: 1,
                timestamp: Some(prost_types::Timestamp {
                    seconds: spec.start_seconds + step as i64,
                    nanos: 0,
                }),
                line: format!("step {step}\n"),
                ..Default::default()
            })));
        }
        if spec.stats_every > 0 && step % spec.stats_every == 0 {
            out.push(next(RecordType::Stats(StatsRecord {
                timestamp: Some(prost_types::Timestamp {
                    seconds: spec.start_seconds + step as i64,
                    nanos: 0,
                }),
                item: vec![StatsItem {
                    key: "cpu".into(),
                    value_json: float(step as f64 / 7.0),
                }],
                ..Default::default()
            })));
        }
    }
    if spec.exit {
        out.push(next(RecordType::Exit(RunExitRecord {
            exit_code: 0,
            runtime: 3,
            ..Default::default()
        })));
    }
    out
}

/// Writes a run folder `<wandb_dir>/offline-run-20260101_000000-<id>/` and returns the `.wandb`
/// file.
pub fn write_run(wandb_dir: &Path, spec: &RunSpec) -> PathBuf {
    let dir = wandb_dir.join(format!("offline-run-20260101_000000-{}", spec.run_id));
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for name in &spec.files {
        let path = dir.join("files").join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if !name.contains("..") && !name.starts_with('/') {
            std::fs::write(&path, format!("content of {name}\n")).unwrap();
        }
    }
    let path = dir.join(format!("run-{}.wandb", spec.run_id));
    let mut writer = Writer::create(&path).unwrap();
    for r in records(spec) {
        writer.append_record(&r).unwrap();
    }
    writer.close().unwrap();
    path
}

/// Copies an SDK fixture into `<wandb_dir>/offline-run-20250101_000000-<id>/`.
pub fn copy_fixture(wandb_dir: &Path, scenario: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sdk-0.31.0")
        .join(scenario);
    let wandb_file = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    let id = wandb_file
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("run-")
        .to_owned();
    let dst = wandb_dir.join(format!("offline-run-20250101_000000-{id}"));
    copy_dir(&src, &dst);
    let _ = std::fs::remove_file(dst.join("expected.json"));
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Options for syncing `paths` to `backend`, with tiny retry waits (and, for an HTTPS backend,
/// its authority as the CA bundle).
pub fn options(backend: &TestBackend, paths: Vec<PathBuf>) -> SyncOptions {
    let mut opts = SyncOptions::new(
        paths,
        backend.base_url(),
        Some(Secret::new(backend.api_key())),
    );
    opts.retry = RetryPolicy::fast();
    opts.run_timeout = Duration::from_secs(120);
    opts.live_poll = Duration::from_millis(20);
    opts.host = Some("test-host".into());
    if let Some(pem) = backend.ca_pem() {
        // An HTTPS backend: its authority, as a user's REQUESTS_CA_BUNDLE would give it.
        let path = std::env::temp_dir().join(format!(
            "wandb-sync-test-ca-{}-{}.pem",
            std::process::id(),
            backend.addr().port()
        ));
        std::fs::write(&path, pem).unwrap();
        opts.ca_bundle = Some(path);
    }
    opts
}

pub use wandb_testkit::compare::{assert_same, essence, normalize_config};

/// Waits (at most a minute) until the backend holds `rows` history rows of its first run, then
/// kills `child` with SIGKILL and reaps it.
pub fn kill_when_rows(backend: &TestBackend, mut child: std::process::Child, rows: usize) {
    let seen = backend.wait_for(Duration::from_secs(60), |s| {
        s.runs.first().is_some_and(|r| r.history.len() >= rows)
    });
    assert!(seen.is_some(), "no progress before the kill");
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
}

/// The real `wandb-sync` binary, set up to sync to `backend` from `home` (no `WANDB_*` variable
/// or CA bundle of the test's own environment, no netrc, fast retries, stdin closed).
pub fn sync_command(backend: &TestBackend, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wandb-sync"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(home)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env("HOME", home)
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_BASE_URL", backend.base_url())
        .env("WANDB_API_KEY", backend.api_key())
        .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
        .env("NETRC", home.join("no-netrc"))
        .stdin(std::process::Stdio::null());
    cmd
}

/// No duplicated, missing or changed history/events lines and no protocol errors.
pub fn assert_clean(run: &RunState) {
    let c = &run.counters;
    assert_eq!(c.history_gaps, 0, "history gaps in {}", run.run_id);
    assert_eq!(c.history_missing_lines, 0, "missing rows in {}", run.run_id);
    assert_eq!(
        c.duplicate_line_writes, 0,
        "changed rewrites in {}",
        run.run_id
    );
    assert_eq!(c.events_gaps, 0, "events gaps in {}", run.run_id);
    assert!(run.errors.is_empty(), "{}: {:?}", run.run_id, run.errors);
    assert!(run.complete, "{} not complete", run.run_id);
}

pub use wandb_testkit::sdk_python;

/// The `Content-Encoding` of each file_stream request the backend served, in order.
pub fn file_stream_encodings(state: &wandb_testkit::BackendState) -> Vec<Option<String>> {
    state
        .request_log
        .iter()
        .filter(|entry| entry.kind == "file_stream")
        .map(|entry| entry.content_encoding.clone())
        .collect()
}
