//! Grid, random and bayes search.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use wandb_sweeps::params::canonical_key;
use wandb_sweeps::{Proposal, RunState, Sweep, SweepConfig, SweepOptions, SweepRun};

use crate::load;

fn sweep(config: SweepConfig, seed: u64, randomize_grid: bool) -> Sweep {
    Sweep::new(
        "test",
        config,
        SweepOptions {
            seed,
            randomize_grid,
        },
    )
}

/// Proposes until the sweep stops, each proposal becoming a finished run at once.
fn drain(sweep: &mut Sweep, limit: usize) -> Vec<Proposal> {
    let mut runs = Vec::new();
    let mut out = Vec::new();
    while let Some(p) = sweep.next_run(&runs).unwrap() {
        let id = format!("run{}", p.index);
        sweep.attach(p.index, id.clone()).unwrap();
        runs.push(SweepRun {
            id,
            params: p.params.clone(),
            state: RunState::Finished,
            history: vec![],
            summary: None,
        });
        out.push(p);
        assert!(out.len() <= limit, "more than {limit} proposals");
    }
    out
}

fn key(params: &Map<String, Value>) -> String {
    canonical_key(&Value::Object(params.clone()))
}

const GRID_3X3: &str = "program: t.py\nmethod: grid\nparameters:\n  a:\n    values: [1, 2, 3]\n  b:\n    values: [x, y, z]\n";

#[test]
fn grid_3x3_gives_exactly_9_distinct_runs() {
    let config = SweepConfig::from_yaml_str(GRID_3X3, None).unwrap();
    let mut s = sweep(config, 0, false);
    let proposals = drain(&mut s, 20);
    assert_eq!(proposals.len(), 9);
    let distinct: HashSet<String> = proposals.iter().map(|p| key(&p.params)).collect();
    assert_eq!(distinct.len(), 9);
    // W&B's order: the last parameter varies fastest.
    assert_eq!(
        Value::Object(proposals[0].params.clone()),
        json!({"a": 1, "b": "x"})
    );
    assert_eq!(
        Value::Object(proposals[1].params.clone()),
        json!({"a": 1, "b": "y"})
    );
    assert_eq!(
        Value::Object(proposals[8].params.clone()),
        json!({"a": 3, "b": "z"})
    );
    assert_eq!(s.state, wandb_sweeps::SweepState::Finished);
}

#[test]
fn grid_shuffled_is_seeded_and_complete() {
    let config = SweepConfig::from_yaml_str(GRID_3X3, None).unwrap();
    let order = |seed| -> Vec<String> {
        drain(&mut sweep(config.clone(), seed, true), 20)
            .iter()
            .map(|p| key(&p.params))
            .collect()
    };
    let plain: Vec<String> = drain(&mut sweep(config.clone(), 0, false), 20)
        .iter()
        .map(|p| key(&p.params))
        .collect();
    let first = order(7);
    assert_eq!(first, order(7), "same seed, same order");
    assert_ne!(first, plain, "a shuffle of 9 left the grid order as it was");
    let as_set = |v: &[String]| v.iter().cloned().collect::<HashSet<_>>();
    assert_eq!(as_set(&first), as_set(&plain));
    assert_ne!(order(7), order(8));
}

#[test]
fn grid_skips_combinations_runs_already_have() {
    let config = SweepConfig::from_yaml_str(GRID_3X3, None).unwrap();
    let mut s = sweep(config, 0, false);
    // A run from elsewhere already has (1, x), with a float 1.0 for 1 (W&B compares by value).
    let existing = SweepRun {
        id: "old".into(),
        params: json!({"a": 1.0, "b": "x"}).as_object().cloned().unwrap(),
        state: RunState::Finished,
        history: vec![],
        summary: None,
    };
    let p = s.next_run(&[existing]).unwrap().unwrap();
    assert_eq!(Value::Object(p.params), json!({"a": 1, "b": "y"}));
}

