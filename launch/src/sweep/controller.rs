//! The local sweep controller: what W&B's server-side controller does for a sweep, done from
//! the queue folder. One [`tick`] reads every run of the sweep (its item's state, its metric
//! from its `.wandb` files), stops the runs Hyperband (or a cancel) names through the queue's
//! cancel path (SIGTERM to the job, then SIGKILL after the agent's grace), and enqueues new
//! proposals while fewer than `max_pending` runs are queued or running. [`run_controller`]
//! repeats it every poll until the sweep is over.
//!
//! Each proposal becomes a launch item whose command is the sweep's `command` expanded for
//! the run ([`wandb_sweeps::command::expand`]), whose config is the run's parameters (so
//! `WANDB_CONFIG` carries them, as W&B Launch does), whose run id is the item's, and whose
//! environment is what the official SDK's sweep agent hands a run: `WANDB_SWEEP_ID`,
//! `WANDB_SWEEP_PARAM_PATH` (`<WANDB_DIR>/wandb/sweep-<id>/config-<run>.yaml`) and
//! `WANDB_RUN_ID` (the item's run id), plus `WANDB_DIR`, set to the sweep's folder so the
//! runs' folders and the sweep's files are in the same `wandb/` folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use wandb_sweeps::{CommandContext, RunState, SweepRun, SweepState, command};

use super::error::{Error, Result};
use super::files::{write_args_json, write_param_file, write_sweep_files};
use super::runs::read_metric;
use super::store::{FinalMetric, SweepDoc, SweepItem, SweepStore};
use crate::agent::Stop;
use crate::item::State;
use crate::job::JobRequest;
use crate::queue::{ItemStatus, Queue};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// At most this many of the sweep's runs queued or running at once.
    pub max_pending: usize,
    /// Time between ticks of [`run_controller`].
    pub poll: Duration,
    /// One tick, then return.
    pub once: bool,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            max_pending: 2,
            poll: Duration::from_secs(5),
            once: false,
        }
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TickReport {
    /// The sweep id.
    pub sweep: String,
    /// Runs enqueued: run id, item id, parameters.
    pub started: Vec<StartedRun>,
    /// Runs stopped (Hyperband, cancel): run id and item id.
    pub stopped: Vec<(String, String)>,
    /// Problems that did not stop the tick (an item that could not be cancelled, say).
    pub errors: Vec<String>,
    /// The sweep's state after the tick.
    pub state: Option<SweepState>,
    /// Runs queued or running after the tick.
    pub in_flight: usize,
    /// True when the sweep proposes no more runs and none is queued or running.
    pub done: bool,
}

/// One run the tick enqueued.
#[derive(Clone, Debug, Serialize)]
pub struct StartedRun {
    /// The run id.
    pub run_id: String,
    /// Its launch item.
    pub item: String,
    /// Its parameters.
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The sweep's run state of an item (W&B's names): waiting or claimed is `pending`; a
/// cancelled item is `killed` (Hyperband and `sweep cancel` stop runs that way).
pub fn run_state(status: &ItemStatus) -> RunState {
    match status.state {
        State::Pending | State::Claimed => RunState::Pending,
        State::Running => RunState::Running,
        State::Finished => RunState::Finished,
        State::Failed | State::Expired | State::Returned => RunState::Failed,
        State::Cancelled => RunState::Killed,
    }
}

/// The run folders of an item's run: those its attempt record names, else those found under
/// the sweep's `WANDB_DIR` by run id (as `wandb-launch list` finds them).
fn run_dirs(doc: &SweepDoc, status: Option<&ItemStatus>, run_id: &str) -> Vec<PathBuf> {
    let recorded = status
        .and_then(|s| s.record.as_ref())
        .map(|r| r.run_dirs.clone())
        .unwrap_or_default();
    if recorded.is_empty() {
        crate::runlink::find_run_dirs(&doc.wandb_dir, run_id)
    } else {
        recorded
    }
}

