//! The `wandb-launch` command line: `add`, `run`, `agent`, `list`, `show`, `cancel`,
//! `requeue`. The binary only parses and calls [`run`].
//!
//! Data goes to stdout, messages to stderr. With `--json`, stdout is JSON Lines, each line an
//! envelope `{"type": ..., "data": ...}`: `added` (add), `item` (list, show), `cancelled`,
//! `requeued`, `event` (agent: `started`, `ended`, `reaped`, `error` in `data.event`), and
//! `outcome` (run). More types may be added.
//!
//! Exit codes: 0 success; 1 a job failed or an agent saw errors; 2 usage or queue errors
//! (the message names the item, path or option); `run` exits with its job's status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::agent::{Agent, AgentOptions, Event, Stop};
use crate::error::{Error, Result};
use crate::item::Priority;
use crate::job::{JobRequest, parse_pairs, parse_resource_args, read_config_file, run_now};
use crate::queue::{Cancelled, ItemStatus, Queue};
use crate::resource::ResourceOptions;
use crate::runlink::{final_summary, pick_metric};

/// An offline W&B Launch: queue jobs in a folder, run them with an agent.
#[derive(Debug, Parser)]
#[command(name = "wandb-launch", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enqueue a job (W&B's `launch_add`); prints the item id.
    Add(AddArgs),
    /// Run a job now, without a queue (W&B's `launch`); exits with the job's status.
    Run(RunArgs),
    /// Claim and run the items of one or more queues (W&B's `LaunchAgent`).
    Agent(AgentArgs),
    /// Each item of a queue: state, attempt, run id, the run's final metric.
    List(ListArgs),
    /// One item in full.
    Show(ItemArgs),
    /// Cancel an item (a running job gets SIGTERM).
    Cancel(ItemArgs),
    /// Put an ended item back in the queue.
    Requeue(ItemArgs),
    /// W&B sweeps offline: create, controller, status, pause, resume, stop, cancel.
    Sweep(crate::sweep::cli::SweepArgs),
    /// (Internal) what `local-process` runs around a queued job; see `wrapper.rs`.
    #[command(hide = true)]
    JobWrapper(WrapperArgs),
}

/// `job-wrapper`.
#[derive(Debug, Args)]
pub struct WrapperArgs {
    /// Where to write the command's end.
    #[arg(long)]
    pub exit_file: PathBuf,
    /// The agent's process id.
    #[arg(long)]
    pub parent: i32,
    /// The command.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Where the queues are.
#[derive(Debug, Args)]
pub struct QueueDirArg {
    /// Folder holding the queues [default: $WANDB_DIR/wandb/launch/queues, $WANDB_DIR
    /// defaulting to the current folder].
    #[arg(long, env = "WANDB_LAUNCH_QUEUE_DIR", global = true)]
    pub queue_dir: Option<PathBuf>,
}

impl QueueDirArg {
    /// The queues' folder, absolute.
    pub(crate) fn root(&self) -> PathBuf {
        let root = match &self.queue_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("WANDB_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join("wandb")
                .join("launch")
                .join("queues"),
        };
        // Absolute, so that log paths in attempt records hold from any folder.
        std::env::current_dir().map_or(root.clone(), |cwd| cwd.join(&root))
    }
}

/// The job: what `add` enqueues and `run` runs.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Run this file of the project folder instead of a command (`train.py --lr 0.1`; `.py`
    /// runs with python3 or $WANDB_LAUNCH_PYTHON, `.sh` with bash).
    #[arg(long)]
    pub entry_point: Option<String>,
    /// The project folder: the job's working folder [default: the current folder].
    #[arg(long)]
    pub project_dir: Option<PathBuf>,
    /// A config value (`lr=0.1`; JSON values are parsed), repeatable; wins over --config-file.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Config from a YAML or JSON file (W&B's config.yaml shape is understood).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// W&B project.
    #[arg(long)]
    pub project: Option<String>,
    /// W&B entity.
    #[arg(long)]
    pub entity: Option<String>,
    /// Run name.
    #[arg(long)]
    pub name: Option<String>,
    /// Run id [default: a new 8-character id].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Resource: local-process or slurm.
    #[arg(long, default_value = "local-process")]
    pub resource: String,
    /// Resource args: a JSON object, or KEY=VALUE (repeatable); for slurm, sbatch options.
    #[arg(long, value_name = "JSON|KEY=VALUE")]
    pub resource_args: Vec<String>,
    /// An environment variable for the job (KEY=VALUE), repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

impl JobArgs {
    fn request(&self) -> Result<JobRequest> {
        let mut config = match &self.config_file {
            Some(path) => read_config_file(path)?,
            None => serde_json::Map::new(),
        };
        config.extend(parse_pairs(&self.config, "--config")?);
        let mut env = std::collections::BTreeMap::new();
        for pair in &self.env {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(Error::invalid(
                    None,
                    "--env",
                    format!("{pair:?} is not KEY=VALUE"),
                ));
            };
            env.insert(k.to_owned(), v.to_owned());
        }
        Ok(JobRequest {
            command: self.command.clone(),
            entry_point: self.entry_point.clone(),
            project_dir: self.project_dir.clone(),
            config,
            project: self.project.clone(),
            entity: self.entity.clone(),
            name: self.name.clone(),
            run_id: self.run_id.clone(),
            resource: Some(self.resource.clone()),
            resource_args: parse_resource_args(&self.resource_args)?,
            env,
            ..JobRequest::default()
        })
    }
}

