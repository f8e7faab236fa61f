//! Renders a record's protobuf bytes as one JSON object, or as the compact text view of `dump`,
//! walking the bytes with the generated schema (no prost structs, no per-record allocation).
//!
//! JSON follows protobuf's JSON mapping where it helps scripts and departs from it where W&B's own
//! tooling does (see the crate docs for the full contract):
//!
//! * fields keep their proto names (`value_json`, `_info`, `output_raw`) and appear in wire order;
//!   fields not present in the bytes are absent (proto3 writers omit default values);
//! * a repeated field of key/value items (`item`, `update`, `config` items, ...) becomes one object
//!   mapping each key (a `nested_key` path joined with `.`) to its decoded `value_json`; `remove`
//!   lists become arrays of keys;
//! * enums are names, timestamps RFC 3339 strings, 64-bit integers plain numbers, bytes base64;
//! * fields the schema does not know are shown under their field number.
//!
//! The text view flattens nested messages into `path=value` pairs separated by spaces (arrays,
//! maps and JSON values stay inline), shows `NaN` bare, and cuts long strings.
//!
//! Invariant: rendering visits every byte the way [`crate::wire::validate`] does, so a record
//! renders without error exactly when it is valid.

use base64::Engine as _;

use crate::items::{Item, ItemValue};
use crate::jsonout::{
    Style, push_i64, push_u64, timestamp_in_range, write_f64, write_str, write_str_body,
    write_str_styled, write_timestamp,
};
use crate::schema::{Field, Message, Shape, Type};
use crate::wire::{
    Cursor, FieldRead, RECURSION_LIMIT, Raw, Value, WireError, WireResult, packed_values,
    scalar_wire_type,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A JSON object: members are `"key":value`.
    Object,
    /// A JSON array.
    Array,
    /// The text view's flattened message: members are ` path=value`.
    Flat,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    kind: Kind,
    first: bool,
    /// For [`Kind::Flat`]: the length of the path prefix its members extend.
    path_len: usize,
}

/// Renders records; keeps its buffers between records.
#[derive(Debug)]
pub(crate) struct Renderer {
    style: Style,
    frames: Vec<Frame>,
    path: String,
    line_first: bool,
    /// The record-type message already rendered (not to be validated again).
    rendered_body: (usize, usize),
    /// For each position in a list of items: the last item's encoded key there and its rendered
    /// `"key":`. Rows usually repeat the previous row's keys, so most keys are copied from here.
    key_cache: Vec<(Vec<u8>, String)>,
}

impl Renderer {
    /// A renderer writing values with `style`.
    pub(crate) fn new(style: Style) -> Self {
        Renderer {
            style,
            frames: Vec::with_capacity(16),
            path: String::new(),
            line_first: true,
            rendered_body: (0, 0),
            key_cache: Vec::new(),
        }
    }

    /// Appends the members of record `payload` (all but `num`, which callers write first) to an
    /// open JSON object: the record-type message first (`,"history":{...}`), then the other
    /// fields in stored order (`,"_info":{...}`).
    pub(crate) fn json_record_fields(
        &mut self,
        out: &mut String,
        payload: &[u8],
        head: &crate::wire::Head<'_>,
    ) -> WireResult<()> {
        self.frames.clear();
        self.frames.push(Frame {
            kind: Kind::Object,
            first: false,
            path_len: 0,
        });
        let result = self.json_record_inner(out, payload, head);
        self.frames.clear();
        result
    }

    fn json_record_inner(
        &mut self,
        out: &mut String,
        payload: &[u8],
        head: &crate::wire::Head<'_>,
    ) -> WireResult<()> {
        let type_number = match head.record_type {
            Some(field) => {
                self.member(out, field.name);
                self.value(out, field, Value::Message(head.body), RECURSION_LIMIT)?;
                field.number
            }
            None => 0,
        };
        self.rendered_body = (head.body.as_ptr() as usize, head.body.len());
        let result = self.fields(
            out,
            crate::schema::RECORD,
            payload,
            RECURSION_LIMIT,
            [1, type_number],
        );
        self.rendered_body = (0, 0);
        result
    }

