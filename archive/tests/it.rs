//! Integration tests of `wandb-archive`: round trips through GNU tar and our unpack, files from
//! outside the run, hostile archives, truncation and bit flips, kill -9 during pack,
//! `--remove-source` and re-packing into an existing archive.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};
use wandb_archive::seekable::{self, Frame};
use wandb_archive::tarfmt;
use wandb_archive::{Archive, Origin, PackOptions, STAGED_DIR, pack, unpack};
use wandb_format::proto::record::RecordType;
use wandb_format::proto::{
    ArtifactManifest, ArtifactManifestEntry, ArtifactRecord, Record, RunExitRecord,
};

const BIN: &str = env!("CARGO_BIN_EXE_wandb-archive");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk-0.31.0")
}

fn opts(inputs: Vec<PathBuf>, output: &Path) -> PackOptions {
    PackOptions {
        inputs,
        output: output.to_path_buf(),
        level: 3,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    }
}

/// Every regular file under `dir` (symlinks followed), by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !rel.ends_with(".wandb.lock") {
                    out.insert(rel, fs::read(&path).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn gnu_untar(archive: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let status = Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(archive)
        .arg("-C")
        .arg(to)
        .status()
        .expect("GNU tar with zstd");
    assert!(status.success(), "tar --zstd -x failed");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Writes a run with our logger into `dir/wandb/...` and returns the run folder.
fn logger_run(dir: &Path, rows: i64) -> PathBuf {
    use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, row};
    let mut env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
    ]);
    env.set("WANDB_SILENT", "true");
    let context = LoadContext::new(env, dir)
        .with_home(dir)
        .with_hostname("testhost");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let run = setup.init(InitOptions::new().project("archive")).unwrap();
    for i in 0..rows {
        run.log(row! {"loss" => 1.0 / (i as f64 + 1.0), "step" => i})
            .unwrap();
    }
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    run_dir
}

#[test]
fn fixtures_and_logger_runs_round_trip_through_gnu_tar_and_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let logged = logger_run(&dir.path().join("work"), 2000);
    let mut inputs: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    inputs.sort();
    inputs.push(logged.clone());
    let archive_path = dir.path().join("runs.tar.zst");
    let report = pack(&opts(inputs.clone(), &archive_path)).unwrap();
    assert_eq!(report.packed.len(), inputs.len());
    assert!(!report.has_problems(), "{report:?}");

    let gnu = dir.path().join("gnu");
    gnu_untar(&archive_path, &gnu);
    let ours = dir.path().join("ours");
    let archive = Archive::open(&archive_path).unwrap();
    assert!(archive.index().is_some());
    let unpacked = unpack(&archive, &ours, &[]).unwrap();
    assert!(unpacked.refused.is_empty() && unpacked.damaged.is_empty());
    for input in &inputs {
        let name = input.file_name().unwrap();
        let original = tree(input);
        assert!(!original.is_empty());
        assert_eq!(
            tree(&gnu.join(name)),
            original,
            "GNU tar: {}",
            input.display()
        );
        assert_eq!(
            tree(&ours.join(name)),
            original,
            "unpack: {}",
            input.display()
        );
    }
    // zstd itself reads the whole stream (the seek table is a skippable frame).
    let status = Command::new("zstd")
        .arg("-tq")
        .arg(&archive_path)
        .status()
        .unwrap();
    assert!(status.success());
    // Every member verifies against the index.
    for member in archive.members() {
        archive.verify_member(member).unwrap();
    }
    let out = Command::new(BIN)
        .args(["verify", "--json"])
        .arg(&archive_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
}

/// A run folder copied from the `plain` fixture.
fn plain_run(root: &Path, name: &str) -> PathBuf {
    let run = root.join(name);
    copy_dir(&fixtures().join("plain"), &run);
    run
}

