//! Building W&B JSON text from record items without a full parse where possible.
//!
//! `value_json` strings written by wandb-core are already in W&B's canonical form (Go's
//! shortest float formatting, `simplejsonext` string escaping), so history lines are built by
//! splicing them. [`canonical`] checks cheaply whether a value is already canonical and only
//! falls back to [`wandb_format::json::parse`] plus re-serialisation when it is not (values
//! written by Python, such as `1.0` or `"\u00e9"`). Nested keys become nested objects.
//!
//! [`JsonTree`] is an object whose leaves stay as canonical JSON text; it holds the run summary
//! and config, where updates address paths inside earlier values.

use std::borrow::Cow;
use std::collections::HashSet;

use indexmap::IndexMap;
use wandb_format::json::{self, Value};

/// The canonical W&B form of one `value_json`: borrowed when the text already is canonical,
/// re-serialised otherwise. Errors when the text is not (extended) JSON.
pub(crate) fn canonical(text: &str) -> Result<Cow<'_, str>, json::JsonError> {
    if is_canonical(text.as_bytes()) {
        return Ok(Cow::Borrowed(text));
    }
    let value = json::parse(text)?;
    let mut out = String::with_capacity(text.len());
    value.write_to(&mut out);
    Ok(Cow::Owned(out))
}

/// Cheap check for the common canonical shapes: integers, Go-formatted floats, the literals,
/// and strings without escapes or control characters.
fn is_canonical(b: &[u8]) -> bool {
    match b {
        [] => false,
        b"null" | b"true" | b"false" | b"NaN" | b"Infinity" | b"-Infinity" => true,
        [b'"', inner @ .., b'"'] => inner.iter().all(|&c| c >= 0x20 && c != b'\\' && c != b'"'),
        [b'-' | b'0'..=b'9', ..] => is_canonical_number(b),
        _ => false,
    }
}

/// Whether `b` is a number exactly as Go's `strconv.FormatFloat(f, 'g', -1, 64)` (or integer
/// formatting) writes it. Digits are assumed shortest (Python and Go both write shortest
/// round-trip digits); only the layout is checked.
fn is_canonical_number(b: &[u8]) -> bool {
    let body = b.strip_prefix(b"-").unwrap_or(b);
    let (mantissa, exponent) = match body.iter().position(|&c| c == b'e') {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&c| c == b'.') {
        Some(p) => (&mantissa[..p], Some(&mantissa[p + 1..])),
        None => (mantissa, None),
    };
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if int_part.len() > 1 && int_part[0] == b'0' {
        return false;
    }
    if let Some(frac) = frac_part
        && (frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) || frac.ends_with(b"0"))
    {
        return false;
    }
    match exponent {
        None => {
            if frac_part.is_none() {
                // An integer: canonical when it fits i64 (wider ones become floats).
                return int_part.len() < 19
                    || std::str::from_utf8(b).is_ok_and(|s| s.parse::<i64>().is_ok());
            }
            // Plain float: the decimal exponent must be in [-4, 6).
            if int_part == b"0" {
                let frac = frac_part.unwrap_or_default();
                let leading_zeros = frac.iter().take_while(|&&c| c == b'0').count();
                leading_zeros < 4 && leading_zeros < frac.len()
            } else {
                int_part.len() <= 6
            }
        }
        Some(exp) => {
            // Exponent form: one mantissa digit, `e+dd` / `e-dd`, exponent < -4 or >= 6.
            if int_part.len() != 1 || int_part[0] == b'0' {
                return false;
            }
            let (sign, digits) = match exp {
                [b'+', rest @ ..] => (1i32, rest),
                [b'-', rest @ ..] => (-1, rest),
                _ => return false,
            };
            if digits.len() < 2 || !digits.iter().all(u8::is_ascii_digit) {
                return false;
            }
            if digits.len() > 2 && digits[0] == b'0' {
                return false;
            }
            let value: i32 = digits.iter().fold(0i32, |acc, &d| {
                acc.saturating_mul(10).saturating_add(i32::from(d - b'0'))
            });
            let e = sign * value;
            !(-4..6).contains(&e)
        }
    }
}

/// One history or summary item as found in a record.
#[derive(Debug)]
pub(crate) struct Item<'a> {
    /// Key path; a plain `key` is a path of one.
    pub(crate) path: Path<'a>,
    /// The value as canonical JSON text.
    pub(crate) value: Cow<'a, str>,
}