    /// Appends the text view of a record: its record-type message flattened into `path=value`
    /// pairs, or all its fields when the type is unknown. The payload must have been validated.
    pub(crate) fn text_record(
        &mut self,
        out: &mut String,
        payload: &[u8],
        head: &crate::wire::Head<'_>,
    ) -> WireResult<()> {
        self.frames.clear();
        self.path.clear();
        self.line_first = true;
        self.frames.push(Frame {
            kind: Kind::Flat,
            first: true,
            path_len: 0,
        });
        let result = match head.record_type {
            Some(Field {
                ty: Type::Message(body_type),
                ..
            }) => self.fields(out, body_type, head.body, RECURSION_LIMIT - 1, [0, 0]),
            _ => self.fields(out, crate::schema::RECORD, payload, RECURSION_LIMIT, [1, 0]),
        };
        self.frames.clear();
        result
    }

    fn top_kind(&self) -> Option<Kind> {
        self.frames.last().map(|frame| frame.kind)
    }

    /// Starts a member whose key `write_key` writes (escaped for JSON when its flag is true).
    fn member_with(&mut self, out: &mut String, write_key: impl FnOnce(&mut String, bool)) {
        match self.frames.last_mut() {
            Some(frame) if frame.kind == Kind::Object => {
                if !frame.first {
                    out.push(',');
                }
                frame.first = false;
                out.push('"');
                write_key(out, true);
                out.push_str("\":");
            }
            Some(frame) if frame.kind == Kind::Flat => {
                self.path.truncate(frame.path_len);
                if !self.path.is_empty() {
                    self.path.push('.');
                }
                write_key(&mut self.path, false);
            }
            _ => {}
        }
    }

    fn member(&mut self, out: &mut String, name: &str) {
        self.member_with(out, |buffer, escape| {
            if escape {
                write_str_body(buffer, name);
            } else {
                buffer.push_str(name);
            }
        });
    }

    fn member_item(&mut self, out: &mut String, item: &Item<'_>) {
        self.member_with(out, |buffer, escape| {
            let mut first = true;
            item.for_each_part(|part| {
                if !first {
                    buffer.push('.');
                }
                first = false;
                if escape {
                    write_str_body(buffer, part);
                } else {
                    buffer.push_str(part);
                }
            });
        });
    }

    /// Writes what goes before a value: an array separator, or the text view's ` path=`.
    fn before_value(&mut self, out: &mut String) {
        match self.frames.last_mut() {
            Some(frame) if frame.kind == Kind::Array => {
                if !frame.first {
                    out.push(',');
                }
                frame.first = false;
            }
            Some(frame) if frame.kind == Kind::Flat => {
                if !self.line_first {
                    out.push(' ');
                }
                self.line_first = false;
                out.push_str(&self.path);
                out.push('=');
            }
            _ => {}
        }
    }

    /// Opens a message or map value: a JSON object, or (in the text view) a deeper flat path.
    fn open(&mut self, out: &mut String) {
        if self.top_kind() == Some(Kind::Flat) {
            self.frames.push(Frame {
                kind: Kind::Flat,
                first: true,
                path_len: self.path.len(),
            });
        } else {
            self.before_value(out);
            out.push('{');
            self.frames.push(Frame {
                kind: Kind::Object,
                first: true,
                path_len: 0,
            });
        }
    }

    /// Opens a JSON object even in the text view (for values shown inline).
    fn open_object(&mut self, out: &mut String) {
        self.before_value(out);
        out.push('{');
        self.frames.push(Frame {
            kind: Kind::Object,
            first: true,
            path_len: 0,
        });
    }

    fn open_array(&mut self, out: &mut String) {
        self.before_value(out);
        out.push('[');
        self.frames.push(Frame {
            kind: Kind::Array,
            first: true,
            path_len: 0,
        });
    }

    fn close(&mut self, out: &mut String) {
        match self.frames.pop().map(|frame| frame.kind) {
            Some(Kind::Object) => out.push('}'),
            Some(Kind::Array) => out.push(']'),
            _ => {}
        }
    }

