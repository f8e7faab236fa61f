//! The protobuf wire format read in place: one cursor with prost's exact limits.
//!
//! Every zero-copy reader of protobuf bytes in the workspace walks them with [`Cursor`]: this
//! crate's views ([`crate::RecordView`]), inspect's schema-driven validator and renderer, and
//! sync's fast path for history and summary records and its telemetry walker. The cursor borrows
//! the bytes, allocates nothing, and accepts exactly what prost 0.14 accepts at the wire level:
//!
//! * a varint has at most 10 bytes, and a tenth byte may only be 0 or 1 (more would overflow
//!   `u64`); a varint cut short by the end of the bytes is an error;
//! * a key fits `u32`, its field number is not 0, and its wire type is one of the six defined
//!   (6 and 7 are errors);
//! * a length-delimited value, fixed32 or fixed64 lies inside the bytes the cursor was given (a
//!   nested message gets its own cursor over its own bytes, so nothing reads past its end);
//! * a group (wire type 3) is skipped up to the end tag of the same field number, as prost skips
//!   an unknown field; an end tag anywhere else is an error. A *known* field sent as a group is
//!   rejected by the caller's wire type check, as prost rejects it;
//! * the nesting budget is prost's `DecodeContext`: a message is read with a `depth` (starting at
//!   [`RECURSION_LIMIT`]), skipping any field fails when it is 0, the fields inside a group are
//!   skipped with one level less, and a nested message is entered with one level less
//!   ([`enter`], which fails at 0).
//!
//! What prost checks beyond that for a *known* field (its wire type, UTF-8 for strings) needs the
//! schema and is the caller's job; [`Cursor::expect`] and [`utf8`] do it the way prost does.
//! `wandb_format::fuzzing::wire_parity` checks the cursor against prost's own decoder in both
//! directions.

/// prost's nesting limit (`prost::RECURSION_LIMIT`): the `depth` a top-level message is read with.
pub const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not valid protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A varint longer than 10 bytes, overflowing `u64`, or cut short.
    #[error("invalid varint")]
    Varint,
    /// A key that does not fit `u32`, or with field number 0.
    #[error("invalid field key")]
    Key,
    /// Wire type 6 or 7.
    #[error("invalid wire type")]
    UnknownWireType,
    /// A value that runs past the end of its message.
    #[error("field runs past the end of its message")]
    Truncated,
    /// An end-group tag without its start, or closing another field's group.
    #[error("unexpected end group tag")]
    EndGroup,
    /// Nesting deeper than [`RECURSION_LIMIT`].
    #[error("recursion limit reached")]
    RecursionLimit,
    /// A known field with another wire type than its schema's.
    #[error("wrong wire type for the field")]
    WrongWireType,
    /// A string field that is not UTF-8.
    #[error("string is not UTF-8")]
    Utf8,
}

/// A result of this module.
pub type WireResult<T> = Result<T, WireError>;

/// The six wire types protobuf defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    /// 0: a varint.
    Varint,
    /// 1: eight bytes.
    Fixed64,
    /// 2: a length prefix and that many bytes.
    Len,
    /// 3: the start of a (deprecated) group.
    StartGroup,
    /// 4: the end of a group.
    EndGroup,
    /// 5: four bytes.
    Fixed32,
}

/// One field value as it is on the wire, read without a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raw<'a> {
    /// A varint.
    Varint(u64),
    /// Eight bytes, little-endian.
    Fixed64(u64),
    /// Four bytes, little-endian.
    Fixed32(u32),
    /// The bytes of a length-delimited value.
    Len(&'a [u8]),
    /// A group, skipped.
    Group,
}