fn append_artifact(run: &Path, local_paths: &[&Path]) {
    let wandb = fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wandb"))
        .unwrap();
    let (mut writer, _) = wandb_format::Writer::open_append(&wandb).unwrap();
    let contents = local_paths
        .iter()
        .enumerate()
        .map(|(i, p)| ArtifactManifestEntry {
            path: format!("model-{i}.bin"),
            digest: "x".into(),
            local_path: p.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .collect();
    writer
        .append_record(&Record {
            num: 1000,
            record_type: Some(RecordType::Artifact(ArtifactRecord {
                name: "model".into(),
                r#type: "model".into(),
                manifest: Some(ArtifactManifest {
                    version: 1,
                    contents,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .unwrap();
    writer.persist(wandb_format::Durability::SyncData).unwrap();
}

#[test]
fn linked_and_staged_files_travel_inside_and_unsafe_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("saved.txt"), b"saved with wandb.save\n").unwrap();
    fs::write(outside.join("staged.bin"), b"artifact bytes").unwrap();
    let private = outside.join("private.txt");
    fs::write(&private, b"not yours").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    let can_chown = std::os::unix::fs::chown(&private, Some(4242), Some(4242)).is_ok();
    let fifo = outside.join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();

    let run = plain_run(dir.path(), "offline-run-20260101_000000-linked");
    let files = run.join("files");
    symlink(outside.join("saved.txt"), files.join("saved.txt")).unwrap();
    symlink(&fifo, files.join("fifo")).unwrap();
    symlink("/proc/self/environ", files.join("environ")).unwrap();
    symlink(&private, files.join("private.txt")).unwrap();
    append_artifact(&run, &[&outside.join("staged.bin"), &fifo]);

    let archive_path = dir.path().join("runs.tar.zst");
    let report = pack(&opts(vec![run.clone()], &archive_path)).unwrap();
    let refused: Vec<&str> = report.refused.iter().map(|r| r.1.as_str()).collect();
    assert!(refused.contains(&"files/fifo"), "{refused:?}");
    assert!(refused.contains(&"files/environ"), "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|p| p.ends_with("/fifo") && p.starts_with('/')),
        "{refused:?}"
    );
    if can_chown {
        assert!(refused.contains(&"files/private.txt"), "{refused:?}");
    } else {
        wandb_testkit::skip("not root: cannot chown a private file to another user");
    }

    let archive = Archive::open(&archive_path).unwrap();
    let index = archive.index().unwrap();
    let entry = &index.runs[0];
    let saved = entry
        .files
        .iter()
        .find(|f| f.path.ends_with("files/saved.txt"))
        .unwrap();
    assert_eq!(saved.origin, Origin::Linked);
    assert_eq!(
        saved.source.as_deref(),
        Some(
            outside
                .join("saved.txt")
                .canonicalize()
                .unwrap()
                .to_str()
                .unwrap()
        )
    );
    let staged = entry
        .files
        .iter()
        .find(|f| f.origin == Origin::Staged)
        .unwrap();
    assert!(staged.path.contains(STAGED_DIR));
    // A run unpacked anywhere finds the staged copy by the original local_path.
    let unpacked = dir.path().join("unpacked");
    let archive_copy = Archive::open(&archive_path).unwrap();
    unpack(&archive_copy, &unpacked, &[]).unwrap();
    let local = outside.join("staged.bin");
    let copy = wandb_archive::tools::staged_copy(
        &unpacked.join(run.file_name().unwrap()),
        local.to_str().unwrap(),
    )
    .unwrap();
    assert_eq!(fs::read(copy).unwrap(), b"artifact bytes");
    assert_eq!(
        staged.source.as_deref(),
        outside.join("staged.bin").to_str()
    );

    // GNU tar gives regular files with the targets' bytes.
    let gnu = dir.path().join("gnu");
    gnu_untar(&archive_path, &gnu);
    let name = run.file_name().unwrap();
    let got = gnu.join(name).join("files/saved.txt");
    assert!(!got.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(fs::read(got).unwrap(), b"saved with wandb.save\n");
    assert_eq!(fs::read(gnu.join(&staged.path)).unwrap(), b"artifact bytes");
    assert!(!gnu.join(name).join("files/fifo").exists());
    assert!(!gnu.join(name).join("files/private.txt").exists() || !can_chown);

    // The CLI exits 1 and names what it refused.
    let out = Command::new(BIN)
        .arg("pack")
        .arg(&run)
        .arg("-o")
        .arg(dir.path().join("cli.tar.zst"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("files/fifo: not a regular file (a FIFO)"),
        "{stderr}"
    );
    assert!(stderr.contains("procfs"), "{stderr}");
}

/// A tar stream of hand-made members, compressed as one frame per member plus a seek table.
fn hostile_archive(members: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut frames_data = Vec::new();
    for (header, data) in members {
        let mut member = header.clone();
        member.extend_from_slice(data);
        member.resize(tarfmt::padded(member.len() as u64) as usize, 0);
        frames_data.push(member);
    }
    frames_data.push(vec![0u8; 1024]);
    let mut frames = Vec::new();
    let (mut c, mut d) = (0u64, 0u64);
    for data in &frames_data {
        let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
        compressor.include_checksum(true).unwrap();
        let bytes = compressor.compress(data).unwrap();
        frames.push(Frame {
            c_offset: c,
            c_len: bytes.len() as u64,
            d_offset: d,
            d_len: data.len() as u64,
            checksum: Some(u32::from_le_bytes(
                bytes[bytes.len() - 4..].try_into().unwrap(),
            )),
        });
        c += bytes.len() as u64;
        d += data.len() as u64;
        stream.extend_from_slice(&bytes);
    }
    stream.extend_from_slice(&seekable::write_seek_table(&frames));
    stream
}

fn raw_header(name: &[u8], size: u64, kind: tar::EntryType, link: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    header.as_bytes().to_vec()
}

#[test]
fn hostile_members_are_refused_by_name_and_nothing_lands_outside() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let members = vec![
        (
            raw_header(b"../evil.txt", 4, T::Regular, b""),
            b"evil".to_vec(),
        ),
        (
            raw_header(b"/tmp/abs-evil.txt", 4, T::Regular, b""),
            b"evil".to_vec(),
        ),
        (
            raw_header(b"run/up", 0, T::Symlink, b"../../outside"),
            Vec::new(),
        ),
        (raw_header(b"run/abs", 0, T::Symlink, b"/etc"), Vec::new()),
        (
            raw_header(b"run/hard", 0, T::Link, b"../../etc/passwd"),
            Vec::new(),
        ),
        (raw_header(b"run/dev", 0, T::Char, b""), Vec::new()),
        (
            raw_header(b"run/ok.txt", 2, T::Regular, b""),
            b"ok".to_vec(),
        ),
        // Claims a terabyte, holds four bytes.
        (
            raw_header(b"run/huge.bin", 1 << 40, T::Regular, b""),
            b"huge".to_vec(),
        ),
    ];
    let path = dir.path().join("hostile.tar.zst");
    fs::write(&path, hostile_archive(&members)).unwrap();
    let target = dir.path().join("t").join("inner");
    let out = Command::new(BIN)
        .arg("unpack")
        .arg(&path)
        .arg("--to")
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (name, why) in [
        ("../evil.txt", "`..`"),
        ("/tmp/abs-evil.txt", "absolute"),
        ("run/up", "leading out"),
        ("run/abs", "absolute"),
        ("run/hard", "leading out"),
        ("run/dev", "never unpacked"),
        ("run/huge.bin", ""),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("{name:?}")) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
    assert_eq!(fs::read(target.join("run/ok.txt")).unwrap(), b"ok");
    // Nothing outside the target; no partial file of the huge member.
    let outside: Vec<_> = fs::read_dir(dir.path().join("t")).unwrap().collect();
    assert_eq!(outside.len(), 1);
    assert!(!Path::new("/tmp/abs-evil.txt").exists());
    let inside: Vec<_> = fs::read_dir(target.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(inside, vec!["ok.txt".to_string()]);
}

#[test]
fn seek_table_past_the_end_and_huge_window_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A seek table whose only frame would end past the table.
    let mut bytes = hostile_archive(&[(
        raw_header(b"run/a.txt", 1, tar::EntryType::Regular, b""),
        b"a".to_vec(),
    )]);
    let frames = vec![Frame {
        c_offset: 0,
        c_len: 1 << 30,
        d_offset: 0,
        d_len: 1024,
        checksum: None,
    }];
    let cut = bytes.len() - (8 + 2 * 12 + 9);
    bytes.truncate(cut);
    bytes.extend_from_slice(&seekable::write_seek_table(&frames));
    let path = dir.path().join("past.tar.zst");
    fs::write(&path, &bytes).unwrap();
    let archive = Archive::open(&path).unwrap();
    let damage = archive.damage();
    assert!(
        damage[0].reason.contains("past the seek table"),
        "{damage:?}"
    );
    // The frames are still found one by one, and the member read.
    assert_eq!(archive.members().len(), 1);
    archive.verify_member(&archive.members()[0]).unwrap();

    // A frame declaring a 2 GiB window (raw block, content size 1000).
    let mut frame = Vec::new();
    frame.extend_from_slice(&seekable::ZSTD_MAGIC.to_le_bytes());
    frame.push(0x84); // 4-byte content size, checksum, not single segment
    frame.push(21 << 3); // window 2^31
    frame.extend_from_slice(&1000u32.to_le_bytes());
    frame.extend_from_slice(&((1000u32 << 3) | 1).to_le_bytes()[..3]);
    frame.extend_from_slice(&[0u8; 1000]);
    frame.extend_from_slice(&[0u8; 4]);
    let table = seekable::write_seek_table(&[Frame {
        c_offset: 0,
        c_len: frame.len() as u64,
        d_offset: 0,
        d_len: 1000,
        checksum: None,
    }]);
    frame.extend_from_slice(&table);
    let path = dir.path().join("window.tar.zst");
    fs::write(&path, &frame).unwrap();
    let out = Command::new(BIN).arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("window"), "{stderr}");

    // Not an archive at all.
    let path = dir.path().join("text.tar.zst");
    fs::write(&path, b"hello world").unwrap();
    let out = Command::new(BIN).arg("list").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a zstd archive"));
}

/// Packs the fixtures; returns the archive bytes and the original files by member name.
fn fixture_archive(dir: &Path) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let mut inputs: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    inputs.sort();
    let path = dir.join("runs.tar.zst");
    pack(&opts(inputs.clone(), &path)).unwrap();
    let mut originals = BTreeMap::new();
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        for (rel, bytes) in tree(input) {
            originals.insert(format!("{name}/{rel}"), bytes);
        }
    }
    (path, originals)
}

#[test]
fn truncated_archives_keep_every_member_of_the_intact_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (path, originals) = fixture_archive(dir.path());
    let bytes = fs::read(&path).unwrap();
    let frames = Archive::open(&path).unwrap().frames().to_vec();
    let n_cuts = 40;
    for k in 1..n_cuts {
        let cut = bytes.len() * k / n_cuts;
        let damaged = dir.path().join(format!("cut-{cut}.tar.zst"));
        fs::write(&damaged, &bytes[..cut]).unwrap();
        let archive = Archive::open(&damaged).unwrap();
        assert!(!archive.damage().is_empty(), "cut at {cut}");
        // Every member wholly inside a frame that ends before the cut is there and intact.
        let intact_end = frames
            .iter()
            .take_while(|f| f.c_offset + f.c_len <= cut as u64)
            .last()
            .map_or(0, |f| f.d_offset + f.d_len);
        let listed: BTreeMap<&str, &wandb_archive::Member> = archive
            .members()
            .iter()
            .map(|m| (m.name.as_str(), m))
            .collect();
        let to = dir.path().join(format!("cut-{cut}"));
        let report = unpack(&archive, &to, &[]).unwrap();
        let full = Archive::open(&path).unwrap();
        for member in full
            .members()
            .iter()
            .filter(|m| m.kind == tarfmt::Kind::File)
        {
            if member.data_offset + member.size <= intact_end {
                let found = listed
                    .get(member.name.as_str())
                    .unwrap_or_else(|| panic!("cut {cut}: {} not listed", member.name));
                archive.verify_member(found).unwrap();
                assert!(report.written.contains(&member.name));
                assert_eq!(
                    fs::read(to.join(&member.name)).unwrap(),
                    originals[&member.name],
                    "cut {cut}: {}",
                    member.name
                );
            }
        }
        // Nothing damaged is unpacked as if intact.
        for name in report.written.iter().filter(|n| !to.join(n).is_dir()) {
            assert_eq!(
                &fs::read(to.join(name)).unwrap(),
                &originals[name],
                "cut {cut}: {name}"
            );
        }
        fs::remove_dir_all(&to).unwrap();
        fs::remove_file(&damaged).unwrap();
    }
}

#[test]
fn a_flipped_frame_loses_only_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let (path, originals) = fixture_archive(dir.path());
    let bytes = fs::read(&path).unwrap();
    let full = Archive::open(&path).unwrap();
    let frames = full.frames().to_vec();
    let index = full.index().unwrap().clone();
    // Every frame but the index's (the last).
    for (i, frame) in frames.iter().enumerate().take(frames.len() - 1) {
        for at in [
            frame.c_offset + frame.c_len / 2,
            frame.c_offset + frame.c_len - 2,
        ] {
            let mut flipped = bytes.clone();
            flipped[usize::try_from(at).unwrap()] ^= 0x10;
            let damaged = dir.path().join("flipped.tar.zst");
            fs::write(&damaged, &flipped).unwrap();
            let archive = Archive::open(&damaged).unwrap();
            assert!(archive.index().is_some(), "frame {i}: index lost");
            let mut n_bad = 0;
            for member in archive
                .members()
                .iter()
                .filter(|m| m.kind == tarfmt::Kind::File)
            {
                let in_frame = member.header_offset < frame.d_offset + frame.d_len
                    && member.data_offset + member.size > frame.d_offset;
                let result = archive.verify_member(member);
                if in_frame {
                    assert!(result.is_err(), "frame {i}: {} not damaged", member.name);
                    n_bad += 1;
                } else {
                    assert!(result.is_ok(), "frame {i}: {} {result:?}", member.name);
                }
            }
            assert!(n_bad > 0);
            let damage = archive.damage();
            assert!(
                damage
                    .iter()
                    .any(|d| d.frame == Some(i) && d.offset == frame.c_offset)
            );
            let to = dir.path().join("flipped");
            let report = unpack(&archive, &to, &[]).unwrap();
            assert_eq!(report.damaged.len(), n_bad);
            for name in report.written.iter().filter(|n| !to.join(n).is_dir()) {
                assert_eq!(&fs::read(to.join(name)).unwrap(), &originals[name]);
            }
            fs::remove_dir_all(&to).unwrap();
        }
    }
    assert_eq!(index.runs.len(), 5);
}

#[test]
fn reading_one_run_decompresses_only_its_frames_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = fixture_archive(dir.path());
    let archive = Archive::open(&path).unwrap();
    let opened = archive.n_decompressed();
    let run = archive.index().unwrap().runs[2].clone();
    let mut frames = std::collections::BTreeSet::new();
    for file in &run.files {
        for (i, f) in archive.frames().iter().enumerate() {
            if f.d_offset < file.data_offset + file.size.max(1)
                && file.header_offset < f.d_offset + f.d_len
            {
                frames.insert(i);
            }
        }
    }
    for member in archive.members().iter().filter(|m| m.run() == run.name) {
        archive.verify_member(member).unwrap();
    }
    assert!(archive.n_decompressed() - opened <= frames.len() as u64 + 1);
    // Opening reads only the index frame(s).
    assert!(opened <= 2, "{opened}");
}

#[test]
fn existing_archive_keeps_its_runs_and_skips_those_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let a = plain_run(dir.path(), "offline-run-20260101_000000-aaaa");
    let b = plain_run(dir.path(), "offline-run-20260101_000000-bbbb");
    let path = dir.path().join("runs.tar.zst");
    let first = pack(&opts(vec![a.clone()], &path)).unwrap();
    assert_eq!(first.packed.len(), 1);
    let second = pack(&opts(vec![a.clone(), b.clone()], &path)).unwrap();
    assert_eq!(
        second.skipped,
        vec!["offline-run-20260101_000000-aaaa".to_string()]
    );
    assert_eq!(second.kept.len(), 1);
    assert_eq!(
        second.packed,
        vec!["offline-run-20260101_000000-bbbb".to_string()]
    );
    // Nothing new: the archive is left as it is.
    let before = fs::read(&path).unwrap();
    let nothing = pack(&opts(vec![a.clone()], &path)).unwrap();
    assert_eq!(nothing.packed.len(), 0);
    assert_eq!(fs::read(&path).unwrap(), before);
    // An archive inside a run folder it packs is refused.
    let inside = pack(&opts(vec![a.clone()], &a.join("files/runs.tar.zst"))).unwrap_err();
    assert!(
        inside.to_string().contains("inside the run folder"),
        "{inside}"
    );
    fs::write(a.join("files/new.txt"), b"new").unwrap();
    let mut again = opts(vec![a.clone()], &path);
    again.repack = true;
    let third = pack(&again).unwrap();
    assert_eq!(third.packed.len(), 1);
    assert_eq!(
        third.kept,
        vec!["offline-run-20260101_000000-bbbb".to_string()]
    );
    let gnu = dir.path().join("gnu");
    gnu_untar(&path, &gnu);
    assert_eq!(tree(&gnu.join(a.file_name().unwrap())), tree(&a));
    assert_eq!(tree(&gnu.join(b.file_name().unwrap())), tree(&b));
    let archive = Archive::open(&path).unwrap();
    for member in archive.members() {
        archive.verify_member(member).unwrap();
    }
}

fn write_run_without_exit(root: &Path, id: &str, exit: bool) -> PathBuf {
    let run = root.join(format!("offline-run-20260101_000000-{id}"));
    fs::create_dir_all(run.join("files")).unwrap();
    let mut writer = wandb_format::Writer::create(run.join(format!("run-{id}.wandb"))).unwrap();
    writer
        .append_record(&Record {
            num: 1,
            ..Default::default()
        })
        .unwrap();
    if exit {
        writer
            .append_record(&Record {
                num: 2,
                record_type: Some(RecordType::Exit(RunExitRecord::default())),
                ..Default::default()
            })
            .unwrap();
    }
    writer.persist(wandb_format::Durability::SyncData).unwrap();
    run
}

#[test]
fn remove_source_spares_live_and_locked_runs() {
    let dir = tempfile::tempdir().unwrap();
    let done = write_run_without_exit(dir.path(), "done", true);
    let live = write_run_without_exit(dir.path(), "live", false);
    let locked = write_run_without_exit(dir.path(), "lock", true);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locked.join("run-lock.wandb.lock"))
        .unwrap();
    lock.lock().unwrap();
    let path = dir.path().join("runs.tar.zst");
    let mut o = opts(vec![done.clone(), live.clone(), locked.clone()], &path);
    o.remove_source = true;
    let report = pack(&o).unwrap();
    assert_eq!(report.removed, vec![done.clone()]);
    assert!(!done.exists());
    assert!(live.exists() && locked.exists());
    let kept: Vec<&PathBuf> = report.not_removed.iter().map(|(p, _)| p).collect();
    assert_eq!(kept, vec![&live, &locked]);
    drop(lock);
    // The removed run is in the archive, intact.
    let archive = Archive::open(&path).unwrap();
    assert!(
        archive
            .members()
            .iter()
            .any(|m| m.run() == done.file_name().unwrap().to_str().unwrap())
    );
}

