//! Files written by the official SDK (wandb 0.31.0, `fixtures/sdk-0.31.0/`) read completely, with the
//! record counts the SDK's own reader reports, and framing their payloads again with our writer gives
//! the same file byte for byte.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use wandb_format::{Entry, LogFile, Recovery, ScanItem, frame_all};

/// Every fixture's `.wandb` file with its `expected.json`.
fn fixtures() -> Vec<(PathBuf, serde_json::Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk-0.31.0");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let wandb = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "wandb"))
            .unwrap();
        out.push((wandb, expected));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 5,
        "expected the five SDK fixtures, found {}",
        out.len()
    );
    out
}

#[test]
fn every_sdk_fixture_reads_completely_with_the_sdks_counts() {
    for (path, expected) in fixtures() {
        let file = LogFile::open(&path).unwrap();
        assert_eq!(
            file.len(),
            expected["file_bytes"].as_u64().unwrap(),
            "{}",
            path.display()
        );
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        let mut nums = Vec::new();
        let mut steps = Vec::new();
        for entry in file.records(Recovery::Strict) {
            match entry.unwrap() {
                Entry::Record { record, .. } => {
                    *by_type.entry(record.type_name().to_owned()).or_default() += 1;
                    nums.push(record.num);
                    if let Some(wandb_format::proto::record::RecordType::History(h)) =
                        &record.record_type
                    {
                        steps.push(h.step.as_ref().map_or(0, |s| s.num));
                    }
                }
                Entry::Damage(d) => panic!("{}: {d}", path.display()),
            }
        }
        let want: BTreeMap<String, u64> = expected["by_type"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(by_type, want, "{}", path.display());
        assert_eq!(nums.len() as u64, expected["records"].as_u64().unwrap());
        assert_eq!(
            nums,
            (1..=nums.len() as i64).collect::<Vec<_>>(),
            "nums are 1, 2, 3, ..."
        );
        let want_steps: Vec<i64> = expected["history_steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_i64().unwrap())
            .collect();
        assert_eq!(steps, want_steps, "{}", path.display());
    }
}

#[test]
fn reframing_sdk_payloads_gives_the_identical_file() {
    for (path, _) in fixtures() {
        let file = LogFile::open(&path).unwrap();
        let payloads: Vec<Vec<u8>> = file
            .scan(Recovery::Strict)
            .map(|item| match item.unwrap() {
                ScanItem::Record(raw) => raw.payload.into_owned(),
                ScanItem::Damage(d) => panic!("{}: {d}", path.display()),
            })
            .collect();
        let rewritten = frame_all(payloads.iter().map(Vec::as_slice));
        assert!(
            rewritten == file.bytes(),
            "{}: framing differs from the SDK's",
            path.display()
        );
    }
}

#[test]
fn multi_chunk_records_and_padding_are_covered_by_the_fixtures() {
    // Guards the byte-identity test: at least one fixture exercises FIRST/MIDDLE/LAST and padding.
    let (_, expected) = fixtures()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("multiblock"))
        .unwrap();
    let chunks = &expected["chunks"];
    for kind in ["first", "middle", "last", "block_padding"] {
        assert!(
            chunks[kind].as_u64().unwrap() > 0,
            "no {kind} in the multiblock fixture"
        );
    }
}

/// The key path and value of a prost item, as the view reports them.
fn prost_item(key: &str, nested: &[String], value_json: &str) -> (Vec<String>, String) {
    let path = if nested.is_empty() {
        vec![key.to_owned()]
    } else {
        nested.to_vec()
    };
    (path, value_json.to_owned())
}

fn view_items(items: wandb_format::Items<'_>) -> Vec<(Vec<String>, String)> {
    items
        .map(|item| {
            let item = item.unwrap();
            (
                item.path().map(str::to_owned).collect(),
                item.value_json.to_owned(),
            )
        })
        .collect()
}

#[test]
fn zero_copy_views_agree_with_prost_on_every_sdk_record() {
    use wandb_format::RecordView;
    use wandb_format::proto::record::RecordType;
    let mut n_checked = 0;
    for (path, _) in fixtures() {
        let file = LogFile::open(&path).unwrap();
        for item in file.scan(Recovery::Strict) {
            let ScanItem::Record(raw) = item.unwrap() else {
                panic!("damage")
            };
            let record = wandb_format::decode(&raw).unwrap();
            let view = RecordView::parse(&raw.payload).unwrap();
            assert_eq!(view.num, record.num);
            assert_eq!(view.type_name(), record.type_name());
            match &record.record_type {
                Some(RecordType::History(history)) => {
                    let hv = view.history().unwrap();
                    assert_eq!(
                        hv.step().unwrap(),
                        history.step.as_ref().map_or(0, |s| s.num)
                    );
                    let want: Vec<_> = history
                        .item
                        .iter()
                        .map(|i| prost_item(&i.key, &i.nested_key, &i.value_json))
                        .collect();
                    assert_eq!(view_items(hv.items()), want);
                    n_checked += 1;
                }
                Some(RecordType::Summary(summary)) => {
                    let uv = view.updates().unwrap();
                    let want: Vec<_> = summary
                        .update
                        .iter()
                        .map(|i| prost_item(&i.key, &i.nested_key, &i.value_json))
                        .collect();
                    assert_eq!(view_items(uv.updates()), want);
                    let want: Vec<_> = summary
                        .remove
                        .iter()
                        .map(|i| prost_item(&i.key, &i.nested_key, &i.value_json))
                        .collect();
                    assert_eq!(view_items(uv.removes()), want);
                    n_checked += 1;
                }
                Some(RecordType::Config(config)) => {
                    let uv = view.updates().unwrap();
                    let want: Vec<_> = config
                        .update
                        .iter()
                        .map(|i| prost_item(&i.key, &i.nested_key, &i.value_json))
                        .collect();
                    assert_eq!(view_items(uv.updates()), want);
                    n_checked += 1;
                }
                _ => assert!(view.history().is_none() && view.updates().is_none()),
            }
        }
    }
    assert!(n_checked > 3000, "checked only {n_checked} records");
}
