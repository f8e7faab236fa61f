//! cargo-fuzz shim for `wandb_format::fuzzing::follow_pauses`; the body lives in the library.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wandb_format::fuzzing::follow_pauses(data));