#[test]
fn kill_during_pack_leaves_no_archive_and_the_sources_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let run = write_run_without_exit(dir.path(), "big", true);
    // Incompressible-ish content so that level 19 on one thread takes a while.
    let mut data = vec![0u8; 48 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&(x % 1000).to_le_bytes()[..chunk.len()]);
    }
    fs::File::create(run.join("files/big.bin"))
        .unwrap()
        .write_all(&data)
        .unwrap();
    let before = tree(&run);
    let out = dir.path().join("runs.tar.zst");
    let mut child = Command::new(BIN)
        .args(["pack", "--level", "19", "-T", "1"])
        .arg(&run)
        .arg("-o")
        .arg(&out)
        .spawn()
        .unwrap();
    // Wait until the temporary archive exists and has data, then kill -9.
    let start = std::time::Instant::now();
    loop {
        let partial = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".partial")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            });
        if partial || start.elapsed() > std::time::Duration::from_secs(20) {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let finished_first = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!finished_first, "pack finished before it could be killed");
    assert!(!out.exists(), "an archive was left after kill -9");
    assert_eq!(tree(&run), before);
    // The sha of the source is what it was.
    assert_eq!(
        Sha256::digest(fs::read(run.join("files/big.bin")).unwrap()).as_slice(),
        Sha256::digest(&data).as_slice()
    );
}

