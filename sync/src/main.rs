//! The `wandb-sync` binary: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    wandb_sync::run(wandb_sync::Cli::parse())
}
