//! A zero-copy reader of the protobuf wire format, and validation of a record against the schema.
//!
//! This is the cheap path that `verify`, `dump --json`, `summary` and `history` use instead of
//! decoding into prost structs: it allocates nothing and borrows every string from the record.
//!
//! Invariant: it accepts exactly the bytes that prost (and so `wandb_format::decode`) accepts as a
//! `Record`, so that `verify` and the other commands agree with the format crate about which
//! records are damaged. That includes prost's rules and quirks: varints of at most 10 bytes, keys
//! that fit `u32`, field number 0 rejected, wire types 6 and 7 rejected, wire types checked for
//! known fields, packed and unpacked forms both accepted for repeated numeric fields, strings
//! checked for UTF-8, unknown fields (groups included) skipped, a nesting limit of 100, and map
//! fields read as length-delimited whatever their wire type says. When this reader rejects a
//! record, callers ask `wandb_format::decode` for the error message, so prost stays the authority
//! on wording; `tests/it/wire.rs` checks the agreement on mutated records.

use crate::schema::{Field, Message, Type};

/// prost's nesting limit (`prost::RECURSION_LIMIT`).
pub(crate) const RECURSION_LIMIT: u32 = 100;

/// The bytes are not a valid message (details come from prost, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireError;

/// A result of this module.
pub(crate) type WireResult<T> = Result<T, WireError>;

/// The six wire types protobuf defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// One field value as it appears on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
    /// A group (only skipped; proto3 schemas have none).
    Group,
}

/// A cursor over the bytes of one message.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether all bytes have been read.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The current position.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to position `pos` (clamped to the end), which must be where a field starts.
    #[inline]
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// The bytes from `from` on.
    #[inline]
    pub(crate) fn rest_from(&self, from: usize) -> &'a [u8] {
        self.buf.get(from..).unwrap_or_default()
    }

    /// Reads a varint: at most 10 bytes, the tenth below 2 (as prost and protobuf-go require).
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> WireResult<u64> {
        match self.buf.get(self.pos..self.pos + 2) {
            Some(&[low, _]) if low < 0x80 => {
                self.pos += 1;
                Ok(u64::from(low))
            }
            // Two-byte varints are common too: keys of fields 16 and up, lengths of 128 and up.
            Some(&[low, high]) if high < 0x80 => {
                self.pos += 2;
                Ok(u64::from(low & 0x7F) | u64::from(high) << 7)
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> WireResult<u64> {
        let mut value = 0u64;
        for count in 0..10 {
            let Some(&byte) = self.buf.get(self.pos + count) else {
                return Err(WireError);
            };
            value |= u64::from(byte & 0x7F) << (7 * count);
            if byte < 0x80 {
                if count == 9 && byte >= 0x02 {
                    return Err(WireError);
                }
                self.pos += count + 1;
                return Ok(value);
            }
        }
        Err(WireError)
    }

    /// Reads a field key: a varint that fits `u32`, a known wire type and a non-zero field number.
    #[inline(always)]
    pub(crate) fn key(&mut self) -> WireResult<(u32, WireType)> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireError)?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(WireError),
        };
        let number = key >> 3;
        if number == 0 {
            return Err(WireError);
        }
        Ok((number, wire_type))
    }

    /// Reads a length prefix and that many bytes.
    #[inline(always)]
    pub(crate) fn len_delimited(&mut self) -> WireResult<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError)?;
        let end = self.pos.checked_add(len).ok_or(WireError)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> WireResult<[u8; N]> {
        let bytes = self.buf.get(self.pos..self.pos + N).ok_or(WireError)?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads the value of a field of wire type `wire_type` without interpreting it (prost's
    /// `skip_field`, including its nesting limit for groups). `depth` is what is left of the limit.
    pub(crate) fn raw(
        &mut self,
        wire_type: WireType,
        number: u32,
        depth: u32,
    ) -> WireResult<Raw<'a>> {
        if depth == 0 {
            return Err(WireError);
        }
        match wire_type {
            WireType::Varint => self.varint().map(Raw::Varint),
            WireType::Fixed64 => self
                .fixed::<8>()
                .map(|b| Raw::Fixed64(u64::from_le_bytes(b))),
            WireType::Fixed32 => self
                .fixed::<4>()
                .map(|b| Raw::Fixed32(u32::from_le_bytes(b))),
            WireType::Len => self.len_delimited().map(Raw::Len),
            WireType::StartGroup => loop {
                let (inner, inner_type) = self.key()?;
                if inner_type == WireType::EndGroup {
                    if inner != number {
                        return Err(WireError);
                    }
                    return Ok(Raw::Group);
                }
                self.raw(inner_type, inner, depth - 1)?;
            },
            WireType::EndGroup => Err(WireError),
        }
    }

    /// Reads one occurrence of a known field, checking its wire type as prost does, and returns its
    /// value. Strings are checked for UTF-8 here; nested messages are *not* validated (callers walk
    /// into them with `depth - 1`). `depth` must be non-zero for message and map fields, as in
    /// prost.
    #[inline]
    pub(crate) fn field(
        &mut self,
        field: &Field,
        wire_type: WireType,
        depth: u32,
    ) -> WireResult<Value<'a>> {
        match field.ty {
            Type::Map(_) => {
                // prost's map merge reads a length prefix without looking at the wire type.
                if depth == 0 {
                    return Err(WireError);
                }
                self.len_delimited().map(Value::Message)
            }
            Type::Message(_) => {
                expect(wire_type, WireType::Len)?;
                if depth == 0 {
                    return Err(WireError);
                }
                self.len_delimited().map(Value::Message)
            }
            Type::String => {
                expect(wire_type, WireType::Len)?;
                let bytes = self.len_delimited()?;
                utf8(bytes).map(Value::Str)
            }
            Type::Bytes => {
                expect(wire_type, WireType::Len)?;
                self.len_delimited().map(Value::Bytes)
            }
            _ => {
                let scalar_type = scalar_wire_type(&field.ty);
                if field.repeated && wire_type == WireType::Len {
                    let packed = self.len_delimited()?;
                    check_packed(packed, scalar_type)?;
                    return Ok(Value::Packed(packed));
                }
                expect(wire_type, scalar_type)?;
                self.scalar(scalar_type)
            }
        }
    }

    /// Reads one scalar of wire type `wire_type` (varint, fixed32 or fixed64).
    #[inline]
    pub(crate) fn scalar(&mut self, wire_type: WireType) -> WireResult<Value<'a>> {
        match wire_type {
            WireType::Fixed64 => self
                .fixed::<8>()
                .map(|b| Value::Fixed64(u64::from_le_bytes(b))),
            WireType::Fixed32 => self
                .fixed::<4>()
                .map(|b| Value::Fixed32(u32::from_le_bytes(b))),
            _ => self.varint().map(Value::Varint),
        }
    }

    /// Skips one occurrence of a field: a known field is read the way prost reads it (which
    /// matters for map fields), an unknown one is skipped by its wire type.
    #[inline]
    pub(crate) fn skip(
        &mut self,
        field: Option<&Field>,
        number: u32,
        wire_type: WireType,
        depth: u32,
    ) -> WireResult<()> {
        match field {
            Some(field) => self.field(field, wire_type, depth).map(drop),
            None => self.raw(wire_type, number, depth).map(drop),
        }
    }
}

