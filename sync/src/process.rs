//! Turning records into what the server receives: history and events lines, console lines,
//! the summary, the config, file requests, alerts and the exit code.
//!
//! [`Processor`] is pure: it does no I/O except spooling console text to a temporary file. It
//! is fed every record of a `.wandb` file in order. Records before the ledger's acknowledged
//! position are *replayed* (`emit = false`): they update the summary, config and console state
//! but produce no lines, so a resumed sync sends exactly what the server does not have yet.

use std::io::Write;
use std::path::PathBuf;

use wandb_format::json;
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    AlertRecord, FilesRecord, HistoryRecord, Record, RunExitRecord, RunRecord, StatsRecord,
    SummaryRecord, history_item,
};

use crate::artifacts::ArtifactItem;
use crate::console::{Stream, Terminal};
use crate::fastrec::{FastItem, FastRecord};
use crate::jsonbuild::{Item, JsonTree, LineWriter, Node, Path, canonical};
use crate::runconfig::RunConfig;
use wandb_format::json::write_str;

/// Longest history or events line sent; longer ones are dropped, as W&B does (10 MiB − 100 KiB).
pub(crate) const MAX_LINE_BYTES: usize = (10 << 20) - (100 << 10);

/// One file the run asked to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRequest {
    /// Path (or glob) relative to the run's `files/` folder, as written in the record.
    pub(crate) path: String,
    /// Upload when the record is read (policies NOW and LIVE).
    pub(crate) now: bool,
    /// Upload at the end (policies END and LIVE).
    pub(crate) at_end: bool,
}

/// Lines and events produced since the last chunk was taken.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// History lines, each already escaped as a JSON string literal, comma separated.
    pub(crate) history: String,
    /// Index (0-based, within this file) of the first history line in `history`.
    pub(crate) history_start: u64,
    /// Number of history lines in `history`.
    pub(crate) n_history: u64,
    /// Events lines, escaped like `history`.
    pub(crate) events: String,
    /// Index of the first events line.
    pub(crate) events_start: u64,
    /// Number of events lines.
    pub(crate) n_events: u64,
    /// Console lines (line number within this file, formatted line), in line order.
    pub(crate) console: std::collections::BTreeMap<u64, String>,
    /// Alerts to send, with their index within this file.
    pub(crate) alerts: Vec<(u64, AlertRecord)>,
    /// The run was marked as preempting.
    pub(crate) preempting: bool,
}

impl Chunk {
    /// Approximate request body bytes this chunk needs.
    pub(crate) fn size(&self) -> usize {
        self.history.len()
            + self.events.len()
            + self.console.values().map(|l| l.len() + 4).sum::<usize>()
    }

    /// Whether there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.n_history == 0
            && self.n_events == 0
            && self.console.is_empty()
            && self.alerts.is_empty()
            && !self.preempting
    }
}

/// Console text spooled to a temporary file (it can be larger than memory allows); the file
/// is deleted when the spool is dropped.
#[derive(Debug, Default)]
pub(crate) struct Spool {
    file: Option<tempfile::NamedTempFile>,
    len: u64,
}

impl Spool {
    fn append(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(tempfile::NamedTempFile::new()?),
        };
        file.as_file_mut().write_all(text.as_bytes())?;
        self.len += text.len() as u64;
        Ok(())
    }

    /// Bytes spooled.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The spool file's path, once something was written.
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(tempfile::NamedTempFile::path)
    }

    /// Flushes the spooled text to the file.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.as_file_mut().flush(),
            None => Ok(()),
        }
    }
}

/// State carried from one fragment of a run to the next one synced in the same invocation.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    pub(crate) summary: JsonTree,
    pub(crate) config: RunConfig,
    pub(crate) spool: Spool,
}

