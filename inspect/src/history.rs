//! `wandb-inspect history`: the history rows of one file as CSV or JSON Lines.
//!
//! Columns: `_step` first, then every other key of every row in byte order (nested keys joined with
//! `.`), or, with `--keys`, exactly the keys given, in that order. Byte order (rather than the
//! order keys first appear) gives the same columns for two runs that logged the same keys in a
//! different order. `_step` is the row's `_step` item, or its `step.num` when it has none.
//!
//! CSV needs its header before the first row, so without `--keys` the file is read twice: once to
//! collect the keys, once to write the rows. Memory holds the key set and one row, never the rows.
//! JSON Lines without `--keys` is a single pass, each row's keys in byte order after `_step`.
//!
//! CSV cells: numbers as written in the file; NaN as `NaN` and infinities as `inf` and `-inf`
//! (what `pandas.read_csv` reads as float64 NaN and ±inf, checked with pandas 3.1, and what
//! Python's `float()` reads); `true`/`false`; an empty cell
//! for a missing value or JSON null; strings as they are, quoted per RFC 4180 when they hold a
//! comma, quote, line break or leading or trailing space (or are empty); lists and objects as
//! compact JSON text (with bare `NaN`, which Python's `json.loads` reads).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use wandb_format::json::{self, Value};
use wandb_format::{LogFile, ScanItem};

use crate::batch::scan_batches;
use crate::cli::TableFormat;
use crate::damage::{self, Opened, Reported, Tally};
use crate::error::Error;
use crate::items::{Item, ItemValue, try_for_each_item};
use crate::jsonout::{
    NonFinite, Simple, Style, classify, push_i64, write_f64, write_str, write_value,
};
use crate::parallel::{Cancelled, Sink};
use crate::schema::{Message, RECORD, Type};
use crate::wire::{
    self, Cursor, FieldRead, RECURSION_LIMIT, Value as WireValue, WireResult, WireType, same_bytes,
};

/// Field number of `Record.history`.
const HISTORY: u32 = 2;

/// Field number of `HistoryRecord.item`.
const ITEM: u32 = 1;

/// Options of `history`.
#[derive(Clone, Debug)]
pub(crate) struct HistoryOptions {
    pub(crate) format: TableFormat,
    pub(crate) keys: Vec<String>,
    pub(crate) non_finite: NonFinite,
}

/// What exporting found.
#[derive(Debug, Default)]
pub(crate) struct HistoryResult {
    pub(crate) tally: Tally,
    pub(crate) damage: Vec<Reported>,
    pub(crate) error: Option<Error>,
}

fn history_type() -> Option<&'static Message> {
    match RECORD.field(HISTORY)?.ty {
        Type::Message(message) => Some(message),
        _ => None,
    }
}

/// What one slice of records gave.
#[derive(Debug, Default)]
struct SliceResult<T> {
    n_records: u64,
    damage: Vec<Reported>,
    value: T,
}

/// Checks a slice of scanned items and calls `row` with the body of each valid history record.
///
/// A history record's body is validated by `row` as it reads it (with `items::try_for_each_item`),
/// the rest of the record here, so that no record is read twice; `row` must write nothing when it
/// fails.
fn history_rows<'i, T: Default>(
    items: &'i [ScanItem<'_>],
    file_len: u64,
    mut row: impl FnMut(&mut T, &'i [u8]) -> WireResult<()>,
) -> SliceResult<T> {
    let mut result = SliceResult::<T>::default();
    for item in items {
        match item {
            ScanItem::Record(raw) => {
                let payload: &[u8] = &raw.payload;
                let checked = match wire::head(payload) {
                    Ok(head) if head.record_type.is_some_and(|f| f.number == HISTORY) => {
                        wire::validate_except(RECORD, payload, RECURSION_LIMIT, HISTORY)
                            .and_then(|()| row(&mut result.value, head.body))
                    }
                    Ok(_) => wire::validate_record(payload),
                    Err(error) => Err(error),
                };
                if checked.is_err()
                    && let Some(reported) = damage::undecodable(raw, file_len)
                {
                    result.damage.push(reported);
                    continue;
                }
                result.n_records += 1;
            }
            ScanItem::Damage(damage) => {
                result.damage.push(Reported::from_damage(damage, file_len));
            }
        }
    }
    result
}

