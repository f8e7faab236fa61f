//! The corruption matrix: starting from a valid multi-block file, truncate it at every offset, flip
//! every bit of every chunk header, zero whole blocks, damage payloads and append garbage. Nothing
//! panics, only the damaged records are lost, and every damaged span is reported where it starts.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Placed, build_file, multi_block_sizes, scan_all};
use wandb_format::{BLOCK_SIZE, DamageReason, LogFile, Recovery};

/// A file of about 2.5 blocks with FULL and multi-block records, for the exhaustive truncation test.
fn small_file() -> (Vec<u8>, Vec<Placed>) {
    let mut sizes = vec![0, 10, 300, 32_000, 5, 40_000, 1, 2, 3];
    sizes.extend((0..100).map(|i| 20 + i % 50));
    build_file(&sizes)
}

/// Asserts that the records found are exactly `expected` (offset, length and payload).
fn assert_records(found: &[(u64, u64, Vec<u8>)], expected: &[&Placed], context: &str) {
    let found_offsets: Vec<u64> = found.iter().map(|r| r.0).collect();
    let expected_offsets: Vec<u64> = expected.iter().map(|p| p.offset).collect();
    assert_eq!(found_offsets, expected_offsets, "{context}");
    for (got, want) in found.iter().zip(expected) {
        assert_eq!(got.1, want.length, "{context}");
        assert_eq!(got.2, want.payload, "{context}");
    }
}

#[test]
fn truncation_at_every_offset_keeps_every_complete_record() {
    let (bytes, placed) = small_file();
    for cut in 0..=bytes.len() {
        let truncated = &bytes[..cut];
        if cut < 7 {
            assert!(LogFile::from_bytes("t.wandb", truncated.to_vec()).is_err());
            continue;
        }
        let cut64 = cut as u64;
        let complete: Vec<&Placed> = placed.iter().filter(|p| p.end() <= cut64).collect();
        let torn = placed.iter().find(|p| p.offset < cut64 && cut64 < p.end());
        let context = format!("cut at {cut}");

        for recovery in [Recovery::TolerateTornTail, Recovery::SkipCorrupt] {
            let outcome = scan_all(truncated, recovery);
            assert!(outcome.error.is_none(), "{context}: {outcome:?}");
            assert_records(&outcome.records, &complete, &context);
            match torn {
                Some(record) => {
                    assert_eq!(outcome.damage.len(), 1, "{context}");
                    let damage = &outcome.damage[0];
                    assert_eq!(
                        (damage.offset, damage.end()),
                        (record.offset, cut64),
                        "{context}"
                    );
                }
                None => assert!(outcome.damage.is_empty(), "{context}: {:?}", outcome.damage),
            }
        }
        let strict = scan_all(truncated, Recovery::Strict);
        assert_eq!(strict.error.is_some(), torn.is_some(), "{context}");
        assert_records(&strict.records, &complete, &context);
    }
}

/// The offsets of every chunk header in a file, with the record each belongs to.
fn chunk_headers(bytes: &[u8], placed: &[Placed]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 7usize;
    let block = BLOCK_SIZE as usize;
    while pos < bytes.len() {
        let left = block - pos % block;
        if left < 7 {
            pos += left;
            continue;
        }
        let length = u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]) as usize;
        let owner = placed
            .iter()
            .position(|p| p.offset <= pos as u64 && (pos as u64) < p.end())
            .unwrap();
        out.push((pos, owner));
        pos += 7 + length;
    }
    out
}

/// Checks that exactly record `victim` is lost and reported as one damaged span starting at it.
fn assert_only_victim_lost(bytes: &[u8], placed: &[Placed], victim: usize, context: &str) {
    let outcome = scan_all(bytes, Recovery::SkipCorrupt);
    assert!(outcome.error.is_none(), "{context}");
    let survivors: Vec<&Placed> = placed
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, p)| p)
        .collect();
    assert_records(&outcome.records, &survivors, context);
    assert_eq!(outcome.damage.len(), 1, "{context}: {:?}", outcome.damage);
    let damage = &outcome.damage[0];
    let record = &placed[victim];
    let next_start = placed
        .get(victim + 1)
        .map_or(bytes.len() as u64, |p| p.offset);
    assert_eq!(damage.offset, record.offset, "{context}: {damage}");
    assert!(
        damage.end() >= record.end() && damage.end() <= next_start,
        "{context}: {damage}"
    );

    // The default mode reads everything before the damage, then refuses damage followed by data.
    let tolerant = scan_all(bytes, Recovery::TolerateTornTail);
    assert_records(&tolerant.records, &survivors[..victim], context);
    assert_eq!(
        tolerant.error.is_some(),
        victim + 1 < placed.len(),
        "{context}"
    );
}

#[test]
fn every_bit_of_every_chunk_header_flipped_loses_only_its_record() {
    let (bytes, placed) = build_file(&multi_block_sizes());
    let headers = chunk_headers(&bytes, &placed);
    assert!(headers.len() > 100);
    for &(pos, owner) in &headers {
        for byte in 0..7 {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[pos + byte] ^= 1 << bit;
                let context = format!("chunk at {pos}, byte {byte}, bit {bit}");
                assert_only_victim_lost(&damaged, &placed, owner, &context);
            }
        }
    }
}

