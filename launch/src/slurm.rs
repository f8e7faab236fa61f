//! The `slurm` resource: the job is submitted to a SLURM cluster with `sbatch`, followed with
//! `scontrol show job` (and `sacct` once the controller has forgotten it), and cancelled with
//! `scancel`.
//!
//! # Submission
//!
//! [`Slurm::start`] writes a batch script beside the item's log file
//! (`<id>.<attempt>.sbatch` in the queue) that exports the job's variables ([`PreparedJob::env`]: the
//! `WANDB_*` launch variables with `WANDB_RUN_ID`), changes to the working folder and `exec`s the
//! command, so the training program *is* the batch shell's process. It is submitted as
//!
//! ```text
//! sbatch --parsable --job-name=<item> --chdir=<working dir> --output=<log> --error=<log>
//!        --open-mode=append --signal=B:TERM@<secs> [--requeue] [options from resource_args] <script>
//! ```
//!
//! (`--output`, `--error` and `--open-mode` only when the job has a log file: without one, for
//! `wandb-launch run`, SLURM writes `slurm-<job id>.out` in the working folder), and the job id
//! that `--parsable` prints becomes the job's [`RunningJob::external_id`].
//! Since the variables live in the script, a job that SLURM requeues (preemption,
//! `scontrol requeue`, a node failure with `--requeue`) runs again with the same
//! `WANDB_RUN_ID`, and its output is appended to the same log. On such a rerun
//! (`SLURM_RESTART_COUNT` > 0) the script also sets `WANDB_RESUME=allow` unless the item set
//! `WANDB_RESUME` itself, so the run continues instead of starting over.
//!
//! Before submitting, `start` asks `squeue` for a live job of this user named after the item: an
//! earlier attempt's job that is still pending or running (its agent died or lost the lease,
//! and the item came back to the queue) is followed instead of submitted a second time, so an
//! item never runs twice at once. A job that *ended* while no agent followed it is not found
//! this way, and the new attempt runs it again (with `WANDB_RESUME=allow` set by the agent's
//! environment or the script, the run continues). [`Slurm::follow`] follows a job by its id.
//!
//! Variables that hold secrets (names with `API_KEY`, `TOKEN`, `SECRET` or `PASSWORD`) are not
//! written to the script: they reach the job through `sbatch`'s own environment (SLURM's default
//! `--export=ALL`), so no file in the queue folder holds them.
//!
//! # The pre-timeout signal
//!
//! `--signal=B:TERM@<secs>` makes SLURM send SIGTERM to the batch shell `<secs>` seconds before
//! the time limit (SLURM's resolution is about a minute, so it may come up to 60 s earlier).
//! The `B:` form is needed: without it SLURM signals only job steps started by `srun`, never
//! the batch script's own processes (checked on SLURM 22.05: a plain `--signal=TERM@30` job
//! never saw the signal and was killed at its limit). Because the script `exec`s the command,
//! the training program receives it; our logger turns SIGTERM into a `preempting` record.
//! `<secs>` is the `signal-before` resource arg (default [`DEFAULT_SIGNAL_BEFORE`]); a
//! `signal` resource arg replaces the whole option.
//!
//! # resource_args
//!
//! Keys map to `sbatch` options: `partition`, `time`, `cpus` (`--cpus-per-task`), `mem` or
//! `memory` (`--mem`), `gres`, `account`, `qos`, `nodes`, `requeue` (a boolean: `--requeue` or
//! `--no-requeue`), `signal-before` (seconds, see above), and any other key `k` as `--k=value`
//! (`true` gives a bare `--k`, `false` leaves it out). Keys must be plain `[a-z][a-z-]*`
//! (`_` is read as `-`), values strings, numbers or booleans without control characters:
//! every option is one argument of `sbatch`'s argv (no shell is involved), and nothing else can
//! be injected. The options that wandb-launch sets itself (`output`, `error`, `input`, `chdir`,
//! `open-mode`, `parsable`, `wrap`) are refused. [`sbatch_options`] checks them at `add` time.
//!
//! # States
//!
//! `PENDING`, `CONFIGURING`, `RUNNING`, `COMPLETING`, `SUSPENDED`, `REQUEUED`, `REQUEUE_HOLD`,
//! `REQUEUE_FED`, `RESIZING`, `SIGNALING`, `STAGE_OUT`, `STOPPED`, `SPECIAL_EXIT` and
//! `RESV_DEL_HOLD` mean the job is not over (a requeued job runs again under the same id).
//! `COMPLETED` and `FAILED` end it with its exit code (or the signal that ended it);
//! `CANCELLED`, `TIMEOUT`, `PREEMPTED`, `NODE_FAIL`, `BOOT_FAIL`, `DEADLINE` and
//! `OUT_OF_MEMORY` end it with [`JobOutcome::failure`] naming the state. A job that was asked
//! to stop through [`RunningJob::terminate`] or [`RunningJob::kill`] ends with the failure
//! [`CANCELLED`], whatever SLURM then calls it (a job that exits on SIGTERM is `FAILED` to
//! SLURM).
//!
//! Every command runs with a deadline ([`Slurm::with_command_timeout`], default
//! [`DEFAULT_COMMAND_TIMEOUT`]), so a hung `slurmctld` makes a poll fail (the agent polls again
//! later), never hang the agent; after a command ran past its deadline, the resource's commands
//! fail at once for one more deadline, so an agent following many jobs loses one deadline per
//! tick, not one per job, and keeps renewing its leases. Without accounting (`sacct` refused), the end state must be
//! read while `scontrol` still knows the job (SLURM's `MinJobAge`, 300 s by default): a job that
//! neither knows ends, after [`FORGOTTEN_POLLS`] polls in a row, with a failure saying so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::resource::{JobOutcome, PreparedJob, Resource, RunningJob};