/// Every run of the sweep as the core wants it: parameters, state, metric history. Runs that
/// ended are read once and their metric kept in `doc` (`final_metric`).
pub fn observe_runs(doc: &mut SweepDoc, queue: &Queue) -> Vec<SweepRun> {
    let metric = doc.sweep.config.metric.as_ref().map(|m| m.name.clone());
    let mut runs = Vec::with_capacity(doc.runs.len());
    let params_of = |doc: &SweepDoc, index: u64| {
        doc.sweep
            .proposals
            .iter()
            .find(|p| p.index == index)
            .map(|p| p.params.clone())
            .unwrap_or_default()
    };
    for i in 0..doc.runs.len() {
        let entry = doc.runs[i].clone();
        let params = params_of(doc, entry.proposal);
        if let Some(fm) = &entry.final_metric {
            runs.push(SweepRun {
                id: entry.run_id.clone(),
                params,
                state: fm.state,
                history: fm.history.clone(),
                summary: fm.summary,
            });
            continue;
        }
        let status = queue.status(&entry.item).ok();
        let state = status.as_ref().map_or(RunState::Pending, run_state);
        let read = match &metric {
            Some(name) if state != RunState::Pending => {
                read_metric(&run_dirs(doc, status.as_ref(), &entry.run_id), name)
            }
            _ => Default::default(),
        };
        if state.is_terminal() {
            doc.runs[i].final_metric = Some(FinalMetric {
                state,
                history: read.history.clone(),
                summary: read.summary,
            });
        }
        runs.push(SweepRun {
            id: entry.run_id,
            params,
            state,
            history: read.history,
            summary: read.summary,
        });
    }
    runs
}

fn in_flight(runs: &[SweepRun]) -> usize {
    runs.iter()
        .filter(|r| !r.state.is_terminal() && r.state != RunState::Preempted)
        .count()
}

/// Enqueues proposal `proposal` as a launch item, with its files; returns the run.
fn enqueue(
    doc: &mut SweepDoc,
    queue: &Queue,
    proposal: &wandb_sweeps::Proposal,
) -> Result<StartedRun> {
    let sweep_id = doc.sweep.id.clone();
    let run_id = wandb_settings::generate_run_id();
    write_sweep_files(doc)?;
    let param_path = write_param_file(doc, &run_id, &proposal.wandb_config())?;
    let json_file = command::args_json_file_path(&doc.wandb_dir, &sweep_id, &run_id);
    if doc.sweep.config.wants_args_json_file() {
        write_args_json(&json_file, &proposal.params)?;
    }
    let getenv = |name: &str| std::env::var(name).ok();
    let mut ctx = CommandContext::unix(&getenv);
    ctx.interpreter = &doc.interpreter;
    ctx.args_json_file = Some(&json_file);
    let argv = command::expand(&doc.sweep.config, &proposal.params, &ctx)
        .map_err(|e| Error::sweep(&sweep_id, e))?;
    let mut env = BTreeMap::new();
    env.insert("WANDB_SWEEP_ID".to_owned(), sweep_id.clone());
    env.insert(
        "WANDB_SWEEP_PARAM_PATH".to_owned(),
        param_path.to_string_lossy().into_owned(),
    );
    env.insert(
        "WANDB_DIR".to_owned(),
        doc.wandb_dir.to_string_lossy().into_owned(),
    );
    let request = JobRequest {
        command: argv,
        project_dir: Some(doc.working_dir.clone()),
        config: proposal.params.clone(),
        project: doc.project.clone(),
        entity: doc.entity.clone(),
        run_id: Some(run_id.clone()),
        resource: Some(doc.resource.clone()),
        resource_args: doc.resource_args.clone(),
        env,
        ..JobRequest::default()
    };
    let item = request.into_item()?;
    queue.add(&item)?;
    doc.sweep
        .attach(proposal.index, run_id.clone())
        .map_err(|e| Error::sweep(&sweep_id, e))?;
    doc.runs.push(SweepItem {
        run_id: run_id.clone(),
        item: item.id.clone(),
        proposal: proposal.index,
        final_metric: None,
    });
    Ok(StartedRun {
        run_id,
        item: item.id,
        params: proposal.params.clone(),
    })
}