/// Exports the history of `path` into `sink`.
pub(crate) fn history_file(
    path: &Path,
    options: &HistoryOptions,
    parallel: bool,
    sink: &mut Sink<HistoryResult>,
) -> Result<HistoryResult, Cancelled> {
    let mut result = HistoryResult::default();
    let file = match damage::open(path) {
        Ok(Opened::File(file)) => file,
        Ok(Opened::NoHeader(reported)) => {
            result.tally.add(&reported);
            result.damage.push(reported);
            return Ok(result);
        }
        Err(error) => {
            result.error = Some(error);
            return Ok(result);
        }
    };
    let Some(message) = history_type() else {
        return Ok(result);
    };
    let columns = if options.format == TableFormat::Csv || !options.keys.is_empty() {
        let keys = if options.keys.is_empty() {
            collect_keys(&file, message, parallel)?
        } else {
            options.keys.clone()
        };
        Some(Columns::new(keys))
    } else {
        None
    };
    if options.format == TableFormat::Csv
        && let Some(columns) = &columns
    {
        columns.write_header(sink.buf());
    }
    let file_len = file.len();
    let shared = Shared {
        message,
        options,
        columns: columns.as_ref(),
    };
    let pool = sink.pool();
    scan_batches(
        &file,
        parallel,
        |items| {
            let mut writer = RowWriter::new(&shared);
            let mut out = pool.take();
            let slice = history_rows::<()>(items, file_len, |_, body| writer.row(&mut out, body));
            (slice, out)
        },
        |(slice, out)| {
            result.tally.records += slice.n_records;
            for reported in slice.damage {
                result.tally.add(&reported);
                result.damage.push(reported);
            }
            sink.send_owned(out)
        },
    )?;
    Ok(result)
}

/// Pass 1 of CSV: every key of every row, `_step` excluded, in byte order.
///
/// This pass only looks for keys: it reads the items' framing but does not validate the records
/// (pass 2 does, and reports damage). So a history record whose protobuf is damaged but whose keys
/// can be read still adds its keys as columns.
fn collect_keys(
    file: &LogFile,
    message: &'static Message,
    parallel: bool,
) -> Result<Vec<String>, Cancelled> {
    let mut keys: HashSet<Box<[u8]>> = HashSet::new();
    scan_batches(
        file,
        parallel,
        |items| {
            let mut found: HashSet<Box<[u8]>> = HashSet::new();
            let mut scratch = Vec::new();
            // The encoded keys of the previous row, by position: rows usually repeat them.
            let mut last_row: Vec<Vec<u8>> = Vec::new();
            for item in items {
                let ScanItem::Record(raw) = item else {
                    continue;
                };
                let Ok(head) = wire::head(&raw.payload) else {
                    continue;
                };
                if head.record_type.is_none_or(|field| field.number != HISTORY) {
                    continue;
                }
                let mut position = 0;
                let _ = item_keys(message, head.body, |span, item| {
                    let known = !span.is_empty()
                        && last_row
                            .get(position)
                            .is_some_and(|last| same_bytes(last, span));
                    if !known {
                        if let Ok(key) = dotted_key(item, &mut scratch)
                            && !found.contains(key)
                        {
                            found.insert(key.into());
                        }
                        if last_row.len() <= position {
                            last_row.resize_with(position + 1, Vec::new);
                        }
                        if let Some(last) = last_row.get_mut(position) {
                            last.clear();
                            last.extend_from_slice(span);
                        }
                    }
                    position += 1;
                });
            }
            found
        },
        |found| {
            keys.extend(found);
            Ok(())
        },
    )?;
    let mut keys: Vec<String> = keys
        .into_iter()
        .map(|key| String::from_utf8_lossy(&key).into_owned())
        .filter(|key| key != "_step")
        .collect();
    keys.sort();
    Ok(keys)
}

