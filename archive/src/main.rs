//! `wandb-archive`: pack run folders into one seekable `tar.zst`, list, verify and unpack it.
//!
//! All logic lives in the `wandb_archive` library (`cli` module).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = wandb_archive::cli::Cli::parse();
    ExitCode::from(wandb_archive::cli::run(&cli))
}
