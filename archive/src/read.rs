//! Reading an archive: its frames (from the seek table, or found one by one when the table is
//! lost), its index, its members, and the content of one member, decompressing only the frames
//! that hold it.
//!
//! Damage is data: a frame that does not decompress (or whose checksum fails) is reported as a
//! [`Damage`] with its archive offset, and only the members it holds are lost. Memory is bounded
//! by one frame ([`crate::seekable::MAX_FRAME_CONTENT`] at most) plus the index.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::index::{FileEntry, INDEX_NAME, Index, MAX_INDEX_LEN};
use crate::seekable::{self, FOOTER_LEN, Frame, MAX_FRAME_CONTENT, WINDOW_LOG_MAX};
use crate::tarfmt::{self, BLOCK, Block, Kind, MAX_NAME_LEN, MAX_PAX_LEN};

/// A damaged part of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Archive (compressed) offset where the damage is.
    pub offset: u64,
    /// The frame, when the damage is in one.
    pub frame: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// One member of the tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// The link target (links only).
    pub link: String,
    /// Bytes of content.
    pub size: u64,
    /// Offset of its first header block in the tar stream.
    pub header_offset: u64,
    /// Offset of its content in the tar stream.
    pub data_offset: u64,
    /// SHA-256 of its content, from the index.
    pub sha256: Option<String>,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: u64,
}

impl Member {
    /// The run folder this member belongs to (its first path component).
    pub fn run(&self) -> &str {
        self.name.split('/').next().unwrap_or("")
    }
}

/// An open archive.
///
/// What was learnt when it was opened (frames, index, members) is shared by every
/// [`Archive::handle`] of it; each handle has its own cache of one decompressed frame, so threads
/// reading different members each hold their own handle.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    frames: Arc<Vec<Frame>>,
    /// Whether frame `i`'s `d_offset` is trustworthy (false after a resynchronisation).
    known: Arc<Vec<bool>>,
    damage: RefCell<Vec<Damage>>,
    lost: RefCell<Vec<bool>>,
    index: Option<Arc<Index>>,
    index_problem: Option<String>,
    members: Arc<Vec<Member>>,
    cache: RefCell<Option<(usize, Vec<u8>)>>,
    /// Buffers and decompression context kept from frame to frame (no allocation per frame).
    scratch: RefCell<Scratch>,
    n_decompressed: Cell<u64>,
}

impl Archive {
    /// Opens an archive and reads its seek table (or finds its frames) and its index (or lists
    /// its members from the tar headers of the intact frames).
    pub fn open(path: &Path) -> Result<Archive> {
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        Archive::from_file(file, path)
    }

    /// [`Archive::open`] on a file already open; `path` names it in messages.
    pub fn from_file(file: File, path: &Path) -> Result<Archive> {
        let meta = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
        if !meta.is_file() {
            return Err(Error::Input {
                path: path.into(),
                reason: "not a regular file".into(),
            });
        }
        let len = meta.len();
        let mut archive = Archive {
            path: path.into(),
            file: Arc::new(file),
            len,
            frames: Arc::new(Vec::new()),
            known: Arc::new(Vec::new()),
            damage: RefCell::new(Vec::new()),
            lost: RefCell::new(Vec::new()),
            index: None,
            index_problem: None,
            members: Arc::new(Vec::new()),
            cache: RefCell::new(None),
            scratch: RefCell::new(Scratch::take()),
            n_decompressed: Cell::new(0),
        };
        let mut head = [0u8; 4];
        if len < 4 || archive.read_at(&mut head, 0).is_err() {
            return Err(Error::Input {
                path: path.into(),
                reason: format!("not a zstd archive: only {len} bytes"),
            });
        }
        let magic = u32::from_le_bytes(head);
        if magic != seekable::ZSTD_MAGIC && magic & 0xFFFF_FFF0 != 0x184D_2A50 {
            return Err(Error::Input {
                path: path.into(),
                reason: format!("not a zstd archive: it starts with {magic:#010x}"),
            });
        }
        match archive.read_seek_table() {
            Ok(frames) => {
                archive.known = Arc::new(vec![true; frames.len()]);
                archive.frames = Arc::new(frames);
            }
            Err(error) => {
                archive.note(Damage {
                    offset: len.saturating_sub(FOOTER_LEN as u64),
                    frame: None,
                    reason: format!("{error}; frames found one by one"),
                });
                archive.walk_frames();
            }
        }
        *archive.lost.borrow_mut() = vec![false; archive.frames.len()];
        match archive.find_index() {
            Ok(index) => {
                archive.members = Arc::new(members_of(&index));
                archive.index = Some(Arc::new(index));
            }
            Err(reason) => {
                archive.index_problem = Some(reason);
                archive.members = Arc::new(archive.scan_members());
            }
        }
        Ok(archive)
    }

