//! Hand-encoding of the hot record: a history row, written as protobuf bytes without building
//! a `proto::Record`, plus value formatting as wandb-core writes it.
//!
//! The encoding is the one prost produces for a `Record { num, history: HistoryRecord { item,
//! step } }`: field numbers in order, `nested_key` (field 2) for every key, `value_json`
//! (field 16, tag bytes `0x82 0x01`) for every value, and a `step` message that is present but
//! empty at step 0 (proto3 omits `num = 0`), as in files written by the SDK. A unit test checks
//! that prost decodes these bytes to the same message as the slow path encodes.

use wandb_format::json;

use crate::value::{Key, Value};

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

/// Longest text [`FloatText`] holds (the longest shortest-round-trip float, `-1.2345678901234567e-100`,
/// is 24 bytes; the fast path's are shorter).
const FLOAT_TEXT_MAX: usize = 24;

/// The `value_json` text of a float, formatted ahead of the writer thread; empty for values the
/// writer formats itself.
///
/// Formatting floats is the largest single cost of writing a row. While the writer keeps up,
/// `Run::log` leaves it to the writer, so the training thread pays as little as possible per
/// call; once the writer falls behind (its queue fills up), `Run::log` formats the row's floats
/// itself, sharing the work between two cores instead of waiting for the writer.
///
/// 32 bytes, 8-aligned: copies are two aligned 16-byte moves (a 25-byte layout was copied in odd
/// unaligned pieces that stall when read back right after being written).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct FloatText {
    bytes: [u8; FLOAT_TEXT_MAX],
    len: u8,
}

impl FloatText {
    /// No text: the writer formats the value.
    pub(crate) const NONE: FloatText = FloatText {
        bytes: [0; FLOAT_TEXT_MAX],
        len: 0,
    };

    /// The text of `f` as wandb-core writes it (`wandb_format::json::GoFloat`, the workspace's
    /// one float formatter).
    #[inline]
    pub(crate) fn of_f64(f: f64) -> FloatText {
        FloatText::from_bytes(json::GoFloat::new(f).as_str().as_bytes())
    }

    #[inline(always)]
    /// Formats the common floats of a row in place (see [`is_plain`]), leaving the texts of
    /// other values as they are.
    ///
    /// The floats of a group are all formatted before any text is copied out of the formatter's
    /// buffer: a copy right after the formatter wrote the bytes has to wait for those stores,
    /// and copying each text straight away made that wait most of the cost.
    pub(crate) fn format_row(entries: &mut [(Key, Value, FloatText)]) {
        const GROUP: usize = 16;
        for group in entries.chunks_mut(GROUP) {
            let mut buffers: [zmij::Buffer; GROUP] = std::array::from_fn(|_| zmij::Buffer::new());
            let mut texts: [&str; GROUP] = [""; GROUP];
            for ((buffer, text), (_, value, _)) in
                buffers.iter_mut().zip(texts.iter_mut()).zip(group.iter())
            {
                if let Value::Float(f) = *value
                    && is_plain(f)
                {
                    *text = buffer.format_finite(f);
                }
            }
            for (text, (_, _, slot)) in texts.iter().zip(group.iter_mut()) {
                if !text.is_empty() {
                    *slot = FloatText::NONE;
                    slot.push(text.as_bytes());
                }
            }
        }
    }

    #[inline(always)]
    fn from_bytes(text: &[u8]) -> FloatText {
        let mut out = FloatText::NONE;
        out.push(text);
        out
    }

    /// Appends `bytes`; the text becomes empty (none) if they do not fit.
    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        if self.len == 0 && copy_small(&mut self.bytes, bytes) {
            self.len = bytes.len() as u8;
            return;
        }
        self.push_slow(bytes);
    }

    fn push_slow(&mut self, bytes: &[u8]) {
        let start = usize::from(self.len);
        match self.bytes.get_mut(start..start + bytes.len()) {
            Some(slot) if start + bytes.len() <= usize::from(u8::MAX) => {
                slot.copy_from_slice(bytes);
                self.len = (start + bytes.len()) as u8;
            }
            _ => *self = FloatText::NONE,
        }
    }

    /// The text, if there is one.
    #[inline]
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self.len {
            0 => None,
            len => self.bytes.get(..usize::from(len)),
        }
    }
}

/// Whether `f`'s text is `zmij`'s shortest output as it is (`json::is_plain_decimal`): the
/// common case for metrics, formatted in batches straight from `zmij`'s buffers.
#[inline(always)]
fn is_plain(f: f64) -> bool {
    json::is_plain_decimal(f)
}