/// How long one `sbatch`, `scontrol`, `sacct` or `scancel` may take by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Seconds before the time limit that SLURM sends SIGTERM, unless `signal-before` says otherwise.
pub const DEFAULT_SIGNAL_BEFORE: u32 = 90;

/// The failure of a job stopped through [`RunningJob::terminate`] or [`RunningJob::kill`].
pub const CANCELLED: &str = "cancelled";

/// Polls in a row in which neither `scontrol` nor `sacct` knows the job before it counts as lost.
pub const FORGOTTEN_POLLS: u32 = 3;

/// Options wandb-launch sets itself, which `resource_args` may not override.
const RESERVED_OPTIONS: &[&str] = &[
    "output",
    "error",
    "input",
    "chdir",
    "open-mode",
    "parsable",
    "wrap",
];

/// The `slurm` resource. [`Slurm::default`] uses the agent's environment (`SLURM_CONF`, `PATH`)
/// to find the cluster.
#[derive(Clone, Debug)]
pub struct Slurm {
    conf: Option<PathBuf>,
    command_timeout: Duration,
    /// Until when SLURM counts as not answering (set when a command runs past its deadline),
    /// shared by every job of this resource: meanwhile commands fail at once, so a hung
    /// controller costs one agent tick one deadline, not one per job.
    silent_until: Arc<Mutex<Option<Instant>>>,
}

impl Default for Slurm {
    fn default() -> Self {
        Slurm {
            conf: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            silent_until: Arc::default(),
        }
    }
}

impl Slurm {
    /// The same resource talking to the cluster of this `slurm.conf` (passed as `SLURM_CONF` to
    /// every SLURM command, and so to the job, instead of the agent's own).
    #[must_use]
    pub fn with_conf(mut self, conf: impl Into<PathBuf>) -> Self {
        self.conf = Some(conf.into());
        self
    }

    /// The same resource with another deadline for each SLURM command.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Runs a SLURM command with this resource's `SLURM_CONF` and deadline.
    fn run(&self, program: &str, args: &[String]) -> std::result::Result<String, String> {
        self.run_with(program, args, &[], &[])
    }

    /// [`Slurm::run`] with the variables `remove` taken out of the command's environment and
    /// those of `set` put in.
    fn run_with(
        &self,
        program: &str,
        args: &[String],
        remove: &[String],
        set: &[(String, String)],
    ) -> std::result::Result<String, String> {
        let silent_until = *self
            .silent_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = silent_until.filter(|until| Instant::now() < *until) {
            return Err(format!(
                "`{program}` not run: SLURM did not answer within {:?} a moment ago (trying again in {:.0?})",
                self.command_timeout,
                until.saturating_duration_since(Instant::now())
            ));
        }
        let mut command = Command::new(program);
        command.args(args);
        for name in remove {
            command.env_remove(name);
        }
        command.envs(set.iter().map(|(k, v)| (k, v)));
        if let Some(conf) = &self.conf {
            command.env("SLURM_CONF", conf);
        }
        run_bounded(command, self.command_timeout).map_err(|problem| {
            if problem.timed_out {
                *self
                    .silent_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now() + self.command_timeout);
            }
            format!("`{program} {}`: {}", args.join(" "), problem.message)
        })
    }
}

