//! Integration tests of `wandb-sync` against the `wandb-testkit` backend, one module per theme.

mod common;

// Our sync versus the official `wandb sync` on the SDK fixtures.
mod fixtures;
// Faults on every route: the final state must be the same exact state.
mod faults;
// kill -9 and restarts of the sync process; locks with two processes.
mod processes;
// Untrusted input: path escapes, damaged and truncated files.
mod hostile;
// Command line: exit codes, --dry-run, --json, credentials.
mod cli;
// Fragments of one run, --live.
mod runs;
// Artifacts: committed once through faults and kill -9, staged files, the official sync.
mod artifacts;
// Multipart uploads of large artifact files: parts, ETags, faults, kill -9, single-PUT servers.
mod multipart;
// Stalled and unreachable servers: every wait bounded by the run's budget.
mod network;
// Archives written by wandb-archive: synced in place of their folders, state next to them.
mod archive;
// HTTPS with a private authority: HTTP/2 when the server offers it, HTTP/1.1 otherwise.
mod https;
