//! The records we write: order and shape as wandb-core writes them, every one decodes, and the
//! official SDK's reader accepts the file.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_logger::{
    Alert, AlertLevel, InitOptions, Metric, OutputStream, PRODUCER, Row, SavePolicy, SummaryStat,
    Value, row,
};

use crate::common::{Workspace, history, kind, log_path, read_records, replay_summary};

#[derive(Serialize)]
struct Config {
    lr: f64,
    layers: Vec<u32>,
    optimizer: Optimizer,
}

#[derive(Serialize)]
struct Optimizer {
    name: String,
    eps: f64,
}

/// A run using every feature; returns its log path.
fn rich_run(ws: &Workspace) -> std::path::PathBuf {
    let config = Config {
        lr: 0.001,
        layers: vec![64, 32, 10],
        optimizer: Optimizer {
            name: "adam".into(),
            eps: 1e-8,
        },
    };
    let run = ws
        .setup
        .init(
            InitOptions::new()
                .project("records")
                .entity("team")
                .id("rich0001")
                .name("rich run")
                .notes("every feature")
                .tags(["a", "b"])
                .group("g")
                .job_type("train")
                .config(&config),
        )
        .unwrap();
    let sink = run.sink();
    run.define_metric(Metric::new("loss").summary(SummaryStat::Min))
        .unwrap();
    run.define_metric(Metric::new("val/*").summary(SummaryStat::Mean))
        .unwrap();
    run.config_set("batch_size", &32).unwrap();
    sink.output(OutputStream::Stdout, "hello\n").unwrap();
    let big = "x".repeat(70_000);
    for step in 0..300u32 {
        let mut r = row! {
            "loss" => 1.0 / f64::from(step + 1),
            "val/acc" => f64::from(step) / 300.0,
            "epoch" => step / 100,
            "flag" => step % 2 == 0,
            "nested" => row!{"a" => step, "b" => row!{"c" => f64::from(step) * 0.5}},
        };
        match step {
            7 => r.push("nan", f64::NAN),
            8 => r.push("inf", f64::INFINITY),
            9 => r.push("ninf", f64::NEG_INFINITY),
            100 => r.push("big", big.as_str()),
            _ => {}
        }
        run.log(r).unwrap();
    }
    sink.stats([("cpu".to_owned(), Value::Float(12.5))])
        .unwrap();
    let note = ws.path().join("notes.txt");
    std::fs::write(&note, "saved\n").unwrap();
    run.save(&note, SavePolicy::Now).unwrap();
    run.alert(Alert::new("alert", "text").level(AlertLevel::Warn))
        .unwrap();
    run.mark_preempting().unwrap();
    run.summary_set("best", &0.97).unwrap();
    let path = log_path(&run);
    run.finish().unwrap();
    path
}

