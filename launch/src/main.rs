//! The `wandb-launch` binary: parses the command line and hands it to the library.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
