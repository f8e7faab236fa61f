//! The command a sweep run is started with: W&B's `command:` template and its macros, expanded
//! into an argv the way W&B's agent (`wandb agent`) does it.
//!
//! An item that is exactly a macro (`${args}`) is replaced by zero or more arguments; any other
//! item is kept as written, after `${envvar:NAME}` inside it is replaced by the variable's value
//! (by `NAME` itself when unset, as the agent does). Parameter values are written with Python's
//! `str()` and `${args_json}` with `json.dumps` ([`crate::pyfmt`]), so a training script parses
//! the same text as under W&B's agent.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::pyfmt::{json_dumps, python_str};

/// The macros W&B's agent knows (as `${name}` command items).
pub const MACROS: &[&str] = &[
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
    "args_json_file",
    "args_append_hydra",
    "args_override_hydra",
];

/// The command W&B uses when the configuration has none.
pub const DEFAULT_COMMAND: &[&str] = &["${env}", "${interpreter}", "${program}", "${args}"];

/// The macro name of an item that is exactly `${name}`.
pub fn whole_macro(item: &str) -> Option<&str> {
    item.strip_prefix("${")?.strip_suffix('}')
}

/// What the expansion needs from outside: the agent fills these from its platform and
/// environment; `wandb-launch` from its own.
pub struct CommandContext<'a> {
    /// `${env}`: `Some("/usr/bin/env")` on Unix (W&B's choice), `None` to leave it out.
    pub env: Option<&'a str>,
    /// `${interpreter}`: W&B's agent uses `python`.
    pub interpreter: &'a str,
    /// `${args_json_file}`: the file the caller writes [`args_json`] to (see [`args_json_file_path`]).
    pub args_json_file: Option<&'a Path>,
    /// Environment look-up for `${envvar:NAME}`.
    pub getenv: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> CommandContext<'a> {
    /// W&B's agent's choices on Unix (`/usr/bin/env`, `python`), with no JSON file and the given
    /// environment look-up.
    pub fn unix(getenv: &'a dyn Fn(&str) -> Option<String>) -> CommandContext<'a> {
        CommandContext {
            env: Some("/usr/bin/env"),
            interpreter: "python",
            args_json_file: None,
            getenv,
        }
    }
}

/// `${args_json}`: the run's parameters as Python's `json.dumps` writes them.
pub fn args_json(params: &Map<String, Value>) -> String {
    json_dumps(&Value::Object(params.clone()))
}

/// Where W&B's agent puts the `${args_json_file}`: `<base>/wandb/sweep-<sweep>/config-<run>.json`,
/// `base` being `$WANDB_DIR` (or the working directory).
pub fn args_json_file_path(base: &Path, sweep_id: &str, run_id: &str) -> PathBuf {
    base.join("wandb")
        .join(format!("sweep-{sweep_id}"))
        .join(format!("config-{run_id}.json"))
}

/// Replaces every `${envvar:NAME}` (NAME of `A-Z`, `0-9`, `_`) in an item.
fn replace_envvars(item: &str, getenv: &dyn Fn(&str) -> Option<String>) -> String {
    const OPEN: &str = "${envvar:";
    let mut out = String::with_capacity(item.len());
    let mut rest = item;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if after[name_len..].starts_with('}') {
            let name = &after[..name_len];
            out.push_str(&rest[..start]);
            out.push_str(&getenv(name).unwrap_or_else(|| name.to_owned()));
            rest = &after[name_len + 1..];
        } else {
            out.push_str(&rest[..start + OPEN.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The argv of a run: the sweep's command (or W&B's default) with its macros expanded for the
/// run's parameters.
///
/// `${program}` without `program` and `${args_json_file}` without a file in `ctx` are errors.
pub fn expand(
    config: &SweepConfig,
    params: &Map<String, Value>,
    ctx: &CommandContext<'_>,
) -> Result<Vec<String>, SweepError> {
    let template: Vec<String> = match &config.command {
        Some(items) => items.clone(),
        None => DEFAULT_COMMAND.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut argv = Vec::new();
    for item in template {
        let item = replace_envvars(&item, ctx.getenv);
        let Some(name) = whole_macro(&item) else {
            argv.push(item);
            continue;
        };
        let pairs = params.iter().map(|(k, v)| (k, v, python_str(v)));
        match name {
            "env" => argv.extend(ctx.env.map(str::to_owned)),
            "interpreter" => argv.push(ctx.interpreter.to_owned()),
            "program" => match &config.program {
                Some(p) => argv.push(p.clone()),
                None => {
                    return Err(SweepError::CommandNeeds {
                        item,
                        needs: "`program` in the configuration",
                    });
                }
            },
            "args" => argv.extend(pairs.map(|(k, _, v)| format!("--{k}={v}"))),
            "args_no_hyphens" => argv.extend(pairs.map(|(k, _, v)| format!("{k}={v}"))),
            "args_no_equals" => {
                for (k, _, v) in pairs {
                    argv.push(format!("--{k}"));
                    argv.push(v);
                }
            }
            "args_no_boolean_flags" => {
                for (k, value, v) in pairs {
                    match value {
                        Value::Bool(true) => argv.push(format!("--{k}")),
                        Value::Bool(false) => {}
                        _ => argv.push(format!("--{k}={v}")),
                    }
                }
            }
            "args_append_hydra" => argv.extend(pairs.map(|(k, _, v)| format!("+{k}={v}"))),
            "args_override_hydra" => argv.extend(pairs.map(|(k, _, v)| format!("++{k}={v}"))),
            "args_json" => argv.push(args_json(params)),
            "args_json_file" => match ctx.args_json_file {
                Some(path) => argv.push(path.to_string_lossy().into_owned()),
                None => {
                    return Err(SweepError::CommandNeeds {
                        item,
                        needs: "a file for the JSON arguments",
                    });
                }
            },
            // The configuration refused any other macro; the agent leaves an unknown one out.
            _ => {}
        }
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envvars_replaced_inside_items() {
        let env = |name: &str| (name == "HOME_X").then(|| "/h".to_owned());
        assert_eq!(replace_envvars("a=${envvar:HOME_X}/b", &env), "a=/h/b");
        assert_eq!(replace_envvars("${envvar:NOPE}", &env), "NOPE");
        assert_eq!(replace_envvars("${envvar:lower}", &env), "${envvar:lower}");
    }
}
