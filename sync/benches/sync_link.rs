//! Sync of 50 runs × 10,000 rows × 10 floats through the test backend's link model (issue 17):
//! loopback, 50 ms and 150 ms round trip, and 150 ms with 100 Mbit/s shared by all connections.
//!
//! A bench binary rather than a criterion group: one iteration at 150 ms takes seconds, and the
//! official `wandb sync` is timed in the same run against the same backend. Each row runs the
//! built `wandb-sync` binary (as users run it) `SYNC_LINK_REPS` times (default 3) and prints the
//! median wall time, the median CPU time of the child, and the requests the backend served. The
//! official client is timed once per row when `WANDB_SDK_PYTHON` (or `/work/main/.venv`) has it;
//! `SYNC_LINK_OFFICIAL=0` leaves it out. `SYNC_LINK_ROWS=loopback,rtt150` picks rows,
//! `SYNC_LINK_BIN` times another build of `wandb-sync` (e.g. a copy of an older one), and
//! `SYNC_LINK_FEATURES=FILESTREAM_GZIP` sets the features the backend advertises, and
//! `SYNC_LINK_LOG=<file>` writes the backend's request log of our last repetition as JSON.
//! `SYNC_LINK_ARGS` adds arguments to our binary (`SYNC_LINK_ARGS='-j 4'` keeps the runs at once
//! at four; by default they rise with the link up to 32). `SYNC_LINK_HTTPS=h2` serves HTTPS
//! offering HTTP/2 and HTTP/1.1 (`SYNC_LINK_HTTPS=http1`: HTTP/1.1 only), with the backend's
//! authority given to both clients as `REQUESTS_CA_BUNDLE` and `SSL_CERT_FILE`; the rows then
//! also show the connections each client opened and its requests over HTTP/2.
//! `SYNC_LINK_H2_WINDOW=<bytes>` sets the backend's HTTP/2 stream window (hyper's 1 MiB by
//! default).
//!
//! `cargo bench -p wandb-sync --bench sync_link`

#![allow(missing_docs, clippy::unwrap_used, unreachable_pub, dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wandb_testkit::{BackendConfig, BackendState, Https, LinkModel, TestBackend};

#[path = "../examples/gen_runs.rs"]
mod gen_runs;

const RUNS: usize = 50;
const ROWS: u64 = 10_000;

