//! Integration tests of `wandb-sweeps`, one module per theme.

// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

// Configuration: W&B's documented examples parse; bad configurations fail with exact messages.
mod config;
// The argv a run is started with, from the command macros.
mod command;
// The same arguments as the official SDK's agent, checked against the SDK itself.
mod sdk_agent;
// Grid, random and bayes search.
mod search;
// Hyperband early termination on scripted metric curves.
mod hyperband;
// The persisted Sweep state: run cap, target, pause, cancel, JSON round trip.
mod sweep;

use std::path::PathBuf;

use wandb_sweeps::SweepConfig;

/// The path of a configuration under `tests/configs/`.
pub fn config_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

/// Parses `tests/configs/<name>`, panicking with the error (tests only).
pub fn load(name: &str) -> SweepConfig {
    let path = config_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SweepConfig::from_yaml_str(&text, Some(name)).unwrap_or_else(|e| panic!("{e}"))
}