/// The value of one occurrence of a known field.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// The bytes of a nested message (or map entry), not yet validated.
    Message(&'a [u8]),
    /// The bytes of a packed run of scalars, already validated.
    Packed(&'a [u8]),
}

fn expect(actual: WireType, expected: WireType) -> WireResult<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(WireError)
    }
}

/// The wire type of a scalar (non-string, non-message) type.
pub(crate) fn scalar_wire_type(ty: &Type) -> WireType {
    match ty {
        Type::Double | Type::Fixed64 | Type::SFixed64 => WireType::Fixed64,
        Type::Float | Type::Fixed32 | Type::SFixed32 => WireType::Fixed32,
        _ => WireType::Varint,
    }
}

/// Checks that `packed` is a whole number of scalars of wire type `wire_type`.
fn check_packed(packed: &[u8], wire_type: WireType) -> WireResult<()> {
    match wire_type {
        WireType::Fixed64 if packed.len().is_multiple_of(8) => Ok(()),
        WireType::Fixed32 if packed.len().is_multiple_of(4) => Ok(()),
        WireType::Varint => {
            let mut reader = Reader::new(packed);
            while !reader.is_empty() {
                reader.varint()?;
            }
            Ok(())
        }
        _ => Err(WireError),
    }
}

/// Iterates the scalars of a validated packed run.
pub(crate) fn packed_values(
    packed: &[u8],
    wire_type: WireType,
) -> impl Iterator<Item = Value<'_>> + '_ {
    let mut reader = Reader::new(packed);
    std::iter::from_fn(move || {
        if reader.is_empty() {
            return None;
        }
        reader.scalar(wire_type).ok()
    })
}

/// Validates `bytes` as a message of type `message`, `depth` levels below the nesting limit.
pub(crate) fn validate(message: &Message, bytes: &[u8], depth: u32) -> WireResult<()> {
    validate_except(message, bytes, depth, 0)
}

