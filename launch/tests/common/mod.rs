//! What the `wandb-launch` integration tests share: the binary, run in a folder whose queue
//! root is `q/`, with the caller's W&B run folder and config kept out of it.

#![allow(dead_code)] // Each test binary uses its own part of this module.
#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::path::Path;
use std::process::{Command, Stdio};

/// The `wandb-launch` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wandb-launch");

/// `wandb-launch args` in `dir`, with the queue root `dir/q`, no `WANDB_DIR`/`WANDB_CONFIG`
/// from the caller and no stdin; callers add their own environment.
pub(crate) fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env("WANDB_LAUNCH_QUEUE_DIR", dir.join("q"))
        .env_remove("WANDB_DIR")
        .env_remove("WANDB_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end; it must succeed (else the test fails with the command, its
/// status and its stderr). Its stdout.
pub(crate) fn succeeds(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
