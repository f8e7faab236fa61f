//! The reading side for files: [`LogFile`] memory-maps a complete `.wandb` file and iterates its
//! records, decoded or raw; [`Follower`] reads a file that is still being written, picking up new
//! records as it grows.
//!
//! Both check the 7-byte file header first; a file that does not start with it is not a `.wandb` log
//! and is an error, not damage. Both refuse a path that is not a regular file (a FIFO, socket, device
//! or directory) before opening it, so a FIFO named `*.wandb` cannot block them.
//!
//! A file that shrinks while it is read is damage, not a crash: [`LogFile`]'s map survives the lost
//! pages (see `mmap.rs`) and its scans report [`DamageReason::FileShrank`] at the new end of the file;
//! a [`Follower`] that had already returned records past the new end reports the same.

use std::collections::VecDeque;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Damage, DamageReason, Error, FileKind, Result};
use crate::framing::{FILE_HEADER, FILE_HEADER_LEN};
use crate::mmap::Mapping;
use crate::proto::Record;
use crate::scan::{RawRecord, Recovery, ScanItem, Scanner};

/// A decoded record, or a damaged span, in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// An intact record.
    Record {
        /// Absolute file offset of the record's first chunk header.
        offset: u64,
        /// Bytes the record occupies on disk.
        length: u64,
        /// The decoded record.
        record: Box<Record>,
    },
    /// A span that was skipped.
    Damage(Damage),
}

/// What a file's type is, if it is not a regular file.
pub(crate) fn irregular(metadata: &Metadata) -> Option<FileKind> {
    let kind = metadata.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some(FileKind::Directory)
    } else if kind.is_fifo() {
        Some(FileKind::Fifo)
    } else if kind.is_socket() {
        Some(FileKind::Socket)
    } else if kind.is_char_device() {
        Some(FileKind::CharDevice)
    } else if kind.is_block_device() {
        Some(FileKind::BlockDevice)
    } else {
        Some(FileKind::Other)
    }
}

/// Checks that `path` (following symlinks) is a regular file, without opening it.
///
/// # Errors
///
/// [`Error::NotRegularFile`] naming the path and what it is instead, or [`Error::Io`] if it cannot
/// be examined.
pub fn check_regular_file(path: &Path) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    match irregular(&metadata) {
        None => Ok(()),
        Some(kind) => Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Opens `path` for reading if it is a regular file: checked by name first, so that a FIFO or device
/// is never opened, then (non-blocking, in case it was swapped in between) by the open handle.
/// Returns the file and its length.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    check_regular_file(path)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io(path, "open", e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
    if let Some(kind) = irregular(&metadata) {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok((file, metadata.len()))
}

/// A `.wandb` file, memory-mapped (or held in memory) for reading.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    bytes: Mapping,
    /// The open file behind a map, to learn its length again if it shrinks under the map.
    file: Option<File>,
}

