//! W&B's *extended JSON*: the text inside every `*_json` field of a `.wandb` record.
//!
//! W&B stores history, summary and config values as JSON-encoded strings (`value_json`). The
//! dialect is standard JSON (RFC 8259) plus the bare tokens `NaN`, `Infinity` and `-Infinity`, as
//! written by Python's `json.dumps` (default `allow_nan=True`) and by wandb-core's Go encoder
//! `simplejsonext`. This module reads that dialect into a [`Value`] and writes a [`Value`] back
//! exactly as wandb-core's encoder does, so that the values we write are byte-identical to the SDK's
//! (wandb-core itself orders object keys at random; we keep insertion order).
//!
//! # Reading ([`parse`], [`parse_bytes`])
//!
//! * **Numbers.** A number without fraction and exponent is an integer: [`Value::Int`] when it fits
//!   `i64`, [`Value::UInt`] when it is above `i64::MAX` but fits `u64`, and [`Value::Float`] when it
//!   fits neither (rounded to the nearest `f64`). A number with `.` or an exponent is always a
//!   [`Value::Float`], as is `-0` (kept as `-0.0`, like `serde_json`, so that `-0` reads and writes
//!   back unchanged). Literals beyond the `f64` range become `±Infinity` (as in Python and in
//!   `simplejsonext`), those below it `±0`. `NaN`, `Infinity` and `-Infinity` are accepted with
//!   exactly that spelling; `-NaN`, `+Infinity`, `nan` or `inf` are errors.
//! * **Strings.** All RFC 8259 escapes, including `\uXXXX` surrogate pairs. A *lone* surrogate
//!   escape (a high surrogate not followed by a low one, or a low surrogate on its own) cannot be
//!   held in a Rust string and becomes U+FFFD REPLACEMENT CHARACTER, exactly as `simplejsonext` and
//!   Go's `encoding/json` do. Raw control characters (U+0000 to U+001F) inside strings are errors.
//! * **Objects.** Key order is kept. A key that occurs more than once keeps the position of its
//!   first occurrence and the value of its last one, as Python's `json.loads` does
//!   (`{"a":1,"b":2,"a":3}` reads as `{"a":3,"b":2}`).
//! * **Limits.** Nesting is limited to [`MAX_DEPTH`] (10,000, Go's limit) arrays and objects; the
//!   parser, the writer, comparisons, `Clone` and `Drop` use explicit stacks, so neither hostile
//!   input nor a deep value can overflow the call stack (even a 2 MiB thread's). Only the four JSON whitespace bytes
//!   are skipped; a byte-order mark or anything after the value is an error. Errors carry the byte
//!   offset at which the input went wrong and what was expected there.
//!
//! # Writing ([`Value::write_to`], `Display`, [`format_f64`])
//!
//! Output is compact (no spaces), with object keys in insertion order, as wandb-core's
//! `simplejsonext` emitter produces it:
//!
//! * Floats use Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that read back to
//!   the same `f64`, in exponent form when the decimal exponent is below -4 or at least 6
//!   (`1e+06`, `1.7953149106683292e+09`, `1e-05`), plain otherwise (`123456`, `0.0001`,
//!   `0.434747343`). Integral floats therefore lose their `.0` (`1.0` is written `1`), and `-0.0` is
//!   `-0`. `NaN`, `+inf` and `-inf` are written `NaN`, `Infinity` and `-Infinity`.
//! * Strings escape only what `simplejsonext` escapes: `"` and `\` with a backslash, `\b`, `\f`,
//!   `\n`, `\r`, `\t` by their short forms, other control characters below U+0020 as `\u00xx`
//!   (lower-case hex). Everything else, including `/`, `<`, `>`, `&`, U+007F, U+2028, U+2029 and all
//!   non-ASCII text, is written as raw UTF-8. This is *not* Go `encoding/json`'s default (which
//!   escapes `<`, `>`, `&` as `\u003c` and so on) nor Python's (`ensure_ascii`), because
//!   wandb-core writes history values with `simplejsonext`.
//!
//! A write followed by a parse gives back an *equivalent* value ([`Value::equivalent`]): the same
//! value, except that integral floats written without a fraction (such as `1.0`, written `1`) come
//! back as [`Value::Int`]. Writing that value again gives the same text.
//!
//! # From Rust values ([`to_value`])
//!
//! [`to_value`] turns any [`serde::Serialize`] value into a [`Value`] without going through
//! `serde_json`, so `NaN` and infinite floats survive (`serde_json` would turn them into `null`).

use std::fmt;

use serde::ser::{self, Serialize};

pub use crate::gofloat::{GoFloat, is_plain_decimal};

/// Deepest nesting of arrays and objects that [`parse`] accepts (the outermost container is level 1).
///
/// Go's `encoding/json` (which W&B's server uses) allows 10,000 levels, and so do we; `serde_json`
/// allows 128, real W&B values rarely exceed 5. Parsing, writing ([`Value::write_to`]), comparing
/// ([`Value::equivalent`]) and dropping values use explicit stacks or bounded recursion, so values
/// this deep are safe on a thread with a small (2 MiB) stack.
pub const MAX_DEPTH: usize = 10_000;

/// Levels that [`Value::write_to`] handles by plain recursion before it switches to an explicit
/// stack.
const RECURSION_LEVELS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Value and Map
// ---------------------------------------------------------------------------------------------

/// A JSON value of W&B's extended dialect.
///
/// The derived `PartialEq` is structural: `Float(NaN) != Float(NaN)` and `Float(1.0) != Int(1)`.
/// Use [`Value::equivalent`] to compare numbers by value and treat `NaN` as equal to itself.
#[derive(Debug, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX` that fits `u64`. The parser, [`to_value`] and the `From`
    /// conversions only produce this variant for values above `i64::MAX`; smaller values are
    /// [`Value::Int`].
    UInt(u64),
    /// A floating-point number, including `NaN` and the infinities.
    Float(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object with keys in insertion order.
    Object(Map),
}

impl Clone for Value {
    /// A deep copy, made with an explicit stack for nested containers.
    fn clone(&self) -> Self {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::UInt(u) => Value::UInt(*u),
            Value::Float(f) => Value::Float(*f),
            Value::String(s) => Value::String(s.clone()),
            Value::Array(_) | Value::Object(_) => clone_deep(self),
        }
    }
}

/// Copies a container without recursion: each open container is a frame holding the copies made so
/// far and the originals left.
fn clone_deep(root: &Value) -> Value {
    enum Frame<'a> {
        Array(Vec<Value>, std::slice::Iter<'a, Value>),
        Object(
            Vec<(String, Value)>,
            std::slice::Iter<'a, (String, Value)>,
            String,
        ),
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut current = root;
    loop {
        let mut done = match current {
            Value::Array(items) => {
                stack.push(Frame::Array(Vec::with_capacity(items.len()), items.iter()));
                None
            }
            Value::Object(map) => {
                let entries = Vec::with_capacity(map.entries.len());
                stack.push(Frame::Object(entries, map.entries.iter(), String::new()));
                None
            }
            scalar => Some(scalar.clone()),
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return done.unwrap_or_default();
            };
            match top {
                Frame::Array(copies, originals) => {
                    copies.extend(done.take());
                    if let Some(next) = originals.next() {
                        current = next;
                        break;
                    }
                    done = Some(Value::Array(std::mem::take(copies)));
                }
                Frame::Object(copies, originals, key) => {
                    if let Some(value) = done.take() {
                        copies.push((std::mem::take(key), value));
                    }
                    if let Some((next_key, next)) = originals.next() {
                        key.clone_from(next_key);
                        current = next;
                        break;
                    }
                    done = Some(Value::Object(Map {
                        entries: std::mem::take(copies),
                    }));
                }
            }
            stack.pop();
        }
    }
}

impl PartialEq for Value {
    /// Structural equality (see the type's docs), compared with an explicit stack.
    fn eq(&self, other: &Self) -> bool {
        let mut pending = vec![(self, other)];
        while let Some((a, b)) = pending.pop() {
            let same = match (a, b) {
                (Value::Null, Value::Null) => true,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::UInt(x), Value::UInt(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Array(x), Value::Array(y)) => {
                    pending.extend(x.iter().zip(y));
                    x.len() == y.len()
                }
                (Value::Object(x), Value::Object(y)) => {
                    for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
                        if kx != ky {
                            return false;
                        }
                        pending.push((vx, vy));
                    }
                    x.len() == y.len()
                }
                _ => false,
            };
            if !same {
                return false;
            }
        }
        true
    }
}

impl Drop for Value {
    /// Drops nested containers with an explicit stack: the derived drop would recurse once per
    /// level, and values may be nested [`MAX_DEPTH`] deep.
    fn drop(&mut self) {
        let mut stack = match self {
            Value::Array(items) if items.iter().any(Value::is_container) => std::mem::take(items),
            Value::Object(map) if map.entries.iter().any(|(_, v)| v.is_container()) => {
                map.entries.drain(..).map(|(_, value)| value).collect()
            }
            _ => return,
        };
        while let Some(mut value) = stack.pop() {
            match &mut value {
                Value::Array(items) => stack.append(items),
                Value::Object(map) => stack.extend(map.entries.drain(..).map(|(_, v)| v)),
                _ => {}
            }
            // `value` is now a scalar or an empty container: dropping it does not recurse.
        }
    }
}

