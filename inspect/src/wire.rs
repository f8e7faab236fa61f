//! Validation of a record against the schema, on top of format's wire cursor.
//!
//! This is the cheap path that `verify`, `dump --json`, `summary` and `history` use instead of
//! decoding into prost structs: it allocates nothing and borrows every string from the record.
//! The bytes are read with [`wandb_format::wire::Cursor`], which has prost's wire-level limits
//! (varints, keys, lengths, groups, nesting); this module adds what needs the schema table
//! (`schema_gen.rs`).
//!
//! Invariant: it accepts exactly the bytes that prost (and so `wandb_format::decode`) accepts as a
//! `Record`, so that `verify` and the other commands agree with the format crate about which
//! records are damaged. Beyond the cursor's rules that means prost's schema-level rules and quirks:
//! wire types checked for known fields, packed and unpacked forms both accepted for repeated
//! numeric fields, strings checked for UTF-8, unknown fields (groups included) skipped, and map
//! fields read as length-delimited whatever their wire type says. When this reader rejects a
//! record, callers ask `wandb_format::decode` for the error message, so prost stays the authority
//! on wording; `wire_tests.rs` checks the agreement on mutated records.

pub(crate) use wandb_format::wire::{Cursor, RECURSION_LIMIT, Raw, WireType, utf8};

use crate::schema::{Field, Message, Type};

/// The bytes are not a valid message (details come from prost, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireError;

impl From<wandb_format::wire::WireError> for WireError {
    #[inline(always)]
    fn from(_: wandb_format::wire::WireError) -> Self {
        WireError
    }
}

/// A result of this module.
pub(crate) type WireResult<T> = Result<T, WireError>;

/// Reading known fields by their schema entry, on top of the cursor's schema-less reads.
pub(crate) trait FieldRead<'a> {
    /// Reads one occurrence of a known field, checking its wire type as prost does, and returns
    /// its value. Strings are checked for UTF-8 here; nested messages are *not* validated (callers
    /// walk into them with `depth - 1`). `depth` must be non-zero for message and map fields, as
    /// in prost.
    fn field(&mut self, field: &Field, wire_type: WireType, depth: u32) -> WireResult<Value<'a>>;

    /// Reads one scalar of wire type `wire_type` (varint, fixed32 or fixed64).
    fn scalar(&mut self, wire_type: WireType) -> WireResult<Value<'a>>;

    /// Skips one occurrence of a field: a known field is read the way prost reads it (which
    /// matters for map fields), an unknown one is skipped by its wire type.
    fn skip_known(
        &mut self,
        field: Option<&Field>,
        number: u32,
        wire_type: WireType,
        depth: u32,
    ) -> WireResult<()>;
}

impl<'a> FieldRead<'a> for Cursor<'a> {
    #[inline]
    fn field(&mut self, field: &Field, wire_type: WireType, depth: u32) -> WireResult<Value<'a>> {
        match field.ty {
            Type::Map(_) => {
                // prost's map merge reads a length prefix without looking at the wire type.
                if depth == 0 {
                    return Err(WireError);
                }
                Ok(Value::Message(self.len_delimited()?))
            }
            Type::Message(_) => {
                expect(wire_type, WireType::Len)?;
                if depth == 0 {
                    return Err(WireError);
                }
                Ok(Value::Message(self.len_delimited()?))
            }
            Type::String => {
                expect(wire_type, WireType::Len)?;
                let bytes = self.len_delimited()?;
                Ok(Value::Str(utf8(bytes)?))
            }
            Type::Bytes => {
                expect(wire_type, WireType::Len)?;
                Ok(Value::Bytes(self.len_delimited()?))
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

    #[inline]
    fn scalar(&mut self, wire_type: WireType) -> WireResult<Value<'a>> {
        Ok(match wire_type {
            WireType::Fixed64 => Value::Fixed64(self.fixed64()?),
            WireType::Fixed32 => Value::Fixed32(self.fixed32()?),
            _ => Value::Varint(self.varint()?),
        })
    }

    #[inline]
    fn skip_known(
        &mut self,
        field: Option<&Field>,
        number: u32,
        wire_type: WireType,
        depth: u32,
    ) -> WireResult<()> {
        match field {
            Some(field) => self.field(field, wire_type, depth).map(drop),
            None => Ok(self.skip(wire_type, number, depth)?),
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
            let mut reader = Cursor::new(packed);
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
    let mut reader = Cursor::new(packed);
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
    let mut reader = Cursor::new(bytes);
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
        // The common cases first, without going through `FieldRead::field`.
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
    let mut reader = Cursor::new(payload);
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
            _ => reader.skip_known(field, number, wire_type, RECURSION_LIMIT)?,
        }
    }
    Ok(head)
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
