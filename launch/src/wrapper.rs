//! The job wrapper: how `local-process` ties a job's life to its agent's, and records the
//! job's end where the next agent can find it.
//!
//! The agent starts `wandb-launch job-wrapper --exit-file F --parent PID -- COMMAND...` as the
//! leader of a new process group; the wrapper starts the command in that same group and:
//!
//! - asks the kernel (`PR_SET_PDEATHSIG`) for SIGHUP when the agent dies; on it, it kills its
//!   whole process group with SIGKILL. So an agent killed with SIGKILL (or a lost node) leaves
//!   no job running that its item's next attempt would duplicate;
//! - ignores SIGTERM itself (the agent's SIGTERM goes to the whole group: the command decides
//!   what to do with it, the wrapper waits for it);
//! - when the command ends, writes its exit code or signal to the exit file (atomically), then
//!   exits with the same status (an agent dying after the command ended no longer stops the
//!   wrapper from writing it). An agent that returns an expired item first looks for this
//!   file: a job that ended just before its agent died is recorded as ended, not run again.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_whole_unsynced;
use crate::resource::JobOutcome;

/// What the exit file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The command's exit code.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
}

impl ExitRecord {
    /// The outcome it records.
    pub fn outcome(self) -> JobOutcome {
        match (self.exit_code, self.signal) {
            (Some(code), _) => JobOutcome::exited(code),
            (None, Some(signal)) => JobOutcome::signaled(signal),
            (None, None) => JobOutcome::failed(None, "ended without exit code or signal"),
        }
    }
}

/// Reads an exit file (`None` if absent or unreadable).
pub fn read_exit_file(path: &Path) -> Option<ExitRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Runs the wrapper (the hidden `job-wrapper` subcommand): see the module docs.
pub fn run_wrapper(exit_file: &Path, parent: i32, argv: &[String]) -> ExitCode {
    match wrap(exit_file, parent, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wandb-launch job-wrapper: {e}");
            ExitCode::from(127)
        }
    }
}

fn kill_own_group() {
    let _ = rustix::process::kill_current_process_group(Signal::KILL);
}

fn parent_alive(parent: i32) -> bool {
    Pid::as_raw(rustix::process::getppid()) == parent
}

fn wrap(exit_file: &Path, parent: i32, argv: &[String]) -> Result<ExitCode> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::invalid(None, "job-wrapper", "no command"));
    };
    // SIGTERM and SIGHUP are caught from here on (SIGTERM only so that it does not end us).
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Error::io(exit_file, "install the wrapper's signal handlers", e))?;
    rustix::process::set_parent_process_death_signal(Some(Signal::HUP))
        .map_err(|e| Error::io(exit_file, "ask for the parent-death signal", e.into()))?;
    if !parent_alive(parent) {
        kill_own_group();
        return Ok(ExitCode::from(137));
    }
    // Set once the command has ended: from then on the end is being written, and an agent
    // that dies meanwhile must not stop that (the next agent reads the file).
    let ended = Arc::new(AtomicBool::new(false));
    let ended_seen = Arc::clone(&ended);
    std::thread::Builder::new()
        .name("job-wrapper-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == signal_hook::consts::SIGHUP
                    && !parent_alive(parent)
                    && !ended_seen.load(Ordering::SeqCst)
                {
                    kill_own_group();
                }
            }
        })
        .map_err(|e| Error::io(exit_file, "start the wrapper's signal thread", e))?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|source| Error::Spawn {
            item: exit_file.display().to_string(),
            program: program.clone(),
            source,
        })?;
    ended.store(true, Ordering::SeqCst);
    use std::os::unix::process::ExitStatusExt as _;
    let record = ExitRecord {
        exit_code: status.code(),
        signal: status.signal(),
    };
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    write_whole_unsynced(exit_file, &bytes)?;
    let code = match (record.exit_code, record.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    };
    Ok(ExitCode::from(
        u8::try_from(code.clamp(0, 255)).unwrap_or(1),
    ))
}
