//! Archives written by `wandb-archive` read in place: `runs.tar.zst` and `runs.tar.zst:RUN` give
//! exactly what the run folders give, damage in the archive names the member.

use std::path::{Path, PathBuf};

use wandb_archive::{PackOptions, pack};

use crate::util::{fixtures, inspect};

/// Packs the SDK fixtures into `dir/runs.tar.zst`; returns it and the run folders.
fn packed(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    let output = dir.join("runs.tar.zst");
    pack(&PackOptions {
        inputs: runs.clone(),
        output: output.clone(),
        level: 1,
        threads: 2,
        remove_source: false,
        repack: false,
        progress: None,
    })
    .unwrap();
    (output, runs)
}

/// The output with each file's path (archive member or folder file) reduced to `run/file`.
fn normalized(text: &str, archive: &Path, fixtures: &Path) -> String {
    text.replace(&format!("{}:", archive.display()), "")
        .replace(&format!("{}/", fixtures.display()), "")
}

#[test]
fn archive_reads_like_the_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, runs) = packed(dir.path());
    let root = fixtures();
    for command in [
        vec!["verify"],
        vec!["summary", "--json"],
        vec!["dump", "--json"],
        vec!["history", "--format", "csv"],
    ] {
        for run in &runs {
            let name = run.file_name().unwrap().to_str().unwrap();
            let spec = format!("{}:{name}", archive.display());
            let mut from_archive: Vec<&dyn AsRef<std::ffi::OsStr>> = command
                .iter()
                .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
                .collect();
            from_archive.push(&spec);
            let mut from_folder: Vec<&dyn AsRef<std::ffi::OsStr>> = command
                .iter()
                .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
                .collect();
            from_folder.push(run);
            let a = inspect(&from_archive);
            let f = inspect(&from_folder);
            assert_eq!(a.exit, f.exit, "{command:?} {name}: {}", a.stderr);
            assert_eq!(
                normalized(&a.stdout, &archive, &root),
                normalized(&f.stdout, &archive, &root),
                "{command:?} {name}"
            );
        }
    }
    // The whole archive at once: every run's record file.
    let all = inspect(&[&"verify", &archive]);
    assert_eq!(all.stdout.lines().count(), runs.len(), "{}", all.stdout);
    // A run the archive does not hold is an input error, named.
    let missing = format!("{}:no-such-run", archive.display());
    let out = inspect(&[&"summary", &missing]);
    assert_eq!(out.exit.code(), 2);
    assert!(
        out.stderr.contains("no run \"no-such-run\""),
        "{}",
        out.stderr
    );
}

#[test]
fn a_damaged_frame_names_the_member_and_spares_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, runs) = packed(dir.path());
    let opened = wandb_archive::Archive::open(&archive).unwrap();
    let frame = opened.frames()[1];
    drop(opened);
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[usize::try_from(frame.c_offset + frame.c_len / 2).unwrap()] ^= 0x40;
    std::fs::write(&archive, bytes).unwrap();
    let out = inspect(&[&"verify", &archive]);
    assert_eq!(out.exit.code(), 2, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), runs.len() - 1, "{}", out.stdout);
    assert!(out.stderr.contains("does not decompress"), "{}", out.stderr);
}