impl Resource for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn start(&self, job: &PreparedJob) -> Result<Box<dyn RunningJob>> {
        let item = job.item_id.as_str();
        if job.argv.is_empty() {
            return Err(Error::MissingCommand {
                item: item.to_owned(),
            });
        }
        let options = sbatch_options(&job.resource_args, Some(item))?;
        if let Some(job_id) = self.live_job(item) {
            // An earlier attempt's job is still queued or running: its agent died or lost the
            // lease, and the item came back. Follow that job instead of running the item twice.
            log::warn!(
                "item {item}: SLURM job {job_id} of an earlier attempt is still alive; following it instead of submitting attempt {} anew",
                job.attempt
            );
            return Ok(Box::new(SlurmJob::new(self, item, job_id)));
        }
        // Without a log file (`wandb-launch run`), the output goes where SLURM puts it by
        // default (slurm-<job id>.out in the working folder) and the script to the temp folder.
        let has_log = !job.log_path.as_os_str().is_empty();
        let script_path = if has_log {
            script_path(&job.log_path, job.attempt)
        } else {
            std::env::temp_dir().join(format!(
                "wandb-launch-{}.{}.sbatch",
                job_name(item),
                job.attempt
            ))
        };
        let script = batch_script(job)?;
        write_script(&script_path, &script)?;

        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", job_name(item)),
            format!("--chdir={}", job.working_dir.display()),
        ];
        if has_log {
            if let Some(parent) = job.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(parent, "create the job's log folder", e))?;
            }
            let log = job.log_path.display().to_string();
            args.push(format!("--output={log}"));
            args.push(format!("--error={log}"));
            args.push("--open-mode=append".to_owned());
        }
        args.extend(options);
        args.push(script_path.display().to_string());
        // sbatch hands its own environment to the job (--export=ALL): take out what the job
        // must not inherit, and pass secrets this way rather than in the script file; the
        // script sets the other variables.
        let secrets: Vec<(String, String)> = job
            .env
            .iter()
            .filter(|(name, _)| is_secret(name))
            .cloned()
            .collect();
        let out = self.run_with("sbatch", &args, &job.env_remove, &secrets);
        if !has_log {
            // SLURM keeps its own copy of the script (a requeue runs that one).
            let _ = std::fs::remove_file(&script_path);
        }
        let out = out.map_err(|reason| resource_error(item, reason))?;
        let job_id = parse_parsable(&out).ok_or_else(|| {
            resource_error(
                item,
                format!("sbatch printed no job id (its output: {:?})", out.trim()),
            )
        })?;
        log::info!("item {item}: submitted to SLURM as job {job_id}");
        Ok(Box::new(SlurmJob::new(self, item, job_id)))
    }
}

impl Slurm {
    /// Follows SLURM job `job_id` of item `item_id` (submitted earlier, e.g. by an agent that
    /// has since stopped) as if this resource had just submitted it.
    pub fn follow(&self, item_id: &str, job_id: &str) -> Result<Box<dyn RunningJob>> {
        if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::invalid(
                Some(item_id),
                "external_id",
                format!("{job_id:?} is not a SLURM job id"),
            ));
        }
        Ok(Box::new(SlurmJob::new(self, item_id, job_id.to_owned())))
    }

    /// The id of this user's job named after `item` that is still pending or running, if any
    /// (`squeue --me -n <name>`). A failing `squeue` is logged and counts as none.
    fn live_job(&self, item: &str) -> Option<String> {
        let args = [
            "--me".to_owned(),
            "-h".into(),
            "-t".into(),
            "PENDING,CONFIGURING,RUNNING,SUSPENDED,REQUEUED,REQUEUE_HOLD,REQUEUE_FED,RESIZING"
                .into(),
            "-n".into(),
            job_name(item),
            "-o".into(),
            "%i".into(),
        ];
        match self.run("squeue", &args) {
            Ok(out) => out
                .lines()
                .map(str::trim)
                .find(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
                .map(str::to_owned),
            Err(problem) => {
                log::warn!("item {item}: cannot look for an earlier attempt's job: {problem}");
                None
            }
        }
    }
}

