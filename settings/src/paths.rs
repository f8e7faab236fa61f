//! Names and paths of an offline run directory, as W&B lays them out.
//!
//! A run lives in `<wandb_dir>/offline-run-<timespec>-<run_id>[-<suffix>]/`, where the timespec is
//! the start time in local time formatted `%Y%m%d_%H%M%S`, and holds `run-<run_id>.wandb`,
//! `files/`, `logs/` and `tmp/code/`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// Prefix of offline run directories (W&B's `run_mode` for offline runs).
pub const OFFLINE_RUN_PREFIX: &str = "offline-run";

/// The paths of one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunPaths {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The transaction log, `run-<id>.wandb`.
    pub transaction_log: PathBuf,
    /// `files/`: media, code, saved files.
    pub files_dir: PathBuf,
    /// `logs/`.
    pub logs_dir: PathBuf,
    /// `logs/debug.log`.
    pub debug_log: PathBuf,
    /// `logs/debug-internal.log`.
    pub debug_internal_log: PathBuf,
    /// `tmp/`.
    pub tmp_dir: PathBuf,
    /// `tmp/code/`.
    pub tmp_code_dir: PathBuf,
}

impl RunPaths {
    /// The paths inside `run_dir` for run `run_id`.
    pub fn new(run_dir: &Path, run_id: &str) -> RunPaths {
        let logs_dir = run_dir.join("logs");
        let tmp_dir = run_dir.join("tmp");
        RunPaths {
            run_dir: run_dir.to_path_buf(),
            transaction_log: run_dir.join(format!("run-{run_id}.wandb")),
            files_dir: run_dir.join("files"),
            debug_log: logs_dir.join("debug.log"),
            debug_internal_log: logs_dir.join("debug-internal.log"),
            logs_dir,
            tmp_code_dir: tmp_dir.join("code"),
            tmp_dir,
        }
    }
}

/// `offline-run-<timespec>-<run_id>`, plus `-<suffix>` when the suffix is not empty.
pub fn run_dir_name(run_id: &str, timespec: &str, suffix: &str) -> String {
    let mut name = format!("{OFFLINE_RUN_PREFIX}-{timespec}-{run_id}");
    if !suffix.is_empty() {
        name.push('-');
        name.push_str(suffix);
    }
    name
}

/// `start` in the system's local time zone as `YYYYMMDD_HHMMSS` (W&B's timespec). A time that
/// cannot be represented is formatted as the Unix epoch.
pub fn timespec(start: SystemTime) -> String {
    format_in(start, &TimeZone::system())
}

/// `start` at a fixed offset from UTC (in seconds, east positive) as `YYYYMMDD_HHMMSS`; an offset
/// out of range (beyond ±25:59:59) counts as UTC.
pub fn timespec_at_offset(start: SystemTime, utc_offset_seconds: i32) -> String {
    let offset = Offset::from_seconds(utc_offset_seconds).unwrap_or(Offset::UTC);
    format_in(start, &TimeZone::fixed(offset))
}

fn format_in(start: SystemTime, tz: &TimeZone) -> String {
    let ts = Timestamp::try_from(start).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone())
        .strftime("%Y%m%d_%H%M%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names() {
        assert_eq!(
            run_dir_name("abc", "20250813_124246", ""),
            "offline-run-20250813_124246-abc"
        );
        assert_eq!(
            run_dir_name("abc", "20250813_124246", "x"),
            "offline-run-20250813_124246-abc-x"
        );
    }

    #[test]
    fn timespecs() {
        // 2025-08-13T12:42:46Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_088_966);
        assert_eq!(timespec_at_offset(t, 0), "20250813_124246");
        assert_eq!(timespec_at_offset(t, 2 * 3600), "20250813_144246");
        assert_eq!(timespec_at_offset(t, -13 * 3600), "20250812_234246");
        assert_eq!(timespec(t).len(), 15);
    }

    #[test]
    fn run_paths() {
        let p = RunPaths::new(Path::new("/r/wandb/offline-run-x-abc"), "abc");
        assert_eq!(
            p.transaction_log,
            Path::new("/r/wandb/offline-run-x-abc/run-abc.wandb")
        );
        assert_eq!(p.files_dir, Path::new("/r/wandb/offline-run-x-abc/files"));
        assert_eq!(
            p.debug_internal_log,
            Path::new("/r/wandb/offline-run-x-abc/logs/debug-internal.log")
        );
        assert_eq!(
            p.tmp_code_dir,
            Path::new("/r/wandb/offline-run-x-abc/tmp/code")
        );
    }
}
