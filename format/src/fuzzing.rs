//! Fuzz target bodies, shared by the cargo-fuzz shims in `fuzz/` and by the regression test that
//! replays committed crashing inputs on stable Rust (`format/tests/fuzz_regressions.rs`).
//!
//! Each body panics when a property fails; a panic is what the fuzzer reports.

use std::collections::BTreeMap;

use crate::framing::{FILE_HEADER, FILE_HEADER_LEN};
use crate::scan::{Recovery, ScanItem, Scanner};
use crate::writer::Framer;

mod wire;

pub use wire::wire_parity;

/// Reads arbitrary bytes as a `.wandb` file (as given, and behind a valid header) in every recovery
/// mode, checking the scanner's invariants: items in increasing, non-overlapping order inside the
/// input; a scan resumed after a growing-file pause equals one whole scan; decoding never panics.
pub fn read_arbitrary_bytes(data: &[u8]) {
    let mut with_header = FILE_HEADER.to_vec();
    with_header.extend_from_slice(data);
    for bytes in [data, &with_header[..]] {
        for recovery in [
            Recovery::Strict,
            Recovery::TolerateTornTail,
            Recovery::SkipCorrupt,
        ] {
            let items = check_scan(bytes, recovery);
            for item in &items {
                if let ScanItem::Record(record) = item {
                    check_views(&record.payload);
                }
            }
        }
        check_resumed_scan(bytes);
    }
}

/// Decodes a payload with prost and with the zero-copy views: they agree in both directions (see
/// [`wire_parity`]).
fn check_views(payload: &[u8]) {
    wire::check_record(payload);
}

/// Scans and checks ordering and bounds; returns the items.
fn check_scan(bytes: &[u8], recovery: Recovery) -> Vec<ScanItem<'_>> {
    let mut items = Vec::new();
    let mut position = FILE_HEADER_LEN;
    for item in Scanner::new(bytes, 0, FILE_HEADER_LEN, recovery) {
        let item = match item {
            Ok(item) => item,
            Err(damage) => {
                assert!(
                    recovery != Recovery::SkipCorrupt,
                    "skip mode must not fail: {damage}"
                );
                assert!(damage.offset >= position && damage.end() <= bytes.len() as u64);
                break;
            }
        };
        let (offset, end) = match &item {
            ScanItem::Record(r) => {
                assert!(
                    r.payload.len() as u64 <= r.length,
                    "payload longer than its span"
                );
                (r.offset, r.offset + r.length)
            }
            ScanItem::Damage(d) => {
                assert!(
                    d.length > 0 || d.offset < bytes.len() as u64,
                    "empty damage at the end"
                );
                (d.offset, d.end())
            }
        };
        assert!(
            offset >= position,
            "item at {offset} overlaps the previous one ending at {position}"
        );
        assert!(
            end <= bytes.len() as u64,
            "item ends at {end}, past the input"
        );
        position = end;
        items.push(item);
    }
    items
}

/// A scan paused at every possible end of a growing file and resumed where the scanner said gives the
/// same items as one scan of the whole file.
fn check_resumed_scan(bytes: &[u8]) {
    let whole: Vec<ScanItem<'_>> = Scanner::new(bytes, 0, FILE_HEADER_LEN, Recovery::SkipCorrupt)
        .filter_map(Result::ok)
        .collect();
    // Pausing at every length is quadratic; a few cut points are enough for the fuzzer to explore.
    let n_cuts = 8usize;
    for cut_idx in 1..n_cuts {
        let cut = bytes.len() * cut_idx / n_cuts;
        let mut first =
            Scanner::new(&bytes[..cut], 0, FILE_HEADER_LEN, Recovery::SkipCorrupt).growing();
        let mut items: Vec<ScanItem<'_>> = first.by_ref().filter_map(Result::ok).collect();
        let resume = first.resume_offset();
        assert!(
            resume <= cut.max(FILE_HEADER_LEN as usize) as u64,
            "resume point past the data"
        );
        items.extend(Scanner::new(bytes, 0, resume, Recovery::SkipCorrupt).filter_map(Result::ok));
        assert_eq!(
            items, whole,
            "scan paused at {cut} and resumed at {resume} differs"
        );
    }
}

/// The Follower's promise: a file that grows by pieces, read by a follower paused at arbitrary
/// offsets (and sometimes re-opened at its saved offset), yields exactly what one scan of the whole
/// file yields, in every recovery mode: the same entries in the same order, and the same error (at
/// the same offset, for the same reason) if the mode rejects some damage.
///
/// Input: a flags byte (recovery mode; whether to put a valid header in front), a pause count, two
/// bytes per pause (offset, and its top bit for re-opening there), then the file's bytes.
pub fn follow_pauses(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let recovery = match flags % 3 {
        0 => Recovery::Strict,
        1 => Recovery::TolerateTornTail,
        _ => Recovery::SkipCorrupt,
    };
    let n_pauses = usize::from(input.byte() % 16);
    let raw_pauses: Vec<u16> = (0..n_pauses).map(|_| input.u16()).collect();
    let mut file = if flags & 0x80 == 0 {
        FILE_HEADER.to_vec()
    } else {
        Vec::new()
    };
    file.extend_from_slice(input.0);
    let mut pauses: Vec<(usize, bool)> = raw_pauses
        .iter()
        .map(|&raw| {
            (
                usize::from(raw & 0x7fff) % (file.len() + 1),
                raw & 0x8000 != 0,
            )
        })
        .collect();
    pauses.sort_unstable();

    let whole = match crate::reader::LogFile::from_bytes("whole.wandb", file.clone()) {
        Ok(log) => outcome(log.records(recovery)),
        Err(error) => vec![failed(&error)],
    };
    let (entries, error) = crate::reader::follow_in_memory(&file, &pauses, recovery);
    let mut followed: Vec<Outcome> = entries.into_iter().map(Outcome::Entry).collect();
    followed.extend(error.as_ref().map(failed));
    assert_eq!(
        followed, whole,
        "follower paused at {pauses:?} ({recovery:?}) differs from one scan"
    );
}