impl LogFile {
    /// Opens and memory-maps `path` and checks its header.
    ///
    /// Meant for files that are complete, but safe on any: if another process truncates the file
    /// while it is mapped, the lost pages read as zeros instead of raising SIGBUS, and scans report
    /// the lost part as [`DamageReason::FileShrank`] (see [`LogFile::scan`]). Use [`Follower`] to read
    /// a file that is still being written as it grows.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegularFile`] for a FIFO, socket, device or directory (never opened), I/O errors,
    /// and [`Error::BadHeader`] for a file that is not a `.wandb` log.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (file, len) = open_regular(&path)?;
        let bytes = Mapping::map(&file, len).map_err(|e| Error::io(&path, "mmap", e))?;
        let file = matches!(bytes, Mapping::Mapped(_)).then_some(file);
        Self::checked(path, bytes, file)
    }

    /// Wraps bytes already in memory; `path` is only used in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::checked(path.into(), Mapping::Owned(bytes), None)
    }

    fn checked(path: PathBuf, bytes: Mapping, file: Option<File>) -> Result<Self> {
        if !bytes.as_slice().starts_with(&FILE_HEADER) {
            let found = bytes.as_slice().iter().take(7).copied().collect();
            return Err(Error::BadHeader { path, found });
        }
        Ok(LogFile { path, bytes, file })
    }

    /// Whether the file is shorter than when it was opened (its length is looked up again), so that
    /// the bytes past its new end read as zeros ([`LogFile::bytes`] keeps its length). Scans report
    /// this themselves.
    pub fn shrank(&self) -> bool {
        self.bytes.faulted() || self.current_len() < self.len()
    }

    /// The file's current length on disk (for a file in memory or read into memory, its length).
    fn current_len(&self) -> u64 {
        match &self.file {
            // If the length cannot be read any more, nothing past the first lost page is trusted.
            Some(file) => file.metadata().map_or(0, |m| m.len()),
            None => self.len(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file's bytes, header included.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Whether the file holds nothing but its header.
    pub fn is_empty(&self) -> bool {
        self.len() <= FILE_HEADER_LEN
    }

    /// Raw record payloads and damaged spans, without decoding.
    ///
    /// If the file shrinks while it is scanned, the scan notices when it touches a lost page (or at
    /// its end): it scans again, from the end of the last item it yielded, only the bytes the file
    /// still holds (so a record cut by the new end is damage like any torn tail), and then reports
    /// [`DamageReason::FileShrank`] from the new end to the old one. Every item yielded before is
    /// yielded once; records it yielded past the new end are no longer in the file (and their
    /// borrowed payloads, if read again, read as zeros).
    pub fn scan(&self, recovery: Recovery) -> RawRecords<'_> {
        self.scan_from(FILE_HEADER_LEN, recovery)
    }

    /// Like [`LogFile::scan`], starting at absolute offset `offset`, which must be a record offset
    /// (one returned by the writer or by an earlier scan).
    pub fn scan_from(&self, offset: u64, recovery: Recovery) -> RawRecords<'_> {
        let start = offset.max(FILE_HEADER_LEN);
        RawRecords {
            file: self,
            scanner: Scanner::new(self.bytes(), 0, start, recovery),
            recovery,
            yielded_to: start,
            shrink_seen: false,
            shrank: None,
            failed: false,
        }
    }

    /// Decoded records and damaged spans. A record whose bytes are intact but do not decode is damage
    /// ([`DamageReason::Undecodable`]), handled by `recovery` like any other.
    pub fn records(&self, recovery: Recovery) -> Records<'_> {
        self.records_from(FILE_HEADER_LEN, recovery)
    }

    /// Like [`LogFile::records`], starting at record offset `offset`.
    pub fn records_from(&self, offset: u64, recovery: Recovery) -> Records<'_> {
        Records {
            raw: self.scan_from(offset, recovery),
            recovery,
        }
    }
}

/// Iterator over raw records and damage of a [`LogFile`]; see [`Scanner`] and [`LogFile::scan`].
#[derive(Debug)]
pub struct RawRecords<'a> {
    file: &'a LogFile,
    scanner: Scanner<'a>,
    recovery: Recovery,
    /// End of the last item yielded (or the scan's start).
    yielded_to: u64,
    /// Whether the file's shrinking has been dealt with.
    shrink_seen: bool,
    /// The lost part of a file that shrank, reported when the rescan of what is left ends.
    shrank: Option<Damage>,
    /// Whether an error was yielded (nothing follows it).
    failed: bool,
}

impl RawRecords<'_> {
    /// The file shrank under the map: scan again from the end of the last yielded item, over the
    /// bytes the file still holds, and queue the lost span as damage.
    fn on_shrink(&mut self) {
        self.shrink_seen = true;
        let file = self.file;
        let data = file.bytes();
        let old_len = data.len() as u64;
        let now = file.current_len().min(old_len);
        let limit = now.max(self.yielded_to).min(old_len);
        let kept = data
            .get(..usize::try_from(limit).unwrap_or(data.len()))
            .unwrap_or(data);
        self.scanner = Scanner::new(kept, 0, self.yielded_to, self.recovery);
        if now < old_len {
            self.shrank = Some(Damage {
                offset: now,
                length: old_len - now,
                reason: DamageReason::FileShrank {
                    from: old_len,
                    to: now,
                },
            });
        }
    }
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<ScanItem<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let item = self.scanner.next();
            // Lost pages fault (and flag the map); bytes past the new end in the last page kept read
            // as zeros without a fault, so damage and the end of the scan check the length too.
            let suspect = !matches!(item, Some(Ok(ScanItem::Record(_))));
            if !self.shrink_seen
                && (self.file.bytes.faulted()
                    || (suspect && self.file.current_len() < self.file.len()))
            {
                // The item may have been read from lost pages: drop it and rescan.
                self.on_shrink();
                continue;
            }
            return match item {
                Some(Ok(item)) => {
                    self.yielded_to = match &item {
                        ScanItem::Record(record) => record.offset + record.length,
                        ScanItem::Damage(damage) => damage.end(),
                    };
                    Some(Ok(item))
                }
                Some(Err(damage)) => {
                    self.failed = true;
                    Some(Err(corrupt(&self.file.path, damage)))
                }
                None => {
                    let damage = self.shrank.take()?;
                    if self.recovery == Recovery::Strict {
                        self.failed = true;
                        return Some(Err(corrupt(&self.file.path, damage)));
                    }
                    Some(Ok(ScanItem::Damage(damage)))
                }
            };
        }
    }
}