/// Cancels the items of `run_ids` that are still queued or running (once each).
fn stop(doc: &mut SweepDoc, queue: &Queue, run_ids: &[String], report: &mut TickReport) {
    for run_id in run_ids {
        if doc.stopped.contains(run_id) {
            continue;
        }
        let Some(entry) = doc.runs.iter().find(|r| &r.run_id == run_id) else {
            continue;
        };
        match queue.cancel(&entry.item) {
            Ok(_) => report.stopped.push((run_id.clone(), entry.item.clone())),
            // It ended meanwhile: nothing to stop.
            Err(crate::error::Error::WrongState { .. }) => {}
            Err(e) => report.errors.push(format!("run {run_id}: stop: {e}")),
        }
        doc.stopped.push(run_id.clone());
    }
}

/// One controller step for sweep `id` of `store`, under the sweep's lock: observe, stop,
/// propose and enqueue, save.
pub fn tick(store: &SweepStore, id: &str, options: &ControllerOptions) -> Result<TickReport> {
    let _lock = store.lock(id)?;
    let mut doc = store.load(id)?;
    let queue = store.queue().clone();
    let mut report = TickReport {
        sweep: id.to_owned(),
        ..TickReport::default()
    };
    let mut runs = observe_runs(&mut doc, &queue);
    let to_stop = doc.sweep.stop_runs(&runs);
    stop(&mut doc, &queue, &to_stop, &mut report);
    // Stopped runs no longer count as in flight for new proposals only once they end; until
    // then they hold their place.
    let mut n = in_flight(&runs);
    let mut result = Ok(());
    while n < options.max_pending.max(1) {
        let proposal = match doc.sweep.next_run(&runs) {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                result = Err(Error::sweep(id, e));
                break;
            }
        };
        match enqueue(&mut doc, &queue, &proposal) {
            Ok(started) => {
                runs.push(SweepRun {
                    id: started.run_id.clone(),
                    params: started.params.clone(),
                    state: RunState::Pending,
                    history: Vec::new(),
                    summary: None,
                });
                report.started.push(started);
                n += 1;
                // Saved after each item, so an item never exists that the sweep does not know.
                store.save(&doc)?;
            }
            Err(e) => {
                // Withdrawn, so it neither counts against run_cap nor holds a grid point: the
                // next tick proposes it again.
                doc.sweep
                    .proposals
                    .retain(|p| p.index != proposal.index || p.run_id.is_some());
                store.save(&doc)?;
                return Err(e);
            }
        }
    }
    doc.sweep.observe(&runs);
    store.save(&doc)?;
    result?;
    report.state = Some(doc.sweep.state);
    report.in_flight = n;
    report.done = n == 0
        && matches!(
            doc.sweep.state,
            SweepState::Finished | SweepState::Cancelled
        );
    Ok(report)
}