/// Calls `each` with every item of a history record body: its leading encoded key fields (as
/// [`Item::key_span`], empty when there are none or they do not lead) and its bytes. Reads only
/// the framing (no UTF-8 or value checks).
fn item_keys<'b>(
    message: &'static Message,
    body: &'b [u8],
    mut each: impl FnMut(&'b [u8], &'b [u8]),
) -> WireResult<()> {
    let depth = RECURSION_LIMIT - 1;
    let mut reader = Cursor::new(body);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        if number != ITEM || wire_type != WireType::Len {
            reader.skip_known(message.field(number), number, wire_type, depth)?;
            continue;
        }
        let item = reader.len_delimited()?;
        let mut inner = Cursor::new(item);
        // Where the leading key fields end; `None` once a key field follows another field.
        let mut key_end = Some(0);
        let mut other_seen = false;
        while !inner.is_empty() {
            let (number, wire_type) = inner.key()?;
            if matches!(number, 1 | 2) && wire_type == WireType::Len {
                inner.len_delimited()?;
                if other_seen {
                    key_end = None;
                } else {
                    key_end = Some(inner.pos());
                }
            } else {
                other_seen = true;
                if wire_type == WireType::Len {
                    inner.len_delimited()?;
                } else {
                    inner.raw(wire_type, number, depth - 1)?;
                }
            }
        }
        let key_end = key_end.unwrap_or(0);
        each(item.get(..key_end).unwrap_or_default(), item);
    }
    Ok(())
}

/// The dotted key of history item `item` (its bytes), built in `scratch`: its `nested_key` parts
/// joined with `.`, or else its `key`.
fn dotted_key<'s>(item: &[u8], scratch: &'s mut Vec<u8>) -> WireResult<&'s [u8]> {
    let mut reader = Cursor::new(item);
    let mut key: &[u8] = &[];
    let mut n_parts = 0;
    scratch.clear();
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        match (number, wire_type) {
            (1, WireType::Len) => key = reader.len_delimited()?,
            (2, WireType::Len) => {
                let part = reader.len_delimited()?;
                if n_parts > 0 {
                    scratch.push(b'.');
                }
                scratch.extend_from_slice(part);
                n_parts += 1;
            }
            _ => {
                reader.raw(wire_type, number, RECURSION_LIMIT)?;
            }
        }
    }
    if n_parts == 0 {
        scratch.extend_from_slice(key);
    }
    Ok(scratch)
}

/// The table's columns after `_step`, and the column of each key.
#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// The cells of `_timestamp` and `_runtime`, written in fixed notation in CSV.
    seconds: [Option<usize>; 2],
}

impl Columns {
    fn new(keys: Vec<String>) -> Self {
        let mut names = Vec::with_capacity(keys.len());
        let mut index = HashMap::new();
        for key in keys {
            if key != "_step" && !index.contains_key(&key) {
                index.insert(key.clone(), names.len() + 1);
                names.push(key);
            }
        }
        let seconds = [
            index.get("_timestamp").copied(),
            index.get("_runtime").copied(),
        ];
        Columns {
            names,
            index,
            seconds,
        }
    }

    /// Whether cell `column` holds seconds (`_timestamp`, `_runtime`).
    #[inline]
    fn is_seconds(&self, column: usize) -> bool {
        self.seconds.contains(&Some(column))
    }

    fn write_header(&self, out: &mut String) {
        out.push_str("_step");
        for name in &self.names {
            out.push(',');
            csv_field(out, name);
        }
        out.push('\n');
    }
}

/// What every row writer shares (read-only).
#[derive(Debug)]
struct Shared<'o> {
    message: &'static Message,
    options: &'o HistoryOptions,
    /// `None`: JSON Lines with every key (no columns).
    columns: Option<&'o Columns>,
}

/// One cell of a row: text borrowed from the record (a number as written), or a range of the row
/// writer's `cells_text`.
#[derive(Clone, Copy, Debug)]
enum Cell<'i> {
    Empty,
    Borrowed(&'i str),
    Owned(usize, usize),
}

