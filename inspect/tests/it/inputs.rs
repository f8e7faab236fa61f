//! Inputs: `wandb/` folders with `latest-run` links, run folders and glob patterns.

use wandb_inspect::Exit;

use crate::util::{fixture, inspect, json_lines, redact};

/// A `wandb/` folder holding copies of two fixtures and a `latest-run` link to the second.
fn wandb_folder(root: &std::path::Path) -> std::path::PathBuf {
    let wandb = root.join("wandb");
    for (run, scenario) in [
        ("offline-run-20261122_031918-fxplain0", "plain"),
        ("offline-run-20261122_032014-fxconsl0", "console"),
    ] {
        let dir = wandb.join(run);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        let source = fixture(scenario);
        std::fs::copy(&source, dir.join(source.file_name().unwrap())).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        wandb.join("offline-run-20261122_032014-fxconsl0"),
        wandb.join("latest-run"),
    )
    .unwrap();
    wandb
}

#[test]
fn wandb_folders_are_searched_and_latest_run_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let output = inspect(&[&"verify", &tmp.path(), &wandb, &wandb.join("latest-run")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(
        redact(&output.stdout, Some(tmp.path())),
        "[TMP]/wandb/offline-run-20261122_031918-fxplain0/run-fxplain0.wandb: OK (162 records, 21293 bytes)\n\
         [TMP]/wandb/offline-run-20261122_032014-fxconsl0/run-fxconsl0.wandb: OK (98 records, 6584 bytes)\n"
    );
}

#[test]
fn glob_patterns_are_expanded_here() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let pattern = wandb.join("*/run-*.wandb");
    let output = inspect(&[&"summary", &"--json", &pattern]);
    assert_eq!(output.exit, Exit::Ok);
    let ids: Vec<String> = json_lines(&output.stdout)
        .iter()
        .map(|line| line["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["fxplain0", "fxconsl0"]);
}

#[test]
fn a_run_folder_works_for_history() {
    let tmp = tempfile::tempdir().unwrap();
    let wandb = wandb_folder(tmp.path());
    let output = inspect(&[&"history", &wandb.join("latest-run")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(output.stdout.lines().count(), 1 + 4);
}

#[test]
fn folders_without_record_files_are_a_warning_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let output = inspect(&[&"dump", &tmp.path()]);
    assert_eq!(output.exit, Exit::Damage);
    assert!(
        output.stderr.contains("warning: ") && output.stderr.contains(": holds no run: "),
        "{}",
        output.stderr
    );
}

#[path = "../../../format/tests/input_rules/table.rs"]
mod input_rules;

/// Runs the built `wandb-inspect ARGS` in `cwd`, stdout and stderr to files, killed after 60 s so
/// that a hang (on a FIFO, say) fails the test instead of blocking it.
fn run_binary(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let stdout = out_dir.path().join("stdout");
    let stderr = out_dir.path().join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wandb-inspect"))
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .args(args)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("wandb-inspect {args:?} did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap(),
    )
}

/// The shared input rules, through the binary: `verify` reads every file found, in order, refuses
/// what is not a regular file by name (exit 2), reports bytes that are not a `.wandb` log as
/// damage (exit 1), warns about inputs holding no run, and exits with 1 when nothing was found.
#[test]
fn the_input_rules_table_through_the_binary() {
    use input_rules::{CASES, Problem};
    let tmp = tempfile::tempdir().unwrap();
    input_rules::build(tmp.path());
    for case in CASES {
        let mut args = vec!["verify"];
        args.extend(case.args);
        let (code, stdout, stderr) = run_binary(tmp.path(), &args);
        let context = format!("case: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", case.name);
        let verified: Vec<&str> = stdout
            .lines()
            .filter(|line| line.contains(": OK (") || line.contains(": DAMAGED ("))
            .map(|line| line.split(": ").next().unwrap())
            .collect();
        let want: Vec<&str> = case.files.iter().map(|(path, _)| *path).collect();
        assert_eq!(verified, want, "{context}");
        for (problem, path) in case.problems {
            let want = match problem {
                Problem::NoRun => format!("wandb-inspect: warning: {path}: {}", problem.message()),
                Problem::NotWandb => {
                    format!("{path}: damage: offset 0, 12 bytes: {}", problem.message())
                }
                _ => format!("wandb-inspect: error: {path}: {}", problem.message()),
            };
            assert!(
                stdout.contains(&want) || stderr.contains(&want),
                "missing {want:?}\n{context}"
            );
        }
        let error = case
            .problems
            .iter()
            .any(|(p, _)| !p.is_warning() && *p != Problem::NotWandb);
        let damage = case.problems.iter().any(|(p, _)| *p == Problem::NotWandb);
        let want_code = if error {
            2
        } else if damage || case.files.is_empty() {
            1
        } else {
            0
        };
        assert_eq!(code, Some(want_code), "{context}");
    }
}

/// Every command refuses a FIFO named `*.wandb` by name and type, with exit 2, instead of blocking
/// on it (`dump --follow` and `history` too).
#[test]
fn every_command_refuses_a_fifo_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    input_rules::build(tmp.path());
    let fifo = "fifo/offline-run-f/run-ffff.wandb";
    let want = format!(
        "wandb-inspect: error: {fifo}: {}",
        input_rules::Problem::Fifo.message()
    );
    for args in [
        &["verify", fifo][..],
        &["dump", fifo],
        &["dump", "--follow", fifo],
        &["summary", fifo],
        &["history", fifo],
        &["summary", "fifo"],
    ] {
        let (code, stdout, stderr) = run_binary(tmp.path(), args);
        assert_eq!(code, Some(2), "{args:?}\n{stdout}{stderr}");
        assert_eq!(stderr.trim_end(), want, "{args:?}");
    }
}
