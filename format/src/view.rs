//! Zero-copy views of the records read most: history, summary and config items.
//!
//! `prost` decodes into owned `String`s and `Vec`s, about 40 allocations for a typical history row.
//! Tools that stream millions of rows only need to look at keys and `value_json` strings, so these
//! views read the protobuf wire format in place with [`crate::wire::Cursor`] and borrow from the
//! payload.
//!
//! They read exactly what [`crate::proto::Record`] decodes, with prost's rules: the last occurrence
//! of a singular field wins, a message field repeated on the wire is merged (a record-type field
//! repeated back to back reads as one message with the items of all), unknown fields are skipped,
//! and each known field is checked for its wire type, UTF-8 and nesting depth. A view checks what
//! it reads, lazily: [`RecordView::parse`] checks the record's own fields (and an empty
//! `noop_link_artifact`, and any record-type message of a viewed type that a later one replaces),
//! and walking
//! [`HistoryView::items`] or both [`UpdatesView::updates`] and [`UpdatesView::removes`] to the end
//! checks the whole record-type message. So, for records of the viewed types, a payload prost
//! rejects makes `parse` or one of those walks fail, and a payload prost accepts reads the same
//! values; `wandb_format::fuzzing::wire_parity` checks both directions.

use std::fmt;

use crate::wire::{Cursor, RECURSION_LIMIT, WireError, WireType, zigzag};

/// Why a payload could not be viewed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf: {0}")]
pub struct ViewError(WireError);

impl ViewError {
    /// What is wrong with the bytes.
    pub fn wire_error(&self) -> WireError {
        self.0
    }
}

impl From<WireError> for ViewError {
    fn from(error: WireError) -> Self {
        ViewError(error)
    }
}

type ViewResult<T> = Result<T, ViewError>;

/// `Record.num`.
const NUM: u32 = 1;
/// `Record.control`.
const CONTROL: u32 = 16;
/// `Record.uuid`.
const UUID: u32 = 19;
/// `_info` in `Record` and in the viewed record types.
const INFO: u32 = 200;
/// `Record.history`, `summary`, `config` and `noop_link_artifact`.
const HISTORY: u32 = 2;
const SUMMARY: u32 = 3;
const CONFIG: u32 = 5;
const NOOP_LINK_ARTIFACT: u32 = 24;

/// The top level of a `Record`: its number and which record type it holds.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// The record's `num`.
    pub num: i64,
    /// The field number of the record type (2 history, 3 summary, 5 config, ...), 0 when none.
    pub field: u32,
    body: Body<'a>,
}

/// The bytes of a record-type message: one occurrence, or several back to back that prost merges.
#[derive(Clone, Copy, Debug, Default)]
struct Body<'a> {
    /// The first occurrence's bytes.
    first: &'a [u8],
    /// When the field occurs again: the record's bytes after the first occurrence (they hold the
    /// other occurrences, and other `Record` fields that were already checked).
    more: &'a [u8],
    /// The record-type field number.
    field: u32,
    /// The depth the message's fields are read with.
    depth: u32,
}

impl<'a> RecordView<'a> {
    /// Views an encoded `Record`.
    pub fn parse(payload: &'a [u8]) -> ViewResult<Self> {
        let depth = RECURSION_LIMIT;
        let mut view = RecordView {
            num: 0,
            field: 0,
            body: Body::default(),
        };
        // Where the first occurrence of the current record-type field ends.
        let mut first_end = 0;
        let mut cursor = Cursor::new(payload);
        loop {
            let key_start = cursor.pos();
            let Some((number, wire_type)) = cursor.next_key()? else {
                break;
            };
            match number {
                NUM => view.num = cursor.varint_field(wire_type)? as i64,
                CONTROL => {
                    let (bytes, inner) = cursor.message(wire_type, depth)?;
                    check_control(bytes, inner)?;
                }
                UUID => {
                    cursor.string(wire_type)?;
                }
                INFO => {
                    let (bytes, inner) = cursor.message(wire_type, depth)?;
                    check_info(bytes, inner)?;
                }
                // The `record_type` oneof: fields 2-13, 17, 18, 20-27. (100, a request, is never
                // written to files and is skipped like any unknown field, as prost does.)
                2..=13 | 17 | 18 | 20..=27 => {
                    let (bytes, inner) = cursor.message(wire_type, depth)?;
                    if number == NOOP_LINK_ARTIFACT {
                        // `google.protobuf.Empty`: every field is unknown.
                        let mut empty = Cursor::new(bytes);
                        while empty.next_field(inner)?.is_some() {}
                    }
                    if number == view.field {
                        // prost merges a repeated oneof message into the one it holds.
                        if view.body.more.is_empty() {
                            view.body.more = cursor.rest_from(first_end);
                        }
                    } else {
                        // prost decoded the one this replaces, so it must be valid too.
                        if !view.body.more.is_empty() {
                            view.body.more = payload.get(first_end..key_start).unwrap_or_default();
                        }
                        view.body.check()?;
                        view.field = number;
                        view.body = Body {
                            first: bytes,
                            more: &[],
                            field: number,
                            depth: inner,
                        };
                        first_end = cursor.pos();
                    }
                }
                _ => cursor.skip(wire_type, number, depth)?,
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
        (self.field == HISTORY).then_some(HistoryView { body: self.body })
    }

    /// The items of a summary (`updates` / `removes`) or config record, if this is one.
    pub fn updates(&self) -> Option<UpdatesView<'a>> {
        matches!(self.field, SUMMARY | CONFIG).then_some(UpdatesView { body: self.body })
    }

    /// The encoded body of the record type's message (its first occurrence, when the record
    /// repeats the field and prost merges them).
    pub fn body(&self) -> &'a [u8] {
        self.body.first
    }
}

