//! Hyperband early termination: brackets as W&B computes them, and the runs it stops on
//! scripted metric curves.

use serde_json::Map;
use wandb_sweeps::hyperband::{brackets, decide};
use wandb_sweeps::{Brackets, Goal, Hyperband, RunState, SweepRun};

use crate::load;

fn run(id: &str, state: RunState, history: &[f64]) -> SweepRun {
    SweepRun {
        id: id.to_owned(),
        params: Map::new(),
        state,
        history: history.to_vec(),
        summary: None,
    }
}

#[test]
fn brackets_as_documented() {
    let min = load("docs_early_terminate_min_iter.yaml");
    let b = brackets(min.early_terminate.as_ref().unwrap());
    assert_eq!(b[..4], [3, 9, 27, 81]);
    let max = load("docs_early_terminate_max_iter.yaml");
    assert_eq!(brackets(max.early_terminate.as_ref().unwrap()), [3, 9]);
    let local = load("reference_local_hyperband.yaml");
    // 10 / 3 = 3.33 -> 3, 10 / 9 = 1.11 -> 1.
    assert_eq!(brackets(local.early_terminate.as_ref().unwrap()), [1, 3]);
}

fn scripted() -> Vec<SweepRun> {
    vec![
        run("a", RunState::Finished, &[10.0, 9.0]),
        run("b", RunState::Running, &[10.0, 10.0]),
        run("c", RunState::Running, &[10.0, 8.0, 8.0]),
        run("d", RunState::Running, &[10.0, 7.0, 7.0]),
        run("e", RunState::Finished, &[10.0, 6.0, 6.0]),
        run("f", RunState::Running, &[]),
    ]
}

#[test]
fn stops_runs_below_the_bracket_cut() {
    // Brackets 1 and 2 (5 / 2, 5 / 4); at iteration 2 the values are 9, 10, 8, 7, 6 and the cut
    // is the value at position floor(5 / 2) of them sorted: 8. Only b (10) is worse.
    let hb = Hyperband {
        brackets: Brackets::MaxIter { max_iter: 5, s: 2 },
        eta: 2.0,
        strict: true,
    };
    let decision = decide(&hb, Goal::Minimize, &scripted());
    assert_eq!(decision.brackets, [1, 2]);
    assert_eq!(decision.thresholds, [Some(10.0), Some(8.0)]);
    assert_eq!(decision.stop, ["b"]);

    // Not strict: judged by the best value so far. b's best is 10, still above 8.
    let lenient = Hyperband {
        strict: false,
        ..hb.clone()
    };
    assert_eq!(decide(&lenient, Goal::Minimize, &scripted()).stop, ["b"]);

    // A run that got worse at the bracket but was good before: strict stops it, lenient keeps it.
    let mut runs = scripted();
    runs.push(run("g", RunState::Running, &[5.0, 9.5]));
    assert_eq!(decide(&hb, Goal::Minimize, &runs).stop, ["b", "g"]);
    assert_eq!(decide(&lenient, Goal::Minimize, &runs).stop, ["b"]);
}

#[test]
fn maximised_metric_is_mirrored() {
    let hb = Hyperband {
        brackets: Brackets::MaxIter { max_iter: 5, s: 2 },
        eta: 2.0,
        strict: true,
    };
    let mirrored: Vec<SweepRun> = scripted()
        .into_iter()
        .map(|mut r| {
            r.history.iter_mut().for_each(|v| *v = -*v);
            r
        })
        .collect();
    let decision = decide(&hb, Goal::Maximize, &mirrored);
    assert_eq!(decision.stop, ["b"]);
    assert_eq!(decision.thresholds, [Some(-10.0), Some(-8.0)]);
}

#[test]
fn curve_over_many_runs() {
    // Nine running runs with loss curves 1/(k+1) scaled by their rank; eta 3, brackets 1 and 3.
    let hb = Hyperband {
        brackets: Brackets::MinIter(1),
        eta: 3.0,
        strict: true,
    };
    let runs: Vec<SweepRun> = (0..9)
        .map(|rank| {
            let history: Vec<f64> = (0..4).map(|k| (rank + 1) as f64 / (k + 1) as f64).collect();
            run(&format!("r{rank}"), RunState::Running, &history)
        })
        .collect();
    let decision = decide(&hb, Goal::Minimize, &runs);
    // At iteration 3 the values are (rank + 1) / 3; the cut is the value at position 3 of 9:
    // rank 3's. Ranks 4 and up are worse.
    assert_eq!(decision.stop, ["r4", "r5", "r6", "r7", "r8"]);
}
