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
use std::hash::BuildHasher as _;

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
#[inline]
fn is_canonical(b: &[u8]) -> bool {
    match b {
        // Numbers first: nearly every value is one.
        [b'0'..=b'9', ..] => is_canonical_number(b),
        b"null" | b"true" | b"false" | b"NaN" | b"Infinity" | b"-Infinity" => true,
        [b'-', ..] => is_canonical_number(b),
        [b'"', inner @ .., b'"'] => inner.iter().all(|&c| c >= 0x20 && c != b'\\' && c != b'"'),
        _ => false,
    }
}

/// Whether `b` is a number exactly as Go's `strconv.FormatFloat(f, 'g', -1, 64)` (or integer
/// formatting) writes it. Digits are assumed shortest (Python and Go both write shortest
/// round-trip digits); only the layout is checked, in one pass over the bytes.
fn is_canonical_number(b: &[u8]) -> bool {
    let body = b.strip_prefix(b"-").unwrap_or(b);
    let digits_from = |i: usize| i + digit_run(body.get(i..).unwrap_or_default());
    let int_len = digits_from(0);
    if int_len == 0 || (int_len > 1 && body[0] == b'0') {
        return false;
    }
    let zero_int = int_len == 1 && body[0] == b'0';
    let mut at = int_len;
    // The fraction's digits, when there is a fraction.
    let mut frac: Option<&[u8]> = None;
    if body.get(at) == Some(&b'.') {
        let end = digits_from(at + 1);
        let digits = &body[at + 1..end];
        if digits.is_empty() || digits.ends_with(b"0") {
            return false;
        }
        frac = Some(digits);
        at = end;
    }
    match body.get(at) {
        None => match frac {
            // An integer: canonical when it fits i64 (wider ones become floats).
            None => int_len < 19 || std::str::from_utf8(b).is_ok_and(|s| s.parse::<i64>().is_ok()),
            // Plain float: the decimal exponent must be in [-4, 6).
            Some(frac) if zero_int => {
                let leading_zeros = frac.iter().take_while(|&&c| c == b'0').count();
                leading_zeros < 4 && leading_zeros < frac.len()
            }
            Some(_) => int_len <= 6,
        },
        // Exponent form: one mantissa digit, `e+dd` / `e-dd`, exponent < -4 or >= 6.
        Some(b'e') if int_len == 1 && !zero_int => {
            let sign = match body.get(at + 1) {
                Some(b'+') => 1i32,
                Some(b'-') => -1,
                _ => return false,
            };
            let digits = &body[at + 2..];
            if digits.len() < 2 || !digits.iter().all(u8::is_ascii_digit) {
                return false;
            }
            if digits.len() > 2 && digits[0] == b'0' {
                return false;
            }
            let value: i32 = digits.iter().fold(0i32, |acc, &d| {
                acc.saturating_mul(10).saturating_add(i32::from(d - b'0'))
            });
            !(-4..6).contains(&(sign * value))
        }
        Some(_) => false,
    }
}