    /// Another handle on the same open archive: it shares the frames, index and members learnt
    /// when the archive was opened (and the open file), has an empty frame cache of its own, and
    /// starts with the damage found so far.
    pub fn handle(&self) -> Archive {
        Archive {
            path: self.path.clone(),
            file: Arc::clone(&self.file),
            len: self.len,
            frames: Arc::clone(&self.frames),
            known: Arc::clone(&self.known),
            damage: RefCell::new(self.damage.borrow().clone()),
            lost: RefCell::new(self.lost.borrow().clone()),
            index: self.index.clone(),
            index_problem: self.index_problem.clone(),
            members: Arc::clone(&self.members),
            cache: RefCell::new(None),
            scratch: RefCell::new(Scratch::take()),
            n_decompressed: Cell::new(0),
        }
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The index, when it was found intact.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_deref()
    }

    /// Why the index could not be used, when it could not.
    pub fn index_problem(&self) -> Option<&str> {
        self.index_problem.as_deref()
    }

    /// The frames.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Members, in tar order (from the index, or from the tar headers).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The damage found so far (frames are checked as they are read).
    pub fn damage(&self) -> Vec<Damage> {
        self.damage.borrow().clone()
    }

    /// How many frames were decompressed since the archive was opened.
    pub fn n_decompressed(&self) -> u64 {
        self.n_decompressed.get()
    }

    /// The length of the decompressed tar stream covered by frames with known offsets.
    pub fn stream_len(&self) -> u64 {
        self.frames
            .iter()
            .zip(self.known.iter())
            .filter(|(_, k)| **k)
            .map(|(f, _)| f.d_offset + f.d_len)
            .max()
            .unwrap_or(0)
    }

    fn note(&self, damage: Damage) {
        let mut all = self.damage.borrow_mut();
        if !all.contains(&damage) {
            all.push(damage);
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(&self.path, "read", e))
    }

    fn read_seek_table(&self) -> Result<Vec<Frame>> {
        let mut footer = [0u8; FOOTER_LEN];
        if self.len < FOOTER_LEN as u64 {
            return Err(Error::SeekTable {
                offset: 0,
                reason: "file too short for a seek table".into(),
            });
        }
        self.read_at(&mut footer, self.len - FOOTER_LEN as u64)?;
        let table_len = seekable::seek_table_len(&footer, self.len)?;
        let mut table = vec![0u8; usize::try_from(table_len).unwrap_or(0)];
        self.read_at(&mut table, self.len - table_len)?;
        let frames = seekable::parse_seek_table(&table, self.len)?;
        // Check each entry against its frame's header, so a damaged entry is not trusted.
        for (i, frame) in frames.iter().enumerate() {
            let mut head = [0u8; 18];
            let n = head.len().min(usize::try_from(frame.c_len).unwrap_or(18));
            self.read_at(&mut head[..n], frame.c_offset)?;
            match seekable::parse_frame_header(&head[..n]) {
                Ok(h) if !h.skippable && h.content_size == Some(frame.d_len) => {}
                Ok(h) => {
                    return Err(Error::SeekTable {
                        offset: frame.c_offset,
                        reason: format!(
                            "entry {i} says {} bytes, the frame header says {:?}",
                            frame.d_len, h.content_size
                        ),
                    });
                }
                // A damaged frame header: the frame is lost, not the table.
                Err(_) => {}
            }
        }
        Ok(frames)
    }

