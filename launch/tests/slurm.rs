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
    /// A job running `script` under `sh -c`; its item id is `name` and this process's id, so
    /// that no job left by another test run has its name.
    fn job(&self, name: &str, script: &str) -> PreparedJob {
        let item = format!("{name}-{}", std::process::id());
        let item = item.as_str();
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

    /// `scontrol requeue`s the job, waits (at most [`LOG_BOUND`]) until it is pending again,
    /// polls saying all along that it still runs, then lets it start at once (SLURM holds a
    /// requeued job back with a BeginTime for a while).
    fn requeue_and_release(&mut self) {
        let job_id = self.job_id.clone();
        let requeue = self
            .cluster
            .run("scontrol", &["requeue", &job_id], Duration::from_secs(30));
        assert!(requeue.is_ok(), "{requeue:?}");
        let deadline = Instant::now() + LOG_BOUND;
        while self.scontrol_field("JobState") != "PENDING" {
            assert_eq!(self.running.poll().ok().flatten(), None);
            assert!(Instant::now() < deadline, "job {job_id} not pending again");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(self.running.poll().ok(), Some(None));
        let release = self.cluster.run(
            "scontrol",
            &["update", &format!("JobId={job_id}"), "StartTime=now"],
            Duration::from_secs(30),
        );
        assert!(release.is_ok(), "{release:?}");
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
            r#"echo "hello from $SLURM_JOB_ID"; echo "config=$WANDB_CONFIG"; echo "run=$WANDB_RUN_ID"; echo "keylen=${#WANDB_API_KEY}"; pwd; exit 3"#,
        )
        .with_env(vec![
            ("WANDB_CONFIG".into(), config.into()),
            ("WANDB_API_KEY".into(), "test-key-0123456789".into()),
        ])
        .with_resource_args(
            json!({"time": "2", "cpus": 1, "mem": "100M", "comment": "wandb-launch test"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    let mut submitted = fx.start(&job);
    assert_eq!(submitted.scontrol_field("JobName"), job.item_id);
    assert_eq!(submitted.scontrol_field("TimeLimit"), "00:02:00");
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome, JobOutcome::exited(3), "log:\n{log}");
    assert!(
        log.contains(&format!("hello from {}", submitted.job_id)),
        "{log}"
    );
    assert!(log.contains(&format!("config={config}")), "{log}");
    assert!(log.contains(&format!("run={}", job.run_id)), "{log}");
    // The key reaches the job, but through sbatch's environment: no file holds it.
    assert!(log.contains("keylen=19"), "{log}");
    let scripts: Vec<String> = std::fs::read_dir(fx.dir.path().join("logs"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| read(&e.path())))
                .collect()
        })
        .unwrap_or_default();
    assert!(scripts.iter().any(|text| text.contains("exec 'sh'")));
    assert!(
        !scripts
            .iter()
            .any(|text| text.contains("test-key-0123456789"))
    );
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
    submitted.requeue_and_release();
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome, JobOutcome::exited(0), "{log}");
    assert!(
        log.contains(&format!(
            "attempt restart=0 run={} resume=unset",
            job.run_id
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "attempt restart=1 run={} resume=allow",
            job.run_id
        )),
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

/// Runs `add` (a `wandb-launch add` command) to success: the new item's id.
fn added(add: std::process::Command) -> String {
    let (code, out) = finish(add, Duration::from_secs(30));
    assert_eq!(code, Some(0), "add: {out}");
    out.trim().to_owned()
}

/// Waits (at most [`LOG_BOUND`]) until item `id`'s log says `started`: the item then.
fn started(cluster: &SlurmCluster, queues: &Path, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + LOG_BOUND;
    loop {
        let item = show(cluster, queues, id);
        let log = PathBuf::from(item["record"]["log"].as_str().unwrap_or_default());
        if read(&log).contains("started") {
            return item;
        }
        assert!(Instant::now() < deadline, "the job never started: {item}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_agent_runs_a_queued_slurm_job_with_its_config_to_its_exit_code() {
    let Some(fx) = fixture() else { return };
    let queues = fx.dir.path().join("queues");
    let id = added(cli(
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
    ));
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
    let id = added(cli(
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
    ));
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
    let item = started(&fx.cluster, &queues, &id);
    let log = PathBuf::from(item["record"]["log"].as_str().unwrap_or_default());
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

#[test]
fn an_official_sdk_script_under_slurm_gets_its_config_and_run_id() {
    let Some(fx) = fixture() else { return };
    let Some(python) = wandb_testkit::sdk_python() else {
        return;
    };
    let project = fx.dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        project.join("train.py"),
        r#"import wandb
run = wandb.init(mode="offline", project="slurm-test", config={"lr": 0.5, "epochs": 2})
print(f"sdk run={run.id} lr={wandb.config.lr} epochs={wandb.config.epochs}", flush=True)
for i in range(3):
    run.log({"loss": 1.0 / (i + 1)})
run.finish()
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let queues = fx.dir.path().join("queues");
    let python = python.display().to_string();
    let project_arg = project.display().to_string();
    let mut add = cli(
        &fx.cluster,
        &queues,
        &[
            "add",
            "--resource",
            "slurm",
            "--project-dir",
            &project_arg,
            "--config",
            "lr=0.1",
            "--run-id",
            "sdkslurm1",
            "--env",
            "WANDB_MODE=offline",
            "--",
            &python,
            "train.py",
        ],
    );
    add.env_remove("WANDB_DIR").env_remove("WANDB_CONFIG");
    let id = added(add);
    let mut agent = cli(
        &fx.cluster,
        &queues,
        &["agent", "--poll", "200ms", "--exit-when-empty"],
    );
    agent.env_remove("WANDB_DIR").env_remove("WANDB_CONFIG");
    let (code, out) = finish(agent, JOB_BOUND);
    let item = show(&fx.cluster, &queues, &id);
    let log = read(Path::new(
        item["record"]["log"].as_str().unwrap_or_default(),
    ));
    assert_eq!(code, Some(0), "agent: {out}\n{item}\n{log}");
    assert_eq!(item["state"], "finished", "{item}");
    assert!(
        log.contains("sdk run=sdkslurm1 lr=0.1 epochs=2"),
        "the launch config wins over init's, the run id is the item's:\n{log}"
    );
    let run_dirs = item["record"]["run_dirs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(run_dirs.len(), 1, "{item}");
    assert!(
        run_dirs[0]
            .as_str()
            .is_some_and(|dir| dir.starts_with(&project_arg) && dir.ends_with("-sdkslurm1")),
        "{item}"
    );
}

/// When set, [`slurm_logger_job_child`] is the job: a `wandb-logger` program.
const LOGGER_CHILD: &str = "WANDB_LAUNCH_SLURM_TEST_LOGGER_CHILD";

#[test]
fn a_requeued_wandb_logger_job_writes_preempting_and_resumes_its_run_as_one_synced_run() {
    let Some(fx) = fixture() else { return };
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let runs = fx.dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap_or_else(|e| panic!("{e}"));
    let runs_arg = runs.display().to_string();
    let item = format!("logger-{}", std::process::id());
    let job = PreparedJob::new(
        item.as_str(),
        vec![
            exe.display().to_string(),
            "slurm_logger_job_child".into(),
            "--exact".into(),
            "--nocapture".into(),
            "--test-threads=1".into(),
        ],
        &runs,
        fx.log_path(&item),
    )
    .with_run("slurmlog1", 0)
    .with_env(
        [
            (LOGGER_CHILD, "1"),
            ("WANDB_RUN_ID", "slurmlog1"),
            ("WANDB_PROJECT", "slurm-test"),
            ("WANDB_MODE", "offline"),
            ("WANDB_DIR", runs_arg.as_str()),
            ("WANDB_CONFIG_DIR", runs_arg.as_str()),
            ("WANDB_CONSOLE", "off"),
            ("WANDB_X_DISABLE_STATS", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
    )
    .with_resource_args(
        json!({"requeue": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut submitted = fx.start(&job);
    submitted.wait_for_log("first attempt logged 3 rows");
    // A requeue: SLURM sends SIGTERM (the logger writes a preempting record and ends the run
    // with 143), then runs the script again under the same job id.
    submitted.requeue_and_release();
    let outcome = submitted.wait();
    let log = read(&submitted.log);
    assert_eq!(outcome, JobOutcome::exited(0), "{log}");
    assert!(
        log.contains("logger run=slurmlog1 resumed=true starting_step=3"),
        "the rerun resumed the run after its 3 rows:\n{log}"
    );

    // Two fragments of one run: the first ends with preempting and exit 143.
    let mut fragments: Vec<PathBuf> = std::fs::read_dir(runs.join("wandb"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir() && !path.is_symlink())
        .map(|path| path.join("run-slurmlog1.wandb"))
        .collect();
    fragments.sort();
    assert_eq!(fragments.len(), 2, "{fragments:?}\n{log}");
    let kinds = record_kinds(&fragments[0]);
    let preempting = kinds.iter().position(|(kind, _)| kind == "preempting");
    let exit = kinds.iter().position(|(kind, _)| kind == "exit");
    assert!(
        preempting.is_some() && preempting < exit,
        "the first fragment has preempting before its exit: {kinds:?}"
    );
    assert_eq!(exit.map(|i| kinds[i].1), Some(Some(143)), "{kinds:?}");

    // Synced, they are one continuous run.
    let backend = wandb_testkit::TestBackend::start().unwrap_or_else(|e| panic!("{e}"));
    let mut options = wandb_sync::SyncOptions::new(
        vec![runs.join("wandb")],
        backend.base_url(),
        Some(wandb_settings::Secret::new(backend.api_key())),
    );
    options.retry = wandb_sync::RetryPolicy::fast();
    let report = wandb_sync::sync_paths(&options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.runs.len(), 2, "{:?}", report.runs);
    let state = backend.state();
    assert_eq!(state.runs.len(), 1, "one run on the server");
    let run = backend
        .find_run("slurmlog1")
        .unwrap_or_else(|| panic!("no run slurmlog1: {state:?}"));
    let steps: Vec<i64> = run
        .history
        .iter()
        .filter_map(|row| row["_step"].as_i64())
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4], "{:?}", run.history);
    assert_eq!(run.exit_code, Some(0));
    assert!(run.complete);
}

/// Each record's type name, with the exit code of exit records.
fn record_kinds(path: &Path) -> Vec<(String, Option<i32>)> {
    use wandb_format::proto::record::RecordType;
    let file = wandb_format::LogFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    file.records(wandb_format::Recovery::Strict)
        .filter_map(|entry| match entry {
            Ok(wandb_format::Entry::Record { record, .. }) => {
                let exit = match &record.record_type {
                    Some(RecordType::Exit(exit)) => Some(exit.exit_code),
                    _ => None,
                };
                record
                    .record_type
                    .as_ref()
                    .map(|kind| (kind.name().to_owned(), exit))
            }
            _ => None,
        })
        .collect()
}

/// Not a test of its own: the job of
/// [`a_requeued_wandb_logger_job_writes_preempting_and_resumes_its_run_as_one_synced_run`]
/// (SLURM runs this binary with this filter and [`LOGGER_CHILD`] set). The first run logs 3
/// rows and waits for SLURM's SIGTERM; the rerun after the requeue logs 2 more and finishes.
#[test]
fn slurm_logger_job_child() {
    if std::env::var_os(LOGGER_CHILD).is_none() {
        return;
    }
    let restarts: u32 = std::env::var("SLURM_RESTART_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let run = wandb_logger::init(wandb_logger::InitOptions::new())
        .unwrap_or_else(|e| panic!("init: {e}"));
    println!(
        "logger run={} resumed={} starting_step={}",
        run.id(),
        run.resumed(),
        run.starting_step()
    );
    let rows = if restarts == 0 { 0..3 } else { 3..5 };
    for step in rows {
        run.log(wandb_logger::row! {"loss" => 1.0 / f64::from(step + 1)})
            .unwrap_or_else(|e| panic!("log: {e}"));
    }
    if restarts == 0 {
        run.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        println!("first attempt logged 3 rows");
        // SLURM's SIGTERM ends the process (the logger's handler); the bound is a backstop.
        std::thread::sleep(Duration::from_secs(120));
        panic!("no SIGTERM within 120 s");
    }
    run.finish().unwrap_or_else(|e| panic!("finish: {e}"));
}

#[test]
fn a_slurm_command_that_hangs_is_cut_off_at_its_deadline() {
    // SLURM's clients retry for a minute when their configuration is missing: a stand-in for
    // a controller that does not answer. Only the client programs are needed here.
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("sbatch").is_file()));
    if !found {
        wandb_testkit::skip("sbatch is not installed (scripts/slurm-up installs slurm-wlm)");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let slurm = Slurm::default()
        .with_conf(dir.path().join("missing-slurm.conf"))
        .with_command_timeout(Duration::from_secs(2));
    let job = PreparedJob::new(
        "hung",
        vec!["true".into()],
        dir.path(),
        dir.path().join("hung.log"),
    );
    let error = slurm.start(&job).err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("item hung") && e.contains("within 2s")),
        "{error:?}"
    );
    // Right after, the resource does not wait on SLURM again: its commands are not even run
    // (the look for an earlier attempt's job used up the deadline, and sbatch was skipped).
    let error = slurm.start(&job).err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("item hung") && e.contains("`sbatch` not run")),
        "{error:?}"
    );
}

#[test]
fn a_new_attempt_follows_the_live_job_of_an_earlier_one_instead_of_submitting_again() {
    let Some(fx) = fixture() else { return };
    let job = fx.job(
        "adopt",
        "trap 'echo got-sigterm; exit 143' TERM; echo started; while :; do sleep 0.2; done",
    );
    // The first attempt's agent "dies": its handle is no longer polled, the SLURM job runs on.
    let first = fx.start(&job);
    let job_id = first.job_id.clone();
    let mut second = fx.start(&job.clone().with_run(job.run_id.clone(), 1));
    assert_eq!(
        second.job_id, job_id,
        "the second attempt follows the same job"
    );
    let listed = fx
        .cluster
        .run(
            "squeue",
            &["--me", "-h", "-n", &job.item_id, "-o", "%i"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(listed.trim(), job_id, "one job for the item");
    second.wait_for_log("started");
    assert!(second.running.terminate(Duration::from_secs(20)).is_ok());
    let outcome = second.wait();
    assert_eq!(outcome.failure.as_deref(), Some(CANCELLED), "{outcome:?}");
    assert_eq!(read(&second.log).matches("started").count(), 1);
    // Following by id works too.
    let followed = fx.slurm.follow(&job.item_id, &job_id);
    let outcome = followed.ok().and_then(|mut f| f.poll().ok().flatten());
    assert!(outcome.is_some_and(|o| !o.success()), "the job has ended");
    assert!(fx.slurm.follow(&job.item_id, "12; rm").is_err());
    drop(first);
}

#[test]
fn run_with_the_slurm_resource_waits_for_the_job_and_exits_with_its_code() {
    let Some(fx) = fixture() else { return };
    let queues = fx.dir.path().join("queues");
    let mut run = cli(
        &fx.cluster,
        &queues,
        &[
            "run",
            "--resource",
            "slurm",
            "--",
            "sh",
            "-c",
            "echo hello-from-run; exit 5",
        ],
    );
    run.current_dir(fx.dir.path());
    let (code, out) = finish(run, JOB_BOUND);
    assert_eq!(code, Some(5), "{out}");
    // Without a queue there is no item log: SLURM's own slurm-<job id>.out in the working folder.
    let outputs: Vec<String> = std::fs::read_dir(fx.dir.path())
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("slurm-"))
                })
                .map(|path| read(&path))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert!(outputs[0].contains("hello-from-run"), "{outputs:?}");
}

#[test]
fn an_agent_killed_with_sigkill_leaves_its_slurm_job_to_the_next_agent_which_follows_it() {
    let Some(fx) = fixture() else { return };
    let queues = fx.dir.path().join("queues");
    let id = added(cli(
        &fx.cluster,
        &queues,
        &[
            "add",
            "--resource",
            "slurm",
            "--",
            "sh",
            "-c",
            "echo started; sleep 15; echo done",
        ],
    ));
    let agent_args = [
        "agent",
        "--poll",
        "200ms",
        "--lease",
        "2s",
        "--exit-when-empty",
    ];
    let mut first = cli(&fx.cluster, &queues, &agent_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("agent: {e}"));
    let item = started(&fx.cluster, &queues, &id);
    let job_id = item["record"]["external_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let first_log = PathBuf::from(item["record"]["log"].as_str().unwrap_or_default());
    // SIGKILL: no chance to cancel the job or give the item back.
    let _ = first.kill();
    let _ = first.wait();
    let (code, out) = finish(cli(&fx.cluster, &queues, &agent_args), JOB_BOUND);
    assert_eq!(code, Some(0), "second agent: {out}");
    let item = show(&fx.cluster, &queues, &id);
    assert_eq!(item["state"], "finished", "{item}");
    assert_eq!(
        item["attempt"], 1,
        "the item came back after its lease: {item}"
    );
    assert_eq!(
        item["record"]["external_id"], job_id,
        "the second attempt followed the first attempt's job: {item}"
    );
    let log = read(&first_log);
    assert_eq!(
        log.matches("started").count(),
        1,
        "the job ran once:\n{log}"
    );
    assert!(log.contains("done"), "{log}");
}
