//! The writing side: [`Framer`] frames record payloads into W&B's block and chunk layout in memory, and
//! [`Writer`] appends framed records to a `.wandb` file with an explicit [`Durability`].
//!
//! The framing rules are W&B's (and LevelDB's): before a record, a block tail of fewer than 7 bytes is
//! zero-filled; a record that fits is one FULL chunk; otherwise a FIRST chunk fills the block (with an
//! empty payload when exactly 7 bytes were left), MIDDLE chunks fill whole blocks and a LAST chunk holds
//! the rest. Files written this way are byte-identical to the official SDK's.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Damage, Error, Result};
use crate::framing::{
    BLOCK_SIZE, CHUNK_HEADER_LEN, ChunkType, FILE_HEADER, FILE_HEADER_LEN, block_remaining,
    encode_chunk_header,
};
use crate::proto::Record;
use crate::scan::{Recovery, ScanItem, Scanner};

/// Frames record payloads into chunks, appending the bytes to a caller's buffer.
///
/// It only tracks the absolute file offset the next byte will have, so one `Framer` can produce a
/// whole file in memory or feed a [`Writer`].
#[derive(Clone, Debug)]
pub struct Framer {
    offset: u64,
}

impl Framer {
    /// A framer for a new file: the 7-byte file header comes first, so framing starts at offset 7.
    pub fn new() -> Self {
        Framer {
            offset: FILE_HEADER_LEN,
        }
    }

    /// A framer continuing a file whose next byte is at absolute offset `offset`.
    pub fn at_offset(offset: u64) -> Self {
        Framer { offset }
    }

    /// The absolute offset the next byte will have.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Frames `payload` as one record, appends the bytes to `out` and returns the record's offset (the
    /// offset of its first chunk header).
    pub fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>) -> u64 {
        let left = block_remaining(self.offset);
        if left < CHUNK_HEADER_LEN {
            out.resize(out.len() + left as usize, 0);
            self.offset += left;
        }
        let record_offset = self.offset;
        let mut rest = payload;
        let mut first = true;
        loop {
            let available = (block_remaining(self.offset) - CHUNK_HEADER_LEN) as usize;
            let take = rest.len().min(available);
            let (fragment, remainder) = rest.split_at(take);
            let last = remainder.is_empty();
            let kind = match (first, last) {
                (true, true) => ChunkType::Full,
                (true, false) => ChunkType::First,
                (false, false) => ChunkType::Middle,
                (false, true) => ChunkType::Last,
            };
            let mut header = [0u8; 7];
            encode_chunk_header(kind, fragment, &mut header);
            out.extend_from_slice(&header);
            out.extend_from_slice(fragment);
            self.offset += CHUNK_HEADER_LEN + take as u64;
            if last {
                return record_offset;
            }
            rest = remainder;
            first = false;
        }
    }
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

/// How far [`Writer::persist`] pushes buffered data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Hand the buffered bytes to the operating system (`write`). They survive a crash of this process
    /// (including `kill -9`), but not a power loss or kernel crash.
    #[default]
    Flush,
    /// Also `fdatasync` the file: the bytes survive a power loss once this returns.
    SyncData,
    /// Also `fsync` the file, metadata included.
    SyncAll,
}

/// What [`Writer::open_append`] found and did before appending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendRecovery {
    /// Number of intact records in the file.
    pub records: u64,
    /// Damaged spans found, in file order (the last one may be the torn tail that was cut).
    pub damage: Vec<Damage>,
    /// Number of bytes cut from the end of the file (a torn tail, after the last intact record).
    pub truncated_bytes: u64,
}

/// Once the buffer holds this many bytes, [`Writer::append`] hands them to the operating system.
const WRITE_THRESHOLD: usize = 1 << 20;

/// Once this many written bytes wait for the disk, the writer asks the kernel to start writing them
/// (see `writeback.rs`), so a sync has at most about this much left to wait for.
const WRITEBACK_THRESHOLD: u64 = 8 << 20;

/// Appends records to one `.wandb` file.
///
/// Appended records are buffered in memory until the buffer reaches 1 MiB or [`Writer::persist`] is
/// called; the owner decides how often to persist. After a failed write or sync the writer is poisoned:
/// what reached the file is unknown, so every later call fails with [`Error::Poisoned`] rather than
/// append after a possibly torn chunk.
#[derive(Debug)]
pub struct Writer {
    file: File,
    path: PathBuf,
    framer: Framer,
    buffer: Vec<u8>,
    scratch: Vec<u8>,
    poisoned: bool,
    /// File offset up to which bytes were handed to the operating system.
    written: u64,
    /// File offset up to which the kernel was asked to write to disk (or synced).
    writeback: u64,
}

