//! Key/value items (`HistoryItem`, `SummaryItem`, `ConfigItem`, `StatsItem`, ...) read straight from
//! their bytes: the key path and the value, borrowed, validated as prost would.
//!
//! A key is either `key` (one level) or `nested_key` (a path); W&B never sets both, and when a
//! record does, `nested_key` wins. Nested keys are shown joined with `.`, as W&B names history
//! columns (`train.loss`).

use crate::jsonout::{Style, push_i64, write_f64, write_str_styled, write_value_json};
use crate::schema::{Message, Shape, Type};
use crate::wire::{Cursor, FieldRead, Value, WireError, WireResult, WireType, utf8, validate};

/// How many `nested_key` parts an [`Item`] keeps without reading the item again.
const INLINE_PARTS: usize = 2;

/// The value of an item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ItemValue<'a> {
    /// `value_json` (or the typed `json` variant): extended JSON text.
    Json(&'a str),
    /// The typed `none` variant, or no value at all.
    Null,
    /// The typed `boolean` variant.
    Bool(bool),
    /// The typed `integer` variant.
    Int(i64),
    /// The typed `number` variant.
    Float(f64),
    /// The typed `text` variant.
    Text(&'a str),
}

impl ItemValue<'_> {
    /// Appends the value as JSON in `style` (long strings cut as the style says).
    pub(crate) fn write_json(self, out: &mut String, style: Style) {
        match self {
            ItemValue::Json(text) => write_value_json(out, text, style),
            ItemValue::Null => out.push_str("null"),
            ItemValue::Bool(flag) => out.push_str(if flag { "true" } else { "false" }),
            ItemValue::Int(int) => push_i64(out, int),
            ItemValue::Float(float) => write_f64(out, float, style.non_finite),
            ItemValue::Text(text) => write_str_styled(out, text, style),
        }
    }
}

/// One item, borrowed from the record's bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item<'a> {
    bytes: &'a [u8],
    /// Field number of `nested_key` in the item's type (0: none).
    nested_number: u32,
    /// The item's leading key fields (`key`, `nested_key`) as encoded, when no key field comes
    /// after another field: two items with equal spans have equal keys. Empty otherwise.
    key_span: &'a [u8],
    key: &'a str,
    /// The first [`INLINE_PARTS`] parts of `nested_key` (the rest are read again when needed).
    nested: [&'a str; INLINE_PARTS],
    n_nested: usize,
    /// The item's value.
    pub(crate) value: ItemValue<'a>,
}

impl<'a> Item<'a> {
    /// Reads and validates one item message of type `message` (whose shape is [`Shape::Item`]).
    #[inline(always)]
    pub(crate) fn parse(message: &Message, bytes: &'a [u8], depth: u32) -> WireResult<Self> {
        let Shape::Item {
            key: key_number,
            nested_key: nested_number,
            value_json: value_number,
        } = message.shape
        else {
            return Err(WireError);
        };
        // Locals rather than a struct mutated in place: the item is built once, at the end, straight
        // into the caller's slot (a struct built field by field was copied whole, slowly).
        let mut key = "";
        let mut nested = [""; INLINE_PARTS];
        let mut n_nested = 0;
        let mut value_json = "";
        let mut typed = None;
        let mut reader = Cursor::new(bytes);
        // Where the leading key fields end; `None` once a key field follows another field.
        let mut key_end = Some(0);
        let mut other_seen = false;
        while !reader.is_empty() {
            let (number, wire_type) = reader.key()?;
            if number == key_number || number == nested_number {
                if other_seen {
                    key_end = None;
                }
            } else {
                other_seen = true;
            }
            let Some(field) = message.field(number) else {
                reader.raw(wire_type, number, depth)?;
                continue;
            };
            // Fast path: string fields (`key`, `nested_key`, `value_json`, typed text and JSON).
            if wire_type == WireType::Len && matches!(field.ty, Type::String) {
                let text = utf8(reader.len_delimited()?)?;
                // An `if` chain rather than a `match`: a jump table here mispredicted often.
                if number == value_number {
                    value_json = text;
                } else if number == nested_number {
                    if let Some(slot) = nested.get_mut(n_nested) {
                        *slot = text;
                    }
                    n_nested += 1;
                    key_end = key_end.map(|_| reader.pos());
                } else if number == key_number {
                    key = text;
                    key_end = key_end.map(|_| reader.pos());
                } else if number == 7 {
                    typed = Some(ItemValue::Text(text));
                } else if number == 8 {
                    typed = Some(ItemValue::Json(text));
                }
                continue;
            }
            let value = reader.field(field, wire_type, depth)?;
            match (number, value) {
                (3, Value::Varint(_)) => typed = Some(ItemValue::Null),
                (4, Value::Varint(flag)) => typed = Some(ItemValue::Bool(flag != 0)),
                (5, Value::Varint(zigzag)) => {
                    let int = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
                    typed = Some(ItemValue::Int(int));
                }
                (6, Value::Fixed64(bits)) => typed = Some(ItemValue::Float(f64::from_bits(bits))),
                (_, Value::Message(sub)) => {
                    if let Type::Message(inner) | Type::Map(inner) = field.ty {
                        validate(inner, sub, depth - 1)?;
                    }
                }
                _ => {}
            }
        }
        let value = if !value_json.is_empty() {
            ItemValue::Json(value_json)
        } else {
            typed.unwrap_or(ItemValue::Null)
        };
        Ok(Item {
            bytes,
            nested_number,
            key_span: key_end.and_then(|end| bytes.get(..end)).unwrap_or_default(),
            key,
            nested,
            n_nested,
            value,
        })
    }

