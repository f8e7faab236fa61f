//! What the viewer needs of one run, read in one pass over its `.wandb` file: the numeric history
//! series, the `define_metric` step metrics, summary, config, system metrics, the console's last
//! lines, logged images and the damaged spans.
//!
//! History records are read straight from their bytes with inspect's item reader
//! (`items::try_for_each_item`, on format's wire cursor), as `history` does; every other record type
//! the viewer needs is decoded with prost through `wandb_format::decode`. Damage is data: a record
//! that does not decode is reported and skipped, as every inspect command does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use wandb_format::ScanItem;
use wandb_format::json::{self, Value};
use wandb_format::proto::record::RecordType;

use crate::damage::{self, Opened, Reported};
use crate::error::Error;
use crate::items::{ItemValue, try_for_each_item};
use crate::schema::{Message, RECORD, Type};
use crate::wire::{self, RECURSION_LIMIT};

/// Field number of `Record.history`.
const HISTORY: u32 = 2;
/// Field number of `HistoryRecord.item`.
const ITEM: u32 = 1;
/// How many console lines a run keeps (the last ones).
pub(crate) const CONSOLE_LINES: usize = 200;

/// One numeric series: the rows it has a value in and the values (NaN and ±inf kept).
#[derive(Clone, Debug, Default)]
pub(crate) struct Series {
    /// Row indices (into [`RunData::steps`] and its siblings), increasing.
    pub(crate) rows: Vec<u32>,
    /// The values, one per row index.
    pub(crate) values: Vec<f64>,
}

/// A system metric: sample times (seconds since the epoch) and values.
#[derive(Clone, Debug, Default)]
pub(crate) struct SystemSeries {
    pub(crate) times: Vec<f64>,
    pub(crate) values: Vec<f64>,
}

/// An image logged in the history.
#[derive(Clone, Debug)]
pub(crate) struct LoggedImage {
    pub(crate) key: String,
    pub(crate) step: f64,
    /// The image file, under the run folder's `files/`.
    pub(crate) path: PathBuf,
}

/// Everything the viewer reads of one run.
#[derive(Debug, Default)]
pub(crate) struct RunData {
    /// The `.wandb` file.
    pub(crate) path: PathBuf,
    /// The run's display name, else its id, else the file's name.
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) project: String,
    /// Per history row: `_step` (or `step.num`), `_runtime`, `_timestamp`; NaN where absent.
    pub(crate) steps: Vec<f64>,
    pub(crate) runtimes: Vec<f64>,
    pub(crate) timestamps: Vec<f64>,
    /// Numeric history series by key (nested keys joined with `.`), `_`-keys excluded.
    pub(crate) metrics: BTreeMap<String, Series>,
    /// `define_metric(name, step_metric=...)`: exact names.
    pub(crate) step_metric: HashMap<String, String>,
    /// `define_metric("train/*", step_metric=...)`: glob names, in the order defined.
    pub(crate) glob_step_metric: Vec<(String, String)>,
    /// The final summary, keys in the order first written.
    pub(crate) summary: json::Map,
    /// The config.
    pub(crate) config: json::Map,
    /// System metrics by key.
    pub(crate) system: BTreeMap<String, SystemSeries>,
    /// The console's last lines.
    pub(crate) console: VecDeque<String>,
    /// Logged images, in history order.
    pub(crate) images: Vec<LoggedImage>,
    /// Damaged spans.
    pub(crate) damage: Vec<Reported>,
    /// Exit code, once the exit record was read.
    pub(crate) exit_code: Option<i32>,
    /// Intact records read.
    pub(crate) records: u64,
}

impl RunData {
    /// The step metric of `metric`: `define_metric`'s exact name first, then the first glob that
    /// matches; `None` means `_step`.
    pub(crate) fn step_metric_of(&self, metric: &str) -> Option<&str> {
        if let Some(step) = self.step_metric.get(metric) {
            return Some(step);
        }
        self.glob_step_metric
            .iter()
            .find(|(pattern, _)| glob_match(pattern, metric))
            .map(|(_, step)| step.as_str())
    }