/// `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The queue.
    #[arg(long, short = 'q', default_value = "default")]
    pub queue: String,
    /// Priority: critical, high, medium, low (or 0..3).
    #[arg(long, default_value = "medium")]
    pub priority: String,
    /// How many lease expiries send the item back to the queue before it fails.
    #[arg(long, default_value_t = crate::item::DEFAULT_MAX_RETRIES)]
    pub max_retries: u32,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Seconds between SIGTERM and SIGKILL when we are stopped.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// JSON Lines output (the outcome).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
}

/// `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// A queue to serve (repeatable; earlier ones first).
    #[arg(long, short = 'q', default_value = "default")]
    pub queue: Vec<String>,
    /// Jobs at once.
    #[arg(long, short = 'j', default_value_t = 1)]
    pub max_jobs: usize,
    /// How often to look for items (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Lease period: an item whose agent stops renewing goes back after it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Time between SIGTERM and SIGKILL for a job the agent stops or cancels.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Exit once the queues are empty (nothing waiting or claimed) and no job runs.
    #[arg(long)]
    pub exit_when_empty: bool,
    /// Also drive the sweeps of the served queues (a controller tick per sweep every poll,
    /// at most --max-jobs runs of a sweep queued or running); see `sweep controller`.
    #[arg(long)]
    pub sweeps: bool,
    /// JSON Lines output (the agent's events).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The queue (repeatable) [default: every queue in the queue folder].
    #[arg(long, short = 'q')]
    pub queue: Vec<String>,
    /// The summary metric to show [default: `loss` if present, else the first key].
    #[arg(long)]
    pub metric: Option<String>,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// `show`, `cancel`, `requeue`.