/// The members of a JSON object: keys in insertion order, each key at most once.
///
/// A plain vector of pairs, which is faster than a hash map for the small objects W&B deals in.
/// Look-ups ([`Map::get`], [`Map::insert`]) are linear; building a map from many pairs at once
/// ([`FromIterator`], [`Extend`], the parser) removes duplicates in `O(n log n)`. Whenever a key
/// repeats, the first occurrence keeps its position and takes the last occurrence's value, like
/// assigning into a Python `dict`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl Map {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` members.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value for `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value for `key`, mutably, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`. An existing key keeps its position and its old value is returned;
    /// a new key is appended.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the other members, and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// The members in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (String, Value)> {
        self.entries.iter()
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in key order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The members as a slice, in order.
    #[must_use]
    pub fn as_slice(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Builds a map from pairs that may repeat keys (last value wins, first position kept).
    fn from_entries(mut entries: Vec<(String, Value)>) -> Self {
        dedup_last_wins(&mut entries);
        Self { entries }
    }
}

/// Removes repeated keys: the first occurrence keeps its place and gets the last occurrence's value.
fn dedup_last_wins(entries: &mut Vec<(String, Value)>) {
    let n = entries.len();
    if n < 2 {
        return;
    }
    // Most objects have no duplicates: check cheaply before doing any work.
    if n <= 16
        && !entries
            .iter()
            .enumerate()
            .any(|(i, (key, _))| entries[..i].iter().any(|(k, _)| k == key))
    {
        return;
    }
    // Indices sorted by (key, position): each run of equal keys is one key's occurrences.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
    if !order.windows(2).any(|w| entries[w[0]].0 == entries[w[1]].0) {
        return;
    }
    let mut keep = vec![true; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && entries[order[end]].0 == entries[order[start]].0 {
            end += 1;
        }
        if end - start > 1 {
            let first = order[start];
            let last = order[end - 1];
            let value = std::mem::take(&mut entries[last].1);
            entries[first].1 = value;
            for &dropped in &order[start + 1..end] {
                keep[dropped] = false;
            }
        }
        start = end;
    }
    let mut index = 0;
    entries.retain(|_| {
        let kept = keep.get(index).copied().unwrap_or(true);
        index += 1;
        kept
    });
}

impl<K: Into<String>> FromIterator<(K, Value)> for Map {
    /// Collects pairs; a repeated key keeps its first position and its last value.
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Self::from_entries(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<K: Into<String>> Extend<(K, Value)> for Map {
    /// Appends pairs; a key already present (or repeated) keeps its first position and takes the
    /// last value.
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v)));
        dedup_last_wins(&mut self.entries);
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a (String, Value);
    type IntoIter = std::slice::Iter<'a, (String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// A number in a form where any two can be compared exactly.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num_equivalent(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x == y,
        (Num::Float(x), Num::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Num::Int(i), Num::Float(f)) | (Num::Float(f), Num::Int(i)) => {
            // |f| < 2^127 makes the cast exact for an integral f.
            f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 && f as i128 == i
        }
    }
}

impl Value {
    /// Writes the value as compact JSON, exactly as wandb-core would (see the module docs).
    ///
    /// Values nested deeper than a few dozen levels are written with an explicit stack, so any depth
    /// the parser accepts is written without deep recursion.
    pub fn write_to(&self, out: &mut String) {
        self.write_nested(out, 0);
    }

    /// [`Value::write_to`] at nesting level `level`: recursion for the shallow values W&B deals in,
    /// [`Value::write_deep`] past [`RECURSION_LEVELS`].
    fn write_nested(&self, out: &mut String, level: usize) {
        if level >= RECURSION_LEVELS {
            self.write_deep(out);
            return;
        }
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Int(i) => write_i64(*i, out),
            Value::UInt(u) => write_u64(*u, out),
            Value::Float(f) => format_f64(*f, out),
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_nested(out, level + 1);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, key);
                    out.push(':');
                    value.write_nested(out, level + 1);
                }
                out.push('}');
            }
        }
    }

    /// Writes the value with an explicit stack instead of recursion.
    fn write_deep(&self, out: &mut String) {
        /// A container being written: the members left, and whether one was written yet.
        enum Open<'a> {
            Array(std::slice::Iter<'a, Value>, bool),
            Object(std::slice::Iter<'a, (String, Value)>, bool),
        }
        let mut stack: Vec<Open<'_>> = Vec::new();
        let mut next = Some(self);
        loop {
            if let Some(value) = next.take() {
                match value {
                    Value::Array(items) => {
                        out.push('[');
                        stack.push(Open::Array(items.iter(), false));
                    }
                    Value::Object(map) => {
                        out.push('{');
                        stack.push(Open::Object(map.entries.iter(), false));
                    }
                    scalar => scalar.write_nested(out, 0),
                }
            }
            let Some(open) = stack.last_mut() else {
                return;
            };
            match open {
                Open::Array(items, started) => match items.next() {
                    Some(item) => {
                        if std::mem::replace(started, true) {
                            out.push(',');
                        }
                        next = Some(item);
                    }
                    None => {
                        out.push(']');
                        stack.pop();
                    }
                },
                Open::Object(members, started) => match members.next() {
                    Some((key, value)) => {
                        if std::mem::replace(started, true) {
                            out.push(',');
                        }
                        write_str(out, key);
                        out.push(':');
                        next = Some(value);
                    }
                    None => {
                        out.push('}');
                        stack.pop();
                    }
                },
            }
        }
    }

    /// Whether two values mean the same: numbers are compared by numeric value across
    /// [`Value::Int`], [`Value::UInt`] and [`Value::Float`] (so `Float(1.0)` is equivalent to
    /// `Int(1)`, and `-0.0` to `0`), `NaN` is equivalent to `NaN`, and everything else must match
    /// exactly, including object key order. `parse(&v.to_string())` is always equivalent to `v`.
    #[must_use]
    pub fn equivalent(&self, other: &Value) -> bool {
        // Pairs still to compare: an explicit stack, so any depth is compared without recursion.
        let mut pending = vec![(self, other)];
        while let Some((a, b)) = pending.pop() {
            let same = match (a, b) {
                (Value::Null, Value::Null) => true,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::String(x), Value::String(y)) => x == y,
                (Value::Array(x), Value::Array(y)) => {
                    pending.extend(x.iter().zip(y));
                    x.len() == y.len()
                }
                (Value::Object(x), Value::Object(y)) => {
                    for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
                        if kx != ky {
                            return false;
                        }
                        pending.push((vx, vy));
                    }
                    x.len() == y.len()
                }
                _ => match (a.as_num(), b.as_num()) {
                    (Some(x), Some(y)) => num_equivalent(x, y),
                    _ => false,
                },
            };
            if !same {
                return false;
            }
        }
        true
    }

    /// Calls `visit` on this value and every value inside it, with the number of containers around
    /// it, without recursion.
    #[cfg(any(test, feature = "fuzzing"))]
    fn for_each_nested(&self, mut visit: impl FnMut(&Value, usize)) {
        let mut stack = vec![(self, 0)];
        while let Some((value, level)) = stack.pop() {
            visit(value, level);
            match value {
                Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
                Value::Object(map) => stack.extend(map.values().map(|v| (v, level + 1))),
                _ => {}
            }
        }
    }

    fn as_num(&self) -> Option<Num> {
        match self {
            Value::Int(i) => Some(Num::Int(i128::from(*i))),
            Value::UInt(u) => Some(Num::Int(i128::from(*u))),
            Value::Float(f) => Some(Num::Float(*f)),
            _ => None,
        }
    }

    /// The members, if this is an object; else the value back. (`Value` implements `Drop`, so
    /// a pattern cannot move its members out.)
    ///
    /// # Errors
    ///
    /// The value itself when it is not an object.
    pub fn into_object(mut self) -> Result<Map, Value> {
        match &mut self {
            Value::Object(map) => Ok(std::mem::take(map)),
            _ => Err(self),
        }
    }

    /// The items, if this is an array; else the value back.
    ///
    /// # Errors
    ///
    /// The value itself when it is not an array.
    pub fn into_array(mut self) -> Result<Vec<Value>, Value> {
        match &mut self {
            Value::Array(items) => Ok(std::mem::take(items)),
            _ => Err(self),
        }
    }

    /// Whether the value is an array or an object.
    fn is_container(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// Whether the value is `null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if this is one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits `i64`.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative integer.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }

    /// Any number as `f64` (integers beyond 2^53 are rounded).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The string, if this is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    #[must_use]
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members, if this is an object.
    #[must_use]
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The member `key`, if this is an object that has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    #[cfg(any(test, feature = "fuzzing"))]
    fn depth(&self) -> usize {
        let mut depth = 0;
        self.for_each_nested(|value, level| {
            if matches!(value, Value::Array(_) | Value::Object(_)) {
                depth = depth.max(level + 1);
            }
        });
        depth
    }

    #[cfg(any(test, feature = "fuzzing"))]
    fn has_non_finite(&self) -> bool {
        let mut found = false;
        self.for_each_nested(|value, _| {
            found |= matches!(value, Value::Float(f) if !f.is_finite());
        });
        found
    }
}