/// The `sbatch` options for an item's `resource_args` (see the module docs), always including
/// the pre-timeout `--signal`, or an [`Error::Invalid`] naming the item and the key.
pub fn sbatch_options(
    resource_args: &serde_json::Map<String, serde_json::Value>,
    item: Option<&str>,
) -> Result<Vec<String>> {
    let mut options = Vec::new();
    let mut signal_before = DEFAULT_SIGNAL_BEFORE;
    let mut signal_given = false;
    for (key, value) in resource_args {
        let name = key.replace('_', "-");
        let field = format!("resource_args.{key}");
        let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if !valid_name {
            return Err(Error::invalid(
                item,
                field,
                "an sbatch option name must be plain lowercase letters and dashes ([a-z][a-z-]*)",
            ));
        }
        if RESERVED_OPTIONS.contains(&name.as_str()) {
            return Err(Error::invalid(
                item,
                field,
                format!("--{name} is set by wandb-launch (the job's log, folder and script)"),
            ));
        }
        let text = match value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(_) => None,
            _ => {
                return Err(Error::invalid(
                    item,
                    field,
                    "must be a string, a number or a boolean",
                ));
            }
        };
        if let Some(text) = &text {
            if text.chars().any(char::is_control) {
                return Err(Error::invalid(
                    item,
                    field,
                    "must not contain control characters (newlines, tabs, NUL)",
                ));
            }
            if text.is_empty() {
                return Err(Error::invalid(item, field, "must not be empty"));
            }
        }
        match (name.as_str(), value, text) {
            ("signal-before", _, Some(text)) => {
                signal_before = text.parse().map_err(|_| {
                    Error::invalid(
                        item,
                        &field,
                        format!("must be a whole number of seconds, not {text:?}"),
                    )
                })?;
            }
            ("requeue", serde_json::Value::Bool(true), _) => options.push("--requeue".to_owned()),
            ("requeue", serde_json::Value::Bool(false), _) => {
                options.push("--no-requeue".to_owned());
            }
            ("signal-before" | "requeue", _, _) => {
                let expected = if name == "requeue" {
                    "a boolean"
                } else {
                    "a whole number of seconds"
                };
                return Err(Error::invalid(item, field, format!("must be {expected}")));
            }
            (_, serde_json::Value::Bool(true), _) => options.push(format!("--{name}")),
            (_, serde_json::Value::Bool(false), _) => {}
            (_, _, Some(text)) => {
                let option = match name.as_str() {
                    "cpus" => "cpus-per-task",
                    "memory" => "mem",
                    other => other,
                };
                signal_given |= option == "signal";
                options.push(format!("--{option}={text}"));
            }
            (_, _, None) => {}
        }
    }
    if !signal_given {
        options.push(format!("--signal=B:TERM@{signal_before}"));
    }
    Ok(options)
}

/// Where the batch script of `attempt` goes: beside the log, `<log stem>.<attempt>.sbatch`, or
/// `<log stem>.sbatch` when the stem already ends in `.<attempt>` (the queue's `<id>.<n>.log`).
fn script_path(log_path: &Path, attempt: u32) -> PathBuf {
    let stem = log_path
        .file_stem()
        .map_or_else(|| "job".into(), |s| s.to_string_lossy().into_owned());
    let name = if stem.ends_with(&format!(".{attempt}")) {
        format!("{stem}.sbatch")
    } else {
        format!("{stem}.{attempt}.sbatch")
    };
    log_path.with_file_name(name)
}

/// The batch script: the job's variables, its folder, then `exec` of its command.
fn batch_script(job: &PreparedJob) -> Result<String> {
    let item = job.item_id.as_str();
    let mut script = String::from("#!/bin/sh\n");
    let _ = writeln!(
        script,
        "# wandb-launch: item {} attempt {}, run {} (generated; SLURM runs it again on a requeue)",
        one_line(item),
        job.attempt,
        one_line(&job.run_id)
    );
    for name in &job.env_remove {
        if valid_var_name(name) {
            let _ = writeln!(script, "unset {name}");
        }
    }
    let mut sets_resume = false;
    for (name, value) in &job.env {
        if !valid_var_name(name) {
            return Err(Error::invalid(
                Some(item),
                format!("env.{name}"),
                "not a valid environment variable name",
            ));
        }
        if value.contains('\0') {
            return Err(Error::invalid(
                Some(item),
                format!("env.{name}"),
                "contains a NUL byte",
            ));
        }
        sets_resume |= name == "WANDB_RESUME";
        if is_secret(name) {
            let _ = writeln!(
                script,
                "# {name}: handed over through sbatch's environment, not written here"
            );
            continue;
        }
        let _ = writeln!(script, "export {name}={}", shell_quote(value));
    }
    if !sets_resume {
        script.push_str(
            "# A rerun after a requeue continues the run it started.\n\
             if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then export WANDB_RESUME=allow; fi\n",
        );
    }
    let dir = job.working_dir.to_str().ok_or_else(|| {
        Error::invalid(
            Some(item),
            "working_dir",
            format!("{} is not valid UTF-8", job.working_dir.display()),
        )
    })?;
    let _ = writeln!(script, "cd {} || exit 1", shell_quote(dir));
    script.push_str("exec");
    for arg in &job.argv {
        if arg.contains('\0') {
            return Err(Error::invalid(
                Some(item),
                "command",
                "an argument contains a NUL byte",
            ));
        }
        script.push(' ');
        script.push_str(&shell_quote(arg));
    }
    script.push('\n');
    Ok(script)
}

/// Whether variable `name` holds a secret (an API key, token, password) that must not be
/// written to the batch script.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["API_KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|part| name.contains(part))
}

/// Whether `name` can be exported by a POSIX shell.
fn valid_var_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes the script through a temporary file and a rename, so SLURM never reads half of one.
fn write_script(path: &Path, script: &str) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir, "create the batch script folder", e))?;
    let tmp = path.with_extension("sbatch.tmp");
    std::fs::write(&tmp, script).map_err(|e| Error::io(&tmp, "write the batch script", e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "write the batch script", e))
}

