//! Random run ids: 8 characters of `[a-z0-9]`, as W&B generates them.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The alphabet of run ids (base 36).
const ID_CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of generated run ids.
pub const RUN_ID_LEN: usize = 8;

/// A new run id: 8 characters drawn uniformly from `[a-z0-9]` with the operating system's
/// random source.
pub fn generate_run_id() -> String {
    generate_id(RUN_ID_LEN)
}

/// A random base-36 string of `len` characters (uniform: rejection sampling over OS randomness).
pub fn generate_id(len: usize) -> String {
    let mut id = String::with_capacity(len);
    // 252 = 7 * 36: bytes at or above it would bias the result.
    const LIMIT: u8 = 252;
    let mut buf = [0u8; 32];
    while id.len() < len {
        fill_random(&mut buf);
        for byte in buf {
            if byte < LIMIT && id.len() < len {
                id.push(char::from(ID_CHARS[usize::from(byte % 36)]));
            }
        }
    }
    id
}

/// Fills `buf` from the OS; should that ever fail, falls back to std's randomly keyed hasher
/// (seeded from the OS once per process) mixed with a counter and the clock.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    for chunk in buf.chunks_mut(8) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let word = state.hash_one((n, nanos, std::process::id())).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn shape() {
        for _ in 0..100 {
            let id = generate_run_id();
            assert_eq!(id.len(), 8);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{id}"
            );
        }
        assert_eq!(generate_id(0), "");
        assert_eq!(generate_id(100).len(), 100);
    }

    #[test]
    fn distinct_and_covering() {
        let ids: HashSet<String> = (0..2000).map(|_| generate_run_id()).collect();
        assert_eq!(ids.len(), 2000);
        let used: HashSet<char> = ids.iter().flat_map(|id| id.chars()).collect();
        assert_eq!(used.len(), 36);
    }

    #[test]
    fn fallback_fills() {
        let mut buf = [0u8; 20];
        fill_random(&mut buf);
        assert_eq!(buf.len(), 20);
    }
}