impl fmt::Display for Value {
    /// The same text as [`Value::write_to`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_to(&mut out);
        f.write_str(&out)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<u32> for Value {
    fn from(u: u32) -> Self {
        Value::Int(i64::from(u))
    }
}

impl From<u64> for Value {
    /// [`Value::Int`] when the number fits `i64`, else [`Value::UInt`].
    fn from(u: u64) -> Self {
        match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(u),
        }
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<f32> for Value {
    /// Widens by the shortest decimal form of the `f32`, so `0.1f32` becomes `0.1`, not
    /// `0.10000000149011612` (this is what a user logging an `f32` expects to see).
    fn from(f: f32) -> Self {
        Value::Float(crate::gofloat::widen_f32(f))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<Map> for Value {
    fn from(map: Map) -> Self {
        Value::Object(map)
    }
}

impl From<serde_json::Value> for Value {
    /// Converts a `serde_json` value. Numbers become [`Value::Int`] if they fit `i64`, else
    /// [`Value::UInt`] if they fit `u64`, else [`Value::Float`].
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    n.as_f64().map_or(Value::Null, Value::Float)
                }
            }
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(members) => Value::Object(Map::from_entries(
                members
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What went wrong in a [`JsonError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Something other than what the grammar allows at this point; names what was expected.
    Expected(&'static str),
    /// The input ended where the grammar needed more; names what was expected.
    UnexpectedEnd(&'static str),
    /// A raw control character (U+0000 to U+001F) inside a string; JSON requires it escaped.
    ControlCharacter,
    /// A backslash followed by something that is not a JSON escape.
    InvalidEscape,
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something other than whitespace after the value.
    TrailingCharacters,
    /// The input of [`parse_bytes`] is not UTF-8.
    InvalidUtf8,
    /// [`to_value`] could not represent the value (the message says why).
    Serialize(String),
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonErrorKind::Expected(what) => write!(f, "expected {what}"),
            JsonErrorKind::UnexpectedEnd(what) => {
                write!(f, "unexpected end of input, expected {what}")
            }
            JsonErrorKind::ControlCharacter => f.write_str("unescaped control character in string"),
            JsonErrorKind::InvalidEscape => f.write_str("invalid escape in string"),
            JsonErrorKind::TooDeep => {
                write!(f, "arrays and objects nested deeper than {MAX_DEPTH}")
            }
            JsonErrorKind::TrailingCharacters => f.write_str("trailing characters after the value"),
            JsonErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8"),
            JsonErrorKind::Serialize(msg) => f.write_str(msg),
        }
    }
}

/// An error from [`parse`], [`parse_bytes`] or [`to_value`].
///
/// Parse errors display as `invalid JSON at byte 12: expected ',' or '}'`; conversion errors from
/// [`to_value`] as `cannot convert to a JSON value: <reason>` (their offset is 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct JsonError {
    offset: usize,
    kind: JsonErrorKind,
}

impl JsonError {
    fn new(offset: usize, kind: JsonErrorKind) -> Self {
        Self { offset, kind }
    }

    /// Byte offset in the input where the error was found (0 for [`to_value`] errors).
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &JsonErrorKind {
        &self.kind
    }

    fn render(&self) -> String {
        match &self.kind {
            JsonErrorKind::Serialize(msg) => format!("cannot convert to a JSON value: {msg}"),
            kind => format!("invalid JSON at byte {}: {kind}", self.offset),
        }
    }
}

impl ser::Error for JsonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        JsonError::new(0, JsonErrorKind::Serialize(msg.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses one extended-JSON value; only whitespace may surround it. See the module docs for the
/// rules on numbers, strings, duplicate keys and nesting.
///
/// # Errors
///
/// A [`JsonError`] naming the byte offset of the first problem and what was expected there.
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = parser.parse_value()?;
    parser.skip_ws();
    if parser.pos < parser.bytes.len() {
        return Err(JsonError::new(
            parser.pos,
            JsonErrorKind::TrailingCharacters,
        ));
    }
    Ok(value)
}

/// Like [`parse`], for bytes that should be UTF-8.
///
/// # Errors
///
/// [`JsonErrorKind::InvalidUtf8`] at the first byte that is not valid UTF-8, or any error of
/// [`parse`].
pub fn parse_bytes(data: &[u8]) -> Result<Value, JsonError> {
    match std::str::from_utf8(data) {
        Ok(text) => parse(text),
        Err(e) => Err(JsonError::new(e.valid_up_to(), JsonErrorKind::InvalidUtf8)),
    }
}

/// A container being filled by the parser.
enum Frame {
    Array(Vec<Value>),
    /// Members so far, and the key of the member whose value is being parsed.
    Object(Vec<(String, Value)>, String),
}

/// For each byte, whether a string scan has to stop at it: `"`, `\` or a control character.
const STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The error for "`what` was expected at `at`", telling apart the end of input.
    fn expected_at(&self, at: usize, what: &'static str) -> JsonError {
        if at >= self.bytes.len() {
            JsonError::new(self.bytes.len(), JsonErrorKind::UnexpectedEnd(what))
        } else {
            JsonError::new(at, JsonErrorKind::Expected(what))
        }
    }

    fn expected(&self, what: &'static str) -> JsonError {
        self.expected_at(self.pos, what)
    }

    /// Parses a complete value, containers included, without recursion.
    fn parse_value(&mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            self.skip_ws();
            let Some(first) = self.peek() else {
                return Err(self.expected("a JSON value"));
            };
            let mut value = match first {
                b'[' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(JsonError::new(self.pos, JsonErrorKind::TooDeep));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                b'{' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(JsonError::new(self.pos, JsonErrorKind::TooDeep));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Object(Map::new())
                    } else {
                        let key = self.parse_key("'\"' or '}'")?;
                        stack.push(Frame::Object(Vec::new(), key));
                        continue 'value;
                    }
                }
                _ => self.parse_scalar(first)?,
            };
            // Hand the finished value to its container; close containers that end here.
            loop {
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                value = Value::Array(std::mem::take(items));
                                stack.pop();
                            }
                            _ => return Err(self.expected("',' or ']'")),
                        }
                    }
                    Some(Frame::Object(members, key)) => {
                        members.push((std::mem::take(key), value));
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_ws();
                                *key = self.parse_key("'\"' (an object key)")?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                value = Value::Object(Map::from_entries(std::mem::take(members)));
                                stack.pop();
                            }
                            _ => return Err(self.expected("',' or '}'")),
                        }
                    }
                }
            }
        }
    }

    /// Parses `"key"` and the `:` after it; `what` describes the expected opening quote.
    fn parse_key(&mut self, what: &'static str) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.expected(what));
        }
        let key = self.parse_string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.expected("':'"));
        }
        self.pos += 1;
        Ok(key)
    }

    fn parse_scalar(&mut self, first: u8) -> Result<Value, JsonError> {
        match first {
            b'"' => self.parse_string().map(Value::String),
            b'-' | b'0'..=b'9' => self.parse_number(),
            b't' => self.literal(b"true", "'true'", Value::Bool(true)),
            b'f' => self.literal(b"false", "'false'", Value::Bool(false)),
            b'n' => self.literal(b"null", "'null'", Value::Null),
            b'N' => self.literal(b"NaN", "'NaN'", Value::Float(f64::NAN)),
            b'I' => self.literal(b"Infinity", "'Infinity'", Value::Float(f64::INFINITY)),
            _ => Err(self.expected("a JSON value")),
        }
    }

    fn literal(
        &mut self,
        word: &[u8],
        what: &'static str,
        value: Value,
    ) -> Result<Value, JsonError> {
        for (i, &expected) in word.iter().enumerate() {
            if self.bytes.get(self.pos + i) != Some(&expected) {
                return Err(self.expected_at(self.pos + i, what));
            }
        }
        self.pos += word.len();
        Ok(value)
    }

    /// Consumes digits; returns how many.
    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn parse_number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
            if self.peek() == Some(b'I') {
                return self.literal(b"Infinity", "'Infinity'", Value::Float(f64::NEG_INFINITY));
            }
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.expected("a digit")),
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.expected("a digit after '.'"));
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.expected("a digit in the exponent"));
            }
            is_float = true;
        }
        if !is_float {
            // Integer fast path: no allocation, no float parsing.
            let mut magnitude: Option<u64> = Some(0);
            for &b in self.bytes.get(int_start..int_end).unwrap_or_default() {
                magnitude = magnitude
                    .and_then(|m| m.checked_mul(10))
                    .and_then(|m| m.checked_add(u64::from(b - b'0')));
            }
            match (negative, magnitude) {
                (false, Some(m)) => return Ok(Value::from(m)),
                (true, Some(0)) => return Ok(Value::Float(-0.0)),
                (true, Some(m)) => {
                    if let Some(i) = 0i64.checked_sub_unsigned(m) {
                        return Ok(Value::Int(i));
                    }
                }
                (_, None) => {}
            }
        }
        // Fraction, exponent or an integer too large: the standard library's correctly rounded
        // parser accepts every string the grammar above lets through.
        match self.text.get(start..self.pos).map(str::parse::<f64>) {
            Some(Ok(f)) => Ok(Value::Float(f)),
            _ => Err(JsonError::new(start, JsonErrorKind::Expected("a number"))),
        }
    }

    /// Four hex digits at `at` (inside a `\u` escape).
    fn hex4(&self, at: usize) -> Result<u32, JsonError> {
        let mut code = 0u32;
        for i in at..at + 4 {
            let digit = match self.bytes.get(i) {
                Some(&b) => (b as char).to_digit(16),
                None => None,
            };
            match digit {
                Some(d) => code = code * 16 + d,
                None => return Err(self.expected_at(i, "a hex digit in '\\u' escape")),
            }
        }
        Ok(code)
    }

    /// Parses a string; `self.pos` is at its opening quote.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        let start = self.pos + 1;
        let mut i = start;
        // Fast path: no escapes, one copy.
        loop {
            match self.bytes.get(i) {
                None => return Err(self.expected_at(i, "'\"' to close the string")),
                Some(&b) if !STRING_STOP[usize::from(b)] => i += 1,
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(self.text.get(start..i).unwrap_or_default().to_owned());
                }
                Some(b'\\') => break,
                Some(_) => return Err(JsonError::new(i, JsonErrorKind::ControlCharacter)),
            }
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(self.text.get(start..i).unwrap_or_default());
        loop {
            // `i` is at a backslash.
            let escape = self.bytes.get(i + 1).copied();
            let simple = match escape {
                None => return Err(self.expected_at(i + 1, "an escape character")),
                Some(b'"') => Some('"'),
                Some(b'\\') => Some('\\'),
                Some(b'/') => Some('/'),
                Some(b'b') => Some('\u{8}'),
                Some(b'f') => Some('\u{c}'),
                Some(b'n') => Some('\n'),
                Some(b'r') => Some('\r'),
                Some(b't') => Some('\t'),
                Some(b'u') => None,
                Some(_) => return Err(JsonError::new(i, JsonErrorKind::InvalidEscape)),
            };
            if let Some(c) = simple {
                out.push(c);
                i += 2;
            } else {
                let unit = self.hex4(i + 2)?;
                i += 6;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by `\u` and a low surrogate.
                        let low = if self.bytes.get(i..i + 2) == Some(b"\\u") {
                            self.hex4(i + 2)
                                .ok()
                                .filter(|u| (0xDC00..=0xDFFF).contains(u))
                        } else {
                            None
                        };
                        match low {
                            Some(low) => {
                                i += 6;
                                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                            }
                            None => None,
                        }
                    }
                    _ => char::from_u32(unit),
                };
                // Lone surrogates (and only they) have no `char`.
                out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // Copy the run up to the next quote, backslash or control character.
            let run_start = i;
            loop {
                match self.bytes.get(i) {
                    None => return Err(self.expected_at(i, "'\"' to close the string")),
                    Some(&b) if !STRING_STOP[usize::from(b)] => i += 1,
                    Some(&b) => {
                        out.push_str(self.text.get(run_start..i).unwrap_or_default());
                        match b {
                            b'"' => {
                                self.pos = i + 1;
                                return Ok(out);
                            }
                            b'\\' => break,
                            _ => return Err(JsonError::new(i, JsonErrorKind::ControlCharacter)),
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// For each byte, the character after the backslash that escapes it (`u` for `\u00xx`), or 0.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string literal, quotes included, escaped the way `simplejsonext`
/// does: `"` and `\` escaped, `\b \f \n \r \t` by their short forms, other control
/// characters as `\u00xx`, everything else (non-ASCII included) as it is.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    write_str_body(out, s);
    out.push('"');
}

/// Appends the inside of [`write_str`]'s literal: `s` escaped, without the quotes.
pub fn write_str_body(out: &mut String, s: &str) {
    let mut run_start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        // Every escaped byte is ASCII, so `run_start` and `i` are character boundaries.
        out.push_str(s.get(run_start..i).unwrap_or_default());
        out.push('\\');
        out.push(char::from(escape));
        if escape == b'u' {
            out.push_str("00");
            out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
        }
        run_start = i + 1;
    }
    out.push_str(s.get(run_start..).unwrap_or_default());
}

fn write_u64(mut n: u64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

fn write_i64(i: i64, out: &mut String) {
    if i < 0 {
        out.push('-');
    }
    write_u64(i.unsigned_abs(), out);
}

/// Appends `f` formatted as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, with `NaN`, `Infinity`
/// and `-Infinity` for the non-finite values: exactly how wandb-core writes a float (see
/// [`GoFloat`] for the rules and examples: `1795314910.6683292` is `1.7953149106683292e+09`,
/// `1e6` is `1e+06`, `1.0` is `1`).
pub fn format_f64(f: f64, out: &mut String) {
    out.push_str(GoFloat::new(f).as_str());
}

// ---------------------------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------------------------

impl Serialize for Value {
    /// Serializes as the natural JSON shape. Non-finite floats are handed to the serializer as
    /// `f64` and it decides (`serde_json` writes `null`).
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => serializer.collect_seq(items),
            Value::Object(map) => map.serialize(serializer),
        }
    }
}

impl Serialize for Map {
    /// Serializes as a map with the keys in order.
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

/// Converts any [`Serialize`] value into a [`Value`], keeping `NaN` and infinite floats (which
/// `serde_json::to_value` would turn into `null`).
///
/// The shapes are `serde_json`'s: structs and maps become objects (in serialization order, a
/// repeated key keeping its first position and last value), sequences and tuples arrays, `None`
/// and `()` `null`, unit enum variants their name as a string, other enum variants a one-member
/// object `{"Variant": …}`, and bytes an array of integers. Integers become [`Value::Int`] or,
/// above `i64::MAX`, [`Value::UInt`]; 128-bit integers beyond `u64` become [`Value::Float`], like
/// over-long integer literals in [`parse`]. `f32` values are widened through their shortest decimal
/// form, so `0.1f32` becomes `0.1`.
///
/// Map keys must be strings; like `serde_json`, chars, integers and unit enum variants are also
/// accepted and turned into their text. Any other key is an error naming its type.
///
/// # Errors
///
/// [`JsonErrorKind::Serialize`] for an unsupported map key, or whatever error the value's
/// `Serialize` implementation reports.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, JsonError> {
    value.serialize(ValueSerializer)
}

struct ValueSerializer;

fn int128_value(i: i128) -> Value {
    if let Ok(i) = i64::try_from(i) {
        Value::Int(i)
    } else if let Ok(u) = u64::try_from(i) {
        Value::UInt(u)
    } else {
        Value::Float(i as f64)
    }
}

fn variant_object(variant: &'static str, value: Value) -> Value {
    Value::Object(Map {
        entries: vec![(variant.to_owned(), value)],
    })
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = JsonError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, JsonError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, JsonError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, JsonError> {
        Ok(int128_value(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, JsonError> {
        Ok(Value::Int(i64::from(v)))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, JsonError> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, JsonError> {
        Ok(match u64::try_from(v) {
            Ok(u) => Value::from(u),
            Err(_) => Value::Float(v as f64),
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value, JsonError> {
        Ok(Value::Float(crate::gofloat::widen_f32(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, JsonError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, JsonError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, JsonError> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, JsonError> {
        Ok(Value::Array(
            v.iter().map(|&b| Value::Int(i64::from(b))).collect(),
        ))
    }
    fn serialize_none(self) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, JsonError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, JsonError> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, JsonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, JsonError> {
        Ok(variant_object(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, JsonError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, JsonError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.min(4096)),
            variant: Some(variant),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, JsonError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, JsonError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, JsonError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.min(4096)),
            key: None,
            variant: Some(variant),
        })
    }
}

/// Collects the items of a sequence, tuple or tuple variant.
struct SeqBuilder {
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        let array = Value::Array(self.items);
        match self.variant {
            Some(variant) => variant_object(variant, array),
            None => array,
        }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

/// Collects the members of a map, struct or struct variant.
struct MapBuilder {
    entries: Vec<(String, Value)>,
    key: Option<String>,
    variant: Option<&'static str>,
}

impl MapBuilder {
    fn finish(self) -> Value {
        let object = Value::Object(Map::from_entries(self.entries));
        match self.variant {
            Some(variant) => variant_object(variant, object),
            None => object,
        }
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.entries
            .push((key.to_owned(), value.serialize(ValueSerializer)?));
        Ok(())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        let key = self.key.take().ok_or_else(|| {
            <JsonError as ser::Error>::custom("serialize_value called before serialize_key")
        })?;
        self.entries.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value, JsonError> {
        Ok(self.finish())
    }
}

/// Turns a map key into a string, or fails naming the key's type.
struct KeySerializer;

fn bad_key(kind: &str) -> JsonError {
    JsonError::new(
        0,
        JsonErrorKind::Serialize(format!("map key must be a string, found {kind}")),
    )
}

fn int_key(n: impl fmt::Display) -> Result<String, JsonError> {
    Ok(n.to_string())
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = JsonError;
    type SerializeSeq = ser::Impossible<String, JsonError>;
    type SerializeTuple = ser::Impossible<String, JsonError>;
    type SerializeTupleStruct = ser::Impossible<String, JsonError>;
    type SerializeTupleVariant = ser::Impossible<String, JsonError>;
    type SerializeMap = ser::Impossible<String, JsonError>;
    type SerializeStruct = ser::Impossible<String, JsonError>;
    type SerializeStructVariant = ser::Impossible<String, JsonError>;

    fn serialize_str(self, v: &str) -> Result<String, JsonError> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, JsonError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_i16(self, v: i16) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_i32(self, v: i32) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_i64(self, v: i64) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_i128(self, v: i128) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_u8(self, v: u8) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_u16(self, v: u16) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_u32(self, v: u32) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_u64(self, v: u64) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_u128(self, v: u128) -> Result<String, JsonError> {
        int_key(v)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, JsonError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, JsonError> {
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> Result<String, JsonError> {
        Err(bad_key("bool"))
    }
    fn serialize_f32(self, _v: f32) -> Result<String, JsonError> {
        Err(bad_key("f32"))
    }
    fn serialize_f64(self, _v: f64) -> Result<String, JsonError> {
        Err(bad_key("f64"))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, JsonError> {
        Err(bad_key("bytes"))
    }
    fn serialize_none(self) -> Result<String, JsonError> {
        Err(bad_key("None"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, JsonError> {
        Err(bad_key("Option"))
    }
    fn serialize_unit(self) -> Result<String, JsonError> {
        Err(bad_key("unit ()"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, JsonError> {
        Err(bad_key(&format!("unit struct {name}")))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _value: &T,
    ) -> Result<String, JsonError> {
        Err(bad_key(&format!("enum variant {name}::{variant}")))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
        Err(bad_key("sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, JsonError> {
        Err(bad_key("tuple"))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, JsonError> {
        Err(bad_key(&format!("tuple struct {name}")))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        Err(bad_key(&format!("enum variant {name}::{variant}")))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
        Err(bad_key("map"))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, JsonError> {
        Err(bad_key(&format!("struct {name}")))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        Err(bad_key(&format!("enum variant {name}::{variant}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------------------------

/// Fuzz body: checks the parser and writer against each other and against `serde_json`, and
/// panics on any disagreement. Never panics for a correct implementation, whatever `data` is.
///
/// 1. Whatever `serde_json` accepts, [`parse_bytes`] accepts too, with an equivalent value.
/// 2. If [`parse_bytes`] accepts `data`, the written text parses again to an equivalent value,
///    which writes back to the same text.
/// 3. That text is accepted by `serde_json` when it has no `NaN`/`Infinity` and is nested
///    shallowly enough for `serde_json`'s recursion limit.
#[cfg(any(test, feature = "fuzzing"))]
pub fn roundtrip_check(data: &[u8]) {
    let ours = parse_bytes(data);
    if let Ok(theirs) = serde_json::from_slice::<serde_json::Value>(data) {
        let theirs = Value::from(theirs);
        match &ours {
            Ok(value) => assert!(
                value.equivalent(&theirs),
                "serde_json read {theirs:?}, we read {value:?}"
            ),
            Err(e) => panic!("serde_json accepted input we rejected: {e}"),
        }
    }
    let Ok(value) = ours else { return };
    let text = value.to_string();
    let again =
        parse(&text).unwrap_or_else(|e| panic!("cannot re-read our own output {text:?}: {e}"));
    assert!(
        value.equivalent(&again),
        "round trip changed {value:?} into {again:?}"
    );
    assert_eq!(again.to_string(), text, "second write differs");
    if !value.has_non_finite() && value.depth() < 120 {
        let theirs = serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("serde_json rejects our output {text:?}: {e}"));
        assert!(
            value.equivalent(&Value::from(theirs)),
            "serde_json reads {text:?} differently"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn fmt(f: f64) -> String {
        let mut out = String::new();
        format_f64(f, &mut out);
        out
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (*k, v.clone())).collect())
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    /// Expected texts produced by Go 1.19's `strconv.FormatFloat(v, 'g', -1, 64)`.
    #[test]
    fn floats_are_formatted_like_go() {
        let table: &[(f64, &str)] = &[
            (1795314910.6683292, "1.7953149106683292e+09"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.434747343, "0.434747343"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (100.0, "100"),
            (1e15, "1e+15"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN, "-1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (2.225073858507201e-308, "2.225073858507201e-308"),
            (1.5e-323, "1.5e-323"),
            (1e-7, "1e-07"),
            (0.1, "0.1"),
            (0.30000000000000004, "0.30000000000000004"),
            (1.5, "1.5"),
            (-2.5, "-2.5"),
            (999999.0, "999999"),
            (999999.5, "999999.5"),
            (1234567.0, "1.234567e+06"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (12345.678, "12345.678"),
            (0.000123, "0.000123"),
            (0.00001234, "1.234e-05"),
            (1e22, "1e+22"),
            (1e23, "1e+23"),
            (9007199254740992.0, "9.007199254740992e+15"),
            (9223372036854775808.0, "9.223372036854776e+18"),
            (18446744073709551616.0, "1.8446744073709552e+19"),
            (-1e-300, "-1e-300"),
            // An exact tie between two shortest candidates: Go takes the even one.
            (
                f64::from_bits(0x4317_9085_685d_83c9),
                "1.6582067800885622e+15",
            ), // 1658206780088562.25
            (f64::from_bits(0x4302d77f67030d4a), "6.629364712329372e+14"),
            (100000.0, "100000"),
            (31.4159, "31.4159"),
            (608863452348.1149, "6.088634523481149e+11"),
            (-123.456, "-123.456"),
            (0.001, "0.001"),
            (9.999e-5, "9.999e-05"),
            (1e-10, "1e-10"),
            (-1e6, "-1e+06"),
            (12.0, "12"),
            (0.5, "0.5"),
            (f64::NAN, "NaN"),
            (-f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, expected) in table {
            assert_eq!(fmt(value), expected, "formatting {value:e}");
            assert_eq!(Value::Float(value).to_string(), expected);
        }
    }

    #[test]
    fn format_appends() {
        let mut out = String::from("x=");
        format_f64(2.5, &mut out);
        assert_eq!(out, "x=2.5");
    }

    #[test]
    fn numbers_parse_to_the_documented_variants() {
        let cases: &[(&str, Value)] = &[
            ("0", Value::Int(0)),
            ("-1", Value::Int(-1)),
            ("42", Value::Int(42)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            ("-9223372036854775808", Value::Int(i64::MIN)),
            (
                "9223372036854775808",
                Value::UInt(9_223_372_036_854_775_808),
            ),
            ("18446744073709551615", Value::UInt(u64::MAX)),
            ("18446744073709551616", Value::Float(18446744073709551616.0)),
            ("-9223372036854775809", Value::Float(-9223372036854775809.0)),
            (
                "123456789012345678901234567890",
                Value::Float(1.2345678901234568e29),
            ),
            ("1.0", Value::Float(1.0)),
            ("1e2", Value::Float(100.0)),
            ("1E+2", Value::Float(100.0)),
            ("25e-2", Value::Float(0.25)),
            ("-0.5", Value::Float(-0.5)),
            ("0.434747343", Value::Float(0.434747343)),
            ("1.7953149106683292e+09", Value::Float(1795314910.6683292)),
            ("1e400", Value::Float(f64::INFINITY)),
            ("-1e400", Value::Float(f64::NEG_INFINITY)),
            ("1e-400", Value::Float(0.0)),
            ("Infinity", Value::Float(f64::INFINITY)),
            ("-Infinity", Value::Float(f64::NEG_INFINITY)),
        ];
        for (text, expected) in cases {
            assert_eq!(&parse(text).expect(text), expected, "parsing {text}");
        }
        // `-0` keeps its sign, and `NaN` is a float.
        let negative_zero = parse("-0").expect("-0");
        assert!(matches!(negative_zero, Value::Float(f) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(negative_zero.to_string(), "-0");
        assert!(matches!(parse("NaN"), Ok(Value::Float(f)) if f.is_nan()));
        assert!(
            matches!(parse(" [NaN, -Infinity] "), Ok(Value::Array(ref items)) if items.len() == 2)
        );
    }

    #[test]
    fn literals_and_whitespace() {
        assert_eq!(parse("true"), Ok(Value::Bool(true)));
        assert_eq!(parse("false"), Ok(Value::Bool(false)));
        assert_eq!(parse(" \t\r\nnull \n"), Ok(Value::Null));
        assert_eq!(parse("[]"), Ok(Value::Array(vec![])));
        assert_eq!(parse("{ }"), Ok(Value::Object(Map::new())));
        assert_eq!(
            parse(r#" { "a" : [ 1 , { "b" : null } ] , "c" : "d" } "#),
            Ok(obj(&[
                (
                    "a",
                    Value::Array(vec![Value::Int(1), obj(&[("b", Value::Null)])])
                ),
                ("c", s("d")),
            ]))
        );
    }

    #[test]
    fn strings_unescape() {
        let cases: &[(&str, &str)] = &[
            (r#""""#, ""),
            (r#""plain""#, "plain"),
            (r#""a\"b\\c\/d""#, "a\"b\\c/d"),
            (r#""\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#""\u0041\u00e9\u4e2D""#, "Aé中"),
            (r#""\u0000""#, "\0"),
            ("\"raw é 😀 \u{7f}\"", "raw é 😀 \u{7f}"),
            // Surrogate pairs, upper- and lower-case hex.
            (r#""\ud83d\ude00""#, "😀"),
            (r#""\uD834\uDD1E!""#, "𝄞!"),
            (r#""\udbff\udfff""#, "\u{10ffff}"),
            // Lone surrogates become U+FFFD.
            (r#""\ud800""#, "\u{fffd}"),
            (r#""\ud800x""#, "\u{fffd}x"),
            (r#""\ud800\u0041""#, "\u{fffd}A"),
            (r#""\ud800\n""#, "\u{fffd}\n"),
            (r#""\udc00""#, "\u{fffd}"),
            (r#""\udc00\ud800""#, "\u{fffd}\u{fffd}"),
            (r#""\ud800\ud800\udc00""#, "\u{fffd}\u{10000}"),
            (r#""x\ude00\ud83d\ude00y""#, "x\u{fffd}😀y"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(s(expected)), "parsing {text}");
        }
    }

    #[test]
    fn strings_are_escaped_like_simplejsonext() {
        let value = s("q\"b\\s/<>&\u{7f}\u{2028}é😀\t\n\r\u{8}\u{c}\u{0}\u{1f}\u{1b}");
        assert_eq!(
            value.to_string(),
            "\"q\\\"b\\\\s/<>&\u{7f}\u{2028}é😀\\t\\n\\r\\b\\f\\u0000\\u001f\\u001b\""
        );
        assert_eq!(s("").to_string(), r#""""#);
        assert_eq!(s("no escapes at all").to_string(), r#""no escapes at all""#);
    }

    #[test]
    fn values_are_written_compactly_in_order() {
        let value = obj(&[
            ("_step", Value::Int(3)),
            ("loss", Value::Float(0.25)),
            ("acc", Value::Float(1.0)),
            (
                "nested",
                obj(&[(
                    "list",
                    Value::Array(vec![Value::Null, Value::Bool(true), Value::Int(-7)]),
                )]),
            ),
            ("big", Value::UInt(u64::MAX)),
            ("min", Value::Int(i64::MIN)),
            ("nan", Value::Float(f64::NAN)),
            ("empty", Value::Array(vec![])),
            ("none", Value::Object(Map::new())),
        ]);
        assert_eq!(
            value.to_string(),
            r#"{"_step":3,"loss":0.25,"acc":1,"nested":{"list":[null,true,-7]},"big":18446744073709551615,"min":-9223372036854775808,"nan":NaN,"empty":[],"none":{}}"#
        );
        let mut out = String::from(">");
        Value::Int(0).write_to(&mut out);
        assert_eq!(out, ">0");
    }

    #[test]
    fn duplicate_keys_last_value_first_position() {
        let value = parse(r#"{"a":1,"b":2,"a":3}"#).expect("valid");
        assert_eq!(value, obj(&[("a", Value::Int(3)), ("b", Value::Int(2))]));
        assert_eq!(value.to_string(), r#"{"a":3,"b":2}"#);
        // Large objects take the sorting path.
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{}\":{i},", i % 40));
        }
        text.push_str("\"last\":true}");
        let value = parse(&text).expect("valid");
        let map = value.as_object().expect("object");
        assert_eq!(map.len(), 41);
        assert_eq!(map.keys().next(), Some("k0"));
        assert_eq!(map.get("k0"), Some(&Value::Int(80)));
        assert_eq!(map.get("k39"), Some(&Value::Int(79)));
        assert_eq!(map.as_slice()[39].0, "k39");
        assert_eq!(map.as_slice()[40].0, "last");
    }

    #[test]
    fn map_api() {
        let mut map = Map::with_capacity(4);
        assert!(map.is_empty());
        assert_eq!(map.insert("a", Value::Int(1)), None);
        assert_eq!(map.insert("b", Value::Int(2)), None);
        assert_eq!(map.insert("a", Value::Int(3)), Some(Value::Int(1)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(map.contains_key("b"));
        if let Some(v) = map.get_mut("b") {
            *v = Value::Null;
        }
        map.extend([("c", Value::Int(4)), ("a", Value::Int(5))]);
        assert_eq!(
            Value::Object(map.clone()).to_string(),
            r#"{"a":5,"b":null,"c":4}"#
        );
        assert_eq!(map.remove("a"), Some(Value::Int(5)));
        assert_eq!(map.remove("zz"), None);
        assert_eq!(
            map.values().cloned().collect::<Vec<_>>(),
            [Value::Null, Value::Int(4)]
        );
        let pairs: Vec<(String, Value)> = map.clone().into_iter().collect();
        assert_eq!(pairs.len(), 2);
        assert_eq!((&map).into_iter().count(), 2);
        let collected: Map = vec![
            ("x", Value::Int(1)),
            ("y", Value::Int(2)),
            ("x", Value::Int(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            collected.as_slice(),
            &[
                ("x".to_owned(), Value::Int(3)),
                ("y".to_owned(), Value::Int(2))
            ]
        );
    }

    #[test]
    fn accessors_and_conversions() {
        let value =
            parse(r#"{"i":-3,"u":18446744073709551615,"f":2.5,"s":"t","b":true,"a":[1],"n":null}"#)
                .expect("valid");
        assert_eq!(value.get("i").and_then(Value::as_i64), Some(-3));
        assert_eq!(value.get("i").and_then(Value::as_u64), None);
        assert_eq!(value.get("u").and_then(Value::as_u64), Some(u64::MAX));
        assert_eq!(value.get("u").and_then(Value::as_i64), None);
        assert_eq!(value.get("f").and_then(Value::as_f64), Some(2.5));
        assert_eq!(value.get("i").and_then(Value::as_f64), Some(-3.0));
        assert_eq!(value.get("s").and_then(Value::as_str), Some("t"));
        assert_eq!(value.get("b").and_then(Value::as_bool), Some(true));
        assert_eq!(
            value.get("a").and_then(Value::as_array).map(<[Value]>::len),
            Some(1)
        );
        assert!(value.get("n").is_some_and(Value::is_null));
        assert_eq!(value.get("missing"), None);
        assert_eq!(Value::Int(1).get("x"), None);
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_eq!(Value::from(0.1f32), Value::Float(0.1));
        assert_eq!(Value::from(7u32), Value::Int(7));
        assert_eq!(Value::from(-7i32), Value::Int(-7));
        assert_eq!(Value::from("x"), s("x"));
        assert_eq!(Value::from(String::from("y")), s("y"));
        assert_eq!(Value::from(true), Value::Bool(true));
        assert_eq!(
            Value::from(vec![Value::Null]),
            Value::Array(vec![Value::Null])
        );
        assert_eq!(Value::from(Map::new()), Value::Object(Map::new()));
        assert_eq!(Value::default(), Value::Null);
    }

    #[test]
    fn errors_name_offset_and_expectation() {
        use JsonErrorKind as K;
        let cases: &[(&str, usize, JsonErrorKind)] = &[
            ("", 0, K::UnexpectedEnd("a JSON value")),
            ("   ", 3, K::UnexpectedEnd("a JSON value")),
            ("x", 0, K::Expected("a JSON value")),
            ("\u{feff}1", 0, K::Expected("a JSON value")),
            ("1 2", 2, K::TrailingCharacters),
            ("01", 1, K::TrailingCharacters),
            ("[1 2]", 3, K::Expected("',' or ']'")),
            ("[1,]", 3, K::Expected("a JSON value")),
            ("[,1]", 1, K::Expected("a JSON value")),
            ("[1", 2, K::UnexpectedEnd("',' or ']'")),
            ("{\"a\":1 \"b\":2}", 7, K::Expected("',' or '}'")),
            ("{\"a\":1,}", 7, K::Expected("'\"' (an object key)")),
            ("{1:2}", 1, K::Expected("'\"' or '}'")),
            ("{\"a\" 1}", 5, K::Expected("':'")),
            ("{\"a\":}", 5, K::Expected("a JSON value")),
            ("{\"a\"", 4, K::UnexpectedEnd("':'")),
            ("-", 1, K::UnexpectedEnd("a digit")),
            ("-a", 1, K::Expected("a digit")),
            ("+1", 0, K::Expected("a JSON value")),
            (".5", 0, K::Expected("a JSON value")),
            ("1.", 2, K::UnexpectedEnd("a digit after '.'")),
            ("1.e5", 2, K::Expected("a digit after '.'")),
            ("1e", 2, K::UnexpectedEnd("a digit in the exponent")),
            ("1e+x", 3, K::Expected("a digit in the exponent")),
            ("tru", 3, K::UnexpectedEnd("'true'")),
            ("trUe", 2, K::Expected("'true'")),
            ("nul", 3, K::UnexpectedEnd("'null'")),
            ("nan", 1, K::Expected("'null'")),
            ("NaN1", 3, K::TrailingCharacters),
            ("Inf", 3, K::UnexpectedEnd("'Infinity'")),
            ("-NaN", 1, K::Expected("a digit")),
            ("-Inf", 4, K::UnexpectedEnd("'Infinity'")),
            ("\"abc", 4, K::UnexpectedEnd("'\"' to close the string")),
            ("\"a\\", 3, K::UnexpectedEnd("an escape character")),
            ("\"a\\x\"", 2, K::InvalidEscape),
            ("\"a\\u12\"", 6, K::Expected("a hex digit in '\\u' escape")),
            (
                "\"a\\u12",
                6,
                K::UnexpectedEnd("a hex digit in '\\u' escape"),
            ),
            (
                "\"\\ud800\\uZZZZ\"",
                9,
                K::Expected("a hex digit in '\\u' escape"),
            ),
            ("\"a\nb\"", 2, K::ControlCharacter),
            ("\"a\\nb\tc\"", 5, K::ControlCharacter),
            ("\"\\ud800", 7, K::UnexpectedEnd("'\"' to close the string")),
        ];
        for (text, offset, kind) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(
                (err.offset(), err.kind()),
                (*offset, kind),
                "parsing {text:?}"
            );
        }
        let err = parse(r#"{"step": 1, "loss" 2}"#).expect_err("invalid");
        assert_eq!(err.to_string(), "invalid JSON at byte 19: expected ':'");
        let err = parse(r#"{"a":1,"b":2 "c":3}"#).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid JSON at byte 13: expected ',' or '}'"
        );
        let err = parse("[1,").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid JSON at byte 3: unexpected end of input, expected a JSON value"
        );
    }

    #[test]
    fn parse_bytes_checks_utf8() {
        assert_eq!(parse_bytes(b"\"ok\""), Ok(s("ok")));
        let err = parse_bytes(b"[\"ab\xff\"]").expect_err("invalid UTF-8");
        assert_eq!((err.offset(), err.kind()), (4, &JsonErrorKind::InvalidUtf8));
        assert_eq!(err.to_string(), "invalid JSON at byte 4: invalid UTF-8");
    }

    /// Runs `f` on a thread with a 2 MiB stack (what the tools' worker threads may have), so deep
    /// recursion would overflow.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .expect("spawn")
            .join()
            .expect("small-stack thread panicked");
    }

    #[test]
    fn deep_values_up_to_go_s_limit_on_a_small_stack() {
        on_small_stack(|| {
            let arrays = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let objects =
                |depth: usize| format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
            let mixed = |depth: usize| {
                format!(
                    "{}null{}",
                    "[{\"a\":".repeat(depth / 2),
                    "}]".repeat(depth / 2)
                )
            };
            for depth in [600, 10_000] {
                for text in [arrays(depth), objects(depth), mixed(depth)] {
                    let value = parse(&text).expect("deep but valid");
                    assert_eq!(value.depth(), depth);
                    let written = value.to_string();
                    assert_eq!(written, text);
                    let again = parse(&written).expect("reads back");
                    assert!(value.equivalent(&again));
                    assert!(value == again);
                    let copy = value.clone();
                    drop(value);
                    drop(again);
                    assert_eq!(copy.depth(), depth);
                }
            }
            for text in [arrays(10_001), objects(10_001), mixed(10_002)] {
                let err = parse(&text).expect_err("deeper than Go allows");
                assert_eq!(err.kind(), &JsonErrorKind::TooDeep);
                assert!(
                    err.to_string()
                        .ends_with("arrays and objects nested deeper than 10000"),
                    "{err}"
                );
            }
        });
    }

    #[test]
    fn depth_is_limited() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let err = parse(&nested(MAX_DEPTH + 1)).expect_err("too deep");
        assert_eq!(
            (err.offset(), err.kind()),
            (MAX_DEPTH, &JsonErrorKind::TooDeep)
        );
        let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let value = parse(&objects(MAX_DEPTH)).expect("deep objects");
        assert_eq!(value.depth(), MAX_DEPTH);
        assert_eq!(parse(&value.to_string()).map(|v| v.depth()), Ok(MAX_DEPTH));
        let err = parse(&objects(MAX_DEPTH + 1)).expect_err("too deep");
        assert_eq!(
            (err.offset(), err.kind()),
            (MAX_DEPTH * 5, &JsonErrorKind::TooDeep)
        );
        // Hostile input: a million open brackets is an error, not a stack overflow.
        let err = parse(&"[".repeat(1_000_000)).expect_err("too deep");
        assert_eq!(err.kind(), &JsonErrorKind::TooDeep);
        let err = parse(&"[{\"k\":".repeat(300_000)).expect_err("too deep");
        assert_eq!(err.kind(), &JsonErrorKind::TooDeep);
    }

    #[test]
    fn equivalence() {
        assert!(Value::Float(f64::NAN).equivalent(&Value::Float(f64::NAN)));
        assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert!(Value::Float(1.0).equivalent(&Value::Int(1)));
        assert!(Value::Int(1).equivalent(&Value::Float(1.0)));
        assert!(Value::UInt(5).equivalent(&Value::Int(5)));
        assert!(Value::Float(-0.0).equivalent(&Value::Int(0)));
        assert!(!Value::Float(1.5).equivalent(&Value::Int(1)));
        assert!(!Value::Float(9223372036854775807.0).equivalent(&Value::Int(i64::MAX)));
        assert!(
            Value::Float(18446744073709551615.0).equivalent(&Value::Float(18446744073709551616.0))
        );
        assert!(!Value::Float(f64::INFINITY).equivalent(&Value::Int(i64::MAX)));
        assert!(!Value::Int(1).equivalent(&s("1")));
        assert!(
            !obj(&[("a", Value::Int(1)), ("b", Value::Int(2))])
                .equivalent(&obj(&[("b", Value::Int(2)), ("a", Value::Int(1))]))
        );
        assert!(!Value::Array(vec![Value::Null]).equivalent(&Value::Array(vec![])));
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn float(&mut self) -> f64 {
            match self.below(8) {
                0 => f64::from_bits(self.next()),
                1 => [
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    -0.0,
                    0.0,
                    5e-324,
                    f64::MAX,
                ][self.below(7) as usize],
                2 => self.below(1000) as f64,
                3 => (self.next() >> 11) as f64 / (1u64 << 53) as f64,
                4 => 1.7e9 + self.below(1 << 30) as f64 / 1024.0,
                _ => (self.next() as i64 as f64) * 10f64.powi(self.below(40) as i32 - 20),
            }
        }

        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "_step", "é", "😀", "\"", "\\", "\n", "\u{1}", "\u{7f}", "/", "<", " ",
                "\u{2028}", "中", "\t",
            ];
            (0..self.below(8))
                .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
                .collect()
        }

        fn value(&mut self, depth: usize) -> Value {
            let kinds = if depth == 0 { 6 } else { 8 };
            match self.below(kinds) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => Value::Int(self.next() as i64 >> self.below(64)),
                3 => Value::from(self.next()),
                4 => Value::Float(self.float()),
                5 => Value::String(self.string()),
                6 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
                _ => Value::Object(
                    (0..self.below(5))
                        .map(|_| (self.string(), self.value(depth - 1)))
                        .collect(),
                ),
            }
        }
    }

    #[test]
    fn random_values_round_trip() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let value = rng.value(4);
            let text = value.to_string();
            let back = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(back.equivalent(&value), "{value:?} -> {text} -> {back:?}");
            assert_eq!(back.to_string(), text);
            roundtrip_check(text.as_bytes());
            if !value.has_non_finite() {
                let theirs: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert!(
                    Value::from(theirs).equivalent(&value),
                    "serde_json reads {text} differently"
                );
            }
        }
    }

    #[test]
    fn specific_values_round_trip() {
        let values = [
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(-0.0),
            Value::Float(5e-324),
            Value::Float(f64::MAX),
            Value::Float(1e21),
            Value::Float(123456.0),
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            s("\u{0}\u{1f}\"\\\u{10ffff}"),
            obj(&[
                ("nan", Value::Float(f64::NAN)),
                ("arr", Value::Array(vec![Value::Float(f64::INFINITY)])),
            ]),
        ];
        for value in values {
            let text = value.to_string();
            let back = parse(&text).expect("own output");
            assert!(back.equivalent(&value), "{value:?}");
            assert_eq!(back.to_string(), text);
        }
        // -0.0 keeps its sign bit through a round trip.
        assert!(
            matches!(parse(&Value::Float(-0.0).to_string()), Ok(Value::Float(f)) if f.is_sign_negative())
        );
    }

    #[test]
    fn serde_json_interop() {
        let theirs: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,-2,18446744073709551615,2.5,"x",null,true],"b":{}}"#)
                .expect("valid");
        let ours = Value::from(theirs.clone());
        assert_eq!(
            ours,
            obj(&[
                (
                    "a",
                    Value::Array(vec![
                        Value::Int(1),
                        Value::Int(-2),
                        Value::UInt(u64::MAX),
                        Value::Float(2.5),
                        s("x"),
                        Value::Null,
                        Value::Bool(true)
                    ])
                ),
                ("b", Value::Object(Map::new())),
            ])
        );
        // Serialize: serde_json gets the same shape back; non-finite floats become null there.
        assert_eq!(serde_json::to_value(&ours).expect("serializable"), theirs);
        let with_nan = obj(&[("x", Value::Float(f64::NAN)), ("y", Value::Float(0.5))]);
        assert_eq!(
            serde_json::to_string(&with_nan).expect("serializable"),
            r#"{"x":null,"y":0.5}"#
        );
    }

    #[derive(serde::Serialize)]
    struct Metrics {
        step: u64,
        loss: f64,
        acc: f32,
        name: &'static str,
        tags: Vec<&'static str>,
        best: Option<f64>,
        missing: Option<f64>,
        kind: Kind,
        shape: Shape,
        pair: (i8, bool),
        raw: serde_bytes_like::Bytes,
        unit: (),
        per_class: BTreeMap<u32, f64>,
    }

    #[derive(serde::Serialize)]
    enum Kind {
        Train,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Rect { w: f64, h: f64 },
    }

    mod serde_bytes_like {
        pub(super) struct Bytes(pub(super) Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn to_value_keeps_non_finite_floats() {
        let metrics = Metrics {
            step: 7,
            loss: f64::NAN,
            acc: 0.1,
            name: "run",
            tags: vec!["a", "b"],
            best: Some(f64::INFINITY),
            missing: None,
            kind: Kind::Train,
            shape: Shape::Rect {
                w: 1.0,
                h: f64::NEG_INFINITY,
            },
            pair: (-1, false),
            raw: serde_bytes_like::Bytes(vec![0, 255]),
            unit: (),
            per_class: BTreeMap::from([(1, 0.5), (2, 0.25)]),
        };
        let value = to_value(&metrics).expect("serializable");
        assert_eq!(
            value.to_string(),
            r#"{"step":7,"loss":NaN,"acc":0.1,"name":"run","tags":["a","b"],"best":Infinity,"missing":null,"kind":"Train","shape":{"Rect":{"w":1,"h":-Infinity}},"pair":[-1,false],"raw":[0,255],"unit":null,"per_class":{"1":0.5,"2":0.25}}"#
        );
        // Shapes agree with serde_json's wherever serde_json can represent the value.
        let finite = (
            u64::MAX,
            i128::from(i64::MIN),
            Some("x"),
            vec![1.5f64],
            'c',
            Kind::Train,
        );
        let ours = to_value(&finite).expect("serializable");
        let theirs = Value::from(serde_json::to_value(&finite).expect("serializable"));
        assert_eq!(ours, theirs);
        assert_eq!(to_value(&u128::MAX), Ok(Value::Float(u128::MAX as f64)));
        assert_eq!(
            to_value(&(-1i128 << 100)),
            Ok(Value::Float(-(2f64.powi(100))))
        );
        assert_eq!(to_value(&(u64::MAX as i128)), Ok(Value::UInt(u64::MAX)));
        assert_eq!(to_value(&5u128), Ok(Value::Int(5)));
        assert_eq!(
            to_value(&f32::NAN).map(|v| v.to_string()),
            Ok("NaN".to_owned())
        );
        assert_eq!(to_value(&"s"), Ok(s("s")));
        // A Value serializes into an equivalent Value.
        assert!(to_value(&value).is_ok_and(|v| v.equivalent(&value)));
    }

    #[test]
    fn to_value_map_keys() {
        let ints = HashMap::from([(3u8, true)]);
        assert_eq!(
            to_value(&ints).map(|v| v.to_string()),
            Ok(r#"{"3":true}"#.to_owned())
        );
        let chars = BTreeMap::from([('k', 1)]);
        assert_eq!(
            to_value(&chars).map(|v| v.to_string()),
            Ok(r#"{"k":1}"#.to_owned())
        );
        let variants = BTreeMap::from([(KeyKind::Train, 1)]);
        assert_eq!(
            to_value(&variants).map(|v| v.to_string()),
            Ok(r#"{"Train":1}"#.to_owned())
        );
        let cases: Vec<(Result<Value, JsonError>, &str)> = vec![
            (to_value(&BTreeMap::from([((1, 2), 0)])), "tuple"),
            (to_value(&BTreeMap::from([(true, 0)])), "bool"),
            (to_value(&HashMap::from([(Wrapper(1.5), 0)])), "f64"),
            (to_value(&BTreeMap::from([(vec![1], 0)])), "sequence"),
            (to_value(&BTreeMap::from([(None::<u8>, 0)])), "None"),
        ];
        for (result, kind) in cases {
            let err = result.expect_err(kind);
            assert_eq!(
                err.to_string(),
                format!("cannot convert to a JSON value: map key must be a string, found {kind}")
            );
            assert!(matches!(err.kind(), JsonErrorKind::Serialize(_)));
        }
    }

    #[derive(serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum KeyKind {
        Train,
    }

    #[derive(serde::Serialize, PartialEq)]
    struct Wrapper(f64);
    impl Eq for Wrapper {}
    impl std::hash::Hash for Wrapper {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.to_bits().hash(state);
        }
    }

    #[test]
    fn to_value_duplicate_keys_last_wins() {
        struct Dup;
        impl serde::Serialize for Dup {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("a", &1)?;
                map.serialize_entry("b", &2)?;
                map.serialize_entry("a", &3)?;
                map.end()
            }
        }
        assert_eq!(
            to_value(&Dup).map(|v| v.to_string()),
            Ok(r#"{"a":3,"b":2}"#.to_owned())
        );
    }

    #[test]
    fn roundtrip_check_accepts_a_corpus() {
        let corpus: &[&[u8]] = &[
            b"0",
            b"-0",
            b"1.0",
            b"1e400",
            b"-1e-400",
            b"NaN",
            b"[Infinity,-Infinity]",
            b"\"\\ud800\"",
            br#"{"a":1,"a":2}"#,
            br#"{"_step":1,"_runtime":0.434747343,"_timestamp":1.7953149106683292e+09}"#,
            b"18446744073709551616",
            b"123456789012345678901234567890e-10",
            b"[[[[]]]]",
            b" {} ",
            b"\"\\u0000\\u001f\\/\"",
            b"1.5e",
            b"\xff",
            b"",
            b"[1,]",
            b"{\"a\"}",
            b"0.1e-99999999999999999999",
            b"1e99999999999999999999",
            b"-9223372036854775808",
        ];
        for data in corpus {
            roundtrip_check(data);
        }
    }

    /// Mutational fuzzing with a fixed seed: no panic, and every check of `roundtrip_check` holds.
    #[test]
    fn mutated_inputs_never_panic() {
        let seeds: &[&[u8]] = &[
            br#"{"a":[1,2.5e-3,"x\n\u00e9\ud83d\ude00",null,true,false,NaN,-Infinity],"b":{"c":{}}}"#,
            br#"[-0,18446744073709551615,9223372036854775808,1E+2,"\\\"",[],{}]"#,
            b"\"\\ud800\\udc00\\u0041\"",
        ];
        const ALPHABET: &[u8] =
            b"{}[],:\"\\/0123456789.-+eEuNaIfinityrtslbdDc \t\n\x00\x1f\x7f\xc3\xa9\xff";
        let mut rng = Rng(0xfeed_beef_dead_cafe);
        for _ in 0..100_000 {
            let mut data = seeds[rng.below(seeds.len() as u64) as usize].to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(data.len() as u64 + 1) as usize;
                let byte = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
                match rng.below(3) {
                    0 if at < data.len() => data[at] = byte,
                    1 if at < data.len() => {
                        data.remove(at);
                    }
                    _ => data.insert(at, byte),
                }
            }
            roundtrip_check(&data);
        }
    }
}
