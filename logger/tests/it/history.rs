//! History and summary semantics: W&B's step and commit rules (reference section 8.2, item 3),
//! derived summaries for `define_metric`, explicit summary values, `step_sync`.

use wandb_format::json;
use wandb_logger::{InitOptions, LogOptions, Metric, Row, SummaryStat, row};

use crate::common::{Workspace, history, log_path, read_records, replay_summary, user_keys};

/// One `log` call: keys (each logged with value 1), step, commit.
type Call = (&'static [&'static str], Option<u64>, Option<bool>);

/// A case: calls, expected rows as (step, user keys), expected out-of-order drops.
type Case = (
    &'static [Call],
    &'static [(i64, &'static [&'static str])],
    u64,
);

/// Runs the calls, finishes, and returns the written rows as (step, user keys) and the number
/// of rows dropped for going backwards.
fn check(calls: &[Call], expected: &[(i64, &[&str])], expected_out_of_order: u64) {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    for (keys, step, commit) in calls {
        let row: Row = keys.iter().map(|k| (*k, 1)).collect();
        let options = LogOptions {
            step: *step,
            commit: *commit,
        };
        run.log_with(row, options).unwrap();
    }
    let path = log_path(&run);
    let summary = run.finish().unwrap();
    let rows = history(&read_records(&path));
    let got: Vec<(i64, Vec<String>)> = rows.iter().map(|r| (r.step, user_keys(r))).collect();
    let want: Vec<(i64, Vec<String>)> = expected
        .iter()
        .map(|(step, keys)| {
            let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            keys.sort();
            (*step, keys)
        })
        .collect();
    assert_eq!(got, want, "calls {calls:?}");
    assert_eq!(
        summary.out_of_order, expected_out_of_order,
        "calls {calls:?}"
    );
    assert_eq!(summary.rows, expected.len() as u64);
}

#[test]
fn step_and_commit_rules() {
    let cases: &[Case] = &[
        // No step, commit unset: every call is a row.
        (
            &[(&["a"], None, None), (&["b"], None, None)],
            &[(0, &["a"]), (1, &["b"])],
            0,
        ),
        // commit=false merges into the next committed row.
        (
            &[(&["a"], None, Some(false)), (&["b"], None, None)],
            &[(0, &["a", "b"])],
            0,
        ),
        // An explicit step does not commit; moving past it writes it; finish writes the last.
        (
            &[
                (&["a"], Some(0), None),
                (&["b"], Some(0), None),
                (&["c"], Some(1), None),
            ],
            &[(0, &["a", "b"]), (1, &["c"])],
            0,
        ),
        // Jumping ahead; a later call without a step commits at that step.
        (
            &[(&["a"], Some(5), None), (&["b"], None, None)],
            &[(5, &["a", "b"])],
            0,
        ),
        // An explicit step with commit=true writes at once; the step then advances.
        (
            &[(&["a"], Some(3), Some(true)), (&["b"], None, None)],
            &[(3, &["a"]), (4, &["b"])],
            0,
        ),
        // Going backwards is dropped with a warning.
        (
            &[
                (&["a"], Some(5), None),
                (&["b"], Some(2), None),
                (&["c"], Some(6), None),
            ],
            &[(5, &["a"]), (6, &["c"])],
            1,
        ),
        // A dropped call does not commit either.
        (
            &[
                (&["a"], Some(5), Some(true)),
                (&["b"], Some(1), Some(true)),
                (&["c"], None, None),
            ],
            &[(5, &["a"]), (6, &["c"])],
            1,
        ),
        // Empty rows are not written, but the step advances.
        (
            &[(&[], None, None), (&["a"], None, None)],
            &[(1, &["a"])],
            0,
        ),
        // A pending partial row is written when a larger step arrives.
        (
            &[(&["a"], None, Some(false)), (&["b"], Some(2), None)],
            &[(0, &["a"]), (2, &["b"])],
            0,
        ),
        // The same step again merges; commit=false with a step keeps it pending.
        (
            &[
                (&["a"], Some(1), Some(false)),
                (&["b"], Some(1), Some(false)),
                (&["c"], Some(1), Some(true)),
                (&["d"], Some(1), None),
            ],
            &[(1, &["a", "b", "c"])],
            1,
        ),
        // A repeated key keeps its last value and appears once.
        (&[(&["a", "a"], None, None)], &[(0, &["a"])], 0),
    ];
    for (calls, expected, out_of_order) in cases {
        check(calls, expected, *out_of_order);
    }
}

#[test]
fn merged_values_keep_the_last_and_rows_carry_runtime_and_timestamp() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    run.log_with(row! {"a" => 1, "b" => 1}, LogOptions::new().commit(false))
        .unwrap();
    run.log(row! {"a" => 2}).unwrap();
    run.log(row! {"_timestamp" => 123.5, "c" => 3}).unwrap();
    assert_eq!(run.step().unwrap(), 2);
    let path = log_path(&run);
    let start = run.start_time();
    run.finish().unwrap();
    let rows = history(&read_records(&path));
    assert_eq!(rows[0].items["a"].as_i64(), Some(2));
    assert_eq!(rows[0].items["b"].as_i64(), Some(1));
    let ts = rows[0].items["_timestamp"].as_f64().unwrap();
    let start = start
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((ts - start).abs() < 60.0, "{ts} vs {start}");
    let runtime = rows[0].items["_runtime"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&runtime), "{runtime}");
    // A user-supplied `_timestamp` is kept.
    assert_eq!(rows[1].items["_timestamp"].as_f64(), Some(123.5));
}

