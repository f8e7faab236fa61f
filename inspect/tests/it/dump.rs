//! `dump`: text and JSON views of the SDK fixtures, filters, NaN styles and damaged files.

use insta::assert_snapshot;
use wandb_inspect::Exit;

use crate::util::{
    SCENARIOS, damaged_copy, expected_by_type, fixture, fixtures, inspect, json_lines, redact,
};

#[test]
fn text_view_of_a_plain_run() {
    let output = inspect(&[&"dump", &fixture("plain")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(output.stderr, "");
    assert_snapshot!("dump_text_plain", output.stdout);
}

#[test]
fn json_view_of_a_plain_run() {
    let output = inspect(&[&"dump", &"--json", &fixture("plain")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("dump_json_plain", redact(&output.stdout, None));
}

#[test]
fn json_view_of_saved_files_alert_and_preempting() {
    let output = inspect(&[&"dump", &"--json", &fixture("saved_files")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("dump_json_saved_files", redact(&output.stdout, None));
}

#[test]
fn type_filter_keeps_only_the_named_types() {
    let path = fixture("console");
    let output = inspect(&[&"dump", &"--type", &"output_raw,exit", &path]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("dump_text_console_output_raw", output.stdout);
}

#[test]
fn unknown_type_names_are_a_usage_error() {
    let output = inspect(&[&"dump", &"--type", &"histroy", &fixture("plain")]);
    assert_eq!(output.exit, Exit::Error);
    assert_eq!(output.stdout, "");
    assert!(
        output.stderr.contains("unknown record type \"histroy\""),
        "{}",
        output.stderr
    );
}

#[test]
fn json_counts_per_type_match_expected_json() {
    for scenario in SCENARIOS {
        let output = inspect(&[&"dump", &"--json", &fixture(scenario)]);
        assert_eq!(output.exit, Exit::Ok, "{scenario}");
        let mut counts = serde_json::Map::new();
        let mut last_num = 0;
        for line in json_lines(&output.stdout) {
            let kind = line["type"].as_str().unwrap().to_string();
            let count = counts.entry(kind).or_insert(serde_json::json!(0));
            *count = serde_json::json!(count.as_u64().unwrap() + 1);
            let num = line["num"].as_i64().unwrap();
            assert_eq!(num, last_num + 1, "{scenario}: records in order");
            last_num = num;
            assert!(line["offset"].as_u64().unwrap() >= 7);
        }
        assert_eq!(counts, expected_by_type(scenario), "{scenario}");
    }
}

#[test]
fn nan_and_infinity_follow_non_finite() {
    let path = fixture("multiblock");
    let row = |style: &str| {
        let output = inspect(&[
            &"dump",
            &"--json",
            &"--type",
            &"history",
            &"--non-finite",
            &style,
            &path,
        ]);
        assert_eq!(output.exit, Exit::Ok);
        let lines: Vec<&str> = output.stdout.lines().collect();
        (lines[13].to_string(), lines[110].to_string())
    };
    let (nan, inf) = row("string");
    assert!(nan.contains(r#""special":"NaN""#), "{nan}");
    assert!(inf.contains(r#""special":"Infinity""#), "{inf}");
    let (nan, inf) = row("bare");
    assert!(nan.contains(r#""special":NaN"#), "{nan}");
    assert!(inf.contains(r#""special":Infinity"#), "{inf}");
    let (nan, _) = row("null");
    assert!(nan.contains(r#""special":null"#), "{nan}");
    // The text view shows bare tokens.
    let output = inspect(&[&"dump", &"--type", &"history", &path]);
    assert!(
        output
            .stdout
            .lines()
            .nth(13)
            .unwrap()
            .contains("special=NaN")
    );
}

#[test]
fn multi_chunk_records_are_shown_whole() {
    let output = inspect(&[
        &"dump",
        &"--json",
        &"--type",
        &"history",
        &fixture("multiblock"),
    ]);
    let lines = json_lines(&output.stdout);
    let blob = lines[900]["history"]["item"]["blob"].as_str().unwrap();
    assert_eq!(blob.len(), 100_000);
    // The text view cuts long strings.
    let output = inspect(&[&"dump", &"--type", &"history", &fixture("multiblock")]);
    let line = output.stdout.lines().nth(900).unwrap();
    assert!(
        line.len() < 1_000 && line.contains("…(+99840 bytes)"),
        "{line}"
    );
}

#[test]
fn several_files_come_in_input_order_with_headers() {
    let output = inspect(&[&"dump", &fixture("saved_files"), &fixture("console")]);
    assert_eq!(output.exit, Exit::Ok);
    let headers: Vec<String> = output
        .stdout
        .lines()
        .filter(|line| line.starts_with("==> "))
        .map(|line| redact(line, None))
        .collect();
    assert_eq!(
        headers,
        [
            "==> [FIXTURES]/saved_files/run-fxsaved0.wandb <==",
            "==> [FIXTURES]/console/run-fxconsl0.wandb <==",
        ]
    );
    assert_eq!(output.stdout.lines().count(), 2 + 22 + 98);
}

#[test]
fn whole_fixture_folder_dumps_every_file() {
    let output = inspect(&[&"dump", &"--json", &fixtures()]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(json_lines(&output.stdout).len(), 98 + 320 + 3010 + 162 + 22);
}

#[test]
fn damaged_files_show_everything_valid_and_each_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let truncated = damaged_copy(dir, "plain", "truncated.wandb", |bytes| {
        bytes.truncate(21_000)
    });
    let flipped = damaged_copy(dir, "plain", "flipped.wandb", |bytes| bytes[1000] ^= 0x10);
    let garbage = damaged_copy(dir, "plain", "garbage.wandb", |bytes| {
        bytes.extend_from_slice(b"this is not a chunk header at all")
    });
    for (path, exit, n_records) in [
        (&truncated, Exit::Ok, 156),
        (&flipped, Exit::Damage, 161),
        (&garbage, Exit::Damage, 162),
    ] {
        let output = inspect(&[&"dump", &"--json", &path]);
        assert_eq!(output.exit, exit, "{}", path.display());
        let lines = json_lines(&output.stdout);
        let damage: Vec<String> = lines
            .iter()
            .filter(|line| line["type"] == "damage")
            .map(|line| redact(&line.to_string(), Some(dir)))
            .collect();
        assert_eq!(lines.len() - damage.len(), n_records, "{}", path.display());
        assert_snapshot!(
            format!(
                "dump_damage_{}",
                path.file_stem().unwrap().to_string_lossy()
            ),
            damage.join("\n")
        );
    }
    let output = inspect(&[&"dump", &flipped]);
    assert_snapshot!(
        "dump_text_damage_flipped",
        output.stdout.lines().take(8).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn records_that_do_not_decode_are_damage_with_prost_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad-proto.wandb");
    // Valid framing, invalid protobuf (wire type 7), between two good records.
    let good = wandb_format::proto::Record {
        num: 1,
        ..Default::default()
    };
    let mut payloads = vec![prost::Message::encode_to_vec(&good)];
    payloads.push(vec![0x0F, 0x01]);
    payloads.push(prost::Message::encode_to_vec(
        &wandb_format::proto::Record {
            num: 3,
            ..Default::default()
        },
    ));
    let bytes = wandb_format::frame_all(payloads.iter().map(Vec::as_slice));
    std::fs::write(&path, bytes).unwrap();
    let output = inspect(&[&"dump", &"--json", &path]);
    assert_eq!(output.exit, Exit::Damage);
    assert_snapshot!("dump_undecodable", redact(&output.stdout, Some(tmp.path())));
}

#[test]
fn item_types_with_their_own_field_numbers_show_key_and_value() {
    // `ExtraItem` and `StoragePolicyConfigItem` keep `value_json` in field 2, where `HistoryItem`
    // keeps `nested_key`.
    use wandb_format::proto::{
        ArtifactManifest, ArtifactManifestEntry, ArtifactRecord, ExtraItem, Record,
        StoragePolicyConfigItem, record::RecordType,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-artifact.wandb");
    let artifact = Record {
        num: 1,
        record_type: Some(RecordType::Artifact(ArtifactRecord {
            name: "weights".to_string(),
            manifest: Some(ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".to_string(),
                storage_policy_config: vec![StoragePolicyConfigItem {
                    key: "storageLayout".to_string(),
                    value_json: "\"V2\"".to_string(),
                }],
                contents: vec![ArtifactManifestEntry {
                    path: "model.pt".to_string(),
                    extra: vec![ExtraItem {
                        key: "epoch".to_string(),
                        value_json: "3".to_string(),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    crate::util::write_file(&path, &[artifact]);
    let output = inspect(&[&"dump", &"--json", &path]);
    assert_eq!(output.exit, Exit::Ok, "{}", output.stderr);
    let lines = json_lines(&output.stdout);
    let manifest = &lines[0]["artifact"]["manifest"];
    assert_eq!(
        manifest["storage_policy_config"],
        serde_json::json!({"storageLayout": "V2"})
    );
    assert_eq!(
        manifest["contents"][0]["extra"],
        serde_json::json!({"epoch": 3})
    );
}
