//! Untrusted input: file paths leaving `files/` are refused and never uploaded; damaged and
//! truncated files upload everything valid and say what was skipped.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use wandb_sync::{RunResult, sync_paths};
use wandb_testkit::TestBackend;

use crate::common::{RunSpec, assert_clean, options, write_run};

#[test]
fn paths_leaving_files_are_refused_and_never_uploaded() {
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let mut spec = RunSpec::new("escape", 20);
    spec.files = vec![
        "ok.txt".into(),
        "../../secret.txt".into(),
        "/etc/passwd".into(),
        "link.txt".into(),
        "sub/../../x".into(),
    ];
    let run_dir = home
        .path()
        .join("wandb/offline-run-20260101_000000-escape/files");
    std::fs::create_dir_all(&run_dir).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, run_dir.join("link.txt")).unwrap();
    let path = write_run(&home.path().join("wandb"), &spec);
    let backend = TestBackend::start().unwrap();
    let mut opts = options(&backend, vec![path]);
    // The link's target belongs to the link's owner, so only --no-follow-links refuses it.
    opts.no_follow_links = true;
    let report = sync_paths(&opts).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    let refused: Vec<&str> = run.refused.iter().map(|r| r.path.as_str()).collect();
    assert!(refused.contains(&"../../secret.txt"), "{refused:?}");
    assert!(refused.contains(&"/etc/passwd"), "{refused:?}");
    assert!(refused.contains(&"sub/../../x"), "{refused:?}");
    #[cfg(unix)]
    assert!(refused.contains(&"link.txt"), "{refused:?}");
    assert_eq!(report.exit_code(), 1);
    let state = backend.state();
    let server = &state.runs[0];
    assert!(server.file("ok.txt").is_some());
    for f in server.files.values() {
        assert!(f.text() != Some("top secret"), "a secret was uploaded");
    }
    assert!(
        !server
            .files
            .keys()
            .any(|k| k.contains("passwd") || k.contains("secret"))
    );
    assert_clean(server);
}

#[test]
fn damaged_files_upload_everything_valid() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("damaged", 2000));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 100] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert!(!run.damage.is_empty());
    assert!(
        run.rows_total > 1800 && run.rows_total < 2000,
        "{}",
        run.rows_total
    );
    let state = backend.state();
    assert_eq!(state.runs[0].history.len() as u64, run.rows_total);
    assert_eq!(state.runs[0].exit_code, Some(0), "the exit record survived");
    assert_clean(&state.runs[0]);
}

#[test]
fn a_truncated_run_is_marked_failed_on_the_server() {
    let home = tempfile::tempdir().unwrap();
    let path = write_run(&home.path().join("wandb"), &RunSpec::new("trunc", 1000));
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len * 7 / 10 + 3).unwrap();
    drop(file);
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    let run = &report.runs[0];
    assert_eq!(run.exit_code, Some(1));
    assert!(
        run.warnings.iter().any(|w| w.contains("no exit record")),
        "{run:?}"
    );
    let state = backend.state();
    assert_eq!(state.runs[0].exit_code, Some(1));
    assert!(state.runs[0].history.len() > 600);
    assert_clean(&state.runs[0]);
}

#[test]
fn garbage_and_empty_files_fail_cleanly_and_others_go_on() {
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    let good = write_run(&wandb, &RunSpec::new("goodrun", 50));
    let bad_dir = wandb.join("offline-run-20260101_000000-badrun");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(
        bad_dir.join("run-badrun.wandb"),
        b"this is not a wandb file",
    )
    .unwrap();
    let empty_dir = wandb.join("offline-run-20260101_000000-empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("run-empty.wandb"), b"").unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![wandb])).unwrap();
    assert_eq!(report.runs.len(), 3);
    for run in &report.runs {
        if run.path == good {
            assert_eq!(run.result, RunResult::Synced);
        } else {
            assert_eq!(run.result, RunResult::Failed, "{run:?}");
            assert!(
                run.error
                    .as_deref()
                    .unwrap()
                    .contains(&*run.path.to_string_lossy()),
                "{run:?}"
            );
        }
    }
    assert_eq!(report.exit_code(), 1);
}

/// Two throwaway users, removed on drop.
struct Users {
    names: Vec<String>,
    uids: Vec<u32>,
}

impl Users {
    fn create(n: usize) -> Users {
        let mut users = Users {
            names: Vec::new(),
            uids: Vec::new(),
        };
        for i in 0..n {
            let name = format!("wsync{}u{i}", std::process::id());
            let status = Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
                .status()
                .unwrap();
            assert!(status.success(), "useradd {name}");
            let out = Command::new("id").args(["-u", &name]).output().unwrap();
            let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            users.names.push(name);
            users.uids.push(uid);
        }
        users
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("userdel").arg(name).status();
        }
    }
}