/// The number of ASCII digits `b` starts with, eight bytes at a time.
#[inline]
fn digit_run(b: &[u8]) -> usize {
    const LOW: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut done = 0;
    while let Some(&word) = b.get(done..).and_then(|rest| rest.first_chunk::<8>()) {
        // Digits become 0..=9; adding 0x76 to the low seven bits sets a byte's high bit exactly
        // when it is 10 or more, and a byte that was 0x80 or more has it set already. No carry
        // crosses bytes: 0x7f + 0x76 < 0x100.
        let x = u64::from_le_bytes(word) ^ u64::from_ne_bytes([b'0'; 8]);
        let not_digit = (((x & LOW) + u64::from_ne_bytes([0x76; 8])) | x) & HIGH;
        if not_digit != 0 {
            return done + (not_digit.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    while b.get(done).is_some_and(u8::is_ascii_digit) {
        done += 1;
    }
    done
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
/// with the same path, as in W&B's map semantics. The usual flat line never comes here: the
/// [`LineWriter`] writes it in one pass.
pub(crate) fn build_object(items: &[Item<'_>], out: &mut String) {
    let mut tree = JsonTree::default();
    for item in items {
        tree.set(&item.path.segments(), item.value.as_ref());
    }
    tree.write(out);
}

/// Writes history lines as JSON string literals: what `json::write_str(out, &line)` appends
/// after `build_object(items, &mut line)`, in one pass for the usual flat line.
///
/// Rows of one run nearly always have the keys of the row before, so the writer keeps the last
/// flat row's keys (checked for repeats once) with each key's piece of the literal already
/// escaped twice; a row with the same keys is then written by comparing keys and copying.
#[derive(Debug, Default)]
pub(crate) struct LineWriter {
    /// Text for lines that take the general path (nested or repeated keys).
    scratch: String,
    /// The keys of the last flat row without repeats.
    keys: Vec<String>,
    /// For each of `keys`, `"key":` as it appears inside the line's string literal.
    pieces: Vec<String>,
}

impl LineWriter {
    /// Appends the string literal of the line of `items` to `out`.
    pub(crate) fn write(&mut self, items: &[Item<'_>], out: &mut String) {
        let same_keys = items.len() == self.keys.len()
            && items
                .iter()
                .zip(&self.keys)
                .all(|(item, key)| item.path.len() == 1 && item.path.first() == key);
        if !same_keys {
            let flat = items.iter().all(|i| i.path.len() == 1);
            if !flat || has_duplicate_keys(items) {
                self.scratch.clear();
                build_object(items, &mut self.scratch);
                json::write_str(out, &self.scratch);
                return;
            }
            self.keys.clear();
            self.pieces.clear();
            for item in items {
                // Done once for each new set of keys: the key's JSON string, escaped again.
                let key = item.path.first();
                let mut piece = String::with_capacity(key.len() + 5);
                self.scratch.clear();
                json::write_str(&mut self.scratch, key);
                json::write_str_body(&mut piece, &self.scratch);
                piece.push(':');
                self.keys.push(key.to_owned());
                self.pieces.push(piece);
            }
        }
        out.push_str("\"{");
        for (i, (item, piece)) in items.iter().zip(&self.pieces).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(piece);
            // Numbers and the literals never hold a byte that needs escaping; strings, arrays and
            // objects may.
            match item.value.as_bytes().first() {
                Some(b'"' | b'[' | b'{') => json::write_str_body(out, &item.value),
                _ => out.push_str(&item.value),
            }
        }
        out.push_str("}\"");
    }
}

/// Whether two items have the same first key part. Keys are compared by a seeded hash first, so
/// a row of n keys costs n hashes and n²/2 integer comparisons rather than string comparisons.
fn has_duplicate_keys(items: &[Item<'_>]) -> bool {
    const SMALL: usize = 32;
    let hasher = &*KEY_HASHER;
    if items.len() <= SMALL {
        let mut hashes = [0u64; SMALL];
        for (i, item) in items.iter().enumerate() {
            let key = item.path.first();
            let hash = hasher.hash_one(key);
            for (j, &earlier) in hashes[..i].iter().enumerate() {
                if earlier == hash && items[j].path.first() == key {
                    return true;
                }
            }
            hashes[i] = hash;
        }
        false
    } else {
        let mut seen: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(items.len(), hasher.clone());
        !items.iter().all(|item| seen.insert(item.path.first()))
    }
}

/// The per-process seeded hasher for keys.
static KEY_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

/// A node of a [`JsonTree`]: canonical JSON text, or an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Raw(String),
    Object(JsonTree),
}

/// A JSON object whose leaves are kept as canonical text, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonTree {
    entries: IndexMap<String, Node, foldhash::fast::RandomState>,
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

    /// Sets the top-level `key` to the canonical JSON `value` (what `set(&[key], value)` does) and
    /// returns the key's index. The member at index `guess` is tried first: a summary update sets
    /// the keys of the update before it, in the order they were first inserted, so the index after
    /// the previous item's is usually right and no hash is computed.
    pub(crate) fn set_top_near(&mut self, key: &str, value: &str, guess: usize) -> usize {
        if let Some((existing_key, Node::Raw(existing))) = self.entries.get_index_mut(guess)
            && existing_key == key
        {
            existing.clear();
            existing.push_str(value);
            return guess;
        }
        match self.entries.get_full_mut(key) {
            Some((index, _, Node::Raw(existing))) => {
                existing.clear();
                existing.push_str(value);
                index
            }
            Some((index, _, other)) => {
                *other = Node::Raw(value.to_owned());
                index
            }
            None => {
                self.entries
                    .insert_full(key.to_owned(), Node::Raw(value.to_owned()))
                    .0
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

    /// The layout rules of Go's `'g'` formatting, written as separate passes: the oracle the
    /// one-pass [`is_canonical_number`] is checked against.
    fn canonical_number_oracle(b: &[u8]) -> bool {
        let body = b.strip_prefix(b"-").unwrap_or(b);
        let (mantissa, exponent) = match body.iter().position(|&c| c == b'e') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        let (int_part, frac) = match mantissa.iter().position(|&c| c == b'.') {
            Some(p) => (&mantissa[..p], Some(&mantissa[p + 1..])),
            None => (mantissa, None),
        };
        let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
        if !digits(int_part) || (int_part.len() > 1 && int_part[0] == b'0') {
            return false;
        }
        if frac.is_some_and(|f| !digits(f) || f.ends_with(b"0")) {
            return false;
        }
        match (exponent, frac) {
            (None, None) => std::str::from_utf8(b).is_ok_and(|s| s.parse::<i64>().is_ok()),
            (None, Some(f)) if int_part == b"0" => {
                let zeros = f.iter().take_while(|&&c| c == b'0').count();
                zeros < 4 && zeros < f.len()
            }
            (None, Some(_)) => int_part.len() <= 6,
            (Some(e), _) => {
                if int_part.len() != 1 || int_part[0] == b'0' || e.len() < 3 {
                    return false;
                }
                let sign = match e[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return false,
                };
                let d = &e[1..];
                if !digits(d) || (d.len() > 2 && d[0] == b'0') {
                    return false;
                }
                let v: i64 = std::str::from_utf8(d)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(i64::MAX);
                !(-4..6).contains(&(sign * v.min(1 << 20)))
            }
        }
    }

    #[test]
    fn one_pass_number_check_agrees_with_the_oracle() {
        // Every string of up to 5 bytes over the number alphabet, plus longer shapes.
        let alphabet = b"0123-.e+9";
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut next = Vec::new();
            for text in &texts {
                for &c in alphabet {
                    let mut t = text.clone();
                    t.push(c);
                    assert_eq!(
                        is_canonical_number(&t),
                        canonical_number_oracle(&t),
                        "{}",
                        String::from_utf8_lossy(&t)
                    );
                    checked += 1;
                    next.push(t);
                }
            }
            texts = next;
        }
        for text in [
            "0.9799081901468851",
            "1.7953149106683292e+09",
            "-1.5e-07",
            "123456.5",
            "1234567.5",
            "0.00012",
            "0.000012",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1e+100",
            "1e+0100",
            "1e+05",
            "1e-05",
            "5e-324",
        ] {
            assert_eq!(
                is_canonical_number(text.as_bytes()),
                canonical_number_oracle(text.as_bytes()),
                "{text}"
            );
        }
        assert!(checked > 60_000);
    }

    #[test]
    fn digit_runs_are_counted_eight_bytes_at_a_time() {
        for text in [
            "",
            "7",
            "0123456789",
            "12345678x",
            "1234567/",
            "123456789:",
            "00000000000000000e",
        ] {
            let want = text.bytes().take_while(u8::is_ascii_digit).count();
            assert_eq!(digit_run(text.as_bytes()), want, "{text}");
        }
        for byte in 0..=255u8 {
            let mut text = *b"0000000000000000";
            text[5] = byte;
            let want = if byte.is_ascii_digit() { 16 } else { 5 };
            assert_eq!(digit_run(&text), want, "{byte:#x}");
        }
    }

    #[test]
    fn the_one_pass_literal_is_the_escaped_line() {
        let nested = vec!["a".to_owned(), "b".to_owned()];
        let cases: Vec<Vec<(Path<'_>, &str)>> = vec![
            vec![(Path::Key("_step"), "3"), (Path::Key("loss"), "0.5")],
            vec![
                (Path::Key("t\"q\\k\n"), "\"a\\\"b\""),
                (Path::Key("é/<"), "[1,\"x\"]"),
            ],
            vec![
                (Path::Key("o"), "{\"k\":\"v\\n\"}"),
                (Path::Key("n"), "NaN"),
            ],
            vec![(Path::Key("x"), "1"), (Path::Key("x"), "2")],
            vec![(Path::Nested(&nested), "1"), (Path::Key("y"), "\"s\"")],
            vec![],
        ];
        let mut writer = LineWriter::default();
        for case in cases {
            let items: Vec<Item<'_>> = case
                .iter()
                .map(|(path, value)| Item {
                    path: *path,
                    value: Cow::Borrowed(*value),
                })
                .collect();
            let mut line = String::new();
            build_object(&items, &mut line);
            let mut want = String::from("[");
            json::write_str(&mut want, &line);
            // A fresh writer, and one that wrote each earlier case first (a row with the keys of
            // the row before takes the remembered pieces).
            let mut got = String::from("[");
            LineWriter::default().write(&items, &mut got);
            assert_eq!(got, want);
            for _ in 0..2 {
                let mut again = String::from("[");
                writer.write(&items, &mut again);
                assert_eq!(again, want);
            }
        }
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
    fn setting_near_an_index_is_setting_the_key() {
        let mut near = JsonTree::default();
        let mut plain = JsonTree::default();
        let rows = [
            vec![("a", "1"), ("b", "2"), ("c", "3")],
            vec![("a", "4"), ("b", "5"), ("c", "6")],
            vec![("c", "7"), ("x", "8"), ("a", "9")],
        ];
        plain.set(&["b"], r#"{"inner":1}"#);
        plain.set(&["b", "inner"], "2");
        near.set(&["b"], r#"{"inner":1}"#);
        near.set(&["b", "inner"], "2");
        for row in rows {
            let mut at = usize::MAX;
            for (key, value) in row {
                at = near.set_top_near(key, value, at.wrapping_add(1));
                plain.set(&[key], value);
                assert_eq!(near.entries.get_index_of(key), Some(at));
            }
        }
        // A guess at a member of another key, or past the end, looks the key up.
        near.set_top_near("x", "10", 0);
        near.set_top_near("y", "11", 99);
        plain.set(&["x"], "10");
        plain.set(&["y"], "11");
        assert_eq!(near.to_json(), plain.to_json());
        assert_eq!(near.to_json(), r#"{"b":5,"a":9,"c":7,"x":10,"y":11}"#);
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