/// One thing a reader returned: an entry, or the error that ended it (for damage, its offset and
/// reason: its length may differ, as a follower may stop looking for the next record earlier).
#[derive(Debug, PartialEq)]
enum Outcome {
    Entry(crate::reader::Entry),
    Failed(Option<(u64, crate::error::DamageReason)>),
}

fn failed(error: &crate::error::Error) -> Outcome {
    match error {
        crate::error::Error::Corrupt { damage, .. } => {
            Outcome::Failed(Some((damage.offset, damage.reason.clone())))
        }
        _ => Outcome::Failed(None),
    }
}

fn outcome(
    items: impl Iterator<Item = crate::error::Result<crate::reader::Entry>>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Ok(entry) => out.push(Outcome::Entry(entry)),
            Err(error) => {
                out.push(failed(&error));
                break;
            }
        }
    }
    out
}

/// Structure-aware: the input describes records (sizes and seeds; their bytes come from a generator,
/// so they never contain accidental chunk headers) and mutations (bit flips, zeroed ranges, a
/// truncation, appended garbage). The file is framed, mutated and read with `SkipCorrupt`: every
/// record read is an original record at its original offset, and every record whose bytes the
/// mutations did not touch is read.
pub fn write_read_roundtrip(data: &[u8]) {
    let mut input = Input(data);
    let n_records = usize::from(input.byte() % 64);
    let mut file = FILE_HEADER.to_vec();
    let mut framer = Framer::new();
    let mut originals = BTreeMap::new();
    for idx in 0..n_records {
        let size = match input.byte() % 4 {
            0 => usize::from(input.byte()),
            1 => usize::from(input.u16()),
            2 => 32_768 - 14 + usize::from(input.byte() % 16),
            _ => usize::from(input.u16()) * 2,
        };
        let payload = generated(idx as u64 ^ u64::from(input.byte()) << 8, size);
        let offset = framer.frame(&payload, &mut file);
        originals.insert(offset, (framer.offset(), payload));
    }
    // Mutations: (start, end) of every byte range changed.
    let mut touched: Vec<(u64, u64)> = Vec::new();
    let n_mutations = input.byte() % 8;
    for _ in 0..n_mutations {
        if file.len() <= FILE_HEADER.len() {
            break;
        }
        let span = file.len() - FILE_HEADER.len();
        let at = FILE_HEADER.len() + input.u32() as usize % span;
        match input.byte() % 4 {
            0 => {
                let bit = input.byte() % 8;
                if let Some(byte) = file.get_mut(at) {
                    *byte ^= 1 << bit;
                }
                touched.push((at as u64, at as u64 + 1));
            }
            1 => {
                let end = (at + usize::from(input.u16())).min(file.len());
                if let Some(range) = file.get_mut(at..end) {
                    if range.iter().any(|&b| b != 0) {
                        touched.push((at as u64, end as u64));
                    }
                    range.fill(0);
                }
            }
            2 => {
                file.truncate(at);
                touched.push((at as u64, u64::MAX));
            }
            _ => {
                let len = usize::from(input.byte());
                let start = file.len() as u64;
                file.extend(generated(u64::from(input.byte()), len));
                touched.push((start, u64::MAX));
            }
        }
    }
    let mut found = BTreeMap::new();
    for item in Scanner::new(&file, 0, FILE_HEADER_LEN, Recovery::SkipCorrupt) {
        match item {
            Ok(ScanItem::Record(record)) => {
                let Some((end, payload)) = originals.get(&record.offset) else {
                    panic!("invented a record at offset {}", record.offset);
                };
                assert_eq!(
                    record.offset + record.length,
                    *end,
                    "record at {} has the wrong span",
                    record.offset
                );
                assert_eq!(
                    record.payload.as_ref(),
                    &payload[..],
                    "record at {} has other bytes",
                    record.offset
                );
                found.insert(record.offset, ());
            }
            Ok(ScanItem::Damage(_)) => {}
            Err(damage) => panic!("skip mode failed: {damage}"),
        }
    }
    for (offset, (end, _)) in &originals {
        let untouched = touched
            .iter()
            .all(|&(start, stop)| stop <= *offset || start >= *end);
        if untouched {
            assert!(
                found.contains_key(offset),
                "lost the untouched record at {offset}..{end}"
            );
        }
    }
}

/// Parses arbitrary bytes as extended JSON and checks the round trip (see [`crate::json`]).
pub fn json_parse(data: &[u8]) {
    crate::json::roundtrip_check(data);
}

/// Reads fuzz input as a stream of numbers, yielding zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// Deterministic pseudo-random bytes (xorshift).
fn generated(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}
