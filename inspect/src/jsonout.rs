//! Writing JSON text: strings, numbers, timestamps, decoded `value_json` values, and the chosen
//! spelling of `NaN` and the infinities.
//!
//! Everything appends to a `String`; nothing here allocates except `json::parse` on the slow path
//! of [`write_value_json`].

use wandb_format::json::{self, Map, Value};
pub(crate) use wandb_format::json::{write_str, write_str_body};

/// How `NaN`, `Infinity` and `-Infinity` are written in JSON output.
///
/// Standard JSON has no such numbers. W&B's own `value_json` text uses the bare tokens `NaN`,
/// `Infinity` and `-Infinity` (Python's `json.dumps` default), which `jq`, JavaScript and most
/// strict parsers reject; so the default writes them as the strings `"NaN"`, `"Infinity"` and
/// `"-Infinity"`, as protobuf's canonical JSON mapping does for doubles and as the SDK's own
/// `wandb leet inspect --json` does. Every JSON parser accepts that, Python's `float()` and
/// pandas' `to_numeric` turn the strings back into numbers, and a `jq` filter can match them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum NonFinite {
    /// Strings: `"NaN"`, `"Infinity"`, `"-Infinity"` (valid JSON; the default).
    #[default]
    String,
    /// Bare tokens `NaN`, `Infinity`, `-Infinity`, exactly as W&B stores them (Python's `json` and
    /// pandas read them; `jq` and JavaScript do not).
    Bare,
    /// `null` (valid JSON, but a NaN can no longer be told from a missing value).
    Null,
}

/// Options for writing values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    /// How non-finite numbers are written.
    pub(crate) non_finite: NonFinite,
    /// Strings longer than this many bytes are cut (text output only).
    pub(crate) max_string: usize,
}

impl Style {
    /// Full-fidelity JSON.
    pub(crate) fn json(non_finite: NonFinite) -> Self {
        Style {
            non_finite,
            max_string: usize::MAX,
        }
    }

    /// The human-readable text view: bare `NaN` tokens, long strings cut.
    pub(crate) fn text() -> Self {
        Style {
            non_finite: NonFinite::Bare,
            max_string: 160,
        }
    }
}

/// Which bytes need escaping in a JSON string (as `json::write_str` escapes them).
static ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `text` as a JSON string, cut to `style.max_string` bytes with a note of how much was
/// left out.
pub(crate) fn write_str_styled(out: &mut String, text: &str, style: Style) {
    if text.len() <= style.max_string {
        write_str(out, text);
        return;
    }
    let mut cut = style.max_string;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push('"');
    write_str_body(out, text.get(..cut).unwrap_or_default());
    out.push_str("…(+");
    push_u64(out, (text.len() - cut) as u64);
    out.push_str(" bytes)\"");
}

/// Appends an integer.
#[inline]
pub(crate) fn push_i64(out: &mut String, value: i64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Appends an unsigned integer.
#[inline]
pub(crate) fn push_u64(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Appends a float: finite values as W&B's Go encoder writes them (shortest round-trip digits),
/// others as `style` says.
pub(crate) fn write_f64(out: &mut String, value: f64, non_finite: NonFinite) {
    if value.is_finite() {
        json::format_f64(value, out);
        return;
    }
    let token = if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    write_non_finite(out, token, non_finite);
}

/// Appends one of the tokens `NaN`, `Infinity`, `-Infinity` as `non_finite` says.
fn write_non_finite(out: &mut String, token: &str, non_finite: NonFinite) {
    match non_finite {
        NonFinite::String => {
            out.push('"');
            out.push_str(token);
            out.push('"');
        }
        NonFinite::Bare => out.push_str(token),
        NonFinite::Null => out.push_str("null"),
    }
}

/// Appends a decoded JSON value.
pub(crate) fn write_value(out: &mut String, value: &Value, style: Style) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(int) => push_i64(out, *int),
        Value::UInt(uint) => push_u64(out, *uint),
        Value::Float(float) => write_f64(out, *float, style.non_finite),
        Value::String(text) => write_str_styled(out, text, style),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, style),
    }
}

/// Appends a decoded JSON object.
pub(crate) fn write_object(out: &mut String, map: &Map, style: Style) {
    out.push('{');
    for (index, (key, item)) in map.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        write_value(out, item, style);
    }
    out.push('}');
}

