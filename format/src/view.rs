//! Zero-copy views of the records read most: history, summary and config items.
//!
//! `prost` decodes into owned `String`s and `Vec`s, about 40 allocations for a typical history row.
//! Tools that stream millions of rows (inspect, sync) only need to look at keys and `value_json`
//! strings, so these views parse the protobuf wire format in place and borrow from the payload. They
//! read records as writers produce them exactly as [`crate::proto::Record`] does (unknown fields are
//! skipped, the last occurrence of a singular field wins; a message field repeated on the wire, which
//! protobuf would merge, is taken from its last occurrence) and a test checks them against `prost` on
//! every SDK fixture.

use std::fmt;

/// Why a payload could not be viewed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf: {0}")]
pub struct ViewError(&'static str);

type ViewResult<T> = Result<T, ViewError>;

/// Reads protobuf fields from a byte slice.
#[derive(Clone, Debug)]
struct Fields<'a> {
    rest: &'a [u8],
}

/// One field's value on the wire.
#[derive(Clone, Copy, Debug)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes }
    }

    fn varint(&mut self) -> ViewResult<u64> {
        // Tags and short lengths fit in one byte: the common case.
        match self.rest {
            [byte, tail @ ..] if *byte < 0x80 => {
                self.rest = tail;
                return Ok(u64::from(*byte));
            }
            // Two bytes: field numbers 16 to 2047 (`value_json` is 16) and lengths up to 16383.
            [low, high, tail @ ..] if *high < 0x80 => {
                self.rest = tail;
                return Ok(u64::from(low & 0x7F) | u64::from(*high) << 7);
            }
            _ => {}
        }
        let mut value = 0u64;
        for (idx, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7F) << (7 * idx);
            if byte < 0x80 {
                self.rest = &self.rest[idx + 1..];
                return Ok(value);
            }
        }
        Err(ViewError("bad varint"))
    }

    fn take(&mut self, n: usize) -> ViewResult<&'a [u8]> {
        if n > self.rest.len() {
            return Err(ViewError("field runs past the end of its message"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Skips a (deprecated) group up to its end tag, as protobuf decoders do for unknown fields.
    fn skip_group(&mut self, number: u64) -> ViewResult<()> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            if open.len() > 100 {
                return Err(ViewError("groups nested too deeply"));
            }
            let key = self.varint()?;
            let inner = key >> 3;
            match key & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?)
                        .map_err(|_| ViewError("length too large"))?;
                    self.take(len)?;
                }
                3 => open.push(inner),
                4 if inner == innermost => {
                    open.pop();
                }
                5 => {
                    self.take(4)?;
                }
                _ => return Err(ViewError("mismatched end of group")),
            }
        }
        Ok(())
    }

    /// The next (field number, value), or `None` at the end.
    fn next_field(&mut self) -> ViewResult<Option<(u64, Wire<'a>)>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(ViewError("field number 0"));
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let bytes = self.take(8)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                Wire::Fixed64(u64::from_le_bytes(raw))
            }
            2 => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| ViewError("length too large"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            3 => {
                self.skip_group(number)?;
                Wire::Fixed32
            }
            _ => return Err(ViewError("unexpected end of group")),
        };
        Ok(Some((number, wire)))
    }
}

fn utf8(bytes: &[u8]) -> ViewResult<&str> {
    std::str::from_utf8(bytes).map_err(|_| ViewError("string is not UTF-8"))
}

fn expect_bytes(wire: Wire<'_>) -> ViewResult<&[u8]> {
    match wire {
        Wire::Bytes(bytes) => Ok(bytes),
        _ => Err(ViewError("wrong wire type for a message or string field")),
    }
}

fn expect_varint(wire: Wire<'_>) -> ViewResult<u64> {
    match wire {
        Wire::Varint(value) => Ok(value),
        _ => Err(ViewError("wrong wire type for an integer field")),
    }
}