impl<'a> Body<'a> {
    /// The occurrences' bytes, in order.
    fn parts(&self) -> Parts<'a> {
        Parts {
            first: Some(self.first),
            more: Cursor::new(self.more),
            field: self.field,
        }
    }

    /// Walks the message when it is in the layout writers give it: one occurrence, and only
    /// item fields (1 and 2, one-byte keys, lengths under 16384) whose items
    /// [`ItemView::parse_common`] reads; field 2 of a history record is its step, checked as
    /// [`HistoryView::step`] checks it. Calls `f` with each item and its field number, and
    /// returns `false` as soon as anything else is met (after calling `f` for the items before
    /// it): the caller then reads the message with [`Items`], which accepts and rejects exactly
    /// what prost does. For a message it walks to the end it yields the items [`Items`] yields.
    #[inline]
    fn walk_common(&self, history: bool, mut f: impl FnMut(u32, ItemView<'a>)) -> bool {
        if !self.more.is_empty() || self.depth < 2 {
            return false;
        }
        let mut rest = self.first;
        while let [key, tail @ ..] = rest {
            let field = match key {
                0x0a => 1,
                0x12 => 2,
                _ => return false,
            };
            let (len, tail) = match *tail {
                [low, ref tail @ ..] if low < 0x80 => (usize::from(low), tail),
                [low, high, ref tail @ ..] if high < 0x80 => {
                    (usize::from(low & 0x7f) | usize::from(high) << 7, tail)
                }
                _ => return false,
            };
            let Some(bytes) = tail.get(..len) else {
                return false;
            };
            rest = &tail[len..];
            if history && field == 2 {
                if read_step(bytes, self.depth - 1, &mut 0).is_err() {
                    return false;
                }
                continue;
            }
            let Some(item) = ItemView::parse_common(bytes) else {
                return false;
            };
            f(field, item);
        }
        true
    }

    /// Checks the whole message, where the views know its schema (`noop_link_artifact`, empty, is
    /// checked as it is read).
    fn check(&self) -> ViewResult<()> {
        match self.field {
            HISTORY => HistoryView { body: *self }
                .items()
                .try_for_each(|item| item.map(drop)),
            SUMMARY | CONFIG => {
                let view = UpdatesView { body: *self };
                view.updates()
                    .chain(view.removes())
                    .try_for_each(|item| item.map(drop))
            }
            _ => Ok(()),
        }
    }
}

/// Iterates the occurrences of a record-type message.
#[derive(Clone, Debug)]
struct Parts<'a> {
    first: Option<&'a [u8]>,
    more: Cursor<'a>,
    field: u32,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        // The record's fields were checked by `RecordView::parse`, so these reads succeed.
        while let Ok(Some((number, wire_type))) = self.more.next_key() {
            if number == self.field {
                return self.more.len_delimited().ok();
            }
            self.more.skip(wire_type, number, RECURSION_LIMIT).ok()?;
        }
        None
    }
}

