//! The chunk scanner: turns the bytes of a `.wandb` file into raw record payloads and damaged spans.
//!
//! This is the one place that interprets framing on the read side. It works on a byte slice (a memory
//! map, or a buffer of a file still being written) and never panics, whatever the bytes: every index is
//! checked, every length is bounded by the block structure, and a record being assembled from
//! FIRST/MIDDLE/LAST chunks only holds bytes that exist in the slice, so memory stays within the size
//! of the input.
//!
//! Damage is coalesced: consecutive problems with no record between them are reported as one span,
//! starting at the first bad byte (or at the start of the record they broke) and ending where the next
//! good record starts (or at the end of the data).

use std::borrow::Cow;

use crate::error::{Damage, DamageReason};
use crate::framing::{CHUNK_HEADER_LEN, ChunkType, block_remaining, chunk_checksum};

/// Checksum work allowed for resynchronising after damage: this many bytes plus eight times the input.
const RESYNC_BUDGET_BASE: usize = 64 << 20;

/// What a reader does when it meets damage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// Any damage, even a torn tail, stops the scan with an error.
    Strict,
    /// Damage after which the file holds no further valid record (a write cut short by a crash, or
    /// garbage at the end) is reported as damage and ends the scan normally; damage followed by valid
    /// records stops the scan with an error. This is the default.
    #[default]
    TolerateTornTail,
    /// Every damaged span is reported and skipped; scanning resumes at the next block boundary and
    /// continues to the end of the file.
    SkipCorrupt,
}

/// One record's bytes as found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Absolute file offset of the record's first chunk header.
    pub offset: u64,
    /// Bytes the record occupies on disk, from its first chunk header to the end of its last chunk.
    pub length: u64,
    /// The record payload (a protobuf `Record`); borrowed for single-chunk records.
    pub payload: Cow<'a, [u8]>,
}

impl RawRecord<'_> {
    /// A copy that owns its payload.
    pub fn into_owned(self) -> RawRecord<'static> {
        RawRecord {
            offset: self.offset,
            length: self.length,
            payload: Cow::Owned(self.payload.into_owned()),
        }
    }
}

/// What the scanner yields: a record or a damaged span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanItem<'a> {
    /// A record whose chunks were all intact.
    Record(RawRecord<'a>),
    /// A span that was skipped.
    Damage(Damage),
}

/// Scans framed records out of a byte slice.
///
/// As an iterator it yields `Ok(item)` for each record and each damaged span (as allowed by the
/// [`Recovery`] mode), and at most one `Err(damage)` when the mode does not tolerate some damage, after
/// which it yields nothing more.
#[derive(Debug)]
pub struct Scanner<'a> {
    data: &'a [u8],
    /// Absolute file offset of `data[0]`; block alignment is computed from absolute offsets.
    base: u64,
    pos: usize,
    recovery: Recovery,
    /// Whether the end of `data` is the end of the file for good. When it is not (a file still being
    /// written), an incomplete tail is held back rather than reported, see [`Scanner::resume_offset`].
    eof_is_final: bool,
    pending: Option<Damage>,
    /// Offset and payload so far of a record that began with a FIRST chunk.
    assembling: Option<(u64, Vec<u8>)>,
    queued: Option<RawRecord<'a>>,
    stopped: bool,
    /// Payload bytes [`Scanner::resync`] may still checksum while looking for the next record.
    resync_budget: usize,
}

