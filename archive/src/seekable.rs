//! The zstd seekable format: independent frames followed by a seek table in a skippable frame
//! (zstd's `contrib/seekable_format`), and the frame-header parsing that lets a reader find
//! frames when the seek table is lost.
//!
//! Seek table layout, all integers little-endian:
//!
//! | field | bytes |
//! |---|---|
//! | skippable frame magic `0x184D2A5E` | 4 |
//! | frame size (bytes after this field) | 4 |
//! | per frame: compressed size, decompressed size, checksum | 12 each |
//! | number of frames | 4 |
//! | descriptor (bit 7: checksums present) | 1 |
//! | seekable magic `0x8F92EAB1` | 4 |
//!
//! The checksum is the low 32 bits of the XXH64 of the frame's decompressed bytes, which is the
//! same value zstd stores as a frame's content checksum.

use crate::error::{Error, Result};

/// Magic number of a zstd frame.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Magic number of the skippable frame holding the seek table.
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic number ending the seek table.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Bytes of the seek table footer (frame count, descriptor, magic).
pub const FOOTER_LEN: usize = 9;
/// Bytes of one seek table entry with a checksum.
pub const ENTRY_LEN: usize = 12;
/// The largest decompressed frame a reader accepts (our writer makes frames of at most
/// [`crate::pack::FRAME_MAX`]); a frame claiming more is refused, not allocated.
pub const MAX_FRAME_CONTENT: u64 = 64 << 20;
/// The largest window a frame may declare (`2^27`, 128 MiB); zstd refuses larger ones for us.
pub const WINDOW_LOG_MAX: u32 = 27;
/// The most frames a seek table may list (each costs a few bytes of memory).
pub const MAX_FRAMES: u64 = 1 << 26;

/// One frame of the archive: where it is in the file and in the decompressed tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame in the archive file.
    pub c_offset: u64,
    /// Compressed length of the frame.
    pub c_len: u64,
    /// Offset of the frame's first byte in the decompressed tar stream.
    pub d_offset: u64,
    /// Decompressed length of the frame.
    pub d_len: u64,
    /// Low 32 bits of the XXH64 of the decompressed bytes, when known.
    pub checksum: Option<u32>,
}

/// Serializes a seek table for `frames` (a skippable frame, to append after the last frame).
pub fn write_seek_table(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + frames.len() * ENTRY_LEN + FOOTER_LEN);
    let body = frames.len() * ENTRY_LEN + FOOTER_LEN;
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&u32_of(body as u64).to_le_bytes());
    for frame in frames {
        out.extend_from_slice(&u32_of(frame.c_len).to_le_bytes());
        out.extend_from_slice(&u32_of(frame.d_len).to_le_bytes());
        out.extend_from_slice(&frame.checksum.unwrap_or(0).to_le_bytes());
    }
    out.extend_from_slice(&u32_of(frames.len() as u64).to_le_bytes());
    out.push(0x80);
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    out
}