/// Checks a `Control` message.
fn check_control(bytes: &[u8], depth: u32) -> ViewResult<()> {
    let mut cursor = Cursor::new(bytes);
    while let Some((number, wire_type)) = cursor.next_key()? {
        match number {
            // req_resp, local, flow_control (bool); end_offset (int64).
            1 | 2 | 6 | 7 => {
                cursor.varint_field(wire_type)?;
            }
            // relay_id, mailbox_slot, connection_id.
            3 | 4 | 8 => {
                cursor.string(wire_type)?;
            }
            _ => cursor.skip(wire_type, number, depth)?,
        }
    }
    Ok(())
}

/// Checks a `_RecordInfo` message.
fn check_info(bytes: &[u8], depth: u32) -> ViewResult<()> {
    let mut cursor = Cursor::new(bytes);
    while let Some((number, wire_type)) = cursor.next_key()? {
        match number {
            // stream_id, _tracelog_id.
            1 | 100 => {
                cursor.string(wire_type)?;
            }
            _ => cursor.skip(wire_type, number, depth)?,
        }
    }
    Ok(())
}

/// Reads a `HistoryStep`, updating `step` as prost merges it.
fn read_step(bytes: &[u8], depth: u32, step: &mut i64) -> ViewResult<()> {
    let mut cursor = Cursor::new(bytes);
    while let Some((number, wire_type)) = cursor.next_key()? {
        match number {
            1 => *step = cursor.varint_field(wire_type)? as i64,
            _ => cursor.skip(wire_type, number, depth)?,
        }
    }
    Ok(())
}

/// A `HistoryRecord`.
#[derive(Clone, Copy, Debug)]
pub struct HistoryView<'a> {
    body: Body<'a>,
}

impl<'a> HistoryView<'a> {
    /// Views an encoded `HistoryRecord` read at `depth`.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn new(bytes: &'a [u8], depth: u32) -> Self {
        HistoryView {
            body: Body {
                first: bytes,
                more: &[],
                field: HISTORY,
                depth,
            },
        }
    }

    /// `step.num` (0 when absent, as in proto3). This checks the `step` field only; the items are
    /// checked by [`HistoryView::items`].
    pub fn step(&self) -> ViewResult<i64> {
        let mut step = 0;
        let depth = self.body.depth;
        for part in self.body.parts() {
            let mut cursor = Cursor::new(part);
            while let Some((number, wire_type)) = cursor.next_key()? {
                if number == 2 {
                    let (bytes, inner) = cursor.message(wire_type, depth)?;
                    read_step(bytes, inner, &mut step)?;
                } else {
                    cursor.skip(wire_type, number, depth)?;
                }
            }
        }
        Ok(step)
    }

    /// The row's items, in file order; walked to the end, this checks the whole record.
    pub fn items(&self) -> Items<'a> {
        Items::new(self.body, ItemKind::History, 1)
    }

    /// The row's items through `f` when the record is in the layout every writer uses (see
    /// [`UpdatesView::walk_common`]); `false` when it is not, after `f` saw some items or none:
    /// then read it with [`HistoryView::items`].
    #[inline]
    pub fn walk_common(&self, mut f: impl FnMut(ItemView<'a>)) -> bool {
        self.body.walk_common(true, |_, item| f(item))
    }
}

/// A `SummaryRecord` or `ConfigRecord`: field 1 holds updates, field 2 removals.
#[derive(Clone, Copy, Debug)]
pub struct UpdatesView<'a> {
    body: Body<'a>,
}

impl<'a> UpdatesView<'a> {
    /// Views an encoded `SummaryRecord` or `ConfigRecord` read at `depth`.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn new(bytes: &'a [u8], depth: u32) -> Self {
        UpdatesView {
            body: Body {
                first: bytes,
                more: &[],
                field: SUMMARY,
                depth,
            },
        }
    }

    /// The `update` items; walked to the end, this checks the whole record.
    pub fn updates(&self) -> Items<'a> {
        Items::new(self.body, ItemKind::Plain, 1)
    }

    /// The `remove` items; walked to the end, this checks the whole record.
    pub fn removes(&self) -> Items<'a> {
        Items::new(self.body, ItemKind::Plain, 2)
    }

    /// The `update` and `remove` items in one pass, in file order; walked to the end, this checks
    /// the whole record.
    pub fn changes(&self) -> Changes<'a> {
        Changes {
            items: Items::new(self.body, ItemKind::Plain, BOTH),
        }
    }

    /// [`UpdatesView::changes`] through `f`, when the record is in the layout every writer uses:
    /// one occurrence of the record, only `update` and `remove` fields with one-byte keys and
    /// lengths under 16384, and items with a `key` or `nested_key` parts and a `value_json`, each
    /// with a one-byte length and UTF-8 text. Returns `false` as soon as anything else is met,
    /// after `f` saw the items before it: then read the record with [`UpdatesView::changes`],
    /// which also words any error. For a record it walks to the end, `f` sees what
    /// [`UpdatesView::changes`] yields.
    #[inline]
    pub fn walk_common(&self, mut f: impl FnMut(Change, ItemView<'a>)) -> bool {
        self.body.walk_common(false, |field, item| {
            f(
                if field == 1 {
                    Change::Update
                } else {
                    Change::Remove
                },
                item,
            )
        })
    }
}

