//! `wandb-inspect summary`: what a run file holds, in one screen (or one JSON object per file).
//!
//! Collected in one pass over the records, in memory that depends on the number of distinct keys,
//! not on the file size:
//!
//! * run id, entity, project, name and start time from the run records (the last non-empty value
//!   of each field wins, as later run records update earlier ones);
//! * the exit code from the exit record (none when the run did not finish);
//! * the duration: the longest runtime the file reports, from the exit record's `runtime` and the
//!   history rows' `_runtime`;
//! * the history step range (`_step`, or the row's `step.num` when it has no `_step` item), the
//!   number of rows, and the metric names (history keys not starting with `_`, nested keys joined
//!   with `.`);
//! * the final summary: summary records applied in order (updates, then removals), a `nested_key`
//!   addressing nested objects; keys are shown sorted;
//! * counts and on-disk bytes per record type, and the damaged spans.

use std::collections::BTreeSet;
use std::path::Path;

use wandb_format::json::{self, Map, Value};
use wandb_format::proto::record::RecordType;
use wandb_format::{RawRecord, Recovery, ScanItem};

use crate::damage::{self, Opened, Reported, Tally};
use crate::error::Error;
use crate::history;
use crate::items::{Item, ItemValue, items};
use crate::jsonout::{
    NonFinite, Style, push_i64, push_u64, write_f64, write_object, write_str, write_timestamp,
    write_value,
};
use crate::parallel::{Cancelled, Sink};
use crate::schema::{Message, RECORD, Type};
use crate::wire::{self, RECURSION_LIMIT};

/// Field numbers of the record types this module reads.
const HISTORY: u32 = 2;
const SUMMARY: u32 = 3;
const CONFIG: u32 = 5;
const RUN: u32 = 17;
const EXIT: u32 = 18;

/// Largest record-type field number, plus one (for the per-type table).
const N_TAGS: usize = 28;

/// Options of `summary`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SummaryOptions {
    pub(crate) json: bool,
    pub(crate) non_finite: NonFinite,
}

/// What summarizing one file found.
#[derive(Debug, Default)]
pub(crate) struct SummaryResult {
    pub(crate) tally: Tally,
    pub(crate) error: Option<Error>,
}

/// Everything the summary shows about one file.
#[derive(Debug, Default)]
struct Facts {
    run_id: String,
    entity: String,
    project: String,
    name: String,
    start_time: Option<(i64, i32)>,
    exit_code: Option<i32>,
    duration: Option<f64>,
    rows: u64,
    first_step: Option<i64>,
    last_step: Option<i64>,
    metrics: BTreeSet<String>,
    summary: Map,
    /// The run's config, from its `config` records and the config in its `run` record.
    config: Map,
    /// Count and bytes per record-type field number; index 0 is "unknown".
    by_type: [(u64, u64); N_TAGS],
    records: u64,
    bytes: u64,
    damage: Vec<Reported>,
}

/// The message type of `Record` field `number`.
fn record_body_type(number: u32) -> Option<&'static Message> {
    match RECORD.field(number)?.ty {
        Type::Message(message) => Some(message),
        _ => None,
    }
}

/// Summarizes one file into `sink`.
pub(crate) fn summary_file(
    path: &Path,
    options: SummaryOptions,
    sink: &mut Sink<SummaryResult>,
) -> Result<SummaryResult, Cancelled> {
    let mut result = SummaryResult::default();
    let mut facts = Facts::default();
    match damage::open(path) {
        Ok(Opened::File(file)) => {
            facts.bytes = file.len();
            let mut scratch = String::new();
            for item in file.scan(Recovery::SkipCorrupt) {
                match item {
                    Ok(ScanItem::Record(raw)) => match damage::check_record(&raw, file.len()) {
                        Ok(()) => {
                            result.tally.records += 1;
                            facts.add_record(&raw, &mut scratch);
                        }
                        Err(reported) => facts.damage.push(reported),
                    },
                    Ok(ScanItem::Damage(damage)) => {
                        facts
                            .damage
                            .push(Reported::from_damage(&damage, file.len()));
                    }
                    Err(error) => {
                        result.error = Some(error.into());
                        return Ok(result);
                    }
                }
            }
        }
        Ok(Opened::NoHeader(reported)) => {
            facts.bytes = reported.length;
            facts.damage.push(reported);
        }
        Err(error) => {
            result.error = Some(error);
            return Ok(result);
        }
    }
    for reported in &facts.damage {
        result.tally.add(reported);
    }
    sort_keys(&mut facts.summary);
    sort_keys(&mut facts.config);
    let display = path.to_string_lossy();
    if options.json {
        facts.write_json(sink.buf(), &display, Style::json(options.non_finite));
    } else {
        facts.write_text(sink.buf(), &display);
    }
    Ok(result)
}