/// The top level of a `Record`: its number and which record type it holds.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// The record's `num`.
    pub num: i64,
    /// The field number of the record type (2 history, 3 summary, 5 config, ...), 0 when none.
    pub field: u32,
    body: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Views an encoded `Record`.
    pub fn parse(payload: &'a [u8]) -> ViewResult<Self> {
        let mut view = RecordView {
            num: 0,
            field: 0,
            body: &[],
        };
        let mut fields = Fields::new(payload);
        while let Some((number, wire)) = fields.next_field()? {
            match number {
                1 => view.num = expect_varint(wire)? as i64,
                // The `record_type` oneof: fields 2-13, 17, 18, 20-27. (100, a request, is never
                // written to files and is skipped like any unknown field, as prost does.)
                2..=13 | 17 | 18 | 20..=27 => {
                    view.field = number as u32;
                    view.body = expect_bytes(wire)?;
                }
                _ => {}
            }
        }
        Ok(view)
    }

    /// The record type's name as in W&B's proto (`history`, `summary`, ...), as
    /// [`crate::proto::Record::type_name`] gives it.
    pub fn type_name(&self) -> &'static str {
        match self.field {
            2 => "history",
            3 => "summary",
            4 => "output",
            5 => "config",
            6 => "files",
            7 => "stats",
            8 => "artifact",
            9 => "tbrecord",
            10 => "alert",
            11 => "telemetry",
            12 => "metric",
            13 => "output_raw",
            17 => "run",
            18 => "exit",
            20 => "final",
            21 => "header",
            22 => "footer",
            23 => "preempting",
            24 => "noop_link_artifact",
            25 => "use_artifact",
            26 => "environment",
            27 => "output_logger",
            _ => crate::proto::UNKNOWN_RECORD_TYPE,
        }
    }

    /// The history record, if this is one.
    pub fn history(&self) -> Option<HistoryView<'a>> {
        (self.field == 2).then_some(HistoryView { body: self.body })
    }

    /// The items of a summary (`updates` / `removes`) or config record, if this is one.
    pub fn updates(&self) -> Option<UpdatesView<'a>> {
        matches!(self.field, 3 | 5).then_some(UpdatesView { body: self.body })
    }

    /// The encoded body of the record type's message.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// A `HistoryRecord`.
#[derive(Clone, Copy, Debug)]
pub struct HistoryView<'a> {
    body: &'a [u8],
}

impl<'a> HistoryView<'a> {
    /// `step.num` (0 when absent, as in proto3).
    pub fn step(&self) -> ViewResult<i64> {
        let mut step = 0;
        let mut fields = Fields::new(self.body);
        while let Some((number, wire)) = fields.next_field()? {
            if number == 2 {
                step = 0;
                let mut inner = Fields::new(expect_bytes(wire)?);
                while let Some((number, wire)) = inner.next_field()? {
                    if number == 1 {
                        step = expect_varint(wire)? as i64;
                    }
                }
            }
        }
        Ok(step)
    }

    /// The row's items, in file order.
    pub fn items(&self) -> Items<'a> {
        Items {
            fields: Fields::new(self.body),
            wanted: 1,
        }
    }
}

/// A `SummaryRecord` or `ConfigRecord`: field 1 holds updates, field 2 removals.
#[derive(Clone, Copy, Debug)]
pub struct UpdatesView<'a> {
    body: &'a [u8],
}

impl<'a> UpdatesView<'a> {
    /// The `update` items.
    pub fn updates(&self) -> Items<'a> {
        Items {
            fields: Fields::new(self.body),
            wanted: 1,
        }
    }

    /// The `remove` items.
    pub fn removes(&self) -> Items<'a> {
        Items {
            fields: Fields::new(self.body),
            wanted: 2,
        }
    }
}

/// Iterator over the items in field `wanted` of a message.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    fields: Fields<'a>,
    wanted: u64,
}

impl<'a> Iterator for Items<'a> {
    type Item = ViewResult<ItemView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.fields.next_field() {
                Err(error) => {
                    self.fields.rest = &[];
                    return Some(Err(error));
                }
                Ok(None) => return None,
                Ok(Some((number, wire))) if number == self.wanted => {
                    return Some(expect_bytes(wire).and_then(ItemView::parse));
                }
                Ok(Some(_)) => {}
            }
        }
    }
}

