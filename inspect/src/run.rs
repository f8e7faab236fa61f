//! Runs a parsed command line: resolves the inputs, runs the command over them (in parallel, output
//! in input order), reports per-file errors on stderr and combines the exit status.
//!
//! Per-file problems never stop the other files: each is reported when its turn comes and raises
//! the exit status (see [`Exit`]). A write error on stdout stops everything; a closed pipe
//! (`BrokenPipe`, as from `| head`) is the reader's choice and ends the run quietly with status 0.

use std::io::{self, BufWriter, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    Cli, Command, DumpArgs, HistoryArgs, PlotArgs, ReportArgs, SummaryArgs, VerifyArgs,
};
use crate::console::{self, Console};
use crate::damage::Reported;
use crate::dump::{self, DumpOptions, TypeFilter};
use crate::error::Error;
use crate::exit::Exit;
use crate::history::{self, HistoryOptions};
use crate::parallel::{Delivery, for_each_ordered};
use crate::summary::{self, SummaryOptions};
use crate::verify::{self, VerifyOptions};
use crate::{follow, inputs};

/// Runs `cli` with the process's stdout and stderr (stdout locked and buffered; colour where
/// [`Console`] says) and returns the exit status.
pub fn run_stdio(cli: &Cli) -> Exit {
    let (out_color, err_color) = console::stdio_colors();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut err = io::stderr().lock();
    let exit = run(
        cli,
        &mut Console::new(&mut out, &mut err).with_colors(out_color, err_color),
    );
    // A flush error here was already reported by `run`, or is a closed pipe.
    let _ = out.flush();
    exit
}

/// Runs `cli`, writing data to the console's stdout and diagnostics to its stderr.
pub fn run(cli: &Cli, console: &mut Console<'_>) -> Exit {
    let result = match &cli.command {
        Command::Dump(args) => dump_command(args, console),
        Command::Verify(args) => verify_command(args, console),
        Command::Summary(args) => summary_command(args, console),
        Command::History(args) => history_command(args, console),
        Command::Plot(args) => plot_command(args, console),
        Command::Report(args) => report_command(args, console),
    };
    let result = result.and_then(|exit| console.flush_out().map(|()| exit));
    match result {
        Ok(exit) => exit,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(error) => {
            console.error(&format_args!("writing to stdout: {error}"));
            Exit::Error
        }
    }
}

/// The files for `paths`. Errors are reported and make the status [`Exit::Error`]; inputs
/// holding no run are warnings, and when nothing at all was found the status is 1.
pub(crate) fn resolve(paths: &[PathBuf], console: &mut Console<'_>) -> (Vec<PathBuf>, Exit) {
    let resolved = inputs::resolve(paths);
    let mut exit = Exit::Ok;
    for error in &resolved.errors {
        console.error(error);
        exit = Exit::Error;
    }
    for warning in &resolved.warnings {
        console.warning(warning);
    }
    if resolved.files.is_empty() && exit == Exit::Ok {
        console.error(&"no .wandb file found");
        exit = Exit::Damage;
    }
    (resolved.files, exit)
}

fn usage(console: &mut Console<'_>, message: String) -> io::Result<Exit> {
    console.error(&Error::Usage(message));
    Ok(Exit::Error)
}

fn dump_command(args: &DumpArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let filter = match TypeFilter::parse(&args.types) {
        Ok(filter) => filter,
        Err(error) => {
            console.error(&error);
            return Ok(Exit::Error);
        }
    };
    let (files, mut exit) = resolve(&args.paths, console);
    let mut options = DumpOptions {
        json: args.json,
        filter,
        non_finite: args.non_finite,
        headers: !args.json && files.len() > 1,
        color: console.out_color(),
    };
    if args.follow {
        if exit != Exit::Ok {
            return Ok(exit);
        }
        let [file] = files.as_slice() else {
            return usage(
                console,
                format!("--follow takes exactly one file, got {}", files.len()),
            );
        };
        options.headers = false;
        let poll = Duration::from_millis(args.poll_ms.max(1));
        return follow::follow(file, options, poll, console);
    }
    // One file: its records in parallel; several: the files in parallel (see `batch.rs`).
    let parallel = files.len() == 1;
    for_each_ordered(
        &files,
        |path, sink| dump::dump_file(path, options, parallel, sink),
        |delivery| {
            match delivery {
                Delivery::Data(chunk) => console.write_out(chunk.as_bytes())?,
                Delivery::Done(result) => {
                    if let Some(error) = result.error {
                        console.error(&error);
                        exit = exit.merge(Exit::Error);
                    }
                    exit = exit.merge(result.tally.exit());
                }
                Delivery::Lost => exit = exit.merge(lost(console)),
            }
            Ok(())
        },
    )?;
    Ok(exit)
}