/// `value` in single quotes for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `text` with line breaks replaced, for a comment line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The SLURM job name for an item: its id, restricted to characters any tool prints as is.
fn job_name(item: &str) -> String {
    let name: String = item
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.is_empty() {
        "wandb-launch".to_owned()
    } else {
        name
    }
}

/// The job id in `sbatch --parsable` output (`<id>` or `<id>;<cluster>`).
fn parse_parsable(out: &str) -> Option<String> {
    let id = out.lines().last()?.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_owned())
}

fn resource_error(item: &str, reason: impl Into<String>) -> Error {
    Error::Resource {
        resource: "slurm".to_owned(),
        item: item.to_owned(),
        reason: reason.into(),
    }
}

/// A job submitted by [`Slurm`].
#[derive(Debug)]
struct SlurmJob {
    slurm: Slurm,
    item_id: String,
    job_id: String,
    /// Whether terminate or kill was called (the outcome is then [`CANCELLED`]).
    stop_requested: bool,
    /// Polls in a row in which SLURM did not know the job.
    forgotten: u32,
    /// The `Restarts` count last seen (requeues).
    restarts: u32,
    started: Instant,
}

/// What `scontrol show job` or `sacct` said about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobStatus {
    /// The base state, e.g. `RUNNING` (flags such as `CANCELLED by 0` dropped).
    state: String,
    /// `ExitCode=<code>:<signal>`.
    exit_code: Option<i32>,
    signal: Option<i32>,
    /// `Reason=`, e.g. `NonZeroExitCode`, `TimeLimit`.
    reason: Option<String>,
    /// `Restarts=`: how many times SLURM requeued the job.
    restarts: u32,
}

impl SlurmJob {
    fn new(slurm: &Slurm, item_id: &str, job_id: String) -> Self {
        SlurmJob {
            slurm: slurm.clone(),
            item_id: item_id.to_owned(),
            job_id,
            stop_requested: false,
            forgotten: 0,
            restarts: 0,
            started: Instant::now(),
        }
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        resource_error(
            &self.item_id,
            format!("job {}: {}", self.job_id, reason.into()),
        )
    }

    /// The job's status from `scontrol`, else `sacct`; `Ok(None)` when neither knows it.
    fn status(&self) -> Result<Option<JobStatus>> {
        let args = [
            "-o".to_owned(),
            "show".into(),
            "job".into(),
            self.job_id.clone(),
        ];
        match self.slurm.run("scontrol", &args) {
            Ok(out) => {
                if let Some(status) = parse_scontrol(&out, &self.job_id) {
                    return Ok(Some(status));
                }
            }
            Err(problem) if problem.contains("Invalid job id") => {}
            Err(problem) => return Err(self.error(problem)),
        }
        let args = [
            "-n".to_owned(),
            "-X".into(),
            "-P".into(),
            "-j".into(),
            self.job_id.clone(),
            "-o".into(),
            "State,ExitCode,Reason".into(),
        ];
        match self.slurm.run("sacct", &args) {
            Ok(out) => Ok(parse_sacct(&out)),
            Err(problem) => {
                log::debug!(
                    "item {}: job {}: sacct: {problem}",
                    self.item_id,
                    self.job_id
                );
                Ok(None)
            }
        }
    }

    /// `scancel` with `args` before the job id; an already ended job is not an error.
    fn scancel(&self, args: &[&str]) -> Result<()> {
        let mut all: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        all.push(self.job_id.clone());
        match self.slurm.run("scancel", &all) {
            Ok(_) => Ok(()),
            Err(problem)
                if problem.contains("already completing or completed")
                    || problem.contains("Invalid job id") =>
            {
                Ok(())
            }
            Err(problem) => Err(self.error(problem)),
        }
    }
}

impl RunningJob for SlurmJob {
    fn poll(&mut self) -> Result<Option<JobOutcome>> {
        let Some(status) = self.status()? else {
            self.forgotten += 1;
            if self.forgotten >= FORGOTTEN_POLLS {
                return Ok(Some(JobOutcome::failed(
                    None,
                    format!(
                        "SLURM job {} is no longer known to scontrol and sacct has no record of it (no accounting, and it ended more than MinJobAge ago?)",
                        self.job_id
                    ),
                )));
            }
            return Err(self.error("neither scontrol nor sacct knows the job (yet)"));
        };
        self.forgotten = 0;
        if status.restarts > self.restarts {
            log::info!(
                "item {}: SLURM requeued job {} (restart {}); it runs again with the same run id",
                self.item_id,
                self.job_id,
                status.restarts
            );
            self.restarts = status.restarts;
        }
        match state_kind(&status.state) {
            StateKind::Running => Ok(None),
            StateKind::Unknown => Err(self.error(format!(
                "unknown SLURM state {:?} (polling on)",
                status.state
            ))),
            StateKind::Ended => {
                let outcome = outcome_of(&status, self.stop_requested);
                log::info!(
                    "item {}: SLURM job {} ended {} after {:.0?}: {outcome:?}",
                    self.item_id,
                    self.job_id,
                    status.state,
                    self.started.elapsed()
                );
                Ok(outcome)
            }
        }
    }

