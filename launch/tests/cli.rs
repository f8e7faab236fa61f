//! The `wandb-launch` binary as a user runs it: add, agent, list, show, cancel, requeue, run;
//! the job's environment; bad input; SIGTERM to the agent; 200 items through 3 agents, one of
//! them killed with SIGKILL.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// A folder with a queue root `q/`, where the commands run.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        common::command(self.path(), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        common::succeeds(&mut self.cmd(args))
    }

    fn add(&self, args: &[&str]) -> String {
        self.ok(&[&["add"], args].concat()).trim().to_owned()
    }

    /// `list --json` of a queue, by item id.
    fn list(&self, queue: &str) -> HashMap<String, Value> {
        self.ok(&["list", "--json", "--queue", queue])
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["type"], "item");
                (
                    v["data"]["id"].as_str().unwrap().to_owned(),
                    v["data"].clone(),
                )
            })
            .collect()
    }

    fn agent(&self, extra: &[&str]) -> Command {
        let mut args = vec!["agent", "--poll", "100ms", "--lease", "1s", "--grace", "2s"];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn items(&self, queue: &str) -> PathBuf {
        self.path().join("q").join(queue).join("items")
    }
}

/// Waits (bounded) until `check` holds.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) for a child to exit.
fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agent did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn an_item_runs_with_the_environment_of_w_and_b_launch() {
    let place = Place::new();
    std::fs::write(
        place.path().join("c.yaml"),
        "epochs: 3\nopt:\n  name: adam\n",
    )
    .unwrap();
    let id = place.add(&[
        "--config-file",
        "c.yaml",
        "-c",
        "lr=0.1",
        "-c",
        "epochs=4",
        "--project",
        "proj",
        "--entity",
        "ent",
        "--name",
        "first",
        "--run-id",
        "abcd1234",
        "--queue",
        "train",
        "--",
        "sh",
        "-c",
        "env | grep ^WANDB_ | sort; pwd",
    ]);
    common::succeeds(&mut place.agent(&["--queue", "train", "--exit-when-empty"]));
    let log = std::fs::read_to_string(place.items("train").join(format!("{id}.0.log"))).unwrap();
    let env: HashMap<&str, &str> = log.lines().filter_map(|l| l.split_once('=')).collect();
    let config: Value = serde_json::from_str(env["WANDB_CONFIG"]).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"epochs": 4, "opt": {"name": "adam"}, "lr": 0.1})
    );
    assert_eq!(env["WANDB_RUN_ID"], "abcd1234");
    assert_eq!(env["WANDB_LAUNCH"], "True");
    assert_eq!(env["WANDB_PROJECT"], "proj");
    assert_eq!(env["WANDB_ENTITY"], "ent");
    assert_eq!(env["WANDB_NAME"], "first");
    assert_eq!(env["WANDB_LAUNCH_QUEUE_NAME"], "train");
    assert_eq!(env["WANDB_LAUNCH_QUEUE_ENTITY"], "ent");
    assert_eq!(env["WANDB_LAUNCH_TRACE_ID"], id);
    assert!(
        !env.contains_key("WANDB_RESUME"),
        "a first attempt does not resume"
    );
    assert!(!env.contains_key("WANDB_API_KEY"));
    // It ran in the folder `add` was called from.
    let cwd = log.lines().last().unwrap();
    assert_eq!(
        Path::new(cwd).canonicalize().unwrap(),
        place.path().canonicalize().unwrap()
    );
    let listed = place.list("train");
    let item = &listed[&id];
    assert_eq!(item["state"], "finished");
    assert_eq!(item["run_id"], "abcd1234");
    assert_eq!(item["record"]["exit_code"], 0);
    assert!(item["record"]["started_at"].is_string() && item["record"]["ended_at"].is_string());
    let shown: Value = serde_json::from_str(
        place
            .ok(&["show", &id, "--queue", "train", "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!(shown["data"]["item"]["priority"], "medium");
}

#[test]
fn a_large_config_reaches_the_job_in_pieces() {
    let place = Place::new();
    let big = "x".repeat(70_000);
    let id = place.add(&[
        "-c", &format!("big={big}"), "-c", "n=1", "--",
        "sh", "-c",
        r#"test -z "${WANDB_CONFIG+set}" || exit 9; printf %s "$WANDB_CONFIG_0$WANDB_CONFIG_1$WANDB_CONFIG_2" > joined; printf %s "$WANDB_CONFIG_0" | wc -m; test -z "${WANDB_CONFIG_3+set}""#,
    ]);
    common::succeeds(&mut place.agent(&["--exit-when-empty"]));
    let joined: Value =
        serde_json::from_slice(&std::fs::read(place.path().join("joined")).unwrap()).unwrap();
    assert_eq!(joined["big"], big.as_str());
    assert_eq!(joined["n"], 1);
    let log = std::fs::read_to_string(place.items("default").join(format!("{id}.0.log"))).unwrap();
    assert_eq!(log.trim(), "32670");
}

#[test]
fn run_is_synchronous_and_exits_with_the_jobs_status() {
    let place = Place::new();
    let out = place.run(&[
        "run",
        "-c",
        "a=1",
        "--run-id",
        "r1",
        "--",
        "sh",
        "-c",
        "echo \"$WANDB_RUN_ID $WANDB_CONFIG $WANDB_LAUNCH\"; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"r1 {"a":1} True"#
    );
    let ok = place.run(&["run", "--", "true"]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn add_refuses_bad_input_naming_what_is_wrong() {
    let place = Place::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["add", "--resource", "k8s", "--", "true"],
            "unknown resource \"k8s\"",
        ),
        (&["add"], "no command"),
        (&["add", "-c", "novalue", "--", "true"], "--config"),
        (&["add", "--priority", "urgent", "--", "true"], "--priority"),
        (
            &["add", "--config-file", "nope.yaml", "--", "true"],
            "nope.yaml",
        ),
        (&["add", "--run-id", "a/b", "--", "true"], "--run-id"),
        (&["add", "--entry-point", "missing.py"], "missing.py"),
    ];
    for (args, want) in cases {
        let out = place.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    // A queue folder that cannot be created.
    std::fs::write(place.path().join("file"), b"").unwrap();
    let out = place
        .cmd(&["add", "--queue-dir", "file", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("file/default") && stderr.contains("create queue folder"),
        "{stderr}"
    );
}

#[test]
fn bad_items_fail_with_their_reason_and_the_agent_serves_the_others() {
    let place = Place::new();
    let good: Vec<String> = (0..3)
        .map(|i| place.add(&["--", "sh", "-c", &format!("echo good{i}")]))
        .collect();
    let truncated = place.add(&["--", "true"]);
    let garbage = place.add(&["--", "true"]);
    let unknown = place.add(&["--", "true"]);
    let no_command = place.add(&["--", "true"]);
    let items = place.items("default");
    let doc = |id: &str| items.join(format!("{id}.json"));
    let bytes = std::fs::read(doc(&truncated)).unwrap();
    std::fs::write(doc(&truncated), &bytes[..bytes.len() - 20]).unwrap();
    std::fs::write(doc(&garbage), b"\x00\xffnot json").unwrap();
    let edit = |id: &str, key: &str, value: Value| {
        let mut v: Value = serde_json::from_slice(&std::fs::read(doc(id)).unwrap()).unwrap();
        v[key] = value;
        std::fs::write(doc(id), serde_json::to_vec(&v).unwrap()).unwrap();
    };
    edit(&unknown, "resource", Value::from("k8s"));
    edit(&no_command, "command", serde_json::json!([]));
    // A second queue whose folder cannot be used (its claimed/ is a file).
    let broken = place.path().join("q/broken");
    std::fs::create_dir_all(broken.join("pending")).unwrap();
    std::fs::write(broken.join("claimed"), b"").unwrap();
    std::fs::write(broken.join("pending/2-00000000000000000001-abc.0.0"), b"").unwrap();

    let out = place
        .agent(&[
            "--queue",
            "broken",
            "--queue",
            "default",
            "--exit-when-empty",
            "-j",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("queue broken") && stderr.contains("claimed"),
        "{stderr}"
    );
    let listed = place.list("default");
    for id in &good {
        assert_eq!(listed[id]["state"], "finished", "{id}: {stderr}");
    }
    let reason = |id: &str| {
        listed[id]["record"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    for (id, want) in [
        (&truncated, "not a valid item document"),
        (&garbage, "not a valid item document"),
        (&unknown, "unknown resource \"k8s\""),
        (&no_command, "no command"),
    ] {
        assert_eq!(listed[id]["state"], "failed", "{id}");
        assert!(
            reason(id).contains(want) && reason(id).contains(id.as_str()),
            "{id}: {}",
            reason(id)
        );
        assert!(stderr.contains(id.as_str()), "{id} not named: {stderr}");
    }
}

#[test]
fn cancel_stops_a_running_job_and_requeue_runs_it_again() {
    let place = Place::new();
    let id = place.add(&["--", "sh", "-c", "echo run >> runs; exec sleep 30"]);
    let mut agent = place
        .agent(&["--exit-when-empty"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the job to run", || {
        place.list("default")[&id]["state"] == "running"
    });
    let out = place.ok(&["cancel", &id]);
    assert!(out.contains("cancel requested"), "{out}");
    assert!(wait_child(&mut agent).success());
    let listed = place.list("default");
    assert_eq!(listed[&id]["state"], "cancelled");
    assert_eq!(listed[&id]["record"]["signal"], 15);
    // Cancelled twice is an error naming the item.
    let again = place.run(&["cancel", &id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&id));
    place.ok(&["requeue", &id]);
    assert_eq!(place.list("default")[&id]["state"], "pending");
    assert_eq!(place.list("default")[&id]["attempt"], 1);
}

#[test]
fn sigterm_stops_the_agent_and_returns_unfinished_items() {
    let place = Place::new();
    let id = place.add(&[
        "--", "sh", "-c",
        "trap 'echo \"term $WANDB_RESUME\" >> marker; exit 143' TERM; echo \"start ${WANDB_RESUME:-}\" >> marker; sleep 30 & wait",
    ]);
    let waiting = place.add(&["--", "true"]);
    let mut agent = place.agent(&[]).stderr(Stdio::null()).spawn().unwrap();
    // "start" is written once the job's trap is set.
    wait_until("the job to run", || {
        std::fs::read_to_string(place.path().join("marker")).is_ok_and(|m| m.contains("start"))
    });
    assert_eq!(place.list("default")[&id]["state"], "running");
    signal(&agent, "TERM");
    let status = wait_child(&mut agent);
    assert!(status.success(), "{status}");
    let marker = std::fs::read_to_string(place.path().join("marker")).unwrap();
    assert_eq!(marker, "start \nterm \n");
    let listed = place.list("default");
    assert_eq!(listed[&id]["state"], "pending");
    assert_eq!(listed[&id]["attempt"], 1);
    assert_eq!(listed[&id]["record"]["state"], "returned");
    assert_eq!(
        listed[&waiting]["state"], "pending",
        "a stopping agent claims nothing"
    );
    // The next attempt resumes the same run (W&B sets WANDB_RESUME=allow on a requeued run).
    let mut agent = place.agent(&[]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the second attempt", || {
        std::fs::read_to_string(place.path().join("marker"))
            .unwrap()
            .contains("start allow")
    });
    signal(&agent, "INT");
    assert!(wait_child(&mut agent).success());
}

#[test]
fn an_entry_point_runs_in_its_project_folder() {
    let place = Place::new();
    let project = place.path().join("proj");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("train.sh"),
        "echo \"$0 $1 $2\" > out; pwd >> out\n",
    )
    .unwrap();
    place.add(&["--project-dir", "proj", "--entry-point", "train.sh a b"]);
    common::succeeds(&mut place.agent(&["--exit-when-empty"]));
    let text = std::fs::read_to_string(project.join("out")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("train.sh a b"));
    assert_eq!(
        Path::new(lines.next().unwrap()).canonicalize().unwrap(),
        project.canonicalize().unwrap()
    );
}

#[test]
fn two_hundred_items_three_agents_one_killed_each_item_runs_once() {
    let place = Place::new();
    let out_file = place.path().join("ran");
    let mut ids = Vec::new();
    for _ in 0..200 {
        // Appends its item id with O_APPEND (`>>`) after a short sleep: a job killed midway
        // writes nothing.
        ids.push(place.add(&[
            "--",
            "sh",
            "-c",
            "sleep 0.05; echo \"$WANDB_LAUNCH_TRACE_ID\" >> ran",
        ]));
    }
    let mut agents: Vec<Child> = (0..3)
        .map(|_| {
            place
                .agent(&["-j", "4", "--exit-when-empty"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    wait_until("some items to run", || {
        std::fs::read_to_string(&out_file).is_ok_and(|t| t.lines().count() >= 40)
    });
    agents[0].kill().unwrap(); // SIGKILL
    agents[0].wait().unwrap();
    for agent in &mut agents[1..] {
        assert!(wait_child(agent).success());
    }
    let text = std::fs::read_to_string(&out_file).unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        *counts.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    for id in &ids {
        assert_eq!(counts.get(id.as_str()), Some(&1), "{id} did not run");
    }
    let listed = place.list("default");
    assert!(listed.values().all(|v| v["state"] == "finished"));
}

#[test]
fn a_frozen_agent_loses_its_claim_and_stops_its_job_when_it_wakes() {
    let place = Place::new();
    let id = place.add(&["--", "sleep", "30"]);
    let mut frozen = place.agent(&[]).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the first attempt", || {
        place.list("default")[&id]["state"] == "running"
    });
    signal(&frozen, "STOP");
    let mut other = place.agent(&[]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the second attempt", || {
        let item = &place.list("default")[&id];
        item["attempt"] == 1 && item["state"] == "running"
    });
    signal(&frozen, "CONT");
    let record0 = place.items("default").join(format!("{id}.0.json"));
    wait_until("the woken agent to stop its job", || {
        std::fs::read_to_string(&record0).is_ok_and(|r| r.contains("claim was lost"))
    });
    let record: Value = serde_json::from_slice(&std::fs::read(&record0).unwrap()).unwrap();
    assert_eq!(record["state"], "expired");
    assert_eq!(record["signal"], 15);
    signal(&frozen, "TERM");
    signal(&other, "TERM");
    assert!(wait_child(&mut other).success());
    wait_child(&mut frozen);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut frozen.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("item {id}: lost its claim")),
        "{stderr}"
    );
    // The second agent gave its attempt back; nothing else holds the item.
    let item = &place.list("default")[&id];
    assert_eq!(
        (item["state"].as_str(), item["attempt"].as_u64()),
        (Some("pending"), Some(2))
    );
}

#[test]
fn list_without_a_queue_shows_every_queue() {
    let place = Place::new();
    let missing = place.run(&["list"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("list queues") && err.contains("/q"), "{err}");

    let a = place.add(&["-q", "cpu", "--", "true"]);
    let b = place.add(&["-q", "gpu", "--priority", "high", "--", "true"]);
    let table = place.ok(&["list"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(&rows[0][..3], ["cpu", a.as_str(), "pending"], "{table}");
    assert_eq!(&rows[1][..3], ["gpu", b.as_str(), "pending"], "{table}");

    let json = place.ok(&["list", "--json"]);
    let queues: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["data"]["queue"].to_string())
        .collect();
    assert_eq!(queues, ["\"cpu\"", "\"gpu\""]);
    // One queue named still lists only that one.
    assert_eq!(place.list("gpu").len(), 1);
}

#[test]
fn a_closed_standard_output_ends_list_quietly() {
    let place = Place::new();
    place.add(&["--", "true"]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // As `| head` that has gone: every write is EPIPE.
    let out = place.cmd(&["list"]).stdout(writer).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}
