//! The persisted Sweep state: run cap, metric target, pause/resume/stop/cancel, the best run,
//! and a JSON round trip that goes on with the same proposals.

use serde_json::json;
use wandb_sweeps::{RunState, Sweep, SweepConfig, SweepOptions, SweepRun, SweepState};

fn config(extra: &str) -> SweepConfig {
    SweepConfig::from_yaml_str(
        &format!(
            "program: t.py\nmethod: random\nmetric:\n  name: loss\n  target: 0.1\nparameters:\n  x:\n    min: 0.0\n    max: 1.0\n{extra}"
        ),
        Some("sweep.yaml"),
    )
    .unwrap()
}

fn finished(id: &str, params: serde_json::Map<String, serde_json::Value>, loss: f64) -> SweepRun {
    SweepRun {
        id: id.to_owned(),
        params,
        state: RunState::Finished,
        history: vec![loss * 2.0, loss],
        summary: Some(loss),
    }
}

#[test]
fn run_cap_counts_runs_and_unattached_proposals() {
    let mut s = Sweep::new("sw", config("run_cap: 3\n"), SweepOptions::default());
    let a = s.next_run(&[]).unwrap().unwrap();
    let b = s.next_run(&[]).unwrap().unwrap();
    s.attach(a.index, "ra").unwrap();
    let runs = vec![finished("ra", a.params.clone(), 0.5)];
    assert!(s.next_run(&runs).unwrap().is_some());
    assert_eq!(s.n_runs(), 3);
    assert!(s.next_run(&runs).unwrap().is_none());
    assert_eq!(s.state, SweepState::Finished);
    assert!(s.attach(b.index, "rb").is_ok());
    assert!(s.attach(99, "nope").is_err());
}

#[test]
fn target_reached_finishes_the_sweep_and_best_is_kept() {
    let mut s = Sweep::new("sw", config(""), SweepOptions::default());
    let p = s.next_run(&[]).unwrap().unwrap();
    s.attach(p.index, "r1").unwrap();
    let q = s
        .next_run(&[finished("r1", p.params.clone(), 0.4)])
        .unwrap()
        .unwrap();
    s.attach(q.index, "r2").unwrap();
    let runs = vec![
        finished("r1", p.params.clone(), 0.4),
        finished("r2", q.params.clone(), 0.05),
    ];
    assert!(s.next_run(&runs).unwrap().is_none());
    assert_eq!(s.state, SweepState::Finished);
    let best = s.best.clone().unwrap();
    assert_eq!(best.id, "r2");
    assert_eq!(best.metric, 0.05);
    assert_eq!(best.params, q.params);
    assert_eq!(s.runs.len(), 2);
    assert_eq!(s.runs[1].proposal, Some(1));
    let status = serde_json::to_value(s.status()).unwrap();
    assert_eq!(status["state"], json!("finished"));
    assert_eq!(status["method"], json!("random"));
    assert_eq!(status["n_proposals"], json!(2));
    assert_eq!(status["runs_by_state"], json!({"finished": 2}));
    assert_eq!(status["metric"], json!("loss"));
    assert_eq!(status["best"]["id"], json!("r2"));
}

#[test]
fn pause_resume_stop_cancel() {
    let mut s = Sweep::new("sw", config(""), SweepOptions::default());
    s.pause();
    assert!(s.next_run(&[]).unwrap().is_none());
    s.resume();
    let p = s.next_run(&[]).unwrap().unwrap();
    let running = SweepRun {
        id: "r1".into(),
        params: p.params,
        state: RunState::Running,
        history: vec![],
        summary: None,
    };
    assert!(s.stop_runs(std::slice::from_ref(&running)).is_empty());
    s.stop();
    assert!(
        s.next_run(std::slice::from_ref(&running))
            .unwrap()
            .is_none()
    );
    s.cancel();
    assert_eq!(s.stop_runs(&[running]), ["r1"]);
    s.resume();
    assert_eq!(s.state, SweepState::Cancelled);
}

#[test]
fn json_round_trip_goes_on_with_the_same_draws() {
    let mut a = Sweep::new(
        "sw",
        config(""),
        SweepOptions {
            seed: 9,
            randomize_grid: false,
        },
    );
    a.next_run(&[]).unwrap();
    let text = serde_json::to_string_pretty(&a).unwrap();
    let mut b: Sweep = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.next_run(&[]).unwrap(), b.next_run(&[]).unwrap());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["config"]["method"], json!("random"));
    assert_eq!(value["state"], json!("running"));
    assert_eq!(value["options"]["seed"], json!(9));
}

#[test]
fn stop_runs_uses_hyperband() {
    let mut s = Sweep::new(
        "sw",
        config("early_terminate:\n  type: hyperband\n  max_iter: 4\n  s: 1\n  eta: 2\n"),
        SweepOptions::default(),
    );
    let p = s.next_run(&[]).unwrap().unwrap();
    let curve = |id: &str, state, history: &[f64]| SweepRun {
        id: id.into(),
        params: p.params.clone(),
        state,
        history: history.to_vec(),
        summary: None,
    };
    // One bracket at 2; the values there are 1, 2, 3, 4 and the cut is the one at position 2: 3.
    let runs = [
        curve("good", RunState::Finished, &[2.0, 1.0]),
        curve("ok", RunState::Running, &[3.0, 2.0]),
        curve("edge", RunState::Running, &[4.0, 3.0, 2.5]),
        curve("bad", RunState::Running, &[5.0, 4.0]),
        curve("young", RunState::Running, &[9.0]),
    ];
    assert_eq!(s.stop_runs(&runs), ["bad"]);
}
