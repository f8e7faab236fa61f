//! A `.wandb` file truncated while it is read is damage, not a crash: `LogFile` (over a memory map)
//! and `Follower` report the lost span as `FileShrank` at the new end and keep every record before it
//! exactly once. Truncations happen at chosen points of a scan, and racing a scan many times.
//!
//! Also: readers refuse paths that are not regular files without opening them, and a SIGBUS in a map
//! that is not ours still kills the process.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{Placed, build_record_file};
use wandb_format::{
    DamageReason, Entry, Error, FileKind, Follower, LogFile, Recovery, ScanItem, Writer,
};

/// A file of about 6 MiB: records of many sizes, some spanning blocks.
fn big_file() -> (Vec<u8>, Vec<Placed>) {
    let sizes: Vec<usize> = (0..3000).map(|i| 200 + (i * 7919) % 4000).collect();
    build_record_file(&sizes)
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Checks a scan's items against the records written, for a file truncated to `cut` (or not at all,
/// when the scan did not notice): every record ending by the new end is read exactly once with its
/// bytes, nothing overlaps, and a noticed shrink is the last item, at `cut`.
fn check_items(
    items: &[(u64, u64, Option<DamageReason>)],
    placed: &[Placed],
    cut: u64,
    noticed: bool,
) {
    let mut position = 0;
    let mut records = BTreeMap::new();
    for (idx, (offset, length, reason)) in items.iter().enumerate() {
        match reason {
            None => {
                assert!(*offset >= position, "record at {offset} overlaps");
                position = offset + length;
                assert!(records.insert(*offset, *length).is_none());
            }
            Some(DamageReason::FileShrank { to, .. }) => {
                assert!(noticed, "shrink reported but not flagged");
                assert_eq!(*offset, cut, "shrink damage not at the new end");
                assert_eq!(*to, cut);
                assert_eq!(idx, items.len() - 1, "shrink damage is not the last item");
            }
            Some(_) => {
                assert!(*offset >= position, "damage at {offset} overlaps");
                position = offset + length;
                // Other damage can only be the record cut by the new end.
                assert!(offset + length <= cut.max(*offset) || !noticed || *offset < cut);
            }
        }
    }
    for record in placed.iter().filter(|p| p.end() <= cut) {
        assert_eq!(
            records.get(&record.offset),
            Some(&record.length),
            "record at {} before the new end {cut} not read",
            record.offset
        );
    }
    if noticed {
        assert!(
            matches!(
                items.last(),
                Some((_, _, Some(DamageReason::FileShrank { .. })))
            ),
            "a noticed shrink must end the scan with FileShrank"
        );
    }
}

/// Scans `log` in `recovery`, calling `during` after the `at`-th item; checks each record's bytes as
/// it is yielded (while its pages are still there). Returns (offset, length, damage reason) per item.
fn scan_with(
    log: &LogFile,
    placed: &BTreeMap<u64, Vec<u8>>,
    recovery: Recovery,
    at: usize,
    mut during: impl FnMut(),
) -> Vec<(u64, u64, Option<DamageReason>)> {
    let mut items = Vec::new();
    for (idx, item) in log.scan(recovery).enumerate() {
        if idx == at {
            during();
        }
        match item {
            Ok(ScanItem::Record(record)) => {
                if let Some(expected) = placed.get(&record.offset) {
                    // A record yielded was intact when its checksum was computed; a concurrent
                    // truncation may zero its pages right after, so only compare what is certain.
                    assert!(
                        record.payload.as_ref() == &expected[..] || log.shrank(),
                        "record at {} has other bytes",
                        record.offset
                    );
                } else {
                    panic!("invented a record at {}", record.offset);
                }
                items.push((record.offset, record.length, None));
            }
            Ok(ScanItem::Damage(damage)) => {
                items.push((damage.offset, damage.length, Some(damage.reason)))
            }
            Err(Error::Corrupt { damage, .. }) => {
                assert_ne!(recovery, Recovery::SkipCorrupt);
                items.push((damage.offset, damage.length, Some(damage.reason)));
            }
            Err(error) => panic!("unexpected error {error}"),
        }
    }
    items
}

#[test]
fn log_file_truncated_mid_scan_reports_damage_at_the_new_end() {
    let (bytes, placed) = big_file();
    let by_offset: BTreeMap<u64, Vec<u8>> = placed
        .iter()
        .map(|p| (p.offset, p.payload.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-cut.wandb");
    let len = bytes.len() as u64;
    // Truncate ahead of the scan (the scan meets lost pages), far ahead, just behind it, and to
    // nothing but the header; after a few items, mid-way, and near the end.
    let cases: &[(usize, u64)] = &[
        (10, len / 2 + 12_345),
        (10, len - 100),
        (1500, len / 4),
        (1500, len / 2 + 3),
        (2900, 7),
        (0, 40_000),
    ];
    for recovery in [
        Recovery::SkipCorrupt,
        Recovery::TolerateTornTail,
        Recovery::Strict,
    ] {
        for &(at, cut) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let log = LogFile::open(&path).unwrap();
            let items = scan_with(&log, &by_offset, recovery, at, || truncate(&path, cut));
            assert!(log.shrank());
            let last = items.last().unwrap();
            if recovery == Recovery::Strict {
                // The scan stops at the first damage: the record cut by the new end, or the shrink.
                assert!(
                    last.0 <= cut && last.2.is_some(),
                    "{recovery:?} {at} {cut}: {last:?}"
                );
                let before: Vec<_> = items[..items.len() - 1].to_vec();
                check_items(&before, &placed, last.0, false);
            } else {
                check_items(&items, &placed, cut, true);
                assert_eq!(
                    last,
                    &(
                        cut,
                        len - cut,
                        Some(DamageReason::FileShrank { from: len, to: cut })
                    ),
                    "{recovery:?} {at} {cut}"
                );
            }
        }
    }
}

#[test]
fn log_file_truncated_by_a_racing_thread_many_times_never_crashes() {
    let (bytes, placed) = big_file();
    let by_offset: BTreeMap<u64, Vec<u8>> = placed
        .iter()
        .map(|p| (p.offset, p.payload.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let len = bytes.len() as u64;
    for round in 0..40u64 {
        let path = dir.path().join(format!("run-{round}.wandb"));
        std::fs::write(&path, &bytes).unwrap();
        let cut = 7 + (round * 1_234_567) % (len - 7);
        let log = LogFile::open(&path).unwrap();
        let (go, wait) = mpsc::channel::<()>();
        let cutter = {
            let path = path.clone();
            std::thread::spawn(move || {
                wait.recv().unwrap();
                std::thread::sleep(Duration::from_micros(round * 50));
                truncate(&path, cut);
            })
        };
        let mut go = Some(go);
        let items = scan_with(&log, &by_offset, Recovery::SkipCorrupt, 0, || {
            go.take().unwrap().send(()).unwrap();
        });
        cutter.join().unwrap();
        let noticed = items
            .iter()
            .any(|item| matches!(item.2, Some(DamageReason::FileShrank { .. })));
        if noticed {
            check_items(&items, &placed, cut, true);
        } else {
            // The whole old file was read before the cut: every record, once.
            check_items(&items, &placed, len, false);
        }
        // A fresh open sees the new length and reads the records before it.
        let again = LogFile::open(&path).unwrap();
        assert_eq!(again.len(), cut);
        let n_records = again
            .scan(Recovery::SkipCorrupt)
            .filter(|item| matches!(item, Ok(ScanItem::Record(_))))
            .count();
        assert_eq!(n_records, placed.iter().filter(|p| p.end() <= cut).count());
    }
}

#[test]
fn log_file_cut_by_open_append_while_scanned() {
    // A logger re-opening a run with a torn tail cuts the tail while a reader scans the file.
    let (mut bytes, placed) = big_file();
    let good_len = bytes.len() as u64;
    bytes.extend(std::iter::repeat_n(0xAB, 20_000)); // garbage after the last record
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-append.wandb");
    std::fs::write(&path, &bytes).unwrap();
    let log = LogFile::open(&path).unwrap();
    let by_offset: BTreeMap<u64, Vec<u8>> = placed
        .iter()
        .map(|p| (p.offset, p.payload.clone()))
        .collect();
    let items = scan_with(&log, &by_offset, Recovery::SkipCorrupt, 2999, || {
        let (writer, recovery) = Writer::open_append(&path).unwrap();
        assert!(recovery.truncated_bytes > 0);
        drop(writer);
    });
    assert!(log.shrank(), "the scan went on into the cut tail");
    check_items(&items, &placed, good_len, true);
    assert_eq!(
        items.last().unwrap().2,
        Some(DamageReason::FileShrank {
            from: good_len + 20_000,
            to: good_len
        })
    );
}

#[test]
fn follower_reports_a_shrink_below_what_it_returned() {
    let (bytes, placed) = big_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-follow.wandb");
    std::fs::write(&path, &bytes).unwrap();
    let mut follower = Follower::open(&path, Recovery::SkipCorrupt).unwrap();
    let entries = follower.poll().unwrap();
    assert_eq!(entries.len(), placed.len());
    let cut = bytes.len() as u64 / 3;
    truncate(&path, cut);
    let entries = follower.poll().unwrap();
    let [Entry::Damage(damage)] = &entries[..] else {
        panic!("expected one damage, got {entries:?}");
    };
    assert_eq!(damage.offset, cut);
    assert_eq!(
        damage.reason,
        DamageReason::FileShrank {
            from: bytes.len() as u64,
            to: cut
        }
    );
    assert!(follower.poll().unwrap().is_empty());
    assert!(follower.finish().unwrap().is_empty());
}

#[test]
fn follower_drops_a_held_back_tail_that_is_cut_and_follows_on() {
    let (bytes, placed) = big_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-follow-torn.wandb");
    let mut torn = bytes.clone();
    torn.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x10, 0x00, 0x01, 0xAA]);
    std::fs::write(&path, &torn).unwrap();
    let mut follower = Follower::open(&path, Recovery::SkipCorrupt).unwrap();
    assert_eq!(follower.poll().unwrap().len(), placed.len());
    // The writer comes back, cuts the torn tail and appends a record.
    let (mut writer, _) = Writer::open_append(&path).unwrap();
    let offset = writer.append(b"\x08\x2a").unwrap();
    writer.persist(wandb_format::Durability::Flush).unwrap();
    assert_eq!(offset, bytes.len() as u64);
    let entries = follower.poll().unwrap();
    assert!(
        matches!(&entries[..], [Entry::Record { offset: o, .. }] if *o == offset),
        "{entries:?}"
    );
    assert!(follower.finish().unwrap().is_empty());
}

#[test]
fn follower_raced_by_truncation_many_times_never_crashes() {
    let (bytes, placed) = big_file();
    let dir = tempfile::tempdir().unwrap();
    let len = bytes.len() as u64;
    for round in 0..20u64 {
        let path = dir.path().join(format!("run-f{round}.wandb"));
        std::fs::write(&path, &bytes).unwrap();
        let cut = 7 + (round * 2_345_677) % (len - 7);
        let mut follower = Follower::open(&path, Recovery::SkipCorrupt).unwrap();
        let cutter = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(round * 100));
                truncate(&path, cut);
            })
        };
        let mut entries = follower.poll().unwrap();
        cutter.join().unwrap();
        entries.extend(follower.poll().unwrap());
        entries.extend(follower.finish().unwrap());
        let mut seen = BTreeMap::new();
        for entry in &entries {
            match entry {
                Entry::Record { offset, .. } => assert!(seen.insert(*offset, ()).is_none()),
                Entry::Damage(damage) => {
                    assert!(
                        damage.offset <= cut || damage.end() <= cut + 7,
                        "round {round}: cut at {cut}, damage {damage:?}"
                    );
                    if let DamageReason::FileShrank { to, .. } = damage.reason {
                        assert_eq!(damage.offset, cut);
                        assert_eq!(to, cut);
                    }
                }
            }
        }
        for record in placed.iter().filter(|p| p.end() <= cut) {
            assert!(
                seen.contains_key(&record.offset),
                "lost record at {}",
                record.offset
            );
        }
    }
}