#[test]
fn record_files_are_read_out_of_the_archive_by_run_folder_or_id() {
    let dir = tempfile::tempdir().unwrap();
    let (path, originals) = fixture_archive(dir.path());
    let spec = PathBuf::from(format!("{}:plain", path.display()));
    let (archive_path, run) = wandb_archive::parse_spec(&spec).unwrap();
    assert_eq!(
        (archive_path.as_path(), run.as_deref()),
        (path.as_path(), Some("plain"))
    );
    assert_eq!(wandb_archive::parse_spec(&path).unwrap().1, None);
    assert!(wandb_archive::parse_spec(Path::new("missing.tar.zst:plain")).is_none());
    let archive = Archive::open(&path).unwrap();
    assert_eq!(archive.runs().len(), 5);
    assert_eq!(archive.record_members(None).len(), 5);
    let plain = archive.record_members(Some("plain"));
    assert_eq!(plain.len(), 1);
    let bytes = archive.read_member(plain[0]).unwrap();
    assert_eq!(bytes, originals["plain/run-fxplain0.wandb"]);
    // A record file read out of the archive is a log like the one on disk.
    let log = wandb_format::LogFile::from_bytes(&plain[0].name, bytes).unwrap();
    assert!(log.records(wandb_format::Recovery::Strict).count() > 3);
}

