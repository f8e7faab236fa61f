//! `wandb-launch sweep ...`: `create`, `controller`, `status`, `pause`, `resume`, `stop`,
//! `cancel`. Data goes to stdout (with `--json`, JSON Lines envelopes `{"type", "data"}`:
//! `sweep` for create, `tick` for the controller, `status`, `state`), messages to stderr;
//! errors exit with 2 and name the file, line and key, or the sweep and path.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use wandb_sweeps::{Sweep, SweepConfig, SweepOptions, SweepState};

use super::controller::{ControllerOptions, TickReport, eprint_tick, observe_runs, run_controller};
use super::error::{Error, Result};
use super::files::write_sweep_files;
use super::store::{SWEEP_DOC_VERSION, SweepDoc, SweepStore, find_sweep};
use crate::cli::{QueueDirArg, parse_duration};
use crate::queue::{Queue, now_rfc3339};

/// `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SweepCommand,
}

/// The `sweep` subcommands.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Create a sweep from a W&B sweep configuration (YAML or JSON); prints its id.
    Create(CreateArgs),
    /// Propose the sweep's runs and enqueue them until the sweep is over.
    Controller(ControllerArgs),
    /// Runs by state, the best run and its parameters.
    Status(SweepIdArgs),
    /// No new runs until resumed.
    Pause(SweepIdArgs),
    /// Propose runs again after a pause.
    Resume(SweepIdArgs),
    /// No new runs; running ones finish.
    Stop(SweepIdArgs),
    /// No new runs, and the queued and running ones are cancelled.
    Cancel(SweepIdArgs),
}

/// `sweep create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The sweep configuration (W&B's format).
    pub file: PathBuf,
    /// The queue its runs go to.
    #[arg(long, short = 'q', default_value = "default")]
    pub queue: String,
    /// W&B project of its runs [default: the configuration's `project`].
    #[arg(long)]
    pub project: Option<String>,
    /// W&B entity of its runs [default: the configuration's `entity`].
    #[arg(long)]
    pub entity: Option<String>,
    /// Seed of every random choice [default: derived from the sweep id].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Walk a grid in a (seeded) random order.
    #[arg(long)]
    pub randomize_grid: bool,
    /// The runs' WANDB_DIR: their run folders and the sweep's files go to its `wandb/`
    /// [default: $WANDB_DIR, else the current folder].
    #[arg(long)]
    pub wandb_dir: Option<PathBuf>,
    /// The runs' working folder, where `program` is [default: the current folder].
    #[arg(long)]
    pub project_dir: Option<PathBuf>,
    /// `${interpreter}` [default: python, as W&B's agent].
    #[arg(long, default_value = "python")]
    pub interpreter: String,
    /// Resource of the runs: local-process or slurm.
    #[arg(long, default_value = "local-process")]
    pub resource: String,
    /// Resource args: a JSON object, or KEY=VALUE (repeatable); for slurm, sbatch options.
    #[arg(long, value_name = "JSON|KEY=VALUE")]
    pub resource_args: Vec<String>,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// `sweep controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The sweep id.
    pub id: String,
    /// The sweep's queue [default: found among the queues].
    #[arg(long, short = 'q')]
    pub queue: Option<String>,
    /// One tick (observe, stop, propose), then exit.
    #[arg(long)]
    pub once: bool,
    /// Time between ticks.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub poll: Duration,
    /// At most this many runs of the sweep queued or running at once.
    #[arg(long, default_value_t = 2)]
    pub max_pending: usize,
    /// JSON Lines output (one `tick` per tick).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// `sweep status | pause | resume | stop | cancel`.
#[derive(Debug, Args)]
pub struct SweepIdArgs {
    /// The sweep id.
    pub id: String,
    /// The sweep's queue [default: found among the queues].
    #[arg(long, short = 'q')]
    pub queue: Option<String>,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue_dir: QueueDirArg,
}

/// Runs `sweep ...`; errors are printed and exit with 2.
pub fn run(args: SweepArgs) -> ExitCode {
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wandb-launch: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_json(kind: &str, data: serde_json::Value) {
    out!("{}", json!({"type": kind, "data": data}));
}

/// A seed from a base-36 sweep id.
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0u64, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            _ => b.wrapping_sub(b'a') + 10,
        };
        acc.wrapping_mul(36).wrapping_add(u64::from(digit))
    })
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", "read the current folder", e))?;
    // Without `.` components, so the paths handed to runs are the plain ones.
    Ok(cwd
        .join(path)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect())
}