fn u32_of(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

/// How long the seek table is, read from the footer (the last [`FOOTER_LEN`] bytes of the file):
/// the number of bytes from the skippable frame's magic to the end of the file.
///
/// `footer` must be exactly the last 9 bytes; `file_len` is the archive's length.
pub fn seek_table_len(footer: &[u8], file_len: u64) -> Result<u64> {
    let bad = |reason: String| Error::SeekTable {
        offset: file_len.saturating_sub(FOOTER_LEN as u64),
        reason,
    };
    if footer.len() != FOOTER_LEN {
        return Err(bad(format!("the file is only {file_len} bytes long")));
    }
    let magic = le32(footer, 5).unwrap_or(0);
    if magic != SEEKABLE_MAGIC {
        return Err(bad(format!(
            "no seek table at the end (found {magic:#010x} where the seekable magic {SEEKABLE_MAGIC:#010x} ends the file)"
        )));
    }
    let descriptor = footer[4];
    if descriptor & 0x7c != 0 {
        return Err(bad(format!(
            "seek table descriptor {descriptor:#04x} has reserved bits set"
        )));
    }
    let entry = if descriptor & 0x80 != 0 { 12 } else { 8 };
    let n_frames = u64::from(le32(footer, 0).unwrap_or(0));
    if n_frames > MAX_FRAMES {
        return Err(bad(format!(
            "seek table claims {n_frames} frames, more than the {MAX_FRAMES} accepted"
        )));
    }
    let total = 8 + n_frames * entry + FOOTER_LEN as u64;
    if total > file_len {
        return Err(bad(format!(
            "seek table claims {n_frames} frames ({total} bytes), more than the file's {file_len} bytes"
        )));
    }
    Ok(total)
}

/// Parses a whole seek table (`table`: from the skippable frame's magic to the end of the file,
/// which is `file_len` long) into frames, checking it against the file: the frames must exactly
/// fill the file up to the table, and no frame may claim more than [`MAX_FRAME_CONTENT`].
pub fn parse_seek_table(table: &[u8], file_len: u64) -> Result<Vec<Frame>> {
    let table_offset = file_len.saturating_sub(table.len() as u64);
    let bad = |offset: u64, reason: String| Error::SeekTable { offset, reason };
    if table.len() < 8 + FOOTER_LEN {
        return Err(bad(table_offset, "seek table too short".into()));
    }
    let magic = le32(table, 0).unwrap_or(0);
    if magic != SKIPPABLE_MAGIC {
        return Err(bad(
            table_offset,
            format!("seek table does not start with the skippable magic (found {magic:#010x})"),
        ));
    }
    let body = u64::from(le32(table, 4).unwrap_or(0));
    if body != table.len() as u64 - 8 {
        return Err(bad(
            table_offset + 4,
            format!(
                "skippable frame size {body} does not match the seek table's {} bytes",
                table.len() - 8
            ),
        ));
    }
    let footer = &table[table.len() - FOOTER_LEN..];
    let n_frames = le32(footer, 0).unwrap_or(0) as usize;
    let entry = if footer[4] & 0x80 != 0 { 12 } else { 8 };
    if n_frames.checked_mul(entry).map(|n| n + 8 + FOOTER_LEN) != Some(table.len()) {
        return Err(bad(
            table_offset,
            "seek table entry count does not match its size".into(),
        ));
    }
    let mut frames = Vec::with_capacity(n_frames);
    let (mut c_offset, mut d_offset) = (0u64, 0u64);
    for i in 0..n_frames {
        let at = 8 + i * entry;
        let c_len = u64::from(le32(table, at).unwrap_or(0));
        let d_len = u64::from(le32(table, at + 4).unwrap_or(0));
        let checksum = (entry == 12).then(|| le32(table, at + 8).unwrap_or(0));
        let entry_offset = table_offset + at as u64;
        if d_len > MAX_FRAME_CONTENT {
            return Err(bad(
                entry_offset,
                format!(
                    "frame {i} claims {d_len} decompressed bytes, more than the {MAX_FRAME_CONTENT} accepted"
                ),
            ));
        }
        if c_offset + c_len > table_offset {
            return Err(bad(
                entry_offset,
                format!(
                    "frame {i} at {c_offset} of {c_len} bytes would end past the seek table at {table_offset}"
                ),
            ));
        }
        frames.push(Frame {
            c_offset,
            c_len,
            d_offset,
            d_len,
            checksum,
        });
        c_offset += c_len;
        d_offset += d_len;
    }
    if c_offset != table_offset {
        return Err(bad(
            table_offset,
            format!(
                "the frames listed end at {c_offset}, but the seek table starts at {table_offset}"
            ),
        ));
    }
    Ok(frames)
}

/// What a zstd frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of the header, magic included.
    pub header_len: usize,
    /// Decompressed size, when the header gives it.
    pub content_size: Option<u64>,
    /// Whether a 4-byte content checksum follows the last block.
    pub has_checksum: bool,
    /// Whether the frame is a skippable frame (then `content_size` is its payload length).
    pub skippable: bool,
}

