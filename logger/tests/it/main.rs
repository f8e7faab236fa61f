//! Integration tests of `wandb-logger`, one module per theme. Scenarios that touch process-wide
//! state (the setup singleton, fork, signals, panics, resource limits) run in a child process:
//! this same binary, re-run with `child::entry` selected (see `child.rs`).

// Tests may unwrap: a failed unwrap is a failed test (clippy.toml allows it in `#[test]`
// functions only; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

mod common;

// Scenarios run in child processes.
mod child;
// Settings precedence through init, invalid settings, disabled and online modes.
mod settings;
// Record order and shape; the official reader accepts our files.
mod records;
// Step and commit semantics, derived and explicit summaries, metrics.
mod history;
// The writer: barriers, timed flushes, backpressure, files, I/O errors.
mod writer;
// Process events: singleton, fork, kill -9, panic, SIGTERM.
mod process;
// The launch config (WANDB_CONFIG and its chunks) reaches the run as with the SDK.
mod launch;
// A sweep agent's WANDB_SWEEP_ID and WANDB_SWEEP_PARAM_PATH reach the run as with the SDK.
mod sweep;
// Resuming offline runs from their fragments: allow, must, never, auto, kill -9.
mod resume;