/// A key path: either a single key or a nested path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'a> {
    Key(&'a str),
    Nested(&'a [String]),
}

impl<'a> Path<'a> {
    /// The path for an item with `key` and `nested_key` fields (`nested_key` wins when set).
    pub(crate) fn of(key: &'a str, nested: &'a [String]) -> Self {
        if nested.is_empty() {
            Path::Key(key)
        } else {
            Path::Nested(nested)
        }
    }

    fn first(&self) -> &'a str {
        match self {
            Path::Key(k) => k,
            Path::Nested(p) => p.first().map_or("", String::as_str),
        }
    }

    fn len(&self) -> usize {
        match self {
            Path::Key(_) => 1,
            Path::Nested(p) => p.len(),
        }
    }

    fn segments(&self) -> Vec<&'a str> {
        match self {
            Path::Key(k) => vec![k],
            Path::Nested(p) => p.iter().map(String::as_str).collect(),
        }
    }
}

/// Builds one history line (a JSON object) from its items. Later items win over earlier ones
/// with the same path, as in W&B's map semantics.
pub(crate) fn build_object(items: &[Item<'_>], out: &mut String) {
    let flat = items.iter().all(|i| i.path.len() == 1);
    if flat && !has_duplicate_keys(items) {
        out.push('{');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(out, item.path.first());
            out.push(':');
            out.push_str(&item.value);
        }
        out.push('}');
        return;
    }
    let mut tree = JsonTree::default();
    for item in items {
        tree.set(&item.path.segments(), item.value.as_ref());
    }
    tree.write(out);
}

fn has_duplicate_keys(items: &[Item<'_>]) -> bool {
    if items.len() <= 24 {
        for (i, a) in items.iter().enumerate() {
            let key = a.path.first();
            if items.iter().skip(i + 1).any(|b| b.path.first() == key) {
                return true;
            }
        }
        false
    } else {
        let mut seen = HashSet::with_capacity(items.len());
        !items.iter().all(|item| seen.insert(item.path.first()))
    }
}

/// A node of a [`JsonTree`]: canonical JSON text, or an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Raw(String),
    Object(JsonTree),
}

/// A JSON object whose leaves are kept as canonical text, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonTree {
    entries: IndexMap<String, Node>,
}

impl JsonTree {
    /// The members in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.entries.iter()
    }

    /// A top-level member.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entries.get(key)
    }

    /// Sets `path` to the canonical JSON `value`, creating objects on the way and turning a
    /// JSON-object leaf into a node when the path goes inside it.
    pub(crate) fn set(&mut self, path: &[&str], value: &str) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for key in parents {
            if !node.entries.contains_key(*key) {
                node.entries
                    .insert((*key).to_owned(), Node::Object(JsonTree::default()));
            }
            let Some(entry) = node.entries.get_mut(*key) else {
                return;
            };
            if let Node::Raw(text) = entry {
                *entry = Node::Object(JsonTree::from_text(text).unwrap_or_default());
            }
            node = match entry {
                Node::Object(tree) => tree,
                Node::Raw(_) => return,
            };
        }
        match node.entries.get_mut(*last) {
            Some(Node::Raw(existing)) => {
                existing.clear();
                existing.push_str(value);
            }
            Some(other) => *other = Node::Raw(value.to_owned()),
            None => {
                node.entries
                    .insert((*last).to_owned(), Node::Raw(value.to_owned()));
            }
        }
    }

    /// Sets a top-level key to a node.
    pub(crate) fn insert(&mut self, key: &str, node: Node) {
        self.entries.insert(key.to_owned(), node);
    }

    /// Removes `path`; does nothing when it is absent.
    pub(crate) fn remove(&mut self, path: &[&str]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for key in parents {
            let Some(entry) = node.entries.get_mut(*key) else {
                return;
            };
            if let Node::Raw(text) = entry {
                match JsonTree::from_text(text) {
                    Some(tree) => *entry = Node::Object(tree),
                    None => return,
                }
            }
            node = match entry {
                Node::Object(tree) => tree,
                Node::Raw(_) => return,
            };
        }
        node.entries.shift_remove(*last);
    }

    /// Parses canonical text of a JSON object into a tree (one level; members stay text).
    pub(crate) fn from_text(text: &str) -> Option<JsonTree> {
        let map = json::parse(text).ok()?.into_object().ok()?;
        Some(JsonTree::from_map(map))
    }

    fn from_map(map: json::Map) -> JsonTree {
        let mut tree = JsonTree::default();
        for (key, value) in map {
            let mut text = String::new();
            value.write_to(&mut text);
            tree.entries.insert(key, Node::Raw(text));
        }
        tree
    }

    /// Writes the object as compact JSON.
    pub(crate) fn write(&self, out: &mut String) {
        out.push('{');
        for (i, (key, node)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(out, key);
            out.push(':');
            node.write(out);
        }
        out.push('}');
    }

    /// The object as compact JSON text.
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// The tree as a parsed value (for YAML output and tests).
    pub(crate) fn to_value(&self) -> Value {
        let mut map = json::Map::with_capacity(self.entries.len());
        for (key, node) in &self.entries {
            map.insert(key.clone(), node.to_value());
        }
        Value::Object(map)
    }
}

