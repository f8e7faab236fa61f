//! From an item to its run: the run folder(s) its job wrote under the job's `WANDB_DIR`
//! (found with `wandb_format::inputs`, by the run id the item assigned), and the run's final
//! value of a summary metric, read from its `.wandb` file(s) with the format crate.

use std::path::{Path, PathBuf};

use wandb_format::proto::record::RecordType;
use wandb_format::{Entry, LogFile, Recovery};

/// The run folders of run `run_id` under `wandb_dir` (its `wandb/` or `.wandb/` sub-folder):
/// folders named `*-<run_id>` holding `.wandb` files, in name order (so the fragments of a
/// resumed run come in the order they were written).
pub fn find_run_dirs(wandb_dir: &Path, run_id: &str) -> Vec<PathBuf> {
    if run_id.is_empty() {
        return Vec::new();
    }
    let base = [wandb_dir.join("wandb"), wandb_dir.join(".wandb")]
        .into_iter()
        .find(|dir| dir.is_dir());
    let Some(base) = base else {
        return Vec::new();
    };
    let suffix = format!("-{run_id}");
    let resolved = wandb_format::inputs::resolve(&[base]);
    let mut dirs: Vec<PathBuf> = resolved
        .files
        .into_iter()
        .map(|input| input.run_dir)
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(&suffix))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
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

/// Calls `each` with the record type of every record of the `.wandb` files of `run_dirs` (in
/// order). Damaged spans are skipped; an unreadable file gives what was read before it (a run
/// still being written is read up to its last whole record).
pub(crate) fn for_each_record(run_dirs: &[PathBuf], mut each: impl FnMut(RecordType)) {
    for dir in run_dirs {
        for file in wandb_files(dir) {
            let Ok(log) = LogFile::open(&file) else {
                continue;
            };
            for entry in log.records(Recovery::SkipCorrupt) {
                if let Ok(Entry::Record { record, .. }) = entry
                    && let Some(record_type) = record.record_type
                {
                    each(record_type);
                }
            }
        }
    }
}

/// A run's final summary: every key's last value (summary records, over the last history
/// value of keys the summary never set), keys in the order first seen. Damaged spans are
/// skipped; unreadable files give what was read before them.
pub fn final_summary(run_dirs: &[PathBuf]) -> serde_json::Map<String, serde_json::Value> {
    let mut history = serde_json::Map::new();
    let mut summary = serde_json::Map::new();
    for_each_record(run_dirs, |record_type| match record_type {
        RecordType::Summary(s) => {
            for item in s.update {
                let key = key_of(&item.key, &item.nested_key);
                if let Ok(value) = serde_json::from_str(&item.value_json) {
                    summary.insert(key, value);
                }
            }
            for item in s.remove {
                summary.remove(&key_of(&item.key, &item.nested_key));
            }
        }
        RecordType::History(h) => {
            for item in h.item {
                let key = key_of(&item.key, &item.nested_key);
                if let Ok(value) = serde_json::from_str(&item.value_json) {
                    history.insert(key, value);
                }
            }
        }
        _ => {}
    });
    for (key, value) in history {
        summary.entry(key).or_insert(value);
    }
    summary
}

/// An item's path as one string: `nested_key` joined with dots when present, else `key`.
/// An item's path in a record: `nested_key` joined with dots when present, else `key`.
pub(crate) fn key_of(key: &str, nested_key: &[String]) -> String {
    if nested_key.is_empty() {
        key.to_owned()
    } else {
        nested_key.join(".")
    }
}

/// The metric `list` shows: `wanted` if given, else `loss`, else the first key ending in
/// `/loss` or `_loss`, else the first numeric key, else the first key; internal keys (`_step`,
/// `_runtime`, ...) only when asked for.
pub fn pick_metric(
    summary: &serde_json::Map<String, serde_json::Value>,
    wanted: Option<&str>,
) -> Option<(String, serde_json::Value)> {
    let visible = || summary.keys().filter(|k| !k.starts_with('_'));
    let key = match wanted {
        Some(key) => key.to_owned(),
        None if summary.contains_key("loss") => "loss".to_owned(),
        None => visible()
            .find(|k| k.ends_with("/loss") || k.ends_with("_loss"))
            .or_else(|| visible().find(|k| summary[k.as_str()].is_number()))
            .or_else(|| visible().next())?
            .clone(),
    };
    summary.get(&key).map(|value| (key, value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn the_metric_shown_is_loss_then_a_loss_then_a_number() {
        let s = summary(serde_json::json!({"_step": 3, "acc": 0.5, "loss": 0.1}));
        assert_eq!(pick_metric(&s, None).unwrap().0, "loss");
        let s = summary(serde_json::json!({"name": "x", "epoch": 4, "train/loss": {"min": 0.2}}));
        assert_eq!(pick_metric(&s, None).unwrap().0, "train/loss");
        let s = summary(serde_json::json!({"_step": 3, "name": "x", "epoch": 4}));
        assert_eq!(pick_metric(&s, None).unwrap().0, "epoch");
        assert_eq!(pick_metric(&s, Some("_step")).unwrap().1, 3);
        assert_eq!(pick_metric(&s, Some("nope")), None);
        assert_eq!(
            pick_metric(&summary(serde_json::json!({"_step": 1})), None),
            None
        );
    }
}