/// What the row writer remembers about the key at one item position of the previous row.
#[derive(Debug, Default)]
struct Cached {
    /// The item's encoded key fields ([`Item::key_span`]); empty when it had none.
    span: Vec<u8>,
    /// The dotted key, for items without a key span.
    key: String,
    /// The key's column (`usize::MAX`: none).
    column: usize,
}

/// Writes rows; holds one row at a time.
struct RowWriter<'s, 'o, 'i> {
    shared: &'s Shared<'o>,
    /// The column of the key at each item position in the previous row.
    cache: Vec<Cached>,
    /// The current row's cells, by column (0 is `_step`).
    cells: Vec<Cell<'i>>,
    cells_text: String,
    scratch: String,
    /// JSON Lines rows without columns: key and value ranges of one row.
    entries: Vec<(usize, usize, usize, usize)>,
}

impl<'s, 'o, 'i> RowWriter<'s, 'o, 'i> {
    fn new(shared: &'s Shared<'o>) -> Self {
        let n_cells = shared.columns.map_or(0, |columns| columns.names.len() + 1);
        RowWriter {
            shared,
            cache: Vec::new(),
            cells: vec![Cell::Empty; n_cells],
            cells_text: String::new(),
            scratch: String::new(),
            entries: Vec::new(),
        }
    }

    /// The column of `item`'s key, if it has one.
    fn column(&mut self, columns: &Columns, position: usize, item: &Item<'_>) -> Option<usize> {
        // Rows usually have the previous row's keys in the same order: check that first, on the
        // encoded key when the item has one.
        let span = item.key_span();
        if let Some(cached) = self.cache.get(position) {
            let same = if span.is_empty() {
                cached.span.is_empty() && item.dotted_eq(&cached.key)
            } else {
                same_bytes(&cached.span, span)
            };
            if same {
                return (cached.column != usize::MAX).then_some(cached.column);
            }
        }
        let key = item.dotted(&mut self.scratch);
        let column = if key == "_step" {
            Some(0)
        } else {
            columns.index.get(key).copied()
        };
        let column_or_none = column.unwrap_or(usize::MAX);
        if self.cache.len() <= position {
            self.cache.resize_with(position + 1, Cached::default);
        }
        if let Some(slot) = self.cache.get_mut(position) {
            slot.span.clear();
            slot.span.extend_from_slice(span);
            slot.key.clear();
            if span.is_empty() {
                slot.key.push_str(item.dotted(&mut self.scratch));
            }
            slot.column = column_or_none;
        }
        column
    }

    /// The text of a cell.
    fn cell_text(&self, cell: Cell<'i>) -> Option<&str> {
        match cell {
            Cell::Empty => None,
            Cell::Borrowed(text) => Some(text),
            Cell::Owned(start, end) => Some(text(&self.cells_text, start, end)),
        }
    }

