//! What the viewer needs of one run, read in one pass over its `.wandb` file: the numeric history
//! series, the `define_metric` step metrics, summary, config, system metrics, the console's last
//! lines, logged images and the damaged spans.
//!
//! History records are read straight from their bytes, in slices of the file read in parallel
//! (`read_chunk`) and applied in file order (`RunReader::apply`), as `history` does: rows of the
//! shape the SDK and the logger write without the schema (`quick_row`), any other through
//! `items::try_for_each_item` on format's wire cursor, both validating as prost would. Keys are
//! recognised by their encoded bytes when an item repeats the previous row's key at the same
//! position; values are parsed only for the keys kept. Each series is downsampled as it is read
//! (`series::Stream`), so what a run holds does not grow with its history, and a `RunReader` can
//! be extended by the records a growing file gains (`report --follow`). Every other record type
//! the viewer needs is decoded with prost through `wandb_format::decode`. Damage is data: a
//! record that does not decode is reported and skipped, as every inspect command does.

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wandb_format::json::{self, Value};
use wandb_format::proto::record::RecordType;
use wandb_format::{LogFile, ScanItem};

use crate::damage::{self, Opened, Reported};
use crate::error::Error;
use crate::items::{Item, ItemValue, try_for_each_item};
use crate::plot::series::{ReadOptions, Stream};
use crate::schema::{Message, RECORD, Type};
use crate::wire::{self, Cursor, RECURSION_LIMIT, WireType, utf8};

/// Field number of `Record.history`.
const HISTORY: u32 = 2;
/// Field number of `HistoryRecord.item`.
const ITEM: u32 = 1;
/// How many console lines a run keeps (the last ones).
pub(crate) const CONSOLE_LINES: usize = 200;

/// One numeric series, on its x axis, downsampled as it is read.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// The history key (nested keys joined with `.`).
    pub(crate) name: String,
    /// The x key (`_step`, `_runtime`, `_timestamp` or another metric), fixed by `--x` or by the
    /// `define_metric` records read before the series' first value.
    pub(crate) x: String,
    /// Where x comes from.
    x_source: XSource,
    /// The points.
    pub(crate) stream: Stream,
}

/// Where a series' x values come from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum XSource {
    Step,
    Runtime,
    Timestamp,
    /// Another series' value in the same row (its index once that series exists).
    Metric(Option<usize>),
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
#[derive(Clone, Debug, Default)]
pub(crate) struct RunData {
    /// The `.wandb` file.
    pub(crate) path: PathBuf,
    /// The run's display name, else its id, else the file's name.
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) project: String,
    /// History rows read.
    pub(crate) rows: u64,
    /// Numeric history series in the order first seen, `_`-keys excluded.
    pub(crate) metrics: Vec<Series>,
    /// Index of each series in `metrics` by key.
    by_name: HashMap<String, usize>,
    /// The run record's display name.
    display_name: String,
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

    /// The series of history key `key`.
    pub(crate) fn metric(&self, key: &str) -> Option<&Series> {
        self.metrics.get(*self.by_name.get(key)?)
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
#[inline]
fn number(value: ItemValue<'_>) -> Option<f64> {
    match value {
        ItemValue::Float(f) => Some(f),
        ItemValue::Int(i) => Some(i as f64),
        ItemValue::Json(text) => json_number(text),
        ItemValue::Bool(_) | ItemValue::Null | ItemValue::Text(_) => None,
    }
}

/// [`number`] of a `value_json` text.
#[inline]
fn json_number(text: &str) -> Option<f64> {
    // The common case, a plain JSON number, straight to the float parser.
    if text
        .as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii_digit() || b == b'-')
        && let Ok(value) = fast_float2::parse::<f64, _>(text)
    {
        return Some(value);
    }
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => text.parse::<f64>().ok(),
        _ => None,
    }
}

/// What one slice of scanned items gave, in file order; keys interned per slice.
#[derive(Default)]
pub(crate) struct Chunk {
    /// The slice's history keys, by local id.
    keys: Vec<String>,
    /// Rows in order.
    rows: Vec<Row>,
    /// (local key id, value) of all rows, each row's in `Row::values`.
    values: Vec<(u32, f64)>,
    /// (local key id, text range in `text`) of values not parsed yet: keys the caller does not
    /// keep (they are parsed only if the key turns out to be a step metric), each row's in
    /// `Row::deferred`.
    deferred: Vec<(u32, u32, u32)>,
    /// The texts of values not parsed yet.
    text: String,
    /// Other records and damage, each with the number of rows of this slice before it.
    events: Vec<(usize, Event)>,
    /// Where the slice's last intact record ends (0: it has none).
    end: u64,
}

