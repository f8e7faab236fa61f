//! The `local-process` resource: the job runs as a child process of the agent, in its own
//! process group, in the item's working folder, with the agent's environment plus the job's,
//! stdout and stderr appended to the item's log file.
//!
//! Terminating sends SIGTERM to the job's whole process group, killing sends SIGKILL to it. On
//! Linux the job's first process also gets SIGKILL when the agent dies (`PR_SET_PDEATHSIG`), so
//! an agent killed with SIGKILL leaves no job running behind it that its item's next attempt
//! (after the lease expires) would duplicate.

use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};
use crate::resource::{JobOutcome, PreparedJob, Resource, RunningJob};

/// The `local-process` resource.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalProcess;

impl Resource for LocalProcess {
    fn name(&self) -> &'static str {
        "local-process"
    }

    fn start(&self, job: &PreparedJob) -> Result<Box<dyn RunningJob>> {
        let Some((program, args)) = job.argv.split_first() else {
            return Err(Error::MissingCommand {
                item: job.item_id.clone(),
            });
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&job.log_path)
            .map_err(|e| Error::io(&job.log_path, "open the job's log file", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io(&job.log_path, "open the job's log file", e))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&job.working_dir)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| Error::Spawn {
            item: job.item_id.clone(),
            program: program.clone(),
            source,
        })?;
        Ok(Box::new(LocalJob {
            item_id: job.item_id.clone(),
            child,
            ended: false,
        }))
    }
}

/// Makes the job's first process get SIGKILL when the thread that started it (the agent's
/// loop) dies, so that a killed agent leaves no job behind.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec; it makes one system call
    // (prctl) through rustix, which neither allocates nor takes locks, so it is
    // async-signal-safe as `pre_exec` requires. std and rustix offer no safe way to do this.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// Elsewhere there is no parent-death signal: a killed agent's jobs go on running.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// A job started by [`LocalProcess`].
#[derive(Debug)]
struct LocalJob {
    item_id: String,
    child: Child,
    /// Whether the child has been reaped (its process group id may then be reused).
    ended: bool,
}

impl LocalJob {
    /// Sends `signal` to the job's process group (the group id is the child's pid).
    fn signal_group(&self, signal: Signal) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) else {
            return Ok(());
        };
        match rustix::process::kill_process_group(pid, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(Error::Resource {
                resource: "local-process".into(),
                item: self.item_id.clone(),
                reason: format!("cannot signal process group {pid:?}: {e}"),
            }),
        }
    }
}

impl RunningJob for LocalJob {
    fn poll(&mut self) -> Result<Option<JobOutcome>> {
        if self.ended {
            return Ok(None);
        }
        match self.child.try_wait() {
            Ok(None) => Ok(None),
            Ok(Some(status)) => {
                self.ended = true;
                Ok(Some(match (status.code(), status.signal()) {
                    (Some(code), _) => JobOutcome::exited(code),
                    (None, Some(signal)) => JobOutcome::signaled(signal),
                    (None, None) => JobOutcome::failed(None, format!("ended with {status}")),
                }))
            }
            Err(e) => Err(Error::Resource {
                resource: "local-process".into(),
                item: self.item_id.clone(),
                reason: format!("cannot wait for process {}: {e}", self.child.id()),
            }),
        }
    }

    fn terminate(&mut self, _grace: Duration) -> Result<()> {
        self.signal_group(Signal::TERM)
    }

    fn kill(&mut self) -> Result<()> {
        self.signal_group(Signal::KILL)
    }

    fn external_id(&self) -> Option<String> {
        Some(self.child.id().to_string())
    }
}

impl Drop for LocalJob {
    fn drop(&mut self) {
        // A job dropped unreaped (the agent gave up on it) must not stay a zombie or run on.
        if !self.ended {
            let _ = self.signal_group(Signal::KILL);
            let _ = self.child.wait();
        }
    }
}