#[test]
fn grid_over_constants_ints_and_q_uniform_and_nesting() {
    let reference = drain(&mut sweep(load("reference_grid.yaml"), 0, false), 100);
    assert_eq!(reference.len(), 27);
    assert_eq!(
        Value::Object(reference[0].params.clone()),
        json!({"base": 10, "direction": -1, "epochs": 5, "increment": 0.1, "sleep": 0.5, "variance": 5})
    );
    let nested = drain(&mut sweep(load("reference_nested_cli.yaml"), 0, false), 100);
    assert_eq!(nested.len(), 8);
    assert_eq!(
        Value::Object(nested[0].params.clone()),
        json!({"batch_size": 32, "optimizer": {"lr": 0.001, "nadam": {"beta": 0.9}}})
    );
    assert_eq!(
        Value::Object(nested[0].wandb_config()),
        json!({"batch_size": {"value": 32}, "optimizer": {"value": {"lr": 0.001, "nadam": {"beta": 0.9}}}})
    );
    let discretised = SweepConfig::from_yaml_str(
        "program: t.py\nmethod: grid\nparameters:\n  n:\n    distribution: int_uniform\n    min: 1\n    max: 3\n  q:\n    distribution: q_uniform\n    min: 0\n    max: 1\n    q: 0.25\n",
        None,
    )
    .unwrap();
    let all = drain(&mut sweep(discretised, 0, false), 100);
    // int_uniform 1..=3, q_uniform arange(0, 1, 0.25) = 0, 0.25, 0.5, 0.75.
    assert_eq!(all.len(), 12);
    let qs: Vec<f64> = all[..4]
        .iter()
        .map(|p| p.params["q"].as_f64().unwrap())
        .collect();
    assert_eq!(qs, [0.0, 0.25, 0.5, 0.75]);
    assert_eq!(all[11].params["n"], json!(3));
}

#[test]
fn random_with_a_seed_gives_the_same_sequence_twice() {
    let config = load("all_distributions.yaml");
    let draw = |seed| -> Vec<Map<String, Value>> {
        let mut s = sweep(config.clone(), seed, false);
        (0..25)
            .map(|_| s.next_run(&[]).unwrap().unwrap().params)
            .collect()
    };
    let first = draw(42);
    assert_eq!(first, draw(42));
    assert_ne!(first, draw(43));
    // Draws differ from one proposal to the next.
    let distinct: HashSet<String> = first.iter().map(key).collect();
    assert_eq!(distinct.len(), 25);
    for p in &first {
        assert_eq!(p["constant"], json!(7));
        assert!(["a", "b", "c"].contains(&p["categorical"].as_str().unwrap()));
        let n = p["int_uniform"].as_i64().expect("an integer");
        assert!((1..=10).contains(&n));
        let u = p["uniform"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u));
        let q = p["q_uniform"]
            .as_i64()
            .expect("an integer q gives integers");
        assert_eq!(q % 5, 0);
        let lv = p["log_uniform_values"].as_f64().unwrap();
        assert!((0.0001..=0.1).contains(&lv), "{lv}");
        let le = p["log_uniform"].as_f64().unwrap();
        assert!(((-9.2f64).exp()..=(-2.3f64).exp()).contains(&le), "{le}");
        let inv = p["inv_log_uniform_values"].as_f64().unwrap();
        assert!((0.01..=1.0).contains(&inv), "{inv}");
        let qlv = p["q_log_uniform_values"].as_i64().unwrap();
        assert!(qlv % 16 == 0 && (16..=512).contains(&qlv), "{qlv}");
        let beta = p["beta"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&beta));
        assert!(p["log_normal"].as_f64().unwrap() > 0.0);
    }
    // The nested example: nested groups come back as mappings.
    let mut s = sweep(load("docs_nested.yaml"), 1, false);
    let p = s.next_run(&[]).unwrap().unwrap().params;
    let m = p["nested_category_3"]["momentum"].as_f64().unwrap();
    assert!((0.5..=0.7).contains(&m));
    assert!(p["batch_size"].as_i64().unwrap() % 8 == 0);
}

#[test]
fn weighted_categorical_follows_its_probabilities() {
    let config = SweepConfig::from_yaml_str(
        "program: t.py\nmethod: random\nparameters:\n  c:\n    values: [rare, common]\n    probabilities: [0.1, 0.9]\n",
        None,
    )
    .unwrap();
    let mut s = sweep(config, 3, false);
    let n_rare = (0..1000)
        .filter(|_| s.next_run(&[]).unwrap().unwrap().params["c"] == "rare")
        .count();
    assert!((50..=150).contains(&n_rare), "{n_rare} of 1000");
}