struct Row {
    step: f64,
    /// `_runtime` and `_timestamp`, parsed only when a series has them on x.
    runtime: Lazy,
    timestamp: Lazy,
    values: std::ops::Range<usize>,
    deferred: std::ops::Range<usize>,
    images: Vec<(String, String)>,
}

enum Event {
    Record(Box<wandb_format::proto::Record>),
    Damage(Reported),
}

/// A number read now, or its text (a range of [`Chunk::text`]), read when needed.
#[derive(Clone, Copy)]
enum Lazy {
    Value(f64),
    Text(u32, u32),
}

impl Lazy {
    /// Keeps a value's text (a JSON text) for later, or reads it now (a typed value).
    fn of(value: ItemValue<'_>, text: &mut String) -> Lazy {
        match value {
            ItemValue::Json(json) => {
                let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
                text.push_str(json);
                Lazy::Text(start, u32::try_from(text.len()).unwrap_or(u32::MAX))
            }
            other => Lazy::Value(number(other).unwrap_or(f64::NAN)),
        }
    }

    fn get(self, text: &str) -> f64 {
        match self {
            Lazy::Value(value) => value,
            Lazy::Text(start, end) => text
                .get(start as usize..end as usize)
                .and_then(json_number)
                .unwrap_or(f64::NAN),
        }
    }
}

/// What an item's key is, decided once per key.
#[derive(Clone, Copy)]
enum KeyClass {
    Step,
    Runtime,
    Timestamp,
    /// Another `_` key: not a metric.
    Internal,
    /// A metric key: its local id, and whether the caller keeps it.
    Metric(u32, bool),
}

/// The values of one history row being read.
struct RowValues<'a> {
    step: f64,
    runtime: Lazy,
    timestamp: Lazy,
    /// Items whose value is not a number (media are found among them).
    others: Vec<(String, &'a str)>,
}

impl RowValues<'_> {
    fn new() -> Self {
        RowValues {
            step: f64::NAN,
            runtime: Lazy::Value(f64::NAN),
            timestamp: Lazy::Value(f64::NAN),
            others: Vec::new(),
        }
    }
}

/// What a slice's history rows share while they are read: the chunk being filled, the keys seen
/// and, per item position, the last key found there.
struct RowReader<'c, 'k> {
    chunk: &'c mut Chunk,
    keep: &'k (dyn Fn(&str) -> bool + Sync),
    local: HashMap<String, u32>,
    scratch: String,
    /// Rows usually repeat the previous row's keys in the same order: per item position, the
    /// item's encoded key bytes and what they were found to be.
    by_position: Vec<(&'c [u8], KeyClass)>,
}

impl<'c> RowReader<'c, '_> {
    /// What the key of an item is: from the cache when the item at `position` of the previous
    /// row had the same encoded key `span`, else from `key` (which builds the key in the scratch
    /// string; `None` if it cannot).
    #[inline(always)]
    fn class(
        &mut self,
        position: usize,
        span: &'c [u8],
        key: impl FnOnce(&mut String) -> Option<&str>,
    ) -> Option<KeyClass> {
        if let Some(&(known, class)) = self.by_position.get(position)
            && !span.is_empty()
            && same_bytes(known, span)
        {
            return Some(class);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let class = key(&mut scratch).map(|key| match key {
            "_step" => KeyClass::Step,
            "_runtime" => KeyClass::Runtime,
            "_timestamp" => KeyClass::Timestamp,
            _ if key.starts_with('_') => KeyClass::Internal,
            _ => {
                let id = match self.local.get(key) {
                    Some(&id) => id,
                    None => {
                        let id = u32::try_from(self.chunk.keys.len()).unwrap_or(u32::MAX);
                        self.chunk.keys.push(key.to_string());
                        self.local.insert(key.to_string(), id);
                        id
                    }
                };
                KeyClass::Metric(id, (self.keep)(key))
            }
        });
        self.scratch = scratch;
        if let Some(class) = class
            && !span.is_empty()
        {
            self.by_position.truncate(position);
            self.by_position.push((span, class));
        }
        class
    }

    /// Takes one item's value.
    #[inline(always)]
    fn value<'a>(&mut self, row: &mut RowValues<'a>, class: KeyClass, value: ItemValue<'a>) {
        let chunk = &mut *self.chunk;
        match class {
            KeyClass::Step => row.step = number(value).unwrap_or(f64::NAN),
            KeyClass::Runtime => row.runtime = Lazy::of(value, &mut chunk.text),
            KeyClass::Timestamp => row.timestamp = Lazy::of(value, &mut chunk.text),
            KeyClass::Internal => {}
            KeyClass::Metric(id, kept) => {
                if !kept
                    && let ItemValue::Json(text) = value
                    && text
                        .as_bytes()
                        .first()
                        .is_some_and(|&b| b.is_ascii_digit() || b == b'-')
                {
                    let start = u32::try_from(chunk.text.len()).unwrap_or(u32::MAX);
                    chunk.text.push_str(text);
                    let end = u32::try_from(chunk.text.len()).unwrap_or(u32::MAX);
                    chunk.deferred.push((id, start, end));
                    return;
                }
                match number(value) {
                    Some(v) => chunk.values.push((id, v)),
                    None => {
                        if let ItemValue::Json(text) = value {
                            let key = chunk.keys.get(id as usize).map_or("", String::as_str);
                            row.others.push((key.to_string(), text));
                        }
                    }
                }
            }
        }
    }