/// Parses the frame header at the start of `bytes` (at least 18 bytes are needed for the
/// longest header; fewer give an error when they do not hold the whole header).
pub fn parse_frame_header(bytes: &[u8]) -> std::result::Result<FrameHeader, String> {
    let magic = le32(bytes, 0).ok_or("truncated frame header")?;
    if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
        let len = le32(bytes, 4).ok_or("truncated skippable frame header")?;
        return Ok(FrameHeader {
            header_len: 8,
            content_size: Some(u64::from(len)),
            has_checksum: false,
            skippable: true,
        });
    }
    if magic != ZSTD_MAGIC {
        return Err(format!("not a zstd frame (magic {magic:#010x})"));
    }
    let descriptor = *bytes.get(4).ok_or("truncated frame header")?;
    let fcs_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 {
        return Err("reserved bit set in the frame header".into());
    }
    let has_checksum = descriptor & 0x04 != 0;
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 0x03)];
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let window_len = usize::from(!single_segment);
    let header_len = 5 + window_len + dict_len + fcs_len;
    let header = bytes.get(..header_len).ok_or("truncated frame header")?;
    if !single_segment {
        let window = header[5];
        let log = 10 + u32::from(window >> 3);
        if log > WINDOW_LOG_MAX + 4 {
            return Err(format!("frame declares a window of 2^{log} bytes"));
        }
    }
    let fcs = &header[header_len - fcs_len..];
    let content_size = match fcs_len {
        0 => None,
        1 => Some(u64::from(fcs[0])),
        2 => Some(u64::from(u16::from_le_bytes([fcs[0], fcs[1]])) + 256),
        4 => Some(u64::from(u32::from_le_bytes([
            fcs[0], fcs[1], fcs[2], fcs[3],
        ]))),
        _ => Some(u64::from_le_bytes(fcs.try_into().map_err(|_| "bad size")?)),
    };
    Ok(FrameHeader {
        header_len,
        content_size,
        has_checksum,
        skippable: false,
    })
}

/// Parses a 3-byte block header: (is last block, bytes the block occupies after its header).
pub fn parse_block_header(bytes: [u8; 3]) -> std::result::Result<(bool, u64), String> {
    let raw = u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16;
    let last = raw & 1 != 0;
    let block_type = (raw >> 1) & 3;
    let size = u64::from(raw >> 3);
    if size > 128 << 10 {
        return Err(format!("block of {size} bytes, more than zstd's 128 KiB"));
    }
    match block_type {
        0 | 2 => Ok((last, size)),
        1 => Ok((last, 1)),
        _ => Err("reserved block type".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seek_table_round_trips() {
        let frames = vec![
            Frame {
                c_offset: 0,
                c_len: 10,
                d_offset: 0,
                d_len: 100,
                checksum: Some(7),
            },
            Frame {
                c_offset: 10,
                c_len: 20,
                d_offset: 100,
                d_len: 5,
                checksum: Some(9),
            },
        ];
        let table = write_seek_table(&frames);
        let file_len = 30 + table.len() as u64;
        let footer = &table[table.len() - FOOTER_LEN..];
        assert_eq!(
            seek_table_len(footer, file_len).unwrap(),
            table.len() as u64
        );
        assert_eq!(parse_seek_table(&table, file_len).unwrap(), frames);
        // A table whose frames do not fill the file is refused.
        assert!(parse_seek_table(&table, file_len + 1).is_err());
    }

    #[test]
    fn frame_claiming_too_much_is_refused() {
        let frames = vec![Frame {
            c_offset: 0,
            c_len: 10,
            d_offset: 0,
            d_len: u64::from(u32::MAX),
            checksum: None,
        }];
        let table = write_seek_table(&frames);
        let err = parse_seek_table(&table, 10 + table.len() as u64).unwrap_err();
        assert!(err.to_string().contains("more than the"), "{err}");
    }
}
