//! Timestamps as W&B's tools write them, from the Unix times stored in records, in UTC.
//!
//! The calendar arithmetic is jiff's; this module only picks the two text forms the tools need:
//! protobuf's JSON mapping of `google.protobuf.Timestamp` (RFC 3339 with 0, 3, 6 or 9 fraction
//! digits and a `Z`), used by `wandb-inspect dump` and by the `wandb-metadata.json` that sync
//! derives, and the `YYYY-MM-DDTHH:MM:SS.ffffff` prefix of W&B's `output.log` lines.

use std::fmt::Write as _;

use jiff::Span;
use jiff::civil::date;

/// Appends `seconds` + `nanos` since the Unix epoch as RFC 3339 in UTC, without quotes
/// (`2026-11-22T03:21:18.551935Z`), with 0, 3, 6 or 9 fraction digits as protobuf's JSON
/// mapping does. Returns `false`, writing nothing, when the time is outside years 1 to 9999 or
/// `nanos` is outside `0..1e9` (protojson rejects those).
pub fn write_rfc3339(out: &mut String, seconds: i64, nanos: i32) -> bool {
    if !rfc3339_in_range(seconds, nanos) {
        return false;
    }
    if !write_seconds(out, seconds) {
        return false;
    }
    if nanos != 0 {
        if nanos % 1_000_000 == 0 {
            let _ = write!(out, ".{:03}", nanos / 1_000_000);
        } else if nanos % 1_000 == 0 {
            let _ = write!(out, ".{:06}", nanos / 1_000);
        } else {
            let _ = write!(out, ".{nanos:09}");
        }
    }
    out.push('Z');
    true
}

/// Whether [`write_rfc3339`] can write this time: years 1 to 9999, `nanos` in `0..1e9`.
pub fn rfc3339_in_range(seconds: i64, nanos: i32) -> bool {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    (MIN..=MAX).contains(&seconds) && (0..1_000_000_000).contains(&nanos)
}

/// Appends `micros` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC, the prefix of
/// a line of W&B's `output.log`. Times outside years -9999 to 9999 are clamped to those ends.
pub fn write_console_timestamp(out: &mut String, micros: i64) {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    if !write_seconds(out, seconds) {
        let clamped = if seconds < 0 {
            "-9999-01-01T00:00:00"
        } else {
            "9999-12-31T23:59:59"
        };
        out.push_str(clamped);
    }
    let _ = write!(out, ".{fraction:06}");
}

/// Appends `YYYY-MM-DDTHH:MM:SS` for `seconds` since the Unix epoch in UTC; `false` (writing
/// nothing) outside jiff's civil range (years -9999 to 9999).
fn write_seconds(out: &mut String, seconds: i64) -> bool {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let Some(date) = Span::new()
        .try_days(days)
        .ok()
        .and_then(|span| date(1970, 1, 1).checked_add(span).ok())
    else {
        return false;
    };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        date.year(),
        date.month(),
        date.day(),
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(seconds: i64, nanos: i32) -> Option<String> {
        let mut out = String::new();
        write_rfc3339(&mut out, seconds, nanos).then_some(out)
    }

    #[test]
    fn rfc3339_fraction_digits_and_range() {
        assert_eq!(rfc(0, 0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc(1_795_317_678, 551_935_000).as_deref(),
            Some("2026-11-22T03:21:18.551935Z")
        );
        assert_eq!(
            rfc(1, 500_000_000).as_deref(),
            Some("1970-01-01T00:00:01.500Z")
        );
        assert_eq!(rfc(1, 7).as_deref(), Some("1970-01-01T00:00:01.000000007Z"));
        assert_eq!(rfc(951_782_400, 0).as_deref(), Some("2000-02-29T00:00:00Z"));
        assert_eq!(rfc(-1, 0).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(
            rfc(-62_135_596_800, 0).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        assert_eq!(
            rfc(253_402_300_799, 0).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(rfc(-62_135_596_801, 0), None);
        assert_eq!(rfc(253_402_300_800, 0), None);
        assert_eq!(rfc(0, -1), None);
        assert_eq!(rfc(0, 1_000_000_000), None);
    }

    #[test]
    fn console_timestamps() {
        let mut s = String::new();
        write_console_timestamp(&mut s, 1_795_317_679_103_348);
        assert_eq!(s, "2026-11-22T03:21:19.103348");
        s.clear();
        write_console_timestamp(&mut s, i64::MAX);
        assert_eq!(s, "9999-12-31T23:59:59.775807");
        s.clear();
        write_console_timestamp(&mut s, -1);
        assert_eq!(s, "1969-12-31T23:59:59.999999");
    }
}