/// A `value_json` text, classified without a full parse where possible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Simple<'a> {
    /// A JSON number, as its text.
    Number(&'a str),
    /// `NaN`, `Infinity` or `-Infinity`.
    NonFinite(&'a str),
    /// `true`, `false` or `null`.
    Literal(&'a str),
    /// A string with no escapes: its text between the quotes.
    PlainString(&'a str),
}

/// Classifies `text` if it is a single simple token, else `None` (it needs [`json::parse`]).
#[inline]
pub(crate) fn classify(text: &str) -> Option<Simple<'_>> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let text = if text.as_bytes().first().is_some_and(is_space)
        || text.as_bytes().last().is_some_and(is_space)
    {
        text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
    } else {
        text
    };
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'-' | b'0'..=b'9' => {
            if is_json_number(bytes) {
                Some(Simple::Number(text))
            } else if text == "-Infinity" {
                Some(Simple::NonFinite(text))
            } else {
                None
            }
        }
        b'N' if text == "NaN" => Some(Simple::NonFinite(text)),
        b'I' if text == "Infinity" => Some(Simple::NonFinite(text)),
        b't' | b'f' | b'n' if matches!(text, "true" | "false" | "null") => {
            Some(Simple::Literal(text))
        }
        b'"' => {
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            if bytes.len() >= 2
                && bytes.last() == Some(&b'"')
                && !inner.bytes().any(|b| ESCAPE[usize::from(b)])
            {
                Some(Simple::PlainString(inner))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether `bytes` is exactly one JSON number (RFC 8259 grammar).
#[inline]
pub(crate) fn is_json_number(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    if let [b'-', tail @ ..] = rest {
        rest = tail;
    }
    rest = match rest {
        [b'0', tail @ ..] => tail,
        [b'1'..=b'9', ..] => skip_digits(rest),
        _ => return false,
    };
    if let [b'.', tail @ ..] = rest {
        let after = skip_digits(tail);
        if after.len() == tail.len() {
            return false;
        }
        rest = after;
    }
    if let [b'e' | b'E', tail @ ..] = rest {
        let tail = match tail {
            [b'+' | b'-', signed @ ..] => signed,
            _ => tail,
        };
        let after = skip_digits(tail);
        if after.len() == tail.len() {
            return false;
        }
        rest = after;
    }
    rest.is_empty()
}

#[inline]
fn skip_digits(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    bytes.get(n..).unwrap_or_default()
}

/// Appends the value held by a `value_json` text. Numbers, literals and plain strings are copied
/// as they are; `NaN` and the infinities follow `style`; anything else is decoded with
/// [`json::parse`] and written back. Text that is not valid extended JSON is written as a JSON
/// string holding the text.
pub(crate) fn write_value_json(out: &mut String, text: &str, style: Style) {
    match classify(text) {
        Some(Simple::Number(number)) => out.push_str(number),
        Some(Simple::NonFinite(token)) => write_non_finite(out, token, style.non_finite),
        Some(Simple::Literal(literal)) => out.push_str(literal),
        Some(Simple::PlainString(inner)) if inner.len() <= style.max_string => {
            out.push('"');
            out.push_str(inner);
            out.push('"');
        }
        _ => match json::parse(text) {
            Ok(value) => write_value(out, &value, style),
            Err(_) => write_str_styled(out, text, style),
        },
    }
}

/// Appends a `google.protobuf.Timestamp` as an RFC 3339 UTC string (`2026-11-22T03:21:18.551935Z`),
/// with 0, 3, 6 or 9 fraction digits as protobuf's JSON mapping does. Returns `false` (writing
/// nothing) when the timestamp is outside years 1 to 9999 or its nanoseconds are out of range.
pub(crate) fn write_timestamp(out: &mut String, seconds: i64, nanos: i32) -> bool {
    let start = out.len();
    out.push('"');
    if !wandb_format::time::write_rfc3339(out, seconds, nanos) {
        out.truncate(start);
        return false;
    }
    out.push('"');
    true
}

pub(crate) use wandb_format::time::rfc3339_in_range as timestamp_in_range;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_json_grammar() {
        for ok in [
            "0",
            "-0",
            "1.5",
            "1e-05",
            "1E+6",
            "-12.25e3",
            "123456789012345678901",
        ] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "+1", "1e+", "0x10", "NaN", "1 ",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn value_json_non_finite_follows_the_style() {
        let mut out = String::new();
        for (style, want) in [
            (NonFinite::String, r#""NaN","Infinity","-Infinity""#),
            (NonFinite::Bare, "NaN,Infinity,-Infinity"),
            (NonFinite::Null, "null,null,null"),
        ] {
            out.clear();
            for (index, text) in ["NaN", "Infinity", "-Infinity"].iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value_json(&mut out, text, Style::json(style));
            }
            assert_eq!(out, want);
        }
    }

    #[test]
    fn value_json_nested_values_are_decoded() {
        let mut out = String::new();
        write_value_json(
            &mut out,
            r#"{"a": [1, 2.50, NaN], "b": "x\"y"}"#,
            Style::json(NonFinite::String),
        );
        assert_eq!(out, r#"{"a":[1,2.5,"NaN"],"b":"x\"y"}"#);
        out.clear();
        write_value_json(&mut out, "{not json", Style::json(NonFinite::String));
        assert_eq!(out, r#""{not json""#);
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let cases = [
            (0, 0, r#""1970-01-01T00:00:00Z""#),
            (
                1_795_317_678,
                551_935_000,
                r#""2026-11-22T03:21:18.551935Z""#,
            ),
            (951_782_400, 1_000_000, r#""2000-02-29T00:00:00.001Z""#),
            (-1, 5, r#""1969-12-31T23:59:59.000000005Z""#),
            (253_402_300_799, 0, r#""9999-12-31T23:59:59Z""#),
        ];
        for (seconds, nanos, want) in cases {
            let mut out = String::new();
            assert!(write_timestamp(&mut out, seconds, nanos));
            assert_eq!(out, want);
        }
        assert!(!write_timestamp(&mut String::new(), 0, -1));
        assert!(!write_timestamp(&mut String::new(), 253_402_300_800, 0));
    }
}
