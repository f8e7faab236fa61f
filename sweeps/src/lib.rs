//! The pure, I/O-free core of offline W&B sweeps: the sweep configuration, the search methods
//! (grid, random, bayes) and Hyperband early termination, as W&B's open-source sweep
//! controller (`wandb/sweeps`) implements them, plus the sweep state that `wandb-launch` saves
//! between calls. Nothing here reads a file, a clock or the environment.
//!
//! ```
//! use wandb_sweeps::{SweepConfig, Sweep, SweepOptions};
//!
//! let config = SweepConfig::from_yaml_str(
//!     "program: train.py\nmethod: grid\nparameters:\n  lr:\n    values: [0.1, 0.01]\n",
//!     Some("sweep.yaml"),
//! )?;
//! let mut sweep = Sweep::new("abc123", config, SweepOptions::default());
//! let proposal = sweep.next_run(&[])?.expect("a grid of two has a first run");
//! assert_eq!(proposal.params["lr"], 0.1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `sweeps/SWEEPS.md` says what is supported and where this differs from W&B's server.

pub mod bayes;
pub mod command;
pub mod config;
mod doc;
pub mod error;
pub mod grid;
pub mod hyperband;
pub mod params;
pub mod pyfmt;
pub mod random;
pub mod run;
pub mod sweep;

pub use command::{CommandContext, expand as expand_command};
pub use config::{
    Brackets, Distribution, Goal, Hyperband, Impute, Method, Metric, Parameter, Quantum,
    SweepConfig,
};
pub use error::{ConfigError, ConfigErrorKind, SweepError};
pub use run::{RunId, RunState, SweepRun};
pub use sweep::{BestRun, Proposal, RunRecord, Sweep, SweepOptions, SweepState, SweepStatus};