/// Copies `src` (4 to 24 bytes) to the start of `dst` with two fixed-size copies that overlap
/// in the middle, as small-`memcpy` routines do, rather than one copy of variable length (a call
/// to `memcpy` costs more than copying a number's text). Returns `false`, copying nothing, for
/// other lengths.
#[inline(always)]
fn copy_small(dst: &mut [u8; FLOAT_TEXT_MAX], src: &[u8]) -> bool {
    fn both<const N: usize>(dst: &mut [u8], src: &[u8]) -> Option<()> {
        let n = src.len();
        let head: [u8; N] = src.get(..N)?.try_into().ok()?;
        let tail: [u8; N] = src.get(n - N..)?.try_into().ok()?;
        dst.get_mut(..N)?.copy_from_slice(&head);
        dst.get_mut(n - N..n)?.copy_from_slice(&tail);
        Some(())
    }
    let copied = match src.len() {
        4..=7 => both::<4>(dst, src),
        8..=15 => both::<8>(dst, src),
        16..=FLOAT_TEXT_MAX => both::<16>(dst, src),
        _ => None,
    };
    copied.is_some()
}

impl std::fmt::Debug for FloatText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FloatText")
            .field(&self.as_bytes().map(String::from_utf8_lossy))
            .finish()
    }
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
    /// The record's header (`num` and the history length), built before it is copied into place.
    header: Vec<u8>,
}

impl Default for HistoryEncoder {
    fn default() -> Self {
        HistoryEncoder {
            out: Vec::with_capacity(1024),
            value: String::with_capacity(64),
            header: Vec::with_capacity(HEADER_ROOM),
        }
    }
}

impl HistoryEncoder {
    /// Starts a new record.
    pub(crate) fn clear(&mut self) {
        self.out.clear();
        self.out.resize(HEADER_ROOM, 0);
    }

    /// Adds an item: a key's cached prefix and its value, formatted as wandb-core does (or
    /// already formatted, in `text`).
    #[inline]
    pub(crate) fn push(&mut self, prefix: &[u8], value: &Value, text: &FloatText) {
        if let Some(text) = text.as_bytes() {
            return push_item(&mut self.out, prefix, text);
        }
        if let Value::Float(f) = *value
            && is_plain(f)
        {
            // The common case, straight from the formatter's buffer.
            let mut buffer = zmij::Buffer::new();
            return push_item(&mut self.out, prefix, buffer.format_finite(f).as_bytes());
        }
        if let Value::Float(f) = *value
            && let Some(text) = FloatText::of_f64(f).as_bytes()
        {
            return push_item(&mut self.out, prefix, text);
        }
        self.value.clear();
        write_value(value, &mut self.value);
        push_item(&mut self.out, prefix, self.value.as_bytes());
    }

    /// Adds an item with a ready JSON text (tests).
    #[cfg(test)]
    fn push_text(&mut self, prefix: &[u8], json: &str) {
        push_item(&mut self.out, prefix, json.as_bytes());
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
        let header = &mut self.header;
        header.clear();
        header.push(TAG_NUM);
        put_varint(header, num as u64);
        header.push(TAG_HISTORY);
        put_varint(header, history_len as u64);
        let start = HEADER_ROOM.saturating_sub(header.len());
        if let Some(room) = self.out.get_mut(start..HEADER_ROOM)
            && room.len() == header.len()
        {
            room.copy_from_slice(header);
        }
        self.out.get(start..).unwrap_or_default()
    }
}

/// Appends one history item: tag, length, the key's prefix, then the value's length and text.
#[inline]
fn push_item(out: &mut Vec<u8>, prefix: &[u8], json: &[u8]) {
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
    out.extend_from_slice(json);
}

/// Appends `value` as wandb-core's JSON text.
pub(crate) fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Float(f) => write_f64(*f, out),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Json(v) => v.write_to(out),
    }
}

/// Appends `f` as wandb-core writes it (`json::format_f64`).
#[inline]
pub(crate) fn write_f64(f: f64, out: &mut String) {
    json::format_f64(f, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use wandb_format::proto;

    #[test]
    fn float_texts_keep_every_byte_of_every_length() {
        for len in 0..=FLOAT_TEXT_MAX + 2 {
            let src: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
            let text = FloatText::from_bytes(&src);
            if len == 0 || len > FLOAT_TEXT_MAX {
                assert_eq!(text.as_bytes(), None, "{len}");
            } else {
                assert_eq!(text.as_bytes(), Some(src.as_slice()), "{len}");
            }
        }
    }

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
        for chunk in samples.chunks(37) {
            // The batch path (zmij's buffers for plain decimals) and the per-value texts agree
            // with the one formatter.
            let mut entries: Vec<(Key, Value, FloatText)> = chunk
                .iter()
                .map(|&f| (Key::from("k"), Value::Float(f), FloatText::NONE))
                .collect();
            FloatText::format_row(&mut entries);
            for (&f, (_, _, text)) in chunk.iter().zip(&entries) {
                let mut slow = String::new();
                json::format_f64(f, &mut slow);
                if let Some(batch) = text.as_bytes() {
                    assert_eq!(batch, slow.as_bytes(), "{f:e}");
                }
                assert_eq!(
                    FloatText::of_f64(f).as_bytes(),
                    Some(slow.as_bytes()),
                    "{f:e}"
                );
            }
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