/// A smooth toy objective on two continuous parameters, minimum 0 at (0.3, 0.7).
fn objective(params: &Map<String, Value>) -> f64 {
    let x = params["x"].as_f64().unwrap();
    let y = params["y"].as_f64().unwrap();
    (x - 0.3).powi(2) + (y - 0.7).powi(2)
}

fn best_after(method: &str, seed: u64, n_runs: usize) -> f64 {
    let config = SweepConfig::from_yaml_str(
        &format!(
            "program: t.py\nmethod: {method}\nmetric:\n  name: loss\n  goal: minimize\nparameters:\n  x:\n    min: 0.0\n    max: 1.0\n  y:\n    min: 0.0\n    max: 1.0\n"
        ),
        None,
    )
    .unwrap();
    let mut s = sweep(config, seed, false);
    let mut runs = Vec::new();
    for _ in 0..n_runs {
        let p = s.next_run(&runs).unwrap().unwrap();
        let loss = objective(&p.params);
        let id = format!("r{}", p.index);
        s.attach(p.index, id.clone()).unwrap();
        runs.push(SweepRun {
            id,
            params: p.params,
            state: RunState::Finished,
            history: vec![loss],
            summary: Some(loss),
        });
    }
    s.observe(&runs);
    s.best.as_ref().unwrap().metric
}

#[test]
fn bayes_beats_random_within_30_runs() {
    let seeds = 1..=8u64;
    let mut wins = 0;
    let mut report = Vec::new();
    for seed in seeds.clone() {
        let bayes = best_after("bayes", seed, 30);
        let random = best_after("random", seed, 30);
        report.push(format!(
            "seed {seed}: bayes {bayes:.2e} random {random:.2e}"
        ));
        if bayes < random {
            wins += 1;
        }
    }
    eprintln!("bayes won {wins} of 8:\n{}", report.join("\n"));
    assert!(wins >= 6, "bayes won {wins} of 8:\n{}", report.join("\n"));
}

#[test]
fn bayes_maximises_and_handles_failed_and_in_flight_runs() {
    let config = SweepConfig::from_yaml_str(
        "program: t.py\nmethod: bayes\nmetric:\n  name: acc\n  goal: maximize\nparameters:\n  x:\n    min: 0.0\n    max: 1.0\n  opt:\n    values: [adam, sgd]\n  depth:\n    min: 1\n    max: 8\n  fixed:\n    value: 3\n",
        None,
    )
    .unwrap();
    let mut s = sweep(config, 5, false);
    let mut runs: Vec<SweepRun> = Vec::new();
    for i in 0..12u64 {
        let p = s.next_run(&runs).unwrap().unwrap();
        assert_eq!(p.params["fixed"], json!(3));
        assert!(p.params["depth"].is_i64());
        let x = p.params["x"].as_f64().unwrap();
        let state = match i % 4 {
            0 => RunState::Failed,
            1 => RunState::Running,
            _ => RunState::Finished,
        };
        let acc = 1.0 - (x - 0.8).abs();
        let id = format!("r{i}");
        s.attach(p.index, id.clone()).unwrap();
        runs.push(SweepRun {
            id,
            params: p.params,
            state,
            history: if state == RunState::Failed {
                vec![]
            } else {
                vec![acc]
            },
            summary: None,
        });
        // One proposal is never attached: it counts as in flight for the next.
        if i == 6 {
            let loose = s.next_run(&runs).unwrap().unwrap();
            assert!(loose.bayes.is_some());
        }
    }
    let best = s.best.as_ref().unwrap();
    assert!(best.metric > 0.8, "{best:?}");
}

#[test]
fn extreme_ranges_do_not_overflow() {
    let config = SweepConfig::from_yaml_str(
        "program: t.py\nmethod: random\nparameters:\n  n:\n    min: -9223372036854775808\n    max: 9223372036854775807\n  x:\n    distribution: normal\n    sigma: 1e300\n",
        None,
    )
    .unwrap();
    let mut s = sweep(config, 11, false);
    for _ in 0..50 {
        let p = s.next_run(&[]).unwrap().unwrap();
        assert!(p.params["n"].is_i64());
        assert!(p.params["x"].is_number());
    }
}
