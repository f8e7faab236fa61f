//! The agent (W&B's `LaunchAgent`): claims items from its queues, runs up to `max_jobs` at
//! once on their resources, renews their leases, returns other agents' expired items, and
//! records each attempt.
//!
//! One thread does everything, in ticks: follow the jobs (poll, cancel requests, the grace
//! period of a stopping job), renew the leases every quarter lease, and every `poll` (or at
//! once when a job ends and more may be waiting) reap expired leases and claim into the free
//! slots. Between ticks it waits on a [`Stop`] handle, so a stop request (SIGTERM, SIGINT)
//! is seen at once and an idle agent wakes only every `poll`.
//!
//! **Bad items do not stop the agent**: an item whose document is malformed or missing,
//! that names an unknown resource or has no command, or whose job cannot be started, is
//! moved to `done/` as failed with the reason in its attempt record, and reported as an
//! [`Event::Error`] naming it. A queue folder the agent cannot write is reported (naming the
//! folder) on every poll, and the other queues are served.
//!
//! **Stopping** ([`Stop::stop`]): no more claims; every job gets SIGTERM (through
//! [`RunningJob::terminate`]) and, if still running `grace` later, SIGKILL; items whose job
//! did not finish go back to the queue ([`Queue::release`]) for their next attempt.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::env::{job_env, job_wandb_dir, stale_names};
use crate::error::{Error, Result};
use crate::item::{Attempt, Item, State};
use crate::lease::{Clock, LeaseWatch, renew_interval};
use crate::queue::{Claim, Queue, now_rfc3339};
use crate::resource::{
    JobOutcome, PreparedJob, Resource, ResourceOptions, RunningJob, resource_for,
};
use crate::runlink::find_run_dirs;

/// How often running jobs are polled (at most; `poll` may be shorter).
const JOB_TICK: Duration = Duration::from_millis(200);

