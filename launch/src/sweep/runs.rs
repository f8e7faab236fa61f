//! What the controller reads of a sweep's runs: the sweep metric's history and summary value,
//! from the run's `.wandb` file(s) with the format crate (no server).

use std::path::PathBuf;

use wandb_format::proto::record::RecordType;

use crate::runlink::{for_each_record, key_of};

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

fn number(text: &str) -> Option<f64> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Object(map) if map.len() == 1 => map.values().next()?.as_f64(),
        _ => None,
    }
}

/// Reads metric `name` from the run folders `run_dirs` (in order). Damaged spans are skipped
/// and an unreadable file gives what was read before it: a run still being written is read
/// up to its last whole record.
pub fn read_metric(run_dirs: &[PathBuf], name: &str) -> MetricRead {
    let mut out = MetricRead::default();
    for_each_record(run_dirs, |record_type| match record_type {
        RecordType::History(h) => {
            let value = h
                .item
                .iter()
                .find(|i| key_of(&i.key, &i.nested_key) == name)
                .and_then(|i| number(&i.value_json));
            if let Some(v) = value.filter(|v| v.is_finite()) {
                out.history.push(v);
            }
        }
        RecordType::Summary(s) => {
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
    });
    out
}
