//! Writer and reader agree: records of every size round-trip, W&B's chunking rules hold at block
//! boundaries, appending resumes after a torn tail, and a follower sees a growing file's records.

#![allow(clippy::unwrap_used)]

mod common;

use common::{build_file, build_record_file, multi_block_sizes, payload, scan_all};
use wandb_format::{
    BLOCK_SIZE, ChunkType, Durability, Entry, FILE_HEADER, Follower, Framer, LogFile, Recovery,
    Writer, proto,
};

#[test]
fn every_size_round_trips() {
    let sizes = multi_block_sizes();
    let (bytes, placed) = build_file(&sizes);
    assert!(
        bytes.len() as u64 > 6 * BLOCK_SIZE,
        "the file should span many blocks"
    );
    let outcome = scan_all(&bytes, Recovery::Strict);
    assert!(
        outcome.error.is_none() && outcome.damage.is_empty(),
        "{outcome:?}"
    );
    assert_eq!(outcome.records.len(), placed.len());
    for (got, want) in outcome.records.iter().zip(&placed) {
        assert_eq!((got.0, got.1), (want.offset, want.length));
        assert_eq!(got.2, want.payload);
    }
}

/// Walks chunk headers and returns (offset, type, length) of each, checking zero padding.
fn chunks(bytes: &[u8]) -> Vec<(u64, u8, u16)> {
    let mut out = Vec::new();
    let mut pos = 7usize;
    while pos < bytes.len() {
        let left = BLOCK_SIZE as usize - pos % BLOCK_SIZE as usize;
        if left < 7 {
            assert!(
                bytes[pos..(pos + left).min(bytes.len())]
                    .iter()
                    .all(|&b| b == 0)
            );
            pos += left;
            continue;
        }
        let length = u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]);
        out.push((pos as u64, bytes[pos + 6], length));
        pos += 7 + length as usize;
    }
    out
}

#[test]
fn exactly_seven_bytes_left_gives_an_empty_first_chunk() {
    // Header (7) + FULL chunk (7 + n) leaves exactly 7 bytes in block 0 when n = 32768 - 21.
    let n = BLOCK_SIZE as usize - 21;
    let (bytes, placed) = build_file(&[n, 100]);
    let kinds = chunks(&bytes);
    assert_eq!(kinds[0], (7, ChunkType::Full as u8, n as u16));
    assert_eq!(kinds[1], (BLOCK_SIZE - 7, ChunkType::First as u8, 0));
    assert_eq!(kinds[2], (BLOCK_SIZE, ChunkType::Last as u8, 100));
    assert_eq!(placed[1].offset, BLOCK_SIZE - 7);
}

#[test]
fn fewer_than_seven_bytes_left_are_zero_padded() {
    // Leave 3 bytes: the next record starts at the next block.
    let n = BLOCK_SIZE as usize - 17;
    let (bytes, placed) = build_file(&[n, 5]);
    assert_eq!(placed[1].offset, BLOCK_SIZE);
    assert_eq!(
        &bytes[BLOCK_SIZE as usize - 3..BLOCK_SIZE as usize],
        &[0, 0, 0]
    );
}

#[test]
fn large_records_use_full_block_middle_chunks() {
    let (bytes, _) = build_file(&[100_000]);
    let kinds: Vec<(u8, u16)> = chunks(&bytes).iter().map(|c| (c.1, c.2)).collect();
    let first = BLOCK_SIZE as u16 - 14;
    let middle = BLOCK_SIZE as u16 - 7;
    let last = (100_000 - first as usize - 2 * middle as usize) as u16;
    assert_eq!(kinds, vec![(2, first), (3, middle), (3, middle), (4, last)]);
}

#[test]
fn empty_record_is_an_empty_full_chunk() {
    let (bytes, placed) = build_file(&[0]);
    assert_eq!(bytes.len(), 14);
    assert_eq!(bytes[13], ChunkType::Full as u8);
    assert_eq!(placed[0].length, 7);
    let outcome = scan_all(&bytes, Recovery::Strict);
    assert_eq!(outcome.records.len(), 1);
}

#[test]
fn writer_output_equals_framer_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let sizes = multi_block_sizes();
    let (expected, placed) = build_file(&sizes);
    let mut writer = Writer::create(&path).unwrap();
    for (idx, size) in sizes.iter().enumerate() {
        let offset = writer.append(&payload(idx as u64 + 1, *size)).unwrap();
        assert_eq!(offset, placed[idx].offset);
    }
    writer.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn create_refuses_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    std::fs::write(&path, b"precious").unwrap();
    let err = Writer::create(&path).unwrap_err().to_string();
    assert!(
        err.contains("run-test.wandb") && err.contains("create"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn new_file_is_exactly_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let writer = Writer::create(&path).unwrap();
    assert!(writer.is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), FILE_HEADER);
}