/// A position in the bytes of one message.
///
/// Invariant: `rest` is a suffix of `buf`.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub const fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, rest: buf }
    }

    /// Whether all bytes have been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The current position, from the start of the bytes.
    #[inline]
    pub fn pos(&self) -> usize {
        self.buf.len() - self.rest.len()
    }

    /// Moves to `pos` (clamped to the end), which should be where a field starts.
    #[inline]
    pub fn seek(&mut self, pos: usize) {
        self.rest = self.rest_from(pos);
    }

    /// The bytes not read yet.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The bytes from position `from` on (empty past the end).
    #[inline]
    pub fn rest_from(&self, from: usize) -> &'a [u8] {
        self.buf.get(from..).unwrap_or_default()
    }

    /// Reads a varint: at most 10 bytes, the tenth 0 or 1 (prost's `decode_varint`).
    #[inline(always)]
    pub fn varint(&mut self) -> WireResult<u64> {
        // Keys and short lengths take one byte; keys of fields 16 and up and lengths up to 16383
        // take two; record numbers and steps up to 2^28 at most four.
        match *self.rest {
            [low, ref tail @ ..] if low < 0x80 => {
                self.rest = tail;
                Ok(u64::from(low))
            }
            [low, high, ref tail @ ..] if high < 0x80 => {
                self.rest = tail;
                Ok(u64::from(low & 0x7F) | u64::from(high) << 7)
            }
            // Record numbers and steps past 16383 (up to 2^28: 268 million).
            [b0, b1, b2, ref tail @ ..] if b2 < 0x80 => {
                self.rest = tail;
                Ok(u64::from(b0 & 0x7F) | u64::from(b1 & 0x7F) << 7 | u64::from(b2) << 14)
            }
            [b0, b1, b2, b3, ref tail @ ..] if b3 < 0x80 => {
                self.rest = tail;
                Ok(u64::from(b0 & 0x7F)
                    | u64::from(b1 & 0x7F) << 7
                    | u64::from(b2 & 0x7F) << 14
                    | u64::from(b3) << 21)
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> WireResult<u64> {
        let mut value = 0u64;
        for (count, &byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7F) << (7 * count);
            if byte < 0x80 {
                if count == 9 && byte >= 0x02 {
                    return Err(WireError::Varint);
                }
                self.rest = self.rest.get(count + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(WireError::Varint)
    }

    /// Reads a field key: a varint that fits `u32`, one of the six wire types and a non-zero field
    /// number (prost's `decode_key`).
    #[inline(always)]
    pub fn key(&mut self) -> WireResult<(u32, WireType)> {
        let key = match *self.rest {
            // Field numbers 1 to 15: one byte, which always fits `u32`.
            [byte, ref tail @ ..] if byte < 0x80 => {
                self.rest = tail;
                u32::from(byte)
            }
            _ => u32::try_from(self.varint()?).map_err(|_| WireError::Key)?,
        };
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(WireError::UnknownWireType),
        };
        let number = key >> 3;
        if number == 0 {
            return Err(WireError::Key);
        }
        Ok((number, wire_type))
    }

    /// The next field's key, or `None` at the end of the message.
    #[inline(always)]
    pub fn next_key(&mut self) -> WireResult<Option<(u32, WireType)>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.key().map(Some)
    }

    /// Reads a length prefix and that many bytes.
    #[inline(always)]
    pub fn len_delimited(&mut self) -> WireResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
        if len > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (bytes, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(bytes)
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> WireResult<[u8; N]> {
        let (bytes, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.rest = tail;
        Ok(*bytes)
    }

    /// Reads eight little-endian bytes.
    #[inline(always)]
    pub fn fixed64(&mut self) -> WireResult<u64> {
        self.fixed::<8>().map(u64::from_le_bytes)
    }

    /// Reads four little-endian bytes.
    #[inline(always)]
    pub fn fixed32(&mut self) -> WireResult<u32> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    /// Reads the value of field `number` of wire type `wire_type` without a schema, as prost's
    /// `skip_field` does, with `depth` levels of nesting left: fails when `depth` is 0, reads a
    /// group's fields with one level less up to its end tag, fails on a stray end tag.
    #[inline]
    pub fn raw(&mut self, wire_type: WireType, number: u32, depth: u32) -> WireResult<Raw<'a>> {
        if depth == 0 {
            return Err(WireError::RecursionLimit);
        }
        match wire_type {
            WireType::Varint => self.varint().map(Raw::Varint),
            WireType::Fixed64 => self.fixed64().map(Raw::Fixed64),
            WireType::Fixed32 => self.fixed32().map(Raw::Fixed32),
            WireType::Len => self.len_delimited().map(Raw::Len),
            WireType::StartGroup => self.group(number, depth).map(|()| Raw::Group),
            WireType::EndGroup => Err(WireError::EndGroup),
        }
    }

    #[inline(never)]
    fn group(&mut self, number: u32, depth: u32) -> WireResult<()> {
        loop {
            let (inner, inner_type) = self.key()?;
            if inner_type == WireType::EndGroup {
                return if inner == number {
                    Ok(())
                } else {
                    Err(WireError::EndGroup)
                };
            }
            self.raw(inner_type, inner, depth - 1)?;
        }
    }

    /// Skips the value of field `number` (see [`Cursor::raw`]).
    #[inline]
    pub fn skip(&mut self, wire_type: WireType, number: u32, depth: u32) -> WireResult<()> {
        self.raw(wire_type, number, depth).map(drop)
    }

    /// Reads the next field without a schema: its number and value, or `None` at the end.
    #[inline]
    pub fn next_field(&mut self, depth: u32) -> WireResult<Option<(u32, Raw<'a>)>> {
        let Some((number, wire_type)) = self.next_key()? else {
            return Ok(None);
        };
        self.raw(wire_type, number, depth)
            .map(|raw| Some((number, raw)))
    }

    /// Checks that a known field has the wire type its schema gives it, as prost does before
    /// reading it.
    #[inline(always)]
    pub fn expect(actual: WireType, expected: WireType) -> WireResult<()> {
        if actual == expected {
            Ok(())
        } else {
            Err(WireError::WrongWireType)
        }
    }

    /// Reads a known message field at `depth`: checks its wire type and that one level of nesting
    /// is left, and returns its bytes and the depth to read them with.
    #[inline(always)]
    pub fn message(&mut self, wire_type: WireType, depth: u32) -> WireResult<(&'a [u8], u32)> {
        Self::expect(wire_type, WireType::Len)?;
        let inner = enter(depth)?;
        self.len_delimited().map(|bytes| (bytes, inner))
    }

    /// Reads a known `string` field: checks its wire type and UTF-8.
    #[inline(always)]
    pub fn string(&mut self, wire_type: WireType) -> WireResult<&'a str> {
        Self::expect(wire_type, WireType::Len)?;
        utf8(self.len_delimited()?)
    }

    /// Reads a known varint field (`int32`, `int64`, `uint*`, `bool`, `sint*`, enums).
    #[inline(always)]
    pub fn varint_field(&mut self, wire_type: WireType) -> WireResult<u64> {
        Self::expect(wire_type, WireType::Varint)?;
        self.varint()
    }
}

/// The depth to read a nested message with, from its parent's `depth`: fails at 0, as prost's
/// `DecodeContext::limit_reached` does.
#[inline(always)]
pub fn enter(depth: u32) -> WireResult<u32> {
    depth.checked_sub(1).ok_or(WireError::RecursionLimit)
}

/// Decodes a `sint32`/`sint64` (zigzag) varint.
#[inline(always)]
pub fn zigzag(raw: u64) -> i64 {
    (raw >> 1) as i64 ^ -((raw & 1) as i64)
}

/// `bytes` as text, if they are valid UTF-8 (as prost requires of a `string` field).
///
/// Nearly every string in a record file is ASCII: the fast path checks that with a loop the
/// compiler vectorizes and inlines, where `std::str::from_utf8` is an out-of-line call.
#[inline(always)]
#[allow(unsafe_code)]
pub fn utf8(bytes: &[u8]) -> WireResult<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).map_err(|_| WireError::Utf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> WireResult<u64> {
        Cursor::new(bytes).varint()
    }

    #[test]
    fn varints_follow_prost_limits() {
        assert_eq!(varint(&[0x96, 0x01]), Ok(150));
        assert_eq!(varint(&[0x80, 0x80, 0x01]), Ok(1 << 14));
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(varint(&max), Ok(u64::MAX));
        // A tenth byte of 0 is a redundant but valid encoding.
        let padded = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(varint(&padded), Ok(0));
        let overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert_eq!(varint(&overflow), Err(WireError::Varint));
        let eleven = [0x80; 11];
        assert_eq!(varint(&eleven), Err(WireError::Varint));
        assert_eq!(varint(&[0x80]), Err(WireError::Varint));
        assert_eq!(varint(&[]), Err(WireError::Varint));
        for bytes in [
            &max[..],
            &padded,
            &overflow,
            &eleven,
            &[0x80],
            &[0x96, 0x01],
        ] {
            let mut buf = bytes;
            let prost = prost::encoding::decode_varint(&mut buf).map_err(drop);
            assert_eq!(varint(bytes).map_err(drop), prost, "{bytes:02x?}");
        }
        // Every length of encoding, with a byte after it, and redundant (zero-padded) encodings.
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            (1 << 21) - 1,
            1 << 21,
            10_000_000,
            (1 << 28) - 1,
            1 << 28,
            u64::MAX >> 1,
        ];
        for value in values {
            let mut bytes = Vec::new();
            prost::encoding::encode_varint(value, &mut bytes);
            let len = bytes.len();
            bytes.push(0x7F);
            let mut cursor = Cursor::new(&bytes);
            assert_eq!(cursor.varint(), Ok(value));
            assert_eq!(cursor.rest, &[0x7F], "{len}-byte {value}");
        }
        for padded in [&[0x81, 0x80, 0x00][..], &[0xFF, 0x80, 0x80, 0x00]] {
            let mut buf = padded;
            let prost = prost::encoding::decode_varint(&mut buf).map_err(drop);
            assert_eq!(varint(padded).map_err(drop), prost, "{padded:02x?}");
        }
    }

    #[test]
    fn keys_reject_field_zero_wide_keys_and_bad_wire_types() {
        assert_eq!(Cursor::new(&[0x08]).key(), Ok((1, WireType::Varint)));
        assert_eq!(Cursor::new(&[0x82, 0x01]).key(), Ok((16, WireType::Len)));
        assert_eq!(Cursor::new(&[0x00]).key(), Err(WireError::Key));
        assert_eq!(Cursor::new(&[0x0E]).key(), Err(WireError::UnknownWireType));
        assert_eq!(Cursor::new(&[0x0F]).key(), Err(WireError::UnknownWireType));
        let wide = [0x88, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(Cursor::new(&wide).key(), Err(WireError::Key));
    }

    #[test]
    fn lengths_stay_inside_the_message() {
        let mut cursor = Cursor::new(&[0x02, b'a', b'b', 0x05]);
        assert_eq!(cursor.len_delimited(), Ok(&b"ab"[..]));
        assert_eq!(cursor.pos(), 3);
        assert_eq!(cursor.len_delimited(), Err(WireError::Truncated));
        let huge = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(
            Cursor::new(&huge).len_delimited(),
            Err(WireError::Truncated)
        );
        assert_eq!(Cursor::new(&[1, 2, 3]).fixed32(), Err(WireError::Truncated));
        assert_eq!(Cursor::new(&[1, 0, 0, 0]).fixed32(), Ok(1));
    }

    #[test]
    fn groups_close_with_their_own_number_within_the_depth() {
        // Field 5 start group, field 5 end group.
        let mut cursor = Cursor::new(&[0x2B, 0x2C]);
        assert_eq!(cursor.next_field(10), Ok(Some((5, Raw::Group))));
        let mut cursor = Cursor::new(&[0x2B, 0x34]);
        assert_eq!(cursor.next_field(10), Err(WireError::EndGroup));
        let mut cursor = Cursor::new(&[0x2C]);
        assert_eq!(cursor.next_field(10), Err(WireError::EndGroup));
        // Two nested groups need two levels below the field's own.
        let nested = [0x2B, 0x33, 0x34, 0x2C];
        assert_eq!(
            Cursor::new(&nested).next_field(2),
            Ok(Some((5, Raw::Group)))
        );
        assert_eq!(
            Cursor::new(&nested).next_field(1),
            Err(WireError::RecursionLimit)
        );
        assert_eq!(
            Cursor::new(&[0x08, 0x01]).next_field(0),
            Err(WireError::RecursionLimit)
        );
        assert_eq!(enter(0), Err(WireError::RecursionLimit));
    }

    #[test]
    fn utf8_rejects_invalid_strings() {
        assert_eq!(utf8(b"abc"), Ok("abc"));
        assert_eq!(utf8("é".as_bytes()), Ok("é"));
        assert_eq!(utf8(&[0xFF]), Err(WireError::Utf8));
        assert_eq!(zigzag(3), -2);
        assert_eq!(zigzag(4), 2);
    }
}
