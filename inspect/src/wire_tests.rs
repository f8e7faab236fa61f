//! Tests that the fast reader (`wire.rs`, `render.rs`) agrees with prost: on every record of the SDK
//! fixtures, on the SDK-written all-fields records, and on many deterministic mutations of them.
//!
//! These are unit tests (not in `tests/`) because the fast reader is private to the crate.

use std::path::{Path, PathBuf};

use prost::Message as _;
use wandb_format::proto::Record;
use wandb_format::{LogFile, Recovery, ScanItem};

use crate::jsonout::{NonFinite, Style};
use crate::render::Renderer;
use crate::wire::{head, validate_record};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate should be inside the workspace")
        .to_path_buf()
}

/// Every record payload of the SDK fixtures, plus the all-fields records.
fn corpus() -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let fixtures = workspace().join("fixtures/sdk-0.31.0");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for folder in files {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "wandb") {
                let file = LogFile::open(&path).unwrap();
                for item in file.scan(Recovery::Strict) {
                    if let ScanItem::Record(raw) = item.unwrap() {
                        payloads.push(raw.payload.into_owned());
                    }
                }
            }
        }
    }
    payloads.extend(all_fields().into_iter().map(|(_, bytes)| bytes));
    payloads
}

fn all_fields() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = workspace().join("format/tests/fixtures/all_fields");
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "all-fields fixtures missing");
    files
}

fn render_json(payload: &[u8]) -> Result<String, crate::wire::WireError> {
    let mut renderer = Renderer::new(Style::json(NonFinite::String));
    let head = head(payload)?;
    let mut out = String::from("{\"num\":0");
    renderer.json_record_fields(&mut out, payload, &head)?;
    out.push('}');
    Ok(out)
}

fn check_agreement(payload: &[u8]) {
    let prost_ok = Record::decode(payload).is_ok();
    let fast_ok = validate_record(payload).is_ok();
    assert_eq!(
        fast_ok, prost_ok,
        "validate and prost disagree on {payload:02x?}"
    );
    let rendered = render_json(payload);
    assert_eq!(
        rendered.is_ok(),
        prost_ok,
        "render and prost disagree on {payload:02x?}"
    );
    if let Ok(text) = rendered {
        // Whatever the bytes, the output is JSON (the default style writes no bare NaN).
        assert!(
            wandb_format::json::parse(&text).is_ok() && !text.contains(":NaN"),
            "invalid JSON {text}"
        );
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn fixtures_and_all_fields_records_are_valid() {
    for payload in corpus() {
        assert!(validate_record(&payload).is_ok());
        check_agreement(&payload);
    }
}

#[test]
fn every_all_fields_record_renders_without_unknown_fields() {
    for (path, bytes) in all_fields() {
        let text = render_json(&bytes).unwrap();
        let value = wandb_format::json::parse(&text).unwrap();
        let mut stack = vec![(String::new(), &value)];
        while let Some((at, value)) = stack.pop() {
            if let wandb_format::json::Value::Object(map) = value {
                for (key, inner) in map.iter() {
                    assert!(
                        !key.bytes().all(|b| b.is_ascii_digit()),
                        "{}: field {at}.{key} is not in the schema",
                        path.display()
                    );
                    stack.push((format!("{at}.{key}"), inner));
                }
            }
        }
    }
}

#[test]
fn mutated_records_are_judged_like_prost_does() {
    let corpus = corpus();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut n_invalid = 0;
    for round in 0..40_000 {
        let base = &corpus[rng.below(corpus.len())];
        let mut bytes = base.clone();
        match round % 6 {
            0 => {
                // Flip one bit.
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            1 => {
                // Truncate.
                bytes.truncate(rng.below(bytes.len()));
            }
            2 => {
                // Overwrite a byte with a random one.
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            3 => {
                // Insert random bytes.
                let at = rng.below(bytes.len() + 1);
                let n = 1 + rng.below(4);
                for _ in 0..n {
                    bytes.insert(at, rng.next() as u8);
                }
            }
            4 => {
                // Append a field with a random key and value.
                let extra: Vec<u8> = (0..1 + rng.below(12)).map(|_| rng.next() as u8).collect();
                bytes.extend_from_slice(&extra);
            }
            _ => {
                // Several bit flips.
                for _ in 0..1 + rng.below(5) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
        }
        if Record::decode(bytes.as_slice()).is_err() {
            n_invalid += 1;
        }
        check_agreement(&bytes);
    }
    assert!(
        n_invalid > 1_000,
        "mutations should break records: {n_invalid}"
    );
}

#[test]
fn crafted_edge_cases_are_judged_like_prost_does() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        // num as a varint, then an unknown group that closes properly.
        vec![0x08, 0x01, 0x2B, 0x08, 0x01, 0x2C],
        // Unknown group closed by another field number.
        vec![0x2B, 0x34],
        // Stray end-group.
        vec![0x2C],
        // Field number 0.
        vec![0x00, 0x00],
        // Wire type 6.
        vec![0x0E],
        // `num` sent as length-delimited.
        vec![0x0A, 0x00],
        // An overlong varint.
        vec![
            0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02,
        ],
        // History (2) whose item (1) holds invalid UTF-8 in `key`.
        vec![0x12, 0x05, 0x0A, 0x03, 0x0A, 0x01, 0xFF],
        // Environment (26) with a `disk` map entry (20) sent with wire type varint: prost reads it
        // as length-delimited anyway.
        vec![0xD2, 0x01, 0x03, 0xA0, 0x01, 0x00],
        vec![0xD2, 0x01, 0x02, 0xA0, 0x01],
        // A packed repeated bool... not in the schema; packed `tags` strings are invalid.
        vec![0x8A, 0x01, 0x04, 0x52, 0x02, 0x61, 0x62],
    ];
    for case in cases {
        check_agreement(&case);
    }
    // Deep nesting of unknown groups hits prost's recursion limit.
    for depth in [98, 99, 100, 101, 150] {
        let mut bytes = vec![0x2B; depth];
        bytes.extend(std::iter::repeat_n(0x2C, depth));
        check_agreement(&bytes);
    }
}

#[test]
fn encoded_records_render_like_the_sdk_tool_shows_them() {
    use wandb_format::proto::{HistoryItem, HistoryRecord, HistoryStep, record::RecordType};
    let item = |path: &[&str], json: &str| HistoryItem {
        nested_key: path.iter().map(|part| part.to_string()).collect(),
        value_json: json.to_string(),
        ..Default::default()
    };
    let record = Record {
        num: 7,
        record_type: Some(RecordType::History(HistoryRecord {
            item: vec![
                item(&["_step"], "3"),
                item(&["train", "loss"], "NaN"),
                item(&["img"], r#"{"_type": "image-file", "size": [1, 2]}"#),
            ],
            step: Some(HistoryStep { num: 3 }),
            info: None,
        })),
        ..Default::default()
    };
    let text = render_json(&record.encode_to_vec()).unwrap();
    assert_eq!(
        text,
        r#"{"num":0,"history":{"item":{"_step":3,"train.loss":"NaN","img":{"_type":"image-file","size":[1,2]}},"step":{"num":3}}}"#
    );
}
