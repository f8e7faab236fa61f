//! The `slurm` resource against a real one-node SLURM cluster (`scripts/slurm-up`; found or
//! started by `wandb_testkit::slurm_cluster`). Without one every test here reports itself as
//! SKIPPED (a failure under `CI=true`, where `.ci/run` starts the cluster).
//!
//! The jobs are shell one-liners that print what they see (their config, run id, restart count,
//! a SIGTERM) into the item's log, so each test reads the job's own account of what happened.
//! Every wait is bounded; a test that fails cancels its job on the way out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use wandb_launch::slurm::{CANCELLED, Slurm};
use wandb_launch::{JobOutcome, PreparedJob, Resource as _, RunningJob};
use wandb_testkit::{SlurmCluster, slurm_cluster};

/// How long a test waits for a job (the time-limit test's job needs SLURM's one minute).
const JOB_BOUND: Duration = Duration::from_secs(150);

/// How long a test waits for a line in a job's log.
const LOG_BOUND: Duration = Duration::from_secs(60);

struct Fixture {
    cluster: SlurmCluster,
    slurm: Slurm,
    dir: tempfile::TempDir,
}

fn fixture() -> Option<Fixture> {
    let cluster = slurm_cluster()?;
    let slurm = Slurm::default().with_conf(cluster.conf());
    let dir = tempfile::tempdir().ok()?;
    Some(Fixture {
        cluster,
        slurm,
        dir,
    })
}

impl Fixture {
    /// A job running `script` under `sh -c`, logging to `<dir>/<item>.log`.
    fn job(&self, item: &str, script: &str) -> PreparedJob {
        PreparedJob::new(
            item,
            vec!["sh".into(), "-c".into(), script.into()],
            self.dir.path(),
            self.log_path(item),
        )
        .with_run(format!("run-{item}"), 0)
        .with_env(vec![("WANDB_RUN_ID".into(), format!("run-{item}"))])
    }

    fn log_path(&self, item: &str) -> PathBuf {
        self.dir.path().join("logs").join(format!("{item}.log"))
    }

    fn start(&self, job: &PreparedJob) -> Submitted {
        let running = self.slurm.start(job);
        let running = match running {
            Ok(running) => running,
            Err(error) => panic!("sbatch refused item {}: {error}", job.item_id),
        };
        let job_id = running.external_id().unwrap_or_default();
        assert!(
            !job_id.is_empty() && job_id.chars().all(|c| c.is_ascii_digit()),
            "the external id is the SLURM job id: {job_id:?}"
        );
        Submitted {
            cluster: self.cluster.clone(),
            running,
            job_id,
            log: job.log_path.clone(),
        }
    }
}

/// A submitted job; scancel'ed on drop so a failed test leaves nothing running.
struct Submitted {
    cluster: SlurmCluster,
    running: Box<dyn RunningJob>,
    job_id: String,
    log: PathBuf,
}