fn verify_command(args: &VerifyArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let (files, mut exit) = resolve(&args.paths, console);
    let options = VerifyOptions {
        strict: args.strict,
        json: args.json,
        color: console.out_color(),
    };
    let parallel = files.len() == 1;
    for_each_ordered(
        &files,
        |path, sink| verify::verify_file(path, options, parallel, sink),
        |delivery| {
            match delivery {
                Delivery::Data(chunk) => console.write_out(chunk.as_bytes())?,
                Delivery::Done(result) => {
                    if let Some(error) = result.error {
                        console.error(&error);
                        exit = exit.merge(Exit::Error);
                    }
                    exit = exit.merge(result.tally.exit());
                }
                Delivery::Lost => exit = exit.merge(lost(console)),
            }
            Ok(())
        },
    )?;
    Ok(exit)
}

fn summary_command(args: &SummaryArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let (files, mut exit) = resolve(&args.paths, console);
    let options = SummaryOptions {
        json: args.json,
        non_finite: args.non_finite,
    };
    for_each_ordered(
        &files,
        |path, sink| summary::summary_file(path, options, sink),
        |delivery| {
            match delivery {
                Delivery::Data(chunk) => console.write_out(chunk.as_bytes())?,
                Delivery::Done(result) => {
                    if let Some(error) = result.error {
                        console.error(&error);
                        exit = exit.merge(Exit::Error);
                    }
                    exit = exit.merge(result.tally.exit());
                }
                Delivery::Lost => exit = exit.merge(lost(console)),
            }
            Ok(())
        },
    )?;
    Ok(exit)
}

fn history_command(args: &HistoryArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let (files, exit) = resolve(std::slice::from_ref(&args.path), console);
    if exit != Exit::Ok {
        return Ok(exit);
    }
    let [file] = files.as_slice() else {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        return usage(
            console,
            format!(
                "history reads one file, but {} holds {}: {}",
                args.path.display(),
                files.len(),
                names.join(", ")
            ),
        );
    };
    let name = file.display().to_string();
    let options = HistoryOptions {
        format: args.format,
        keys: args.keys.iter().map(|key| key.trim().to_string()).collect(),
        non_finite: args.non_finite,
    };
    let mut exit = Exit::Ok;
    for_each_ordered(
        &files,
        |path, sink| history::history_file(path, &options, true, sink),
        |delivery| {
            match delivery {
                Delivery::Data(chunk) => console.write_out(chunk.as_bytes())?,
                Delivery::Done(result) => {
                    for reported in &result.damage {
                        report_damage(console, &name, reported);
                    }
                    if let Some(error) = result.error {
                        console.error(&error);
                        exit = exit.merge(Exit::Error);
                    }
                    exit = exit.merge(result.tally.exit());
                }
                Delivery::Lost => exit = exit.merge(lost(console)),
            }
            Ok(())
        },
    )?;
    Ok(exit)
}

fn plot_command(args: &PlotArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let (files, exit) = resolve(&args.paths, console);
    if files.is_empty() {
        return Ok(exit);
    }
    Ok(exit.merge(crate::plot::plot_files(args, &files, console)?))
}

fn report_command(args: &ReportArgs, console: &mut Console<'_>) -> io::Result<Exit> {
    let (files, exit) = resolve(&args.paths, console);
    if files.is_empty() {
        return Ok(exit);
    }
    Ok(exit.merge(crate::report::report_files(args, &files, console)?))
}

/// Reports a damaged span on stderr: a torn tail as a warning, other damage as an error.
pub(crate) fn report_damage(console: &mut Console<'_>, file: &str, reported: &Reported) {
    if reported.torn_tail {
        console.warning(&format_args!("{file}: torn tail: {}", reported.describe()));
    } else {
        console.error(&format_args!("{file}: damage: {}", reported.describe()));
    }
}

fn lost(console: &mut Console<'_>) -> Exit {
    console.error(&"internal error: a worker stopped without a result");
    Exit::Error
}
