//! Hand-encoding of the hot record: a history row, written as protobuf bytes without building
//! a `proto::Record`, plus value formatting as wandb-core writes it.
//!
//! The encoding is the one prost produces for a `Record { num, history: HistoryRecord { item,
//! step } }`: field numbers in order, `nested_key` (field 2) for every key, `value_json`
//! (field 16, tag bytes `0x82 0x01`) for every value, and a `step` message that is present but
//! empty at step 0 (proto3 omits `num = 0`), as in files written by the SDK. A unit test checks
//! that prost decodes these bytes to the same message as the slow path encodes.

use wandb_format::json;

use crate::value::Value;

/// Tag of `HistoryRecord.item` / `Record.num` style fields, by wire type.
const TAG_ITEM: u8 = 0x0A; // field 1, length-delimited
const TAG_NESTED_KEY: u8 = 0x12; // field 2, length-delimited
const TAG_VALUE_JSON: [u8; 2] = [0x82, 0x01]; // field 16, length-delimited
const TAG_NUM: u8 = 0x08; // field 1, varint
const TAG_HISTORY: u8 = 0x12; // Record field 2, length-delimited
const TAG_STEP: u8 = 0x12; // HistoryRecord field 2, length-delimited

/// Appends `v` as a protobuf varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length of `v` as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per 7 significant bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The bytes of a history item that depend only on the key: every path component as a
/// `nested_key` field, then the `value_json` tag.
pub(crate) fn item_prefix(path: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for component in path {
        out.push(TAG_NESTED_KEY);
        put_varint(&mut out, component.len() as u64);
        out.extend_from_slice(component.as_bytes());
    }
    out.extend_from_slice(&TAG_VALUE_JSON);
    out
}

/// Room kept in front of a record's body for its header (`num` and the history length: at most
/// 1 + 10 + 1 + 10 bytes).
const HEADER_ROOM: usize = 24;

/// Builds one history record's bytes in a single pass: items are written into the buffer after
/// some room, and once the body's length is known the header is written backward into that
/// room, right before the body. The result is exactly what prost encodes.
#[derive(Debug)]
pub(crate) struct HistoryEncoder {
    out: Vec<u8>,
    value: String,
}

impl Default for HistoryEncoder {
    fn default() -> Self {
        HistoryEncoder {
            out: Vec::with_capacity(1024),
            value: String::with_capacity(64),
        }
    }
}

impl HistoryEncoder {
    /// Starts a new record.
    pub(crate) fn clear(&mut self) {
        self.out.clear();
        self.out.resize(HEADER_ROOM, 0);
    }

    /// Adds an item: a key's cached prefix and its value, formatted as wandb-core does.
    #[inline]
    pub(crate) fn push(&mut self, prefix: &[u8], value: &Value) {
        if let Value::Float(f) = value
            && (1e-4..1e6).contains(&f.abs())
        {
            // The common case, straight from the formatter's buffer (see `write_f64`).
            let mut buffer = zmij::Buffer::new();
            let text = buffer.format_finite(*f);
            return push_item(
                &mut self.out,
                prefix,
                text.strip_suffix(".0").unwrap_or(text),
            );
        }
        self.value.clear();
        write_value(value, &mut self.value);
        push_item(&mut self.out, prefix, &self.value);
    }

    /// Adds an item with a ready JSON text (tests).
    #[cfg(test)]
    fn push_text(&mut self, prefix: &[u8], json: &str) {
        push_item(&mut self.out, prefix, json);
    }

    /// Ends the record (number `num`, step `step`) and returns its bytes.
    pub(crate) fn finish(&mut self, num: i64, step: i64) -> &[u8] {
        let step_u = step as u64;
        let step_inner = if step == 0 { 0 } else { 1 + varint_len(step_u) };
        self.out.push(TAG_STEP);
        put_varint(&mut self.out, step_inner as u64);
        if step != 0 {
            self.out.push(TAG_NUM);
            put_varint(&mut self.out, step_u);
        }
        let history_len = self.out.len() - HEADER_ROOM;
        let mut header = [0u8; HEADER_ROOM];
        let mut n = 0;
        let mut push = |byte: u8| {
            if let Some(slot) = header.get_mut(n) {
                *slot = byte;
            }
            n += 1;
        };
        push(TAG_NUM);
        let mut v = num as u64;
        while v >= 0x80 {
            push((v as u8) | 0x80);
            v >>= 7;
        }
        push(v as u8);
        push(TAG_HISTORY);
        let mut v = history_len as u64;
        while v >= 0x80 {
            push((v as u8) | 0x80);
            v >>= 7;
        }
        push(v as u8);
        let start = HEADER_ROOM.saturating_sub(n);
        if let (Some(room), Some(bytes)) = (self.out.get_mut(start..HEADER_ROOM), header.get(..n)) {
            room.copy_from_slice(bytes);
        }
        self.out.get(start..).unwrap_or_default()
    }
}