    /// The x value of each point of `series` for x key `x` (`_step`, `_runtime`, `_timestamp` or
    /// another metric, whose value in the same row is taken; NaN where it has none).
    pub(crate) fn x_values(&self, series: &Series, x: &str) -> Vec<f64> {
        let column = match x {
            "_step" => Some(&self.steps),
            "_runtime" => Some(&self.runtimes),
            "_timestamp" => Some(&self.timestamps),
            _ => None,
        };
        if let Some(column) = column {
            return series
                .rows
                .iter()
                .map(|&row| column.get(row as usize).copied().unwrap_or(f64::NAN))
                .collect();
        }
        let Some(other) = self.metrics.get(x) else {
            return vec![f64::NAN; series.rows.len()];
        };
        // Both row lists increase: a merge.
        let mut at = 0;
        series
            .rows
            .iter()
            .map(|&row| {
                while other.rows.get(at).is_some_and(|&r| r < row) {
                    at += 1;
                }
                match (other.rows.get(at), other.values.get(at)) {
                    (Some(&r), Some(&v)) if r == row => v,
                    _ => f64::NAN,
                }
            })
            .collect()
    }
}

/// `*` matches any run of characters (W&B's `define_metric` globs and `--metrics` patterns).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| {
        p.matches_with(
            text,
            glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: false,
                require_literal_leading_dot: false,
            },
        )
    })
}

fn history_type() -> Option<&'static Message> {
    match RECORD.field(HISTORY)?.ty {
        Type::Message(message) => Some(message),
        _ => None,
    }
}

/// A number from an item's value: JSON numbers and W&B's `NaN`/`Infinity` tokens (strings of them
/// too, as some writers store them); `None` for anything else.
fn number(value: ItemValue<'_>) -> Option<f64> {
    match value {
        ItemValue::Float(f) => Some(f),
        ItemValue::Int(i) => Some(i as f64),
        ItemValue::Json(text) => {
            let text = text.trim();
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text);
            match text {
                "NaN" | "nan" => Some(f64::NAN),
                "Infinity" | "inf" => Some(f64::INFINITY),
                "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
                _ if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                    text.parse::<f64>().ok()
                }
                _ => None,
            }
        }
        ItemValue::Bool(_) | ItemValue::Null | ItemValue::Text(_) => None,
    }
}

/// What one slice of scanned items gave, in file order; keys interned per slice.
#[derive(Default)]
struct Chunk {
    /// The slice's history keys (numeric values only), by local id.
    keys: Vec<String>,
    /// Rows in order.
    rows: Vec<Row>,
    /// (local key id, value) of all rows, each row's in `Row::values`.
    values: Vec<(u32, f64)>,
    /// Other records and damage, each with the number of rows of this slice before it.
    events: Vec<(usize, Event)>,
}

struct Row {
    step: f64,
    runtime: f64,
    timestamp: f64,
    values: std::ops::Range<usize>,
    images: Vec<(String, String)>,
}

enum Event {
    Record(Box<wandb_format::proto::Record>),
    Damage(Reported),
}

