//! Helpers: running the CLI in-process, fixture paths, damaged copies, files written like our
//! logger writes them.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use wandb_format::proto::{self, Record, record::RecordType};
use wandb_inspect::{Cli, Console, Exit, run};

/// What a run of the CLI produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) exit: Exit,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `wandb-inspect ARGS...` in-process.
pub(crate) fn inspect(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let argv = std::iter::once(std::ffi::OsStr::new("wandb-inspect"))
        .chain(args.iter().map(|arg| arg.as_ref()));
    let cli = Cli::try_parse_from(argv).expect("arguments should parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = run(&cli, &mut Console::new(&mut out, &mut err));
    Output {
        exit,
        stdout: String::from_utf8(out).expect("stdout should be UTF-8"),
        stderr: String::from_utf8(err).expect("stderr should be UTF-8"),
    }
}

/// The SDK fixtures folder.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/sdk-0.31.0")
        .canonicalize()
        .expect("fixtures should exist")
}

/// The `.wandb` file of fixture `scenario`.
pub(crate) fn fixture(scenario: &str) -> PathBuf {
    let dir = fixtures().join(scenario);
    std::fs::read_dir(&dir)
        .expect("fixture folder should exist")
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wandb"))
        .expect("fixture should hold a .wandb file")
}

/// The fixture scenarios.
pub(crate) const SCENARIOS: [&str; 5] = [
    "console",
    "define_metric",
    "multiblock",
    "plain",
    "saved_files",
];

/// `text` with the fixtures folder and `tmp` replaced by `[FIXTURES]` and `[TMP]`.
pub(crate) fn redact(text: &str, tmp: Option<&Path>) -> String {
    let mut text = text.replace(&fixtures().display().to_string(), "[FIXTURES]");
    if let Some(tmp) = tmp {
        text = text.replace(&tmp.display().to_string(), "[TMP]");
    }
    text
}

/// A copy of fixture `scenario` in `dir`, under `name`, changed by `damage`.
pub(crate) fn damaged_copy(
    dir: &Path,
    scenario: &str,
    name: &str,
    damage: impl FnOnce(&mut Vec<u8>),
) -> PathBuf {
    let mut bytes = std::fs::read(fixture(scenario)).unwrap();
    damage(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A history record like our logger (and wandb-core) writes: `nested_key` items.
pub(crate) fn history_record(num: i64, step: i64, metrics: &[(&str, String)]) -> Record {
    let item = |path: &str, json: String| proto::HistoryItem {
        nested_key: path.split('.').map(str::to_string).collect(),
        value_json: json,
        ..Default::default()
    };
    let mut items = vec![item("_step", step.to_string())];
    items.extend(metrics.iter().map(|(key, json)| item(key, json.clone())));
    Record {
        num,
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            info: None,
        })),
        ..Default::default()
    }
}

/// A run record.
pub(crate) fn run_record(num: i64, run_id: &str) -> Record {
    Record {
        num,
        record_type: Some(RecordType::Run(proto::RunRecord {
            run_id: run_id.to_string(),
            project: "proj".to_string(),
            display_name: "our-run".to_string(),
            start_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 250_000_000,
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// An exit record.
pub(crate) fn exit_record(num: i64, code: i32) -> Record {
    Record {
        num,
        record_type: Some(RecordType::Exit(proto::RunExitRecord {
            exit_code: code,
            runtime: 12,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Writes `records` to a new file with `wandb_format::Writer`.
pub(crate) fn write_file(path: &Path, records: &[Record]) {
    let mut writer = wandb_format::Writer::create(path).unwrap();
    for record in records {
        writer.append_record(record).unwrap();
    }
    writer.close().unwrap();
}

/// Parses JSON Lines strictly (no NaN tokens), one value per line.
pub(crate) fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The `by_type` counts of a fixture's expected.json.
pub(crate) fn expected_by_type(scenario: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join(scenario).join("expected.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["by_type"].as_object().unwrap().clone()
}
