//! What the controller reads of a sweep's runs: the sweep metric's history and summary value,
//! from the run's `.wandb` file(s) with the format crate (no server).

use std::path::{Path, PathBuf};

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery};

/// The sweep metric of one run: its logged values in history order (finite numbers only) and
/// its last summary value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricRead {
    /// The values logged under the metric's key, in history order.
    pub history: Vec<f64>,
    /// The metric's last value in a summary record (a number; a `define_metric` statistic
    /// such as `{"min": x}` counts as that number).
    pub summary: Option<f64>,
}

/// An item's path in a record: `nested_key` joined with dots when present, else `key`.
fn key_of(key: &str, nested_key: &[String]) -> String {
    if nested_key.is_empty() {
        key.to_owned()
    } else {
        nested_key.join(".")
    }
}

fn number(text: &str) -> Option<f64> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Object(map) if map.len() == 1 => map.values().next()?.as_f64(),
        _ => None,
    }
}

/// The `.wandb` files of a run folder, in name order (fragments of a resumed run in order).
fn wandb_files(run_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = wandb_format::inputs::resolve(&[run_dir.to_path_buf()])
        .files
        .into_iter()
        .map(|input| input.path)
        .collect();
    files.sort();
    files
}

/// Reads metric `name` from the run folders `run_dirs` (in order). Damaged spans are skipped
/// and an unreadable file gives what was read before it: a run still being written is read
/// up to its last whole record.
pub fn read_metric(run_dirs: &[PathBuf], name: &str) -> MetricRead {
    let mut out = MetricRead::default();
    for dir in run_dirs {
        for file in wandb_files(dir) {
            let Ok(log) = LogFile::open(&file) else {
                continue;
            };
            for entry in log.records(Recovery::SkipCorrupt) {
                let Ok(Entry::Record { record, .. }) = entry else {
                    continue;
                };
                match record.record_type {
                    Some(RecordType::History(h)) => {
                        let value = h
                            .item
                            .iter()
                            .find(|i| key_of(&i.key, &i.nested_key) == name)
                            .and_then(|i| number(&i.value_json));
                        if let Some(v) = value.filter(|v| v.is_finite()) {
                            out.history.push(v);
                        }
                    }
                    Some(RecordType::Summary(s)) => {
                        if let Some(v) = s
                            .update
                            .iter()
                            .find(|i| key_of(&i.key, &i.nested_key) == name)
                            .and_then(|i| number(&i.value_json))
                        {
                            out.summary = Some(v);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}