/// Record-by-record state of one `.wandb` file.
#[derive(Debug)]
pub(crate) struct Processor {
    /// The run summary.
    pub(crate) summary: JsonTree,
    /// Changes whenever the summary changes.
    pub(crate) summary_version: u64,
    /// The run config.
    pub(crate) config: RunConfig,
    terminal: Terminal,
    /// Plain console text (`output.log`).
    pub(crate) spool: Spool,
    /// The first run record (after overrides), once seen.
    pub(crate) run: Option<RunRecord>,
    /// The run's start time in microseconds since the epoch.
    pub(crate) start_micros: Option<i64>,
    /// The run's start time as recorded.
    pub(crate) start_time: Option<prost_types::Timestamp>,
    /// The exit record, once seen.
    pub(crate) exit: Option<RunExitRecord>,
    /// History lines produced so far (replayed ones included).
    pub(crate) n_history: u64,
    /// Events lines produced so far.
    pub(crate) n_events: u64,
    /// Alerts seen so far.
    pub(crate) n_alerts: u64,
    /// Items whose value was not valid JSON (left out).
    pub(crate) n_invalid_values: u64,
    /// Lines dropped for being longer than [`MAX_LINE_BYTES`].
    pub(crate) n_oversize_lines: u64,
    /// File upload requests not yet taken by the caller.
    pub(crate) new_files: Vec<FileRequest>,
    /// Whether a `preempting` record was seen.
    pub(crate) preempting: bool,
    /// `artifact` and `use_artifact` records, in file order (replayed ones included: the
    /// ledger's artifact entries decide what is left to do).
    pub(crate) artifacts: Vec<ArtifactItem>,
    /// I/O error from the console spool, if any.
    pub(crate) spool_error: Option<std::io::Error>,
    /// The `_step` of the last history row (canonical JSON), empty before the first: the
    /// summary's `_step` is always this, as wandb-core sends it (a killed run may have a later
    /// summary record, or none at all).
    last_step: String,
    /// Where temporary files go (unused for now; the system temp dir is used).
    _temp_dir: Option<PathBuf>,
    /// Writes the history lines.
    lines: LineWriter,
    /// Reused (empty) allocation for each history line's items.
    items_buf: Vec<Item<'static>>,
}

impl Processor {
    /// A processor starting from the state a previous fragment left.
    pub(crate) fn new(carry: Carry) -> Self {
        Processor {
            summary: carry.summary,
            summary_version: 0,
            config: carry.config,
            terminal: Terminal::default(),
            spool: carry.spool,
            run: None,
            start_micros: None,
            start_time: None,
            exit: None,
            n_history: 0,
            n_events: 0,
            n_alerts: 0,
            n_invalid_values: 0,
            n_oversize_lines: 0,
            new_files: Vec::new(),
            preempting: false,
            artifacts: Vec::new(),
            spool_error: None,
            last_step: String::new(),
            _temp_dir: None,
            lines: LineWriter::default(),
            items_buf: Vec::new(),
        }
    }

    /// The state to hand to the next fragment.
    pub(crate) fn into_carry(self) -> Carry {
        let mut summary = self.summary;
        if !self.last_step.is_empty() {
            summary.set(&["_step"], &self.last_step);
        }
        Carry {
            summary,
            config: self.config.into_next_fragment(),
            spool: self.spool,
        }
    }

    /// Whether any console output was seen in this file.
    pub(crate) fn has_console(&self) -> bool {
        self.terminal.has_output() || self.spool.len() > 0
    }

    /// Number of console line numbers given out in this file.
    pub(crate) fn n_console_lines(&self) -> u64 {
        self.terminal.n_lines()
    }

