//! The reading side for files: [`LogFile`] memory-maps a complete `.wandb` file and iterates its
//! records, decoded or raw; [`Follower`] reads a file that is still being written, picking up new
//! records as it grows.
//!
//! Both check the 7-byte file header first; a file that does not start with it is not a `.wandb` log
//! and is an error, not damage.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Damage, DamageReason, Error, Result};
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

/// A complete `.wandb` file, memory-mapped (or held in memory) for reading.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    bytes: Mapping,
}

impl LogFile {
    /// Opens and memory-maps `path` and checks its header.
    ///
    /// The file must be complete: if another process truncates it while it is mapped, reading the lost
    /// pages raises SIGBUS. Use [`Follower`] for a file that is still being written.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, "open", e))?;
        let bytes = Mapping::map(&file).map_err(|e| Error::io(&path, "mmap", e))?;
        Self::checked(path, bytes)
    }

    /// Wraps bytes already in memory; `path` is only used in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::checked(path.into(), Mapping::Owned(bytes))
    }

    fn checked(path: PathBuf, bytes: Mapping) -> Result<Self> {
        if !bytes.as_slice().starts_with(&FILE_HEADER) {
            let found = bytes.as_slice().iter().take(7).copied().collect();
            return Err(Error::BadHeader { path, found });
        }
        Ok(LogFile { path, bytes })
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
    pub fn scan(&self, recovery: Recovery) -> RawRecords<'_> {
        self.scan_from(FILE_HEADER_LEN, recovery)
    }

    /// Like [`LogFile::scan`], starting at absolute offset `offset`, which must be a record offset
    /// (one returned by the writer or by an earlier scan).
    pub fn scan_from(&self, offset: u64, recovery: Recovery) -> RawRecords<'_> {
        RawRecords {
            path: &self.path,
            scanner: Scanner::new(self.bytes(), 0, offset.max(FILE_HEADER_LEN), recovery),
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

/// Iterator over raw records and damage of a [`LogFile`]; see [`Scanner`].
#[derive(Debug)]
pub struct RawRecords<'a> {
    path: &'a Path,
    scanner: Scanner<'a>,
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<ScanItem<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.scanner
                .next()?
                .map_err(|damage| corrupt(self.path, damage)),
        )
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
            Ok(item) => decode_item(self.raw.path, item, self.recovery),
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
/// bytes arrive, because the writer may simply not have finished it; [`Follower::finish`] reports such a
/// tail once the caller knows the writer is gone. Memory holds only the bytes from the first
/// unfinished record on, never more than the file.
#[derive(Debug)]
pub struct Follower {
    file: File,
    path: PathBuf,
    recovery: Recovery,
    /// File bytes from absolute offset `buffer_start` on.
    buffer: Vec<u8>,
    buffer_start: u64,
    /// Where the next scan starts.
    next: u64,
    header_checked: bool,
    ready: VecDeque<Entry>,
}

impl Follower {
    /// Opens `path` for following from its first record.
    pub fn open(path: impl AsRef<Path>, recovery: Recovery) -> Result<Self> {
        Self::open_at(path, FILE_HEADER_LEN, recovery)
    }

    /// Opens `path` for following from record offset `offset` (for example one saved by an earlier
    /// run of the caller).
    pub fn open_at(path: impl AsRef<Path>, offset: u64, recovery: Recovery) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, "open", e))?;
        Ok(Follower {
            file,
            path,
            recovery,
            buffer: Vec::new(),
            buffer_start: 0,
            next: offset.max(FILE_HEADER_LEN),
            header_checked: false,
            ready: VecDeque::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record offset from which reading would continue: everything before it has been returned.
    pub fn offset(&self) -> u64 {
        self.next
    }

    /// Reads the bytes added since the last call and returns the entries they complete, in order.
    pub fn poll(&mut self) -> Result<Vec<Entry>> {
        self.read_new_bytes()?;
        self.scan(false)?;
        Ok(self.ready.drain(..).collect())
    }

    /// Reads to the end of the file once more, treating it as final, and returns the remaining
    /// entries, including a torn tail as damage.
    pub fn finish(mut self) -> Result<Vec<Entry>> {
        self.read_new_bytes()?;
        if !self.header_checked {
            let found = self.buffer.clone();
            return Err(Error::BadHeader {
                path: self.path,
                found,
            });
        }
        self.scan(true)?;
        Ok(self.ready.drain(..).collect())
    }

    fn read_new_bytes(&mut self) -> Result<()> {
        let read_from = self.buffer_start + self.buffer.len() as u64;
        let file_len = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "stat", e))?
            .len();
        if file_len < read_from {
            let source = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("file shrank from {read_from} to {file_len} bytes while being followed"),
            );
            return Err(Error::io(&self.path, "follow", source));
        }
        if file_len > read_from {
            self.file
                .seek(SeekFrom::Start(read_from))
                .map_err(|e| Error::io(&self.path, "seek", e))?;
            (&mut self.file)
                .take(file_len - read_from)
                .read_to_end(&mut self.buffer)
                .map_err(|e| Error::io(&self.path, "read", e))?;
        }
        if !self.header_checked {
            let have = self.buffer.len().min(FILE_HEADER.len());
            if self.buffer.get(..have) != FILE_HEADER.get(..have) {
                let found = self.buffer.iter().take(7).copied().collect();
                return Err(Error::BadHeader {
                    path: self.path.clone(),
                    found,
                });
            }
            self.header_checked = have == FILE_HEADER.len();
        }
        Ok(())
    }

    fn scan(&mut self, is_final: bool) -> Result<()> {
        if !self.header_checked {
            return Ok(());
        }
        let mut scanner = Scanner::new(&self.buffer, self.buffer_start, self.next, self.recovery);
        if !is_final {
            scanner = scanner.growing();
        }
        let mut failure = None;
        for item in scanner.by_ref() {
            match item {
                Ok(item) => match decode_item(&self.path, item, self.recovery) {
                    Ok(entry) => self.ready.push_back(entry),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                },
                Err(damage) => {
                    failure = Some(corrupt(&self.path, damage));
                    break;
                }
            }
        }
        let resume = scanner.resume_offset();
        if let Some(error) = failure {
            return Err(error);
        }
        // Keep only the bytes from the resume point on.
        let consumed = usize::try_from(resume.saturating_sub(self.buffer_start))
            .unwrap_or(usize::MAX)
            .min(self.buffer.len());
        self.buffer.drain(..consumed);
        self.buffer_start += consumed as u64;
        self.next = resume;
        Ok(())
    }
}
