//! `wandb-inspect`: dump, verify, summarize and export W&B `.wandb` record files, whether written
//! by the official SDK or by this workspace's logger, complete, still growing, or damaged.
//!
//! The binary is a thin shell over [`run()`]; tests and benchmarks call the library directly:
//!
//! ```
//! use clap::Parser as _;
//! use wandb_inspect::{Cli, Console, Exit, run};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("run-x.wandb");
//! let mut writer = wandb_format::Writer::create(&path).unwrap();
//! writer.append_record(&wandb_format::proto::Record { num: 1, ..Default::default() }).unwrap();
//! writer.close().unwrap();
//!
//! let cli = Cli::try_parse_from(["wandb-inspect", "verify", path.to_str().unwrap()]).unwrap();
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let exit = run(&cli, &mut Console::new(&mut out, &mut err));
//! assert_eq!(exit, Exit::Ok);
//! assert!(String::from_utf8(out).unwrap().ends_with(": OK (1 record, 16 bytes)\n"));
//! ```
//!
//! # Commands
//!
//! * `dump PATH...` prints one line per record: `OFFSET NUM TYPE key=value ...`. `--json` prints
//!   JSON Lines instead, `--type history,summary` filters by record type, and `--follow` keeps
//!   printing while the file grows, until the run's exit record (exit 0) or Ctrl-C (exit 130).
//! * `verify PATH...` checks the header, every chunk's checksum, chunk order and record decoding,
//!   prints each damaged span and a status line per file.
//! * `summary PATH...` describes each run: id, project, entity, name, start time, duration, exit
//!   code, step range, metric names, final summary, counts and bytes per record type.
//! * `history PATH --format csv|jsonl [--keys a,b]` exports the history rows as a table.
//! * `plot PATH... -o out.png|out.svg [--metrics 'train/*'] [--x KEY] [--smooth W] [--log-y]`
//!   draws line charts of history metrics, a panel per metric and a line per run (`plot/`).
//! * `report PATH... -o report.html [--follow]` writes one self-contained HTML page: charts
//!   grouped by prefix, system metrics, summary, config, console, images, damage (`report/`).
//!
//! Inputs may be files, run folders, `wandb/` folders and glob patterns, in any mix (see
//! `inputs.rs`). Several files are processed in parallel and printed in input order.
//!
//! # Exit status
//!
//! See [`Exit`]: 0 when no damage was found, 1 when some file is damaged, 2 for usage errors and
//! unreadable inputs, 130 when `--follow` is interrupted. A **torn tail** (the file ends inside a
//! chunk or a multi-chunk record, or inside its header: what a crash or a still-running writer
//! leaves) is reported but is only a warning, except under `verify --strict`, where it is damage.
//! Any other damaged span, including garbage appended after the last record, is damage.
//!
//! # `dump --json`
//!
//! One JSON object per line, in file order. A record:
//!
//! ```json
//! {"file":"run-x.wandb","offset":2109,"length":196,"num":10,"type":"history",
//!  "history":{"item":{"_runtime":0.51,"_step":0,"acc":0.1,"train.loss":"NaN"},"step":{"num":0}},
//!  "_info":{"stream_id":"x"}}
//! ```
//!
//! * `offset` is the record's first chunk header in the file, `length` its bytes on disk, `num`
//!   its `Record.num` (0 when absent), `type` the proto field name of its record type (`history`,
//!   `summary`, `run`, `exit`, `output_raw`, ..., or `unknown`). The record-type message follows
//!   under that name, then the record's other fields (`control`, `uuid`, `_info`).
//! * Fields keep their proto names and come in the order they are stored; absent fields are left
//!   out. Enums are names (`"WANDB"`), timestamps RFC 3339 strings, 64-bit integers numbers, bytes
//!   base64 strings, unknown fields appear under their field number.
//! * A repeated field of key/value items (history `item`, summary and config `update`, stats
//!   `item`, settings, ...) is one object from key to value; a `nested_key` path is joined with
//!   `.`. `remove` lists are arrays of keys. Every `value_json` is decoded into a JSON value
//!   (text that is not valid JSON stays a string).
//! * `NaN`, `Infinity` and `-Infinity` are written as the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"` by default: W&B stores them as bare tokens, which standard JSON forbids and
//!   `jq` rejects; strings are what protobuf's JSON mapping and W&B's own `wandb leet inspect
//!   --json` use, every parser accepts them, and Python's `float()` turns them back into numbers
//!   (`pandas.read_json(..., lines=True)` reads such a column as float64 with NaN and inf, checked
//!   with pandas 3.1). `--non-finite bare` writes W&B's bare tokens (fine for Python's `json` and
//!   pandas, not for `jq`), `--non-finite null` writes `null`.
//! * A damaged span is
//!   `{"type":"damage","file":..,"offset":..,"length":..,"reason":..,"torn_tail":false}`, printed
//!   where it occurs, whatever `--type` says.
//!
//! The list of fields may grow; scripts should ignore fields they do not know.
//!
//! # Performance
//!
//! Records are read from a memory map and walked straight from their protobuf bytes with a schema
//! generated from the SDK's descriptors (`schema_gen.rs`), without building prost structs; prost
//! is consulted only to word the error for a record that does not decode. With one input file,
//! its records are decoded and rendered in parallel batches (`batch.rs`); with several, the files
//! are processed in parallel (`parallel.rs`). Output is always in input order. Heap memory does not
//! grow with the file: nothing collects records, batches are bounded, output goes out in 64 KiB
//! chunks (the memory map's pages are the page cache's, not the heap's). `benches/inspect.rs`
//! measures throughput on an 80 MB file.

mod batch;
mod cli;
mod console;
mod damage;
mod dump;
mod error;
mod exit;
mod follow;
mod history;
mod inputs;
mod items;
mod jsonout;
mod parallel;
mod plot;
mod render;
mod report;
mod run;
mod schema;
#[rustfmt::skip]
mod schema_gen;
mod summary;
mod verify;
mod wire;
#[cfg(test)]
mod wire_tests;

pub use crate::cli::{
    Cli, Command, DumpArgs, HistoryArgs, PlotArgs, ReportArgs, SummaryArgs, TableFormat, VerifyArgs,
};
pub use crate::console::Console;
pub use crate::error::{Error, Result};
pub use crate::exit::Exit;
pub use crate::jsonout::NonFinite;
pub use crate::run::{run, run_stdio};