#[test]
fn derived_summaries_follow_define_metric() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    run.define_metric(Metric::new("step_x")).unwrap();
    run.define_metric(
        Metric::new("loss")
            .step_metric("step_x")
            .summary(SummaryStat::Min),
    )
    .unwrap();
    run.define_metric(
        Metric::new("acc")
            .summary(SummaryStat::Max)
            .summary(SummaryStat::Last),
    )
    .unwrap();
    run.define_metric(Metric::new("val/*").summary(SummaryStat::Mean))
        .unwrap();
    run.define_metric(Metric::new("lr").summary(SummaryStat::None))
        .unwrap();
    run.define_metric(Metric::new("first_only").summary(SummaryStat::First))
        .unwrap();
    run.define_metric(Metric::new("train.b").summary(SummaryStat::Max))
        .unwrap();
    run.define_metric(Metric::new("hidden").hidden(true))
        .unwrap();
    for step in 0..10u32 {
        let s = f64::from(step);
        run.log(row! {
            "step_x" => step * 2,
            "loss" => 10.0 - s,
            "acc" => s / 10.0,
            "val/loss" => s,
            "lr" => 0.1,
            "first_only" => step,
            "train" => row!{"a" => step, "b" => 10 - step},
            "hidden" => step,
            "plain" => s,
        })
        .unwrap();
    }
    // step_sync: a row without the step metric gets its latest value.
    run.log(row! {"loss" => 0.5}).unwrap();
    let expected_api = run.summary().unwrap();
    let path = log_path(&run);
    run.finish().unwrap();
    let records = read_records(&path);
    let summary = replay_summary(&records);
    let text = |k: &str| summary.get(k).map(ToString::to_string);
    assert_eq!(text("loss").as_deref(), Some(r#"{"min":0.5}"#));
    assert_eq!(text("acc").as_deref(), Some(r#"{"max":0.9,"last":0.9}"#));
    assert_eq!(text("val/loss").as_deref(), Some(r#"{"mean":4.5}"#));
    assert_eq!(text("lr"), None, "summary none");
    assert_eq!(text("first_only").as_deref(), Some(r#"{"first":0}"#));
    assert_eq!(text("train.a").as_deref(), Some("9"));
    assert_eq!(text("train.b").as_deref(), Some(r#"{"max":10}"#));
    assert_eq!(text("hidden").as_deref(), Some("9"));
    assert_eq!(text("plain").as_deref(), Some("9"));
    assert_eq!(text("step_x").as_deref(), Some("18"));
    assert_eq!(text("_step").as_deref(), Some("10"));
    let rows = history(&records);
    assert_eq!(
        rows[10].items.get("step_x").and_then(json::Value::as_i64),
        Some(18)
    );
    // The API sees the same summary.
    assert_eq!(
        expected_api.get("loss").map(ToString::to_string).as_deref(),
        Some(r#"{"min":0.5}"#)
    );
    assert_eq!(
        expected_api
            .get("train")
            .map(ToString::to_string)
            .as_deref(),
        Some(r#"{"a":9,"b":{"max":10}}"#)
    );
    assert!(!expected_api.contains_key("lr"));
}

#[test]
fn explicit_summary_values_replace_and_reset_statistics() {
    let ws = Workspace::new();
    let run = ws.setup.init(InitOptions::new()).unwrap();
    run.define_metric(Metric::new("loss").summary(SummaryStat::Min))
        .unwrap();
    run.log(row! {"loss" => 1.0, "x" => 1}).unwrap();
    run.log(row! {"loss" => 0.2}).unwrap();
    run.summary_set("loss", &7).unwrap();
    assert_eq!(
        run.summary_get("loss")
            .unwrap()
            .map(|v| v.to_string())
            .as_deref(),
        Some("7")
    );
    run.summary_update(
        &[("best", 0.9), ("worst", 0.1)]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    run.summary_remove("worst").unwrap();
    run.summary_remove("x").unwrap();
    let path = log_path(&run);
    // Statistics start again from the next value.
    run.log(row! {"loss" => 0.5}).unwrap();
    assert_eq!(
        run.summary_get("loss")
            .unwrap()
            .map(|v| v.to_string())
            .as_deref(),
        Some(r#"{"min":0.5}"#)
    );
    assert_eq!(run.summary_get("x").unwrap(), None);
    run.finish().unwrap();
    let records = read_records(&path);
    let summary = replay_summary(&records);
    assert_eq!(summary["loss"].to_string(), r#"{"min":0.5}"#);
    assert_eq!(summary["best"].to_string(), "0.9");
    assert!(!summary.contains_key("worst"));
    assert!(!summary.contains_key("x"));
    // Explicit values use `key`, as the SDK's client writes them.
    let explicit = records
        .iter()
        .filter_map(|r| match &r.record_type {
            Some(wandb_format::proto::record::RecordType::Summary(s)) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.update.iter())
        .find(|i| i.value_json == "7")
        .unwrap();
    assert_eq!(explicit.key, "loss");
    assert!(explicit.nested_key.is_empty());
}

#[test]
fn config_updates_are_records() {
    let ws = Workspace::new();
    let run = ws
        .setup
        .init(
            InitOptions::new().config(
                &[("lr", 0.1)]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            ),
        )
        .unwrap();
    run.config_set("batch", &32).unwrap();
    run.config_update(
        &[("a", "x"), ("b", "y")]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    run.config_remove("a").unwrap();
    assert!(run.config_update(&5).is_err());
    let path = log_path(&run);
    run.finish().unwrap();
    let configs: Vec<_> = read_records(&path)
        .into_iter()
        .filter_map(|r| match r.record_type {
            Some(wandb_format::proto::record::RecordType::Config(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(configs.len(), 3);
    assert_eq!(
        (
            configs[0].update[0].key.as_str(),
            configs[0].update[0].value_json.as_str()
        ),
        ("batch", "32")
    );
    assert_eq!(configs[1].update.len(), 2);
    assert_eq!(configs[2].remove[0].key, "a");
}

/// The `(key, value_json)` items of every history row, without `_runtime` and `_timestamp`.
fn row_texts(records: &[wandb_format::proto::Record]) -> Vec<Vec<(String, String)>> {
    use wandb_format::proto::record::RecordType;
    records
        .iter()
        .filter_map(|record| match &record.record_type {
            Some(RecordType::History(history)) => Some(
                history
                    .item
                    .iter()
                    .map(|item| (item.nested_key.join("."), item.value_json.clone()))
                    .filter(|(key, _)| key != "_runtime" && key != "_timestamp")
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn rows_are_the_same_whichever_thread_formats_the_floats() {
    // With a queue of one command the writer always counts as behind, so `log` formats the
    // floats itself; with the default queue the writer formats them. The records must not
    // differ. The rows also take the direct path and each way around it (a key twice, a nested
    // object, `_step` given, a row built over two calls).
    let mut floats = vec![
        0.5,
        -0.1,
        1e-4,
        9.999e-5,
        123456.789,
        999999.9999,
        1e6,
        1234567.5,
        1.7953176790656261e9,
        1e16,
        1e21,
        0.0,
        -0.0,
        3.0,
        -42.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::MAX,
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let exponent = (state % 40) as i32 - 20;
        floats.push((state >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(exponent));
    }
    let texts = |capacity: usize| {
        let ws = Workspace::new();
        let writer = wandb_logger::WriterOptions::default().queue_capacity(capacity);
        let run = ws.setup.init(InitOptions::new().writer(writer)).unwrap();
        for chunk in floats.chunks(10) {
            let row: Row = chunk
                .iter()
                .enumerate()
                .map(|(index, value)| (format!("m{index}"), *value))
                .collect();
            run.log(row).unwrap();
        }
        run.log(row! {"a" => 0.25, "a" => 0.75}).unwrap();
        run.log(row! {"b" => 0.5, "nested" => row! {"x" => 0.125}})
            .unwrap();
        run.log(row! {"_step" => 7, "c" => 1.5}).unwrap();
        run.log_with(row! {"d" => 2.5}, LogOptions::new().commit(false))
            .unwrap();
        run.log(row! {"e" => 3.5}).unwrap();
        let path = log_path(&run);
        run.finish().unwrap();
        row_texts(&read_records(&path))
    };
    let by_logger = texts(1);
    let by_writer = texts(wandb_logger::DEFAULT_QUEUE_CAPACITY);
    assert_eq!(by_logger.len(), floats.len() / 10 + 4);
    assert_eq!(by_logger, by_writer);
    let last = |key: &str| {
        by_writer
            .iter()
            .flatten()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(last("a").as_deref(), Some("0.75"));
    assert_eq!(last("nested.x").as_deref(), Some("0.125"));
    assert_eq!(
        last("m0").as_deref(),
        Some(by_writer[floats.len() / 10 - 1][0].1.as_str())
    );
}
