//! Cross-crate integration tests, one module per theme.

#![allow(clippy::unwrap_used)]

/// Files written by our writer, uploaded by the official `wandb sync` to our test backend.
mod official_sync;

/// A run written by our logger reconstructs the same state whether the official `wandb sync` or ours
/// uploads it.
mod logger_compat;
