//! Random search: each parameter drawn independently from its distribution, as W&B's
//! `random_search.py` (`ppf` of a uniform number).
//!
//! Draw `index` of a sweep uses its own generator seeded from the sweep's seed and the index, so
//! the same seed gives the same sequence, and a controller that restarts from its saved state
//! goes on with the draws it would have made.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde_json::{Map, Value};

use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::params::{flatten, unflatten};

/// The generator for proposal `index` of a sweep seeded with `seed`.
pub(crate) fn rng_for(seed: u64, index: u64) -> Pcg64 {
    // SplitMix64's finaliser spreads (seed, index) pairs over the whole seed space.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64::seed_from_u64(z ^ (z >> 31))
}

/// The parameters of random proposal `index` of a sweep seeded with `seed`.
pub fn next(config: &SweepConfig, seed: u64, index: u64) -> Result<Map<String, Value>, SweepError> {
    let mut rng = rng_for(seed, index);
    let values = flatten(&config.parameters)
        .into_iter()
        .map(|p| (p.path.clone(), p.dist.sample(&mut rng)))
        .collect();
    unflatten(values)
}