    /// Writes the members of message `bytes` of type `message`, leaving out fields numbered as in
    /// `skip` (0 skips nothing); left-out fields are still validated.
    fn fields(
        &mut self,
        out: &mut String,
        message: &'static Message,
        bytes: &[u8],
        depth: u32,
        skip: [u32; 2],
    ) -> WireResult<()> {
        let mut done: u64 = 0;
        let mut reader = Cursor::new(bytes);
        while !reader.is_empty() {
            let start = reader.pos();
            let (number, wire_type) = reader.key()?;
            let Some(field) = message.field(number) else {
                let raw = reader.raw(wire_type, number, depth)?;
                self.unknown(out, number, raw);
                continue;
            };
            if skip.contains(&number) {
                // Validate what is left out, except the record-type message that was rendered.
                if let (Type::Message(inner) | Type::Map(inner), Value::Message(sub)) =
                    (&field.ty, reader.field(field, wire_type, depth)?)
                    && (sub.as_ptr() as usize, sub.len()) != self.rendered_body
                {
                    crate::wire::validate(inner, sub, depth - 1)?;
                }
                continue;
            }
            if field.repeated {
                let bit = 1u64 << field.slot;
                if done & bit == 0 {
                    done |= bit;
                    self.member(out, field.name);
                    let run = self.repeated(out, message, field, reader.rest_from(start), depth)?;
                    // The occurrences that follow each other were all read: jump past them.
                    reader.seek(start + run);
                    continue;
                }
                reader.field(field, wire_type, depth)?;
                continue;
            }
            let value = reader.field(field, wire_type, depth)?;
            self.member(out, field.name);
            self.value(out, field, value, depth)?;
        }
        Ok(())
    }

    /// Writes a field the schema does not know, under its number.
    fn unknown(&mut self, out: &mut String, number: u32, raw: Raw<'_>) {
        if matches!(raw, Raw::Group) {
            return;
        }
        self.member_with(out, |buffer, _| push_u64(buffer, u64::from(number)));
        self.before_value(out);
        match raw {
            Raw::Varint(value) | Raw::Fixed64(value) => push_u64(out, value),
            Raw::Fixed32(value) => push_u64(out, u64::from(value)),
            Raw::Len(bytes) => write_base64(out, bytes),
            Raw::Group => {}
        }
    }

    /// Writes all occurrences of repeated `field`, found in `rest` (the message's bytes from the
    /// first occurrence on). Returns the length of the leading run of consecutive occurrences.
    fn repeated(
        &mut self,
        out: &mut String,
        message: &'static Message,
        field: &'static Field,
        rest: &[u8],
        depth: u32,
    ) -> WireResult<usize> {
        let item_type = match field.ty {
            Type::Message(inner) if matches!(inner.shape, Shape::Item { .. }) => Some(inner),
            _ => None,
        };
        let as_object = matches!(field.ty, Type::Map(_)) || item_type.is_some();
        let keys_only = item_type.is_some() && field.name == "remove";
        let transparent = item_type.is_some() && !keys_only && field.name == "item";
        if let Some(item_type) = item_type
            && !keys_only
            && self.top_kind() == Some(Kind::Object)
        {
            return self.json_items(out, message, field, item_type, rest, depth);
        }
        if keys_only || !as_object {
            self.open_array(out);
        } else if transparent && self.top_kind() == Some(Kind::Flat) {
            // The text view shows history and stats items as `key=value`, without `item.`.
            let parent_len = self.frames.last().map_or(0, |frame| frame.path_len);
            self.path.truncate(parent_len);
            self.frames.push(Frame {
                kind: Kind::Flat,
                first: true,
                path_len: parent_len,
            });
        } else {
            self.open(out);
        }
        let mut reader = Cursor::new(rest);
        let mut run = None;
        while !reader.is_empty() {
            let key_start = reader.pos();
            let (number, wire_type) = reader.key()?;
            if number != field.number {
                run.get_or_insert(key_start);
                reader.skip_known(message.field(number), number, wire_type, depth)?;
                continue;
            }
            let value = reader.field(field, wire_type, depth)?;
            match (value, item_type, &field.ty) {
                (Value::Message(bytes), Some(item_type), _) => {
                    let item = Item::parse(item_type, bytes, depth - 1)?;
                    if keys_only {
                        self.before_value(out);
                        out.push('"');
                        item.for_each_part({
                            let mut first = true;
                            let out = &mut *out;
                            move |part| {
                                if !first {
                                    out.push('.');
                                }
                                first = false;
                                write_str_body(out, part);
                            }
                        });
                        out.push('"');
                    } else {
                        self.member_item(out, &item);
                        self.item_value(out, item.value);
                    }
                }
                (Value::Message(bytes), None, Type::Map(entry)) => {
                    self.map_entry(out, entry, bytes, depth - 1)?;
                }
                (Value::Packed(packed), _, ty) => {
                    for scalar in packed_values(packed, scalar_wire_type(ty)) {
                        self.value(out, field, scalar, depth)?;
                    }
                }
                (value, _, _) => self.value(out, field, value, depth)?,
            }
        }
        self.close(out);
        Ok(run.unwrap_or(rest.len()))
    }