impl Writer {
    /// Creates a new file at `path` (failing if it exists), writes the file header and syncs the file
    /// and its directory, so the new file itself survives a crash.
    ///
    /// If the header cannot be written and synced (a full disk, a file size limit), the new file is
    /// removed again: a failed creation leaves no empty or partial `.wandb` file behind.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "create", e))?;
        let written = file
            .write_all(&FILE_HEADER)
            .map_err(|e| Error::io(&path, "write", e))
            .and_then(|()| file.sync_all().map_err(|e| Error::io(&path, "fsync", e)))
            .and_then(|()| sync_parent_dir(&path));
        if let Err(error) = written {
            drop(file);
            // The file is ours (`create_new`); if removing it fails too, the first error matters.
            if std::fs::remove_file(&path).is_ok() {
                let _ = sync_parent_dir(&path);
            }
            return Err(error);
        }
        Ok(Writer {
            file,
            path,
            framer: Framer::new(),
            buffer: Vec::with_capacity(WRITE_THRESHOLD + BLOCK_SIZE as usize),
            scratch: Vec::new(),
            poisoned: false,
            written: FILE_HEADER_LEN,
            writeback: FILE_HEADER_LEN,
        })
    }

    /// Opens an existing file for appending. The file is scanned first: if it ends with a torn tail
    /// (anything after the last intact record), that tail is cut off and the cut is synced, so new
    /// records never land after garbage. Damage in the middle of the file is kept as it is and
    /// reported. A file shorter than the header whose bytes are a prefix of it (a creation cut short)
    /// gets its header rewritten. The file must not have another writer.
    pub fn open_append(path: impl AsRef<Path>) -> Result<(Self, AppendRecovery)> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(&path, "read", e))?;
        let file_len = bytes.len() as u64;
        let mut recovery = AppendRecovery::default();
        let end = if file_len < FILE_HEADER_LEN && FILE_HEADER.starts_with(&bytes) {
            file.set_len(0)
                .map_err(|e| Error::io(&path, "truncate", e))?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io(&path, "seek", e))?;
            file.write_all(&FILE_HEADER)
                .map_err(|e| Error::io(&path, "write", e))?;
            recovery.truncated_bytes = file_len;
            FILE_HEADER_LEN
        } else {
            if !bytes.starts_with(&FILE_HEADER) {
                let found = bytes.get(..7).unwrap_or(&bytes).to_vec();
                return Err(Error::BadHeader { path, found });
            }
            let mut end = FILE_HEADER_LEN;
            for item in Scanner::new(&bytes, 0, FILE_HEADER_LEN, Recovery::SkipCorrupt).flatten() {
                match item {
                    ScanItem::Record(record) => {
                        recovery.records += 1;
                        end = record.offset + record.length;
                    }
                    ScanItem::Damage(damage) => recovery.damage.push(damage),
                }
            }
            if end < file_len {
                file.set_len(end)
                    .map_err(|e| Error::io(&path, "truncate", e))?;
                recovery.truncated_bytes = file_len - end;
            }
            end
        };
        if recovery.truncated_bytes > 0 {
            file.sync_all().map_err(|e| Error::io(&path, "fsync", e))?;
        }
        file.seek(SeekFrom::Start(end))
            .map_err(|e| Error::io(&path, "seek", e))?;
        let writer = Writer {
            file,
            path,
            framer: Framer::at_offset(end),
            buffer: Vec::with_capacity(WRITE_THRESHOLD + BLOCK_SIZE as usize),
            scratch: Vec::new(),
            poisoned: false,
            written: end,
            writeback: end,
        };
        Ok((writer, recovery))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's logical length: the offset the next record's bytes start at, counting bytes still
    /// buffered in memory.
    pub fn len(&self) -> u64 {
        self.framer.offset()
    }

    /// Whether the file holds nothing but its header.
    pub fn is_empty(&self) -> bool {
        self.len() == FILE_HEADER_LEN
    }

    /// Bytes appended but not yet handed to the operating system.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Appends one record payload (an encoded protobuf `Record`) and returns its offset.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        self.check_poisoned()?;
        let offset = self.framer.frame(payload, &mut self.buffer);
        if self.buffer.len() >= WRITE_THRESHOLD {
            self.write_buffer()?;
        }
        Ok(offset)
    }

    /// Encodes `record` and appends it; returns its offset.
    pub fn append_record(&mut self, record: &Record) -> Result<u64> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        // `encode_raw` cannot fail: a Vec grows as needed.
        record.encode_raw(&mut scratch);
        let result = self.append(&scratch);
        self.scratch = scratch;
        result
    }

    /// Pushes everything appended so far as far as `durability` says.
    ///
    /// Whatever the durability, bytes handed to the operating system are also queued for writing
    /// to the disk every few megabytes, without waiting, so that a later sync is quick.
    pub fn persist(&mut self, durability: Durability) -> Result<()> {
        self.check_poisoned()?;
        self.write_buffer()?;
        let result = match durability {
            Durability::Flush => return Ok(()),
            Durability::SyncData => self.file.sync_data(),
            Durability::SyncAll => self.file.sync_all(),
        };
        if result.is_ok() {
            self.writeback = self.written;
        }
        result.map_err(|e| {
            // After a failed fsync the kernel may have dropped the dirty pages: never trust the file again.
            self.poisoned = true;
            Error::io(&self.path, "fsync", e)
        })
    }

    /// Persists with [`Durability::SyncData`] and closes the file.
    pub fn close(mut self) -> Result<()> {
        self.persist(Durability::SyncData)
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buffer) {
            self.poisoned = true;
            return Err(Error::io(&self.path, "write", e));
        }
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        if self.written - self.writeback >= WRITEBACK_THRESHOLD {
            crate::writeback::start(&self.file, self.writeback, self.written - self.writeback);
            self.writeback = self.written;
        }
        Ok(())
    }
}

/// Syncs the directory holding `path`, so that a newly created entry in it survives a power loss.
fn sync_parent_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = File::open(parent).map_err(|e| Error::io(parent, "open directory", e))?;
        match dir.sync_all() {
            // Some file systems do not support syncing a directory; there is nothing more to do there.
            Err(e) if e.kind() != io::ErrorKind::InvalidInput => {
                return Err(Error::io(parent, "fsync directory", e));
            }
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Frames `payloads` into a complete file image (header included), as [`Writer`] would write it.
pub fn frame_all<'p>(payloads: impl IntoIterator<Item = &'p [u8]>) -> Vec<u8> {
    let mut out = FILE_HEADER.to_vec();
    let mut framer = Framer::new();
    for payload in payloads {
        framer.frame(payload, &mut out);
    }
    out
}
