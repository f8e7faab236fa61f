//! cargo-fuzz shim for `wandb_archive::fuzzing::archive_read` and `archive_meta` (the seek
//! table, frame header, tar header and index readers); the bodies live in the library.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wandb_archive::fuzzing::archive_meta(data);
    wandb_archive::fuzzing::archive_read(data);
});