    /// The hot path of `--json`: a repeated item field (history `item`, summary `update`, ...) as
    /// one JSON object, written directly.
    fn json_items(
        &mut self,
        out: &mut String,
        message: &'static Message,
        field: &'static Field,
        item_type: &'static Message,
        rest: &[u8],
        depth: u32,
    ) -> WireResult<usize> {
        out.push('{');
        let mut first = true;
        let mut position = 0;
        let mut reader = Cursor::new(rest);
        let mut run = None;
        while !reader.is_empty() {
            let key_start = reader.pos();
            let (number, wire_type) = reader.key()?;
            if number != field.number {
                run.get_or_insert(key_start);
                reader.skip_known(message.field(number), number, wire_type, depth)?;
                continue;
            }
            let Value::Message(bytes) = reader.field(field, wire_type, depth)? else {
                return Err(WireError);
            };
            let item = Item::parse(item_type, bytes, depth - 1)?;
            if !first {
                out.push(',');
            }
            first = false;
            let span = item.key_span();
            match self.key_cache.get(position) {
                Some((cached, rendered))
                    if !span.is_empty() && crate::wire::same_bytes(cached, span) =>
                {
                    out.push_str(rendered);
                }
                _ => {
                    let start = out.len();
                    out.push('"');
                    match item.simple_key() {
                        Some(key) => write_str_body(out, key),
                        None => {
                            let mut first_part = true;
                            item.for_each_part(|part| {
                                if !first_part {
                                    out.push('.');
                                }
                                first_part = false;
                                write_str_body(out, part);
                            });
                        }
                    }
                    out.push_str("\":");
                    if !span.is_empty() {
                        if self.key_cache.len() <= position {
                            self.key_cache.resize_with(position + 1, Default::default);
                        }
                        if let Some((cached, rendered)) = self.key_cache.get_mut(position) {
                            cached.clear();
                            cached.extend_from_slice(span);
                            rendered.clear();
                            rendered.push_str(out.get(start..).unwrap_or_default());
                        }
                    }
                }
            }
            position += 1;
            item.value.write_json(out, self.style);
        }
        out.push('}');
        Ok(run.unwrap_or(rest.len()))
    }

    /// Writes one map entry as a member: the key as a string, then the value.
    fn map_entry(
        &mut self,
        out: &mut String,
        entry: &'static Message,
        bytes: &[u8],
        depth: u32,
    ) -> WireResult<()> {
        let mut key = None;
        let mut value = None;
        let mut reader = Cursor::new(bytes);
        while !reader.is_empty() {
            let (number, wire_type) = reader.key()?;
            let Some(field) = entry.field(number) else {
                reader.raw(wire_type, number, depth)?;
                continue;
            };
            let found = reader.field(field, wire_type, depth)?;
            if let (Type::Message(inner), Value::Message(sub)) = (&field.ty, found) {
                // Validate now: a value that occurs twice is only shown once.
                crate::wire::validate(inner, sub, depth - 1)?;
            }
            match number {
                1 => key = Some((field, found)),
                _ => value = Some((field, found)),
            }
        }
        self.member_with(out, |buffer, escape| {
            if let Some((field, found)) = key {
                scalar_text(buffer, field, found, escape);
            }
        });
        match (value, entry.field(2)) {
            (Some((field, found)), _) => self.value(out, field, found, depth),
            (None, Some(field)) => {
                self.default_value(out, field);
                Ok(())
            }
            (None, None) => {
                self.before_value(out);
                out.push_str("null");
                Ok(())
            }
        }
    }

    /// Writes the value of a field that is absent (a map entry without a value).
    fn default_value(&mut self, out: &mut String, field: &Field) {
        match field.ty {
            Type::Message(_) | Type::Map(_) => {
                self.open_object(out);
                self.close(out);
            }
            Type::String | Type::Bytes => {
                self.before_value(out);
                out.push_str("\"\"");
            }
            Type::Bool => {
                self.before_value(out);
                out.push_str("false");
            }
            _ => {
                self.before_value(out);
                out.push('0');
            }
        }
    }

    /// Writes an item's value.
    fn item_value(&mut self, out: &mut String, value: ItemValue<'_>) {
        self.before_value(out);
        value.write_json(out, self.style);
    }