    /// The common history and summary item, read without the schema: only `key` (1),
    /// `nested_key` (2) and `value_json` (16) strings shorter than 128 bytes, in any order.
    /// `None` for any other bytes, which [`Item::parse`] reads; for these bytes both give the
    /// same item (`wire_tests.rs` checks items against prost through both).
    #[inline(always)]
    pub(crate) fn quick(bytes: &'a [u8]) -> Option<Self> {
        let mut key = "";
        let mut nested = [""; INLINE_PARTS];
        let mut n_nested = 0;
        let mut value_json = "";
        let mut key_end = Some(0);
        let mut other_seen = false;
        let mut at = 0;
        while let Some(&tag) = bytes.get(at) {
            let (number, header) = match tag {
                0x0A => (1, 1),
                0x12 => (2, 1),
                0x82 if bytes.get(at + 1) == Some(&0x01) => (16, 2),
                _ => return None,
            };
            let len = *bytes.get(at + header)?;
            if len >= 0x80 {
                return None;
            }
            let start = at + header + 1;
            let end = start + usize::from(len);
            let text = utf8(bytes.get(start..end)?).ok()?;
            at = end;
            if number == 16 {
                other_seen = true;
                value_json = text;
                continue;
            }
            if other_seen {
                key_end = None;
            }
            key_end = key_end.map(|_| at);
            if number == 2 {
                if let Some(slot) = nested.get_mut(n_nested) {
                    *slot = text;
                }
                n_nested += 1;
            } else {
                key = text;
            }
        }
        Some(Item {
            bytes,
            nested_number: 2,
            key_span: key_end.and_then(|end| bytes.get(..end)).unwrap_or_default(),
            key,
            nested,
            n_nested,
            value: if value_json.is_empty() {
                ItemValue::Null
            } else {
                ItemValue::Json(value_json)
            },
        })
    }

