//! Resuming an offline run: W&B's `resume` modes applied to the run folders on this disk.
//!
//! W&B resumes through its server; offline, the earlier run is its fragments in the local wandb
//! folder: every folder `offline-run-*` or `run-*` directly in it holding `run-<id>.wandb`.
//! They are read at `init` (never on the hot path) with `wandb-format`, tolerating damage (every
//! intact record counts) and a missing exit record (a killed run), in start-time order:
//!
//! * the last history step (the new fragment starts at that step + 1, as W&B's resumed runs);
//! * the summary and the config, as the records left them (the config given to this `init`
//!   is applied over the carried one, the launch config over both), and the metric
//!   definitions (`define_metric`): a `min`/`max`/`first` summary continues from the carried
//!   value, a `mean` restarts (the count behind it is not recorded);
//! * the run time reached (the largest `_runtime`, `_wandb.runtime` or exit runtime), so that
//!   `_runtime` continues from it.
//!
//! The modes, as W&B defines them (`resume` / `WANDB_RESUME`):
//!
//! | mode | earlier fragment | none |
//! |---|---|---|
//! | `allow` | continue it | new run |
//! | `must` | continue it | error naming the run id and the folder |
//! | `never` | error naming the run id and the fragment | new run |
//! | `auto` | continue it | new run |
//! | unset | new run (a second fragment that restarts at step 0) | new run |
//!
//! `auto` takes its run id, when none is given, from `<wandb dir>/wandb-resume.json`
//! (`{"run_id": ...}`, as the SDK writes it), writes the chosen id there, and the file is
//! removed when the run finishes with exit code 0; a run started without `resume` removes it.
//! `resume_from` and `fork_from` are not supported (they need the server's history).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_format::{
    Change, Entry, HistoryView, ItemView, LogFile, RecordView, Recovery, ScanItem, TypedValue,
    UpdatesView, proto,
};
use wandb_settings::{OFFLINE_RUN_PREFIX, Resume, Settings};

use crate::error::{Error, Result};
use crate::options::Metric;
use crate::writer::insert_path;

/// What a resumed run continues from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resumed {
    /// The earlier fragments' `.wandb` files, in start-time order.
    pub(crate) fragments: Vec<PathBuf>,
    /// The first step of the new fragment: the last step written + 1 (0 without history).
    pub(crate) next_step: u64,
    /// Run time reached by the earlier fragments.
    pub(crate) runtime: Duration,
    /// The summary as the earlier fragments left it (without `_wandb`).
    pub(crate) summary: json::Map,
    /// The config as the earlier fragments left it (without `_wandb`).
    pub(crate) config: json::Map,
    /// The metric definitions of the earlier fragments (the last one of each name).
    pub(crate) metrics: Vec<Metric>,
}

/// The run id for `settings`: the one given, else (for `auto`) the one in `wandb-resume.json`,
/// else a new one.
pub(crate) fn run_id(settings: &Settings) -> String {
    if settings.resume == Some(Resume::Auto)
        && let Some(previous) = read_resume_file(&settings.resume_file())
    {
        match &settings.run_id {
            None => return previous,
            Some(given) if *given != previous => crate::diag::warning!(
                "ignoring run id {previous} from {} (resume=\"auto\") because the run id is set to {given}",
                settings.resume_file().display()
            ),
            Some(_) => {}
        }
    }
    settings.run_id_or_generate()
}

/// Applies `settings.resume` for the run `run_id`: the state to continue from, or `None` for a
/// new run. Also keeps `wandb-resume.json` as the SDK does.
///
/// # Errors
///
/// [`Error::ResumeNotFound`] for `must` without an earlier fragment, [`Error::ResumeExists`]
/// for `never` with one, [`Error::Io`] if the wandb folder cannot be read or the resume file
/// written.
pub(crate) fn prepare(settings: &Settings, run_id: &str) -> Result<Option<Resumed>> {
    let resume_file = settings.resume_file();
    let Some(mode) = settings.resume else {
        if resume_file.exists() {
            let _ = fs::remove_file(&resume_file);
        }
        return Ok(None);
    };
    if mode == Resume::Auto {
        write_resume_file(&settings.wandb_dir, &resume_file, run_id)?;
    }
    let fragments = find_fragments(&settings.wandb_dir, run_id)?;
    match (mode, fragments.first()) {
        (Resume::Must, None) => Err(Error::ResumeNotFound {
            run_id: run_id.to_owned(),
            wandb_dir: settings.wandb_dir.clone(),
        }),
        (Resume::Never, Some(first)) => Err(Error::ResumeExists {
            run_id: run_id.to_owned(),
            fragment: first.clone(),
        }),
        (Resume::Never, None) | (_, None) => Ok(None),
        (_, Some(_)) => Ok(Some(read_fragments(run_id, fragments))),
    }
}

