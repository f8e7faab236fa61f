//! The built binary: `--follow` on a growing file, Ctrl-C, closed pipes, `--help`, exit codes.
//!
//! Waits are bounded (a deadline, then the child is killed and the test fails); no sleep is an
//! assertion.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use wandb_format::{Durability, Writer};
use wandb_inspect::{Cli, Console, Exit, run};

use crate::util::{exit_record, fixture, history_record, run_record};

const DEADLINE: Duration = Duration::from_secs(60);

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wandb-inspect"));
    command
        .env_remove("NO_COLOR")
        .env_remove("RAYON_NUM_THREADS");
    command
}

/// Waits for `child` to exit, killing it (and failing) past the deadline.
fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the child did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawns `wandb-inspect dump --follow --json` on `path`; returns the child and a channel of its
/// stdout lines.
fn follow(path: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = binary()
        .args(["dump", "--follow", "--json", "--poll-ms", "10"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(DEADLINE)
        .expect("a line should arrive before the deadline")
}

#[test]
fn follow_prints_a_growing_file_until_its_exit_record() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-live.wandb");
    let mut writer = Writer::create(&path).unwrap();
    writer.append_record(&run_record(1, "live")).unwrap();
    for step in 0..3 {
        writer
            .append_record(&history_record(step + 2, step, &[("loss", "0.5".into())]))
            .unwrap();
    }
    writer.persist(Durability::Flush).unwrap();

    let (mut child, rx) = follow(&path);
    let mut lines: Vec<String> = (0..4).map(|_| next_line(&rx)).collect();

    // The rest, framed by hand and appended in two writes that split a multi-chunk record, so
    // the follower may see the file end inside a record: it must hold the record back, not report
    // damage. (The pause only gives it the chance to look; the assertions hold either way.)
    writer.close().unwrap();
    let start = std::fs::metadata(&path).unwrap().len();
    let mut framer = wandb_format::Framer::at_offset(start);
    let mut bytes = Vec::new();
    let big = history_record(5, 3, &[("blob", format!("\"{}\"", "x".repeat(80_000)))]);
    framer.frame(&prost::Message::encode_to_vec(&big), &mut bytes);
    let split = bytes.len() / 2;
    for step in 4..50 {
        let record = history_record(step + 2, step, &[("loss", "0.25".into())]);
        framer.frame(&prost::Message::encode_to_vec(&record), &mut bytes);
    }
    framer.frame(
        &prost::Message::encode_to_vec(&exit_record(52, 0)),
        &mut bytes,
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&bytes[..split]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    file.write_all(&bytes[split..]).unwrap();
    file.flush().unwrap();

    let status = wait(&mut child);
    lines.extend(rx.iter());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(lines.len(), 52, "{stderr}");
    let nums: Vec<i64> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["num"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(nums, (1..=52).collect::<Vec<_>>());
    assert!(lines[51].contains(r#""type":"exit""#));
}

#[cfg(unix)]
#[test]
fn follow_stops_cleanly_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-forever.wandb");
    let mut writer = Writer::create(&path).unwrap();
    writer.append_record(&run_record(1, "forever")).unwrap();
    writer.persist(Durability::Flush).unwrap();

    let (mut child, rx) = follow(&path);
    assert!(next_line(&rx).contains(r#""type":"run""#));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait(&mut child);
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[test]
fn follow_takes_exactly_one_file() {
    let output = binary()
        .args(["dump", "--follow"])
        .arg(fixture("plain"))
        .arg(fixture("console"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--follow takes exactly one file"));
}

#[test]
fn a_closed_pipe_ends_the_run_quietly_with_0() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run-big.wandb");
    let mut writer = Writer::create(&path).unwrap();
    for step in 0..20_000 {
        writer
            .append_record(&history_record(
                step + 1,
                step,
                &[("loss", "0.125".into()), ("acc", "0.5".into())],
            ))
            .unwrap();
    }
    writer.close().unwrap();
    for args in [
        &["dump", "--json"][..],
        &["dump"],
        &["history"],
        &["history", "--format", "jsonl"],
    ] {
        let mut child = binary()
            .args(args)
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let status = wait(&mut child);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "{args:?}: {status:?}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// A writer whose reader went away after `left` bytes.
struct ClosingPipe {
    left: usize,
}

impl std::io::Write for ClosingPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn broken_pipe_in_process_is_a_clean_exit_for_every_command() {
    let path = fixture("multiblock");
    let path = path.to_str().unwrap();
    for args in [
        vec!["dump", "--json", path],
        vec!["verify", path, path],
        vec!["summary", path],
        vec!["history", "--format", "jsonl", path],
    ] {
        let cli = Cli::try_parse_from(std::iter::once("wandb-inspect").chain(args.iter().copied()))
            .unwrap();
        let mut out = ClosingPipe { left: 10 };
        let mut err = Vec::new();
        let exit = run(&cli, &mut Console::new(&mut out, &mut err));
        assert_eq!(exit, Exit::Ok, "{args:?}");
        assert!(
            err.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&err)
        );
    }
}

#[test]
fn help_and_usage_errors() {
    let output = binary().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["dump", "verify", "summary", "history", "Exit status"] {
        assert!(help.contains(word), "{help}");
    }
    let output = binary().args(["dump", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--non-finite") && help.contains("--follow"),
        "{help}"
    );
    let output = binary().arg("dump").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = binary()
        .args(["history", "--format", "xml"])
        .arg(fixture("plain"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn binary_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let flipped = crate::util::damaged_copy(tmp.path(), "plain", "flipped.wandb", |bytes| {
        bytes[1000] ^= 0x10
    });
    let code = |args: &[&std::ffi::OsStr]| binary().args(args).output().unwrap().status.code();
    assert_eq!(
        code(&["verify".as_ref(), fixture("plain").as_os_str()]),
        Some(0)
    );
    assert_eq!(code(&["verify".as_ref(), flipped.as_os_str()]), Some(1));
    assert_eq!(
        code(&["verify".as_ref(), tmp.path().join("missing").as_os_str()]),
        Some(2)
    );
    // Colour is never used on a pipe.
    let output = binary().arg("verify").arg(&flipped).output().unwrap();
    assert!(!output.stdout.contains(&0x1b));
}
