//! cargo-fuzz shim for `wandb_format::fuzzing::wire_parity`; the body lives in the library.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wandb_format::fuzzing::wire_parity(data));