/// Iterator over decoded records and damage of a [`LogFile`].
#[derive(Debug)]
pub struct Records<'a> {
    raw: RawRecords<'a>,
    recovery: Recovery,
}

impl Iterator for Records<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.raw.next()? {
            Ok(item) => decode_item(&self.raw.file.path, item, self.recovery),
            Err(error) => Err(error),
        })
    }
}

/// Decodes a raw record into an [`Entry`], turning decode failures into damage.
pub fn decode(record: &RawRecord<'_>) -> std::result::Result<Record, Damage> {
    Record::decode(record.payload.as_ref()).map_err(|e| Damage {
        offset: record.offset,
        length: record.length,
        reason: DamageReason::Undecodable {
            message: e.to_string(),
        },
    })
}

fn decode_item(path: &Path, item: ScanItem<'_>, recovery: Recovery) -> Result<Entry> {
    match item {
        ScanItem::Damage(damage) => Ok(Entry::Damage(damage)),
        ScanItem::Record(raw) => match decode(&raw) {
            Ok(record) => Ok(Entry::Record {
                offset: raw.offset,
                length: raw.length,
                record: Box::new(record),
            }),
            Err(damage) if recovery == Recovery::SkipCorrupt => Ok(Entry::Damage(damage)),
            Err(damage) => Err(corrupt(path, damage)),
        },
    }
}

fn corrupt(path: &Path, damage: Damage) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        damage,
    }
}

/// Reads a `.wandb` file that another process may still be appending to.
///
/// Each [`Follower::poll`] reads what was added since the last one and returns the records completed
/// since. A record or damaged span that reaches the current end of the file is held back until more
/// bytes arrive, because the writer may simply not have finished it (each poll reads the bytes held
/// back again, as a writer re-opening the file may have replaced them); [`Follower::finish`] reports
/// such a tail once the caller knows the writer is gone. Memory holds only the bytes from the first
/// unfinished record on, never more than the file.
///
/// Polls paused anywhere, and followers re-opened at [`Follower::offset`], yield together exactly what
/// one scan of the whole file yields.
///
/// If the file shrinks (a writer re-opening it cuts a torn tail), bytes held back past the new end
/// are dropped and following goes on from there, so what is returned is still what one scan of the
/// file yields. If it shrinks below records already returned, the lost span is reported as
/// [`DamageReason::FileShrank`] at the new end, and the follower returns nothing more.
#[derive(Debug)]
pub struct Follower {
    file: File,
    path: PathBuf,
    tail: Tail,
}

impl Follower {
    /// Opens `path` for following from its first record.
    pub fn open(path: impl AsRef<Path>, recovery: Recovery) -> Result<Self> {
        Self::open_at(path, FILE_HEADER_LEN, recovery)
    }