    fn row(&mut self, out: &mut String, body: &'i [u8]) -> WireResult<()> {
        let shared = self.shared;
        let Some(columns) = shared.columns else {
            return self.free_row(out, body);
        };
        let message = shared.message;
        self.cells.iter_mut().for_each(|cell| *cell = Cell::Empty);
        self.cells_text.clear();
        let csv = shared.options.format == TableFormat::Csv;
        let style = Style::json(shared.options.non_finite);
        let mut any = false;
        let mut position = 0;
        try_for_each_item(message, body, ITEM, RECURSION_LIMIT - 1, |item| {
            let column = self.column(columns, position, &item);
            position += 1;
            let Some(column) = column else {
                return;
            };
            any |= column != 0;
            let cell = match borrowed_cell(item.value, csv) {
                // Go writes times in seconds as `1.7953176790656261e+09`; spreadsheets and
                // people read `1795317679.0656261` better, and it parses to the same float.
                Some(text) if csv && text.contains('e') && columns.is_seconds(column) => {
                    let start = self.cells_text.len();
                    match text.parse::<f64>() {
                        Ok(seconds) if seconds.is_finite() => {
                            let _ = std::fmt::Write::write_fmt(
                                &mut self.cells_text,
                                format_args!("{seconds}"),
                            );
                        }
                        _ => self.cells_text.push_str(text),
                    }
                    Cell::Owned(start, self.cells_text.len())
                }
                Some(text) => Cell::Borrowed(text),
                None => {
                    let start = self.cells_text.len();
                    if csv {
                        csv_value(&mut self.cells_text, item.value);
                    } else {
                        item.value.write_json(&mut self.cells_text, style);
                    }
                    Cell::Owned(start, self.cells_text.len())
                }
            };
            if let Some(slot) = self.cells.get_mut(column) {
                *slot = cell;
            }
        })?;
        if !shared.options.keys.is_empty() && !any {
            return Ok(());
        }
        if matches!(self.cells.first(), Some(Cell::Empty))
            && let Some(step) = step_num(message, body)
        {
            let start = self.cells_text.len();
            push_i64(&mut self.cells_text, step);
            if let Some(cell) = self.cells.first_mut() {
                *cell = Cell::Owned(start, self.cells_text.len());
            }
        }
        if csv {
            for (column, &cell) in self.cells.iter().enumerate() {
                if column > 0 {
                    out.push(',');
                }
                if let Some(text) = self.cell_text(cell) {
                    out.push_str(text);
                }
            }
            out.push('\n');
            return Ok(());
        }
        out.push('{');
        let mut first = true;
        let names = std::iter::once("_step").chain(columns.names.iter().map(String::as_str));
        for (name, &cell) in names.zip(&self.cells) {
            let Some(value) = self.cell_text(cell) else {
                continue;
            };
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, name);
            out.push(':');
            out.push_str(value);
        }
        out.push_str("}\n");
        Ok(())
    }

    /// A JSON Lines row with every key: `_step` first, then the others in byte order.
    fn free_row(&mut self, out: &mut String, body: &[u8]) -> WireResult<()> {
        let style = Style::json(self.shared.options.non_finite);
        let message = self.shared.message;
        let values = &mut self.cells_text;
        let keys = &mut self.scratch;
        let entries = &mut self.entries;
        values.clear();
        keys.clear();
        entries.clear();
        let mut step = None;
        try_for_each_item(message, body, ITEM, RECURSION_LIMIT - 1, |item| {
            let key_start = keys.len();
            item.push_dotted(keys);
            let value_start = values.len();
            item.value.write_json(values, style);
            if keys.get(key_start..) == Some("_step") {
                keys.truncate(key_start);
                step.get_or_insert((value_start, values.len()));
                return;
            }
            entries.push((key_start, keys.len(), value_start, values.len()));
        })?;
        entries.sort_by(|a, b| text(keys, a.0, a.1).cmp(text(keys, b.0, b.1)));
        out.push('{');
        let mut first = true;
        if let Some((start, end)) = step {
            out.push_str("\"_step\":");
            out.push_str(text(values, start, end));
            first = false;
        } else if let Some(num) = step_num(message, body) {
            out.push_str("\"_step\":");
            push_i64(out, num);
            first = false;
        }
        for &(key_start, key_end, value_start, value_end) in entries.iter() {
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, text(keys, key_start, key_end));
            out.push(':');
            out.push_str(text(values, value_start, value_end));
        }
        out.push_str("}\n");
        Ok(())
    }
}

/// `HistoryRecord.step.num`, if the row has one (unknown fields skipped, as prost does).
pub(crate) fn step_num(message: &'static Message, body: &[u8]) -> Option<i64> {
    let step_field = message.field(2)?;
    let Type::Message(step_type) = step_field.ty else {
        return None;
    };
    let num_field = step_type.field(1)?;
    let mut reader = Cursor::new(body);
    let mut found = None;
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().ok()?;
        if number != 2 {
            reader
                .skip_known(message.field(number), number, wire_type, RECURSION_LIMIT)
                .ok()?;
            continue;
        }
        let WireValue::Message(step) = reader.field(step_field, wire_type, RECURSION_LIMIT).ok()?
        else {
            return None;
        };
        let mut inner = Cursor::new(step);
        while !inner.is_empty() {
            let (inner_number, inner_type) = inner.key().ok()?;
            if inner_number != 1 {
                inner
                    .skip_known(
                        step_type.field(inner_number),
                        inner_number,
                        inner_type,
                        RECURSION_LIMIT,
                    )
                    .ok()?;
                continue;
            }
            if let WireValue::Varint(num) =
                inner.field(num_field, inner_type, RECURSION_LIMIT).ok()?
            {
                found = Some(num as i64);
            }
        }
    }
    found
}