impl Facts {
    /// Takes in one valid record.
    fn add_record(&mut self, raw: &RawRecord<'_>, scratch: &mut String) {
        self.records += 1;
        let Ok(head) = wire::head(&raw.payload) else {
            return;
        };
        let number = head.record_type.map_or(0, |field| field.number);
        let index = usize::try_from(number).unwrap_or(0);
        if let Some(slot) = self.by_type.get_mut(if index < N_TAGS { index } else { 0 }) {
            slot.0 += 1;
            slot.1 += raw.length;
        }
        match number {
            HISTORY => self.add_history(head.body, scratch),
            SUMMARY => {
                if let Some(message) = record_body_type(SUMMARY) {
                    apply_summary(&mut self.summary, message, head.body, RECURSION_LIMIT - 1);
                }
            }
            RUN | EXIT | CONFIG => {
                // Rare records with many fields: prost's structs are the simplest reading.
                if let Ok(record) = wandb_format::decode(raw) {
                    self.add_decoded(record.record_type);
                }
            }
            _ => {}
        }
    }

    fn add_decoded(&mut self, record_type: Option<RecordType>) {
        match record_type {
            Some(RecordType::Run(run)) => {
                let updates = [
                    (&mut self.run_id, run.run_id),
                    (&mut self.entity, run.entity),
                    (&mut self.project, run.project),
                    (&mut self.name, run.display_name),
                ];
                for (slot, value) in updates {
                    if !value.is_empty() {
                        *slot = value;
                    }
                }
                if let Some(start) = run.start_time {
                    self.start_time = Some((start.seconds, start.nanos));
                }
                if let Some(summary) = run.summary {
                    for item in summary.update {
                        let path = item_path(&item.key, &item.nested_key);
                        let value = parse_json(&item.value_json);
                        set_path(&mut self.summary, &path, value);
                    }
                }
                if let Some(config) = run.config {
                    self.apply_config(config);
                }
                if run.runtime > 0 {
                    self.longer(f64::from(run.runtime));
                }
            }
            Some(RecordType::Config(config)) => self.apply_config(config),
            Some(RecordType::Exit(exit)) => {
                self.exit_code = Some(exit.exit_code);
                self.longer(f64::from(exit.runtime));
            }
            _ => {}
        }
    }

    /// Applies a config record: its updates, then its removals.
    fn apply_config(&mut self, config: wandb_format::proto::ConfigRecord) {
        for item in config.update {
            let path = item_path(&item.key, &item.nested_key);
            set_path(&mut self.config, &path, parse_json(&item.value_json));
        }
        for item in config.remove {
            remove_path(&mut self.config, &item_path(&item.key, &item.nested_key));
        }
    }

    fn longer(&mut self, seconds: f64) {
        if seconds.is_finite() {
            self.duration = Some(self.duration.map_or(seconds, |d| d.max(seconds)));
        }
    }

    fn add_history(&mut self, body: &[u8], scratch: &mut String) {
        let Some(message) = record_body_type(HISTORY) else {
            return;
        };
        self.rows += 1;
        let mut step = None;
        for item in items(message, body, 1, RECURSION_LIMIT - 1).flatten() {
            let key = item.dotted(scratch);
            match key {
                "_step" => step = item_number(&item).and_then(as_step),
                "_runtime" => {
                    if let Some(runtime) = item_number(&item) {
                        self.longer(runtime);
                    }
                }
                _ if key.starts_with('_') => {}
                _ => {
                    if !self.metrics.contains(key) {
                        self.metrics.insert(key.to_string());
                    }
                }
            }
        }
        let step = step.or_else(|| history::step_num(message, body));
        if let Some(step) = step {
            self.first_step = Some(self.first_step.map_or(step, |s| s.min(step)));
            self.last_step = Some(self.last_step.map_or(step, |s| s.max(step)));
        }
    }

