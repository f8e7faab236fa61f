//! Values written the way Python writes them, for the command W&B's agent builds.
//!
//! The agent formats each parameter with Python's `str()` (`--lr=0.001`, `--flag=True`,
//! `--layers=[64, 128]`, `--opt={'name': 'adam'}`) and `${args_json}` with `json.dumps`
//! (`{"lr": 1e-05, "flag": true}`); a program that parses its arguments sees the same text
//! from us as from W&B's agent.

use serde_json::Value;
use wandb_format::pyrepr::write_json_string;

/// Python's `repr()` of a float (`1e-05`, `1.5e+16`, `nan`); shared with the logger's
/// `.table.json` writer.
pub use wandb_format::pyrepr::float_repr as python_float;

fn python_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        python_float(n.as_f64().unwrap_or(f64::NAN))
    } else {
        n.to_string()
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a single quote and no
/// double quote.
fn python_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of the value as Python would hold it (`None`, `True`, `'text'`, lists, dicts).
pub fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => python_repr_str(s),
        other => python_container(other, python_repr),
    }
}

/// Python's `str()` of the value: strings bare, everything else as `repr()`.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_container(other, python_repr),
    }
}

fn python_container(value: &Value, item: fn(&Value) -> String) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => python_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(item).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_repr_str(k), item(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators, ASCII only
/// (`\uXXXX` escapes), floats as `repr()`.
pub fn json_dumps(value: &Value) -> String {
    let mut out = String::new();
    dump(value, &mut out);
    out
}

fn dump(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                dump(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (idx, (k, v)) in map.iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                write_json_string(k, out);
                out.push_str(": ");
                dump(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_as_python_str_and_json_dumps() {
        let v = json!({"lr": 0.00001, "ok": true, "name": "it's", "n": null, "l": [1, "a"]});
        assert_eq!(
            python_str(&v),
            r#"{'lr': 1e-05, 'ok': True, 'name': "it's", 'n': None, 'l': [1, 'a']}"#
        );
        assert_eq!(
            json_dumps(&v),
            r#"{"lr": 1e-05, "ok": true, "name": "it's", "n": null, "l": [1, "a"]}"#
        );
        assert_eq!(json_dumps(&json!("é")), r#""\u00e9""#);
        assert_eq!(python_str(&json!("adam")), "adam");
    }
}