/// The text of `buffer[start..end]` (empty if out of range).
fn text(buffer: &str, start: usize, end: usize) -> &str {
    buffer.get(start..end).unwrap_or_default()
}

/// A value whose cell is its text in the record as it is: a JSON number (the common case), or
/// `true`/`false`.
#[inline]
fn borrowed_cell(value: ItemValue<'_>, csv: bool) -> Option<&str> {
    let ItemValue::Json(text) = value else {
        return None;
    };
    match classify(text)? {
        Simple::Number(number) => Some(number),
        Simple::Literal(literal @ ("true" | "false")) => Some(literal),
        Simple::Literal(literal) if !csv => Some(literal),
        _ => None,
    }
}

/// Appends an item's value as a CSV cell.
fn csv_value(out: &mut String, value: ItemValue<'_>) {
    match value {
        ItemValue::Json(text) => match classify(text) {
            Some(Simple::Number(number)) => out.push_str(number),
            Some(Simple::NonFinite(token)) => out.push_str(csv_non_finite(token)),
            Some(Simple::Literal("null")) => {}
            Some(Simple::Literal(literal)) => out.push_str(literal),
            Some(Simple::PlainString(inner)) => csv_field(out, inner),
            None => match json::parse(text) {
                Ok(value) => csv_json(out, &value),
                Err(_) => csv_field(out, text),
            },
        },
        ItemValue::Null => {}
        ItemValue::Bool(flag) => out.push_str(if flag { "true" } else { "false" }),
        ItemValue::Int(int) => push_i64(out, int),
        ItemValue::Float(float) => csv_float(out, float),
        ItemValue::Text(text) => csv_field(out, text),
    }
}

fn csv_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Float(float) => csv_float(out, *float),
        Value::String(text) => csv_field(out, text),
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) => {
            write_value(out, value, Style::json(NonFinite::Bare));
        }
        Value::Array(_) | Value::Object(_) => {
            let mut text = String::new();
            write_value(&mut text, value, Style::json(NonFinite::Bare));
            csv_field(out, &text);
        }
    }
}

fn csv_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "inf" } else { "-inf" });
    } else {
        write_f64(out, value, NonFinite::Bare);
    }
}

fn csv_non_finite(token: &str) -> &'static str {
    match token {
        "Infinity" => "inf",
        "-Infinity" => "-inf",
        _ => "NaN",
    }
}

/// Appends a CSV field, quoted when RFC 4180 (or keeping spaces and empty strings) needs it.
fn csv_field(out: &mut String, text: &str) {
    let needs_quotes = text.is_empty()
        || text.starts_with(' ')
        || text.ends_with(' ')
        || text.contains([',', '"', '\n', '\r']);
    if !needs_quotes {
        out.push_str(text);
        return;
    }
    out.push('"');
    for (index, part) in text.split('"').enumerate() {
        if index > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_what_pandas_reads() {
        let cell = |text: &str| {
            let mut out = String::new();
            csv_value(&mut out, ItemValue::Json(text));
            out
        };
        assert_eq!(cell("0.5"), "0.5");
        assert_eq!(cell("NaN"), "NaN");
        assert_eq!(cell("Infinity"), "inf");
        assert_eq!(cell("-Infinity"), "-inf");
        assert_eq!(cell("null"), "");
        assert_eq!(cell("true"), "true");
        assert_eq!(cell(r#""a,b""#), r#""a,b""#);
        assert_eq!(cell(r#""say \"hi\"""#), r#""say ""hi""""#);
        assert_eq!(cell(r#""""#), r#""""#);
        assert_eq!(cell("[1, NaN]"), r#""[1,NaN]""#);
        assert_eq!(cell(r#"{"a": 1}"#), r#""{""a"":1}""#);
    }
}