    fn write_json(&self, out: &mut String, display: &str, style: Style) {
        out.push_str("{\"file\":");
        write_str(out, display);
        for (name, value) in [
            ("run_id", &self.run_id),
            ("entity", &self.entity),
            ("project", &self.project),
            ("name", &self.name),
        ] {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            write_str(out, value);
        }
        out.push_str(",\"start_time\":");
        match self.start_time {
            Some((seconds, nanos)) if write_timestamp(out, seconds, nanos) => {}
            _ => out.push_str("null"),
        }
        out.push_str(",\"duration_s\":");
        match self.duration {
            Some(duration) => write_f64(out, duration, style.non_finite),
            None => out.push_str("null"),
        }
        out.push_str(",\"exit_code\":");
        match self.exit_code {
            Some(code) => push_i64(out, i64::from(code)),
            None => out.push_str("null"),
        }
        out.push_str(",\"history\":{\"rows\":");
        push_u64(out, self.rows);
        for (name, value) in [
            ("first_step", self.first_step),
            ("last_step", self.last_step),
        ] {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            match value {
                Some(step) => push_i64(out, step),
                None => out.push_str("null"),
            }
        }
        out.push_str("},\"metrics\":[");
        for (index, metric) in self.metrics.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_str(out, metric);
        }
        out.push_str("],\"config\":");
        write_object(out, &self.config, style);
        out.push_str(",\"summary\":");
        write_object(out, &self.summary, style);
        out.push_str(",\"records\":");
        push_u64(out, self.records);
        out.push_str(",\"bytes\":");
        push_u64(out, self.bytes);
        out.push_str(",\"by_type\":{");
        let mut first = true;
        for (name, count, bytes) in self.types() {
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, name);
            out.push_str(":{\"count\":");
            push_u64(out, count);
            out.push_str(",\"bytes\":");
            push_u64(out, bytes);
            out.push('}');
        }
        out.push_str("},\"damage\":[");
        for (index, reported) in self.damage.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str("{\"offset\":");
            push_u64(out, reported.offset);
            out.push_str(",\"length\":");
            push_u64(out, reported.length);
            out.push_str(",\"reason\":");
            write_str(out, &reported.reason);
            out.push_str(",\"torn_tail\":");
            out.push_str(if reported.torn_tail { "true" } else { "false" });
            out.push('}');
        }
        out.push_str("]}\n");
    }

    /// Record types present, in field-number order (unknown last): name, count, bytes.
    fn types(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        let known = self
            .by_type
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, (count, _))| *count > 0)
            .filter_map(|(number, (count, bytes))| {
                let field = crate::schema::record_type_field(u32::try_from(number).ok()?)?;
                Some((field.name, *count, *bytes))
            });
        let unknown = self
            .by_type
            .first()
            .filter(|(count, _)| *count > 0)
            .map(|(count, bytes)| ("unknown", *count, *bytes));
        known.chain(unknown)
    }

    fn write_text(&self, out: &mut String, display: &str) {
        use std::fmt::Write as _;
        let or_dash = |text: &str| {
            if text.is_empty() {
                "-".to_string()
            } else {
                text.to_string()
            }
        };
        let _ = writeln!(out, "{display}");
        let _ = writeln!(out, "  run id      {}", or_dash(&self.run_id));
        let _ = writeln!(out, "  entity      {}", or_dash(&self.entity));
        let _ = writeln!(out, "  project     {}", or_dash(&self.project));
        let _ = writeln!(out, "  name        {}", or_dash(&self.name));
        let mut start = String::new();
        match self.start_time {
            Some((seconds, nanos)) if write_timestamp(&mut start, seconds, nanos) => {}
            _ => start.push('-'),
        }
        let _ = writeln!(out, "  started     {}", start.trim_matches('"'));
        let mut duration = String::new();
        match self.duration {
            Some(seconds) => {
                write_f64(&mut duration, seconds, NonFinite::Bare);
                duration.push_str(" s");
            }
            None => duration.push('-'),
        }
        let _ = writeln!(out, "  duration    {duration}");
        match self.exit_code {
            Some(code) => {
                let _ = writeln!(out, "  exit code   {code}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "  exit code   - (no exit record: the run did not finish)"
                );
            }
        }
        match (self.first_step, self.last_step) {
            (Some(first), Some(last)) => {
                let _ = writeln!(
                    out,
                    "  steps       {first} to {last} ({} history rows)",
                    self.rows
                );
            }
            _ => {
                let _ = writeln!(out, "  steps       - ({} history rows)", self.rows);
            }
        }
        let metrics: Vec<&str> = self.metrics.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  metrics     {}",
            if metrics.is_empty() {
                "-".to_string()
            } else {
                metrics.join(", ")
            }
        );
        // The SDK's own `_wandb` config (telemetry, versions) is left to `dump`.
        let mut config = self.config.clone();
        config.remove("_wandb");
        for (title, map) in [("config", &config), ("summary", &self.summary)] {
            if map.is_empty() {
                let _ = writeln!(out, "  {title:<11} -");
                continue;
            }
            let _ = writeln!(out, "  {title}");
            let mut lines = Vec::new();
            flatten(map, &mut String::new(), &mut lines);
            for (key, value) in lines {
                let _ = writeln!(out, "    {key} = {value}");
            }
        }
        let _ = writeln!(out, "  records     {} ({} bytes)", self.records, self.bytes);
        for (name, count, bytes) in self.types() {
            let _ = writeln!(out, "    {name:<20} {count:>9} {bytes:>12} bytes");
        }
        if self.damage.is_empty() {
            let _ = writeln!(out, "  damage      none");
        } else {
            let _ = writeln!(out, "  damage");
            for reported in &self.damage {
                let label = if reported.torn_tail {
                    "torn tail: "
                } else {
                    ""
                };
                let _ = writeln!(out, "    {label}{}", reported.describe());
            }
        }
        out.push('\n');
    }
}

