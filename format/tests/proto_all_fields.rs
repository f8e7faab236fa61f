//! Checks `wandb_format::proto` against the official SDK's schema.
//!
//! `tests/fixtures/all_fields/*.bin` are records serialized by the SDK's own
//! protobuf classes (`format/proto/make_all_fields.py`), one per record type, with
//! every field set to a non-default value. Decoding one with prost and re-encoding it
//! must give the same bytes: a field whose number or wire type is wrong would be
//! skipped as unknown (or fail to decode) and be missing from the output.
//!
//! Ordering: the SDK (Python upb, like Go) writes fields in field-number order, and so
//! does prost, except for oneofs, which the derive writes at their lowest field
//! number. Only `Record` has a oneof whose numbers straddle other fields (`control`
//! is 16, `uuid` 19), and its hand-written encoder restores field-number order; the
//! fixtures set `control` and `uuid`, so this is tested too. Maps have one entry each,
//! so map ordering cannot matter; the SDK also writes empty keys and values inside
//! map entries, which prost omits, so the fixtures use non-empty ones (see the
//! `proto` module docs).
//!
//! Byte equality cannot tell apart scalar types that share a wire format (say
//! `int64` and `sint64`), so the fixture values are chosen to make most such mix-ups
//! change the bytes, and `decoded_values_match_the_sdk` checks a few decoded values
//! directly.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use wandb_format::proto::{RECORD_TYPE_NAMES, Record, history_item, record};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/all_fields")
}

fn fixture_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixture_dir())
        .expect("fixture directory should exist")
        .map(|entry| entry.expect("fixture directory should be readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    paths.sort();
    paths
}

fn decode_fixture(name: &str) -> Record {
    let bytes = fs::read(fixture_dir().join(format!("{name}.bin"))).expect("fixture should exist");
    Record::decode(bytes.as_slice()).expect("fixture should decode")
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let paths = fixture_paths();
    assert!(
        paths.len() >= RECORD_TYPE_NAMES.len(),
        "missing fixtures in {paths:?}"
    );
    for path in paths {
        let bytes = fs::read(&path).expect("fixture should be readable");
        let record = Record::decode(bytes.as_slice())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(
            record.encoded_len(),
            bytes.len(),
            "{}: encoded_len",
            path.display()
        );
        let encoded = record.encode_to_vec();
        if encoded != bytes {
            let at = encoded
                .iter()
                .zip(&bytes)
                .take_while(|(a, b)| a == b)
                .count();
            panic!(
                "{}: re-encoded bytes differ from the SDK's at offset {at} \
                 (got {} bytes, want {})",
                path.display(),
                encoded.len(),
                bytes.len(),
            );
        }
    }
}

#[test]
fn every_record_type_has_a_fixture_that_decodes_as_that_type() {
    for name in RECORD_TYPE_NAMES {
        let record = decode_fixture(name);
        assert_eq!(record.type_name(), *name);
        assert!(record.control.is_some(), "{name}: control");
        assert!(record.info.is_some(), "{name}: info");
        assert!(!record.uuid.is_empty(), "{name}: uuid");
    }
    assert_eq!(Record::default().type_name(), "unknown");
}

/// Spot checks of decoded values, for types that byte equality cannot distinguish.
/// The expected values follow the rules in `make_all_fields.py`.
#[test]
fn decoded_values_match_the_sdk() {
    let history = match decode_fixture("history").record_type {
        Some(record::RecordType::History(history)) => history,
        other => panic!("expected history, got {other:?}"),
    };
    let values: Vec<_> = history.item.iter().map(|item| item.value.clone()).collect();
    assert_eq!(
        values,
        [
            Some(history_item::Value::None(0)),
            Some(history_item::Value::Boolean(true)),
            // sint64 field 5, element 2: -(2^40 + 5 + 2).
            Some(history_item::Value::Integer(-(1 << 40) - 7)),
            // double field 6, element 3: 0.5 + 6 + 3.
            Some(history_item::Value::Number(9.5)),
            Some(history_item::Value::Text("text-4".to_owned())),
            Some(history_item::Value::Json("json-5".to_owned())),
        ]
    );
    assert_eq!(history.step.expect("step").num, -(1 << 40) - 1);

    let run = match decode_fixture("run").record_type {
        Some(record::RecordType::Run(run)) => run,
        other => panic!("expected run, got {other:?}"),
    };
    assert_eq!(run.runtime, -1020);
    assert_eq!(run.starting_step, -(1 << 40) - 14);
    assert_eq!(run.branch_point.expect("branch_point").value, 2.5);
    let start_time = run.start_time.expect("start_time");
    assert_eq!(
        (start_time.seconds, start_time.nanos),
        (1_700_000_000, 123_456_789)
    );

    let environment = match decode_fixture("environment").record_type {
        Some(record::RecordType::Environment(environment)) => environment,
        other => panic!("expected environment, got {other:?}"),
    };
    assert_eq!(environment.cpu_count, (1 << 31) + 16);
    let disk = environment
        .disk
        .get("key-0 \u{e9}\u{2603}")
        .expect("disk entry");
    assert_eq!((disk.total, disk.used), ((1 << 40) + 1, (1 << 40) + 2));
    assert_eq!(environment.gpu_nvidia[1].numa_node, Some((1 << 31) + 8));

    let zero = match decode_fixture("environment_optional_zero").record_type {
        Some(record::RecordType::Environment(environment)) => environment,
        other => panic!("expected environment, got {other:?}"),
    };
    assert_eq!(zero.gpu_nvidia[0].numa_node, Some(0));
}
