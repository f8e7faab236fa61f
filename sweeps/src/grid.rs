//! Grid search: every combination of the parameters' values once, as W&B's `grid_search.py`.
//!
//! Parameters are ordered by name (nested ones flattened, names sorted at each level); the last
//! one varies fastest, as Python's `itertools.product`. `int_uniform` gives `min..=max` and
//! `q_uniform` NumPy's `arange(min, max, q)`. A combination is taken when a run (or an issued
//! proposal) already has those values, compared by value so `3000000.0` matches `3000000`. With
//! `randomize`, the order is a permutation shuffled by a seeded generator, the same on every call.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64;
use serde_json::{Map, Value};

use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::params::{canonical_key, flatten, lookup, unflatten};

/// The number of combinations in the grid (saturating; at most [`crate::config::MAX_GRID`] for a
/// validated grid configuration).
pub fn grid_size(config: &SweepConfig) -> u64 {
    flatten(&config.parameters)
        .iter()
        .map(|p| p.dist.grid_len().unwrap_or(0))
        .fold(1u64, u64::saturating_mul)
}

/// The first combination in grid order that no run in `taken` has, or `None` when every one is
/// taken. `randomize` is the seed of a shuffled order.
pub fn next(
    config: &SweepConfig,
    taken: &[&Map<String, Value>],
    randomize: Option<u64>,
) -> Result<Option<Map<String, Value>>, SweepError> {
    let flat = flatten(&config.parameters);
    let size = grid_size(config);
    if size > crate::config::MAX_GRID {
        return Err(SweepError::RunParams {
            run: String::new(),
            param: "parameters".to_owned(),
            reason: format!("a grid of {size} combinations is too large"),
        });
    }
    let mut columns = Vec::with_capacity(flat.len());
    for param in &flat {
        let values = param
            .dist
            .grid_values()
            .ok_or_else(|| SweepError::RunParams {
                run: String::new(),
                param: param.dotted(),
                reason: format!("{} has no grid", param.dist.name()),
            })?;
        let keys: Vec<String> = values.iter().map(canonical_key).collect();
        columns.push((values, keys));
    }
    let seen: HashSet<Vec<String>> = taken
        .iter()
        .map(|params| {
            flat.iter()
                .map(|p| {
                    lookup(params, &p.path)
                        .map(canonical_key)
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let total = columns
        .iter()
        .map(|(v, _)| v.len() as u64)
        .fold(1u64, u64::saturating_mul);
    let combo = |mut index: u64| -> Vec<usize> {
        let mut picks = vec![0usize; columns.len()];
        for (slot, (values, _)) in columns.iter().enumerate().rev() {
            let n = values.len() as u64;
            picks[slot] = (index % n) as usize;
            index /= n;
        }
        picks
    };
    let key_of = |picks: &[usize]| -> Vec<String> {
        picks
            .iter()
            .zip(&columns)
            .map(|(&i, (_, keys))| keys[i].clone())
            .collect()
    };
    let build = |picks: &[usize]| {
        unflatten(
            picks
                .iter()
                .zip(&columns)
                .zip(&flat)
                .map(|((&i, (values, _)), p)| (p.path.clone(), values[i].clone()))
                .collect(),
        )
    };
    match randomize {
        None => {
            for index in 0..total {
                let picks = combo(index);
                if !seen.contains(&key_of(&picks)) {
                    return build(&picks).map(Some);
                }
            }
        }
        Some(seed) => {
            let mut order: Vec<u64> = (0..total).collect();
            order.shuffle(&mut Pcg64::seed_from_u64(seed));
            for index in order {
                let picks = combo(index);
                if !seen.contains(&key_of(&picks)) {
                    return build(&picks).map(Some);
                }
            }
        }
    }
    Ok(None)
}
