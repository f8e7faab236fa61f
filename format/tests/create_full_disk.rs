//! `Writer::create` on a full disk leaves no file behind: a child process (this test binary, re-run
//! by bash with a file size limit of 0 and SIGXFSZ ignored, so writes fail with EFBIG) creates a
//! file and reports what is left.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use wandb_format::{Error, Writer};

const CHILD_VAR: &str = "WANDB_FORMAT_CREATE_CHILD";

/// Child side: run by [`create_failing_to_write_the_header_removes_the_file`].
#[test]
#[ignore = "run as a child process by create_failing_to_write_the_header_removes_the_file"]
fn create_child() {
    let Ok(dir) = std::env::var(CHILD_VAR) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("run-full.wandb");
    match Writer::create(&path) {
        Ok(_) => println!("\ncreated"),
        Err(Error::Io { action, source, .. }) => {
            println!("\nfailed: {action}: {source}");
            println!("exists: {}", path.exists());
        }
        Err(other) => println!("\nother error: {other}"),
    }
}

#[test]
fn create_failing_to_write_the_header_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 0 && exec \"$0\" --exact create_child --ignored --nocapture --test-threads=1")
        .arg(&exe)
        .env(CHILD_VAR, dir.path())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            assert!(
                std::env::var("CI").is_err(),
                "bash is needed under CI: {error}"
            );
            eprintln!("SKIP: cannot run bash: {error}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("failed: write: "), "{stdout}");
    assert!(stdout.contains("exists: false"), "{stdout}");
    assert!(!dir.path().join("run-full.wandb").exists());
}