    /// The encoded key fields, when they lead the item (see [`Item::key_span`]'s field); empty
    /// when they do not, or when the item has no key. Equal non-empty spans mean equal keys.
    pub(crate) fn key_span(&self) -> &'a [u8] {
        self.key_span
    }

    /// The key when it is a single part (no allocation): `key`, or a one-part `nested_key`.
    pub(crate) fn simple_key(&self) -> Option<&'a str> {
        match self.n_nested {
            0 => Some(self.key),
            1 => self.nested.first().copied(),
            _ => None,
        }
    }

    /// Calls `part` for each part of the key path, in order.
    pub(crate) fn for_each_part(&self, mut part: impl FnMut(&'a str)) {
        if let Some(key) = self.simple_key() {
            part(key);
            return;
        }
        if let Some(parts) = self.nested.get(..self.n_nested) {
            parts.iter().for_each(|&text| part(text));
            return;
        }
        let mut reader = Cursor::new(self.bytes);
        while !reader.is_empty() {
            // The item was validated by `parse`, so reading it again cannot fail.
            let Ok((number, wire_type)) = reader.key() else {
                return;
            };
            if number == self.nested_number && wire_type == WireType::Len {
                if let Ok(bytes) = reader.len_delimited() {
                    part(std::str::from_utf8(bytes).unwrap_or_default());
                }
            } else if reader
                .raw(wire_type, number, crate::wire::RECURSION_LIMIT)
                .is_err()
            {
                return;
            }
        }
    }

    /// Appends the key path joined with `.` to `out`.
    pub(crate) fn push_dotted(&self, out: &mut String) {
        let mut first = true;
        self.for_each_part(|part| {
            if !first {
                out.push('.');
            }
            first = false;
            out.push_str(part);
        });
    }

    /// Whether the key path joined with `.` equals `dotted` (without building it).
    pub(crate) fn dotted_eq(&self, dotted: &str) -> bool {
        if let Some(key) = self.simple_key() {
            return key == dotted;
        }
        let mut rest = dotted.as_bytes();
        let mut equal = true;
        let mut first = true;
        self.for_each_part(|part| {
            if !equal {
                return;
            }
            if !first {
                match rest.split_first() {
                    Some((b'.', tail)) => rest = tail,
                    _ => {
                        equal = false;
                        return;
                    }
                }
            }
            first = false;
            match rest.strip_prefix(part.as_bytes()) {
                Some(tail) => rest = tail,
                None => equal = false,
            }
        });
        equal && rest.is_empty()
    }

    /// The key path joined with `.`: borrowed for one-part keys, else built in `scratch`.
    pub(crate) fn dotted<'s>(&self, scratch: &'s mut String) -> &'s str
    where
        'a: 's,
    {
        if let Some(key) = self.simple_key() {
            return key;
        }
        scratch.clear();
        self.push_dotted(scratch);
        scratch
    }
}

/// Calls `each` with every item of repeated field `number` of `record` (a `parent` message), in
/// order, and validates the other fields of `record` as prost would; stops at the first invalid
/// item or field.
pub(crate) fn try_for_each_item<'a>(
    parent: &'static Message,
    record: &'a [u8],
    number: u32,
    depth: u32,
    mut each: impl FnMut(Item<'a>),
) -> WireResult<()> {
    let Some(field) = parent.field(number) else {
        return Ok(());
    };
    let Type::Message(item_type) = field.ty else {
        return Ok(());
    };
    let quick = matches!(
        item_type.shape,
        Shape::Item {
            key: 1,
            nested_key: 2,
            value_json: 16
        }
    );
    let mut reader = Cursor::new(record);
    while !reader.is_empty() {
        let (found, wire_type) = reader.key()?;
        if quick && found == number && wire_type == WireType::Len && depth > 0 {
            let bytes = reader.len_delimited()?;
            match Item::quick(bytes) {
                Some(item) => each(item),
                None => each(Item::parse(item_type, bytes, depth - 1)?),
            }
            continue;
        }
        if found != number {
            match parent.field(found) {
                Some(other) => {
                    if let (Type::Message(inner) | Type::Map(inner), Value::Message(sub)) =
                        (&other.ty, reader.field(other, wire_type, depth)?)
                    {
                        validate(inner, sub, depth - 1)?;
                    }
                }
                None => {
                    reader.raw(wire_type, found, depth)?;
                }
            }
            continue;
        }
        match reader.field(field, wire_type, depth)? {
            Value::Message(bytes) => each(Item::parse(item_type, bytes, depth - 1)?),
            _ => return Err(WireError),
        }
    }
    Ok(())
}