#[derive(Debug, Args)]
pub struct ItemArgs {
    /// The item id.
    pub id: String,
    /// The queue.
    #[arg(long, short = 'q', default_value = "default")]
    pub queue: String,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or a number of seconds (`0.5`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (10s, 500ms, 2m, 1h)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{other:?}: unknown unit (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wandb-launch: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_json(kind: &str, data: serde_json::Value) {
    let line = json!({"type": kind, "data": data});
    out!("{line}");
}

/// A stop handle that SIGTERM and SIGINT trigger.
pub(crate) fn signal_stop() -> Result<Stop> {
    let stop = Stop::new();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| Error::io("(signals)", "install SIGTERM and SIGINT handlers", e))?;
    let handle = stop.clone();
    std::thread::Builder::new()
        .name("wandb-launch-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                handle.stop();
            }
        })
        .map_err(|e| Error::io("(signals)", "start the signal thread", e))?;
    Ok(stop)
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sweep(args) => Ok(crate::sweep::cli::run(args)),
        Command::JobWrapper(args) => Ok(crate::wrapper::run_wrapper(
            &args.exit_file,
            args.parent,
            &args.command,
        )),
        Command::Add(args) => {
            let queue = Queue::open(&args.queue_dir.root(), &args.queue)?;
            let mut request = args.job.request()?;
            request.priority = args.priority.parse::<Priority>()?;
            request.max_retries = Some(args.max_retries);
            let item = request.into_item()?;
            queue.add(&item)?;
            if args.json {
                print_json(
                    "added",
                    json!({"id": item.id, "queue": queue.name(), "run_id": item.run_id,
                           "priority": item.priority, "resource": item.resource,
                           "path": queue.item_path(&item.id)}),
                );
            } else {
                out!("{}", item.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let item = args.job.request()?.into_item()?;
            let stop = signal_stop()?;
            eprintln!("wandb-launch: run {} (item {})", item.run_id, item.id);
            let outcome = run_now(&item, &stop, args.grace)?;
            if args.json {
                print_json(
                    "outcome",
                    json!({"id": item.id, "run_id": item.run_id, "exit_code": outcome.exit_code,
                           "signal": outcome.signal, "failure": outcome.failure}),
                );
            }
            let status = outcome.shell_status().clamp(0, 255);
            Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
        }
        Command::Agent(args) => {
            let root = args.queue_dir.root();
            // A queue that cannot be opened is reported, and the others are served.
            let mut errors = 0usize;
            let mut queues = Vec::new();
            for name in &args.queue {
                match Queue::open(&root, name) {
                    Ok(queue) => queues.push(queue),
                    Err(e) if args.queue.len() > 1 => {
                        errors += 1;
                        print_event(
                            &Event::Error {
                                item: None,
                                message: format!("queue {name}: {e}"),
                            },
                            args.json,
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            if queues.is_empty() {
                return Err(Error::invalid(None, "--queue", "no queue could be opened"));
            }
            if args.max_jobs == 0 {
                return Err(Error::invalid(None, "--max-jobs", "must be at least 1"));
            }
            let mut options = AgentOptions::new(queues);
            options.max_jobs = args.max_jobs;
            options.poll = args.poll;
            options.lease = args.lease;
            options.grace = args.grace;
            options.exit_when_empty = args.exit_when_empty;
            options.wandb_dir = std::env::var_os("WANDB_DIR").map(PathBuf::from);
            options.resource_options = ResourceOptions {
                poll_interval: args.poll,
                ..ResourceOptions::default()
            };
            let stop = signal_stop()?;
            let sweeps = args.sweeps.then(|| {
                crate::sweep::controller::spawn_sweep_driver(
                    options.queues.clone(),
                    args.max_jobs,
                    args.poll,
                    stop.clone(),
                )
            });
            let agent = Agent::new(options);
            eprintln!(
                "wandb-launch: agent {} on {}",
                agent.id(),
                agent_queue_names(&agent).join(", ")
            );
            let json_out = args.json;
            let report = agent.run(&stop, &mut |event| {
                if matches!(event, Event::Error { .. }) {
                    errors += 1;
                }
                print_event(&event, json_out);
                if let (Event::Ended { .. }, Some(driver)) = (&event, &sweeps) {
                    driver.tick_now();
                }
            });
            if let Some(driver) = sweeps {
                driver.finish();
            }
            eprintln!(
                "wandb-launch: agent stopped: {} finished, {} failed, {} cancelled, {} returned to the queue",
                report.finished, report.failed, report.cancelled, report.returned
            );
            Ok(if errors > 0 || report.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::List(args) => {
            let root = args.queue_dir.root();
            let names = if args.queue.is_empty() {
                queue_names(&root)?
            } else {
                args.queue.clone()
            };
            let mut statuses = Vec::new();
            for name in &names {
                let queue = open_existing(&root, name)?;
                statuses.extend(queue.list()?.into_iter().map(|s| (name.as_str(), s)));
            }
            if !args.json {
                out!(
                    "{:<12}  {:<12}  {:<9}  {:<8}  {:>7}  {:<8}  {:<22}  RUN FOLDER",
                    "QUEUE",
                    "ID",
                    "STATE",
                    "PRIORITY",
                    "ATTEMPT",
                    "RUN ID",
                    "METRIC"
                );
            }
            for (queue, status) in &statuses {
                let metric = metric_of(status, args.metric.as_deref());
                if args.json {
                    let mut data = status_json(status, metric.as_ref());
                    if let Some(obj) = data.as_object_mut() {
                        obj.insert("queue".into(), json!(queue));
                    }
                    print_json("item", data);
                } else {
                    let metric = metric
                        .map(|(k, v)| format!("{k}={}", short_value(&v)))
                        .unwrap_or_else(|| "-".to_owned());
                    let run_dir = status
                        .record
                        .as_ref()
                        .and_then(|r| r.run_dirs.last())
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "-".to_owned());
                    out!(
                        "{:<12}  {:<12}  {:<9}  {:<8}  {:>7}  {:<8}  {:<22}  {}",
                        queue,
                        status.id,
                        status.state.name(),
                        status.priority.map_or("-", |p| p.name()),
                        status.attempt,
                        status.item.as_ref().map_or("-", |i| i.run_id.as_str()),
                        metric,
                        run_dir
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show(args) => {
            let queue = open_existing(&args.queue_dir.root(), &args.queue)?;
            let status = queue.status(&args.id)?;
            let metric = metric_of(&status, None);
            let data = status_json(&status, metric.as_ref());
            if args.json {
                print_json("item", data);
            } else {
                let text = serde_json::to_string_pretty(&data).unwrap_or_default();
                out!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel(args) => {
            let queue = open_existing(&args.queue_dir.root(), &args.queue)?;
            let done = queue.cancel(&args.id)?;
            let how = match done {
                Cancelled::Now => "cancelled",
                Cancelled::Requested => "cancel requested (its agent stops the job)",
            };
            if args.json {
                print_json(
                    "cancelled",
                    json!({"id": args.id, "now": done == Cancelled::Now}),
                );
            } else {
                out!("{}: {how}", args.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Requeue(args) => {
            let queue = open_existing(&args.queue_dir.root(), &args.queue)?;
            queue.requeue(&args.id)?;
            if args.json {
                print_json("requeued", json!({"id": args.id}));
            } else {
                out!("{}: back in the queue", args.id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn agent_queue_names(agent: &Agent) -> Vec<&str> {
    agent.queues().iter().map(Queue::name).collect()
}

/// The queues under `root` (folders with a queue's `pending/`), sorted; none is an error naming `root`.
fn queue_names(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, "list queues", e))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join(crate::queue::PENDING).is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort_unstable();
    if names.is_empty() {
        return Err(Error::io(
            root,
            "list queues",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no queue here"),
        ));
    }
    Ok(names)
}

/// Writes one line of the command's output to standard output: a reader that has gone (`| head`,
/// `EPIPE`) ends the process with status 0, as a Unix tool does, and any other write error ends it
/// with status 1 and the error on stderr; `println!` would panic in both cases. Used by `out!`.
#[doc(hidden)]
pub fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("wandb-launch: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// Opens a queue that must exist already (reading commands do not create queues).
fn open_existing(root: &Path, name: &str) -> Result<Queue> {
    let dir = root.join(name);
    if !dir.is_dir() {
        return Err(Error::io(
            &dir,
            "open queue",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such queue"),
        ));
    }
    Queue::open(root, name)
}

fn metric_of(status: &ItemStatus, wanted: Option<&str>) -> Option<(String, serde_json::Value)> {
    let run_dirs = &status.record.as_ref()?.run_dirs;
    if run_dirs.is_empty() {
        return None;
    }
    pick_metric(&final_summary(run_dirs), wanted)
}

fn short_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned(),
            _ => n.to_string(),
        },
        // A summary statistic of `define_metric` (`{"min": 0.2}`) shows as `min:0.2`.
        serde_json::Value::Object(map) if map.len() == 1 => map
            .iter()
            .map(|(k, v)| format!("{k}:{}", short_value(v)))
            .collect(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 16 {
                format!("{}…", text.chars().take(15).collect::<String>())
            } else {
                text
            }
        }
    }
}

fn status_json(
    status: &ItemStatus,
    metric: Option<&(String, serde_json::Value)>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "run_id".into(),
            json!(status.item.as_ref().map(|i| i.run_id.clone())),
        );
        obj.insert(
            "metric".into(),
            match metric {
                Some((k, v)) => json!({"name": k, "value": v}),
                None => serde_json::Value::Null,
            },
        );
    }
    value
}

fn print_event(event: &Event, json_out: bool) {
    if json_out {
        let data = match event {
            Event::Started {
                queue,
                item,
                attempt,
                external_id,
            } => json!({
                "event": "started", "queue": queue, "item": item, "attempt": attempt,
                "external_id": external_id}),
            Event::Ended {
                queue,
                item,
                attempt,
                state,
                exit_code,
                reason,
            } => json!({
                "event": "ended", "queue": queue, "item": item, "attempt": attempt,
                "state": state, "exit_code": exit_code, "reason": reason}),
            Event::Reaped {
                queue,
                item,
                attempt,
                failed,
            } => json!({
                "event": "reaped", "queue": queue, "item": item, "attempt": attempt,
                "failed": failed}),
            Event::Error { item, message } => json!({
                "event": "error", "item": item, "message": message}),
        };
        print_json("event", data);
        return;
    }
    match event {
        Event::Started {
            queue,
            item,
            attempt,
            external_id,
        } => eprintln!(
            "wandb-launch: {queue}/{item}: attempt {attempt} started ({})",
            external_id.as_deref().unwrap_or("-")
        ),
        Event::Ended {
            queue,
            item,
            attempt,
            state,
            exit_code,
            reason,
        } => eprintln!(
            "wandb-launch: {queue}/{item}: attempt {attempt} ended: {state}{}{}",
            exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default(),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        Event::Reaped {
            queue,
            item,
            attempt,
            failed,
        } => eprintln!(
            "wandb-launch: {queue}/{item}: lease of attempt {attempt} expired; {}",
            if *failed {
                "no retries left, failed"
            } else {
                "back in the queue"
            }
        ),
        Event::Error { message, .. } => eprintln!("wandb-launch: error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