/// Runs the controller of sweep `id` until the sweep is done (no more proposals, nothing in
/// flight), `stop` is triggered, or after one tick with `once`; `report` sees each tick.
pub fn run_controller(
    store: &SweepStore,
    id: &str,
    options: &ControllerOptions,
    stop: &Stop,
    report: &mut dyn FnMut(&TickReport),
) -> Result<TickReport> {
    loop {
        let tick_report = match tick(store, id, options) {
            Ok(r) => r,
            // Someone else holds the sweep a while (another controller's tick): try again.
            Err(e @ Error::Locked { .. }) if !options.once => {
                eprintln!("wandb-launch: sweep {id}: {e}; retrying");
                if stop.wait(options.poll) {
                    return Err(e);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        report(&tick_report);
        if options.once || tick_report.done || stop.wait(options.poll) {
            return Ok(tick_report);
        }
    }
}

/// One tick for every sweep of `queues` that is not done: what `agent --sweeps` runs each
/// poll. Errors are reported per sweep and do not stop the others.
pub fn tick_all(queues: &[Queue], options: &ControllerOptions) -> Vec<Result<TickReport>> {
    let mut out = Vec::new();
    for queue in queues {
        let store = match SweepStore::open(queue.clone()) {
            Ok(store) => store,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let ids = match store.ids() {
            Ok(ids) => ids,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        for id in ids {
            // A sweep that is over and has nothing in flight needs no tick.
            if let Ok(doc) = store.load(&id)
                && matches!(
                    doc.sweep.state,
                    SweepState::Finished | SweepState::Cancelled
                )
                && doc.runs.iter().all(|r| r.final_metric.is_some())
            {
                continue;
            }
            out.push(tick(&store, &id, options));
        }
    }
    out
}

/// The sweep driver of `agent --sweeps`: a thread that runs [`tick_all`] over the agent's
/// queues every `poll` (the first time before returning, so the agent finds the first runs
/// at once), until [`SweepDriver::finish`] or `stop`.
#[derive(Debug)]
pub struct SweepDriver {
    own: Stop,
    stop: Stop,
    queues: Vec<Queue>,
    options: ControllerOptions,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SweepDriver {
    /// One tick of every sweep now (unless the agent is stopping). The agent calls it when a
    /// job ends, before it looks at its queues again, so the next runs of a sweep are queued
    /// before `--exit-when-empty` can find the queue empty.
    pub fn tick_now(&self) {
        if !self.stop.is_stopped() && !self.own.is_stopped() {
            report_ticks(tick_all(&self.queues, &self.options));
        }
    }

    /// Stops the thread and waits for its tick in progress.
    pub fn finish(mut self) {
        self.own.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Tells stderr what a tick did: the runs it queued (with their params when `with_params`),
/// the runs it stopped and its errors, a line each.
pub(crate) fn eprint_tick(report: &TickReport, with_params: bool) {
    for run in &report.started {
        let params = if with_params {
            format!(": {}", serde_json::Value::Object(run.params.clone()))
        } else {
            String::new()
        };
        eprintln!(
            "wandb-launch: sweep {}: run {} queued (item {}){params}",
            report.sweep, run.run_id, run.item
        );
    }
    for (run, item) in &report.stopped {
        eprintln!(
            "wandb-launch: sweep {}: run {run} stopped (item {item})",
            report.sweep
        );
    }
    for error in &report.errors {
        eprintln!("wandb-launch: sweep {}: {error}", report.sweep);
    }
}

fn report_ticks(results: Vec<Result<TickReport>>) {
    for result in results {
        match result {
            Ok(report) => eprint_tick(&report, false),
            Err(e) => eprintln!("wandb-launch: sweep: error: {e}"),
        }
    }
}

/// Starts the sweep driver of an agent serving `queues` (see [`SweepDriver`]); `max_pending`
/// bounds the runs of each sweep queued or running.
pub fn spawn_sweep_driver(
    queues: Vec<Queue>,
    max_pending: usize,
    poll: Duration,
    stop: Stop,
) -> SweepDriver {
    let options = ControllerOptions {
        max_pending: max_pending.max(1),
        poll,
        once: false,
    };
    report_ticks(tick_all(&queues, &options));
    let own = Stop::new();
    let (own_thread, stop_thread) = (own.clone(), stop.clone());
    let (queues_thread, options_thread) = (queues.clone(), options.clone());
    let thread = std::thread::Builder::new()
        .name("wandb-launch-sweeps".into())
        .spawn(move || {
            while !own_thread.wait(options_thread.poll) && !stop_thread.is_stopped() {
                report_ticks(tick_all(&queues_thread, &options_thread));
            }
        })
        .ok();
    SweepDriver {
        own,
        stop,
        queues,
        options,
        thread,
    }
}
