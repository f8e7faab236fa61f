//! Writes one synthetic run file with a long history, for the viewer's benchmarks:
//! `gen_history <out.wandb> <rows> [metrics]` (10 metrics by default, at most 10). The viewer
//! benchmark includes this file for its [`generate`].
//!
//! Rows are shaped as the logger writes them: `_step`, `_runtime`, `_timestamp` and float
//! metrics as one-part `nested_key` items with `value_json` in W&B's float format, the step in
//! `HistoryRecord.step`; a run record first and an exit record last.

use std::path::Path;
use std::process::ExitCode;

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{self, Record};

/// The metric names (W&B-style prefixes, so the report groups them).
const METRICS: [&str; 10] = [
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "lr",
    "grad_norm",
    "epoch",
    "throughput",
    "gpu/mem",
    "gpu/util",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(rows)) = (args.get(1), args.get(2).and_then(|s| s.parse::<i64>().ok()))
    else {
        eprintln!("usage: gen_history <out.wandb> <rows> [metrics]");
        return ExitCode::from(2);
    };
    let metrics = args
        .get(3)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(10)
        .min(METRICS.len());
    match generate(Path::new(out), rows, metrics) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gen_history: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One history row as the logger writes it.
fn history(step: i64, metrics: usize) -> Record {
    let float = |f: f64| {
        let mut text = String::new();
        json::format_f64(f, &mut text);
        text
    };
    let item = |key: &str, value_json: String| proto::HistoryItem {
        nested_key: vec![key.to_string()],
        value_json,
        ..Default::default()
    };
    let x = step as f64;
    let mut items = vec![
        item("_step", step.to_string()),
        item("_runtime", float(12.5 + x * 0.0137)),
        item("_timestamp", float(1_795_317_679.5 + x * 0.0137)),
    ];
    for (index, key) in METRICS.iter().take(metrics).enumerate() {
        let value = (x * 0.001 + index as f64).sin() * 0.75 + 1.0 / (x + 1.0);
        items.push(item(key, float(value)));
    }
    Record {
        num: step + 2,
        record_type: Some(RecordType::History(proto::HistoryRecord {
            item: items,
            step: Some(proto::HistoryStep { num: step }),
            info: None,
        })),
        ..Default::default()
    }
}

/// Writes `rows` history rows of `metrics` metrics (at most 10) to a new run file at `path`.
pub fn generate(path: &Path, rows: i64, metrics: usize) -> Result<(), wandb_format::Error> {
    let mut writer = wandb_format::Writer::create(path)?;
    writer.append_record(&Record {
        num: 1,
        record_type: Some(RecordType::Run(proto::RunRecord {
            run_id: "bench".to_string(),
            project: "bench".to_string(),
            ..Default::default()
        })),
        ..Default::default()
    })?;
    for step in 0..rows {
        writer.append_record(&history(step, metrics))?;
    }
    writer.append_record(&Record {
        num: rows + 2,
        record_type: Some(RecordType::Exit(proto::RunExitRecord::default())),
        ..Default::default()
    })?;
    writer.close()
}