enum Step<'a> {
    Continue,
    Record(RawRecord<'a>),
    Damage(Damage),
    DamageThenRecord(Damage, RawRecord<'a>),
    Eof,
}

impl<'a> Scanner<'a> {
    /// A scanner over `data`, the bytes of a file from absolute offset `base` on, starting at absolute
    /// offset `start` (which must be the start of a chunk, e.g. 7 just after the file header).
    ///
    /// A `start` past the end of `data` gives an empty scan that resumes at `start`.
    pub fn new(data: &'a [u8], base: u64, start: u64, recovery: Recovery) -> Self {
        // A start before the data is clamped to its beginning; a start past its end is kept, so that
        // `resume_offset` never moves backwards.
        let pos = usize::try_from(start.saturating_sub(base)).unwrap_or(usize::MAX);
        Scanner {
            data,
            base,
            pos,
            recovery,
            eof_is_final: true,
            pending: None,
            assembling: None,
            queued: None,
            stopped: false,
            resync_budget: RESYNC_BUDGET_BASE.saturating_add(data.len().saturating_mul(8)),
        }
    }

    /// Treats the end of the data as a point the file may still grow past: an incomplete record or
    /// damaged span that reaches the end is not reported; [`Scanner::resume_offset`] tells where to
    /// start again once more bytes are there.
    pub fn growing(mut self) -> Self {
        self.eof_is_final = false;
        self
    }

    /// The absolute offset from which a new scan reproduces everything this one has not yielded yet:
    /// the start of held-back damage or of a record still being assembled, else the current position.
    pub fn resume_offset(&self) -> u64 {
        let mut offset = self.abs(self.pos);
        if let Some((start, _)) = &self.assembling {
            offset = offset.min(*start);
        }
        if let Some(damage) = &self.pending {
            offset = offset.min(damage.offset);
        }
        if let Some(record) = &self.queued {
            offset = offset.min(record.offset);
        }
        offset
    }

    fn abs(&self, pos: usize) -> u64 {
        self.base.saturating_add(pos as u64)
    }

    /// Builds the damage for `[start, end)`, widened to the start of a record being assembled, which the
    /// damage destroys.
    fn damage(&mut self, start: usize, end: usize, reason: DamageReason) -> Step<'a> {
        let mut offset = self.abs(start);
        if let Some((record_start, _)) = self.assembling.take() {
            offset = offset.min(record_start);
        }
        Step::Damage(Damage {
            offset,
            length: self.abs(end).saturating_sub(offset),
            reason,
        })
    }

    /// Reads one chunk (or padding, or a zeroed span) at the current position.
    fn step(&mut self) -> Step<'a> {
        let len = self.data.len();
        let pos = self.pos;
        if pos >= len {
            return Step::Eof;
        }
        let block_left = usize::try_from(block_remaining(self.abs(pos))).unwrap_or(usize::MAX);
        // Where the block ends in the file, which may lie past the end of the data.
        let block_end = pos.saturating_add(block_left);
        if (block_left as u64) < CHUNK_HEADER_LEN {
            // Padding up to the end of the block (or of the data).
            let block_end = block_end.min(len);
            self.pos = block_end;
            let padding = self.data.get(pos..block_end).unwrap_or_default();
            if padding.iter().any(|&b| b != 0) {
                return self.damage(pos, block_end, DamageReason::NonZeroPadding);
            }
            return Step::Continue;
        }
        let Some(header) = self.data.get(pos..pos + CHUNK_HEADER_LEN as usize) else {
            return self.past_end(pos, block_end);
        };
        let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let length = u16::from_le_bytes([header[4], header[5]]);
        let chunk_type = header[6];

        if stored == 0 && length == 0 && chunk_type == 0 {
            return self.zeroed(pos, block_end);
        }
        let Some(kind) = ChunkType::from_byte(chunk_type) else {
            return self.bad_chunk(pos, block_end, DamageReason::BadChunkType { chunk_type });
        };
        let chunk_end = pos + CHUNK_HEADER_LEN as usize + usize::from(length);
        if chunk_end - pos > block_left {
            return self.bad_chunk(pos, block_end, DamageReason::ChunkTooLong { length });
        }
        let Some(payload) = self.data.get(pos + CHUNK_HEADER_LEN as usize..chunk_end) else {
            return self.past_end(pos, block_end);
        };
        let computed = chunk_checksum(chunk_type, payload);
        if computed != stored {
            let reason = DamageReason::ChecksumMismatch { stored, computed };
            return self.bad_chunk(pos, block_end, reason);
        }
        self.pos = chunk_end;
        let offset = self.abs(pos);
        let end_offset = self.abs(chunk_end);
        match kind {
            ChunkType::Full => {
                let record = RawRecord {
                    offset,
                    length: end_offset - offset,
                    payload: Cow::Borrowed(payload),
                };
                match self.interrupted(offset) {
                    Some(damage) => Step::DamageThenRecord(damage, record),
                    None => Step::Record(record),
                }
            }
            ChunkType::First => {
                let damage = self.interrupted(offset);
                self.assembling = Some((offset, payload.to_vec()));
                damage.map_or(Step::Continue, Step::Damage)
            }
            ChunkType::Middle | ChunkType::Last => match self.assembling.take() {
                Some((start, mut bytes)) => {
                    bytes.extend_from_slice(payload);
                    if kind == ChunkType::Middle {
                        self.assembling = Some((start, bytes));
                        Step::Continue
                    } else {
                        Step::Record(RawRecord {
                            offset: start,
                            length: end_offset - start,
                            payload: Cow::Owned(bytes),
                        })
                    }
                }
                None => self.damage(pos, chunk_end, DamageReason::OrphanChunk { chunk_type }),
            },
        }
    }

    /// A chunk at `pos` that runs past the end of the data. In a growing file the writer may still be
    /// writing it, so the scan pauses there; otherwise it is damage.
    fn past_end(&mut self, pos: usize, block_end: usize) -> Step<'a> {
        if !self.eof_is_final {
            return Step::Eof;
        }
        self.bad_chunk(pos, block_end, DamageReason::TruncatedChunk)
    }

    /// Damage for an unreadable chunk at `pos`: the span up to the next position in the block where an
    /// intact chunk starts (so records after it in the same block survive), else to the block's end.
    fn bad_chunk(&mut self, pos: usize, block_end: usize, reason: DamageReason) -> Step<'a> {
        let resume = self.resync(pos + 1, block_end);
        self.pos = resume;
        self.damage(pos, resume, reason)
    }

    /// A zeroed chunk header at `pos`: the start of a run of zero bytes, as left by preallocation or by
    /// a file system after a crash. The run is damage (records may have been there); it ends where the
    /// next intact chunk starts.
    fn zeroed(&mut self, pos: usize, block_end: usize) -> Step<'a> {
        let rest = self
            .data
            .get(pos..block_end.min(self.data.len()))
            .unwrap_or_default();
        let zero_end = pos + rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
        // A chunk starting more than 6 bytes before the first non-zero byte would have a zero header.
        let search_from = (pos + 1).max(zero_end.saturating_sub(CHUNK_HEADER_LEN as usize - 1));
        let resume = self.resync(search_from, block_end);
        self.pos = resume;
        self.damage(pos, resume, DamageReason::ZeroedSpan)
    }

    /// Finds the first position in `[from, block_end)` where an intact record can start, or the end
    /// of the block (or of the data, if that comes first). `block_end` is where the block ends in the
    /// file, even if the data stops before it.
    ///
    /// Writers put MIDDLE and LAST chunks only at block starts and make every FIRST chunk fill its
    /// block, so inside a block only a FULL chunk, or a FIRST chunk ending exactly at the block end,
    /// can begin a record. Each candidate costs a checksum over its payload; that work is drawn from a
    /// budget proportional to the input, past which the rest of the block is given up, so hostile input
    /// keeps the scan linear in time.
    ///
    /// In a growing file, a candidate whose header or payload is not all there yet is undecided: the
    /// search stops at it, so that the scan pauses there and a resumed scan decides it with the bytes
    /// a whole scan would see (a record found further on could lie inside it).
    fn resync(&mut self, from: usize, block_end: usize) -> usize {
        let header_len = CHUNK_HEADER_LEN as usize;
        let len = self.data.len();
        let mut candidate = from;
        while candidate + header_len <= block_end {
            let Some(header) = self.data.get(candidate..candidate + header_len) else {
                if !self.eof_is_final {
                    return candidate;
                }
                break;
            };
            let chunk_type = header[6];
            let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let chunk_end = candidate + header_len + length;
            let plausible = (chunk_type == ChunkType::Full as u8 && chunk_end <= block_end)
                || (chunk_type == ChunkType::First as u8 && chunk_end == block_end);
            if plausible && chunk_end > len {
                if !self.eof_is_final {
                    return candidate;
                }
                // Cut off by the end of the file: not a record.
                candidate += 1;
                continue;
            }
            if plausible {
                if self.resync_budget < length {
                    break;
                }
                self.resync_budget -= length;
                let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                let payload = self
                    .data
                    .get(candidate + header_len..chunk_end)
                    .unwrap_or_default();
                if chunk_checksum(chunk_type, payload) == stored {
                    return candidate;
                }
            }
            candidate += 1;
        }
        block_end.min(len)
    }

    /// Damage for a record left open when a FULL or FIRST chunk starts at `offset`.
    fn interrupted(&mut self, offset: u64) -> Option<Damage> {
        let (start, _) = self.assembling.take()?;
        Some(Damage {
            offset: start,
            length: offset - start,
            reason: DamageReason::InterruptedRecord,
        })
    }

    /// Merges `damage` into the pending span (nothing valid lies between them).
    fn add_pending(&mut self, damage: Damage) {
        self.pending = Some(match self.pending.take() {
            Some(mut pending) => {
                let end = pending.end().max(damage.end());
                pending.offset = pending.offset.min(damage.offset);
                pending.length = end - pending.offset;
                pending
            }
            None => damage,
        });
    }

    /// Handles damage found by a step. Returns an item to yield now, if any.
    fn on_damage(&mut self, damage: Damage) -> Option<Result<ScanItem<'a>, Damage>> {
        if self.recovery == Recovery::Strict {
            self.stopped = true;
            return Some(Err(damage));
        }
        self.add_pending(damage);
        None
    }

    fn on_record(&mut self, record: RawRecord<'a>) -> Result<ScanItem<'a>, Damage> {
        match self.pending.take() {
            None => Ok(ScanItem::Record(record)),
            Some(damage) if self.recovery == Recovery::SkipCorrupt => {
                self.queued = Some(record);
                Ok(ScanItem::Damage(damage))
            }
            Some(damage) => {
                // Valid data after damage: the damage is not a torn tail.
                self.stopped = true;
                Err(damage)
            }
        }
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Result<ScanItem<'a>, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(record) = self.queued.take() {
            return Some(Ok(ScanItem::Record(record)));
        }
        if self.stopped {
            return None;
        }
        loop {
            match self.step() {
                Step::Continue => {}
                Step::Record(record) => return Some(self.on_record(record)),
                Step::Damage(damage) => {
                    if let Some(item) = self.on_damage(damage) {
                        return Some(item);
                    }
                }
                Step::DamageThenRecord(damage, record) => {
                    if let Some(item) = self.on_damage(damage) {
                        return Some(item);
                    }
                    return Some(self.on_record(record));
                }
                Step::Eof => {
                    if !self.eof_is_final {
                        return None;
                    }
                    if let Some((start, _)) = &self.assembling {
                        let damage = Damage {
                            offset: *start,
                            length: self.abs(self.data.len()) - start,
                            reason: DamageReason::UnfinishedRecord,
                        };
                        self.assembling = None;
                        if let Some(item) = self.on_damage(damage) {
                            return Some(item);
                        }
                    }
                    self.stopped = true;
                    return self
                        .pending
                        .take()
                        .map(|damage| Ok(ScanItem::Damage(damage)));
                }
            }
        }
    }
}
