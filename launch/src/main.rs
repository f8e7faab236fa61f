//! The `wandb-launch` binary: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    wandb_launch::cli::run(wandb_launch::cli::Cli::parse())
}
