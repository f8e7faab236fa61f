//! Criterion benchmarks of the file-system queue and the agent:
//!
//! - `add_claim_10k`: `add` of 10,000 items (each one atomic, fsynced document plus its
//!   ticket) and one agent claiming them all, on local disk (a temp folder); items/s.
//! - `claim_to_start`: an agent's overhead from its first poll (reap, claim, read the item,
//!   write the attempt record) to its job's process having started (`true` under the job
//!   wrapper); the time to the agent's `Started` event.
//! - `idle_poll`: the time of one poll of an empty queue by an idle agent (reap, claim, the
//!   emptiness checks); the run then prints the CPU time (this thread's, from
//!   `/proc/thread-self/schedstat`) of 20,000 such polls, per poll and per hour at the default
//!   10 s poll.
//!
//! `cargo bench -p wandb-launch --bench queue` (`add_claim_10k` alone takes about 10 minutes on
//! a disk where fsync costs 2-3 ms; `LAUNCH_BENCH_ITEMS=1000` makes it shorter).

#![allow(clippy::unwrap_used)] // A benchmark that fails to set up should stop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wandb_launch::agent::{Agent, AgentOptions, Event, Stop};
use wandb_launch::item::Item;
use wandb_launch::job::JobRequest;
use wandb_launch::lease::LeaseWatch;
use wandb_launch::queue::Queue;
use wandb_launch::resource::ResourceOptions;

/// Items added and claimed per iteration (`LAUNCH_BENCH_ITEMS`, default 10,000).
fn n_items() -> usize {
    std::env::var("LAUNCH_BENCH_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn template() -> Item {
    let mut request = JobRequest::default();
    request.command = vec!["true".into()];
    let mut item = request.into_item().unwrap();
    item.config.insert("lr".into(), serde_json::json!(0.1));
    item
}

fn add_claim(c: &mut Criterion) {
    let template = template();
    let n = n_items();
    let mut group = c.benchmark_group("queue");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("add_claim_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let queue = Queue::open(dir.path(), "bench").unwrap();
                let items: Vec<Item> = (0..n)
                    .map(|i| Item {
                        id: format!("{}{i:05}", &template.id[..7]),
                        ..template.clone()
                    })
                    .collect();
                let start = Instant::now();
                for item in &items {
                    queue.add(item).unwrap();
                }
                let claims = queue.claim("agent", n).unwrap();
                total += start.elapsed();
                assert_eq!(claims.len(), n);
            }
            total
        });
    });
    group.finish();
}

fn wrapper() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_wandb-launch")))
}

fn claim_to_start(c: &mut Criterion) {
    let template = template();
    let mut group = c.benchmark_group("agent");
    group.sample_size(20);
    group.bench_function("claim_to_start", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let queue = Queue::open(dir.path(), "bench").unwrap();
                let item = Item {
                    id: wandb_settings::generate_id(12),
                    working_dir: dir.path().to_path_buf(),
                    ..template.clone()
                };
                queue.add(&item).unwrap();
                let mut options = AgentOptions::new(vec![queue]);
                options.poll = Duration::from_millis(20);
                options.exit_when_empty = true;
                options.resource_options = ResourceOptions::default();
                options.resource_options.job_wrapper = wrapper();
                let agent = Agent::new(options);
                let mut started = None;
                let start = Instant::now();
                agent.run(&Stop::new(), &mut |event| {
                    if matches!(event, Event::Started { .. }) && started.is_none() {
                        started = Some(Instant::now());
                    }
                });
                total += started.unwrap() - start;
            }
            total
        });
    });
    group.finish();
}

/// This thread's CPU time so far (`/proc/thread-self/schedstat`, first field, ns).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// One poll of an idle agent: what `Agent::run` does every `poll` when nothing is there.
fn idle_poll(queue: &Queue, watch: &mut LeaseWatch) {
    assert!(queue.reap(watch, "idle").unwrap().is_empty());
    assert!(queue.claim("idle", 1).unwrap().is_empty());
    assert!(queue.pending().unwrap().is_empty());
    assert_eq!(queue.list_claimed().unwrap(), 0);
}

fn idle(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), "idle").unwrap();
    let mut watch = LeaseWatch::new(Duration::from_secs(60));
    let mut group = c.benchmark_group("agent");
    // Wall time per poll (the thread's CPU clock is too coarse for criterion's short batches);
    // the CPU figure is measured below over many polls.
    group.bench_function("idle_poll", |b| b.iter(|| idle_poll(&queue, &mut watch)));
    group.finish();
    let n_polls = 20_000u32;
    let before = thread_cpu();
    for _ in 0..n_polls {
        idle_poll(&queue, &mut watch);
    }
    let per_poll = (thread_cpu() - before) / n_polls;
    let per_hour = per_poll * 360;
    eprintln!(
        "idle agent: {per_poll:?} CPU per poll; at the default 10 s poll, {per_hour:?} CPU per hour (plus one wake-up per poll)"
    );
}

criterion_group!(benches, add_claim, claim_to_start, idle);
criterion_main!(benches);