fn create(args: CreateArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Error::io(&args.file, "read sweep configuration", e))?;
    let name = args.file.display().to_string();
    let config = SweepConfig::from_yaml_str(&text, Some(&name))?;
    for warning in config.warnings() {
        eprintln!("wandb-launch: warning: {name}: {warning}");
    }
    let resource_args = crate::job::parse_resource_args(&args.resource_args)?;
    crate::resource::validate_resource_args(&args.resource, &resource_args, None)?;
    let queue = Queue::open(&args.queue_dir.root(), &args.queue)?;
    let store = SweepStore::open(queue)?;
    let id = wandb_settings::generate_id(8);
    let wandb_dir = match args
        .wandb_dir
        .or_else(|| std::env::var_os("WANDB_DIR").map(PathBuf::from))
    {
        Some(dir) => absolute(dir)?,
        None => absolute(PathBuf::from("."))?,
    };
    let working_dir = absolute(args.project_dir.unwrap_or_else(|| PathBuf::from(".")))?;
    if !working_dir.is_dir() {
        return Err(Error::Invalid {
            field: "--project-dir".into(),
            reason: format!("{}: not a folder", working_dir.display()),
        });
    }
    let options = SweepOptions {
        seed: args.seed.unwrap_or_else(|| seed_of(&id)),
        randomize_grid: args.randomize_grid,
    };
    let doc = SweepDoc {
        version: SWEEP_DOC_VERSION,
        queue: args.queue.clone(),
        entity: args.entity.or_else(|| config.entity.clone()),
        project: args.project.or_else(|| config.project.clone()),
        created_at: now_rfc3339(),
        wandb_dir,
        working_dir,
        interpreter: args.interpreter,
        resource: args.resource,
        resource_args,
        sweep: Sweep::new(id.clone(), config, options),
        runs: Vec::new(),
        stopped: Vec::new(),
    };
    store.create(&doc)?;
    write_sweep_files(&doc)?;
    if args.json {
        print_json(
            "sweep",
            json!({"id": id, "queue": args.queue, "path": store.path(&id),
                   "method": doc.sweep.config.method.as_str(), "seed": options.seed,
                   "sweep_dir": doc.sweep_dir()}),
        );
    } else {
        out!("{id}");
        eprintln!(
            "wandb-launch: sweep {id} on queue {}: run `wandb-launch sweep controller {id}` (or `agent --sweeps`)",
            args.queue
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tick(report: &TickReport, json_out: bool) {
    if json_out {
        print_json("tick", serde_json::to_value(report).unwrap_or_default());
    } else {
        eprint_tick(report, true);
    }
}

fn controller(args: ControllerArgs) -> Result<ExitCode> {
    let store = find_sweep(&args.queue_dir.root(), args.queue.as_deref(), &args.id)?;
    let options = ControllerOptions {
        max_pending: args.max_pending,
        poll: args.poll,
        once: args.once,
    };
    if args.max_pending == 0 {
        return Err(Error::Invalid {
            field: "--max-pending".into(),
            reason: "must be at least 1".into(),
        });
    }
    let stop = crate::cli::signal_stop()?;
    let json_out = args.json;
    let last = run_controller(&store, &args.id, &options, &stop, &mut |r| {
        print_tick(r, json_out)
    })?;
    if last.done && !json_out {
        eprintln!("wandb-launch: sweep {}: done", args.id);
    }
    Ok(ExitCode::SUCCESS)
}

fn status(args: SweepIdArgs) -> Result<ExitCode> {
    let store = find_sweep(&args.queue_dir.root(), args.queue.as_deref(), &args.id)?;
    let mut doc = store.load(&args.id)?;
    let runs = observe_runs(&mut doc, store.queue());
    doc.sweep.observe(&runs);
    let status = doc.sweep.status();
    if args.json {
        let mut data = serde_json::to_value(&status).unwrap_or_default();
        if let Some(obj) = data.as_object_mut() {
            obj.insert("queue".into(), json!(doc.queue));
            obj.insert(
                "goal".into(),
                json!(doc.sweep.config.metric.as_ref().map(|m| m.goal)),
            );
            obj.insert(
                "runs".into(),
                json!(
                    runs.iter()
                        .map(|r| {
                            let item = doc
                                .runs
                                .iter()
                                .find(|i| i.run_id == r.id)
                                .map(|i| i.item.clone());
                            let goal = doc.sweep.config.metric.as_ref().map(|m| m.goal);
                            json!({"id": r.id, "item": item, "state": r.state, "params": r.params,
                           "metric": goal.and_then(|g| r.best(g))})
                        })
                        .collect::<Vec<_>>()
                ),
            );
        }
        print_json("status", data);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "sweep {} ({}, queue {})",
        status.id,
        status.method.as_str(),
        doc.queue
    );
    let state = serde_json::to_value(status.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    out!("state: {state}");
    let by_state: Vec<String> = status
        .runs_by_state
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out!(
        "runs: {}",
        if by_state.is_empty() {
            "none".to_owned()
        } else {
            by_state.join(", ")
        }
    );
    match (&status.metric, &status.best) {
        (Some(metric), Some(best)) => {
            let goal = doc
                .sweep
                .config
                .metric
                .as_ref()
                .map_or("minimize", |m| match m.goal {
                    wandb_sweeps::Goal::Maximize => "maximize",
                    wandb_sweeps::Goal::Minimize => "minimize",
                });
            out!(
                "best: run {} {metric}={} ({goal}) {}",
                best.id,
                best.metric,
                serde_json::Value::Object(best.params.clone())
            );
        }
        (Some(metric), None) => out!("best: none yet ({metric})"),
        (None, _) => out!("best: no metric in the configuration"),
    }
    if !runs.is_empty() {
        let goal = doc.sweep.config.metric.as_ref().map(|m| m.goal);
        out!();
        out!(
            "{:<8}  {:<10}  {:<12}  {:<12}  PARAMS",
            "RUN ID",
            "STATE",
            "ITEM",
            "METRIC"
        );
        for run in &runs {
            let item = doc
                .runs
                .iter()
                .find(|i| i.run_id == run.id)
                .map_or("-", |i| i.item.as_str());
            let state = serde_json::to_value(run.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let metric = goal
                .and_then(|g| run.best(g))
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.6}"));
            out!(
                "{:<8}  {:<10}  {:<12}  {:<12}  {}",
                run.id,
                state,
                item,
                metric,
                serde_json::Value::Object(run.params.clone())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn change(args: SweepIdArgs, what: &str) -> Result<ExitCode> {
    let store = find_sweep(&args.queue_dir.root(), args.queue.as_deref(), &args.id)?;
    let mut cancelled = Vec::new();
    let state = {
        let _lock = store.lock(&args.id)?;
        let mut doc = store.load(&args.id)?;
        match what {
            "pause" => doc.sweep.pause(),
            "resume" => doc.sweep.resume(),
            "stop" => doc.sweep.stop(),
            _ => doc.sweep.cancel(),
        }
        if doc.sweep.state == SweepState::Cancelled {
            // Cancelled now, without waiting for a controller's tick.
            let runs = observe_runs(&mut doc, store.queue());
            for run_id in doc.sweep.stop_runs(&runs) {
                if doc.stopped.contains(&run_id) {
                    continue;
                }
                if let Some(entry) = doc.runs.iter().find(|r| r.run_id == run_id) {
                    match store.queue().cancel(&entry.item) {
                        Ok(_) | Err(crate::error::Error::WrongState { .. }) => {}
                        Err(e) => eprintln!("wandb-launch: sweep {}: run {run_id}: {e}", args.id),
                    }
                    cancelled.push(run_id.clone());
                }
            }
            doc.stopped.extend(cancelled.iter().cloned());
        }
        store.save(&doc)?;
        doc.sweep.state
    };
    let name = serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if args.json {
        print_json(
            "state",
            json!({"id": args.id, "state": name, "cancelled_runs": cancelled}),
        );
    } else {
        out!("{}: {name}", args.id);
    }
    Ok(ExitCode::SUCCESS)
}

fn dispatch(args: SweepArgs) -> Result<ExitCode> {
    match args.command {
        SweepCommand::Create(a) => create(a),
        SweepCommand::Controller(a) => controller(a),
        SweepCommand::Status(a) => status(a),
        SweepCommand::Pause(a) => change(a, "pause"),
        SweepCommand::Resume(a) => change(a, "resume"),
        SweepCommand::Stop(a) => change(a, "stop"),
        SweepCommand::Cancel(a) => change(a, "cancel"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_id() {
        assert_ne!(seed_of("abc12345"), seed_of("abc12346"));
        assert_eq!(seed_of("0"), 0);
    }
}
