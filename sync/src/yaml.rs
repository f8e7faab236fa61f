//! A small YAML emitter for `config.yaml`: block style, four-space indentation and sorted keys,
//! as wandb-core's YAML library writes the config map. Strings are written plain when YAML reads
//! them back as the same string, double-quoted (JSON escapes) otherwise.

use wandb_format::json::Value;

use wandb_format::json::write_str;

const INDENT: usize = 4;

/// Indentation (in spaces) past which nested values are written in flow style, as their JSON
/// text (which YAML reads as the same data), instead of block style: about 100 levels. Deeper
/// block style would recurse once per level and indent quadratically; format's JSON writer
/// needs no stack per level, so a config nested 10,000 deep (as Go's JSON accepts) cannot
/// overflow the stack here.
const MAX_BLOCK_INDENT: usize = 400;

/// The YAML document for a JSON value (normally an object).
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn write_map(out: &mut String, value: &Value, depth: usize) {
    let Value::Object(map) = value else {
        return;
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().map(|(k, v)| (k, v)).collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, item) in entries {
        pad(out, depth);
        write_string(out, key);
        out.push(':');
        write_child(out, item, depth);
    }
}

fn write_child(out: &mut String, item: &Value, depth: usize) {
    if depth >= MAX_BLOCK_INDENT && is_block(item) {
        out.push(' ');
        item.write_to(out);
        out.push('\n');
        return;
    }
    match item {
        Value::Object(_) if is_block(item) => {
            out.push('\n');
            write_map(out, item, depth + INDENT);
        }
        Value::Array(items) if is_block(item) => {
            out.push('\n');
            write_seq(out, items, depth + INDENT);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], depth: usize) {
    for item in items {
        pad(out, depth);
        out.push('-');
        if depth >= MAX_BLOCK_INDENT && is_block(item) {
            out.push(' ');
            item.write_to(out);
            out.push('\n');
            continue;
        }
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first member goes on the dash line, the rest aligned under it.
                let mut text = String::new();
                write_map(&mut text, item, depth + 2);
                out.push(' ');
                out.push_str(text.get(depth + 2..).unwrap_or_default());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, depth + INDENT);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Float(f) if f.is_nan() => out.push_str(".nan"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
        Value::String(s) => write_string(out, s),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        number => number.write_to(out),
    }
}

fn write_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_str(out, s);
    }
}

/// Whether `s` can be written unquoted and reads back as the same string.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/' || first == '.') {
        return false;
    }
    if s.ends_with(' ') || s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if !s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '-' | '.' | '/' | ' ' | '+' | ':' | '(' | ')')
    }) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let keywords = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~", ".nan", ".inf", "-.inf",
        ".na", "nan", "inf",
    ];
    if keywords.contains(&lower.as_str()) {
        return false;
    }
    // Leading-dot numbers such as `.5` read as floats.
    if first == '.' && s.chars().nth(1).is_some_and(|c| c.is_ascii_digit()) {
        return false;
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::json::parse;

    #[test]
    fn deep_configs_switch_to_flow_style_without_deep_recursion() {
        // 10,000 levels of objects and of lists, on a thread with a small stack.
        let depth = 10_000;
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let lists = format!(
            "{{\"l\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        let handle = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let objects = to_yaml(&parse(&objects).unwrap());
                let lists = to_yaml(&parse(&lists).unwrap());
                (objects, lists)
            })
            .unwrap();
        let (objects, lists) = handle.join().unwrap();
        // Block style down to the limit, then the rest of the value as one JSON line.
        assert!(objects.starts_with("a:\n    a:\n"), "{}", &objects[..40]);
        let flow = objects.lines().last().unwrap().trim_start();
        assert!(flow.starts_with(r#"a: {"a":"#), "{}", &flow[..40]);
        assert!(flow.contains(r#"{"a":1}"#));
        assert_eq!(flow.matches('{').count(), flow.matches('}').count());
        assert!(objects.len() < 2_000_000, "{} bytes", objects.len());
        assert!(
            lists
                .lines()
                .last()
                .unwrap()
                .trim_start()
                .starts_with("- [[")
        );
        assert!(lists.len() < 2_000_000, "{} bytes", lists.len());
    }

    #[test]
    fn config_yaml_layout() {
        let value = parse(
            r#"{"lr":{"value":0.001},"_wandb":{"value":{"t":{"3":[1,2],"4":"3.11.7"},"m":[{"1":"x","7":[]}],"e":{}}},"s":{"value":"yes"}}"#,
        )
        .unwrap();
        let text = to_yaml(&value);
        assert_eq!(
            text,
            "_wandb:\n    value:\n        e: {}\n        m:\n            - \"1\": x\n              \"7\": []\n        t:\n            \"3\":\n                - 1\n                - 2\n            \"4\": \"3.11.7\"\nlr:\n    value: 0.001\ns:\n    value: \"yes\"\n"
        );
    }
}
