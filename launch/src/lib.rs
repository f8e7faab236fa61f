//! `wandb-launch`: W&B Launch without a W&B server. A job queue that lives in a folder (local,
//! or shared over NFS, Lustre, GPFS), an agent that claims its items and runs them on a
//! resource (`local-process`, `slurm`), and the job's environment exactly as W&B Launch hands
//! it over (`WANDB_CONFIG`, `WANDB_RUN_ID`, ...), so an unmodified script finds its config in
//! `wandb.config`.
//!
//! The parts map onto W&B's launch library: [`queue::Queue::add`] is `launch_add`, the `run`
//! command is `launch` (synchronous), and the agent is `LaunchAgent`. The queue's layout, its
//! state machine and its guarantees are written down in `launch/QUEUE.md`.

/// `println!` for the CLI's output: a closed standard output (`| head`) ends the command quietly
/// with status 0 instead of a panic, another write error ends it with status 1 (`cli::print_out`).
macro_rules! out {
    () => {
        $crate::cli::print_out(::std::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::print_out(::std::format_args!($($arg)*))
    };
}

pub mod agent;
pub mod cli;
pub mod env;
pub mod error;
mod fsutil;
pub mod item;
pub mod job;
pub mod lease;
pub mod local;
pub mod queue;
pub mod resource;
pub mod runlink;
pub mod slurm;
pub mod sweep;
pub mod wrapper;

pub use crate::error::{Error, Result};
pub use crate::local::LocalProcess;
pub use crate::resource::{
    JobOutcome, PreparedJob, Resource, ResourceOptions, RunningJob, resource_for,
    validate_resource_args,
};