/// Like [`validate`], but occurrences of field `except` are only read, not validated inside (the
/// caller validates them another way).
pub(crate) fn validate_except(
    message: &Message,
    bytes: &[u8],
    depth: u32,
    except: u32,
) -> WireResult<()> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        let Some(field) = message.field(number) else {
            reader.raw(wire_type, number, depth)?;
            continue;
        };
        if number == except {
            reader.field(field, wire_type, depth)?;
            continue;
        }
        // The common cases first, without going through `Reader::field`.
        match (&field.ty, wire_type) {
            (Type::Message(inner), WireType::Len) => {
                if depth == 0 {
                    return Err(WireError);
                }
                let sub = reader.len_delimited()?;
                validate(inner, sub, depth - 1)?;
            }
            (Type::String, WireType::Len) => {
                let text = reader.len_delimited()?;
                if !text.is_ascii() && std::str::from_utf8(text).is_err() {
                    return Err(WireError);
                }
            }
            _ => {
                if let (Type::Message(inner) | Type::Map(inner), Value::Message(sub)) =
                    (&field.ty, reader.field(field, wire_type, depth)?)
                {
                    validate(inner, sub, depth - 1)?;
                }
            }
        }
    }
    Ok(())
}

/// Validates the payload of a record: whether prost would decode it as a `Record`.
pub(crate) fn validate_record(payload: &[u8]) -> WireResult<()> {
    validate(crate::schema::RECORD, payload, RECURSION_LIMIT)
}

/// The facts about a record that every command needs first: its `num` and its record-type field.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Head<'a> {
    /// `Record.num` (0 when absent).
    pub(crate) num: i64,
    /// The record-type field, if any (the last one wins, as in prost).
    pub(crate) record_type: Option<&'static Field>,
    /// The bytes of the record-type message.
    pub(crate) body: &'a [u8],
}

impl Head<'_> {
    /// The record type's proto field name, or `unknown`.
    pub(crate) fn type_name(&self) -> &'static str {
        self.record_type.map_or("unknown", |field| field.name)
    }
}

/// Reads the top level of a record payload (without validating nested messages).
pub(crate) fn head(payload: &[u8]) -> WireResult<Head<'_>> {
    let record = crate::schema::RECORD;
    let mut head = Head::default();
    let mut reader = Reader::new(payload);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        let field = record.field(number);
        match field {
            Some(field) if number == 1 => {
                if let Value::Varint(num) = reader.field(field, wire_type, RECURSION_LIMIT)? {
                    head.num = num as i64;
                }
            }
            Some(field) if crate::schema::record_type_field(number).is_some() => {
                if let Value::Message(body) = reader.field(field, wire_type, RECURSION_LIMIT)? {
                    head.record_type = Some(field);
                    head.body = body;
                }
            }
            _ => reader.skip(field, number, wire_type, RECURSION_LIMIT)?,
        }
    }
    Ok(head)
}

/// `bytes` as text, if they are valid UTF-8 (as protobuf requires of a `string` field).
///
/// Nearly every string in a record file is ASCII: the fast path checks that with a loop the
/// compiler vectorizes and inlines, where `std::str::from_utf8` is an out-of-line call.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn utf8(bytes: &[u8]) -> WireResult<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).map_err(|_| WireError)
    }
}

/// Whether two short byte strings (encoded keys) are equal, compared inline: `==` on slices calls
/// `memcmp`, whose call costs more than comparing a dozen bytes.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        if x.iter().zip(y).fold(0, |diff, (p, q)| diff | (p ^ q)) != 0 {
            return false;
        }
    }
    a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .all(|(p, q)| p == q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_prost_limits() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert_eq!(Reader::new(&overflow).varint(), Err(WireError));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError));
        assert_eq!(Reader::new(&[]).varint(), Err(WireError));
    }

    #[test]
    fn keys_reject_field_zero_and_bad_wire_types() {
        assert_eq!(Reader::new(&[0x08]).key(), Ok((1, WireType::Varint)));
        assert_eq!(Reader::new(&[0x00]).key(), Err(WireError));
        assert_eq!(Reader::new(&[0x0E]).key(), Err(WireError));
        assert_eq!(Reader::new(&[0x0F]).key(), Err(WireError));
    }

    #[test]
    fn groups_must_close_with_their_own_number() {
        // Field 5 start group, field 5 end group.
        let mut reader = Reader::new(&[0x2B, 0x2C]);
        let (number, wire_type) = reader.key().unwrap();
        assert!(reader.raw(wire_type, number, 10).is_ok());
        let mut reader = Reader::new(&[0x2B, 0x34]);
        let (number, wire_type) = reader.key().unwrap();
        assert_eq!(reader.raw(wire_type, number, 10).map(drop), Err(WireError));
    }
}