    /// Writes one value of `field`.
    fn value(
        &mut self,
        out: &mut String,
        field: &'static Field,
        value: Value<'_>,
        depth: u32,
    ) -> WireResult<()> {
        match (&field.ty, value) {
            (Type::Message(inner), Value::Message(bytes)) => {
                if inner.shape == Shape::Timestamp
                    && self.timestamp(out, inner, bytes, depth - 1)?
                {
                    return Ok(());
                }
                self.open(out);
                self.fields(out, inner, bytes, depth - 1, [0, 0])?;
                self.close(out);
            }
            (Type::Map(entry), Value::Message(bytes)) => {
                self.open(out);
                self.map_entry(out, entry, bytes, depth - 1)?;
                self.close(out);
            }
            (Type::String, Value::Str(text)) => {
                self.before_value(out);
                write_str_styled(out, text, self.style);
            }
            (Type::Bytes, Value::Bytes(bytes)) => {
                self.before_value(out);
                write_base64(out, bytes);
            }
            (Type::Double, Value::Fixed64(bits)) => {
                self.before_value(out);
                write_f64(out, f64::from_bits(bits), self.style.non_finite);
            }
            (Type::Float, Value::Fixed32(bits)) => {
                self.before_value(out);
                write_f64(out, f64::from(f32::from_bits(bits)), self.style.non_finite);
            }
            (Type::Enum(enumeration), Value::Varint(raw)) => {
                self.before_value(out);
                let number = raw as i32;
                match enumeration.name_of(number) {
                    Some(name) => write_str(out, name),
                    None => push_i64(out, i64::from(number)),
                }
            }
            (_, value) => {
                self.before_value(out);
                scalar_text(out, field, value, false);
            }
        }
        Ok(())
    }

    /// Writes a `google.protobuf.Timestamp` as a string; returns `false` (writing nothing) when it
    /// is out of range, so that the caller shows it as an object.
    fn timestamp(
        &mut self,
        out: &mut String,
        message: &Message,
        bytes: &[u8],
        depth: u32,
    ) -> WireResult<bool> {
        let mut seconds = 0i64;
        let mut nanos = 0i32;
        let mut reader = Cursor::new(bytes);
        while !reader.is_empty() {
            let (number, wire_type) = reader.key()?;
            let field = message.field(number);
            match (number, field) {
                (1 | 2, Some(field)) => {
                    if let Value::Varint(raw) = reader.field(field, wire_type, depth)? {
                        if number == 1 {
                            seconds = raw as i64;
                        } else {
                            nanos = raw as i32;
                        }
                    }
                }
                _ => {
                    // Unknown fields would be lost in the string form.
                    reader.skip_known(field, number, wire_type, depth)?;
                    return Ok(false);
                }
            }
        }
        if !timestamp_in_range(seconds, nanos) {
            return Ok(false);
        }
        self.before_value(out);
        Ok(write_timestamp(out, seconds, nanos))
    }
}

/// Writes a scalar as text: numbers and booleans as JSON; strings (map keys) escaped if asked.
fn scalar_text(out: &mut String, field: &Field, value: Value<'_>, escape: bool) {
    match (&field.ty, value) {
        (Type::String, Value::Str(text)) => {
            if escape {
                write_str_body(out, text);
            } else {
                out.push_str(text);
            }
        }
        (Type::Bool, Value::Varint(raw)) => out.push_str(if raw != 0 { "true" } else { "false" }),
        (Type::Int64, Value::Varint(raw)) => push_i64(out, raw as i64),
        (Type::Int32 | Type::Enum(_), Value::Varint(raw)) => push_i64(out, i64::from(raw as i32)),
        (Type::UInt32, Value::Varint(raw)) => push_u64(out, u64::from(raw as u32)),
        (Type::SInt32, Value::Varint(raw)) => {
            let raw = raw as u32;
            push_i64(out, i64::from((raw >> 1) as i32 ^ -((raw & 1) as i32)));
        }
        (Type::SInt64, Value::Varint(raw)) => {
            push_i64(out, (raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
        (Type::SFixed64, Value::Fixed64(raw)) => push_i64(out, raw as i64),
        (Type::SFixed32, Value::Fixed32(raw)) => push_i64(out, i64::from(raw as i32)),
        (_, Value::Varint(raw) | Value::Fixed64(raw)) => push_u64(out, raw),
        (_, Value::Fixed32(raw)) => push_u64(out, u64::from(raw)),
        (_, Value::Str(text)) => out.push_str(text),
        (_, Value::Bytes(_) | Value::Message(_) | Value::Packed(_)) => {}
    }
}

fn write_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}