impl Submitted {
    /// Polls until the job ends (at most [`JOB_BOUND`]).
    fn wait(&mut self) -> JobOutcome {
        let deadline = Instant::now() + JOB_BOUND;
        loop {
            match self.running.poll() {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => {}
                Err(error) => eprintln!("poll: {error}"),
            }
            assert!(
                Instant::now() < deadline,
                "job {} did not end within {JOB_BOUND:?}; log:\n{}",
                self.job_id,
                read(&self.log)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the job's log contains `needle` (at most [`LOG_BOUND`]), polling the job so
    /// that one which ended first fails the test at once.
    fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + LOG_BOUND;
        while !read(&self.log).contains(needle) {
            if let Ok(Some(outcome)) = self.running.poll() {
                panic!(
                    "job {} ended ({outcome:?}) before its log showed {needle:?}:\n{}",
                    self.job_id,
                    read(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "job {}: no {needle:?} in its log within {LOG_BOUND:?}:\n{}",
                self.job_id,
                read(&self.log)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A field of `scontrol -o show job` for this job (e.g. `JobState`).
    fn scontrol_field(&self, key: &str) -> String {
        let out = self
            .cluster
            .run(
                "scontrol",
                &["-o", "show", "job", &self.job_id],
                Duration::from_secs(30),
            )
            .unwrap_or_else(|problem| panic!("{problem}"));
        out.split_whitespace()
            .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .run("scancel", &[&self.job_id], Duration::from_secs(30));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_job_runs_on_the_cluster_with_its_config_and_ends_with_its_exit_code() {
    let Some(fx) = fixture() else { return };
    let config = r#"{"lr": {"value": 0.1}, "note": {"value": "it's $HOME"}}"#;
    let job = fx
        .job(
            "basic",
            r#"echo "hello from $SLURM_JOB_ID"; echo "config=$WANDB_CONFIG"; echo "run=$WANDB_RUN_ID"; pwd; exit 3"#,
        )
        .with_env(vec![("WANDB_CONFIG".into(), config.into())])
        .with_resource_args(
            json!({"time": "2", "cpus": 1, "mem": "100M", "comment": "wandb-launch test"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    let mut submitted = fx.start(&job);
    assert_eq!(submitted.scontrol_field("JobName"), "basic");
    assert_eq!(submitted.scontrol_field("TimeLimit"), "00:02:00");
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome, JobOutcome::exited(3), "log:\n{log}");
    assert!(
        log.contains(&format!("hello from {}", submitted.job_id)),
        "{log}"
    );
    assert!(log.contains(&format!("config={config}")), "{log}");
    assert!(log.contains("run=run-basic"), "{log}");
    let dir = fx.dir.path().canonicalize().unwrap_or_default();
    assert!(log.contains(&dir.display().to_string()), "{log}");
    // The ended job stays ended.
    assert_eq!(submitted.scontrol_field("JobState"), "FAILED");
}

#[test]
fn cancel_sends_sigterm_first_and_the_job_ends_cancelled() {
    let Some(fx) = fixture() else { return };
    let job = fx.job(
        "cancel",
        "trap 'echo got-sigterm; exit 143' TERM; echo started; while :; do sleep 0.2; done",
    );
    let mut submitted = fx.start(&job);
    submitted.wait_for_log("started");
    let terminated = submitted.running.terminate(Duration::from_secs(20));
    assert!(terminated.is_ok(), "{terminated:?}");
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome.failure.as_deref(), Some(CANCELLED), "{outcome:?}");
    assert!(!outcome.success());
    assert!(log.contains("got-sigterm"), "{log}");
    // kill after the end is harmless.
    assert!(submitted.running.kill().is_ok());
}

#[test]
fn a_pending_job_is_cancelled_with_scancel() {
    let Some(fx) = fixture() else { return };
    let job = fx.job("pending", "echo should-not-run").with_resource_args(
        json!({"begin": "now+3600"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut submitted = fx.start(&job);
    assert_eq!(submitted.scontrol_field("JobState"), "PENDING");
    assert_eq!(submitted.running.poll().ok(), Some(None));
    assert!(submitted.running.terminate(Duration::from_secs(5)).is_ok());
    let outcome = submitted.wait();
    assert_eq!(outcome.failure.as_deref(), Some(CANCELLED), "{outcome:?}");
    assert_eq!(submitted.scontrol_field("JobState"), "CANCELLED");
    assert!(!read(&submitted.log).contains("should-not-run"));
}

#[test]
fn a_time_limit_sends_sigterm_first_then_ends_the_job_timed_out() {
    let Some(fx) = fixture() else { return };
    // SLURM's shortest limit is one minute; the pre-timeout signal comes 55 s before it (SLURM
    // checks about every 30 s). The job notes the SIGTERM and goes on until SLURM ends it.
    let job = fx
        .job(
            "timelimit",
            "trap 'echo got-sigterm-before-the-limit' TERM; echo started; while :; do sleep 0.2; done",
        )
        .with_resource_args(
            json!({"time": "1", "signal-before": 55})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    let mut submitted = fx.start(&job);
    submitted.wait_for_log("got-sigterm-before-the-limit");
    assert_eq!(
        submitted.running.poll().ok(),
        Some(None),
        "the job runs on after the signal"
    );
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert!(
        outcome
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("TIMEOUT")),
        "{outcome:?}\n{log}"
    );
    assert_eq!(submitted.scontrol_field("JobState"), "TIMEOUT");
    // wait_for_log fails if the job ends before its log shows the SIGTERM: it came first.
    assert!(log.contains("got-sigterm-before-the-limit"), "{log}");
}

#[test]
fn a_requeued_job_runs_again_with_the_same_run_id_and_resumes() {
    let Some(fx) = fixture() else { return };
    let job = fx
        .job(
            "requeue",
            r#"echo "attempt restart=${SLURM_RESTART_COUNT:-0} run=$WANDB_RUN_ID resume=${WANDB_RESUME:-unset}"; if [ "${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then while :; do sleep 0.2; done; fi; exit 0"#,
        )
        .with_resource_args(
            json!({"requeue": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    let mut submitted = fx.start(&job);
    submitted.wait_for_log("attempt restart=0");
    let job_id = submitted.job_id.clone();
    let requeue = fx
        .cluster
        .run("scontrol", &["requeue", &job_id], Duration::from_secs(30));
    assert!(requeue.is_ok(), "{requeue:?}");
    // SLURM holds a requeued job back (BeginTime) for a while; let it start again now. Until
    // then the job is not over: polls say it still runs.
    let deadline = Instant::now() + LOG_BOUND;
    while submitted.scontrol_field("JobState") != "PENDING" {
        assert_eq!(submitted.running.poll().ok().flatten(), None);
        assert!(Instant::now() < deadline, "job {job_id} not pending again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(submitted.running.poll().ok(), Some(None));
    let release = fx.cluster.run(
        "scontrol",
        &["update", &format!("JobId={job_id}"), "StartTime=now"],
        Duration::from_secs(30),
    );
    assert!(release.is_ok(), "{release:?}");
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome, JobOutcome::exited(0), "{log}");
    assert!(
        log.contains("attempt restart=0 run=run-requeue resume=unset"),
        "{log}"
    );
    assert!(
        log.contains("attempt restart=1 run=run-requeue resume=allow"),
        "the rerun has the same run id and resumes it:\n{log}"
    );
    assert_eq!(submitted.scontrol_field("Restarts"), "1");
}

#[test]
fn sbatch_refusing_a_job_is_an_error_naming_the_item() {
    let Some(fx) = fixture() else { return };
    let job = fx.job("refused", "true").with_resource_args(
        json!({"partition": "no-such-partition"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let error = fx.slurm.start(&job).err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("item refused") && e.contains("sbatch")),
        "{error:?}"
    );
}

/// The `wandb-launch` binary with `SLURM_CONF` of `cluster` and the queues under `queues`.
fn cli(cluster: &SlurmCluster, queues: &Path, args: &[&str]) -> std::process::Command {
    let mut command = cluster.command(env!("CARGO_BIN_EXE_wandb-launch"));
    command
        .args(args)
        .env("WANDB_LAUNCH_QUEUE_DIR", queues)
        .stdin(std::process::Stdio::null());
    command
}

/// Runs `command` to its end (at most `bound`): its exit code and stdout.
fn finish(mut command: std::process::Command, bound: Duration) -> (Option<i32>, String) {
    let out_path = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
    let out = out_path
        .reopen()
        .unwrap_or_else(|e| panic!("reopen temp file: {e}"));
    let mut child = command
        .stdout(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not end within {bound:?}; its output:\n{}",
                read(out_path.path())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.code(), read(out_path.path()))
}

/// `wandb-launch show ID --json`: the item's `data`.
fn show(cluster: &SlurmCluster, queues: &Path, id: &str) -> serde_json::Value {
    let (code, out) = finish(
        cli(cluster, queues, &["show", id, "--json"]),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "show {id}: {out}");
    let line: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("show {id}: {e}: {out}"));
    line["data"].clone()
}

#[test]
fn the_agent_runs_a_queued_slurm_job_with_its_config_to_its_exit_code() {
    let Some(fx) = fixture() else { return };
    let queues = fx.dir.path().join("queues");
    let (code, out) = finish(
        cli(
            &fx.cluster,
            &queues,
            &[
                "add",
                "--resource",
                "slurm",
                "--resource-args",
                "time=2",
                "--config",
                "lr=0.1",
                "--run-id",
                "slurmrun1",
                "--",
                "sh",
                "-c",
                r#"echo "config=$WANDB_CONFIG run=$WANDB_RUN_ID job=$SLURM_JOB_ID"; exit 4"#,
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "add: {out}");
    let id = out.trim().to_owned();
    let (code, out) = finish(
        cli(
            &fx.cluster,
            &queues,
            &["agent", "--poll", "200ms", "--exit-when-empty", "--json"],
        ),
        JOB_BOUND,
    );
    assert_eq!(code, Some(1), "the agent saw its job fail: {out}");
    let item = show(&fx.cluster, &queues, &id);
    let record = &item["record"];
    assert_eq!(item["state"], "failed", "{item}");
    assert_eq!(record["exit_code"], 4, "{item}");
    let job_id = record["external_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!job_id.is_empty(), "the SLURM job id is recorded: {item}");
    let log = read(Path::new(record["log"].as_str().unwrap_or_default()));
    assert!(
        log.contains(&format!(
            r#"config={{"lr":0.1}} run=slurmrun1 job={job_id}"#
        )),
        "{log}"
    );
}

#[test]
fn cancel_through_the_cli_stops_the_slurm_job_with_sigterm_and_the_item_ends_cancelled() {
    let Some(fx) = fixture() else { return };
    let queues = fx.dir.path().join("queues");
    let (code, out) = finish(
        cli(
            &fx.cluster,
            &queues,
            &[
                "add",
                "--resource",
                "slurm",
                "--",
                "sh",
                "-c",
                "trap 'echo got-sigterm; exit 143' TERM; echo started; while :; do sleep 0.2; done",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "add: {out}");
    let id = out.trim().to_owned();
    let mut agent = cli(
        &fx.cluster,
        &queues,
        &[
            "agent",
            "--poll",
            "200ms",
            "--grace",
            "20s",
            "--exit-when-empty",
        ],
    );
    let agent = std::thread::spawn(move || {
        agent.stderr(std::process::Stdio::null());
        finish(agent, JOB_BOUND)
    });
    // Wait for the job to run (its log says so), then cancel the item.
    let deadline = Instant::now() + LOG_BOUND;
    let log = loop {
        let item = show(&fx.cluster, &queues, &id);
        let log = PathBuf::from(item["record"]["log"].as_str().unwrap_or_default());
        if read(&log).contains("started") {
            break log;
        }
        assert!(Instant::now() < deadline, "the job never started: {item}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, out) = finish(
        cli(&fx.cluster, &queues, &["cancel", &id]),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "cancel: {out}");
    let (code, out) = agent
        .join()
        .unwrap_or_else(|_| panic!("the agent thread panicked"));
    assert_eq!(code, Some(0), "agent: {out}");
    let item = show(&fx.cluster, &queues, &id);
    assert_eq!(item["state"], "cancelled", "{item}");
    let job_id = item["record"]["external_id"].as_str().unwrap_or_default();
    let log = read(&log);
    assert!(log.contains("got-sigterm"), "{log}");
    let state = fx
        .cluster
        .run(
            "squeue",
            &["-h", "-j", job_id, "-o", "%T"],
            Duration::from_secs(30),
        )
        .unwrap_or_default();
    assert!(
        !state.contains("RUNNING") && !state.contains("PENDING"),
        "job {job_id} is gone from the queue: {state:?}"
    );
}
