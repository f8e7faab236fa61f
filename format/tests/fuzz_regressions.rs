//! Replays the committed fuzz inputs (`fuzz/regressions/<target>/`) through the fuzz target bodies on
//! stable Rust, and runs each body over a few thousand generated inputs, so `cargo test` catches what
//! the fuzzers found and a little more.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use wandb_format::fuzzing;

/// A fuzz target body.
type Body = fn(&[u8]);

const TARGETS: &[(&str, Body)] = &[
    ("read_arbitrary_bytes", fuzzing::read_arbitrary_bytes),
    ("write_read_roundtrip", fuzzing::write_read_roundtrip),
    ("json_parse", fuzzing::json_parse),
    ("wire_parity", fuzzing::wire_parity),
    ("follow_pauses", fuzzing::follow_pauses),
];

#[test]
fn committed_fuzz_inputs_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    for (target, body) in TARGETS {
        let dir = root.join(target);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            body(&data);
        }
    }
}

/// xorshift, so the generated inputs are the same on every run.
fn generated_inputs(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() as usize) % max_len;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn fuzz_bodies_hold_on_generated_inputs() {
    for (idx, (target, body)) in TARGETS.iter().enumerate() {
        for input in generated_inputs(0x5EED + idx as u64, 2000, 600) {
            // Report the input if the body panics, so it can be committed as a regression.
            let result = std::panic::catch_unwind(|| body(&input));
            assert!(result.is_ok(), "{target} failed on input {input:02x?}");
        }
    }
}