/// Whether this process runs as root (a file it creates belongs to uid 0).
fn running_as_root(dir: &Path) -> bool {
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}

#[test]
fn a_hostile_run_uploads_nothing_it_should_not_and_names_each_refusal() {
    let home = tempfile::tempdir().unwrap();
    if !running_as_root(home.path()) {
        wandb_testkit::skip("needs root to create two users with useradd");
        return;
    }
    let users = Users::create(2);
    let (alice, bob) = (users.uids[0], users.uids[1]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let backend = TestBackend::start().unwrap();
    let key = backend.api_key().to_owned();

    // Outside the run: bob's private file, a FIFO, a file holding the API key, the user's
    // own file that wandb.save links to.
    let bobs = outside.path().join("bobs-private.txt");
    std::fs::write(&bobs, "bob's secret").unwrap();
    std::fs::set_permissions(&bobs, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&bobs, Some(bob), Some(bob)).unwrap();
    let bobs_other = outside.path().join("bobs-other.txt");
    std::fs::write(&bobs_other, "bob's other secret").unwrap();
    std::fs::set_permissions(&bobs_other, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&bobs_other, Some(bob), Some(bob)).unwrap();
    let fifo = outside.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let saved = outside.path().join("model-notes.txt");
    std::fs::write(&saved, "the user's saved file").unwrap();
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut spec = RunSpec::new("hostile", 20);
    spec.files = vec![
        "ok.txt".into(),
        "../escape.txt".into(),
        "/etc/hostname".into(),
        "bobs.txt".into(),
        "fifo.txt".into(),
        "environ".into(),
        "hard.txt".into(),
        "loop.txt".into(),
        "key.txt".into(),
        "saved.txt".into(),
    ];
    let wandb = home.path().join("wandb");
    let path = write_run(&wandb, &spec);
    let files = path.parent().unwrap().join("files");
    for name in [
        "bobs.txt",
        "fifo.txt",
        "environ",
        "hard.txt",
        "loop.txt",
        "saved.txt",
    ] {
        std::fs::remove_file(files.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(&bobs, files.join("bobs.txt")).unwrap();
    std::os::unix::fs::lchown(files.join("bobs.txt"), Some(alice), Some(alice)).unwrap();
    std::os::unix::fs::symlink(&fifo, files.join("fifo.txt")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", files.join("environ")).unwrap();
    std::fs::hard_link(&bobs_other, files.join("hard.txt")).unwrap();
    std::os::unix::fs::symlink("loop2.txt", files.join("loop.txt")).unwrap();
    std::os::unix::fs::symlink("loop.txt", files.join("loop2.txt")).unwrap();
    std::fs::write(
        files.join("key.txt"),
        format!("export WANDB_API_KEY={key}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&saved, files.join("saved.txt")).unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let opts = options(&backend, vec![path]);
    std::thread::spawn(move || {
        let _ = tx.send(sync_paths(&opts));
    });
    let report = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the sync hung (a FIFO blocked it?)")
        .unwrap();
    let run = &report.runs[0];
    assert_eq!(run.result, RunResult::Partial, "{run:?}");
    assert_eq!(report.exit_code(), 1);
    let reason = |name: &str| {
        run.refused
            .iter()
            .find(|r| r.path == name)
            .map(|r| r.reason.clone())
            .unwrap_or_else(|| panic!("{name} is not named in the report: {:?}", run.refused))
    };
    assert!(reason("../escape.txt").contains(".."));
    assert!(reason("/etc/hostname").contains("absolute"));
    assert!(reason("bobs.txt").contains(&format!("uid {bob}")));
    assert!(reason("fifo.txt").contains("FIFO"));
    assert!(reason("environ").contains("procfs"));
    assert!(reason("hard.txt").contains("hard link"));
    assert!(reason("loop.txt").contains("loop"));
    assert!(reason("key.txt").contains("API key"));
    assert!(
        !format!("{report:?}").contains(&key),
        "the key is in the report"
    );

    let state = backend.state();
    let server = &state.runs[0];
    let uploaded: Vec<&str> = server.files.keys().map(String::as_str).collect();
    for name in [
        "bobs.txt", "fifo.txt", "environ", "hard.txt", "loop.txt", "key.txt",
    ] {
        assert!(
            !uploaded.contains(&name),
            "{name} was uploaded: {uploaded:?}"
        );
    }
    for file in server.files.values() {
        assert!(!file.bytes.windows(key.len()).any(|w| w == key.as_bytes()));
        assert!(file.text() != Some("bob's secret"));
        assert!(file.text() != Some("bob's other secret"));
    }
    assert_eq!(
        server.file("saved.txt").and_then(|f| f.text()),
        Some("the user's saved file"),
        "the wandb.save symlink is followed: {uploaded:?}"
    );
    assert!(server.file("ok.txt").is_some());
    drop(users);
}

#[test]
fn directory_loops_upload_each_file_once() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("loops", 10);
    spec.files = vec!["**/*".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let files = path.parent().unwrap().join("files");
    std::fs::create_dir_all(files.join("sub/deeper")).unwrap();
    for name in [
        "a.txt",
        "b.txt",
        "sub/c.txt",
        "sub/d.txt",
        "sub/deeper/e.txt",
    ] {
        std::fs::write(files.join(name), name).unwrap();
    }
    std::os::unix::fs::symlink("..", files.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("../..", files.join("sub/deeper/top")).unwrap();
    std::fs::hard_link(files.join("a.txt"), files.join("sub/a-again.txt")).unwrap();
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    let mut saved: Vec<&str> = state.runs[0]
        .files
        .keys()
        .map(String::as_str)
        .filter(|n| n.ends_with(".txt"))
        .collect();
    saved.sort_unstable();
    assert_eq!(
        saved,
        [
            "a.txt",
            "b.txt",
            "sub/c.txt",
            "sub/d.txt",
            "sub/deeper/e.txt"
        ]
    );
    assert!(
        state.runs[0]
            .requested_files
            .iter()
            .filter(|n| n.ends_with(".txt"))
            .count()
            == 5,
        "{:?}",
        state.runs[0].requested_files
    );
}

#[test]
fn a_growing_file_uploads_a_consistent_snapshot() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("growing", 50);
    spec.files = vec!["grow.log".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let grow = path.parent().unwrap().join("files/grow.log");
    std::fs::write(&grow, b"").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        let grow = grow.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&grow)
                .unwrap();
            // One page-sized, page-aligned write per line: the size is always whole lines.
            let mut line = [b'x'; 4096];
            line[4095] = b'\n';
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                file.write_all(&line).unwrap();
            }
        })
    };
    // Let it grow past the in-memory snapshot size, so both kinds of snapshot can happen.
    while std::fs::metadata(&grow).unwrap().len() < 20 << 20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path.clone()])).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    let got = &state.runs[0].file("grow.log").unwrap().bytes;
    assert!(got.len() >= 20 << 20, "{}", got.len());
    // Whole lines, each intact: the body is a snapshot, not a mix of reads.
    assert_eq!(
        got.len() % 4096,
        0,
        "a torn snapshot of {} bytes",
        got.len()
    );
    assert!(
        got.chunks(4096)
            .all(|l| l[..4095].iter().all(|b| *b == b'x') && l[4095] == b'\n')
    );
    // The ledger's hash is the hash of what was sent.
    let ledger = std::fs::read_to_string(path.with_extension("wandb.ledger.json")).unwrap();
    let sha = sha256_hex(got);
    assert!(
        ledger.contains(&sha),
        "the ledger records another hash than the bytes sent"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_unreadable_file_fails_the_run_with_the_io_error() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("unreadable", 10);
    spec.files = vec!["locked.txt".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let locked = path.parent().unwrap().join("files/locked.txt");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let backend = TestBackend::start().unwrap();
    let report = if running_as_root(home.path()) {
        // Root reads any file: run the binary as another user instead.
        let users = Users::create(1);
        let uid = users.uids[0];
        chown_tree(home.path(), uid);
        let out = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ])
            .arg(env!("CARGO_BIN_EXE_wandb-sync"))
            .arg(&path)
            .env("HOME", home.path())
            .env("WANDB_CONFIG_DIR", home.path().join("config"))
            .env("WANDB_BASE_URL", backend.base_url())
            .env("WANDB_API_KEY", backend.api_key())
            .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
            .env("WANDB_SYNC_NO_PROGRESS", "1")
            .current_dir(home.path())
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        all
    } else {
        let report = sync_paths(&options(&backend, vec![path])).unwrap();
        assert_eq!(report.exit_code(), 1);
        format!("{:?}", report.runs[0].error)
    };
    assert!(report.contains("locked.txt"), "{report}");
    assert!(report.contains("Permission denied"), "{report}");
    let state = backend.state();
    assert!(state.runs.iter().all(|r| r.file("locked.txt").is_none()));
}

fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.symlink_metadata().unwrap().is_dir() {
            chown_tree(&path, uid);
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).unwrap();
        }
    }
}

#[test]
fn many_large_files_are_snapshotted_and_sent_in_bounded_groups() {
    let home = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("bigfiles", 10);
    spec.files = vec!["big/*".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let big = path.parent().unwrap().join("files/big");
    std::fs::create_dir_all(&big).unwrap();
    let mut want = Vec::new();
    for i in 0..3u8 {
        // 30 MiB each: every snapshot goes to a temp file, and two of them pass the 64 MiB held.
        let data: Vec<u8> = (0..30u32 << 20).map(|j| (j % 251) as u8 ^ i).collect();
        std::fs::write(big.join(format!("part{i}.bin")), &data).unwrap();
        want.push((format!("big/part{i}.bin"), sha256_hex(&data)));
    }
    let backend = TestBackend::start().unwrap();
    let report = sync_paths(&options(&backend, vec![path])).unwrap();
    assert_eq!(
        report.runs[0].result,
        RunResult::Synced,
        "{:?}",
        report.runs[0]
    );
    let state = backend.state();
    for (name, sha) in &want {
        let file = state.runs[0].file(name).unwrap();
        assert_eq!(&sha256_hex(&file.bytes), sha, "{name}");
    }
    // Each CreateRunFiles asked for some of the big files, never all three at once.
    let groups: Vec<usize> = state
        .request_log
        .iter()
        .filter(|e| e.operation.as_deref() == Some("CreateRunFiles"))
        .filter_map(|e| {
            let names = e.variables.as_ref()?.get("files")?.as_array()?;
            let n_big = names
                .iter()
                .filter(|n| n.as_str().is_some_and(|n| n.starts_with("big/")))
                .count();
            (n_big > 0).then_some(n_big)
        })
        .collect();
    // The three parts and the file `write_run` made for the pattern itself (named `*`).
    assert_eq!(groups.iter().sum::<usize>(), 4, "{groups:?}");
    assert!(
        groups.len() >= 2,
        "the three files were held at once: {groups:?}"
    );
}

#[test]
fn no_follow_links_refuses_even_the_users_own_link() {
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new("nofollow", 10);
    spec.files = vec!["saved.txt".into()];
    let path = write_run(&home.path().join("wandb"), &spec);
    let saved = outside.path().join("saved.txt");
    std::fs::write(&saved, "mine").unwrap();
    let link = path.parent().unwrap().join("files/saved.txt");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&saved, &link).unwrap();
    let backend = TestBackend::start().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wandb-sync"))
        .arg("--no-follow-links")
        .arg(&path)
        .env("HOME", home.path())
        .env("WANDB_CONFIG_DIR", home.path().join("config"))
        .env("WANDB_BASE_URL", backend.base_url())
        .env("WANDB_API_KEY", backend.api_key())
        .env("WANDB_SYNC_TEST_FAST_RETRY", "1")
        .env("WANDB_SYNC_NO_PROGRESS", "1")
        .current_dir(home.path())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("saved.txt") && all.contains("--no-follow-links"),
        "{all}"
    );
    assert!(backend.state().runs[0].file("saved.txt").is_none());
}