    fn terminate(&mut self, grace: Duration) -> Result<()> {
        self.stop_requested = true;
        let pending = self
            .status()
            .ok()
            .flatten()
            .is_some_and(|status| status.state == "PENDING");
        log::info!(
            "item {}: stopping SLURM job {} ({}, then scancel after {grace:?})",
            self.item_id,
            self.job_id,
            if pending {
                "pending: scancel"
            } else {
                "SIGTERM to the batch shell and its steps"
            }
        );
        if pending {
            // A pending job has no process to signal.
            return self.scancel(&[]);
        }
        self.scancel(&["--signal=TERM", "--full"])
    }

    fn kill(&mut self) -> Result<()> {
        self.stop_requested = true;
        self.scancel(&[])
    }

    fn external_id(&self) -> Option<String> {
        Some(self.job_id.clone())
    }
}

/// Whether a state means the job is still going, is over, or is unknown to this code.
#[derive(Debug, PartialEq, Eq)]
enum StateKind {
    Running,
    Ended,
    Unknown,
}

fn state_kind(state: &str) -> StateKind {
    match state {
        "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SIGNALING" | "STAGE_OUT" | "STOPPED"
        | "SPECIAL_EXIT" | "RESV_DEL_HOLD" | "POWER_UP_NODE" | "UPDATE_DB" => StateKind::Running,
        "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "PREEMPTED" | "NODE_FAIL"
        | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" | "REVOKED" => StateKind::Ended,
        _ => StateKind::Unknown,
    }
}

