//! Cross-crate integration tests, one module per theme.

#![allow(clippy::unwrap_used)]

/// Helpers the themes share.
mod common;

/// Files written by our writer, uploaded by the official `wandb sync` to our test backend.
mod official_sync;

/// A run written by our logger reconstructs the same state whether the official `wandb sync` or ours
/// uploads it.
mod logger_compat;

/// Runs written by official SDK versions 0.15 to 0.31, synced by the official `wandb sync` and by
/// ours: the same reconstructed state, apart from the deliberate differences.
mod sdk_versions;

/// Media from our logger against the SDK's for the same inputs, and uploaded by both syncs.
mod media;

/// A run resumed offline (two fragments) uploads as one continuous run.
mod resume;

/// Runs of one offline sweep attach to one W&B sweep after `wandb-sync`.
mod sweep;