#[test]
fn order_shape_and_numbering_match_wandb_core() {
    let ws = Workspace::new();
    let path = rich_run(&ws);
    let records = read_records(&path);
    let kinds: Vec<&str> = records.iter().map(kind).collect();
    assert_eq!(&kinds[..2], ["header", "run"]);
    assert_eq!(*kinds.last().unwrap(), "exit");
    // num is 1, 2, 3, ...
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.num, i as i64 + 1);
    }
    let Some(RecordType::Header(header)) = &records[0].record_type else {
        unreachable!()
    };
    let version = header.version_info.as_ref().unwrap();
    assert_eq!(version.producer, PRODUCER);
    assert!(version.producer.starts_with("wandb-offline-rs "));
    assert_eq!(version.min_consumer, "0.70.0");

    let Some(RecordType::Run(run)) = &records[1].record_type else {
        unreachable!()
    };
    assert_eq!(
        (
            run.run_id.as_str(),
            run.entity.as_str(),
            run.project.as_str(),
            run.display_name.as_str(),
            run.notes.as_str(),
            run.run_group.as_str(),
            run.job_type.as_str(),
            run.host.as_str()
        ),
        (
            "rich0001",
            "team",
            "records",
            "rich run",
            "every feature",
            "g",
            "train",
            "testhost"
        )
    );
    assert_eq!(run.tags, ["a", "b"]);
    assert!(run.start_time.as_ref().unwrap().seconds > 1_700_000_000);
    let config: Vec<(&str, &str)> = run
        .config
        .as_ref()
        .unwrap()
        .update
        .iter()
        .map(|i| (i.key.as_str(), i.value_json.as_str()))
        .collect();
    assert_eq!(
        config,
        [
            ("_wandb", "{}"),
            ("lr", "0.001"),
            ("layers", "[64,32,10]"),
            ("optimizer", r#"{"name":"adam","eps":1e-08}"#)
        ]
    );

    // History: 300 rows, steps 0..300, nested keys, integral floats without `.0`, bare NaN.
    let rows = history(&records);
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().enumerate().all(|(i, r)| r.step == i as i64));
    let raw_items: Vec<(String, String)> = records
        .iter()
        .filter_map(|r| match &r.record_type {
            Some(RecordType::History(h)) => Some(h),
            _ => None,
        })
        .flat_map(|h| {
            h.item
                .iter()
                .map(|i| (i.nested_key.join("."), i.value_json.clone()))
        })
        .collect();
    let find = |key: &str| {
        raw_items
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(find("loss")[0], "1");
    assert_eq!(find("nan"), ["NaN"]);
    assert_eq!(find("inf"), ["Infinity"]);
    assert_eq!(find("ninf"), ["-Infinity"]);
    assert_eq!(find("flag")[0], "true");
    assert_eq!(find("nested.b.c")[3], "1.5");
    assert!(
        find("_timestamp")[0].contains("e+09"),
        "{}",
        find("_timestamp")[0]
    );
    assert_eq!(find("big")[0].len(), 70_002);
    for row in &rows {
        for key in ["_step", "_runtime", "_timestamp"] {
            assert!(row.items.contains_key(key));
        }
    }
    // Step 0 has an empty `step` message, as the SDK writes it.
    let first_history = records
        .iter()
        .find_map(|r| match &r.record_type {
            Some(RecordType::History(h)) => Some(h),
            _ => None,
        })
        .unwrap();
    assert_eq!(first_history.step.as_ref().map(|s| s.num), Some(0));

    // Summaries: runtime summaries have `_wandb.runtime` and `_runtime`; the final summary is
    // exact.
    let summary = replay_summary(&records);
    assert_eq!(
        summary["loss"].to_string(),
        r#"{"min":0.0033333333333333335}"#
    );
    let mean: f64 = (0..300).map(|s| f64::from(s) / 300.0).sum::<f64>() / 300.0;
    assert_eq!(
        summary["val/acc"].get("mean").and_then(json::Value::as_f64),
        Some(mean)
    );
    assert_eq!(summary["epoch"].as_i64(), Some(2));
    assert_eq!(summary["nested.b.c"].as_f64(), Some(149.5));
    assert_eq!(summary["best"].as_f64(), Some(0.97));
    assert_eq!(summary["_step"].as_i64(), Some(299));
    assert!(summary.contains_key("_wandb.runtime"));
    // The last summary before exit is a runtime summary.
    let Some(RecordType::Summary(last)) = &records[records.len() - 2].record_type else {
        panic!("{}", kind(&records[records.len() - 2]));
    };
    assert_eq!(last.update[0].nested_key, ["_wandb", "runtime"]);
    assert_eq!(last.update[1].key, "_runtime");

    // The other records are there once each.
    for (expected, n) in [
        ("metric", 2),
        ("config", 1),
        ("output_raw", 1),
        ("stats", 1),
        ("files", 1),
        ("alert", 1),
        ("preempting", 1),
        ("exit", 1),
    ] {
        assert_eq!(
            kinds.iter().filter(|k| **k == expected).count(),
            n,
            "{expected}"
        );
    }
    let Some(RecordType::Exit(exit)) = &records.last().unwrap().record_type else {
        unreachable!()
    };
    assert_eq!(exit.exit_code, 0);
    // Records the client sends carry the run id as stream id, at the record level.
    for record in &records {
        if matches!(
            kind(record),
            "header" | "run" | "metric" | "alert" | "exit" | "files"
        ) {
            assert_eq!(
                record.info.as_ref().map(|i| i.stream_id.as_str()),
                Some("rich0001")
            );
        }
    }
}