#[test]
fn readers_refuse_what_is_not_a_regular_file_without_opening_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("run-dir.wandb");
    std::fs::create_dir(&folder).unwrap();
    let fifo = dir.path().join("run-fifo.wandb");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    let have_fifo = status.is_ok_and(|s| s.success());
    let mut cases = vec![(folder, FileKind::Directory)];
    if have_fifo {
        cases.push((fifo, FileKind::Fifo));
    } else {
        eprintln!("SKIP FIFO case: mkfifo not available");
    }
    cases.push((Path::new("/dev/null").to_path_buf(), FileKind::CharDevice));
    for (path, kind) in cases {
        // A FIFO opened for reading would block this test forever.
        let error = LogFile::open(&path).unwrap_err();
        assert!(
            matches!(&error, Error::NotRegularFile { path: p, kind: k } if *p == path && *k == kind),
            "{error}"
        );
        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
        let error = Follower::open(&path, Recovery::SkipCorrupt).unwrap_err();
        assert!(matches!(error, Error::NotRegularFile { .. }), "{error}");
    }
    // A symlink to a regular file is fine.
    let (bytes, _) = build_record_file(&[10, 20]);
    let real = dir.path().join("real.wandb");
    std::fs::write(&real, &bytes).unwrap();
    let link = dir.path().join("link.wandb");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(LogFile::open(&link).unwrap().len(), bytes.len() as u64);
}