    /// Finds frames one after the other from the start, resynchronising on the next zstd magic
    /// after damage (frames after that have unknown stream offsets).
    fn walk_frames(&mut self) {
        let mut pos = 0u64;
        let mut d_offset = 0u64;
        let mut known = true;
        while pos < self.len {
            match self.frame_at(pos) {
                Ok(Some((c_len, d_len))) => {
                    if d_len > MAX_FRAME_CONTENT {
                        self.note(Damage {
                            offset: pos,
                            frame: Some(self.frames.len()),
                            reason: format!(
                                "frame claims {d_len} bytes, more than the {MAX_FRAME_CONTENT} accepted"
                            ),
                        });
                        known = false;
                    } else {
                        Arc::make_mut(&mut self.frames).push(Frame {
                            c_offset: pos,
                            c_len,
                            d_offset,
                            d_len,
                            checksum: None,
                        });
                        Arc::make_mut(&mut self.known).push(known);
                    }
                    let (Some(next_d), Some(next_pos)) =
                        (d_offset.checked_add(d_len), pos.checked_add(c_len))
                    else {
                        self.note(Damage {
                            offset: pos,
                            frame: Some(self.frames.len()),
                            reason: "frame sizes add up past 2^64 bytes".to_owned(),
                        });
                        break;
                    };
                    d_offset = next_d;
                    pos = next_pos;
                }
                Ok(None) => break,
                Err(reason) => {
                    self.note(Damage {
                        offset: pos,
                        frame: Some(self.frames.len()),
                        reason,
                    });
                    known = false;
                    match self.next_magic(pos + 1) {
                        Some(next) => pos = next,
                        None => break,
                    }
                }
            }
        }
    }

    /// The frame at `pos`: `(compressed length, decompressed length)`; `None` at the seek table
    /// (a skippable frame that ends the file).
    fn frame_at(&self, pos: u64) -> std::result::Result<Option<(u64, u64)>, String> {
        let mut head = [0u8; 18];
        let n = usize::try_from((self.len - pos).min(18)).unwrap_or(18);
        self.read_at(&mut head[..n], pos)
            .map_err(|e| e.to_string())?;
        let header = seekable::parse_frame_header(&head[..n])?;
        if header.skippable {
            let end = pos + 8 + header.content_size.unwrap_or(0);
            if end >= self.len {
                return Ok(None);
            }
            return Err("a skippable frame in the middle of the archive".into());
        }
        let d_len = header
            .content_size
            .ok_or("frame does not declare its decompressed size")?;
        let mut at = pos + header.header_len as u64;
        loop {
            let mut block = [0u8; 3];
            if at + 3 > self.len {
                return Err(format!("frame truncated at {}", self.len));
            }
            self.read_at(&mut block, at).map_err(|e| e.to_string())?;
            let (last, size) = seekable::parse_block_header(block)?;
            at += 3 + size;
            if last {
                break;
            }
        }
        if header.has_checksum {
            at += 4;
        }
        if at > self.len {
            return Err(format!("frame truncated at {}", self.len));
        }
        Ok(Some((at - pos, d_len)))
    }

    fn next_magic(&self, from: u64) -> Option<u64> {
        let magic = seekable::ZSTD_MAGIC.to_le_bytes();
        let mut pos = from;
        let mut buf = vec![0u8; 1 << 20];
        while pos < self.len {
            let n = usize::try_from((self.len - pos).min(buf.len() as u64)).ok()?;
            self.file.read_exact_at(&mut buf[..n], pos).ok()?;
            if let Some(i) = buf[..n].windows(4).position(|w| w == magic) {
                return Some(pos + i as u64);
            }
            if n < 4 {
                return None;
            }
            pos += (n - 3) as u64;
        }
        None
    }

