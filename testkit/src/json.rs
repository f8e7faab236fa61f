//! Tolerant JSON parsing for lines uploaded by W&B clients.
//!
//! History, events and summary lines may contain the bare tokens `NaN`, `Infinity` and `-Infinity`
//! (Python's `json.dumps` and wandb-core both emit them), which strict JSON parsers reject. This
//! module parses such lines by first trying strict JSON and, if that fails, rewriting every bare
//! non-finite token **outside string literals** into a JSON string (`"NaN"`, `"Infinity"`,
//! `"-Infinity"`) and parsing again. So in the reconstructed state a non-finite float is
//! represented as the string of its token.

use serde_json::Value;

/// The tokens rewritten by [`sanitize_non_finite`], longest first so `-Infinity` wins over `Infinity`.
const TOKENS: [&str; 4] = ["-Infinity", "+Infinity", "Infinity", "NaN"];

/// Parses one JSON document, accepting bare `NaN` / `Infinity` / `-Infinity` tokens.
///
/// Non-finite tokens become the JSON strings `"NaN"`, `"Infinity"` and `"-Infinity"` (`+Infinity`
/// is normalised to `"Infinity"`).
pub fn parse_tolerant(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(strict_err) => match sanitize_non_finite(text) {
            Some(rewritten) => serde_json::from_str(&rewritten),
            None => Err(strict_err),
        },
    }
}

/// Rewrites bare non-finite tokens outside string literals into JSON strings.
///
/// Returns `None` when the text contains no such token (so rewriting cannot help).
pub fn sanitize_non_finite(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        if let Some(token) = TOKENS.iter().find(|t| rest.starts_with(**t)) {
            let name = token.trim_start_matches('+');
            out.push('"');
            out.push_str(name);
            out.push('"');
            rest = &rest[token.len()..];
            changed = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_passes_through() {
        let v = parse_tolerant(r#"{"a":1,"b":"NaN"}"#).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "NaN");
    }

    #[test]
    fn bare_tokens_become_strings() {
        let v = parse_tolerant(
            r#"{"a":NaN,"b":[Infinity,-Infinity,+Infinity],"c":"x NaN \" Infinity"}"#,
        )
        .unwrap();
        assert_eq!(v["a"], "NaN");
        assert_eq!(v["b"][0], "Infinity");
        assert_eq!(v["b"][1], "-Infinity");
        assert_eq!(v["b"][2], "Infinity");
        assert_eq!(v["c"], "x NaN \" Infinity");
    }

    #[test]
    fn garbage_still_fails() {
        assert!(parse_tolerant("{nope").is_err());
        assert!(parse_tolerant("{\"a\":NaN").is_err());
    }
}
