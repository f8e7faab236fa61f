//! The pure, I/O-free core of offline W&B sweeps.