/// `Items::wanted` for both items fields of a summary or config record.
const BOTH: u32 = 0;

/// Whether an item of [`UpdatesView::changes`] sets or removes its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// An `update` item.
    Update,
    /// A `remove` item.
    Remove,
}

/// Iterator over the items of a summary or config record, updates and removals alike.
#[derive(Clone, Debug)]
pub struct Changes<'a> {
    items: Items<'a>,
}

impl<'a> Iterator for Changes<'a> {
    type Item = ViewResult<(Change, ItemView<'a>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.items.next_field().map(|found| {
            found.map(|(number, item)| {
                let change = if number == 1 {
                    Change::Update
                } else {
                    Change::Remove
                };
                (change, item)
            })
        })
    }
}

/// Which item message a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemKind {
    /// `HistoryItem`: fields 3-8 are the typed `value` oneof.
    History,
    /// `SummaryItem` or `ConfigItem`: key, nested key and `value_json` only.
    Plain,
}

/// Iterator over the items in field `wanted` of a message, checking every other field on the way.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    cursor: Cursor<'a>,
    parts: Parts<'a>,
    kind: ItemKind,
    wanted: u32,
    depth: u32,
}

impl<'a> Items<'a> {
    fn new(body: Body<'a>, kind: ItemKind, wanted: u32) -> Self {
        let mut parts = body.parts();
        let first = parts.next().unwrap_or_default();
        Items {
            cursor: Cursor::new(first),
            parts,
            kind,
            wanted,
            depth: body.depth,
        }
    }

