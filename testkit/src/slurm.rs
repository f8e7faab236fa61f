//! Finding (or starting) the one-node SLURM cluster that the `slurm` resource tests submit to.
//!
//! [`slurm_cluster`] looks for a cluster that answers: the configuration named by `SLURM_CONF`,
//! else the one `scripts/slurm-up` writes (`/tmp/wandb-slurm/etc/slurm.conf`). When none answers
//! and this process is root with SLURM's daemons installed, it runs `scripts/slurm-up` once
//! (bounded) to start one; `WANDB_SLURM_NO_START=1` turns that off. When there is still no
//! cluster, the test is reported through [`crate::skip`] (a failure under `CI=true`, where
//! `.ci/run` starts the cluster first).
//!
//! Every command here runs with a deadline, so a hung `slurmctld` fails the check instead of
//! hanging the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::skip;

/// Where `scripts/slurm-up` writes its configuration when `WANDB_SLURM_DIR` is unset.
pub const DEFAULT_SLURM_CONF: &str = "/tmp/wandb-slurm/etc/slurm.conf";

/// How long `sinfo` may take to answer before the cluster counts as absent.
const SINFO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `scripts/slurm-up` may take (it may install packages under CI).
const SLURM_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// A SLURM cluster that answered `sinfo`: pass [`SlurmCluster::conf`] as `SLURM_CONF` to every
/// SLURM command (or to the code under test) so it talks to this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmCluster {
    conf: PathBuf,
    node_state: String,
}

impl SlurmCluster {
    /// The `slurm.conf` of the cluster.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The node state `sinfo` reported when the cluster was found (`idle`, `mix`, `alloc`).
    pub fn node_state(&self) -> &str {
        &self.node_state
    }

    /// A [`Command`] for `program` (e.g. `squeue`) with `SLURM_CONF` set to this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// Runs `program args` against this cluster with a deadline and returns its stdout, or a
    /// message saying what failed (exit status and stderr, or the timeout).
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = self.command(program);
        command.args(args);
        run_bounded(command, timeout)
            .map_err(|problem| format!("{program} {}: {problem}", args.join(" ")))
    }
}

/// The cluster to test against, or `None` after reporting the skip through [`crate::skip`].
///
/// The search (and a start through `scripts/slurm-up`, see the module docs) runs once per
/// process; later calls return the same answer.
///
/// # Panics
///
/// When `CI=true` and there is no cluster (through [`crate::skip`]).
pub fn slurm_cluster() -> Option<SlurmCluster> {
    static FOUND: OnceLock<Result<SlurmCluster, String>> = OnceLock::new();
    match FOUND.get_or_init(find_or_start) {
        Ok(cluster) => Some(cluster.clone()),
        Err(problem) => {
            skip(&format!("no SLURM cluster: {problem}"));
            None
        }
    }
}

fn find_or_start() -> Result<SlurmCluster, String> {
    let conf = std::env::var_os("SLURM_CONF")
        .filter(|conf| !conf.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SLURM_CONF), PathBuf::from);
    let first = probe(&conf);
    if first.is_ok() {
        return first;
    }
    let first_problem = first.err().unwrap_or_default();
    if std::env::var("WANDB_SLURM_NO_START").is_ok_and(|value| value == "1") {
        return Err(format!("{first_problem} (WANDB_SLURM_NO_START=1)"));
    }
    if !is_root() {
        return Err(format!(
            "{first_problem}; not root, so scripts/slurm-up cannot start one (run `sudo scripts/slurm-up` and export the SLURM_CONF it prints)"
        ));
    }
    if !Path::new("/usr/sbin/slurmctld").exists() && std::env::var("CI").as_deref() != Ok("true") {
        return Err(format!(
            "{first_problem}; slurm-wlm is not installed (scripts/slurm-up installs it)"
        ));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-up");
    let mut command = Command::new(&script);
    // slurm-up writes the default configuration unless told otherwise; match the conf we probe.
    if let Some(dir) = conf
        .parent()
        .and_then(Path::parent)
        .filter(|_| conf.ends_with("etc/slurm.conf"))
    {
        command.env("WANDB_SLURM_DIR", dir);
    }
    eprintln!("starting a SLURM cluster: {}", script.display());
    run_bounded(command, SLURM_UP_TIMEOUT)
        .map_err(|problem| format!("{first_problem}; {} failed: {problem}", script.display()))?;
    probe(&conf)
}

/// `sinfo` against `conf`: a cluster whose node is usable, or why not.
fn probe(conf: &Path) -> Result<SlurmCluster, String> {
    if !conf.exists() {
        return Err(format!("{} does not exist", conf.display()));
    }
    let mut command = Command::new("sinfo");
    command.env("SLURM_CONF", conf).args(["-h", "-o", "%t"]);
    let out = run_bounded(command, SINFO_TIMEOUT)
        .map_err(|problem| format!("sinfo with SLURM_CONF={}: {problem}", conf.display()))?;
    let node_state = out.lines().next().unwrap_or("").trim().to_owned();
    let usable = ["idle", "mix", "alloc", "comp"]
        .iter()
        .any(|state| node_state.starts_with(state));
    if usable {
        Ok(SlurmCluster {
            conf: conf.to_path_buf(),
            node_state,
        })
    } else {
        Err(format!(
            "the node of {} is not usable (sinfo says {node_state:?})",
            conf.display()
        ))
    }
}

fn is_root() -> bool {
    // No libc in this crate: `id -u` answers the same question.
    run_bounded(
        {
            let mut command = Command::new("id");
            command.arg("-u");
            command
        },
        Duration::from_secs(5),
    )
    .is_ok_and(|uid| uid.trim() == "0")
}

/// Runs `command` with its stdout and stderr captured, killing it at `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<String, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run it: {error}"))?;
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("cannot wait for it: {error}")),
        }
    };
    let stdout = stdout
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    let stderr = stderr
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{status}: {}", stderr.trim()))
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