    /// Applies one record. With `emit`, lines go into `chunk`; without, only state changes.
    /// `alerts_sent` is the number of alerts the server already has.
    pub(crate) fn apply(
        &mut self,
        record: &Record,
        emit: bool,
        alerts_sent: u64,
        chunk: &mut Chunk,
    ) {
        let Some(kind) = &record.record_type else {
            return;
        };
        match kind {
            RecordType::History(history) => self.history(history, emit, chunk),
            RecordType::Summary(summary) => self.apply_summary(summary),
            RecordType::Config(config) => self.config.apply_config(config),
            RecordType::Telemetry(t) => self.config.apply_telemetry(t),
            RecordType::Metric(m) => self.config.apply_metric(m),
            RecordType::Environment(e) => self.config.apply_environment(e),
            RecordType::Stats(stats) => self.stats(stats, emit, chunk),
            RecordType::Files(files) => self.files(files),
            RecordType::OutputRaw(out) => {
                let stream = if out.output_type == 0 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                let ts = out.timestamp.as_ref().map_or(0, micros);
                self.terminal.write(stream, &out.line, ts);
                self.console_changed(emit, chunk);
            }
            RecordType::OutputLogger(out) => {
                let mut text = out.line.clone();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                self.terminal.write(Stream::Stdout, &text, 0);
                self.console_changed(emit, chunk);
            }
            RecordType::Run(run) => self.run_record(run),
            RecordType::Exit(exit) => self.exit = Some(exit.clone()),
            RecordType::Alert(alert) => {
                let index = self.n_alerts;
                self.n_alerts += 1;
                if emit && index >= alerts_sent {
                    chunk.alerts.push((index, alert.clone()));
                }
            }
            RecordType::Preempting(_) => {
                self.preempting = true;
                if emit {
                    chunk.preempting = true;
                }
            }
            RecordType::Artifact(artifact) => self
                .artifacts
                .push(ArtifactItem::Log(Box::new(artifact.clone()))),
            RecordType::UseArtifact(used) => self
                .artifacts
                .push(ArtifactItem::Use(Box::new(used.clone()))),
            _ => {}
        }
    }

    /// Applies a history or summary record decoded by [`crate::fastrec::parse_reusing`]; the same as
    /// [`Processor::apply`] on the fully decoded record.
    pub(crate) fn apply_fast(&mut self, record: &FastRecord<'_>, emit: bool, chunk: &mut Chunk) {
        if record.history {
            self.history_fast(&record.items, emit, chunk);
            return;
        }
        // The index of the member the previous item set: the next item's key is usually next.
        let mut at = usize::MAX;
        for item in &record.items {
            match canonical(item.value_json) {
                Ok(value) if item.long_path.is_none() => {
                    at = self
                        .summary
                        .set_top_near(item.segment(), &value, at.wrapping_add(1));
                }
                Ok(value) => {
                    item.with_path(|path| self.summary.set(path, &value));
                    at = usize::MAX;
                }
                Err(_) => self.n_invalid_values += 1,
            }
        }
        for item in &record.removes {
            item.with_path(|path| self.summary.remove(path));
        }
        self.summary_version += 1;
    }