/// Sorts object keys (recursively) in byte order, for stable output: W&B writes summary keys in
/// no particular order.
fn sort_keys(map: &mut Map) {
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, value) in &mut entries {
        if let Value::Object(inner) = value {
            sort_keys(inner);
        }
    }
    *map = entries.into_iter().collect();
}

/// Flattens nested objects into `(dotted key, compact value)` lines.
fn flatten(map: &Map, prefix: &mut String, lines: &mut Vec<(String, String)>) {
    for (key, value) in map.iter() {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(key);
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(inner, prefix, lines),
            // Times in seconds read better in fixed notation than in Go's `1.79e+09`.
            Value::Float(seconds)
                if seconds.is_finite() && matches!(prefix.as_str(), "_timestamp" | "_runtime") =>
            {
                lines.push((prefix.clone(), format!("{seconds}")));
            }
            _ => {
                let mut text = String::new();
                write_value(&mut text, value, Style::text());
                lines.push((prefix.clone(), text));
            }
        }
        prefix.truncate(len);
    }
}

/// The number an item holds, if any.
fn item_number(item: &Item<'_>) -> Option<f64> {
    match item.value {
        ItemValue::Json(text) => match json::parse(text).ok()? {
            value @ (Value::Int(_) | Value::UInt(_) | Value::Float(_)) => value.as_f64(),
            _ => None,
        },
        ItemValue::Int(int) => Some(int as f64),
        ItemValue::Float(float) => Some(float),
        _ => None,
    }
}

fn as_step(number: f64) -> Option<i64> {
    (number.is_finite() && number.fract() == 0.0).then_some(number as i64)
}

/// Applies one `SummaryRecord`: its updates, then its removals.
fn apply_summary(summary: &mut Map, message: &'static Message, body: &[u8], depth: u32) {
    for item in items(message, body, 1, depth).flatten() {
        let path = parts(&item);
        let value = match item.value {
            ItemValue::Json(text) => parse_json(text),
            ItemValue::Null => Value::Null,
            ItemValue::Bool(flag) => Value::Bool(flag),
            ItemValue::Int(int) => Value::Int(int),
            ItemValue::Float(float) => Value::Float(float),
            ItemValue::Text(text) => Value::String(text.to_string()),
        };
        set_path(summary, &path, value);
    }
    for item in items(message, body, 2, depth).flatten() {
        remove_path(summary, &parts(&item));
    }
}

fn parts(item: &Item<'_>) -> Vec<String> {
    let mut parts = Vec::new();
    item.for_each_part(|part| parts.push(part.to_string()));
    parts
}

fn item_path(key: &str, nested: &[String]) -> Vec<String> {
    if nested.is_empty() {
        vec![key.to_string()]
    } else {
        nested.to_vec()
    }
}

/// Decodes a `value_json`; text that is not valid JSON is kept as a string.
fn parse_json(text: &str) -> Value {
    json::parse(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Sets the value at `path`, creating (or replacing non-object values with) objects on the way.
fn set_path(map: &mut Map, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = map;
    for part in parents {
        if !matches!(current.get(part), Some(Value::Object(_))) {
            current.insert(part.clone(), Value::Object(Map::new()));
        }
        current = match current.get_mut(part) {
            Some(Value::Object(inner)) => inner,
            _ => return,
        };
    }
    current.insert(last.clone(), value);
}

/// Removes the value at `path`, if present.
fn remove_path(map: &mut Map, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = map;
    for part in parents {
        current = match current.get_mut(part) {
            Some(Value::Object(inner)) => inner,
            _ => return,
        };
    }
    current.remove(last);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_are_set_and_removed() {
        let mut map = Map::new();
        let path = |text: &str| text.split('.').map(str::to_string).collect::<Vec<_>>();
        set_path(&mut map, &path("a"), Value::Int(1));
        set_path(&mut map, &path("b.c"), Value::Int(2));
        set_path(&mut map, &path("b.d"), Value::Int(3));
        set_path(&mut map, &path("a.x"), Value::Int(4));
        remove_path(&mut map, &path("b.c"));
        remove_path(&mut map, &path("nothing.here"));
        let mut out = String::new();
        write_value(
            &mut out,
            &Value::Object(map),
            Style::json(NonFinite::String),
        );
        assert_eq!(out, r#"{"a":{"x":4},"b":{"d":3}}"#);
    }
}