    /// Decompresses frame `i` (cached: the last frame read is kept).
    fn frame_bytes(&self, i: usize) -> std::result::Result<std::cell::Ref<'_, Vec<u8>>, String> {
        let cached = self.cache.borrow().as_ref().is_some_and(|(n, _)| *n == i);
        if !cached {
            if self.lost.borrow().get(i).copied().unwrap_or(true) {
                return Err(format!("frame {i} is damaged"));
            }
            let reuse = self.cache.borrow_mut().take().map(|(_, bytes)| bytes);
            let reuse =
                reuse.unwrap_or_else(|| std::mem::take(&mut self.scratch.borrow_mut().frame));
            match self.decompress(i, reuse) {
                Ok(bytes) => *self.cache.borrow_mut() = Some((i, bytes)),
                Err(reason) => {
                    if let Some(lost) = self.lost.borrow_mut().get_mut(i) {
                        *lost = true;
                    }
                    let offset = self.frames.get(i).map_or(0, |f| f.c_offset);
                    self.note(Damage {
                        offset,
                        frame: Some(i),
                        reason: reason.clone(),
                    });
                    return Err(format!("frame {i} at offset {offset}: {reason}"));
                }
            }
        }
        let cache = self.cache.borrow();
        Ok(std::cell::Ref::map(cache, |c| match c {
            Some((_, bytes)) => bytes,
            None => unreachable_empty(),
        }))
    }

    fn decompress(&self, i: usize, mut out: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let frame = self.frames.get(i).ok_or("no such frame")?;
        if frame.d_len > MAX_FRAME_CONTENT {
            return Err(format!("frame claims {} bytes", frame.d_len));
        }
        let bound = zstd::zstd_safe::compress_bound(usize::try_from(frame.d_len).unwrap_or(0)) + 64;
        if frame.c_len > bound as u64 {
            return Err(format!(
                "frame of {} compressed bytes for {} decompressed",
                frame.c_len, frame.d_len
            ));
        }
        let mut scratch = self.scratch.borrow_mut();
        let Scratch { input, dctx, .. } = &mut *scratch;
        input.clear();
        input.resize(usize::try_from(frame.c_len).unwrap_or(0), 0);
        self.file
            .read_exact_at(input, frame.c_offset)
            .map_err(|e| format!("read: {e}"))?;
        self.n_decompressed.set(self.n_decompressed.get() + 1);
        let header = seekable::parse_frame_header(input)?;
        if header.content_size != Some(frame.d_len) {
            return Err(format!(
                "frame header says {:?} bytes, the seek table {}",
                header.content_size, frame.d_len
            ));
        }
        if !header.has_checksum {
            return Err("frame has no content checksum".into());
        }
        if dctx.is_none() {
            let mut decompressor =
                zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?;
            decompressor
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(WINDOW_LOG_MAX))
                .map_err(|e| format!("zstd: {e}"))?;
            *dctx = Some(decompressor);
        }
        let Some(decompressor) = dctx.as_mut() else {
            return Err("zstd: no decompression context".into());
        };
        out.clear();
        out.reserve(usize::try_from(frame.d_len).unwrap_or(0));
        let n = decompressor
            .decompress_to_buffer(&input[..], &mut out)
            .map_err(|e| format!("does not decompress: {e}"))?;
        if n as u64 != frame.d_len {
            return Err(format!("decompressed to {n} bytes, not {}", frame.d_len));
        }
        if let Some(expected) = frame.checksum {
            let stored = input
                .get(input.len().saturating_sub(4)..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes);
            if stored != Some(expected) {
                return Err("checksum differs from the seek table's".into());
            }
        }
        Ok(out)
    }

    /// Up to `len` stream bytes from `offset`, decompressing only the start of the frame that
    /// holds `offset` up to what is asked (a first look, e.g. for a run's first records: the
    /// frame's checksum is checked only when the whole frame is read). Stops at the frame's end.
    ///
    /// # Errors
    ///
    /// Why the bytes cannot be read, naming the frame.
    pub fn peek(&self, offset: u64, len: u64) -> std::result::Result<Vec<u8>, String> {
        use std::io::Read as _;
        let i = self
            .frame_of(offset)
            .ok_or_else(|| format!("tar offset {offset} is in no intact frame"))?;
        let frame = self.frames[i];
        let from = offset - frame.d_offset;
        let to = (from + len).min(frame.d_len);
        if let Some((n, bytes)) = self.cache.borrow().as_ref()
            && *n == i
        {
            let (from, to) = (
                usize::try_from(from).unwrap_or(0),
                usize::try_from(to).unwrap_or(0),
            );
            return Ok(bytes.get(from..to).unwrap_or_default().to_vec());
        }
        if self.lost.borrow().get(i).copied().unwrap_or(true) {
            return Err(format!("frame {i} is damaged"));
        }
        let mut input = vec![0u8; usize::try_from(frame.c_len).unwrap_or(0)];
        self.read_at(&mut input, frame.c_offset)
            .map_err(|e| e.to_string())?;
        let damaged = |e: std::io::Error| format!("frame {i} at offset {}: {e}", frame.c_offset);
        let mut decoder = zstd::stream::read::Decoder::with_buffer(&input[..]).map_err(damaged)?;
        decoder.window_log_max(WINDOW_LOG_MAX).map_err(damaged)?;
        let mut out = Vec::with_capacity(usize::try_from(to).unwrap_or(0));
        decoder.take(to).read_to_end(&mut out).map_err(damaged)?;
        Ok(out
            .get(usize::try_from(from).unwrap_or(0)..)
            .unwrap_or_default()
            .to_vec())
    }

    /// The CRC-32 of frame `i`'s decompressed bytes (decompressing it).
    pub fn frame_crc(&self, i: usize) -> std::result::Result<u32, String> {
        Ok(crc32fast::hash(&self.frame_bytes(i)?))
    }

    /// The frame holding stream offset `offset`, among frames with known offsets.
    fn frame_of(&self, offset: u64) -> Option<usize> {
        let i = self
            .frames
            .partition_point(|f| f.d_offset + f.d_len <= offset);
        let frame = self.frames.get(i)?;
        (self.known.get(i).copied().unwrap_or(false)
            && frame.d_offset <= offset
            && offset < frame.d_offset + frame.d_len)
            .then_some(i)
    }

    /// Feeds the stream bytes `[offset, offset + len)` to `sink`, frame by frame.
    pub fn read_range(
        &self,
        offset: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::result::Result<(), String> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| format!("range at {offset} of {len} bytes overflows"))?;
        let mut pos = offset;
        while pos < end {
            let i = self
                .frame_of(pos)
                .ok_or_else(|| format!("tar offset {pos} is in no intact frame"))?;
            let bytes = self.frame_bytes(i)?;
            let frame = self.frames[i];
            let from = usize::try_from(pos - frame.d_offset).unwrap_or(0);
            let to = usize::try_from(end.min(frame.d_offset + frame.d_len) - frame.d_offset)
                .unwrap_or(0);
            let slice = bytes.get(from..to).ok_or("frame shorter than declared")?;
            sink(slice).map_err(|e| format!("write: {e}"))?;
            pos += slice.len() as u64;
            if slice.is_empty() {
                return Err("no progress".into());
            }
        }
        Ok(())
    }

    /// Feeds the stream bytes `[offset, offset + len)` to `sink` like [`Archive::read_range`],
    /// but a part in a lost frame (or in no frame with a known offset) is fed as zeros and
    /// returned as a hole: `(stream offset, length, why)`, so a reader can go on after it.
    pub fn read_range_lossy(
        &self,
        offset: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Vec<(u64, u64, String)> {
        static ZEROS: [u8; 64 << 10] = [0u8; 64 << 10];
        let end = offset.saturating_add(len);
        let mut holes: Vec<(u64, u64, String)> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let (hole_end, reason) = match self.frame_of(pos) {
                Some(i) => {
                    let frame = self.frames[i];
                    let frame_end = end.min(frame.d_offset + frame.d_len);
                    match self.frame_bytes(i) {
                        Ok(bytes) => {
                            let from = usize::try_from(pos - frame.d_offset).unwrap_or(usize::MAX);
                            let to = usize::try_from(frame_end - frame.d_offset).unwrap_or(0);
                            if let Some(slice) = bytes.get(from..to)
                                && !slice.is_empty()
                            {
                                sink(slice);
                                pos += slice.len() as u64;
                                continue;
                            }
                            (frame_end, format!("frame {i} is shorter than declared"))
                        }
                        Err(reason) => (frame_end, reason),
                    }
                }
                None => {
                    let next = self
                        .frames
                        .iter()
                        .zip(self.known.iter())
                        .filter(|(f, k)| **k && f.d_offset > pos)
                        .map(|(f, _)| f.d_offset)
                        .min()
                        .unwrap_or(end);
                    (
                        end.min(next),
                        format!("tar offset {pos} is in no intact frame"),
                    )
                }
            };
            let hole_end = hole_end.max(pos + 1);
            let mut left = hole_end - pos;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(ZEROS.len());
                sink(&ZEROS[..n]);
                left -= n as u64;
            }
            match holes.last_mut() {
                Some(last) if last.0 + last.1 == pos && last.2 == reason => {
                    last.1 += hole_end - pos
                }
                _ => holes.push((pos, hole_end - pos, reason)),
            }
            pos = hole_end;
        }
        holes
    }

    fn read_vec(&self, offset: u64, len: u64) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.read_range(offset, len, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }

    fn read_block(&self, offset: u64) -> std::result::Result<[u8; 512], String> {
        let bytes = self.read_vec(offset, BLOCK)?;
        <[u8; 512]>::try_from(bytes.as_slice()).map_err(|_| "short block".to_string())
    }

    /// Reads the member whose first header block is at `offset` (long-name and PAX records
    /// applied); `None` at the end-of-archive block.
    pub fn member_at(&self, offset: u64) -> std::result::Result<Option<Member>, String> {
        let mut pos = offset;
        let (mut long_name, mut long_link) = (None, None);
        for _ in 0..8 {
            let block = self.read_block(pos)?;
            match tarfmt::parse_block(&block)? {
                Block::Zero => return Ok(None),
                Block::LongName { link, size } => {
                    if size > MAX_NAME_LEN {
                        return Err(format!("long name of {size} bytes"));
                    }
                    let bytes = self.read_vec(pos + BLOCK, size)?;
                    let name = tarfmt::trim_nul(&bytes).to_vec();
                    if link {
                        long_link = Some(name);
                    } else {
                        long_name = Some(name);
                    }
                    pos += BLOCK + tarfmt::padded(size);
                }
                Block::Pax { global, size } => {
                    if size > MAX_PAX_LEN {
                        return Err(format!("PAX header of {size} bytes"));
                    }
                    if !global {
                        let bytes = self.read_vec(pos + BLOCK, size)?;
                        let (path, link) = tarfmt::pax_paths(&bytes);
                        long_name = path.or(long_name);
                        long_link = link.or(long_link);
                    }
                    pos += BLOCK + tarfmt::padded(size);
                }
                Block::Member {
                    name,
                    link,
                    size,
                    kind,
                    mode,
                    mtime,
                } => {
                    let mut name = long_name.unwrap_or(name);
                    let link = long_link.unwrap_or(link);
                    if kind == Kind::Dir {
                        while name.len() > 1 && name.ends_with(b"/") {
                            name.pop();
                        }
                    }
                    return Ok(Some(Member {
                        name: String::from_utf8_lossy(&name).into_owned(),
                        kind,
                        link: String::from_utf8_lossy(&link).into_owned(),
                        size,
                        header_offset: offset,
                        data_offset: pos + BLOCK,
                        sha256: None,
                        mode,
                        mtime,
                    }));
                }
            }
        }
        Err("too many extended header records".into())
    }

    /// Finds the index: the member named [`INDEX_NAME`] starting one of the last frames.
    fn find_index(&self) -> std::result::Result<Index, String> {
        let stream_len = self.stream_len();
        for i in (0..self.frames.len()).rev().take(64) {
            if !self.known[i] {
                continue;
            }
            let start = self.frames[i].d_offset;
            match self.member_at(start) {
                Ok(Some(member)) if member.name == INDEX_NAME => {
                    if member.size > MAX_INDEX_LEN {
                        return Err(format!("index member claims {} bytes", member.size));
                    }
                    let bytes = self.read_vec(member.data_offset, member.size)?;
                    return Index::parse(&bytes, stream_len).map_err(|e| e.to_string());
                }
                Ok(Some(_)) => return Err("no index member at the end of the archive".into()),
                Ok(None) | Err(_) => {}
            }
        }
        Err("no index member found in the last frames".into())
    }

    /// Lists members from the tar headers, skipping damaged frames.
    fn scan_members(&self) -> Vec<Member> {
        let mut members = Vec::new();
        let stream_len = self.stream_len();
        let mut pos = 0u64;
        while pos + BLOCK <= stream_len {
            match self.member_at(pos) {
                Ok(None) => break,
                Ok(Some(member)) => {
                    let next = member
                        .data_offset
                        .saturating_add(tarfmt::padded(member.size));
                    if member.name != INDEX_NAME {
                        members.push(member);
                    }
                    pos = next;
                }
                Err(reason) => {
                    let frame = self.frame_of(pos);
                    self.note(Damage {
                        offset: frame.map_or(0, |i| self.frames[i].c_offset),
                        frame,
                        reason: format!("no member header at tar offset {pos}: {reason}"),
                    });
                    // Go on at the next frame start with a header.
                    let next = self
                        .frames
                        .iter()
                        .zip(self.known.iter())
                        .find(|(f, k)| **k && f.d_offset > pos && f.d_offset % BLOCK == 0)
                        .map(|(f, _)| f.d_offset);
                    match next {
                        Some(next) => pos = next,
                        None => break,
                    }
                }
            }
        }
        members
    }

    /// Checks a member: every frame holding it decompresses, and its SHA-256 is the index's
    /// (members without an index entry are checked by the frames' own checksums).
    pub fn verify_member(&self, member: &Member) -> std::result::Result<(), String> {
        if let Some(expected) = &member.sha256 {
            let header = self.member_at(member.header_offset)?;
            match header {
                Some(h) if h.name == member.name && h.size == member.size => {}
                Some(h) => {
                    return Err(format!(
                        "the tar header says {:?} of {} bytes, the index {:?} of {}",
                        h.name, h.size, member.name, member.size
                    ));
                }
                None => return Err("no tar header where the index says".into()),
            }
            let mut sha = Sha256::new();
            self.read_range(member.data_offset, member.size, &mut |b| {
                sha.update(b);
                Ok(())
            })?;
            let got = hex(&sha.finalize());
            if &got != expected {
                return Err(format!("SHA-256 {got}, the index says {expected}"));
            }
            Ok(())
        } else {
            if member.kind != Kind::File {
                return Ok(());
            }
            self.read_range(member.data_offset, member.size, &mut |_| Ok(()))
        }
    }
}