/// Appends one history item: tag, length, the key's prefix, then the value's length and text.
#[inline]
fn push_item(out: &mut Vec<u8>, prefix: &[u8], json: &str) {
    let inner = prefix.len() + varint_len(json.len() as u64) + json.len();
    out.reserve(inner + 6);
    if inner < 0x80 && json.len() < 0x80 {
        // Short items (nearly all): both lengths are one byte.
        out.extend_from_slice(&[TAG_ITEM, inner as u8]);
        out.extend_from_slice(prefix);
        out.push(json.len() as u8);
    } else {
        out.push(TAG_ITEM);
        put_varint(out, inner as u64);
        out.extend_from_slice(prefix);
        put_varint(out, json.len() as u64);
    }
    out.extend_from_slice(json.as_bytes());
}

/// Appends `value` as wandb-core's JSON text.
pub(crate) fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Float(f) => write_f64(*f, out),
        Value::Int(i) => write_i64(*i, out),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Json(v) => v.write_to(out),
    }
}

/// Appends `i` in decimal.
pub(crate) fn write_i64(i: i64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// Appends `f` as Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what wandb-core writes), with a
/// fast path for the common magnitudes.
///
/// The shortest round-trip digits come from `zmij` (the same digits as `ryu`, which
/// [`json::format_f64`] uses, about twice as fast). Between 1e-4 and 1e6 Go writes them in plain
/// decimal form, which is exactly `zmij`'s (and `ryu`'s) output without its trailing `.0`: both
/// use their decimal layouts whenever the decimal exponent `kk` (with `10^(kk-1) <= |f| <
/// 10^kk`) is at most 16, and this range has `kk` in `-3..=6`. Between 1e6 and 1e16 the decimal
/// layout is rearranged into Go's exponent form. Everything else goes through
/// [`json::format_f64`]. A unit test compares the two on hundreds of thousands of values,
/// boundaries included.
pub(crate) fn write_f64(f: f64, out: &mut String) {
    let a = f.abs();
    if (1e-4..1e6).contains(&a) {
        let mut buffer = zmij::Buffer::new();
        let text = buffer.format_finite(f);
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
        return;
    }
    if (1e6..1e16).contains(&a) {
        // Go writes `d.ddde+XX`; zmij writes `IIII.FFFF` (`kk` in 7..=16, still decimal). Move
        // the point after the first digit and drop trailing zeros.
        let mut buffer = zmij::Buffer::new();
        let text = buffer.format_finite(f);
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        if let Some((int_part, frac_part)) = digits.split_once('.')
            && int_part.len() >= 7
            && let Some((first, rest)) = int_part.split_at_checked(1)
        {
            let frac_part = frac_part.trim_end_matches('0');
            out.push_str(sign);
            out.push_str(first);
            let rest_int = if frac_part.is_empty() {
                rest.trim_end_matches('0')
            } else {
                rest
            };
            if !rest_int.is_empty() || !frac_part.is_empty() {
                out.push('.');
                out.push_str(rest_int);
                out.push_str(frac_part);
            }
            out.push_str("e+");
            let exponent = int_part.len() - 1;
            if exponent < 10 {
                out.push('0');
            }
            write_i64(exponent as i64, out);
            return;
        }
    }
    json::format_f64(f, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use wandb_format::proto;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(
                prost::encoding::decode_varint(&mut out.as_slice()).unwrap(),
                v
            );
        }
    }

    #[test]
    fn fast_float_path_matches_go_formatting() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut samples = vec![
            1e-4,
            0.0001,
            9.999e-5,
            1e6,
            999_999.999,
            123_456.0,
            0.1,
            1.0,
            2.5,
            -0.5,
            100.0,
            0.000_857_375,
            1e-5,
            5e-324,
            f64::MAX,
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
        ];
        for _ in 0..200_000 {
            let bits = next();
            samples.push(f64::from_bits(bits));
            let scale = 10f64.powi((next() % 28) as i32 - 6);
            samples.push((next() % 1_000_000) as f64 / 997.0 * scale);
        }
        for f in samples {
            let (mut fast, mut slow) = (String::new(), String::new());
            write_f64(f, &mut fast);
            json::format_f64(f, &mut slow);
            assert_eq!(fast, slow, "{f:e}");
        }
    }

    #[test]
    fn hand_encoded_history_decodes_like_prost() {
        for (num, step) in [(1i64, 0i64), (10, 1), (300, 129), (1 << 40, 1 << 35)] {
            let items = [
                (vec!["loss".to_owned()], "0.5"),
                (
                    vec!["train".to_owned(), "b".to_owned(), "c".to_owned()],
                    "1e+06",
                ),
                (vec!["x".repeat(200)], "\"long\""),
            ];
            let mut enc = HistoryEncoder::default();
            enc.clear();
            for (path, value) in &items {
                enc.push_text(&item_prefix(path), value);
            }
            let fast = enc.finish(num, step).to_vec();

            let slow = proto::Record {
                num,
                record_type: Some(proto::record::RecordType::History(proto::HistoryRecord {
                    item: items
                        .iter()
                        .map(|(path, value)| proto::HistoryItem {
                            nested_key: path.clone(),
                            value_json: (*value).to_owned(),
                            ..Default::default()
                        })
                        .collect(),
                    step: Some(proto::HistoryStep { num: step }),
                    info: None,
                })),
                ..Default::default()
            };
            assert_eq!(proto::Record::decode(fast.as_slice()).unwrap(), slow);
            assert_eq!(fast, slow.encode_to_vec(), "byte-identical to prost");
        }
    }
}