    /// The next wanted item and its field number; other fields are checked and skipped.
    #[inline]
    fn next_item(&mut self) -> ViewResult<Option<(u32, ItemView<'a>)>> {
        let depth = self.depth;
        loop {
            let Some((number, wire_type)) = self.cursor.next_key()? else {
                match self.parts.next() {
                    Some(part) => {
                        self.cursor = Cursor::new(part);
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            match number {
                _ if number == self.wanted || (self.wanted == BOTH && matches!(number, 1 | 2)) => {
                    let (bytes, inner) = self.cursor.message(wire_type, depth)?;
                    return Ok(Some((number, ItemView::parse(bytes, self.kind, inner)?)));
                }
                // The other items field: a summary's or config's removals or updates.
                1 | 2 if self.kind == ItemKind::Plain => {
                    let (bytes, inner) = self.cursor.message(wire_type, depth)?;
                    ItemView::parse(bytes, self.kind, inner)?;
                }
                // A history record's step.
                2 => {
                    let (bytes, inner) = self.cursor.message(wire_type, depth)?;
                    read_step(bytes, inner, &mut 0)?;
                }
                INFO => {
                    let (bytes, inner) = self.cursor.message(wire_type, depth)?;
                    check_info(bytes, inner)?;
                }
                _ => self.cursor.skip(wire_type, number, depth)?,
            }
        }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = ViewResult<ItemView<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_field().map(|found| found.map(|(_, item)| item))
    }
}

impl<'a> Items<'a> {
    /// [`Iterator::next`], with the item's field number.
    #[inline]
    fn next_field(&mut self) -> Option<ViewResult<(u32, ItemView<'a>)>> {
        match self.next_item() {
            Ok(item) => item.map(Ok),
            Err(error) => {
                self.cursor = Cursor::new(&[]);
                self.parts = Parts {
                    first: None,
                    more: Cursor::new(&[]),
                    field: 0,
                };
                Some(Err(error))
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
    #[inline]
    pub(crate) fn parse(body: &'a [u8], kind: ItemKind, depth: u32) -> ViewResult<Self> {
        if let Some(item) = Self::parse_common(body) {
            return Ok(item);
        }
        Self::parse_general(body, kind, depth)
    }

    /// An item of `body` with no fields read yet.
    #[inline(always)]
    fn empty(body: &'a [u8]) -> Self {
        ItemView {
            key: "",
            value_json: "",
            typed: None,
            body,
            first_nested: "",
            n_nested: 0,
        }
    }

    /// The layout the SDK and this project's writer give every item: `key` (field 1) or
    /// `nested_key` parts (2), and `value_json` (16), each with a one-byte length. `None` for
    /// anything else (other fields, longer strings, text that is not UTF-8, damage), which
    /// [`Self::parse_general`] reads; for the bytes it accepts it reads the same item.
    #[inline(always)]
    pub(crate) fn parse_common(body: &'a [u8]) -> Option<Self> {
        let mut item = ItemView::empty(body);
        let mut rest = body;
        loop {
            let (tag_len, field) = match rest {
                [] => return Some(item),
                [0x0a, ..] => (1, 1),
                [0x12, ..] => (1, 2),
                [0x82, 0x01, ..] => (2, 16),
                _ => return None,
            };
            let len = usize::from(*rest.get(tag_len).filter(|&&b| b < 0x80)?);
            let text = rest.get(tag_len + 1..tag_len + 1 + len)?;
            let text = crate::wire::utf8(text).ok()?;
            rest = &rest[tag_len + 1 + len..];
            match field {
                1 => item.key = text,
                2 => {
                    if item.n_nested == 0 {
                        item.first_nested = text;
                    }
                    item.n_nested += 1;
                }
                _ => item.value_json = text,
            }
        }
    }

    /// Any item, field by field.
    fn parse_general(body: &'a [u8], kind: ItemKind, depth: u32) -> ViewResult<Self> {
        let mut item = ItemView::empty(body);
        let mut cursor = Cursor::new(body);
        while let Some((number, wire_type)) = cursor.next_key()? {
            match number {
                1 => item.key = cursor.string(wire_type)?,
                2 => {
                    let part = cursor.string(wire_type)?;
                    if item.n_nested == 0 {
                        item.first_nested = part;
                    }
                    item.n_nested += 1;
                }
                16 => item.value_json = cursor.string(wire_type)?,
                3..=8 if kind == ItemKind::History => {
                    item.typed = Some(typed(&mut cursor, number, wire_type)?)
                }
                _ => cursor.skip(wire_type, number, depth)?,
            }
        }
        Ok(item)
    }

    /// The key path: the `nested_key` parts, or the `key` alone when there are none.
    pub fn path(&self) -> KeyPath<'a> {
        let single = self.only_part();
        KeyPath {
            cursor: Cursor::new(self.body),
            single,
            remaining: self.n_nested.max(1),
        }
    }

    /// The item's encoded bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.body
    }

    /// The `nested_key` parts of the item encoded in `bytes` (an [`ItemView::bytes`]).
    pub fn nested_parts(bytes: &'a [u8]) -> KeyPath<'a> {
        KeyPath {
            cursor: Cursor::new(bytes),
            single: None,
            remaining: usize::MAX,
        }
    }

    /// Number of parts in [`ItemView::path`].
    pub fn path_len(&self) -> usize {
        self.n_nested.max(1)
    }

    /// Number of `nested_key` parts (0 when the item uses `key`).
    pub fn nested_len(&self) -> usize {
        self.n_nested
    }

    /// The path's only part (the key, or the one `nested_key` part), if it has one part.
    #[inline]
    pub fn only_part(&self) -> Option<&'a str> {
        match self.n_nested {
            0 => Some(self.key),
            1 => Some(self.first_nested),
            _ => None,
        }
    }
}

/// Reads one field of the `HistoryItem.value` oneof.
#[inline]
fn typed<'a>(
    cursor: &mut Cursor<'a>,
    number: u32,
    wire_type: WireType,
) -> ViewResult<TypedValue<'a>> {
    Ok(match number {
        // `google.protobuf.NullValue`, an enum.
        3 => {
            cursor.varint_field(wire_type)?;
            TypedValue::Null
        }
        4 => TypedValue::Bool(cursor.varint_field(wire_type)? != 0),
        // sint64.
        5 => TypedValue::Int(zigzag(cursor.varint_field(wire_type)?)),
        6 => {
            Cursor::expect(wire_type, WireType::Fixed64)?;
            TypedValue::Number(f64::from_bits(cursor.fixed64()?))
        }
        7 => TypedValue::Text(cursor.string(wire_type)?),
        _ => TypedValue::Json(cursor.string(wire_type)?),
    })
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
    cursor: Cursor<'a>,
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
            // The item was checked when it was parsed, so these reads succeed.
            let Ok(Some((number, wire_type))) = self.cursor.next_key() else {
                self.remaining = 0;
                return None;
            };
            if number == 2 {
                self.remaining -= 1;
                return self.cursor.string(wire_type).ok();
            }
            if self
                .cursor
                .skip(wire_type, number, RECURSION_LIMIT)
                .is_err()
            {
                self.remaining = 0;
                return None;
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.remaining == usize::MAX {
            // [`ItemView::nested_parts`]: as many as the bytes hold.
            return (0, None);
        }
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::proto::{self, record::RecordType};

    fn varint(n: u64, out: &mut Vec<u8>) {
        prost::encoding::encode_varint(n, out);
    }

    fn field(number: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(number << 3 | 2), &mut out);
        varint(data.len() as u64, &mut out);
        out.extend_from_slice(data);
        out
    }

    fn item(key: &str, value_json: &str) -> Vec<u8> {
        [field(1, key.as_bytes()), field(16, value_json.as_bytes())].concat()
    }

    fn keys(items: Items<'_>) -> ViewResult<Vec<String>> {
        items
            .map(|item| item.map(|item| item.key.to_owned()))
            .collect()
    }

    #[test]
    fn a_repeated_history_field_reads_merged_as_prost_merges_it() {
        let step = [0x08, 0x03];
        let payload = [
            field(2, &[field(1, &item("a", "1")), field(2, &step)].concat()),
            field(19, b"u"),
            field(2, &field(1, &item("b", "2"))),
        ]
        .concat();
        let view = RecordView::parse(&payload).unwrap();
        let history = view.history().unwrap();
        assert_eq!(keys(history.items()).unwrap(), ["a", "b"]);
        assert_eq!(history.step().unwrap(), 3);
        let Some(RecordType::History(decoded)) =
            proto::Record::decode(&payload[..]).unwrap().record_type
        else {
            panic!("not a history record")
        };
        let prost_keys: Vec<_> = decoded.item.iter().map(|i| i.key.clone()).collect();
        assert_eq!(prost_keys, ["a", "b"]);
        assert_eq!(decoded.step.unwrap().num, 3);
    }

    #[test]
    fn a_replaced_record_type_is_still_checked() {
        let bad_summary = field(3, &field(1, &[field(1, b"\xff"), field(16, b"1")].concat()));
        let payload = [bad_summary, field(2, &field(1, &item("a", "1")))].concat();
        assert!(proto::Record::decode(&payload[..]).is_err());
        assert!(RecordView::parse(&payload).is_err());
    }

    #[test]
    fn a_tenth_varint_byte_above_one_is_rejected() {
        let mut num = vec![0x08];
        num.extend([0xFF; 9]);
        num.push(0x01);
        assert_eq!(RecordView::parse(&num).unwrap().num, -1);
        *num.last_mut().unwrap() = 0x02;
        assert!(proto::Record::decode(&num[..]).is_err());
        assert_eq!(
            RecordView::parse(&num).unwrap_err().wire_error(),
            WireError::Varint
        );
    }

    #[test]
    fn nesting_stops_where_prost_stops() {
        // Unknown field 15 as nested groups inside a history item: the item's fields are read
        // with 98 levels left, so 98 nested groups fit and 99 do not.
        for (n_groups, ok) in [(98, true), (99, false)] {
            let groups = [vec![0x7B; n_groups], vec![0x7C; n_groups]].concat();
            let payload = field(2, &field(1, &[item("a", "1"), groups].concat()));
            assert_eq!(proto::Record::decode(&payload[..]).is_ok(), ok);
            let view = RecordView::parse(&payload).unwrap();
            assert_eq!(
                keys(view.history().unwrap().items()).is_ok(),
                ok,
                "{n_groups}"
            );
        }
    }

    #[test]
    fn unknown_fields_in_summary_items_are_not_typed_values() {
        // Field 6 is `HistoryItem.value.number` (fixed64) but unknown in a `SummaryItem`.
        let summary_item = [item("a", "1"), vec![0x30, 0x01]].concat();
        let payload = field(3, &field(1, &summary_item));
        assert!(proto::Record::decode(&payload[..]).is_ok());
        let view = RecordView::parse(&payload).unwrap();
        assert_eq!(keys(view.updates().unwrap().updates()).unwrap(), ["a"]);
        let history = field(2, &field(1, &summary_item));
        assert!(proto::Record::decode(&history[..]).is_err());
        let view = RecordView::parse(&history).unwrap();
        assert!(keys(view.history().unwrap().items()).is_err());
    }
}