#[test]
fn a_flipped_payload_byte_loses_only_its_record() {
    let (bytes, placed) = build_file(&multi_block_sizes());
    for (idx, record) in placed.iter().enumerate() {
        if record.payload.is_empty() {
            continue;
        }
        // Flip a byte in the middle of the payload of the record's first non-empty chunk.
        let headers = chunk_headers(&bytes, &placed);
        let pos = headers
            .iter()
            .filter(|&&(_, owner)| owner == idx)
            .map(|&(h, _)| (h, u16::from_le_bytes([bytes[h + 4], bytes[h + 5]]) as usize))
            .find(|&(_, len)| len > 0)
            .map(|(h, len)| h + 7 + len / 2)
            .unwrap();
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x5A;
        assert_only_victim_lost(&damaged, &placed, idx, &format!("payload byte {pos}"));
    }
}

#[test]
fn zeroed_blocks_lose_only_records_touching_them() {
    let (bytes, placed) = build_file(&multi_block_sizes());
    let block = BLOCK_SIZE as usize;
    let n_blocks = bytes.len().div_ceil(block);
    for idx in 0..n_blocks {
        let start = (idx * block).max(7);
        let end = ((idx + 1) * block).min(bytes.len());
        let mut damaged = bytes.clone();
        damaged[start..end].fill(0);
        let touched = |p: &Placed| p.offset < end as u64 && p.end() > start as u64;
        let survivors: Vec<&Placed> = placed.iter().filter(|p| !touched(p)).collect();
        let lost: Vec<&Placed> = placed.iter().filter(|p| touched(p)).collect();
        let context = format!("block {idx} zeroed");
        let outcome = scan_all(&damaged, Recovery::SkipCorrupt);
        assert_records(&outcome.records, &survivors, &context);
        // One coalesced span covers the lost records and the zeroed bytes.
        assert_eq!(outcome.damage.len(), 1, "{context}: {:?}", outcome.damage);
        let damage = &outcome.damage[0];
        let first_lost = lost
            .first()
            .map_or(start as u64, |p| p.offset.min(start as u64));
        assert_eq!(damage.offset, first_lost, "{context}: {damage}");
        assert!(damage.end() >= end as u64, "{context}: {damage}");
    }
}

#[test]
fn garbage_after_the_last_record_is_a_tolerated_tail() {
    let (bytes, placed) = build_file(&multi_block_sizes());
    let all: Vec<&Placed> = placed.iter().collect();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random", common::payload(99, 5000)),
        ("zeros", vec![0; 40_000]),
        ("huge length", vec![0xAA, 0xBB, 0xCC, 0xDD, 0xFF, 0xFF, 1]),
        ("one byte", vec![7]),
        ("valid-looking first chunk", {
            // A correct FIRST chunk header and payload, then the file ends: an unfinished record.
            let mut framed = Vec::new();
            let mut framer = wandb_format::Framer::at_offset(bytes.len() as u64);
            framer.frame(&common::payload(5, 80_000), &mut framed);
            framed.truncate(framed.len() - 100);
            framed
        }),
    ];
    for (name, tail) in garbage {
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(&tail);
        for recovery in [Recovery::TolerateTornTail, Recovery::SkipCorrupt] {
            let outcome = scan_all(&damaged, recovery);
            assert!(outcome.error.is_none(), "{name}");
            assert_records(&outcome.records, &all, name);
            assert_eq!(outcome.damage.len(), 1, "{name}: {:?}", outcome.damage);
            let damage = &outcome.damage[0];
            let end_of_records = placed.last().unwrap().end();
            assert!(damage.offset >= end_of_records, "{name}: {damage}");
            assert_eq!(damage.end(), damaged.len() as u64, "{name}: {damage}");
        }
        assert!(
            scan_all(&damaged, Recovery::Strict).error.is_some(),
            "{name}"
        );
    }
}

#[test]
fn a_record_cut_inside_a_middle_chunk_is_reported_unfinished() {
    let (bytes, placed) = build_file(&[100, 100_000]);
    // The second record's MIDDLE chunk fills block 1; cut in the middle of it.
    let cut = BLOCK_SIZE as usize + 1000;
    let outcome = scan_all(&bytes[..cut], Recovery::TolerateTornTail);
    assert_eq!(outcome.records.len(), 1);
    let damage = &outcome.damage[0];
    assert_eq!(
        (damage.offset, damage.end()),
        (placed[1].offset, cut as u64)
    );
    assert_eq!(damage.reason, DamageReason::TruncatedChunk);
}

#[test]
fn a_middle_chunk_lost_in_the_middle_of_the_file_is_reported_and_reading_goes_on() {
    let (bytes, placed) = build_file(&[100, 100_000, 50, 60]);
    // Remove block 1 (a MIDDLE chunk) entirely by splicing block 2 in its place... instead, overwrite
    // its type with FULL: the open record is interrupted, and the orphaned LAST chunk follows.
    let mut damaged = bytes.clone();
    let block = BLOCK_SIZE as usize;
    let kind = &mut damaged[block + 6];
    assert_eq!(*kind, 3);
    *kind = 1;
    let outcome = scan_all(&damaged, Recovery::SkipCorrupt);
    assert_records(
        &outcome.records,
        &[&placed[0], &placed[2], &placed[3]],
        "middle retyped",
    );
    assert_eq!(outcome.damage.len(), 1);
    assert_eq!(outcome.damage[0].offset, placed[1].offset);
}