/// The `.wandb` files of run `run_id` in `wandb_dir`: `run-<id>.wandb` in each folder
/// `offline-run-*` or `run-*` directly inside (symlinks such as `latest-run` are not followed),
/// in start-time order (the run record's, else the folder name's).
pub(crate) fn find_fragments(wandb_dir: &Path, run_id: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(wandb_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(wandb_dir, "read the wandb folder", e)),
    };
    let file_name = format!("run-{run_id}.wandb");
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(wandb_dir, "read the wandb folder", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !(name.starts_with(OFFLINE_RUN_PREFIX) || name.starts_with("run-")) {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let file = entry.path().join(&file_name);
        if file.is_file() {
            found.push((start_micros(&file), name.to_owned(), file));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, _, file)| file).collect())
}

/// The start time of a fragment in microseconds, from its run record (0 if unreadable).
fn start_micros(file: &Path) -> i64 {
    let Ok(log) = LogFile::open(file) else {
        return 0;
    };
    for entry in log.records(Recovery::SkipCorrupt).take(8) {
        if let Ok(Entry::Record { record, .. }) = entry
            && let Some(RecordType::Run(run)) = &record.record_type
            && let Some(start) = &run.start_time
        {
            return start
                .seconds
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(start.nanos / 1000));
        }
    }
    0
}

/// Replays the fragments' records into the state a resumed run continues from.
fn read_fragments(run_id: &str, fragments: Vec<PathBuf>) -> Resumed {
    let mut state = Replay::default();
    for file in &fragments {
        let log = match LogFile::open(file) {
            Ok(log) => log,
            Err(e) => {
                crate::diag::warning!("resuming run {run_id}: skipping {}: {e}", file.display());
                continue;
            }
        };
        let mut damaged = 0u64;
        for item in log.scan(Recovery::SkipCorrupt) {
            match item {
                Ok(ScanItem::Record(raw)) => {
                    if !state.apply_payload(&raw.payload) {
                        damaged += 1;
                    }
                }
                Ok(ScanItem::Damage(_)) => damaged += 1,
                Err(e) => {
                    crate::diag::warning!(
                        "resuming run {run_id}: stopped reading {}: {e}",
                        file.display()
                    );
                    break;
                }
            }
        }
        state.finish_file();
        if damaged > 0 {
            log::debug!(
                "resuming run {run_id}: {damaged} damaged span(s) skipped in {}",
                file.display()
            );
        }
    }
    state.summary.remove("_wandb");
    state.config.remove("_wandb");
    Resumed {
        fragments,
        next_step: state.last_step.map_or(0, |s| s.saturating_add(1)),
        runtime: Duration::from_secs_f64(state.runtime.max(0.0)),
        summary: state.summary,
        config: state.config,
        metrics: state
            .metrics
            .into_iter()
            .map(|(_, metric)| metric)
            .collect(),
    }
}

/// State accumulated while reading fragments.
#[derive(Default)]
struct Replay {
    last_step: Option<u64>,
    runtime: f64,
    summary: json::Map,
    config: json::Map,
    /// Metric definitions by name (glob names end in `*`), in first-definition order.
    metrics: Vec<(String, Metric)>,
    /// The current file's last history row, as encoded.
    last_row: Vec<u8>,
}

impl Replay {
    /// Applies one record's bytes; `false` if they do not decode (damage, skipped). History and
    /// summary records, nearly all of a file, are read in place through format's views.
    fn apply_payload(&mut self, payload: &[u8]) -> bool {
        let Ok(view) = RecordView::parse(payload) else {
            return false;
        };
        if let Some(history) = view.history() {
            return self.history(&history, payload);
        }
        if view.type_name() == "summary"
            && let Some(updates) = view.updates()
        {
            return self.summary(&updates);
        }
        if !matches!(view.type_name(), "run" | "config" | "metric" | "exit") {
            return true;
        }
        match <proto::Record as prost::Message>::decode(payload) {
            Ok(record) => {
                self.apply(&record);
                true
            }
            Err(_) => false,
        }
    }

    /// A history row: its step (`step.num`, which the SDK and this logger always write, or
    /// `_step` when it is 0). `_runtime` grows with the rows, so only the last row's is read
    /// ([`Replay::finish_file`]): the row is kept, not parsed.
    fn history(&mut self, history: &HistoryView<'_>, payload: &[u8]) -> bool {
        let step = match history.step() {
            Ok(0) => {
                let mut step = 0;
                for item in history.items() {
                    let Ok(item) = item else {
                        return false;
                    };
                    if item.only_part() == Some("_step") {
                        step = number(&item).map_or(0, |s| s as i64);
                    }
                }
                step
            }
            Ok(step) => step,
            Err(_) => return false,
        };
        if let Ok(step) = u64::try_from(step) {
            self.last_step = Some(self.last_step.map_or(step, |last| last.max(step)));
        }
        self.last_row.clear();
        self.last_row.extend_from_slice(payload);
        true
    }

    /// After a file: the `_runtime` of its last history row.
    fn finish_file(&mut self) {
        let row = std::mem::take(&mut self.last_row);
        if let Ok(view) = RecordView::parse(&row)
            && let Some(history) = view.history()
        {
            for item in history.items() {
                let Ok(item) = item else {
                    break;
                };
                if item.only_part() == Some("_runtime")
                    && let Some(runtime) = number(&item)
                {
                    self.runtime_at_least(runtime);
                }
            }
        }
        self.last_row = row;
        self.last_row.clear();
    }

