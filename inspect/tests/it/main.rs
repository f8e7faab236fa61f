//! Integration tests of `wandb-inspect`: one test binary, one module per theme.
//!
//! Most tests call the library's `run` in-process; the ones about processes (`--follow`, Ctrl-C,
//! closed pipes, `--help`) run the built binary. CLI output is compared with insta snapshots in
//! `snapshots/`, with absolute paths replaced by `[FIXTURES]` and `[TMP]`.

// Test code may unwrap, helpers included (clippy.toml only covers `#[test]` functions): a failed
// unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod util;

// dump: text and JSON views, filters, NaN styles, damaged files.
mod dump;
// verify: clean, torn, damaged and unreadable files, and every exit status.
mod verify;
// summary: text and JSON, counts per type against the fixtures' expected.json.
mod summary;
// history: CSV and JSON Lines tables.
mod history;
// inputs: folders, globs, latest-run links.
mod inputs;
// archive: runs.tar.zst and runs.tar.zst:RUN read in place, as the folders read.
mod archive;
// processes: --follow on a growing file, Ctrl-C, closed pipes, --help.
mod process;
// plot and report: images, the HTML page, and the page in headless Chromium.
mod viewer;
