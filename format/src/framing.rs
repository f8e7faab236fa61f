//! Constants and chunk-level encoding of the `.wandb` log: the file header, the 32 KiB block
//! structure and the 7-byte chunk header with its CRC-32/IEEE checksum.
//!
//! Everything here is pure computation on bytes; `writer.rs` and `scan.rs` build on it.

/// The 7 bytes every `.wandb` file starts with: ASCII `:W&B`, magic `0xBEE1` little-endian, version 0.
pub const FILE_HEADER: [u8; 7] = [0x3A, 0x57, 0x26, 0x42, 0xE1, 0xBE, 0x00];

/// Length of [`FILE_HEADER`] in bytes.
pub const FILE_HEADER_LEN: u64 = 7;

/// Size of a block; blocks are aligned to absolute file offsets and a chunk never crosses one.
pub const BLOCK_SIZE: u64 = 32_768;

/// Size of a chunk header: checksum (4), payload length (2), chunk type (1).
pub const CHUNK_HEADER_LEN: u64 = 7;

/// The largest payload one chunk can hold (a whole block minus its chunk header).
pub const MAX_CHUNK_PAYLOAD: u64 = BLOCK_SIZE - CHUNK_HEADER_LEN;

/// The role of a chunk within a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChunkType {
    /// A whole record in one chunk.
    Full = 1,
    /// The first chunk of a record that continues in the next block.
    First = 2,
    /// A chunk in the middle of a record.
    Middle = 3,
    /// The last chunk of a record.
    Last = 4,
}

impl ChunkType {
    /// The chunk type for a type byte, or `None` if the byte is not one of 1 to 4.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Full),
            2 => Some(Self::First),
            3 => Some(Self::Middle),
            4 => Some(Self::Last),
            _ => None,
        }
    }

    /// The chunk type's name as W&B's and LevelDB's sources spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::First => "FIRST",
            Self::Middle => "MIDDLE",
            Self::Last => "LAST",
        }
    }
}

/// The checksum stored in a chunk header: plain (unmasked) CRC-32/IEEE of the type byte followed by
/// the payload.
pub fn chunk_checksum(chunk_type: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[chunk_type]);
    hasher.update(payload);
    hasher.finalize()
}

/// Bytes left in the block that contains absolute file offset `offset`.
pub(crate) fn block_remaining(offset: u64) -> u64 {
    BLOCK_SIZE - offset % BLOCK_SIZE
}

/// Encodes a chunk header for `payload` of type `chunk_type` into `out`.
pub(crate) fn encode_chunk_header(chunk_type: ChunkType, payload: &[u8], out: &mut [u8; 7]) {
    let checksum = chunk_checksum(chunk_type as u8, payload);
    // The caller guarantees the payload fits a block, so the length fits a u16.
    let length = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out[..4].copy_from_slice(&checksum.to_le_bytes());
    out[4..6].copy_from_slice(&length.to_le_bytes());
    out[6] = chunk_type as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_plain_crc32_ieee_over_type_and_payload() {
        // The CRC-32/IEEE check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(b"hello");
        assert_eq!(chunk_checksum(1, b"hello"), crc32fast::hash(&bytes));
    }

    #[test]
    fn chunk_types_round_trip_through_bytes() {
        for byte in 0..=255u8 {
            match ChunkType::from_byte(byte) {
                Some(ty) => assert_eq!(ty as u8, byte),
                None => assert!(byte == 0 || byte > 4),
            }
        }
    }
}
