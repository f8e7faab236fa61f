//! Warnings and errors the logger reports to the user.
//!
//! A library should route its diagnostics to the program's logger, but most training scripts
//! install none, and then a `log::warn!` goes nowhere: a dropped row would be invisible. So:
//! when the program has installed a `log` backend (its maximum level is not `Off`), diagnostics
//! go through the `log` facade; when it has not, they go to stderr as `wandb: WARNING ...` or
//! `wandb: ERROR ...`, as the official SDK prints them, unless the run's settings say `silent`
//! or `quiet` (`WANDB_SILENT`, `WANDB_QUIET`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static SILENCED: AtomicBool = AtomicBool::new(false);

/// Sets whether stderr diagnostics are suppressed (from the `silent` / `quiet` settings).
pub(crate) fn set_silenced(silenced: bool) {
    SILENCED.store(silenced, Ordering::Relaxed);
}

/// Reports a diagnostic at `level` (`Warn` or `Error`).
pub(crate) fn emit(level: log::Level, args: fmt::Arguments<'_>) {
    if log::max_level() != log::LevelFilter::Off {
        log::log!(target: "wandb_logger", level, "{args}");
        return;
    }
    if SILENCED.load(Ordering::Relaxed) {
        return;
    }
    let tag = match level {
        log::Level::Error => "ERROR",
        _ => "WARNING",
    };
    eprintln!("wandb: {tag} {args}");
}

/// `log::warn!` that reaches the user when the program installed no logger (see [`emit`]).
macro_rules! warning {
    ($($arg:tt)+) => {
        $crate::diag::emit(log::Level::Warn, format_args!($($arg)+))
    };
}

/// `log::error!` that reaches the user when the program installed no logger (see [`emit`]).
macro_rules! report_error {
    ($($arg:tt)+) => {
        $crate::diag::emit(log::Level::Error, format_args!($($arg)+))
    };
}

pub(crate) use {report_error, warning};
