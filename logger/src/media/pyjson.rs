//! JSON text as Python's `json.dump(value, f, sort_keys=True)` writes it, byte for byte: the
//! SDK writes an artifact's `.table.json` that way, and the artifact's digests are over those
//! bytes.
//!
//! Python's defaults: `", "` and `": "` separators, keys sorted (by code point), every
//! non-ASCII character escaped as `\uXXXX` (surrogate pairs beyond the BMP), floats as
//! `repr(float)` (shortest round trip; exponent form below 1e-4 and from 1e16, as `1e-05`,
//! `1.5e+16`), and `NaN`, `Infinity`, `-Infinity` as bare tokens; numbers and strings come from
//! [`wandb_format::pyrepr`], which the sweep agent's command line uses too.

use std::fmt::Write as _;

use wandb_format::json::Value;
use wandb_format::pyrepr;

/// Appends `value` as Python's `json.dumps(value, sort_keys=True)` to `out`.
pub(crate) fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => pyrepr::write_json_float(*f, out),
        Value::String(s) => pyrepr::write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&str, &Value)> =
                map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (idx, (key, item)) in entries.into_iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                pyrepr::write_json_string(key, out);
                out.push_str(": ");
                write(item, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &Value) -> String {
        let mut out = String::new();
        write(value, &mut out);
        out
    }

    #[test]
    fn floats_are_python_reprs() {
        // The full table is `wandb_format::pyrepr`'s; here, that a table cell goes through it.
        for (f, want) in [(1e-5, "1e-05"), (1e16, "1e+16"), (f64::NAN, "NaN")] {
            assert_eq!(text(&Value::Float(f)), want, "{f:e}");
        }
    }

    #[test]
    fn strings_are_ascii_with_python_escapes() {
        assert_eq!(
            text(&Value::String("a\"b\\c\n\t\u{1}é😀/".into())),
            r#""a\"b\\c\n\t\u0001\u00e9\ud83d\ude00/""#
        );
    }

    #[test]
    fn containers_use_python_separators_and_sorted_keys() {
        let mut map = wandb_format::json::Map::new();
        map.insert("b", Value::Int(1));
        map.insert("a", Value::Array(vec![Value::Null, Value::Bool(true)]));
        assert_eq!(text(&Value::Object(map)), r#"{"a": [null, true], "b": 1}"#);
    }
}
