//! Floats as wandb-core writes them: Go's `strconv.FormatFloat(f, 'g', -1, 64)`, with `NaN`,
//! `Infinity` and `-Infinity` for the non-finite values. The one float formatter of the
//! workspace: `json::format_f64` (values, summaries, sync's JSON) and the logger's history
//! encoder both use it.
//!
//! The digits are the shortest that read back to the same `f64` and, among those, the closest to
//! `f`, an exact tie going to the even digit (as in Go). They come from `zmij`, which picks the
//! same digits as Go's `strconv` and `ryu` (verified against Go on tens of millions of values);
//! its layout (`1.5e-7`, `0.001`, `123.0`, `1e16`) is undone here, so any layout works. With that
//! "shortest" precision Go fixes the threshold for exponent form at 6 (`ftoa.go`: "if precision
//! was the shortest possible, use precision 6 for this decision"), so the exponent form is used
//! when the decimal exponent is below -4 or at least 6. The exponent has a sign and at least two
//! digits.
//!
//! | `f` | text |
//! |---|---|
//! | `1795314910.6683292` | `1.7953149106683292e+09` |
//! | `123456.0` | `123456` |
//! | `1e6` | `1e+06` |
//! | `0.0001` | `0.0001` |
//! | `1e-5` | `1e-05` |
//! | `1.0`, `0.0`, `-0.0` | `1`, `0`, `-0` |
//!
//! Two fast paths cover the values a training run logs: between 1e-4 and 1e6 Go's text is
//! `zmij`'s decimal layout without its trailing `.0` (both use the decimal layout whenever the
//! decimal exponent `kk`, with `10^(kk-1) <= |f| < 10^kk`, is at most 16, and this range has `kk`
//! in `-3..=6`); between 1e6 and 1e16 (times in seconds) the decimal layout is rearranged into
//! Go's exponent form. A test compares both with the general path on hundreds of thousands of
//! values, boundaries included.

/// The longest text: a sign, 17 digits, a point, `e-308`.
const MAX_LEN: usize = 32;

/// The Go text of one float, on the stack.
#[derive(Clone, Copy)]
pub struct GoFloat {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl std::fmt::Debug for GoFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GoFloat {
    /// Formats `f` as wandb-core writes it (see the module docs).
    #[inline]
    pub fn new(f: f64) -> GoFloat {
        let mut out = GoFloat {
            bytes: [0; MAX_LEN],
            len: 0,
        };
        if f.is_nan() {
            out.push_str("NaN");
        } else if f.is_infinite() {
            out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        } else if f == 0.0 {
            out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        } else {
            let magnitude = f.abs();
            let mut buffer = zmij::Buffer::new();
            if (1e-4..1e6).contains(&magnitude) {
                let text = buffer.format_finite(f);
                out.push_str(text.strip_suffix(".0").unwrap_or(text));
            } else if !((1e6..1e16).contains(&magnitude)
                && out.seconds_layout(buffer.format_finite(f)))
            {
                out.len = 0;
                out.general(f);
            }
        }
        out
    }

    /// The text (ASCII).
    #[inline]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }

    #[inline(always)]
    fn push_str(&mut self, text: &str) {
        let end = self.len + text.len();
        if let Some(slot) = self.bytes.get_mut(self.len..end) {
            slot.copy_from_slice(text.as_bytes());
            self.len = end;
        }
    }

    fn push_byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// `zmij`'s decimal text of a magnitude in `1e6 .. 1e16` rearranged into Go's exponent form:
    /// `1795317679.0656261` becomes `1.7953176790656261e+09`. `false` if the text is not in the
    /// expected decimal layout.
    fn seconds_layout(&mut self, text: &str) -> bool {
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        let Some((int_part, frac_part)) = digits.split_once('.') else {
            return false;
        };
        let Some((first, rest)) = int_part.split_at_checked(1) else {
            return false;
        };
        if int_part.len() < 7 {
            return false;
        }
        let frac_part = frac_part.trim_end_matches('0');
        let rest_int = if frac_part.is_empty() {
            rest.trim_end_matches('0')
        } else {
            rest
        };
        self.push_str(sign);
        self.push_str(first);
        if !rest_int.is_empty() || !frac_part.is_empty() {
            self.push_byte(b'.');
            self.push_str(rest_int);
            self.push_str(frac_part);
        }
        // The exponent is 6 to 15: two digits.
        let exponent = int_part.len() - 1;
        self.push_str("e+");
        self.push_byte(b'0' + (exponent / 10) as u8);
        self.push_byte(b'0' + (exponent % 10) as u8);
        true
    }

