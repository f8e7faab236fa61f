//! The values a caller logs: [`Key`], [`Value`] and [`Row`], plus the [`row!`](crate::row) macro.
//!
//! They are built on the training thread, so they are kept compact and cheap: a key is a
//! `&'static str` or a shared `Arc<str>` (never copied), a value is 16 bytes with numbers and
//! booleans inline, and a row is one vector. Everything else (interning keys, formatting JSON,
//! encoding protobuf) happens on the run's writer thread.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use wandb_format::json;

use crate::error::{Error, Result};

/// The name of a logged value.
///
/// A string literal becomes a key without any allocation; other strings are shared (`Arc<str>`),
/// so a key built once can be cloned cheaply into every row. Keys are flat: `"val/loss"` and
/// `"a.b"` are single keys. Nested keys come from nested objects (see [`Value::Json`]).
#[derive(Clone)]
pub struct Key(KeyRepr);

#[derive(Clone)]
pub(crate) enum KeyRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Key {
    /// A key from a string literal (no allocation).
    pub const fn from_static(name: &'static str) -> Key {
        Key(KeyRepr::Static(name))
    }

    /// A key from any string (one allocation; clone the key to reuse it).
    pub fn new(name: impl AsRef<str>) -> Key {
        Key(KeyRepr::Shared(Arc::from(name.as_ref())))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            KeyRepr::Static(s) => s,
            KeyRepr::Shared(s) => s,
        }
    }

    pub(crate) fn repr(&self) -> &KeyRepr {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Key {
    fn from(name: &'static str) -> Key {
        Key::from_static(name)
    }
}

impl From<String> for Key {
    fn from(name: String) -> Key {
        Key(KeyRepr::Shared(Arc::from(name)))
    }
}

impl From<&String> for Key {
    fn from(name: &String) -> Key {
        Key::new(name)
    }
}

impl From<Arc<str>> for Key {
    fn from(name: Arc<str>) -> Key {
        Key(KeyRepr::Shared(name))
    }
}

/// A logged value: numbers and booleans inline, anything else as extended JSON.
///
/// Floats may be `NaN` or infinite; they are written as W&B writes them (`NaN`, `Infinity`).
/// An object ([`Value::Json`] holding a [`json::Value::Object`]) is logged as nested keys, like a
/// nested dict in W&B's Python SDK: `{"train": {"loss": 1}}` becomes the key path
/// `train` → `loss`.
#[derive(Clone, Debug, PartialEq)]
// A one-byte tag and every payload at offset 8: copies of a value are then one byte and one
// aligned word. With the default layout a `bool` sits at offset 1 and values were copied in odd
// unaligned pieces, which stall the CPU when read back right after being written.
#[repr(C, u8)]
pub enum Value {
    /// A floating-point number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Any other JSON value: strings, arrays, objects, `null`, integers beyond `i64`.
    Json(Box<json::Value>),
}

impl Value {
    /// The value of any `Serialize` type (numbers and booleans stay inline).
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if the value cannot be represented as JSON (for example, a map with
    /// non-string keys).
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
        let json = json::to_value(value).map_err(|source| Error::Serialize { source })?;
        Ok(Value::from(json))
    }

    /// The value as extended JSON.
    pub fn to_json(&self) -> json::Value {
        match self {
            Value::Float(f) => json::Value::Float(*f),
            Value::Int(i) => json::Value::Int(*i),
            Value::Bool(b) => json::Value::Bool(*b),
            Value::Json(v) => (**v).clone(),
        }
    }
}

impl From<json::Value> for Value {
    fn from(value: json::Value) -> Value {
        match value {
            json::Value::Float(f) => Value::Float(f),
            json::Value::Int(i) => Value::Int(i),
            json::Value::Bool(b) => Value::Bool(b),
            other => Value::Json(Box::new(other)),
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $body:expr;)*) => {
        $(impl From<$ty> for Value {
            fn from($v: $ty) -> Value {
                $body
            }
        })*
    };
}

value_from! {
    f64 => |v| Value::Float(v);
    f32 => |v| Value::from(json::Value::from(v));
    i64 => |v| Value::Int(v);
    i32 => |v| Value::Int(i64::from(v));
    i16 => |v| Value::Int(i64::from(v));
    i8 => |v| Value::Int(i64::from(v));
    u32 => |v| Value::Int(i64::from(v));
    u16 => |v| Value::Int(i64::from(v));
    u8 => |v| Value::Int(i64::from(v));
    u64 => |v| Value::from(json::Value::from(v));
    usize => |v| Value::from(json::Value::from(v as u64));
    isize => |v| Value::Int(v as i64);
    bool => |v| Value::Bool(v);
    &str => |v| Value::Json(Box::new(json::Value::String(v.to_owned())));
    String => |v| Value::Json(Box::new(json::Value::String(v)));
    &String => |v| Value::Json(Box::new(json::Value::String(v.clone())));
    json::Map => |v| Value::Json(Box::new(json::Value::Object(v)));
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::Json(Box::new(json::Value::Array(
            items.iter().map(Value::to_json).collect(),
        )))
    }
}