    /// Opens `path` for following from record offset `offset` (for example one saved by an earlier
    /// run of the caller from [`Follower::offset`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotRegularFile`] for a FIFO, socket, device or directory (never opened), and I/O
    /// errors.
    pub fn open_at(path: impl AsRef<Path>, offset: u64, recovery: Recovery) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (file, _) = open_regular(&path)?;
        Ok(Follower {
            file,
            path,
            tail: Tail::new(offset, recovery),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record offset from which reading would continue: everything before it has been returned.
    pub fn offset(&self) -> u64 {
        self.tail.next
    }

    /// Reads the bytes added since the last call and returns the entries they complete, in order.
    ///
    /// When the recovery mode rejects some damage, the entries before it are returned first and the
    /// error by the next call; after it, nothing more is read.
    pub fn poll(&mut self) -> Result<Vec<Entry>> {
        if self.tail.failure.is_none() {
            self.read_new_bytes()?;
            self.tail.scan(&self.path, false);
        }
        self.tail.take()
    }

    /// Reads to the end of the file once more, treating it as final, and returns the remaining
    /// entries, including a torn tail as damage; or the error for damage the mode rejects.
    pub fn finish(mut self) -> Result<Vec<Entry>> {
        if self.tail.failure.is_none() {
            self.read_new_bytes()?;
            self.tail.finish(&self.path);
        }
        match self.tail.failure.take() {
            Some(error) => Err(error),
            None => Ok(self.tail.ready.drain(..).collect()),
        }
    }

    fn read_new_bytes(&mut self) -> Result<()> {
        let file_len = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "stat", e))?
            .len();
        self.tail.set_len(&self.path, file_len)?;
        if !self.tail.header_checked {
            let mut header = [0u8; FILE_HEADER.len()];
            let have = read_prefix(&self.file, &mut header)
                .map_err(|e| Error::io(&self.path, "read", e))?;
            self.tail
                .check_header(&self.path, header.get(..have).unwrap_or_default())?;
        }
        // The bytes held back are read again too: a writer re-opening the file may have cut them and
        // written others in their place.
        let read_from = self.tail.buffer_start;
        if file_len > read_from && !self.tail.ended {
            self.tail.buffer.clear();
            self.file
                .seek(SeekFrom::Start(read_from))
                .map_err(|e| Error::io(&self.path, "seek", e))?;
            (&mut self.file)
                .take(file_len - read_from)
                .read_to_end(&mut self.tail.buffer)
                .map_err(|e| Error::io(&self.path, "read", e))?;
            // A truncation racing the read can hand back zeros for the pages it is removing; the
            // new length is already visible once the read returns, so bytes past it are dropped
            // (or, past records already returned, reported as `FileShrank`) before any scan.
            let after = self
                .file
                .metadata()
                .map_err(|e| Error::io(&self.path, "stat", e))?
                .len();
            if after < file_len {
                self.tail.set_len(&self.path, after)?;
            }
        }
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes from the start of `file`; returns how many there were.
fn read_prefix(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match file.read_at(buf.get_mut(have..).unwrap_or_default(), have as u64) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

/// The state of a [`Follower`], apart from its file: the bytes read but not yet consumed and the
/// entries ready to return. Kept apart so the fuzz targets can drive it in memory.
#[derive(Debug)]
struct Tail {
    recovery: Recovery,
    /// File bytes from absolute offset `buffer_start` on.
    buffer: Vec<u8>,
    buffer_start: u64,
    /// Where the next scan starts.
    next: u64,
    header_checked: bool,
    /// The file's first bytes as last read, while they are fewer than a header.
    header_found: Vec<u8>,
    /// The longest the file has been seen.
    seen_len: u64,
    /// The file shrank below what was returned, or a scan failed; nothing more is read.
    ended: bool,
    ready: VecDeque<Entry>,
    /// The error that stopped the scans, returned once the entries before it are.
    failure: Option<Error>,
}

impl Tail {
    fn new(offset: u64, recovery: Recovery) -> Self {
        let next = offset.max(FILE_HEADER_LEN);
        Tail {
            recovery,
            buffer: Vec::new(),
            buffer_start: next,
            next,
            header_checked: false,
            header_found: Vec::new(),
            seen_len: 0,
            ended: false,
            ready: VecDeque::new(),
            failure: None,
        }
    }

    /// The entries ready, or else the error that stopped the scans.
    fn take(&mut self) -> Result<Vec<Entry>> {
        if self.ready.is_empty()
            && let Some(error) = self.failure.take()
        {
            return Err(error);
        }
        Ok(self.ready.drain(..).collect())
    }

    /// Checks the file's first bytes (`have`, up to 7) against the header.
    fn check_header(&mut self, path: &Path, have: &[u8]) -> Result<()> {
        if FILE_HEADER.get(..have.len()) != Some(have) {
            return Err(Error::BadHeader {
                path: path.to_path_buf(),
                found: have.to_vec(),
            });
        }
        self.header_checked = have.len() == FILE_HEADER.len();
        self.header_found = have.to_vec();
        Ok(())
    }

    /// Takes note of the file's length now: if it shrank below the bytes read, drops what it lost.
    fn set_len(&mut self, path: &Path, len: u64) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        let seen = self.seen_len;
        self.seen_len = seen.max(len);
        if len >= seen || len >= self.next || seen < self.next {
            // Nothing returned was lost; drop the bytes held back past the new end, if any.
            let keep = usize::try_from(len.saturating_sub(self.buffer_start)).unwrap_or(usize::MAX);
            self.buffer.truncate(keep);
            return Ok(());
        }
        // Records already returned are gone.
        self.ended = true;
        self.buffer.clear();
        self.buffer_start = self.next;
        let damage = Damage {
            offset: len,
            length: seen - len,
            reason: DamageReason::FileShrank {
                from: seen,
                to: len,
            },
        };
        if self.recovery == Recovery::Strict {
            self.failure = Some(corrupt(path, damage));
        } else {
            self.ready.push_back(Entry::Damage(damage));
        }
        Ok(())
    }

    /// Scans what is left, treating the end of the bytes read as the end of the file.
    fn finish(&mut self, path: &Path) {
        if !self.header_checked && !self.ended {
            self.ended = true;
            self.failure = Some(Error::BadHeader {
                path: path.to_path_buf(),
                found: std::mem::take(&mut self.header_found),
            });
            return;
        }
        self.scan(path, true);
    }

    /// Scans the bytes read from where the last scan stopped, queueing the entries found; damage
    /// the mode rejects is kept in `failure` and ends the scans.
    fn scan(&mut self, path: &Path, is_final: bool) {
        if !self.header_checked || self.ended {
            return;
        }
        let mut scanner = Scanner::new(&self.buffer, self.buffer_start, self.next, self.recovery);
        if !is_final {
            scanner = scanner.growing();
        }
        let mut failure = None;
        for item in scanner.by_ref() {
            match item {
                Ok(item) => match decode_item(path, item, self.recovery) {
                    Ok(entry) => self.ready.push_back(entry),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                },
                Err(damage) => {
                    failure = Some(corrupt(path, damage));
                    break;
                }
            }
        }
        let resume = scanner.resume_offset();
        if let Some(error) = failure {
            self.ended = true;
            self.failure = Some(error);
            return;
        }
        // Keep only the bytes from the resume point on.
        let consumed = usize::try_from(resume.saturating_sub(self.buffer_start))
            .unwrap_or(usize::MAX)
            .min(self.buffer.len());
        self.buffer.drain(..consumed);
        self.buffer_start += consumed as u64;
        self.next = resume;
    }
}

/// What a [`Follower`] returns when the file grows by pieces: the file is `file[..cut]` at each pause
/// in turn (`cuts` must not decrease), and at a pause with `reopen` set the follower is replaced by
/// one opened at its [`Follower::offset`]. After the pauses the whole file is read and finished.
/// Returns the entries and the error that stopped them, if any.
#[cfg(feature = "fuzzing")]
pub(crate) fn follow_in_memory(
    file: &[u8],
    cuts: &[(usize, bool)],
    recovery: Recovery,
) -> (Vec<Entry>, Option<Error>) {
    let path = Path::new("follow.wandb");
    // What `Follower::read_new_bytes` does when the file holds `len` bytes.
    let grow = |tail: &mut Tail, len: usize| -> Result<()> {
        tail.set_len(path, len as u64)?;
        if !tail.header_checked {
            tail.check_header(
                path,
                file.get(..len.min(FILE_HEADER.len())).unwrap_or_default(),
            )?;
        }
        let from = usize::try_from(tail.buffer_start).unwrap_or(usize::MAX);
        if len > from && !tail.ended {
            tail.buffer.clear();
            tail.buffer
                .extend_from_slice(file.get(from..len).unwrap_or_default());
        }
        Ok(())
    };
    let mut tail = Tail::new(FILE_HEADER_LEN, recovery);
    let mut entries = Vec::new();
    let mut cuts = cuts.to_vec();
    cuts.push((file.len(), false));
    let last = cuts.len() - 1;
    for (idx, &(cut, reopen)) in cuts.iter().enumerate() {
        if reopen {
            tail = Tail::new(tail.next, recovery);
        }
        if tail.failure.is_none() {
            if let Err(error) = grow(&mut tail, cut.min(file.len())) {
                return (entries, Some(error));
            }
            if idx == last {
                tail.finish(path);
            } else {
                tail.scan(path, false);
            }
        }
        entries.extend(tail.ready.drain(..));
        if let Some(error) = tail.failure.take() {
            return (entries, Some(error));
        }
    }
    (entries, None)
}
