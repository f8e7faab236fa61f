//! The `local-process` resource: the job runs as a child process of the agent, in its own
//! process group, in the item's working folder, with the agent's environment plus the job's,
//! stdout and stderr appended to the item's log file (or, for `wandb-launch run`, which passes
//! an empty log path, those of the caller).
//!
//! Terminating sends SIGTERM to the job's whole process group, killing sends SIGKILL to it.
//! With a job wrapper (the `wandb-launch` binary, see `wrapper.rs`; the CLI always has one)
//! the job dies with its agent and its end is written to `<id>.<attempt>.exit` beside its log;
//! without one (a library user that sets none) a killed agent's jobs run on.

use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};
use crate::resource::{JobOutcome, PreparedJob, Resource, RunningJob};
use crate::wrapper::read_exit_file;

/// The `local-process` resource.
#[derive(Clone, Debug, Default)]
pub struct LocalProcess {
    /// The `wandb-launch` binary, run as `job-wrapper` around each queued job.
    wrapper: Option<PathBuf>,
}

impl LocalProcess {
    /// A local-process resource that wraps queued jobs with `wrapper` (the `wandb-launch`
    /// binary), or runs them directly with `None`.
    pub fn new(wrapper: Option<PathBuf>) -> Self {
        LocalProcess { wrapper }
    }
}

/// The exit file of a job whose log is `log_path`: `<id>.<attempt>.exit` beside
/// `<id>.<attempt>.log`.
pub fn exit_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("exit")
}

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
        let (stdout, stderr) = if job.log_path.as_os_str().is_empty() {
            (Stdio::inherit(), Stdio::inherit())
        } else {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&job.log_path)
                .map_err(|e| Error::io(&job.log_path, "open the job's log file", e))?;
            let log_err = log
                .try_clone()
                .map_err(|e| Error::io(&job.log_path, "open the job's log file", e))?;
            (Stdio::from(log), Stdio::from(log_err))
        };
        let queued = !job.log_path.as_os_str().is_empty();
        let exit_file = queued.then(|| exit_path(&job.log_path));
        let mut command = match (&self.wrapper, &exit_file) {
            (Some(wrapper), Some(exit_file)) => {
                let _ = std::fs::remove_file(exit_file);
                let mut command = Command::new(wrapper);
                command
                    .arg("job-wrapper")
                    .arg("--exit-file")
                    .arg(exit_file)
                    .arg("--parent")
                    .arg(std::process::id().to_string())
                    .arg("--")
                    .arg(program);
                command
            }
            _ => Command::new(program),
        };
        for name in &job.env_remove {
            command.env_remove(name);
        }
        command
            .args(args)
            .current_dir(&job.working_dir)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let child = command.spawn().map_err(|source| Error::Spawn {
            item: job.item_id.clone(),
            program: program.clone(),
            source,
        })?;
        Ok(Box::new(LocalJob {
            item_id: job.item_id.clone(),
            child,
            ended: false,
            exit_file: exit_file.filter(|_| self.wrapper.is_some()),
        }))
    }
}

/// A job started by [`LocalProcess`].
#[derive(Debug)]
struct LocalJob {
    item_id: String,
    child: Child,
    /// Whether the child has been reaped (its process group id may then be reused).
    ended: bool,
    /// Where the wrapper writes the job's end (when there is a wrapper).
    exit_file: Option<PathBuf>,
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
                if let Some(record) = self.exit_file.as_deref().and_then(read_exit_file) {
                    return Ok(Some(record.outcome()));
                }
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