/// Reads a slice of items: history rows straight from their bytes, other records with prost.
fn read_chunk(
    items: &[ScanItem<'_>],
    message: &'static Message,
    file_len: u64,
    with_extras: bool,
) -> Chunk {
    let mut chunk = Chunk::default();
    let mut local: HashMap<String, u32> = HashMap::new();
    let mut scratch = String::new();
    for item in items {
        let raw = match item {
            ScanItem::Record(raw) => raw,
            ScanItem::Damage(d) => {
                let at = chunk.rows.len();
                chunk
                    .events
                    .push((at, Event::Damage(Reported::from_damage(d, file_len))));
                continue;
            }
        };
        let payload: &[u8] = &raw.payload;
        if let Ok(head) = wire::head(payload)
            && head.record_type.is_some_and(|f| f.number == HISTORY)
        {
            let (mut step, mut runtime, mut timestamp) = (f64::NAN, f64::NAN, f64::NAN);
            let mut others: Vec<(String, &str)> = Vec::new();
            let first = chunk.values.len();
            let (keys, values) = (&mut chunk.keys, &mut chunk.values);
            let checked = wire::validate_except(RECORD, payload, RECURSION_LIMIT, HISTORY)
                .and_then(|()| {
                    try_for_each_item(message, head.body, ITEM, RECURSION_LIMIT - 1, |item| {
                        let key = item.dotted(&mut scratch);
                        match key {
                            "_step" => step = number(item.value).unwrap_or(f64::NAN),
                            "_runtime" => runtime = number(item.value).unwrap_or(f64::NAN),
                            "_timestamp" => timestamp = number(item.value).unwrap_or(f64::NAN),
                            _ if key.starts_with('_') => {}
                            _ => match number(item.value) {
                                Some(v) => {
                                    let id = match local.get(key) {
                                        Some(&id) => id,
                                        None => {
                                            let id = u32::try_from(keys.len()).unwrap_or(u32::MAX);
                                            keys.push(key.to_string());
                                            local.insert(key.to_string(), id);
                                            id
                                        }
                                    };
                                    values.push((id, v));
                                }
                                None => {
                                    if let ItemValue::Json(text) = item.value {
                                        others.push((key.to_string(), text));
                                    }
                                }
                            },
                        }
                    })
                });
            if checked.is_err() {
                chunk.values.truncate(first);
                if let Some(reported) = damage::undecodable(raw, file_len) {
                    let at = chunk.rows.len();
                    chunk.events.push((at, Event::Damage(reported)));
                }
                continue;
            }
            let mut images = Vec::new();
            if !others.is_empty() {
                let prefixes = media(&others, with_extras.then_some(&mut images));
                let keys = &chunk.keys;
                let mut kept = first;
                for i in first..chunk.values.len() {
                    let (id, v) = chunk.values[i];
                    let name = keys.get(id as usize).map_or("", String::as_str);
                    let media_part = prefixes.iter().any(|prefix| {
                        name.strip_prefix(prefix.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                    });
                    if !media_part {
                        chunk.values[kept] = (id, v);
                        kept += 1;
                    }
                }
                chunk.values.truncate(kept);
            }
            if step.is_nan()
                && let Some(num) = crate::history::step_num(message, head.body)
            {
                step = num as f64;
            }
            chunk.rows.push(Row {
                step,
                runtime,
                timestamp,
                values: first..chunk.values.len(),
                images,
            });
            continue;
        }
        let at = chunk.rows.len();
        match wandb_format::decode(raw) {
            Ok(record) => chunk.events.push((at, Event::Record(Box::new(record)))),
            Err(d) => chunk
                .events
                .push((at, Event::Damage(Reported::from_damage(&d, file_len)))),
        }
    }
    chunk
}

/// Reads `path`. `keep` says which history keys to keep as series (the step metrics are kept
/// whatever it says); `with_extras` also keeps the console, images and system metrics. One file
/// is read in parallel slices (`batch::scan_batches`), merged in file order.
pub(crate) fn load_run(
    path: &Path,
    keep: &(dyn Fn(&str) -> bool + Sync),
    with_extras: bool,
    parallel: bool,
) -> Result<RunData, Error> {
    let mut run = RunData {
        path: path.to_path_buf(),
        ..RunData::default()
    };
    let file = match damage::open(path)? {
        Opened::File(file) => file,
        Opened::NoHeader(reported) => {
            run.damage.push(reported);
            finish_name(&mut run);
            return Ok(run);
        }
    };
    let file_len = file.len();
    let run_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let Some(message) = history_type() else {
        return Ok(run);
    };
    // Each key seen, decided once: its series index, or `None` when not kept.
    let mut ids: HashMap<String, Option<usize>> = HashMap::new();
    let mut series: Vec<(String, Series)> = Vec::new();
    let mut console_partial = String::new();
    let merged = crate::batch::scan_batches(
        &file,
        parallel,
        |items| read_chunk(items, message, file_len, with_extras),
        |chunk| {
            let mut global: Vec<Option<usize>> = Vec::with_capacity(chunk.keys.len());
            let mut events = chunk.events.into_iter().peekable();
            let mut rows = chunk.rows.into_iter().enumerate().peekable();
            loop {
                let event_first = match (events.peek(), rows.peek()) {
                    (Some((at, _)), Some((i, _))) => at <= i,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                if event_first {
                    if let Some((_, event)) = events.next() {
                        match event {
                            Event::Damage(reported) => run.damage.push(reported),
                            Event::Record(record) => {
                                run.records += 1;
                                apply_record(&mut run, *record, with_extras, &mut console_partial);
                            }
                        }
                    }
                    continue;
                }
                let Some((_, row)) = rows.next() else {
                    break;
                };
                run.records += 1;
                let Ok(index) = u32::try_from(run.steps.len()) else {
                    continue;
                };
                run.steps.push(row.step);
                run.runtimes.push(row.runtime);
                run.timestamps.push(row.timestamp);
                for &(local, value) in chunk.values.get(row.values).unwrap_or_default() {
                    let local = local as usize;
                    while global.len() <= local {
                        let key = chunk.keys.get(global.len()).map_or("", String::as_str);
                        let id = match ids.get(key) {
                            Some(&id) => id,
                            None => {
                                let wanted = keep(key)
                                    || run.step_metric.values().any(|s| s == key)
                                    || run.glob_step_metric.iter().any(|(_, s)| s == key);
                                let id = wanted.then_some(series.len());
                                if wanted {
                                    series.push((key.to_string(), Series::default()));
                                }
                                ids.insert(key.to_string(), id);
                                id
                            }
                        };
                        global.push(id);
                    }
                    if let Some(Some(id)) = global.get(local)
                        && let Some((_, s)) = series.get_mut(*id)
                    {
                        s.rows.push(index);
                        s.values.push(value);
                    }
                }
                for (key, file) in row.images {
                    run.images.push(LoggedImage {
                        key,
                        step: row.step,
                        path: run_dir.join("files").join(file),
                    });
                }
            }
            Ok(())
        },
    );
    // Nothing cancels this scan.
    let _ = merged;
    run.metrics = series.into_iter().collect();
    if !console_partial.is_empty() {
        run.console.push_back(std::mem::take(&mut console_partial));
        trim_console(&mut run.console);
    }
    finish_name(&mut run);
    Ok(run)
}

/// Applies a record other than history.
fn apply_record(
    run: &mut RunData,
    record: wandb_format::proto::Record,
    with_extras: bool,
    console_partial: &mut String,
) {
    match record.record_type {
        Some(RecordType::Run(r)) => {
            set_if(&mut run.id, r.run_id);
            set_if(&mut run.project, r.project);
            set_if(&mut run.name, r.display_name);
            if let Some(config) = r.config {
                apply_items(
                    &mut run.config,
                    config
                        .update
                        .iter()
                        .map(|i| (&i.key, &i.nested_key, &i.value_json)),
                );
            }
        }
        Some(RecordType::Config(config)) => {
            apply_items(
                &mut run.config,
                config
                    .update
                    .iter()
                    .map(|i| (&i.key, &i.nested_key, &i.value_json)),
            );
            for item in &config.remove {
                run.config.remove(&dotted(&item.key, &item.nested_key));
            }
        }
        Some(RecordType::Summary(summary)) => {
            apply_items(
                &mut run.summary,
                summary
                    .update
                    .iter()
                    .map(|i| (&i.key, &i.nested_key, &i.value_json)),
            );
            for item in &summary.remove {
                run.summary.remove(&dotted(&item.key, &item.nested_key));
            }
        }
        Some(RecordType::Metric(metric)) if !metric.step_metric.is_empty() => {
            if !metric.name.is_empty() {
                run.step_metric.insert(metric.name, metric.step_metric);
            } else if !metric.glob_name.is_empty() {
                run.glob_step_metric
                    .push((metric.glob_name, metric.step_metric));
            }
        }
        Some(RecordType::Stats(stats)) if with_extras => {
            let time = stats
                .timestamp
                .map_or(f64::NAN, |t| t.seconds as f64 + f64::from(t.nanos) * 1e-9);
            for item in stats.item {
                if let Some(value) = number(ItemValue::Json(&item.value_json)) {
                    let series = run.system.entry(item.key).or_default();
                    series.times.push(time);
                    series.values.push(value);
                }
            }
        }
        Some(RecordType::OutputRaw(output)) if with_extras => {
            push_console(&mut run.console, console_partial, &output.line);
        }
        Some(RecordType::Output(output)) if with_extras => {
            push_console(&mut run.console, console_partial, &output.line);
        }
        Some(RecordType::Exit(exit)) => run.exit_code = Some(exit.exit_code),
        _ => {}
    }
}

fn finish_name(run: &mut RunData) {
    if run.name.is_empty() {
        run.name = if run.id.is_empty() {
            run.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            run.id.clone()
        };
    }
}

fn set_if(slot: &mut String, value: String) {
    if !value.is_empty() {
        *slot = value;
    }
}

fn dotted(key: &str, nested: &[String]) -> String {
    if nested.is_empty() {
        key.to_string()
    } else {
        nested.join(".")
    }
}

/// Applies summary or config updates; a config value `{"value": v, "desc": ..}` (as the SDK
/// stores it) is shown as `v`.
fn apply_items<'a>(
    map: &mut json::Map,
    items: impl Iterator<Item = (&'a String, &'a Vec<String>, &'a String)>,
) {
    for (key, nested, value_json) in items {
        let key = dotted(key, nested);
        if key.starts_with('_') {
            continue;
        }
        let value = json::parse(value_json).unwrap_or_else(|_| Value::String(value_json.clone()));
        let value = match value
            .as_object()
            .filter(|object| object.len() <= 2)
            .and_then(|object| object.get("value"))
        {
            Some(inner) => inner.clone(),
            None => value,
        };
        map.insert(key, value);
    }
}

/// Media in a history row. The SDK flattens a media value into items under its key
/// (`image._type`, `image.path`, `image.width`, ...), so a key `K._type` marks `K` as media: its
/// numeric sub-keys are not metrics, and for images (`image-file`, `images/separated`) the files
/// are added to `images`, when given. A value kept whole (`{"_type":"image-file",...}`) counts too.
fn media(others: &[(String, &str)], images: Option<&mut Vec<(String, String)>>) -> Vec<String> {
    let string = |text: &str| {
        json::parse(text)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let mut prefixes: Vec<(&str, String)> = Vec::new();
    let mut found: Vec<(String, String)> = Vec::new();
    for (key, text) in others {
        if let Some(prefix) = key.strip_suffix("._type")
            && let Some(kind) = string(text)
        {
            prefixes.push((prefix, kind));
        } else if text.contains("image-file")
            && let Ok(value) = json::parse(text)
            && let Some(object) = value.as_object()
            && object.get("_type").and_then(Value::as_str) == Some("image-file")
            && let Some(path) = object.get("path").and_then(Value::as_str)
        {
            found.push((key.clone(), path.to_string()));
        }
    }
    let names: Vec<String> = prefixes.iter().map(|(p, _)| p.to_string()).collect();
    let Some(images) = images else {
        return names;
    };
    for (prefix, kind) in &prefixes {
        let field = |name: &str| {
            let wanted = format!("{prefix}.{name}");
            others
                .iter()
                .find(|(key, _)| *key == wanted)
                .and_then(|(_, text)| json::parse(text).ok())
        };
        match kind.as_str() {
            "image-file" => {
                if let Some(path) = field("path").as_ref().and_then(Value::as_str) {
                    found.push((prefix.to_string(), path.to_string()));
                }
            }
            "images/separated" => {
                if let Some(names) = field("filenames").as_ref().and_then(Value::as_array) {
                    for name in names.iter().filter_map(Value::as_str) {
                        found.push((prefix.to_string(), name.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    // A path from a record stays inside the run's files/.
    images.extend(
        found
            .into_iter()
            .filter(|(_, path)| !path.starts_with('/') && !path.split('/').any(|p| p == "..")),
    );
    names
}

/// Appends console text, split into lines (a `\r` rewrites the current line, as a terminal does).
fn push_console(lines: &mut VecDeque<String>, partial: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '\n' => {
                lines.push_back(std::mem::take(partial));
                trim_console(lines);
            }
            '\r' => partial.clear(),
            _ => partial.push(ch),
        }
    }
}

fn trim_console(lines: &mut VecDeque<String>) {
    while lines.len() > CONSOLE_LINES {
        lines.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_globs() {
        assert_eq!(number(ItemValue::Json("1.5")), Some(1.5));
        assert!(number(ItemValue::Json("NaN")).is_some_and(f64::is_nan));
        assert_eq!(
            number(ItemValue::Json("-Infinity")),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(number(ItemValue::Json("\"text\"")), None);
        assert_eq!(number(ItemValue::Json("{\"_type\":\"image-file\"}")), None);
        assert!(glob_match("train/*", "train/loss"));
        assert!(!glob_match("train/*", "val/loss"));
        assert!(glob_match("val/acc", "val/acc"));
    }

    #[test]
    fn console_keeps_last_lines_and_carriage_returns() {
        let mut lines = VecDeque::new();
        let mut partial = String::new();
        push_console(&mut lines, &mut partial, "a\nprogress 1\rprogress 2\nb");
        assert_eq!(lines, ["a", "progress 2"]);
        assert_eq!(partial, "b");
    }
}