#[test]
fn archive_inputs_expand_to_virtual_member_paths() {
    use wandb_archive::tools::{Expanded, expand, read_virtual};
    let dir = tempfile::tempdir().unwrap();
    let (path, originals) = fixture_archive(dir.path());
    let one = PathBuf::from(format!("{}:fxplain0", path.display()));
    let missing = PathBuf::from(format!("{}:nope", path.display()));
    let expanded = expand(&[dir.path().to_path_buf(), path.clone(), one, missing.clone()]);
    assert_eq!(expanded[0], Expanded::Plain(dir.path().to_path_buf()));
    let Expanded::Members(all) = &expanded[1] else {
        panic!("{expanded:?}")
    };
    assert_eq!(all.len(), 5);
    let Expanded::Members(plain) = &expanded[2] else {
        panic!("{expanded:?}")
    };
    assert_eq!(plain.len(), 1);
    assert!(
        plain[0]
            .to_str()
            .unwrap()
            .ends_with(".tar.zst:plain/run-fxplain0.wandb")
    );
    assert_eq!(
        read_virtual(&plain[0]).unwrap().unwrap(),
        originals["plain/run-fxplain0.wandb"]
    );
    assert!(matches!(&expanded[3], Expanded::Problem { input, .. } if input == &missing));
    assert!(read_virtual(&path).is_none());
    assert!(read_virtual(Path::new("/no/such.tar.zst:a/b.wandb")).is_none());
}