/// The outcome of a job in `status`, or `None` while it is not over (or its state is unknown).
fn outcome_of(status: &JobStatus, stop_requested: bool) -> Option<JobOutcome> {
    if state_kind(&status.state) != StateKind::Ended {
        return None;
    }
    let exit_code = status.exit_code;
    let signal = status.signal.filter(|&s| s != 0);
    let mut outcome = match status.state.as_str() {
        "COMPLETED" | "FAILED" => match (exit_code, signal) {
            (Some(0) | None, Some(signal)) => JobOutcome::signaled(signal),
            (Some(code), _) if status.state == "COMPLETED" || code != 0 => JobOutcome::exited(code),
            _ => JobOutcome::failed(
                exit_code,
                format!(
                    "SLURM: FAILED ({})",
                    status.reason.as_deref().unwrap_or("no reason given")
                ),
            ),
        },
        "TIMEOUT" => JobOutcome::failed(
            exit_code,
            "SLURM: TIMEOUT (the job reached its time limit; it got SIGTERM before)",
        ),
        "OUT_OF_MEMORY" => JobOutcome::failed(
            exit_code,
            "SLURM: OUT_OF_MEMORY (the job used more memory than it asked for)",
        ),
        other => JobOutcome::failed(
            exit_code,
            format!(
                "SLURM: {other}{}",
                status
                    .reason
                    .as_deref()
                    .filter(|r| *r != "None")
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
    };
    if stop_requested || status.state == "CANCELLED" {
        outcome.failure = Some(CANCELLED.to_owned());
    }
    Some(outcome)
}

/// The record of job `job_id` in `scontrol -o show job` output (one line per job, `Key=Value`
/// fields separated by spaces; only fields without spaces are read, and the first occurrence of
/// each wins, so a command line quoting `JobState=` cannot spoof the state).
fn parse_scontrol(out: &str, job_id: &str) -> Option<JobStatus> {
    let wanted = format!("JobId={job_id}");
    let line = out
        .lines()
        .find(|line| line.split_whitespace().next() == Some(wanted.as_str()))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
    };
    let state = base_state(field("JobState")?);
    let (exit_code, signal) = field("ExitCode").map_or((None, None), parse_exit_code);
    Some(JobStatus {
        state,
        exit_code,
        signal,
        reason: field("Reason").map(str::to_owned),
        restarts: field("Restarts").and_then(|r| r.parse().ok()).unwrap_or(0),
    })
}

/// The first line of `sacct -n -X -P -o State,ExitCode,Reason` output.
fn parse_sacct(out: &str) -> Option<JobStatus> {
    let line = out.lines().find(|line| !line.trim().is_empty())?;
    let mut fields = line.split('|');
    let state = base_state(fields.next()?);
    let (exit_code, signal) = fields.next().map_or((None, None), parse_exit_code);
    Some(JobStatus {
        state,
        exit_code,
        signal,
        reason: fields.next().map(str::to_owned),
        restarts: 0,
    })
}

/// `CANCELLED by 0` → `CANCELLED`; `CANCELLED+` → `CANCELLED`.
fn base_state(state: &str) -> String {
    state
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+')
        .to_ascii_uppercase()
}

/// `143:0` → (143, 0).
fn parse_exit_code(text: &str) -> (Option<i32>, Option<i32>) {
    let mut parts = text.trim().splitn(2, ':');
    let code = parts.next().and_then(|c| c.parse().ok());
    let signal = parts.next().and_then(|s| s.parse().ok());
    (code, signal)
}

/// Why a command failed: its message, and whether it ran past its deadline.
#[derive(Debug)]
struct CommandFailure {
    message: String,
    timed_out: bool,
}

impl CommandFailure {
    fn new(message: String) -> Self {
        CommandFailure {
            message,
            timed_out: false,
        }
    }
}

/// Runs `command` with its output captured, killing it at `timeout`; its stdout, or what
/// failed (the exit status and stderr, or the timeout).
fn run_bounded(
    mut command: Command,
    timeout: Duration,
) -> std::result::Result<String, CommandFailure> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| CommandFailure::new(format!("cannot run it: {error}")))?;
    // Drain the pipes on threads, so a chatty command cannot block on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandFailure {
                    message: format!("no answer within {timeout:?} (killed)"),
                    timed_out: true,
                });
            }
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            Err(error) => {
                return Err(CommandFailure::new(format!("cannot wait for it: {error}")));
            }
        }
    };
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(CommandFailure::new(format!("{status}: {}", stderr.trim())))
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn resource_args_map_to_sbatch_options() {
        let options = sbatch_options(
            &args(
                r#"{"partition":"gpu","time":"01:00:00","cpus":4,"memory":"8G","gres":"gpu:1",
                    "account":"a","qos":"q","nodes":1,"requeue":true,"exclusive":true,
                    "hint":false,"mail_type":"END","signal-before":120}"#,
            ),
            Some("i1"),
        );
        let Ok(options) = options else {
            panic!("refused: {options:?}");
        };
        assert_eq!(
            options,
            [
                "--partition=gpu",
                "--time=01:00:00",
                "--cpus-per-task=4",
                "--mem=8G",
                "--gres=gpu:1",
                "--account=a",
                "--qos=q",
                "--nodes=1",
                "--requeue",
                "--exclusive",
                "--mail-type=END",
                "--signal=B:TERM@120",
            ]
        );
    }

    #[test]
    fn a_signal_option_replaces_the_pre_timeout_signal() {
        let options = sbatch_options(&args(r#"{"signal":"B:USR1@300"}"#), None);
        assert_eq!(options.ok(), Some(vec!["--signal=B:USR1@300".to_owned()]));
        let options = sbatch_options(&args("{}"), None);
        assert_eq!(
            options.ok(),
            Some(vec![format!("--signal=B:TERM@{DEFAULT_SIGNAL_BEFORE}")])
        );
    }

    #[test]
    fn injected_or_reserved_options_are_refused_naming_the_item_and_key() {
        for (json, key) in [
            (r#"{"time; rm -rf /":"1"}"#, "time; rm -rf /"),
            (r#"{"--wrap":"x"}"#, "--wrap"),
            (r#"{"Partition":"x"}"#, "Partition"),
            (r#"{"output":"/tmp/x"}"#, "output"),
            (r#"{"wrap":"rm -rf /"}"#, "wrap"),
            (r#"{"time":"1\n#SBATCH --x"}"#, "time"),
            (r#"{"time":["1"]}"#, "time"),
            (r#"{"time":""}"#, "time"),
            (r#"{"requeue":"yes"}"#, "requeue"),
            (r#"{"signal-before":"soon"}"#, "signal-before"),
        ] {
            let error = sbatch_options(&args(json), Some("item-7"));
            let Err(error) = error else {
                panic!("{json} accepted: {error:?}");
            };
            let message = error.to_string();
            assert!(
                message.contains("item item-7") && message.contains(key),
                "{json}: {message}"
            );
        }
    }

    #[test]
    fn the_batch_script_exports_the_environment_and_execs_the_command() {
        let job = PreparedJob::new(
            "it'1",
            vec![
                "python3".into(),
                "train.py".into(),
                "--msg=it's $HOME".into(),
            ],
            "/work dir",
            "/q/logs/it1.log",
        )
        .with_env(vec![
            ("WANDB_RUN_ID".into(), "abc".into()),
            ("WANDB_CONFIG".into(), r#"{"lr": "it's"}"#.into()),
        ])
        .with_run("abc", 2);
        let script = batch_script(&job).unwrap_or_default();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains("export WANDB_RUN_ID='abc'\n"), "{script}");
        assert!(
            script.contains(r#"export WANDB_CONFIG='{"lr": "it'\''s"}'"#),
            "{script}"
        );
        assert!(script.contains("export WANDB_RESUME=allow"), "{script}");
        assert!(script.contains("cd '/work dir' || exit 1\n"), "{script}");
        assert!(
            script.ends_with("exec 'python3' 'train.py' '--msg=it'\\''s $HOME'\n"),
            "{script}"
        );
        assert_eq!(
            script_path(&job.log_path, job.attempt),
            Path::new("/q/logs/it1.2.sbatch")
        );
        assert_eq!(
            script_path(Path::new("/q/items/x.2.log"), 2),
            Path::new("/q/items/x.2.sbatch")
        );
        let secret = job
            .clone()
            .with_env(vec![("WANDB_API_KEY".into(), "k0123456789".into())]);
        let script = batch_script(&secret).unwrap_or_default();
        assert!(!script.contains("k0123456789"), "{script}");
        assert!(script.contains("# WANDB_API_KEY: handed over"), "{script}");
        let bad = job.clone().with_env(vec![("A-B".into(), "x".into())]);
        assert!(batch_script(&bad).is_err());
    }

    #[test]
    fn scontrol_records_are_parsed() {
        let out = "JobId=12 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode \
                   Requeue=1 Restarts=2 BatchFlag=1 ExitCode=143:0 Command=/bin/echo JobState=COMPLETED\n";
        let status = parse_scontrol(out, "12");
        assert_eq!(
            status,
            Some(JobStatus {
                state: "FAILED".into(),
                exit_code: Some(143),
                signal: Some(0),
                reason: Some("NonZeroExitCode".into()),
                restarts: 2,
            })
        );
        assert_eq!(parse_scontrol(out, "1"), None);
        assert_eq!(parse_scontrol("", "12"), None);
        let sacct = parse_sacct("CANCELLED by 0|0:15|None\n");
        assert_eq!(
            sacct.map(|s| (s.state, s.signal)),
            Some(("CANCELLED".into(), Some(15)))
        );
        assert_eq!(parse_parsable("42\n"), Some("42".into()));
        assert_eq!(parse_parsable("42;cluster\n"), Some("42".into()));
        assert_eq!(parse_parsable("Submitted batch job 42\n"), None);
    }

    #[test]
    fn states_map_to_outcomes() {
        let status = |state: &str, code: i32, signal: i32| JobStatus {
            state: state.into(),
            exit_code: Some(code),
            signal: Some(signal),
            reason: Some("None".into()),
            restarts: 0,
        };
        for state in ["PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"] {
            assert_eq!(outcome_of(&status(state, 0, 0), false), None, "{state}");
        }
        assert_eq!(
            outcome_of(&status("COMPLETED", 0, 0), false),
            Some(JobOutcome::exited(0))
        );
        assert_eq!(
            outcome_of(&status("FAILED", 3, 0), false),
            Some(JobOutcome::exited(3))
        );
        assert_eq!(
            outcome_of(&status("FAILED", 0, 9), false),
            Some(JobOutcome::signaled(9))
        );
        let timeout = outcome_of(&status("TIMEOUT", 143, 0), false);
        assert!(
            timeout
                .as_ref()
                .and_then(|o| o.failure.as_deref())
                .is_some_and(|f| f.contains("TIMEOUT")),
            "{timeout:?}"
        );
        let oom = outcome_of(&status("OUT_OF_MEMORY", 0, 0), false);
        assert!(!oom.is_some_and(|o| o.success()));
        let node = outcome_of(&status("NODE_FAIL", 0, 0), false);
        assert!(
            node.and_then(|o| o.failure)
                .is_some_and(|f| f.contains("NODE_FAIL"))
        );
        // A job we stopped is cancelled, whatever SLURM calls its end.
        let stopped = outcome_of(&status("FAILED", 143, 0), true);
        assert_eq!(stopped.and_then(|o| o.failure).as_deref(), Some(CANCELLED));
        let cancelled = outcome_of(&status("CANCELLED", 0, 15), false);
        assert_eq!(
            cancelled.and_then(|o| o.failure).as_deref(),
            Some(CANCELLED)
        );
        assert_eq!(state_kind("WEIRD"), StateKind::Unknown);
    }

    #[test]
    fn a_command_past_its_deadline_is_killed() {
        let mut command = Command::new("sleep");
        command.arg("10");
        let result = run_bounded(command, Duration::from_millis(200));
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.timed_out && e.message.contains("no answer")),
            "{result:?}"
        );
    }
}
