//! Tar headers: the GNU headers `pack` writes (long names through a `././@LongLink` member) and
//! the checks readers apply to every header they meet.

use tar::{EntryType, Header};

/// Tar block size.
pub const BLOCK: u64 = 512;
/// The longest name a GNU long-name record or a PAX `path` may give.
pub const MAX_NAME_LEN: u64 = 64 << 10;
/// The largest PAX extended header accepted.
pub const MAX_PAX_LEN: u64 = 1 << 20;

/// Rounds `size` up to whole tar blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// The header blocks of a regular file member: a GNU long-name record first when the name does
/// not fit the 100 bytes of the header.
pub fn file_header(name: &str, size: u64, mode: u32, mtime: u64) -> Vec<u8> {
    member_header(name, size, mode, mtime, EntryType::Regular)
}

fn member_header(name: &str, size: u64, mode: u32, mtime: u64, kind: EntryType) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    if name.len() >= 100 {
        let mut long = Header::new_gnu();
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_mtime(0);
        long.set_size(name.len() as u64 + 1);
        long.set_entry_type(EntryType::GNULongName);
        long.set_cksum();
        out.extend_from_slice(long.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(padded(out.len() as u64) as usize, 0);
    }
    let mut header = Header::new_gnu();
    let short = &name.as_bytes()[..name.len().min(100)];
    header.as_old_mut().name[..short.len()].copy_from_slice(short);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(kind);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out
}

/// The header blocks of a folder member (`name` ends with `/`).
pub fn dir_header(name: &str, mode: u32, mtime: u64) -> Vec<u8> {
    member_header(name, 0, mode, mtime, EntryType::Directory)
}

/// What kind of member a header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link.
    HardLink,
    /// Anything else (device, FIFO, ...): never unpacked.
    Other(u8),
}

/// One parsed 512-byte header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// An all-zero block (the end of the archive).
    Zero,
    /// A GNU long name (`L`) or long link name (`K`) record of this many bytes.
    LongName {
        /// `true` for a link name.
        link: bool,
        /// Bytes of content.
        size: u64,
    },
    /// A PAX extended header (`x`) or global header (`g`) of this many bytes.
    Pax {
        /// `true` for a global header (ignored).
        global: bool,
        /// Bytes of content.
        size: u64,
    },
    /// A member header.
    Member {
        /// The name in the header (before any long-name record applies).
        name: Vec<u8>,
        /// The link target in the header.
        link: Vec<u8>,
        /// Bytes of content.
        size: u64,
        /// Its kind.
        kind: Kind,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime: u64,
    },
}

/// Parses and checks one header block.
pub fn parse_block(bytes: &[u8; 512]) -> Result<Block, String> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(Block::Zero);
    }
    let header = Header::from_byte_slice(bytes);
    let stored = header
        .cksum()
        .map_err(|e| format!("bad header checksum field: {e}"))?;
    let computed: u32 = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if stored != computed {
        return Err(format!(
            "header checksum {stored} does not match the header ({computed})"
        ));
    }
    let size = header
        .entry_size()
        .map_err(|e| format!("bad size field: {e}"))?;
    let entry_type = header.entry_type();
    Ok(match entry_type {
        EntryType::GNULongName | EntryType::GNULongLink => Block::LongName {
            link: entry_type == EntryType::GNULongLink,
            size,
        },
        EntryType::XHeader | EntryType::XGlobalHeader => Block::Pax {
            global: entry_type == EntryType::XGlobalHeader,
            size,
        },
        _ => Block::Member {
            name: header.path_bytes().into_owned(),
            link: header
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
            size,
            kind: match entry_type {
                EntryType::Regular | EntryType::Continuous => Kind::File,
                EntryType::Directory => Kind::Dir,
                EntryType::Symlink => Kind::Symlink,
                EntryType::Link => Kind::HardLink,
                other => Kind::Other(other.as_byte()),
            },
            mode: header.mode().unwrap_or(0o644),
            mtime: header.mtime().unwrap_or(0),
        },
    })
}

/// The `path` and `linkpath` of a PAX extended header.
pub fn pax_paths(bytes: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut path, mut link) = (None, None);
    for ext in tar::PaxExtensions::new(bytes).flatten() {
        match ext.key_bytes() {
            b"path" => path = Some(ext.value_bytes().to_vec()),
            b"linkpath" => link = Some(ext.value_bytes().to_vec()),
            _ => {}
        }
    }
    (path, link)
}

/// Strips the NUL padding of a long-name record.
pub fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}