/// Splits a command-line argument naming an archive, `runs.tar.zst` or `runs.tar.zst:RUN`, into
/// the archive's path and the run asked for; `None` when the argument does not name an existing
/// `*.tar.zst` file (then it is an ordinary input).
///
/// `RUN` is a run's folder name in the archive or its run id (the part after the folder name's
/// last `-`, or the `<id>` of its `run-<id>.wandb`); see [`Archive::record_members`].
pub fn parse_spec(arg: &Path) -> Option<(PathBuf, Option<String>)> {
    let text = arg.to_str()?;
    if text.ends_with(".tar.zst") && arg.is_file() {
        return Some((arg.to_path_buf(), None));
    }
    let (archive, run) = text.rsplit_once(".tar.zst:")?;
    let path = PathBuf::from(format!("{archive}.tar.zst"));
    (path.is_file() && !run.is_empty()).then(|| (path, Some(run.to_string())))
}

impl Archive {
    /// The run folder names, in archive order (not the sweep folders the index lists).
    pub fn runs(&self) -> Vec<String> {
        let sweeps: Vec<String> = self
            .index()
            .map(|i| {
                i.sweeps
                    .iter()
                    .map(crate::index::SweepEntry::name)
                    .collect()
            })
            .unwrap_or_default();
        let mut runs: Vec<String> = Vec::new();
        for member in self.members.iter() {
            let run = member.run();
            if !run.is_empty()
                && run != ".wandb-archive"
                && !sweeps.iter().any(|s| s == run)
                && runs.last().is_none_or(|r| r != run)
            {
                runs.push(run.to_string());
            }
        }
        runs
    }