impl Node {
    /// Writes the node as compact JSON.
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Node::Raw(text) => out.push_str(text),
            Node::Object(tree) => tree.write(out),
        }
    }

    /// The node as a parsed value.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Node::Raw(text) => json::parse(text).unwrap_or(Value::Null),
            Node::Object(tree) => tree.to_value(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers_pass_through() {
        for text in [
            "0",
            "-3",
            "123456",
            "0.434747343",
            "1.7953149106683292e+09",
            "1e-05",
            "1e+06",
            "0.0001",
            "-0.5",
            "NaN",
            "-Infinity",
            "\"plain\"",
            "\"héllo\"",
        ] {
            assert!(
                matches!(canonical(text).unwrap(), Cow::Borrowed(_)),
                "{text}"
            );
        }
    }

    #[test]
    fn python_forms_are_rewritten() {
        let cases = [
            ("1.0", "1"),
            ("0.0", "0"),
            ("100000.0", "100000"),
            ("1000000.0", "1e+06"),
            ("123456789.5", "1.234567895e+08"),
            ("1e-4", "0.0001"),
            ("0.00001", "1e-05"),
            ("\"\\u00e9\"", "\"é\""),
            ("[1.0, 2]", "[1,2]"),
            ("{\"a\": 1}", "{\"a\":1}"),
            ("1E+06", "1e+06"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input).unwrap(), want, "{input}");
        }
        assert!(canonical("nope").is_err());
    }

    #[test]
    fn nested_and_duplicate_items() {
        let nested = vec!["a".to_owned(), "b".to_owned()];
        let nested2 = vec!["a".to_owned(), "c".to_owned()];
        let items = [
            Item {
                path: Path::Nested(&nested),
                value: Cow::Borrowed("1"),
            },
            Item {
                path: Path::Key("x"),
                value: Cow::Borrowed("2"),
            },
            Item {
                path: Path::Nested(&nested2),
                value: Cow::Borrowed("3"),
            },
        ];
        let mut out = String::new();
        build_object(&items, &mut out);
        assert_eq!(out, r#"{"a":{"b":1,"c":3},"x":2}"#);

        let dup = [
            Item {
                path: Path::Key("x"),
                value: Cow::Borrowed("1"),
            },
            Item {
                path: Path::Key("x"),
                value: Cow::Borrowed("2"),
            },
        ];
        let mut out = String::new();
        build_object(&dup, &mut out);
        assert_eq!(out, r#"{"x":2}"#);
    }

    #[test]
    fn tree_updates_inside_leaf_objects() {
        let mut tree = JsonTree::default();
        tree.set(&["acc"], r#"{"max":1}"#);
        tree.set(&["acc", "min"], "0");
        tree.set(&["_wandb", "runtime"], "3");
        assert_eq!(
            tree.to_json(),
            r#"{"acc":{"max":1,"min":0},"_wandb":{"runtime":3}}"#
        );
        tree.remove(&["acc", "max"]);
        tree.remove(&["nope", "x"]);
        assert_eq!(
            tree.to_json(),
            r#"{"acc":{"min":0},"_wandb":{"runtime":3}}"#
        );
    }

    #[test]
    fn strings_escape_like_wandb_core() {
        let mut out = String::new();
        json::write_str(&mut out, "a\"b\\c\n\u{1}é/<");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001é/<\"");
    }
}