#[test]
fn sdk_run_with_saved_symlink_and_staged_artifact_round_trips() {
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sdk_run.py");
    let status = Command::new(python)
        .arg(script)
        .arg(dir.path())
        .env("HOME", dir.path().join("home"))
        .env("WANDB_MODE", "offline")
        .env_remove("WANDB_API_KEY")
        .status()
        .unwrap();
    assert!(status.success());
    let wandb_dir = dir.path().join("wandb");
    let path = dir.path().join("sdk.tar.zst");
    let report = pack(&opts(vec![wandb_dir.clone()], &path)).unwrap();
    assert_eq!(report.packed.len(), 1, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    let archive = Archive::open(&path).unwrap();
    let run = &archive.index().unwrap().runs[0];
    let saved = run
        .files
        .iter()
        .find(|f| f.path.ends_with("files/notes.txt"))
        .unwrap();
    assert_eq!(saved.origin, Origin::Linked);
    let staged: Vec<_> = run
        .files
        .iter()
        .filter(|f| f.origin == Origin::Staged)
        .collect();
    assert_eq!(staged.len(), 1, "{run:?}");
    let staging = staged[0].source.clone().unwrap();
    assert!(staging.contains("artifacts/staging"), "{staging}");
    let gnu = dir.path().join("gnu");
    gnu_untar(&path, &gnu);
    let run_dir = fs::read_dir(&wandb_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .unwrap();
    let name = run_dir.file_name().unwrap();
    let mut expected = tree(&run_dir);
    let got = tree(&gnu.join(name));
    expected.insert(
        staged[0]
            .path
            .strip_prefix(&format!("{}/", run.name))
            .unwrap()
            .to_string(),
        fs::read(&staging).unwrap(),
    );
    assert_eq!(got, expected);
    assert_eq!(
        fs::read(gnu.join(name).join("files/notes.txt")).unwrap(),
        b"saved outside the run\n"
    );
}

/// (offset, length, payload or damage) of every item, for comparing scans.
type Scanned = Vec<(u64, u64, Option<Vec<u8>>)>;

fn scan_in_place(archive: &Archive, member: &wandb_archive::Member, window: u64) -> (Scanned, u64) {
    use wandb_archive::tools::{MemberItem, scan_member_windowed};
    let mut items = Vec::new();
    let mut lost = 0;
    scan_member_windowed::<wandb_archive::Error>(
        archive,
        member,
        wandb_format::Recovery::SkipCorrupt,
        window,
        |item| {
            match item {
                MemberItem::Item(wandb_format::ScanItem::Record(raw)) => {
                    items.push((raw.offset, raw.length, Some(raw.payload.to_vec())));
                }
                MemberItem::Item(wandb_format::ScanItem::Damage(d)) => {
                    items.push((d.offset, d.length, None));
                }
                MemberItem::Lost { length, .. } => lost += length,
            }
            Ok(true)
        },
    )
    .unwrap();
    (items, lost)
}

#[test]
fn record_members_scan_in_place_as_their_files_do() {
    let dir = tempfile::tempdir().unwrap();
    let (path, originals) = fixture_archive(dir.path());
    let archive = Archive::open(&path).unwrap();
    for member in archive.record_members(None) {
        let log =
            wandb_format::LogFile::from_bytes("x.wandb", originals[&member.name].clone()).unwrap();
        let want: Scanned = log
            .scan(wandb_format::Recovery::SkipCorrupt)
            .map(|item| match item.unwrap() {
                wandb_format::ScanItem::Record(raw) => {
                    (raw.offset, raw.length, Some(raw.payload.to_vec()))
                }
                wandb_format::ScanItem::Damage(d) => (d.offset, d.length, None),
            })
            .collect();
        assert!(!want.is_empty());
        // Windows cutting records anywhere, and larger than the member.
        for window in [1000, 32 << 10, 1 << 30] {
            let (got, lost) = scan_in_place(&archive.handle(), member, window);
            assert_eq!(lost, 0);
            assert!(got == want, "{} in windows of {window}", member.name);
        }
    }
    // A member that is not a record file is refused by name.
    let other = archive
        .members()
        .iter()
        .find(|m| m.kind == wandb_archive::tarfmt::Kind::File && !m.name.ends_with(".wandb"))
        .unwrap();
    let error = wandb_archive::tools::scan_member::<wandb_archive::Error>(
        &archive,
        other,
        wandb_format::Recovery::SkipCorrupt,
        |_| Ok(true),
    )
    .unwrap_err();
    assert!(error.to_string().contains(&other.name), "{error}");
}

/// An artifact file staged inside the run folder (our logger's `run_table`, in
/// `artifacts/staging/`) is stored once, as the run's own member, which the index marks as
/// the staged file of its `local_path`; the archive verifies and unpacks it where it was.
#[test]
fn a_table_staged_inside_the_run_is_stored_once() {
    use wandb_logger::media::Table;
    use wandb_logger::{Env, InitOptions, LoadContext, Setup, SetupOptions, json, row};
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let mut env = Env::from_pairs([
        ("WANDB_MODE", "offline"),
        ("WANDB_X_HANDLE_SIGTERM", "false"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB_X_DISABLE_STATS", "true"),
    ]);
    env.set("WANDB_SILENT", "true");
    let context = LoadContext::new(env, &work)
        .with_home(&work)
        .with_hostname("testhost");
    let setup = Setup::new(SetupOptions::default().context(context)).unwrap();
    let run = setup.init(InitOptions::new().project("archive")).unwrap();
    let mut table = Table::new(["x"]);
    table.add_row(vec![json::Value::Int(7)]).unwrap();
    run.log(row! {"t" => run.media("t", &table).unwrap()})
        .unwrap();
    let run_dir = run.dir().unwrap().to_path_buf();
    run.finish().unwrap();
    let staging = run_dir.join("artifacts/staging");
    let staged: Vec<PathBuf> = fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    let staged = &staged[0];
    let name = staged.file_name().unwrap().to_str().unwrap();

    let path = dir.path().join("t.tar.zst");
    let report = pack(&opts(vec![run_dir.clone()], &path)).unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    let archive = Archive::open(&path).unwrap();
    let entry = &archive.index().unwrap().runs[0];
    let holding: Vec<_> = entry
        .files
        .iter()
        .filter(|f| f.path.ends_with(name))
        .collect();
    assert_eq!(holding.len(), 1, "{:?}", entry.files);
    let member = holding[0];
    let run_name = run_dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        member.path,
        format!("{run_name}/artifacts/staging/{name}"),
        "{member:?}"
    );
    assert_eq!(member.origin, Origin::Staged);
    assert_eq!(member.source.as_deref(), staged.to_str());
    assert!(entry.files.iter().all(|f| !f.path.contains(STAGED_DIR)));
    assert_eq!(
        archive
            .member_from_source(run_name, staged.to_str().unwrap())
            .map(|m| m.name.as_str()),
        Some(member.path.as_str())
    );
    let unpacked = dir.path().join("unpacked");
    unpack(&archive, &unpacked, &[]).unwrap();
    assert_eq!(
        fs::read(unpacked.join(run_name).join("artifacts/staging").join(name)).unwrap(),
        fs::read(staged).unwrap()
    );
}

/// A finished run of sweep `sweep` (its run record carries the sweep id).
fn write_sweep_run(root: &Path, id: &str, sweep: &str) -> PathBuf {
    let run = root.join(format!("offline-run-20260101_000000-{id}"));
    fs::create_dir_all(run.join("files")).unwrap();
    let mut writer = wandb_format::Writer::create(run.join(format!("run-{id}.wandb"))).unwrap();
    for (num, record_type) in [
        RecordType::Run(wandb_format::proto::RunRecord {
            run_id: id.into(),
            sweep_id: sweep.into(),
            ..Default::default()
        }),
        RecordType::Exit(RunExitRecord::default()),
    ]
    .into_iter()
    .enumerate()
    {
        writer
            .append_record(&Record {
                num: num as i64 + 1,
                record_type: Some(record_type),
                ..Default::default()
            })
            .unwrap();
    }
    writer.persist(wandb_format::Durability::SyncData).unwrap();
    run
}

#[test]
fn a_sweep_folder_is_packed_once_listed_and_unpacked_beside_its_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let wandb = scratch.path().join("wandb");
    let sweep = wandb.join("sweep-sw1");
    fs::create_dir_all(&sweep).unwrap();
    fs::write(sweep.join("sweep.yaml"), "method: grid\n").unwrap();
    fs::write(sweep.join("sweep.json"), r#"{"id": "sw1"}"#).unwrap();
    fs::write(sweep.join("sweep.synced.json"), "{}").unwrap();
    for id in ["swrun1", "swrun2"] {
        write_sweep_run(&wandb, id, "sw1");
        fs::write(sweep.join(format!("config-{id}.yaml")), "lr:\n  value: 1\n").unwrap();
    }
    // A run of a sweep whose folder is missing: packed, with a warning naming both.
    write_sweep_run(&wandb, "swrun3", "gone");
    let archive = scratch.path().join("out/runs.tar.zst");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let report = pack(&opts(vec![wandb.clone()], &archive)).unwrap();
    assert_eq!(report.packed.len(), 3);
    assert_eq!(report.sweeps, ["sw1"]);
    let gone = wandb.join("sweep-gone");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("sweep gone") && w.contains(&gone.display().to_string())),
        "{:?}",
        report.warnings
    );

    let opened = Archive::open(&archive).unwrap();
    let index = opened.index().unwrap();
    assert_eq!(index.sweeps.len(), 1);
    let expected = [
        "sweep-sw1/config-swrun1.yaml",
        "sweep-sw1/config-swrun2.yaml",
        "sweep-sw1/sweep.json",
        "sweep-sw1/sweep.yaml",
    ];
    let names: Vec<&str> = index.sweeps[0]
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(names, expected);
    let members: Vec<&str> = opened
        .members()
        .iter()
        .filter(|m| m.name.starts_with("sweep-"))
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(members, expected, "stored once, never sweep.synced.json");
    assert_eq!(opened.runs().len(), 3, "{:?}", opened.runs());
    for member in opened.members() {
        opened.verify_member(member).unwrap();
    }

    let listed = Command::new(BIN)
        .arg("list")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in expected {
        assert!(listed.contains(name), "{listed}");
    }

    // GNU tar and our unpack put the sweep folder beside the run folders.
    let by_tar = scratch.path().join("tar");
    gnu_untar(&archive, &by_tar);
    let by_unpack = scratch.path().join("unpack");
    unpack(&opened, &by_unpack, &[]).unwrap();
    for to in [by_tar, by_unpack] {
        let got = tree(&to.join("sweep-sw1"));
        let mut want = tree(&sweep);
        want.remove("sweep.synced.json");
        assert_eq!(got, want, "{}", to.display());
        assert!(to.join("offline-run-20260101_000000-swrun1").is_dir());
    }
}