    /// Reads a history record body of the common shape (see [`quick_row`]); `false` if it is
    /// not, with nothing of it kept.
    fn quick(
        &mut self,
        body: &'c [u8],
        step_type: &'static Message,
        row: &mut RowValues<'c>,
    ) -> bool {
        let (first, first_deferred) = (self.chunk.values.len(), self.chunk.deferred.len());
        let mut position = 0;
        let read = quick_row(body, step_type, |span, bytes, value| {
            let Some(class) = self.class(position, span, |scratch| {
                Item::quick(bytes).map(|item| {
                    scratch.clear();
                    item.push_dotted(scratch);
                    scratch.as_str()
                })
            }) else {
                return false;
            };
            position += 1;
            self.value(row, class, value);
            true
        });
        if read.is_none() {
            self.chunk.values.truncate(first);
            self.chunk.deferred.truncate(first_deferred);
            *row = RowValues::new();
            return false;
        }
        true
    }
}

/// Whether two short byte strings are equal, without a call to `memcmp` for the usual lengths.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    match a.len() {
        // Two (overlapping) words cover 8 to 16 bytes.
        n @ 8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The items of a history record body in the shape the SDK and the logger write: each item's key
/// fields (`key`, `nested_key`) first and its `value_json` (shorter than 128 bytes) last, and a
/// `step`, validated as prost would. Calls `each(key span, item bytes, value)` per item, in order;
/// `None` for a body with anything else, or when `each` says no (read it with
/// `try_for_each_item` then, from the start).
#[inline(always)]
fn quick_row<'a>(
    body: &'a [u8],
    step_type: &'static Message,
    mut each: impl FnMut(&'a [u8], &'a [u8], ItemValue<'a>) -> bool,
) -> Option<()> {
    let mut at = 0;
    while let Some(&tag) = body.get(at) {
        let (len, header) = match (body.get(at + 1), body.get(at + 2)) {
            (Some(&low), _) if low < 0x80 => (usize::from(low), 2),
            (Some(&low), Some(&high)) if high < 0x80 => {
                (usize::from(low & 0x7F) | usize::from(high) << 7, 3)
            }
            _ => return None,
        };
        let start = at + header;
        let bytes = body.get(start..start + len)?;
        at = start + len;
        match tag {
            0x0A => {
                let mut k = 0;
                while let Some(&key_tag) = bytes.get(k) {
                    if key_tag != 0x0A && key_tag != 0x12 {
                        break;
                    }
                    let key_len = *bytes.get(k + 1)?;
                    if key_len >= 0x80 {
                        return None;
                    }
                    k += 2 + usize::from(key_len);
                }
                if bytes.get(k..k + 2) != Some(&[0x82, 0x01]) {
                    return None;
                }
                let value_len = usize::from(*bytes.get(k + 2)?);
                if value_len >= 0x80 || k + 3 + value_len != bytes.len() {
                    return None;
                }
                let value = match value_len {
                    0 => ItemValue::Null,
                    _ => ItemValue::Json(utf8(bytes.get(k + 3..)?).ok()?),
                };
                if !each(bytes.get(..k)?, bytes, value) {
                    return None;
                }
            }
            0x12 => wire::validate(step_type, bytes, RECURSION_LIMIT - 2).ok()?,
            _ => return None,
        }
    }
    Some(())
}