/// Iterates the items of repeated field `number` (of item type `message`) in `record`, a message
/// whose own type is `parent`. Yields an error once and stops if the bytes are invalid.
pub(crate) fn items<'a>(
    parent: &'static Message,
    record: &'a [u8],
    number: u32,
    depth: u32,
) -> impl Iterator<Item = WireResult<Item<'a>>> + 'a {
    let field = parent.field(number);
    let mut reader = Cursor::new(record);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let field = field?;
        let Type::Message(item_type) = field.ty else {
            return None;
        };
        while !reader.is_empty() {
            let step = (|| {
                let (found, wire_type) = reader.key()?;
                let this = parent.field(found);
                if found != number {
                    reader.skip_known(this, found, wire_type, depth)?;
                    return Ok(None);
                }
                match reader.field(field, wire_type, depth)? {
                    Value::Message(bytes) => Item::parse(item_type, bytes, depth - 1).map(Some),
                    _ => Err(WireError),
                }
            })();
            match step {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => {}
                Err(error) => {
                    failed = true;
                    return Some(Err(error));
                }
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use wandb_format::proto::HistoryItem;

    use super::*;
    use crate::schema::RECORD;

    fn history_item_type() -> &'static Message {
        let Some(Type::Message(history)) = RECORD.field(2).map(|field| &field.ty) else {
            panic!("history should be a message");
        };
        let Some(Type::Message(item)) = history.field(1).map(|field| &field.ty) else {
            panic!("item should be a message");
        };
        item
    }

    #[test]
    fn the_quick_reading_of_an_item_is_the_full_one() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for (key, nested, value) in [
            ("", vec!["loss"], "0.5"),
            ("loss", vec![], "1e-05"),
            ("k", vec!["train", "loss"], "NaN"),
            ("", vec!["a", "b", "c", "d"], "\"text\""),
            ("", vec!["x"], ""),
            ("", vec!["é"], "2"),
            ("", vec![&*"y".repeat(130)], "3"),
        ] {
            cases.push(
                HistoryItem {
                    key: key.to_string(),
                    nested_key: nested.iter().map(|part| part.to_string()).collect(),
                    value_json: value.to_string(),
                    ..Default::default()
                }
                .encode_to_vec(),
            );
        }
        // A value before the key, and every one-byte change of each case.
        cases.push(vec![0x82, 0x01, 1, b'7', 0x12, 1, b'k']);
        let originals = cases.clone();
        for case in &originals {
            for at in 0..case.len() {
                for byte in [0x00, 0x0A, 0x12, 0x80, 0x82, 0xFF, case[at].wrapping_add(1)] {
                    let mut mutated = case.clone();
                    mutated[at] = byte;
                    cases.push(mutated);
                }
            }
        }
        let mut quick_read = 0;
        for bytes in &cases {
            let Some(quick) = Item::quick(bytes) else {
                continue;
            };
            quick_read += 1;
            let full = Item::parse(history_item_type(), bytes, 90)
                .unwrap_or_else(|_| panic!("quick read what parse rejects: {bytes:?}"));
            assert_eq!(quick.key, full.key, "{bytes:?}");
            assert_eq!(quick.nested, full.nested, "{bytes:?}");
            assert_eq!(quick.n_nested, full.n_nested, "{bytes:?}");
            assert_eq!(quick.value, full.value, "{bytes:?}");
            assert_eq!(quick.key_span, full.key_span, "{bytes:?}");
            assert_eq!(quick.nested_number, full.nested_number, "{bytes:?}");
            assert_eq!(
                quick.dotted(&mut String::new()),
                full.dotted(&mut String::new())
            );
        }
        assert!(quick_read > 20, "{quick_read} read quickly");
    }

    #[test]
    fn keys_compare_and_join_without_surprises() {
        for path in [&["loss"][..], &["train", "loss"], &["a", "b", "c"]] {
            let bytes = HistoryItem {
                nested_key: path.iter().map(|part| part.to_string()).collect(),
                value_json: "1".to_string(),
                ..Default::default()
            }
            .encode_to_vec();
            let item = Item::parse(history_item_type(), &bytes, 90).unwrap();
            let joined = path.join(".");
            assert!(item.dotted_eq(&joined));
            assert!(!item.dotted_eq(&format!("{joined}x")));
            assert!(!item.dotted_eq("train"));
            assert_eq!(item.dotted(&mut String::new()), joined);
            assert_eq!(item.value, ItemValue::Json("1"));
        }
    }
}