fn reset(dir: &Path) {
    for run in std::fs::read_dir(dir).unwrap() {
        // The official client leaves its own files next to the run folders.
        let run = run.unwrap().path();
        if !run.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(run).unwrap() {
            let path = file.unwrap().path();
            let name = path.to_string_lossy();
            if name.ends_with(".synced") || name.ends_with(".ledger.json") {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}

/// CPU seconds (user + system) of the waited-for children so far: fields 16 and 17 of
/// `/proc/self/stat` (cutime, cstime), in clock ticks of 1/100 s.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // `rest` starts at field 3, so field n is at index n - 3.
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    (field(16) + field(17)) / 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn official_python() -> Option<PathBuf> {
    if std::env::var("SYNC_LINK_OFFICIAL").is_ok_and(|v| v == "0") {
        return None;
    }
    let python = std::env::var_os("WANDB_SDK_PYTHON").map_or_else(
        || PathBuf::from("/work/main/.venv/bin/python"),
        PathBuf::from,
    );
    python.exists().then_some(python)
}

struct Timing {
    wall: f64,
    cpu: f64,
    requests: usize,
    /// Request body bytes on the wire, MB.
    sent_mb: f64,
    connections: u64,
    http2_requests: u64,
}

/// Where the HTTPS backend's authority is written for the clients.
fn ca_file(home: &Path) -> PathBuf {
    home.join("ca.pem")
}

/// The CA variables for a client of `backend`: none on plain HTTP.
fn ca_env(backend: &TestBackend, home: &Path) -> Vec<(&'static str, PathBuf)> {
    match backend.ca_pem() {
        Some(_) => ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"]
            .into_iter()
            .map(|name| (name, ca_file(home)))
            .collect(),
        None => Vec::new(),
    }
}

fn timing(state: &BackendState, wall: f64, cpu: f64) -> Timing {
    Timing {
        wall,
        cpu,
        requests: state.request_log.len(),
        sent_mb: state.counters.bytes_received as f64 / 1e6,
        connections: state.counters.connections,
        http2_requests: state.counters.http2_requests,
    }
}

fn time_ours(backend: &TestBackend, wandb: &Path, home: &Path) -> Timing {
    reset(wandb);
    backend.reset_state();
    let cpu = children_cpu();
    let start = Instant::now();
    let bin = std::env::var_os("SYNC_LINK_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_wandb-sync")),
        PathBuf::from,
    );
    let status = Command::new(bin)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WANDB_API_KEY", backend.api_key())
        .envs(ca_env(backend, home))
        .arg("--base-url")
        .arg(backend.base_url())
        .arg("--quiet")
        .args(
            std::env::var("SYNC_LINK_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .arg(wandb)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(status.success(), "wandb-sync failed: {status}");
    let state = backend.state();
    assert_eq!(state.runs.len(), RUNS);
    if let Some(path) = std::env::var_os("SYNC_LINK_LOG") {
        // The request log of the last repetition, for looking at a run's critical path.
        std::fs::write(path, serde_json::to_vec(&state.request_log).unwrap()).unwrap();
    }
    timing(&state, wall, children_cpu() - cpu)
}

fn time_official(python: &Path, backend: &TestBackend, wandb: &Path, home: &Path) -> Timing {
    reset(wandb);
    backend.reset_state();
    let cpu = children_cpu();
    let start = Instant::now();
    let mut cmd = Command::new(python);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WANDB_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .current_dir(home)
        .env("HOME", home)
        .env("WANDB_DIR", home)
        .env("WANDB_CONFIG_DIR", home.join("config"))
        .env("WANDB_CACHE_DIR", home.join("cache"))
        .env("WANDB_DATA_DIR", home.join("data"))
        .env("WANDB_BASE_URL", backend.base_url())
        .env("WANDB_API_KEY", backend.api_key())
        .envs(ca_env(backend, home))
        .args(["-m", "wandb", "sync"])
        .arg(wandb)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(status.success(), "official wandb sync failed: {status}");
    timing(&backend.state(), wall, children_cpu() - cpu)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks rows like SYNC_LINK_ROWS.
    let filter: Vec<String> = std::env::var("SYNC_LINK_ROWS")
        .ok()
        .map(|rows| rows.split(',').map(str::to_owned).collect())
        .or_else(|| {
            let args: Vec<String> = std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect();
            (!args.is_empty()).then_some(args)
        })
        .unwrap_or_default();
    let reps: usize = std::env::var("SYNC_LINK_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rtt = Duration::from_millis;
    let rows: [(&str, Option<LinkModel>); 4] = [
        ("loopback", None),
        ("rtt50", Some(LinkModel::with_rtt(rtt(50)))),
        ("rtt150", Some(LinkModel::with_rtt(rtt(150)))),
        (
            "rtt150_100mbit",
            Some(LinkModel::with_rtt(rtt(150)).megabits_per_second(100)),
        ),
    ];
    let home = tempfile::tempdir().unwrap();
    let wandb = home.path().join("wandb");
    for i in 0..RUNS {
        gen_runs::write_run(&wandb, &format!("bench{i:04}"), ROWS).unwrap();
    }
    let python = official_python();
    if python.is_none() {
        println!(
            "SKIP official wandb sync: no SDK python (WANDB_SDK_PYTHON) or SYNC_LINK_OFFICIAL=0"
        );
    }
    println!("{RUNS} runs x {ROWS} rows x 10 floats; median of {reps} (ours), 1 (official)");
    println!(
        "{:<16} {:>7} {:>6} {:>5} {:>6} | {:>7} {:>6} {:>5} {:>6} | {:>6}",
        "row", "ours s", "cpu s", "reqs", "MB", "wandb s", "cpu s", "reqs", "MB", "ratio"
    );
    for (name, link) in rows {
        if !filter.is_empty() && !filter.iter().any(|f| name == f) {
            continue;
        }
        let backend = TestBackend::start_with(BackendConfig {
            record_variables: false,
            link,
            worker_threads: 2,
            features: std::env::var("SYNC_LINK_FEATURES")
                .map(|f| f.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            https: match std::env::var("SYNC_LINK_HTTPS").as_deref() {
                Ok("h2") => Some(Https::Http2),
                Ok("http1") => Some(Https::Http1Only),
                Ok(other) if !other.is_empty() => {
                    panic!("SYNC_LINK_HTTPS: h2 or http1, not {other}")
                }
                _ => None,
            },
            http2_window: std::env::var("SYNC_LINK_H2_WINDOW")
                .ok()
                .and_then(|w| w.parse().ok()),
            ..BackendConfig::default()
        })
        .unwrap();
        if let Some(pem) = backend.ca_pem() {
            std::fs::write(ca_file(home.path()), pem).unwrap();
        }
        let ours: Vec<Timing> = (0..reps)
            .map(|_| time_ours(&backend, &wandb, home.path()))
            .collect();
        let wall = median(ours.iter().map(|t| t.wall).collect());
        let cpu = median(ours.iter().map(|t| t.cpu).collect());
        let requests = ours.last().map_or(0, |t| t.requests);
        let sent = ours.last().map_or(0.0, |t| t.sent_mb);
        let mut all: Vec<String> = ours.iter().map(|t| format!("{:.2}", t.wall)).collect();
        if let Some(last) = ours.last().filter(|_| backend.ca_pem().is_some()) {
            all.push(format!(
                "; {} connections, {} requests over HTTP/2",
                last.connections, last.http2_requests
            ));
        }
        print!("{name:<16} {wall:>7.2} {cpu:>6.2} {requests:>5} {sent:>6.1} |");
        std::io::stdout().flush().unwrap();
        if let Some(python) = &python {
            let theirs = time_official(python, &backend, &wandb, home.path());
            if backend.ca_pem().is_some() {
                all.push(format!(
                    "; official: {} connections, {} over HTTP/2",
                    theirs.connections, theirs.http2_requests
                ));
            }
            println!(
                " {:>7.2} {:>6.2} {:>5} {:>6.1} | {:>5.1}x   (ours: {})",
                theirs.wall,
                theirs.cpu,
                theirs.requests,
                theirs.sent_mb,
                theirs.wall / wall,
                all.join(" ")
            );
        } else {
            println!(
                " {:>7} {:>6} {:>5} {:>6} | {:>6}   (ours: {})",
                "-",
                "-",
                "-",
                "-",
                "-",
                all.join(" ")
            );
        }
    }
}