    /// Whether `run` (a folder name or a run id) names the run folder `folder`.
    pub fn run_matches(folder: &str, run: &str) -> bool {
        folder == run || folder.rsplit_once('-').is_some_and(|(_, id)| id == run)
    }

    /// The `.wandb` members directly in a run folder (of the run asked for, or of every run), in
    /// archive order.
    pub fn record_members(&self, run: Option<&str>) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| {
                let mut parts = m.name.splitn(2, '/');
                let folder = parts.next().unwrap_or("");
                let rest = parts.next().unwrap_or("");
                m.kind == Kind::File
                    && !rest.contains('/')
                    && rest.ends_with(".wandb")
                    && run.is_none_or(|r| {
                        Archive::run_matches(folder, r) || rest == format!("run-{r}.wandb")
                    })
            })
            .collect()
    }

    /// The content of a member, checked against the index's SHA-256 when there is one.
    pub fn read_member(&self, member: &Member) -> std::result::Result<Vec<u8>, String> {
        let bytes = self.read_vec(member.data_offset, member.size)?;
        if let Some(expected) = &member.sha256 {
            let got = hex(&Sha256::digest(&bytes));
            if &got != expected {
                return Err(format!("SHA-256 {got}, the index says {expected}"));
            }
        }
        Ok(bytes)
    }

    /// The member stored for a file that came from `source` (an artifact's `local_path`, inside
    /// or outside the run, or the target of a symlink leading out), in run `run`.
    pub fn member_from_source(&self, run: &str, source: &str) -> Option<&Member> {
        let index = self.index.as_deref()?;
        let file = index
            .runs
            .iter()
            .filter(|r| r.name == run)
            .flat_map(|r| &r.files)
            .find(|f| f.source.as_deref() == Some(source))?;
        self.members.iter().find(|m| m.name == file.path)
    }
}

