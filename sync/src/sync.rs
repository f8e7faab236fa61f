//! [`sync_paths`]: discover, plan, run the groups in parallel, collect the report.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::api::{Api, FILESTREAM_GZIP};
use crate::discover::{self, Found};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::options::{PlannedRun, SyncOptions};
use crate::process::Carry;
use crate::report::{Report, RunReport, RunResult};
use crate::runsync::{FilePlan, sync_file};

/// Syncs every `.wandb` file reachable from `opts.paths`.
///
/// Errors are returned only for problems that stop everything (a path that does not exist, no
/// API key, an unusable CA bundle); a run that fails is reported in the [`Report`] and the other
/// runs go on.
pub fn sync_paths(opts: &SyncOptions) -> Result<Report> {
    let started = Instant::now();
    if opts.paths.is_empty() {
        return Err(Error::Usage {
            option: "PATH",
            problem: "no paths given".into(),
        });
    }
    let discovered = discover::discover(&opts.paths, opts.live)?;
    let found = discovered.found;
    let api = if opts.dry_run {
        None
    } else {
        let key = opts.api_key.as_ref().ok_or_else(|| Error::NoApiKey {
            base_url: opts.base_url.clone(),
            host: wandb_settings::netloc(&opts.base_url)
                .unwrap_or(&opts.base_url)
                .to_owned(),
        })?;
        let http = Http::new(
            &opts.base_url,
            Some(key),
            opts.retry.clone(),
            opts.ca_bundle.as_deref(),
            opts.http1_only,
        )?;
        Some(Api {
            http,
            gzip_file_stream: false,
        })
    };

    // Refused paths first, then the files in input order; skipped files are settled now, the
    // rest planned.
    let mut refused: Vec<RunReport> = Vec::new();
    for problem in &discovered.refused {
        let path = problem.path().to_path_buf();
        let mut report = RunReport::new(path.clone(), run_id_of(&path), RunResult::Failed);
        report.error = Some(problem.to_string());
        refused.push(report);
    }
    let mut reports: Vec<Option<RunReport>> = vec![None; found.len()];
    let mut plans: Vec<(usize, FilePlan)> = Vec::new();
    for (index, file) in found.iter().enumerate() {
        if let Some(result) = skip_reason(file, opts) {
            reports[index] = Some(RunReport::new(
                file.path.clone(),
                run_id_of(&file.path),
                result,
            ));
            continue;
        }
        match discover::plan(file, opts) {
            Ok(plan) => plans.push((index, plan)),
            Err(e) => {
                let mut report =
                    RunReport::new(file.path.clone(), String::new(), RunResult::Failed);
                report.error = Some(e.to_string());
                reports[index] = Some(report);
            }
        }
    }

    // Group fragments of the same run; keep groups in input order.
    let mut groups: Vec<Vec<(usize, FilePlan)>> = Vec::new();
    let mut by_key: HashMap<(Option<String>, Option<String>, String), usize> = HashMap::new();
    for (index, plan) in plans {
        let key = (
            plan.entity.clone(),
            plan.project.clone(),
            plan.run_id.clone(),
        );
        match by_key.get(&key) {
            Some(&g) => groups[g].push((index, plan)),
            None => {
                by_key.insert(key, groups.len());
                groups.push(vec![(index, plan)]);
            }
        }
    }
    for group in &mut groups {
        group.sort_by(|a, b| (a.1.start_micros, &a.1.path).cmp(&(b.1.start_micros, &b.1.path)));
    }
    let planned: Vec<PlannedRun> = groups
        .iter()
        .flatten()
        .map(|(_, plan)| PlannedRun {
            path: plan.path.clone(),
            name: run_name(
                plan.entity.as_deref(),
                plan.project.as_deref(),
                &plan.run_id,
            ),
            bytes: plan.size,
        })
        .collect();
    opts.observer.sync_planned(&planned);

    // One features query for the whole sync, when something will be sent and gzip is allowed.
    let api = api.map(|mut api| {
        if !groups.is_empty() && !opts.no_gzip {
            let deadline = Instant::now() + opts.run_timeout;
            api.gzip_file_stream = api
                .server_features(deadline)
                .iter()
                .any(|feature| feature == FILESTREAM_GZIP);
        }
        api
    });
    let queue = Mutex::new(groups.into_iter().collect::<VecDeque<_>>());
    let results: Mutex<Vec<(usize, RunReport)>> = Mutex::new(Vec::new());
    // `jobs` runs at once on a fast link, up to `max_jobs` while requests wait on the network
    // (see `pace`): every worker but the first `jobs` waits for the pace to let it start a run.
    let jobs = opts.jobs.max(1);
    let n_workers = opts.max_jobs.max(jobs);
    let active = Admission::default();
    // Each run gets a client of its own while it runs (a blocking client runs all its requests on
    // one runtime thread, which would serialise the runs), taken from those earlier runs left:
    // as many clients are built as runs were ever at once, and their connections are kept alive
    // from run to run, whichever worker takes the next run.
    let clients: Mutex<Vec<Api>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..n_workers {
            scope.spawn(|| {
                loop {
                    let pace = api.as_ref().map(|api| api.http.pace());
                    if !active.enter(
                        || pace.map_or(jobs, |pace| pace.runs_at_once(jobs, n_workers)),
                        || {
                            queue
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .is_empty()
                        },
                    ) {
                        break;
                    }
                    let (group, emptied) = {
                        let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                        (queue.pop_front(), queue.is_empty())
                    };
                    if emptied {
                        // The workers still waiting for a place have nothing left to do.
                        active.wake_all();
                    }
                    let Some(group) = group else {
                        active.leave();
                        break;
                    };
                    let run_api = api.as_ref().map(|shared| {
                        let pooled = clients.lock().unwrap_or_else(PoisonError::into_inner).pop();
                        pooled.unwrap_or_else(|| worker_client(opts, shared))
                    });
                    let mut carry = Carry::default();
                    for (index, plan) in group {
                        let (report, next) = sync_file(opts, run_api.as_ref(), &plan, carry);
                        carry = next;
                        results
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((index, report));
                    }
                    if let Some(run_api) = run_api {
                        clients
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(run_api);
                    }
                    active.leave();
                }
            });
        }
    });
    for (index, report) in results.into_inner().unwrap_or_else(PoisonError::into_inner) {
        if let Some(slot) = reports.get_mut(index) {
            *slot = Some(report);
        }
    }
    let runs = refused
        .into_iter()
        .chain(reports.into_iter().flatten())
        .collect();
    Ok(Report {
        runs,
        warnings: discovered
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The run id in a file name `run-<id>.wandb`.
fn run_id_of(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().trim_start_matches("run-").to_owned())
        .unwrap_or_default()
}

/// `entity/project/run-id`, leaving out the parts not known yet (the server picks the entity
/// when the run does not name one).
pub(crate) fn run_name(entity: Option<&str>, project: Option<&str>, run_id: &str) -> String {
    let mut name = String::new();
    for part in [entity, project].into_iter().flatten() {
        if !part.is_empty() {
            name.push_str(part);
            name.push('/');
        }
    }
    name.push_str(run_id);
    name
}

/// The runs being synced, against the number the pace allows.
#[derive(Debug, Default)]
struct Admission {
    active: Mutex<usize>,
    changed: Condvar,
}

impl Admission {
    /// Waits until fewer than `limit()` runs are active, then counts one more and returns true;
    /// returns false once `done()` says there is no more work. The limit is looked at again
    /// every [`ADMISSION_POLL`], since it follows the reply wait.
    fn enter(&self, limit: impl Fn() -> usize, done: impl Fn() -> bool) -> bool {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if done() {
                return false;
            }
            if *active < limit() {
                *active += 1;
                return true;
            }
            active = self
                .changed
                .wait_timeout(active, ADMISSION_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wakes every waiting worker (there is no more work).
    fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// A run ended (or was never started).
    fn leave(&self) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        *active = active.saturating_sub(1);
        drop(active);
        // One place was freed: one waiting worker takes it (waking them all costs a thread
        // switch each on a fast link, where most wait for good).
        self.changed.notify_one();
    }
}

/// How often a waiting worker looks at the pace again (a rise of the pace is taken up within
/// this; a far server's replies take longer than it anyway).
const ADMISSION_POLL: Duration = Duration::from_millis(100);

/// A client of the worker's own, or the shared one if a new client cannot be built.
fn worker_client(opts: &SyncOptions, shared: &Api) -> Api {
    let key = opts.api_key.as_ref();
    match Http::new(
        &opts.base_url,
        key,
        opts.retry.clone(),
        opts.ca_bundle.as_deref(),
        opts.http1_only,
    ) {
        Ok(http) => Api {
            http: http.sharing_pace(&shared.http),
            gzip_file_stream: shared.gzip_file_stream,
        },
        Err(_) => shared.clone(),
    }
}

fn skip_reason(file: &Found, opts: &SyncOptions) -> Option<RunResult> {
    if file.online && !opts.include_online {
        Some(RunResult::SkippedOnline)
    } else if file.synced && !opts.include_synced {
        Some(RunResult::SkippedSynced)
    } else {
        None
    }
}
