//! Helpers shared by the format crate's integration tests: deterministic payloads and files built
//! from them, with the expected position of every record.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used)]

use wandb_format::{FILE_HEADER, Framer, Recovery, ScanItem, Scanner};

/// A record written into a test file: where it is and what it holds.
#[derive(Clone, Debug)]
pub struct Placed {
    pub offset: u64,
    pub length: u64,
    pub payload: Vec<u8>,
}

impl Placed {
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A deterministic payload of `len` bytes that differs per `seed` (xorshift), never all zero.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// An encoded protobuf `Record` with `num = seed` and a pseudo-random `uuid` of `len` letters.
pub fn record_payload(seed: u64, len: usize) -> Vec<u8> {
    use prost::Message;
    let uuid = payload(seed, len)
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    wandb_format::proto::Record {
        num: seed as i64,
        uuid,
        ..Default::default()
    }
    .encode_to_vec()
}

/// Like [`build_file`], with payloads that decode as `Record`s (see [`record_payload`]).
pub fn build_record_file(sizes: &[usize]) -> (Vec<u8>, Vec<Placed>) {
    build_with(sizes, record_payload)
}

/// Frames payloads of the given sizes into a file image, returning the bytes and where each record is.
pub fn build_file(sizes: &[usize]) -> (Vec<u8>, Vec<Placed>) {
    build_with(sizes, payload)
}

fn build_with(sizes: &[usize], make: fn(u64, usize) -> Vec<u8>) -> (Vec<u8>, Vec<Placed>) {
    let mut bytes = FILE_HEADER.to_vec();
    let mut framer = Framer::new();
    let mut placed = Vec::new();
    for (idx, &size) in sizes.iter().enumerate() {
        let data = make(idx as u64 + 1, size);
        let offset = framer.frame(&data, &mut bytes);
        placed.push(Placed {
            offset,
            length: framer.offset() - offset,
            payload: data,
        });
    }
    (bytes, placed)
}

/// Sizes giving a file of several blocks with FULL, FIRST/MIDDLE/LAST records, an empty record, and
/// records ending with fewer than 7 bytes left in a block.
pub fn multi_block_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 10, 300, 32_700, 5, 70_000, 1, 2, 3];
    // Fill block so that exactly 7 bytes remain, forcing a zero-length FIRST chunk.
    sizes.extend([1000; 20]);
    sizes.extend([40_000, 12, 32_761, 32_762, 0, 90]);
    sizes.extend((0..60).map(|i| (i * 37) % 900));
    sizes
}

/// Everything a scan yields, or the damage that stopped it.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<(u64, u64, Vec<u8>)>,
    pub damage: Vec<wandb_format::Damage>,
    pub error: Option<wandb_format::Damage>,
}

pub fn scan_all(bytes: &[u8], recovery: Recovery) -> Outcome {
    let mut outcome = Outcome::default();
    for item in Scanner::new(bytes, 0, 7, recovery) {
        match item {
            Ok(ScanItem::Record(r)) => {
                outcome
                    .records
                    .push((r.offset, r.length, r.payload.into_owned()))
            }
            Ok(ScanItem::Damage(d)) => outcome.damage.push(d),
            Err(d) => outcome.error = Some(d),
        }
    }
    outcome
}