impl From<Row> for Value {
    /// A row used as a value is a nested object (its keys become nested keys).
    fn from(row: Row) -> Value {
        let map: json::Map = row
            .entries
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_json()))
            .collect();
        Value::from(map)
    }
}

/// One call's worth of logged values, in the order given.
///
/// Build one with [`row!`](crate::row), with [`Row::with`] / [`Row::push`], or from any
/// `Serialize` value with [`Row::serialize`]. A key given twice keeps its last value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub(crate) entries: Vec<(Key, Value)>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Row {
        Row::default()
    }

    /// An empty row with room for `n` values.
    pub fn with_capacity(n: usize) -> Row {
        Row {
            entries: Vec::with_capacity(n),
        }
    }

    /// Adds a value.
    pub fn push(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        self.entries.push((key.into(), value.into()));
    }

    /// Returns the row with a value added.
    #[must_use]
    pub fn with(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Row {
        self.push(key, value);
        self
    }

    /// A row from any `Serialize` value that serializes as a map or struct: each field is a key.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if the value cannot be converted, [`Error::NotAnObject`] if it is not
    /// a map or struct.
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Row> {
        let json = json::to_value(value).map_err(|source| Error::Serialize { source })?;
        Row::try_from(json)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the row holds no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The row as a JSON object (a repeated key keeps its last value).
    pub fn to_json_map(&self) -> json::Map {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_json()))
            .collect()
    }
}

impl TryFrom<json::Value> for Row {
    type Error = Error;

    fn try_from(value: json::Value) -> Result<Row> {
        match value.into_object() {
            Ok(map) => Ok(Row::from(map)),
            Err(other) => Err(Error::NotAnObject {
                found: json_kind(&other),
            }),
        }
    }
}

impl From<json::Map> for Row {
    fn from(map: json::Map) -> Row {
        Row {
            entries: map
                .into_iter()
                .map(|(k, v)| (Key::from(k), Value::from(v)))
                .collect(),
        }
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Row {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Row {
        Row {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl<K: Into<Key>, V: Into<Value>> Extend<(K, V)> for Row {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

/// The name of a JSON value's type, for error messages.
pub(crate) fn json_kind(value: &json::Value) -> &'static str {
    match value {
        json::Value::Null => "null",
        json::Value::Bool(_) => "a boolean",
        json::Value::Int(_) | json::Value::UInt(_) | json::Value::Float(_) => "a number",
        json::Value::String(_) => "a string",
        json::Value::Array(_) => "an array",
        json::Value::Object(_) => "an object",
    }
}

/// Builds a [`Row`]: `row!{"loss" => 0.5, "acc" => acc}`.
///
/// Keys are anything that converts into a [`Key`] (string literals cost nothing), values
/// anything that converts into a [`Value`]. A nested `row!` is a nested object:
/// `row!{"train" => row!{"loss" => 0.5}}` logs the key path `train` → `loss`.
///
/// ```
/// use wandb_logger::row;
/// let acc = 0.9;
/// let row = row! {"loss" => 0.5, "acc" => acc, "epoch" => 3};
/// assert_eq!(row.len(), 3);
/// ```
#[macro_export]
macro_rules! row {
    () => { $crate::Row::new() };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut row = $crate::Row::with_capacity($crate::row!(@count $($key),+));
        $(row.push($key, $value);)+
        row
    }};
    (@count $($key:expr),+) => { <[()]>::len(&[$($crate::row!(@unit $key)),+]) };
    (@unit $key:expr) => { () };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_compact() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(std::mem::size_of::<Option<Value>>(), 16);
        assert!(std::mem::size_of::<Key>() <= 24);
    }

    #[test]
    fn row_macro_and_serialize() {
        let row = row! {"a" => 1.5, "b" => 2, "c" => "x", "d" => true};
        assert_eq!(row.len(), 4);
        assert_eq!(row.entries[1].1, Value::Int(2));
        #[derive(Serialize)]
        struct S {
            loss: f64,
            n: u32,
        }
        let row = Row::serialize(&S { loss: 0.25, n: 3 }).unwrap();
        assert_eq!(row.entries[0].0.as_str(), "loss");
        assert_eq!(row.entries[0].1, Value::Float(0.25));
        assert!(matches!(
            Row::serialize(&3).unwrap_err(),
            Error::NotAnObject { found: "a number" }
        ));
        assert_eq!(row!().len(), 0);
    }
}