    /// Any finite, non-zero `f`.
    fn general(&mut self, f: f64) {
        let mut buffer = zmij::Buffer::new();
        let digits = shortest_digits(buffer.format_finite(f.abs()));
        let nd = digits.len();
        if f < 0.0 {
            self.push_byte(b'-');
        }
        let point = digits.point;
        if (-3..=6).contains(&point) {
            // %f with just the digits needed.
            match usize::try_from(point) {
                Ok(int_digits) if int_digits >= nd => {
                    digits.push_range(0, nd, self);
                    (nd..int_digits).for_each(|_| self.push_byte(b'0'));
                }
                Ok(int_digits) if int_digits > 0 => {
                    digits.push_range(0, int_digits, self);
                    self.push_byte(b'.');
                    digits.push_range(int_digits, nd, self);
                }
                _ => {
                    self.push_str("0.");
                    (point..0).for_each(|_| self.push_byte(b'0'));
                    digits.push_range(0, nd, self);
                }
            }
        } else {
            // %e: d[.ddd]e±dd
            digits.push_range(0, 1, self);
            if nd > 1 {
                self.push_byte(b'.');
                digits.push_range(1, nd, self);
            }
            let exponent = point - 1;
            self.push_str(if exponent < 0 { "e-" } else { "e+" });
            let e = exponent.unsigned_abs();
            if e < 10 {
                self.push_byte(b'0');
            }
            let mut itoa = itoa_buffer(e);
            self.push_str(itoa.text());
        }
    }
}

/// Whether `f`'s Go text is exactly `zmij`'s shortest output (`zmij::Buffer::format_finite`) as
/// it is: a number with a fraction and a magnitude in `1e-4 .. 1e6`, the common case for metrics.
/// Hot paths that format many floats at once (the logger's rows) use `zmij` directly for these.
/// (`(f as i64) as f64 == f` tests for an integral value without a call to `trunc`; those are
/// written without `.0`.)
#[inline(always)]
pub fn is_plain_decimal(f: f64) -> bool {
    (1e-4..1e6).contains(&f.abs()) && (f as i64) as f64 != f
}

/// Widens an `f32` through its shortest decimal form (`0.1f32` becomes `0.1`).
pub(crate) fn widen_f32(f: f32) -> f64 {
    if f.is_finite() {
        let mut buffer = zmij::Buffer::new();
        if let Ok(wide) = buffer.format_finite(f).parse::<f64>() {
            return wide;
        }
    }
    f64::from(f)
}

/// Decimal digits of a small number.
struct SmallDigits {
    digits: [u8; 10],
    start: usize,
}

impl SmallDigits {
    fn text(&mut self) -> &str {
        std::str::from_utf8(self.digits.get(self.start..).unwrap_or_default()).unwrap_or_default()
    }
}

fn itoa_buffer(mut n: u32) -> SmallDigits {
    let mut out = SmallDigits {
        digits: [0; 10],
        start: 10,
    };
    loop {
        out.start -= 1;
        out.digits[out.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out
}

/// The significant digits of a number, split across two pieces of a formatted string, and the
/// position of the decimal point relative to the first digit (`point = 2` for `12.5`, `-2` for
/// `0.00125`).
struct Digits<'a> {
    head: &'a str,
    tail: &'a str,
    point: i32,
}

impl Digits<'_> {
    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Appends the digits `from..to` (clamped to the digits there are).
    fn push_range(&self, from: usize, to: usize, out: &mut GoFloat) {
        let split = self.head.len();
        if from < split {
            out.push_str(self.head.get(from..to.min(split)).unwrap_or_default());
        }
        if to > split {
            out.push_str(
                self.tail
                    .get(from.saturating_sub(split)..to - split)
                    .unwrap_or_default(),
            );
        }
    }
}

/// Shortest round-trip digits of a finite, non-zero, positive `f`, read from `zmij`'s output.
fn shortest_digits(text: &str) -> Digits<'_> {
    let (mantissa, exponent) = match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int_part = int_part.trim_start_matches('0');
    if int_part.is_empty() {
        // 0.000ddd
        let digits = frac_part.trim_start_matches('0');
        let leading_zeros = (frac_part.len() - digits.len()) as i32;
        Digits {
            head: digits.trim_end_matches('0'),
            tail: "",
            point: exponent - leading_zeros,
        }
    } else {
        let point = int_part.len() as i32 + exponent;
        let frac_part = frac_part.trim_end_matches('0');
        if frac_part.is_empty() {
            Digits {
                head: int_part.trim_end_matches('0'),
                tail: "",
                point,
            }
        } else {
            Digits {
                head: int_part,
                tail: frac_part,
                point,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(f: f64) -> String {
        let mut out = GoFloat {
            bytes: [0; MAX_LEN],
            len: 0,
        };
        out.general(f);
        out.as_str().to_owned()
    }

    #[test]
    fn table() {
        for (f, text) in [
            (1_795_314_910.668_329_2, "1.7953149106683292e+09"),
            (123_456.0, "123456"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-1.234_567_890_123_456_7e-308, "-1.2345678901234567e-308"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1e21, "1e+21"),
            (0.1, "0.1"),
            (100.0, "100"),
            (2.5e15, "2.5e+15"),
        ] {
            assert_eq!(GoFloat::new(f).as_str(), text, "{f:e}");
        }
    }

    #[test]
    fn fast_paths_match_the_general_path() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for _ in 0..300_000 {
            let bits = next();
            // Magnitudes around both fast ranges, with random mantissas.
            let exponent = (bits % 30) as i32 - 8;
            let mantissa = (bits >> 11) as f64 / (1u64 << 53) as f64;
            for f in [
                (1.0 + mantissa) * 10f64.powi(exponent),
                -(1.0 + mantissa) * 10f64.powi(exponent),
                10f64.powi(exponent),
                f64::from_bits(bits),
            ] {
                if f.is_finite() && f != 0.0 {
                    assert_eq!(GoFloat::new(f).as_str(), general(f), "{f:e}");
                    checked += 1;
                }
            }
        }
        for f in [
            1e-4,
            1e-4 - 1e-20,
            1e6,
            1e6 - 1e-10,
            1e16,
            1e16 - 2.0,
            999_999.999_999_9,
        ] {
            assert_eq!(GoFloat::new(f).as_str(), general(f), "{f:e}");
        }
        assert!(checked > 1_000_000);
    }

    #[test]
    fn plain_decimals_are_zmij_text() {
        for f in [0.5, 0.000_123_4, 123.456, -999_999.5, 42.125] {
            assert!(is_plain_decimal(f));
            let mut buffer = zmij::Buffer::new();
            assert_eq!(buffer.format_finite(f), GoFloat::new(f).as_str());
        }
        assert!(!is_plain_decimal(1.0));
        assert!(!is_plain_decimal(1e6));
    }
}
