//! Replays the committed inputs of the `archive_read` fuzz target (`fuzz/regressions/archive_read/`)
//! on stable Rust, and runs the bodies over mutations of them, so `cargo test` catches what the
//! fuzzer found and a little more.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use wandb_archive::fuzzing;

#[test]
fn committed_archive_inputs_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/archive_read");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzzing::archive_meta(&data);
        fuzzing::archive_read(&data);
        // Truncations and byte flips of each input.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut mutated = data.clone();
            let at = (x as usize) % data.len().max(1);
            if x & 1 == 0 {
                mutated.truncate(at);
            } else if let Some(b) = mutated.get_mut(at) {
                *b ^= 1 << ((x >> 8) % 8);
            }
            fuzzing::archive_meta(&mutated);
            fuzzing::archive_read(&mutated);
        }
        n += 1;
    }
    assert!(n >= 3);
}
