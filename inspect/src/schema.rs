//! The types of the generated wire schema (`schema_gen.rs`): messages, fields and enums as static
//! data, so that records can be validated and rendered straight from their protobuf bytes.
//!
//! Invariant: every message's `fields` are sorted by number, and each repeated field has a distinct
//! `slot` below 64 (the generator checks both).

pub(crate) use crate::schema_gen::RECORD;

/// A protobuf message type.
#[derive(Debug)]
pub(crate) struct Message {
    /// Full proto name, e.g. `wandb_internal.HistoryRecord`.
    #[allow(dead_code)] // Shown by `Debug`, for debugging.
    pub(crate) name: &'static str,
    /// How the message is shown.
    pub(crate) shape: Shape,
    /// For field numbers below 32: the index of the field in `fields` plus one, or 0 if there is
    /// no such field (a direct look-up for the common case).
    pub(crate) small: [u8; 32],
    /// The fields, sorted by number.
    pub(crate) fields: &'static [Field],
}

impl Message {
    /// The field with number `number`, if the schema has one.
    #[inline]
    pub(crate) fn field(&self, number: u32) -> Option<&'static Field> {
        let fields = self.fields;
        if let Some(&slot) = self.small.get(number as usize) {
            return usize::from(slot)
                .checked_sub(1)
                .and_then(|index| fields.get(index));
        }
        fields
            .binary_search_by_key(&number, |field| field.number)
            .ok()
            .and_then(|index| fields.get(index))
    }
}

/// What a message is, as far as rendering is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An ordinary message: an object of its fields.
    Plain,
    /// A key and a JSON value (`HistoryItem`, `SummaryItem`, `ConfigItem`, ...): a repeated field of
    /// these is shown as one object mapping keys to decoded values. The numbers are those of the
    /// string fields `key`, `nested_key` (0: the type has none) and `value_json`, which differ
    /// between item types (`value_json` is 16 in `HistoryItem` but 2 in `ExtraItem`).
    Item {
        /// Field number of `key`.
        key: u32,
        /// Field number of `nested_key`, or 0.
        nested_key: u32,
        /// Field number of `value_json`.
        value_json: u32,
    },
    /// The entry of a `map<K, V>` field: key 1, value 2.
    MapEntry,
    /// `google.protobuf.Timestamp`: shown as an RFC 3339 string.
    Timestamp,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    /// Field number.
    pub(crate) number: u32,
    /// Proto field name, e.g. `value_json` or `_info`.
    pub(crate) name: &'static str,
    /// Value type.
    pub(crate) ty: Type,
    /// Whether the field is `repeated` (maps included).
    pub(crate) repeated: bool,
    /// For repeated fields, an index below 64 distinct within the message.
    pub(crate) slot: u8,
}

/// The type of a field's values.
#[derive(Debug)]
#[allow(dead_code)] // The generator can emit every protobuf type; wandb's schema uses a subset.
pub(crate) enum Type {
    Double,
    Float,
    Int64,
    UInt64,
    Int32,
    UInt32,
    SInt32,
    SInt64,
    Fixed32,
    Fixed64,
    SFixed32,
    SFixed64,
    Bool,
    String,
    Bytes,
    Enum(&'static Enum),
    Message(&'static Message),
    /// A `map<K, V>` field; the message is the synthetic entry type.
    Map(&'static Message),
}

/// A protobuf enum type.
#[derive(Debug)]
pub(crate) struct Enum {
    /// Full proto name.
    #[allow(dead_code)] // Kept for debugging output.
    pub(crate) name: &'static str,
    /// Values and their names, sorted by value.
    pub(crate) values: &'static [(i32, &'static str)],
}

impl Enum {
    /// The name of `value`, if the enum has one.
    pub(crate) fn name_of(&self, value: i32) -> Option<&'static str> {
        let values = self.values;
        values
            .binary_search_by_key(&value, |(number, _)| *number)
            .ok()
            .and_then(|index| values.get(index))
            .map(|(_, name)| *name)
    }
}

/// The record-type field (one of `Record`'s oneof fields) with number `number`, if it is one.
pub(crate) fn record_type_field(number: u32) -> Option<&'static Field> {
    if matches!(number, 1 | 16 | 19 | 200) {
        return None;
    }
    RECORD.field(number)
}