/// Child side of [`a_sigbus_that_is_not_ours_still_kills`]: installs our handler by opening a
/// `LogFile`, then reads a lost page of a map of its own.
#[test]
#[ignore = "run as a child process by a_sigbus_that_is_not_ours_still_kills"]
fn sigbus_child() {
    let Ok(path) = std::env::var("WANDB_FORMAT_SIGBUS_CHILD") else {
        return;
    };
    // Installs our handler.
    let _log = LogFile::open(&path).unwrap();
    let other = Path::new(&path).with_extension("other");
    std::fs::write(&other, vec![1u8; 1 << 16]).unwrap();
    let file = std::fs::File::open(&other).unwrap();
    // SAFETY: a test of what happens when a map that is not ours loses its pages: the process must
    // die of SIGBUS, so the read below is expected never to return.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    truncate(&other, 0);
    println!("touching");
    let byte = std::hint::black_box(map[40_000]);
    println!("survived with {byte}");
    std::process::exit(0);
}

#[test]
fn a_sigbus_that_is_not_ours_still_kills() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-child.wandb");
    std::fs::write(&path, build_record_file(&[10]).0).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigbus_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WANDB_FORMAT_SIGBUS_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(lines.iter().any(|l| l.contains("touching")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("survived")), "{lines:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(7), "child ended with {status:?}");
}