/// A stop request shared between the agent and whoever stops it (a signal thread, a test).
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    /// A handle that has not been stopped.
    pub fn new() -> Self {
        Stop::default()
    }

    /// Asks the agent to stop (idempotent).
    pub fn stop(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        condvar.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` or until stopped; true if stopped.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, condvar) = &*self.0;
        let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = condvar
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

/// How the agent runs.
#[non_exhaustive]
pub struct AgentOptions {
    /// The queues, served in this order (each poll claims from the first that has items).
    pub queues: Vec<Queue>,
    /// Jobs at once (W&B's `max_jobs`, default 1).
    pub max_jobs: usize,
    /// How often the queues are polled (W&B: 10 s).
    pub poll: Duration,
    /// Lease period (W&B: an item not acknowledged in 1 minute goes back).
    pub lease: Duration,
    /// How long a job has between SIGTERM and SIGKILL when the agent stops or cancels it.
    pub grace: Duration,
    /// Stop by itself once nothing is waiting or claimed in any of its queues and no job runs.
    pub exit_when_empty: bool,
    /// The agent's `WANDB_DIR` (where jobs that set none write their runs, when not their
    /// working folder).
    pub wandb_dir: Option<PathBuf>,
    /// Settings for the resources.
    pub resource_options: ResourceOptions,
    /// The clock leases are judged on (`None`: the monotonic clock).
    pub clock: Option<Box<dyn Fn() -> Box<dyn Clock>>>,
}

impl AgentOptions {
    /// Options for these queues, with W&B's defaults (1 job, 10 s poll, 60 s lease, 10 s grace).
    pub fn new(queues: Vec<Queue>) -> Self {
        AgentOptions {
            queues,
            max_jobs: 1,
            poll: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            exit_when_empty: false,
            wandb_dir: None,
            resource_options: ResourceOptions::default(),
            clock: None,
        }
    }
}

/// What the agent reports as it goes (the CLI prints these).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A job started.
    Started {
        /// Queue.
        queue: String,
        /// Item id.
        item: String,
        /// Attempt number.
        attempt: u32,
        /// Process or scheduler id.
        external_id: Option<String>,
    },
    /// A job ended (or an item could not be run).
    Ended {
        /// Queue.
        queue: String,
        /// Item id.
        item: String,
        /// Attempt number.
        attempt: u32,
        /// The item's state now (`pending` when it went back to the queue).
        state: State,
        /// The job's exit code.
        exit_code: Option<i32>,
        /// Why, when it did not finish.
        reason: Option<String>,
    },
    /// Another agent's item whose lease expired went back to the queue (or failed).
    Reaped {
        /// Queue.
        queue: String,
        /// Item id.
        item: String,
        /// The expired attempt.
        attempt: u32,
        /// Whether it failed (no retries left).
        failed: bool,
    },
    /// Something went wrong that the agent survived.
    Error {
        /// The item concerned, if one is.
        item: Option<String>,
        /// The message (naming item, path or field).
        message: String,
    },
}

/// Counts of what an agent did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentReport {
    /// Items finished.
    pub finished: usize,
    /// Items failed.
    pub failed: usize,
    /// Items cancelled.
    pub cancelled: usize,
    /// Items given back to the queue on stop.
    pub returned: usize,
}

/// A job the agent follows.
struct Active {
    queue: usize,
    claim: Claim,
    item: Item,
    job: Box<dyn RunningJob>,
    record: Attempt,
    /// When SIGKILL is due (set once terminated).
    kill_at: Option<Instant>,
    killed: bool,
    cancel: bool,
    /// The claim was lost (its lease expired): the item is another agent's now.
    lost: bool,
}

/// The agent.
pub struct Agent {
    options: AgentOptions,
    token: String,
    agent_id: String,
    watches: Vec<LeaseWatch>,
    resources: HashMap<String, Box<dyn Resource>>,
    active: Vec<Active>,
    env_remove: Vec<String>,
    report: AgentReport,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.agent_id)
            .field("active", &self.active.len())
            .finish()
    }
}

impl Agent {
    /// An agent with these options (a new random token identifies its claims).
    pub fn new(options: AgentOptions) -> Self {
        let token = wandb_settings::generate_id(8);
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let agent_id = format!("{host}:{}:{token}", std::process::id());
        let watches = options
            .queues
            .iter()
            .map(|_| match &options.clock {
                Some(make) => LeaseWatch::with_clock(options.lease, make()),
                None => LeaseWatch::new(options.lease),
            })
            .collect();
        let inherited: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let env_remove = stale_names(inherited.iter().map(String::as_str));
        Agent {
            options,
            token,
            agent_id,
            watches,
            resources: HashMap::new(),
            active: Vec::new(),
            env_remove,
            report: AgentReport::default(),
        }
    }

    /// The agent's id (`host:pid:token`), as attempt records name it.
    pub fn id(&self) -> &str {
        &self.agent_id
    }

    /// The queues it serves.
    pub fn queues(&self) -> &[Queue] {
        &self.options.queues
    }

    /// The token its claimed tickets carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Runs until `stop` is stopped (then stops its jobs and returns their items), or, with
    /// `exit_when_empty`, until its queues are empty.
    pub fn run(mut self, stop: &Stop, events: &mut dyn FnMut(Event)) -> AgentReport {
        let renew_every = renew_interval(self.options.lease).max(Duration::from_millis(10));
        let mut next_poll = Instant::now();
        let mut next_renew = Instant::now() + renew_every;
        let mut stopping = false;
        loop {
            if stop.is_stopped() && !stopping {
                stopping = true;
                let grace = self.options.grace;
                for active in &mut self.active {
                    terminate(active, grace, events);
                }
            }
            let ended = self.follow_jobs(stopping, events);
            let now = Instant::now();
            if now >= next_renew {
                self.renew_all(events);
                next_renew = now + renew_every;
            }
            if stopping {
                if self.active.is_empty() {
                    break;
                }
            } else {
                if ended && self.active.len() < self.options.max_jobs {
                    next_poll = now;
                }
                if now >= next_poll {
                    let busy = self.poll_queues(events);
                    next_poll = Instant::now() + self.options.poll;
                    if self.options.exit_when_empty && !busy && self.active.is_empty() {
                        break;
                    }
                }
            }
            let mut wait = next_renew.saturating_duration_since(Instant::now());
            if self.active.is_empty() {
                wait = wait.min(next_poll.saturating_duration_since(Instant::now()));
            } else {
                wait = wait.min(JOB_TICK).min(self.options.poll);
            }
            if !stopping {
                stop.wait(wait);
            } else {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
            }
        }
        self.report
    }

    /// Polls every job; finishes those that ended. True if any ended.
    fn follow_jobs(&mut self, stopping: bool, events: &mut dyn FnMut(Event)) -> bool {
        let mut ended_any = false;
        let mut i = 0;
        while i < self.active.len() {
            let active = &mut self.active[i];
            if !stopping && !active.cancel && active.kill_at.is_none() {
                let queue = &self.options.queues[active.queue];
                if queue.cancel_requested(&active.item.id) {
                    active.cancel = true;
                    terminate(active, self.options.grace, events);
                }
            }
            match active.job.poll() {
                Ok(Some(outcome)) => {
                    let active = self.active.swap_remove(i);
                    self.end(active, &outcome, stopping, events);
                    ended_any = true;
                    continue;
                }
                Ok(None) => {
                    if let Some(kill_at) = active.kill_at
                        && !active.killed
                        && Instant::now() >= kill_at
                    {
                        active.killed = true;
                        if let Err(e) = active.job.kill() {
                            events(Event::Error {
                                item: Some(active.item.id.clone()),
                                message: e.to_string(),
                            });
                        }
                    }
                }
                Err(e) => events(Event::Error {
                    item: Some(active.item.id.clone()),
                    message: e.to_string(),
                }),
            }
            i += 1;
        }
        ended_any
    }

    /// Renews every lease; a lost one (the ticket was returned by another agent) stops its job.
    fn renew_all(&mut self, events: &mut dyn FnMut(Event)) {
        let grace = self.options.grace;
        for active in &mut self.active {
            if active.lost {
                continue;
            }
            let queue = &self.options.queues[active.queue];
            match queue.renew(&mut active.claim) {
                Ok(true) => {}
                Ok(false) => {
                    active.lost = true;
                    events(Event::Error {
                        item: Some(active.item.id.clone()),
                        message: format!(
                            "item {}: lost its claim (the lease expired and another agent returned it); stopping its job",
                            active.item.id
                        ),
                    });
                    terminate(active, grace, events);
                }
                Err(e) => events(Event::Error {
                    item: Some(active.item.id.clone()),
                    message: e.to_string(),
                }),
            }
        }
    }

    /// Reaps expired leases and claims into the free slots. True while any queue has items
    /// waiting or claimed (by anyone).
    fn poll_queues(&mut self, events: &mut dyn FnMut(Event)) -> bool {
        let mut busy = false;
        for q in 0..self.options.queues.len() {
            let queue = self.options.queues[q].clone();
            match queue.reap(&mut self.watches[q], &self.token) {
                Ok(reaped) => {
                    for r in reaped {
                        events(Event::Reaped {
                            queue: queue.name().to_owned(),
                            item: r.id,
                            attempt: r.attempt,
                            failed: r.failed,
                        });
                    }
                }
                Err(e) => events(Event::Error {
                    item: None,
                    message: format!("queue {}: {e}", queue.name()),
                }),
            }
            let free = self.options.max_jobs.saturating_sub(self.active.len());
            match queue.claim(&self.token, free) {
                Ok(claims) => {
                    for claim in claims {
                        self.start(q, claim, events);
                    }
                }
                Err(e) => events(Event::Error {
                    item: None,
                    message: format!("queue {}: {e}", queue.name()),
                }),
            }
            // A queue that cannot be read counts as empty here (its error is reported above).
            let pending = queue.pending().map_or(0, |p| p.len());
            let claimed = queue.list_claimed().unwrap_or(0);
            busy |= pending > 0 || claimed > 0;
        }
        busy
    }

    /// Starts a claimed item, or fails it with the reason.
    fn start(&mut self, q: usize, claim: Claim, events: &mut dyn FnMut(Event)) {
        let queue = self.options.queues[q].clone();
        let attempt = claim.ticket.attempt;
        let id = claim.id().to_owned();
        let log = queue.log_path(&id, attempt);
        let mut record = Attempt {
            item: id.clone(),
            attempt,
            state: Some(State::Claimed),
            agent: self.agent_id.clone(),
            claimed_at: Some(now_rfc3339()),
            log: Some(log.clone()),
            ..Attempt::default()
        };
        let started = (|| -> Result<(Item, Box<dyn RunningJob>)> {
            let item = match &claim.item {
                Ok(item) => item.clone(),
                Err(e) => {
                    return Err(Error::invalid(Some(&id), "item document", e.to_string()));
                }
            };
            if item.command.is_empty() {
                return Err(Error::MissingCommand { item: id.clone() });
            }
            if !self.resources.contains_key(&item.resource) {
                let resource =
                    resource_for(&item.resource, &self.options.resource_options, Some(&id))?;
                self.resources.insert(item.resource.clone(), resource);
            }
            let Some(resource) = self.resources.get(&item.resource) else {
                return Err(Error::UnknownResource {
                    name: item.resource.clone(),
                    item: Some(id.clone()),
                });
            };
            let mut job = PreparedJob::new(&id, item.command.clone(), &item.working_dir, &log)
                .with_env(job_env(&item, Some(queue.name()), attempt))
                .with_resource_args(item.resource_args.clone())
                .with_run(&item.run_id, attempt);
            job.env_remove = self.env_remove.clone();
            let running = resource.start(&job)?;
            Ok((item, running))
        })();
        match started {
            Ok((item, job)) => {
                record.state = Some(State::Running);
                record.started_at = Some(now_rfc3339());
                record.external_id = job.external_id();
                if let Err(e) = queue.write_attempt(&record) {
                    events(Event::Error {
                        item: Some(id.clone()),
                        message: e.to_string(),
                    });
                }
                events(Event::Started {
                    queue: queue.name().to_owned(),
                    item: id,
                    attempt,
                    external_id: record.external_id.clone(),
                });
                self.active.push(Active {
                    queue: q,
                    claim,
                    item,
                    job,
                    record,
                    kill_at: None,
                    killed: false,
                    cancel: false,
                    lost: false,
                });
            }
            Err(e) => {
                let reason = e.to_string();
                events(Event::Error {
                    item: Some(id.clone()),
                    message: reason.clone(),
                });
                record.state = Some(State::Failed);
                record.ended_at = Some(now_rfc3339());
                record.reason = Some(reason.clone());
                if let Err(e) = queue.write_attempt(&record) {
                    events(Event::Error {
                        item: Some(id.clone()),
                        message: e.to_string(),
                    });
                }
                match queue.finish(&claim, State::Failed) {
                    Ok(_) => {}
                    Err(e) => events(Event::Error {
                        item: Some(id.clone()),
                        message: e.to_string(),
                    }),
                }
                self.report.failed += 1;
                events(Event::Ended {
                    queue: queue.name().to_owned(),
                    item: id,
                    attempt,
                    state: State::Failed,
                    exit_code: None,
                    reason: Some(reason),
                });
            }
        }
    }

    /// Records a job's end and moves its ticket.
    fn end(
        &mut self,
        active: Active,
        outcome: &JobOutcome,
        stopping: bool,
        events: &mut dyn FnMut(Event),
    ) {
        let queue = self.options.queues[active.queue].clone();
        let mut record = active.record;
        record.ended_at = Some(now_rfc3339());
        record.exit_code = outcome.exit_code;
        record.signal = outcome.signal;
        let wandb_dir = job_wandb_dir(&active.item, self.options.wandb_dir.as_deref());
        record.run_dirs = find_run_dirs(&wandb_dir, &active.item.run_id);
        let (state, reason) = if active.lost {
            (
                State::Expired,
                Some("the claim was lost before the job ended (lease expired)".to_owned()),
            )
        } else if active.cancel {
            (State::Cancelled, Some("cancelled".to_owned()))
        } else if outcome.success() {
            (State::Finished, None)
        } else if stopping {
            (
                State::Returned,
                Some("the agent stopped; back in the queue".to_owned()),
            )
        } else {
            let why = outcome.failure.clone().unwrap_or_else(|| {
                match (outcome.exit_code, outcome.signal) {
                    (Some(code), _) => format!("exit code {code}"),
                    (None, Some(signal)) => format!("killed by signal {signal}"),
                    _ => "failed".to_owned(),
                }
            });
            (State::Failed, Some(why))
        };
        record.state = Some(state);
        record.reason = reason.clone();
        if let Err(e) = queue.write_attempt(&record) {
            events(Event::Error {
                item: Some(active.item.id.clone()),
                message: e.to_string(),
            });
        }
        let moved = match state {
            State::Expired => Ok(false),
            State::Returned => queue.release(&active.claim),
            final_state => queue.finish(&active.claim, final_state),
        };
        if let Err(e) = moved {
            events(Event::Error {
                item: Some(active.item.id.clone()),
                message: e.to_string(),
            });
        }
        match state {
            State::Finished => self.report.finished += 1,
            State::Failed => self.report.failed += 1,
            State::Cancelled => self.report.cancelled += 1,
            State::Returned => self.report.returned += 1,
            _ => {}
        }
        events(Event::Ended {
            queue: queue.name().to_owned(),
            item: active.item.id.clone(),
            attempt: record.attempt,
            state: if state == State::Returned {
                State::Pending
            } else {
                state
            },
            exit_code: outcome.exit_code,
            reason,
        });
    }
}

/// Sends a job SIGTERM (once) and sets when SIGKILL is due.
fn terminate(active: &mut Active, grace: Duration, events: &mut dyn FnMut(Event)) {
    if active.kill_at.is_some() {
        return;
    }
    active.kill_at = Some(Instant::now() + grace);
    if let Err(e) = active.job.terminate(grace) {
        events(Event::Error {
            item: Some(active.item.id.clone()),
            message: e.to_string(),
        });
    }
}
