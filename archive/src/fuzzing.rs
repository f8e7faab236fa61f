//! Fuzz target bodies (feature `fuzzing`): the seek-table, frame-header, tar-header and index
//! readers must never panic and never allocate more than their input justifies.

use std::io::Write as _;

use crate::index::Index;
use crate::read::Archive;
use crate::seekable;
use crate::tarfmt;

/// Feeds `data` to every reader of archive metadata.
pub fn archive_meta(data: &[u8]) {
    let len = data.len() as u64;
    if let Some(footer) = data.get(data.len().saturating_sub(seekable::FOOTER_LEN)..)
        && let Ok(table_len) = seekable::seek_table_len(footer, len)
        && let Some(table) = data.get(data.len() - usize::try_from(table_len).unwrap_or(0)..)
    {
        let _ = seekable::parse_seek_table(table, len);
    }
    let _ = seekable::parse_seek_table(data, len);
    let _ = seekable::parse_frame_header(data);
    if let Some(block) = data.get(..3).and_then(|b| <[u8; 3]>::try_from(b).ok()) {
        let _ = seekable::parse_block_header(block);
    }
    if let Some(block) = data.get(..512).and_then(|b| <&[u8; 512]>::try_from(b).ok()) {
        let _ = tarfmt::parse_block(block);
    }
    let _ = tarfmt::pax_paths(data);
    let _ = Index::parse(data, len.saturating_mul(4));
}

/// Opens `data` as an archive (through an unnamed temporary file), lists it and verifies every
/// member: whatever the bytes, no panic, and memory bounded by one frame.
pub fn archive_read(data: &[u8]) {
    let Ok(mut file) = tempfile::tempfile() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let Ok(archive) = Archive::from_file(file, std::path::Path::new("fuzz.tar.zst")) else {
        return;
    };
    for member in archive.members().iter().take(256) {
        let _ = archive.verify_member(member);
        let _ = crate::index::check_name(&member.name);
        let _ = crate::unpack::link_stays_inside(&member.name, &member.link);
    }
    let _ = archive.damage();
}
