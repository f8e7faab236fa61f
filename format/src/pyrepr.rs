//! Numbers and strings written the way CPython writes them: `repr(float)` and the pieces of
//! `json.dumps` (ASCII-only string escapes, `NaN`/`Infinity` tokens).
//!
//! Two places need Python's text byte for byte: the sweep agent's command line (`--lr=1e-05`,
//! `${args_json}`) and an artifact's `.table.json`, whose digest is over the SDK's bytes.

use std::fmt::Write as _;

/// Python's `repr()` of a float: the shortest text that reads back the same, in fixed notation
/// when the decimal exponent is in `-5 < e < 16`, otherwise in Python's scientific form
/// (`1e-05`, `1.5e+16`); `nan`, `inf`, `-inf` for the non-finite values.
pub fn float_repr(f: f64) -> String {
    let mut out = String::new();
    if f.is_nan() {
        out.push_str("nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
    } else {
        write_finite(f, &mut out);
    }
    out
}

/// Appends the float as Python's `json.dumps` writes it: `repr()` for a finite value, the bare
/// tokens `NaN`, `Infinity`, `-Infinity` otherwise.
pub fn write_json_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        write_finite(f, out);
    }
}

/// Appends `s` as a JSON string with `json.dumps`'s default `ensure_ascii` escapes: every
/// character outside `' '..='~'` as `\uXXXX` (surrogate pairs beyond the BMP), except the short
/// forms `\n`, `\r`, `\t`, `\b`, `\f`.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// `repr()` of a finite float.
fn write_finite(f: f64, out: &mut String) {
    // Rust's `{:e}` gives the shortest round-trip digits (`1.2345e-5`, `1e16`, `-0e0`), but breaks
    // a tie between two shortest candidates upwards where Python takes the even one; the same
    // number of digits, correctly rounded (half to even), is Python's choice.
    let shortest = format!("{f:e}");
    let n_digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{f:.*e}", n_digits.saturating_sub(1));
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mantissa = match mantissa.strip_prefix('-') {
        Some(rest) => {
            out.push('-');
            rest
        }
        None => mantissa,
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exp) {
        // d[.ddd]e±XX
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        // The decimal point goes after `exp + 1` digits.
        let point = exp.unsigned_abs() as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_python_writes_them() {
        // Each pair checked against CPython's `repr`.
        for (f, want) in [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (123_456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e17, "1.2345e+17"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_repr(f), want, "{f:e}");
        }
    }

    #[test]
    fn json_floats_use_json_tokens_for_non_finite_values() {
        for (f, want) in [
            (1e-5, "1e-05"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            let mut out = String::new();
            write_json_float(f, &mut out);
            assert_eq!(out, want, "{f:e}");
        }
    }

    #[test]
    fn json_strings_are_ascii_with_python_escapes() {
        let mut out = String::new();
        // Python: json.dumps('a"b\\c\n\t\x01\x7fé😀/') (DEL is escaped too).
        write_json_string("a\"b\\c\n\t\u{1}\u{7f}é😀/", &mut out);
        assert_eq!(out, r#""a\"b\\c\n\t\u0001\u007f\u00e9\ud83d\ude00/""#);
    }
}
