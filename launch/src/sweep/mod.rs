//! `wandb-launch sweep ...`: W&B sweeps without W&B's server. A sweep is a state file in a
//! queue folder (`store`); a local controller (`controller`, run by `sweep controller ID` or by
//! `agent --sweeps`) proposes its runs with the `wandb-sweeps` core, enqueues each as a launch
//! item with the environment W&B's sweep agent gives a run (`files` writes the param files and
//! the two files `wandb-sync` reads), reads each run's metric from its `.wandb` file(s)
//! (`runs`), and stops the runs Hyperband names through the queue's cancel path.
//! `launch/QUEUE.md` ("Sweeps") documents the layout.

pub mod cli;
pub mod controller;
pub mod error;
pub mod files;
pub mod runs;
pub mod store;

pub use controller::{ControllerOptions, TickReport, run_controller, tick, tick_all};
pub use error::Error;
pub use store::{SweepDoc, SweepStore, find_sweep};