    fn history_fast(&mut self, fast: &[FastItem<'_>], emit: bool, chunk: &mut Chunk) {
        let estimate: usize = fast.iter().map(FastItem::estimate).sum();
        if estimate > MAX_LINE_BYTES {
            self.n_oversize_lines += 1;
            return;
        }
        let index = self.n_history;
        self.n_history += 1;
        if let Some(step) = fast.iter().find(|item| item.segment() == "_step") {
            self.note_step(step.value_json);
        }
        if !emit {
            return;
        }
        let mut items = crate::fastrec::relabel(std::mem::take(&mut self.items_buf));
        items.reserve(fast.len());
        for item in fast {
            match canonical(item.value_json) {
                Ok(value) => items.push(Item {
                    path: Path::Key(item.segment()),
                    value,
                }),
                Err(_) => self.n_invalid_values += 1,
            }
        }
        self.emit_history_line(items, index, chunk);
    }

    /// Remembers the `_step` of the row just read (see [`Processor::summary_json`]).
    fn note_step(&mut self, value_json: &str) {
        let Ok(step) = canonical(value_json) else {
            return;
        };
        if self.last_step != step {
            self.last_step.clear();
            self.last_step.push_str(&step);
            self.summary_version += 1;
        }
    }

    /// Builds the line of `items` and adds it to the chunk as history line `index`.
    fn emit_history_line(&mut self, items: Vec<Item<'_>>, index: u64, chunk: &mut Chunk) {
        if chunk.n_history == 0 {
            chunk.history_start = index;
        } else {
            chunk.history.push(',');
        }
        self.lines.write(&items, &mut chunk.history);
        self.items_buf = crate::fastrec::relabel(items);
        chunk.n_history += 1;
    }

    fn run_record(&mut self, run: &RunRecord) {
        if let Some(config) = &run.config {
            self.config.apply_config(config);
        }
        if let Some(summary) = &run.summary {
            self.apply_summary(summary);
        }
        if let Some(telemetry) = &run.telemetry {
            self.config.apply_telemetry(telemetry);
        }
        if self.start_micros.is_none() {
            self.start_micros = run.start_time.as_ref().map(micros);
            self.start_time = run.start_time;
        }
        match &mut self.run {
            None => {
                let mut stored = run.clone();
                stored.config = None;
                stored.summary = None;
                stored.telemetry = None;
                self.run = Some(stored);
            }
            Some(existing) => {
                // Later run records update metadata.
                if !run.display_name.is_empty() {
                    existing.display_name.clone_from(&run.display_name);
                }
                if !run.notes.is_empty() {
                    existing.notes.clone_from(&run.notes);
                }
                if !run.tags.is_empty() {
                    existing.tags.clone_from(&run.tags);
                }
                if !run.run_group.is_empty() {
                    existing.run_group.clone_from(&run.run_group);
                }
            }
        }
    }

    fn apply_summary(&mut self, summary: &SummaryRecord) {
        for item in &summary.update {
            let path = Path::of(&item.key, &item.nested_key);
            match canonical(&item.value_json) {
                Ok(value) => match single_segment(path) {
                    Some(key) => self.summary.set(&[key], &value),
                    None => self.summary.set(&segments(path), &value),
                },
                Err(_) => self.n_invalid_values += 1,
            }
        }
        for item in &summary.remove {
            self.summary
                .remove(&segments(Path::of(&item.key, &item.nested_key)));
        }
        self.summary_version += 1;
    }

    fn history(&mut self, history: &HistoryRecord, emit: bool, chunk: &mut Chunk) {
        // The size check uses an estimate that does not depend on `emit`, so a replay agrees
        // with the original pass on which rows exist.
        let estimate: usize = history
            .item
            .iter()
            .map(|i| {
                i.key.len()
                    + i.nested_key.iter().map(|k| k.len() + 4).sum::<usize>()
                    + i.value_json.len()
                    + 4
            })
            .sum();
        if estimate > MAX_LINE_BYTES {
            self.n_oversize_lines += 1;
            return;
        }
        let index = self.n_history;
        self.n_history += 1;
        let step = history
            .item
            .iter()
            .find(|item| match item.nested_key.as_slice() {
                [] => item.key == "_step",
                [key] => key == "_step",
                _ => false,
            });
        if let Some(step) = step {
            self.note_step(&step.value_json);
        }
        if !emit {
            return;
        }
        let mut typed_values: Vec<String> = Vec::new();
        for item in &history.item {
            if item.value_json.is_empty()
                && let Some(value) = &item.value
            {
                typed_values.push(typed_value(value));
            }
        }
        let mut typed = typed_values.iter();
        let mut items = crate::fastrec::relabel(std::mem::take(&mut self.items_buf));
        items.reserve(history.item.len());
        for item in &history.item {
            let value = if item.value_json.is_empty() && item.value.is_some() {
                match typed.next() {
                    Some(text) => std::borrow::Cow::Borrowed(text.as_str()),
                    None => continue,
                }
            } else {
                match canonical(&item.value_json) {
                    Ok(value) => value,
                    Err(_) => {
                        self.n_invalid_values += 1;
                        continue;
                    }
                }
            };
            items.push(Item {
                path: Path::of(&item.key, &item.nested_key),
                value,
            });
        }
        self.emit_history_line(items, index, chunk);
    }

    fn stats(&mut self, stats: &StatsRecord, emit: bool, chunk: &mut Chunk) {
        // wandb-core drops stats when the run's start time is unknown.
        let Some(start) = self.start_time else {
            return;
        };
        let estimate: usize = stats
            .item
            .iter()
            .map(|i| i.key.len() + i.value_json.len() + 12)
            .sum();
        if estimate > MAX_LINE_BYTES {
            self.n_oversize_lines += 1;
            return;
        }
        let index = self.n_events;
        self.n_events += 1;
        if !emit {
            return;
        }
        let ts = stats.timestamp.unwrap_or(start);
        let mut line = String::with_capacity(estimate + 64);
        line.push('{');
        for item in &stats.item {
            let Ok(value) = canonical(&item.value_json) else {
                self.n_invalid_values += 1;
                continue;
            };
            write_str(&mut line, &format!("system.{}", item.key));
            line.push(':');
            line.push_str(&value);
            line.push(',');
        }
        line.push_str("\"_wandb\":true,\"_timestamp\":");
        json::format_f64(ts.seconds as f64 + f64::from(ts.nanos) / 1e9, &mut line);
        line.push_str(",\"_runtime\":");
        // As Go's `Duration.Seconds()`: whole seconds plus the nanosecond remainder.
        let nanos = i128::from(ts.seconds - start.seconds) * 1_000_000_000
            + i128::from(ts.nanos - start.nanos);
        let runtime = (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9;
        json::format_f64(runtime, &mut line);
        line.push('}');
        if chunk.n_events == 0 {
            chunk.events_start = index;
        } else {
            chunk.events.push(',');
        }
        write_str(&mut chunk.events, &line);
        chunk.n_events += 1;
    }

    fn files(&mut self, files: &FilesRecord) {
        for item in &files.files {
            self.new_files.push(FileRequest {
                path: item.path.clone(),
                now: item.policy != 1,
                at_end: item.policy != 0,
            });
        }
    }

    fn console_changed(&mut self, emit: bool, chunk: &mut Chunk) {
        if emit {
            for (line_no, text) in self.terminal.take_changed() {
                chunk.console.insert(line_no, text);
            }
        } else {
            self.terminal.discard_changed();
        }
        let finished = self.terminal.take_finished_text();
        self.spool_text(&finished);
    }

    fn spool_text(&mut self, text: &str) {
        if self.spool_error.is_none()
            && let Err(e) = self.spool.append(text)
        {
            self.spool_error = Some(e);
        }
    }

    /// Ends the file: emits the last console changes and spools the remaining text.
    pub(crate) fn finish_console(&mut self, emit: bool, chunk: &mut Chunk) {
        self.console_changed(emit, chunk);
        let rest = self.terminal.finish();
        self.spool_text(&rest);
    }

    /// The summary as the one-line JSON text sent on file_stream and uploaded, with the last
    /// history row's `_step`, as wandb-core sends it: a killed 0.15-0.17 run has no summary
    /// record, and a killed later one may have a summary record of a row the file lost.
    pub(crate) fn summary_json(&self) -> String {
        let current =
            matches!(self.summary.get("_step"), Some(Node::Raw(s)) if *s == self.last_step);
        if self.last_step.is_empty() || current {
            return self.summary.to_json();
        }
        let mut summary = self.summary.clone();
        summary.set(&["_step"], &self.last_step);
        summary.to_json()
    }
}

/// The only segment of a one-segment path (the common case, no allocation).
fn single_segment(path: Path<'_>) -> Option<&str> {
    match path {
        Path::Key(k) => Some(k),
        Path::Nested([k]) => Some(k.as_str()),
        Path::Nested(_) => None,
    }
}

fn segments(path: Path<'_>) -> Vec<&str> {
    match path {
        Path::Key(k) => vec![k],
        Path::Nested(p) => p.iter().map(String::as_str).collect(),
    }
}

fn typed_value(value: &history_item::Value) -> String {
    let mut out = String::new();
    match value {
        history_item::Value::None(_) => out.push_str("null"),
        history_item::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        history_item::Value::Integer(i) => out.push_str(&i.to_string()),
        history_item::Value::Number(f) => json::format_f64(*f, &mut out),
        history_item::Value::Text(s) => write_str(&mut out, s),
        history_item::Value::Json(s) => match canonical(s) {
            Ok(text) => out.push_str(&text),
            Err(_) => out.push_str("null"),
        },
    }
    out
}

/// Microseconds since the epoch of a protobuf timestamp.
pub(crate) fn micros(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.nanos) / 1000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::proto::{HistoryItem, StatsItem, SummaryItem};

    fn history_record(items: &[(&str, &str)]) -> Record {
        Record {
            record_type: Some(RecordType::History(HistoryRecord {
                item: items
                    .iter()
                    .map(|(k, v)| HistoryItem {
                        nested_key: k.split('.').map(str::to_owned).collect(),
                        value_json: (*v).to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn history_lines_and_replay() {
        let mut p = Processor::new(Carry::default());
        let mut chunk = Chunk::default();
        p.apply(
            &history_record(&[("a", "1"), ("_step", "0")]),
            false,
            0,
            &mut chunk,
        );
        p.apply(
            &history_record(&[("a", "2.0"), ("b.c", "1e-4")]),
            true,
            0,
            &mut chunk,
        );
        assert_eq!(chunk.n_history, 1);
        assert_eq!(chunk.history_start, 1);
        assert_eq!(chunk.history, r#""{\"a\":2,\"b\":{\"c\":0.0001}}""#);
        assert_eq!(p.n_history, 2);
    }

    #[test]
    fn summary_and_stats() {
        let mut p = Processor::new(Carry::default());
        let mut chunk = Chunk::default();
        p.apply(
            &Record {
                record_type: Some(RecordType::Summary(SummaryRecord {
                    update: vec![SummaryItem {
                        nested_key: vec!["_wandb".into(), "runtime".into()],
                        value_json: "3".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            },
            true,
            0,
            &mut chunk,
        );
        assert_eq!(p.summary_json(), r#"{"_wandb":{"runtime":3}}"#);
        p.start_time = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
        p.apply(
            &Record {
                record_type: Some(RecordType::Stats(StatsRecord {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 3,
                        nanos: 500_000_000,
                    }),
                    item: vec![StatsItem {
                        key: "cpu".into(),
                        value_json: "12.5".into(),
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            },
            true,
            0,
            &mut chunk,
        );
        assert_eq!(
            chunk.events,
            r#""{\"system.cpu\":12.5,\"_wandb\":true,\"_timestamp\":3.5,\"_runtime\":2.5}""#
        );
    }

    /// The summary's `_step` is the last row's, as wandb-core sends it: a killed 0.15-0.17 run
    /// has rows but no summary record, and a killed later run may end with the summary record of
    /// a row whose history record was lost.
    #[test]
    fn summary_step_is_the_last_rows() {
        let summary = |items: &[(&str, &str)]| Record {
            record_type: Some(RecordType::Summary(SummaryRecord {
                update: items
                    .iter()
                    .map(|(k, v)| SummaryItem {
                        key: (*k).to_owned(),
                        value_json: (*v).to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut p = Processor::new(Carry::default());
        let mut chunk = Chunk::default();
        assert_eq!(p.summary_json(), "{}");
        // Replayed rows count too (a resumed sync).
        p.apply(
            &history_record(&[("_step", "0"), ("a", "1")]),
            false,
            0,
            &mut chunk,
        );
        p.apply(
            &history_record(&[("_step", "1"), ("a", "2")]),
            true,
            0,
            &mut chunk,
        );
        assert_eq!(p.summary_json(), r#"{"_step":1}"#);
        let version = p.summary_version;
        p.apply(&summary(&[("a", "3"), ("_step", "2")]), true, 0, &mut chunk);
        assert!(p.summary_version > version);
        assert_eq!(p.summary_json(), r#"{"a":3,"_step":1}"#);
        // The next fragment of the run starts from it.
        let next = Processor::new(p.into_carry());
        assert_eq!(next.summary_json(), r#"{"a":3,"_step":1}"#);
    }
}