/// What [`Archive::decompress`] keeps from one frame to the next.
#[derive(Default)]
struct Scratch {
    /// The compressed bytes of the frame being decompressed.
    input: Vec<u8>,
    /// The decompression context (with its window limit set).
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    /// The buffer of the last frame decompressed, once the handle that held it is gone.
    frame: Vec<u8>,
}

thread_local! {
    /// The scratch of the last handle dropped on this thread: a thread that reads one run after
    /// another (a sync worker) reuses its buffers instead of allocating (and faulting in) new
    /// ones for every run.
    static SPARE: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

impl Scratch {
    fn take() -> Scratch {
        SPARE
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        let mut scratch = std::mem::take(self.scratch.get_mut());
        if let Some((_, frame)) = self.cache.get_mut().take() {
            scratch.frame = frame;
        }
        let _ = SPARE.try_with(|spare| *spare.borrow_mut() = Some(scratch));
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("input", &self.input.len())
            .finish_non_exhaustive()
    }
}

fn unreachable_empty() -> &'static Vec<u8> {
    static EMPTY: Vec<u8> = Vec::new();
    &EMPTY
}

/// The member a file entry of the index (a run's or a sweep folder's) stands for.
fn file_member(file: &FileEntry) -> Member {
    Member {
        name: file.path.clone(),
        kind: Kind::File,
        link: String::new(),
        size: file.size,
        header_offset: file.header_offset,
        data_offset: file.data_offset,
        sha256: Some(file.sha256.clone()),
        mode: file.mode,
        mtime: file.mtime,
    }
}

fn members_of(index: &Index) -> Vec<Member> {
    index
        .runs
        .iter()
        .flat_map(|run| {
            let dirs = run.dirs.iter().map(|dir| Member {
                name: format!("{}/{dir}", run.name),
                kind: Kind::Dir,
                link: String::new(),
                size: 0,
                header_offset: run.files.first().map_or(0, |f| f.header_offset),
                data_offset: run.files.first().map_or(0, |f| f.header_offset),
                sha256: None,
                mode: 0o755,
                mtime: 0,
            });
            dirs.chain(run.files.iter().map(file_member))
        })
        .chain(
            index
                .sweeps
                .iter()
                .flat_map(|sweep| sweep.files.iter().map(file_member)),
        )
        .collect()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