#[test]
fn records_decode_through_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let mut writer = Writer::create(&path).unwrap();
    for num in 1..=1000 {
        let record = proto::Record {
            num,
            ..Default::default()
        };
        writer.append_record(&record).unwrap();
    }
    writer.persist(Durability::Flush).unwrap();
    let file = LogFile::open(&path).unwrap();
    let nums: Vec<i64> = file
        .records(Recovery::Strict)
        .map(|entry| match entry.unwrap() {
            Entry::Record { record, .. } => record.num,
            Entry::Damage(d) => panic!("unexpected damage {d}"),
        })
        .collect();
    assert_eq!(nums, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn open_append_cuts_a_torn_tail_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let sizes = multi_block_sizes();
    let (bytes, placed) = build_file(&sizes);
    // Cut the file in the middle of the last multi-block record's chunks.
    let victim = placed.iter().rposition(|p| p.length > BLOCK_SIZE).unwrap();
    let cut = placed[victim].offset + placed[victim].length / 2;
    std::fs::write(&path, &bytes[..cut as usize]).unwrap();

    let (mut writer, recovery) = Writer::open_append(&path).unwrap();
    assert_eq!(recovery.records, victim as u64);
    assert_eq!(recovery.truncated_bytes, cut - placed[victim - 1].end());
    assert_eq!(writer.len(), placed[victim - 1].end());
    writer.append(b"after the crash").unwrap();
    writer.close().unwrap();

    let file = LogFile::open(&path).unwrap();
    let outcome = scan_all(file.bytes(), Recovery::Strict);
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.records.len(), victim + 1);
    assert_eq!(outcome.records.last().unwrap().2, b"after the crash");
}

#[test]
fn open_append_rewrites_a_torn_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    std::fs::write(&path, &FILE_HEADER[..3]).unwrap();
    let (mut writer, recovery) = Writer::open_append(&path).unwrap();
    assert_eq!(recovery.truncated_bytes, 3);
    writer.append(b"x").unwrap();
    writer.close().unwrap();
    assert_eq!(
        scan_all(&std::fs::read(&path).unwrap(), Recovery::Strict)
            .records
            .len(),
        1
    );
}

#[test]
fn open_append_rejects_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"hello world").unwrap();
    let err = Writer::open_append(&path).unwrap_err().to_string();
    assert!(
        err.contains("not a .wandb file") && err.contains("notes.txt"),
        "{err}"
    );
}

#[test]
fn log_file_rejects_bad_headers() {
    for bytes in [&b""[..], b":W&", b":W&B\xe1\xbe\x01", b"PK\x03\x04zip file"] {
        let err = LogFile::from_bytes("x.wandb", bytes.to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.wandb: not a .wandb file"), "{err}");
    }
}

#[test]
fn follower_sees_records_as_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let (bytes, placed) = build_record_file(&multi_block_sizes());
    std::fs::write(&path, &bytes[..3]).unwrap();
    let mut follower = Follower::open(&path, Recovery::TolerateTornTail).unwrap();
    let mut seen = Vec::new();
    // Grow the file in uneven steps, cutting through headers, chunks and padding.
    let mut written = 3usize;
    let mut step = 1usize;
    while written < bytes.len() {
        let next = (written + step).min(bytes.len());
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&bytes[written..next]).unwrap();
        written = next;
        step = step * 3 % 7919 + 1;
        for entry in follower.poll().unwrap() {
            match entry {
                Entry::Record { offset, .. } => seen.push(offset),
                Entry::Damage(d) => panic!("unexpected damage {d}"),
            }
        }
        // Everything complete so far has been returned, nothing more.
        let complete = placed.iter().filter(|p| p.end() <= written as u64).count();
        assert_eq!(seen.len(), complete, "after {written} bytes");
    }
    assert!(follower.finish().unwrap().is_empty());
    assert_eq!(seen, placed.iter().map(|p| p.offset).collect::<Vec<_>>());
}

#[test]
fn follower_reports_a_torn_tail_only_at_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-test.wandb");
    let (bytes, placed) = build_record_file(&[10, 20, 30]);
    let cut = placed[2].offset as usize + 9;
    std::fs::write(&path, &bytes[..cut]).unwrap();
    let mut follower = Follower::open(&path, Recovery::TolerateTornTail).unwrap();
    assert_eq!(follower.poll().unwrap().len(), 2);
    assert!(follower.poll().unwrap().is_empty());
    assert_eq!(follower.offset(), placed[2].offset);
    let tail = follower.finish().unwrap();
    match &tail[..] {
        [Entry::Damage(d)] => assert_eq!((d.offset, d.end()), (placed[2].offset, cut as u64)),
        other => panic!("expected one damage, got {other:?}"),
    }
}

#[test]
fn framer_can_continue_at_any_offset() {
    // Framing in two halves equals framing at once.
    let (whole, placed) = build_file(&multi_block_sizes());
    let split = placed.len() / 2;
    let mut bytes = whole[..placed[split].offset as usize].to_vec();
    // Drop padding the next record would have added itself.
    bytes.truncate(placed[split - 1].end() as usize);
    let mut framer = Framer::at_offset(placed[split - 1].end());
    for p in &placed[split..] {
        framer.frame(&p.payload, &mut bytes);
    }
    assert_eq!(bytes, whole);
}