/// A typed history value (the `HistoryItem.value` oneof, written only when the SDK's
/// `x_history_value_encoding` setting asks for it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TypedValue<'a> {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Number(f64),
    /// A string.
    Text(&'a str),
    /// JSON text.
    Json(&'a str),
}

/// A `HistoryItem`, `SummaryItem` or `ConfigItem`: a key (or key path) and a value.
#[derive(Clone, Copy)]
pub struct ItemView<'a> {
    /// The `key` field ("" when the item uses `nested_key`).
    pub key: &'a str,
    /// The `value_json` field.
    pub value_json: &'a str,
    /// The typed value, if the item has one.
    pub typed: Option<TypedValue<'a>>,
    body: &'a [u8],
    first_nested: &'a str,
    n_nested: usize,
}

impl<'a> ItemView<'a> {
    fn parse(body: &'a [u8]) -> ViewResult<Self> {
        let mut item = ItemView {
            key: "",
            value_json: "",
            typed: None,
            body,
            first_nested: "",
            n_nested: 0,
        };
        let mut fields = Fields::new(body);
        while let Some((number, wire)) = fields.next_field()? {
            match number {
                1 => item.key = utf8(expect_bytes(wire)?)?,
                2 => {
                    let part = utf8(expect_bytes(wire)?)?;
                    if item.n_nested == 0 {
                        item.first_nested = part;
                    }
                    item.n_nested += 1;
                }
                3 => {
                    expect_varint(wire)?;
                    item.typed = Some(TypedValue::Null);
                }
                4 => item.typed = Some(TypedValue::Bool(expect_varint(wire)? != 0)),
                5 => {
                    let raw = expect_varint(wire)?;
                    // sint64: zigzag encoding.
                    item.typed = Some(TypedValue::Int((raw >> 1) as i64 ^ -((raw & 1) as i64)));
                }
                6 => match wire {
                    Wire::Fixed64(bits) => {
                        item.typed = Some(TypedValue::Number(f64::from_bits(bits)))
                    }
                    _ => return Err(ViewError("wrong wire type for a double field")),
                },
                7 => item.typed = Some(TypedValue::Text(utf8(expect_bytes(wire)?)?)),
                8 => item.typed = Some(TypedValue::Json(utf8(expect_bytes(wire)?)?)),
                16 => item.value_json = utf8(expect_bytes(wire)?)?,
                _ => {}
            }
        }
        Ok(item)
    }

    /// The key path: the `nested_key` parts, or the `key` alone when there are none.
    pub fn path(&self) -> KeyPath<'a> {
        let single = match self.n_nested {
            0 => Some(self.key),
            1 => Some(self.first_nested),
            _ => None,
        };
        KeyPath {
            fields: Fields::new(self.body),
            single,
            remaining: self.n_nested.max(1),
        }
    }

    /// Number of parts in [`ItemView::path`].
    pub fn path_len(&self) -> usize {
        self.n_nested.max(1)
    }
}

impl fmt::Debug for ItemView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemView")
            .field("path", &self.path().collect::<Vec<_>>())
            .field("value_json", &self.value_json)
            .field("typed", &self.typed)
            .finish()
    }
}

/// Iterator over the parts of an item's key path.
#[derive(Clone, Debug)]
pub struct KeyPath<'a> {
    fields: Fields<'a>,
    single: Option<&'a str>,
    remaining: usize,
}

impl<'a> Iterator for KeyPath<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if let Some(key) = self.single.take() {
            self.remaining = 0;
            return Some(key);
        }
        while self.remaining > 0 {
            // The item was fully validated when it was parsed, so errors cannot happen here.
            let Ok(Some((number, wire))) = self.fields.next_field() else {
                self.remaining = 0;
                return None;
            };
            if number == 2 {
                self.remaining -= 1;
                if let Wire::Bytes(bytes) = wire {
                    return std::str::from_utf8(bytes).ok();
                }
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
