//! `wandb-inspect`: dump, verify, summarize and export W&B `.wandb` record files.
//!
//! All logic lives in the `wandb_inspect` library; see its docs for the commands and the output
//! formats.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = wandb_inspect::Cli::parse();
    wandb_inspect::run_stdio(&cli).into()
}