/// Reads a slice of items: history rows straight from their bytes, other records with prost.
/// Values of keys `keep` refuses are not parsed (see [`Chunk::deferred`]).
pub(crate) fn read_chunk(
    items: &[ScanItem<'_>],
    file_len: u64,
    with_extras: bool,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Chunk {
    let mut chunk = Chunk::default();
    read_chunk_into(&mut chunk, items, file_len, with_extras, keep);
    chunk
}

/// [`read_chunk`] into an empty chunk whose vectors may be reused (memory already touched, so
/// filling it does not fault in fresh pages).
fn read_chunk_into(
    chunk: &mut Chunk,
    items: &[ScanItem<'_>],
    file_len: u64,
    with_extras: bool,
    keep: &(dyn Fn(&str) -> bool + Sync),
) {
    // Room for rows of a dozen values, so the vectors seldom grow (and copy) while being filled.
    chunk.rows.reserve(items.len());
    chunk.values.reserve(items.len() * 12);
    chunk.text.reserve(items.len() * 40);
    let Some(message) = history_type() else {
        return;
    };
    let Some(Type::Message(step_type)) = message.field(2).map(|field| &field.ty) else {
        return;
    };
    let mut reader = RowReader {
        chunk,
        keep,
        local: HashMap::new(),
        scratch: String::new(),
        by_position: Vec::new(),
    };
    for item in items {
        let raw = match item {
            ScanItem::Record(raw) => raw,
            ScanItem::Damage(d) => {
                let at = reader.chunk.rows.len();
                reader
                    .chunk
                    .events
                    .push((at, Event::Damage(Reported::from_damage(d, file_len))));
                continue;
            }
        };
        let chunk = &mut *reader.chunk;
        chunk.end = chunk.end.max(raw.offset.saturating_add(raw.length));
        let payload: &[u8] = &raw.payload;
        if let Ok(head) = wire::head(payload)
            && head.record_type.is_some_and(|f| f.number == HISTORY)
        {
            let first = chunk.values.len();
            let first_deferred = chunk.deferred.len();
            let mut row = RowValues::new();
            let rest_checked = if only_num_and_history(payload, head.body) {
                Ok(())
            } else {
                wire::validate_except(RECORD, payload, RECURSION_LIMIT, HISTORY)
            };
            let checked = rest_checked.and_then(|()| {
                if reader.quick(head.body, step_type, &mut row) {
                    return Ok(());
                }
                let mut position = 0;
                try_for_each_item(message, head.body, ITEM, RECURSION_LIMIT - 1, |item| {
                    let class = reader.class(position, item.key_span(), |scratch| {
                        scratch.clear();
                        item.push_dotted(scratch);
                        Some(scratch.as_str())
                    });
                    position += 1;
                    if let Some(class) = class {
                        reader.value(&mut row, class, item.value);
                    }
                })
            });
            let chunk = &mut *reader.chunk;
            if checked.is_err() {
                chunk.values.truncate(first);
                chunk.deferred.truncate(first_deferred);
                if let Some(reported) = damage::undecodable(raw, file_len) {
                    let at = chunk.rows.len();
                    chunk.events.push((at, Event::Damage(reported)));
                }
                continue;
            }
            let mut images = Vec::new();
            if !row.others.is_empty() {
                let prefixes = media(&row.others, with_extras.then_some(&mut images));
                let keys = &chunk.keys;
                let is_media = |id: u32| {
                    let name = keys.get(id as usize).map_or("", String::as_str);
                    prefixes.iter().any(|prefix| {
                        name.strip_prefix(prefix.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                };
                retain_from(&mut chunk.values, first, |&(id, _)| !is_media(id));
                retain_from(&mut chunk.deferred, first_deferred, |&(id, _, _)| {
                    !is_media(id)
                });
            }
            let mut step = row.step;
            if step.is_nan()
                && let Some(num) = crate::history::step_num(message, head.body)
            {
                step = num as f64;
            }
            chunk.rows.push(Row {
                step,
                runtime: row.runtime,
                timestamp: row.timestamp,
                values: first..chunk.values.len(),
                deferred: first_deferred..chunk.deferred.len(),
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
}

/// Whether `payload` is exactly `num` and the history field `body`, as the SDK and the logger
/// write a history record: `wire::head` has then read all of it as prost would, and there is
/// nothing else for `validate_except` to check.
#[inline]
fn only_num_and_history(payload: &[u8], body: &[u8]) -> bool {
    let mut reader = Cursor::new(payload);
    matches!(reader.key(), Ok((1, WireType::Varint)))
        && reader.varint().is_ok()
        && matches!(reader.key(), Ok((HISTORY, WireType::Len)))
        && reader
            .len_delimited()
            .is_ok_and(|read| std::ptr::eq(read, body))
        && reader.is_empty()
}

/// Keeps the elements of `list` from `from` on that `keep` accepts, in order.
fn retain_from<T: Copy>(list: &mut Vec<T>, from: usize, keep: impl Fn(&T) -> bool) {
    let mut kept = from;
    for i in from..list.len() {
        if let Some(&element) = list.get(i)
            && keep(&element)
        {
            if let Some(slot) = list.get_mut(kept) {
                *slot = element;
            }
            kept += 1;
        }
    }
    list.truncate(kept);
}

/// A run being read: the chunks of its file are applied in file order, and what was read so far is
/// a complete [`RunData`] at any time, so a growing file can be followed by applying the chunks
/// of its new records only.
pub(crate) struct RunReader<'k> {
    run: RunData,
    keep: &'k (dyn Fn(&str) -> bool + Sync),
    options: ReadOptions,
    with_extras: bool,
    run_dir: PathBuf,
    /// Each key seen, decided once: its series index, or `None` when not kept.
    ids: HashMap<String, Option<usize>>,
    /// Whether some series takes its x from another series, `_runtime`, `_timestamp`.
    metric_x: bool,
    runtime_x: bool,
    timestamp_x: bool,
    /// Per series, its value in the current row and the row it was set in.
    row_values: Vec<(u64, f64)>,
    /// The current row's (series, value) pairs.
    row: Vec<(usize, f64)>,
    console_partial: String,
    /// Where the last intact record applied ends.
    end: u64,
}

impl<'k> RunReader<'k> {
    /// A reader of the run in `path` (see [`load_run`] for the arguments).
    pub(crate) fn new(
        path: &Path,
        keep: &'k (dyn Fn(&str) -> bool + Sync),
        with_extras: bool,
        options: &ReadOptions,
    ) -> Self {
        let mut run = RunData {
            path: path.to_path_buf(),
            ..RunData::default()
        };
        finish_name(&mut run);
        RunReader {
            run,
            keep,
            options: options.clone(),
            with_extras,
            run_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ids: HashMap::new(),
            metric_x: false,
            runtime_x: false,
            timestamp_x: false,
            row_values: Vec::new(),
            row: Vec::new(),
            console_partial: String::new(),
            end: 0,
        }
    }

    /// Where the last intact record applied ends (0 before any).
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Forgets the damage reported from `offset` on (a growing file's end, read again later).
    pub(crate) fn forget_damage_from(&mut self, offset: u64) {
        self.run.damage.retain(|reported| reported.offset < offset);
    }

    /// Which history keys this reader keeps.
    pub(crate) fn keep(&self) -> &'k (dyn Fn(&str) -> bool + Sync) {
        self.keep
    }

    /// The run as read so far.
    pub(crate) fn run(&self) -> &RunData {
        &self.run
    }

    /// Notes damage found outside the chunks (a file without a header).
    pub(crate) fn add_damage(&mut self, reported: Reported) {
        self.run.damage.push(reported);
    }

    /// The run, once everything was applied.
    pub(crate) fn finish(mut self) -> RunData {
        if !self.console_partial.is_empty() {
            self.run
                .console
                .push_back(std::mem::take(&mut self.console_partial));
            trim_console(&mut self.run.console);
        }
        self.run
    }

    /// The series of `key`, created (with its x source) when first wanted; `None` when not kept.
    fn series_id(&mut self, key: &str) -> Option<usize> {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let run = &mut self.run;
        let wanted = (self.keep)(key)
            || run.step_metric.values().any(|s| s == key)
            || run.glob_step_metric.iter().any(|(_, s)| s == key);
        let id = wanted.then_some(run.metrics.len());
        if let Some(id) = id {
            let x = self
                .options
                .x
                .clone()
                .or_else(|| run.step_metric_of(key).map(str::to_string))
                .unwrap_or_else(|| "_step".to_string());
            let x_source = match x.as_str() {
                "_step" => XSource::Step,
                "_runtime" => {
                    self.runtime_x = true;
                    XSource::Runtime
                }
                "_timestamp" => {
                    self.timestamp_x = true;
                    XSource::Timestamp
                }
                other => {
                    self.metric_x = true;
                    XSource::Metric(run.by_name.get(other).copied())
                }
            };
            // Series whose x is this key, created before it.
            for series in &mut run.metrics {
                if series.x_source == XSource::Metric(None) && series.x == key {
                    series.x_source = XSource::Metric(Some(id));
                }
            }
            run.metrics.push(Series {
                name: key.to_string(),
                x,
                x_source,
                stream: Stream::new(&self.options),
            });
            run.by_name.insert(key.to_string(), id);
        }
        self.ids.insert(key.to_string(), id);
        id
    }

    /// Applies one chunk (the next in file order).
    pub(crate) fn apply(&mut self, mut chunk: Chunk) {
        self.apply_from(&mut chunk);
    }

    /// [`RunReader::apply`], leaving `chunk` empty with its vectors' room kept for reuse.
    fn apply_from(&mut self, chunk: &mut Chunk) {
        let Chunk {
            keys,
            rows,
            values,
            deferred,
            text,
            events,
            end,
        } = chunk;
        let (keys, values, deferred, text) = (&*keys, &*values, &*deferred, &*text);
        self.end = self.end.max(*end);
        *end = 0;
        let mut global: Vec<Option<Option<usize>>> = vec![None; keys.len()];
        let mut events = events.drain(..).peekable();
        let mut rows = rows.drain(..).enumerate().peekable();
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
                        Event::Damage(reported) => self.run.damage.push(reported),
                        Event::Record(record) => {
                            self.run.records += 1;
                            apply_record(
                                &mut self.run,
                                *record,
                                self.with_extras,
                                &mut self.console_partial,
                            );
                        }
                    }
                }
                continue;
            }
            let Some((_, row)) = rows.next() else {
                break;
            };
            self.run.records += 1;
            let index = self.run.rows;
            self.run.rows += 1;
            self.row.clear();
            for &(local, value) in values.get(row.values).unwrap_or_default() {
                if let Some(id) = self.global_id(&mut global, keys, local) {
                    self.row.push((id, value));
                }
            }
            for &(local, start, end) in deferred.get(row.deferred).unwrap_or_default() {
                if let Some(id) = self.global_id(&mut global, keys, local)
                    && let Some(value) =
                        text.get(start as usize..end as usize).and_then(json_number)
                {
                    self.row.push((id, value));
                }
            }
            let runtime = if self.runtime_x {
                row.runtime.get(text)
            } else {
                f64::NAN
            };
            let timestamp = if self.timestamp_x {
                row.timestamp.get(text)
            } else {
                f64::NAN
            };
            if self.metric_x {
                self.row_values
                    .resize(self.run.metrics.len(), (u64::MAX, f64::NAN));
                for &(id, value) in &self.row {
                    if let Some(slot) = self.row_values.get_mut(id) {
                        *slot = (index, value);
                    }
                }
            }
            for &(id, value) in &self.row {
                let Some(series) = self.run.metrics.get_mut(id) else {
                    continue;
                };
                let x = match series.x_source {
                    XSource::Step => row.step,
                    XSource::Runtime => runtime,
                    XSource::Timestamp => timestamp,
                    XSource::Metric(Some(other)) => match self.row_values.get(other) {
                        Some(&(at, x)) if at == index => x,
                        _ => f64::NAN,
                    },
                    XSource::Metric(None) => f64::NAN,
                };
                series.stream.push(x, value);
            }
            for (key, file) in row.images {
                self.run.images.push(LoggedImage {
                    key,
                    step: row.step,
                    path: self.run_dir.join("files").join(file),
                });
            }
        }
        chunk.keys.clear();
        chunk.values.clear();
        chunk.deferred.clear();
        chunk.text.clear();
        finish_name(&mut self.run);
    }

    /// The series of a chunk's local key id (decided once per chunk and key, when the key first
    /// has a value).
    #[inline(always)]
    fn global_id(
        &mut self,
        global: &mut [Option<Option<usize>>],
        keys: &[String],
        local: u32,
    ) -> Option<usize> {
        let slot = global.get_mut(local as usize)?;
        if let Some(id) = *slot {
            return id;
        }
        let key = keys.get(local as usize).map_or("", String::as_str);
        let id = self.series_id(key);
        *slot = Some(id);
        id
    }
}

/// Reads `path`. `keep` says which history keys to keep as series (the step metrics are kept
/// whatever it says); `with_extras` also keeps the console, images and system metrics; `options`
/// says how the series are reduced as they are read. One file is read in parallel slices
/// (`batch::scan_batches`) when `parallel`, applied in file order.
pub(crate) fn load_run(
    path: &Path,
    keep: &(dyn Fn(&str) -> bool + Sync),
    with_extras: bool,
    parallel: bool,
    options: &ReadOptions,
) -> Result<RunData, Error> {
    let mut reader = RunReader::new(path, keep, with_extras, options);
    let file = match damage::open(path)? {
        Opened::File(file) => file,
        Opened::NoHeader(reported) => {
            reader.add_damage(reported);
            return Ok(reader.finish());
        }
    };
    read_file(&mut reader, &file, parallel);
    Ok(reader.finish())
}

/// Applies every record of `file` to `reader`: in parallel slices, applied in file order while the
/// next slices are read, when `parallel`.
pub(crate) fn read_file(reader: &mut RunReader<'_>, file: &LogFile, parallel: bool) {
    let file_len = file.len();
    let (keep, with_extras) = (reader.keep, reader.with_extras);
    if parallel {
        // Chunks applied go back to be filled again, their memory already touched.
        let pool: Mutex<Vec<Chunk>> = Mutex::new(Vec::new());
        let work = |items: &[ScanItem<'_>]| {
            let reused = pool.lock().ok().and_then(|mut pool| pool.pop());
            let mut chunk = reused.unwrap_or_default();
            read_chunk_into(&mut chunk, items, file_len, with_extras, keep);
            chunk
        };
        crate::batch::scan_batches_overlapped(file, work, |mut chunk| {
            reader.apply_from(&mut chunk);
            if let Ok(mut pool) = pool.lock() {
                pool.push(chunk);
            }
        });
    } else {
        let work = |items: &[ScanItem<'_>]| read_chunk(items, file_len, with_extras, keep);
        // Nothing cancels this scan.
        let _ = crate::batch::scan_batches(file, false, work, |chunk| {
            reader.apply(chunk);
            Ok(())
        });
    }
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
            set_if(&mut run.display_name, r.display_name);
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

/// The run's name: its display name, else its id, else the file's name.
fn finish_name(run: &mut RunData) {
    run.name = if !run.display_name.is_empty() {
        run.display_name.clone()
    } else if !run.id.is_empty() {
        run.id.clone()
    } else {
        run.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
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
    fn json_numbers_read_as_std_reads_them() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "1",
            "-1",
            "1.",
            ".5",
            "1e",
            "1e5",
            "1E+05",
            "-1.5e-310",
            "4.9e-324",
            "1.7976931348623157e308",
            "1e309",
            "-1e400",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "123456789012345678901234567890",
            "1_0",
            "1 ",
            " 1",
            "0x10",
            "--1",
            "-",
            "1.2.3",
            "Infinity",
            "-Infinity",
            "NaN",
            "inf",
            "-inf",
            "nan",
            "+1",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let value = f64::from_bits(seed);
            if value.is_finite() {
                let mut text = String::new();
                json::format_f64(value, &mut text);
                texts.push(text);
                texts.push(format!("{value:e}"));
                // Short decimals, with and without a sign and leading zeros.
                let scale = (seed % 30) as usize;
                texts.push(format!("{:.scale$}", value.fract()));
                texts.push(format!("{:.scale$}", (seed % 100_000) as f64 / 7.0));
                texts.push(format!("-{:.scale$}", (seed % 1000) as f64 / 1e6));
                texts.push(format!("{}", seed >> (seed % 64)));
            }
        }
        for text in &texts {
            let std = match text.trim() {
                "NaN" | "nan" => Some(f64::NAN),
                "Infinity" | "inf" => Some(f64::INFINITY),
                "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
                t if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => t.parse().ok(),
                _ => None,
            };
            let ours = json_number(text);
            assert_eq!(
                ours.map(f64::to_bits),
                std.map(f64::to_bits),
                "{text:?}: {ours:?} {std:?}"
            );
        }
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