    /// A summary record's updates and removals, in order.
    fn summary(&mut self, updates: &UpdatesView<'_>) -> bool {
        for change in updates.changes() {
            let Ok((change, item)) = change else {
                return false;
            };
            let path: Vec<String> = item.path().map(str::to_owned).collect();
            match change {
                Change::Update => {
                    if (path == ["_wandb", "runtime"] || path == ["_runtime"])
                        && let Some(runtime) = number(&item)
                    {
                        self.runtime_at_least(runtime);
                    }
                    if let Ok(value) = json::parse(item.value_json) {
                        insert_path(&mut self.summary, &path, value);
                    }
                }
                Change::Remove => remove_path(&mut self.summary, &path),
            }
        }
        true
    }

    fn apply(&mut self, record: &proto::Record) {
        match &record.record_type {
            Some(RecordType::Run(run)) => {
                if let Some(config) = &run.config {
                    self.config_update(config);
                }
            }
            Some(RecordType::Config(config)) => self.config_update(config),
            Some(RecordType::Metric(metric)) => {
                // Only what the program defined; wandb-core also writes derived definitions.
                let defined = metric.options.as_ref().is_none_or(|o| o.defined);
                if let Some(metric) = Metric::from_record(metric).filter(|_| defined) {
                    let name = metric.name.clone();
                    match self.metrics.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = metric,
                        None => self.metrics.push((name, metric)),
                    }
                }
            }
            Some(RecordType::Exit(exit)) => {
                self.runtime = self.runtime.max(f64::from(exit.runtime));
            }
            _ => {}
        }
    }

    fn config_update(&mut self, config: &proto::ConfigRecord) {
        for item in &config.update {
            if let Ok(value) = json::parse(&item.value_json) {
                insert_path(
                    &mut self.config,
                    &item_path(&item.key, &item.nested_key),
                    value,
                );
            }
        }
        for item in &config.remove {
            remove_path(&mut self.config, &item_path(&item.key, &item.nested_key));
        }
    }

    fn runtime_at_least(&mut self, runtime: f64) {
        if runtime.is_finite() {
            self.runtime = self.runtime.max(runtime);
        }
    }
}

/// An item's value as a number: its typed value, else its JSON text.
fn number(item: &ItemView<'_>) -> Option<f64> {
    match item.typed {
        Some(TypedValue::Number(x)) => Some(x),
        Some(TypedValue::Int(i)) => Some(i as f64),
        _ => json::parse(item.value_json).ok().and_then(|v| v.as_f64()),
    }
}

/// An item's key path: `key` if set, else `nested_key`.
fn item_path(key: &str, nested_key: &[String]) -> Vec<String> {
    if key.is_empty() {
        nested_key.to_vec()
    } else {
        vec![key.to_owned()]
    }
}

/// Removes the value at `path` from a tree of objects.
fn remove_path(root: &mut json::Map, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = root;
    for part in parents {
        match current.get_mut(part) {
            Some(json::Value::Object(map)) => current = map,
            _ => return,
        }
    }
    current.remove(last);
}

/// The run id in an auto-resume file, if it holds one.
fn read_resume_file(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let value = json::parse(&text).ok()?;
    value
        .get("run_id")
        .and_then(json::Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Writes `{"run_id": ...}` to the auto-resume file (temp file and rename).
fn write_resume_file(wandb_dir: &Path, path: &Path, run_id: &str) -> Result<()> {
    fs::create_dir_all(wandb_dir)
        .map_err(|e| Error::io(wandb_dir, "create the wandb folder", e))?;
    let mut text = String::from("{\"run_id\": ");
    json::write_str(&mut text, run_id);
    text.push('}');
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    fs::write(&tmp, text).map_err(|e| Error::io(&tmp, "write the auto-resume file", e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, "write the auto-resume file", e))
}

/// Removes the auto-resume file after run `run_id` finished with exit code 0 (as the SDK does),
/// if it names that run (another run of the folder may have written it since).
pub(crate) fn finished_cleanly(resume_file: &Path, run_id: &str) {
    if read_resume_file(resume_file).as_deref() != Some(run_id) {
        return;
    }
    if let Err(e) = fs::remove_file(resume_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        crate::diag::warning!("could not remove {}: {e}", resume_file.display());
    }
}

/// The summary record that opens a resumed fragment: every carried top-level key.
pub(crate) fn carried_summary_record(summary: &json::Map) -> Option<proto::Record> {
    if summary.is_empty() {
        return None;
    }
    let update = summary
        .iter()
        .map(|(key, value)| crate::records::summary_item(std::slice::from_ref(key), value))
        .collect();
    Some(crate::records::wrap(RecordType::Summary(
        proto::SummaryRecord {
            update,
            ..Default::default()
        },
    )))
}