#[test]
fn log_serialize_and_rows_from_json() {
    #[derive(Serialize)]
    struct Metrics {
        loss: f64,
        acc: f32,
        lr: Option<f64>,
        tags: Vec<&'static str>,
        inner: Inner,
    }
    #[derive(Serialize)]
    struct Inner {
        x: i64,
    }
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    run.log_serialize(&Metrics {
        loss: 0.25,
        acc: 0.1,
        lr: None,
        tags: vec!["a"],
        inner: Inner { x: -3 },
    })
    .unwrap();
    let map = json::parse(r#"{"from_json": 1.0, "s": "text"}"#).unwrap();
    run.log(Row::try_from(map).unwrap()).unwrap();
    assert!(run.log_serialize(&[1, 2]).is_err());
    let path = log_path(&run);
    run.finish().unwrap();
    let rows = history(&read_records(&path));
    assert_eq!(rows[0].items["loss"].as_f64(), Some(0.25));
    assert_eq!(rows[0].items["acc"].to_string(), "0.1");
    assert!(rows[0].items["lr"].is_null());
    assert_eq!(rows[0].items["tags"].to_string(), r#"["a"]"#);
    assert_eq!(rows[0].items["inner.x"].as_i64(), Some(-3));
    assert_eq!(rows[1].items["from_json"].to_string(), "1");
    assert_eq!(rows[1].items["s"].as_str(), Some("text"));
}

/// The official reader (`fixtures/sdk_read.py`, wandb 0.31.0) accepts our file and sees the
/// same records. Needs `WANDB_SDK_PYTHON` (a Python with wandb); fails without it under CI.
#[test]
fn official_sdk_reader_accepts_our_file() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let ws = Workspace::new();
    let path = rich_run(&ws);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk_read.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sdk_read rejected {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json::parse(std::str::from_utf8(&output.stdout).unwrap().trim()).unwrap();
    let records = read_records(&path);
    assert_eq!(
        report.get("records").and_then(json::Value::as_u64),
        Some(records.len() as u64)
    );
    for name in ["history", "summary", "exit", "run", "header"] {
        let ours = records.iter().filter(|r| kind(r) == name).count() as u64;
        let theirs = report
            .get("by_type")
            .and_then(|t| t.get(name))
            .and_then(json::Value::as_u64);
        assert_eq!(theirs, Some(ours), "{name}");
    }
}

#[test]
fn environment_and_system_metrics_are_recorded() {
    let ws = Workspace::with_env(&[
        ("WANDB_X_DISABLE_STATS", "false"),
        ("WANDB_X_STATS_SAMPLING_INTERVAL", "0.1"),
    ]);
    let run = ws.setup.init(InitOptions::new().id("stats001")).unwrap();
    let path = log_path(&run);
    // Wait (bounded) for a few samples.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        run.flush().unwrap();
        let stats = read_records(&path)
            .iter()
            .filter(|r| kind(r) == "stats")
            .count();
        if stats >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {stats} samples");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run.finish().unwrap();
    let records = read_records(&path);
    assert_eq!(
        kind(&records[2]),
        "environment",
        "the machine snapshot follows the run record"
    );
    let Some(RecordType::Environment(env)) = &records[2].record_type else {
        unreachable!()
    };
    assert!(!env.writer_id.is_empty());
    assert_eq!(env.host, "testhost");
    let stats: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.record_type {
            Some(RecordType::Stats(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert!(stats.len() >= 3);
    assert!(stats.iter().all(|s| s.timestamp.is_some()));
    if cfg!(target_os = "linux") {
        assert!(
            stats
                .iter()
                .any(|s| s.item.iter().any(|i| i.key == "memory_percent")),
            "{:?}",
            stats[0]
        );
    }
    // No sample after the exit record.
    assert_eq!(kind(records.last().unwrap()), "exit");
}

/// A logged Table is also the SDK's `run_table` artifact: its record comes right before the
/// table's `files` record, names the entry's file staged in the run folder (whose MD5 is the
/// declared digest), and the logged value points at the artifact.
#[test]
fn a_table_writes_its_run_table_artifact_before_its_file() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(InitOptions::new().project("tables").id("tbl00001"))
        .unwrap();
    let mut table = wandb_logger::media::Table::new(["epoch", "name"]);
    table
        .add_row(vec![json::Value::Int(1), json::Value::String("é".into())])
        .unwrap();
    let value = run.media("eval/results", &table).unwrap();
    run.log(row! {"eval/results" => value}).unwrap();
    let path = log_path(&run);
    run.finish().unwrap();

    let records = read_records(&path);
    let at = records
        .iter()
        .position(|r| matches!(r.record_type, Some(RecordType::Artifact(_))))
        .expect("an artifact record");
    let Some(RecordType::Artifact(artifact)) = &records[at].record_type else {
        unreachable!()
    };
    let Some(RecordType::Files(files)) = &records[at + 1].record_type else {
        panic!("the table's files record follows the artifact record")
    };
    assert!(
        files.files[0]
            .path
            .starts_with("media/table/eval/results_0_")
    );
    assert_eq!(artifact.r#type, "run_table");
    // `run-tbl00001-eval/results`, sanitized as the SDK does.
    assert!(artifact.name.starts_with("run-tbl00001-evalresults-"));
    assert_eq!(artifact.project, "tables");
    assert_eq!(artifact.aliases, ["latest"]);
    let manifest = artifact.manifest.as_ref().unwrap();
    assert_eq!(manifest.contents.len(), 1);
    let entry = &manifest.contents[0];
    assert_eq!(entry.path, "eval/results.table.json");
    let staged = std::fs::read(&entry.local_path).unwrap();
    assert!(Path::new(&entry.local_path).starts_with(path.parent().unwrap()));
    assert_eq!(staged.len() as i64, entry.size);
    assert_eq!(entry.digest, wandb_format::artifact::file_digest(&staged));
    assert_eq!(
        artifact.digest,
        wandb_format::artifact::manifest_digest(&manifest.contents)
    );
    let text = String::from_utf8(staged).unwrap();
    assert!(text.contains(r#""data": [[1, "\u00e9"]]"#), "{text}");

    let rows = history(&records);
    let logged = |field: &str| {
        let items = &rows[0].items;
        items
            .get(&format!("eval/results.{field}"))
            .or_else(|| items.get("eval/results")?.as_object()?.get(field))
            .and_then(json::Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(
        logged("artifact_path"),
        Some(format!(
            "wandb-client-artifact://{}/eval/results.table.json",
            artifact.client_id
        ))
    );
    assert_eq!(
        logged("_latest_artifact_path"),
        Some(format!(
            "wandb-client-artifact://{}:latest/eval/results.table.json",
            artifact.sequence_client_id
        ))
    );
}
