//! The files a sweep puts in its runs' `wandb/` folder, `<WANDB_DIR>/wandb/sweep-<id>/`, as the
//! official SDK's sweep agent (`wandb/wandb_agent.py`) does, plus the two files `wandb-sync`
//! reads to create the sweep on W&B:
//!
//! - `config-<run id>.yaml`: the run's parameters as `{key: {value: v}}` after a
//!   `wandb_version: 1` line, written the way `config_util.save_config_file_from_dict` writes
//!   it (PyYAML block style); `WANDB_SWEEP_PARAM_PATH` names it, and the SDK's `wandb.init`
//!   loads it into `wandb.config`.
//! - `config-<run id>.json`: `${args_json_file}`, only when the command has that macro.
//! - `sweep.yaml`: the configuration as `UpsertSweep` sends it
//!   ([`wandb_sweeps::SweepConfig::upsert_yaml`]).
//! - `sweep.json`: `{"id", "entity", "project", "method", "created_at"}`.
//!
//! Every file is written atomically (a temp file renamed into place).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use wandb_sweeps::pyfmt::python_float;

use super::error::{Error, Result};
use super::store::SweepDoc;

/// Creates `dir` and writes `bytes` to `dir/name` atomically.
fn write_in(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create sweep folder", e))?;
    let path = dir.join(name);
    crate::fsutil::write_atomic(&path, bytes)?;
    Ok(path)
}

/// Writes `sweep.yaml` and `sweep.json` for `wandb-sync` (idempotent: the same content each
/// time).
pub fn write_sweep_files(doc: &SweepDoc) -> Result<()> {
    let dir = doc.sweep_dir();
    write_in(
        &dir,
        "sweep.yaml",
        doc.sweep.config.upsert_yaml().as_bytes(),
    )?;
    let meta = json!({
        "id": doc.sweep.id,
        "entity": doc.entity,
        "project": doc.project,
        "method": doc.sweep.config.method.as_str(),
        "created_at": doc.created_at,
    });
    let mut text = serde_json::to_string_pretty(&meta).unwrap_or_else(|_| meta.to_string());
    text.push('\n');
    write_in(&dir, "sweep.json", text.as_bytes())?;
    Ok(())
}

/// Writes the run's `config-<run id>.yaml` (W&B's form, `{key: {value: v}}`); returns its path.
pub fn write_param_file(
    doc: &SweepDoc,
    run_id: &str,
    wandb_config: &Map<String, Value>,
) -> Result<PathBuf> {
    let mut text = String::from("wandb_version: 1");
    if !wandb_config.is_empty() {
        text.push_str("\n\n");
        emit_map(&mut text, wandb_config, 0);
    }
    write_in(
        &doc.sweep_dir(),
        &format!("config-{run_id}.yaml"),
        text.as_bytes(),
    )
}

/// Writes `${args_json_file}` at `path` (the SDK agent's `config-<run id>.json`).
pub fn write_args_json(path: &Path, params: &Map<String, Value>) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_in(
        dir,
        &name,
        wandb_sweeps::command::args_json(params).as_bytes(),
    )?;
    Ok(())
}

/// Words YAML 1.1 (PyYAML) reads as something other than a string when plain.
fn is_special_word(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | ""
    )
}

/// A key or string PyYAML would write plain: a name-like word that reads back as a string.
fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !is_special_word(s)
}

/// A scalar as PyYAML's SafeDumper writes it (floats with a dot before an exponent, so
/// YAML 1.1 reads them back as floats; strings double-quoted unless plain is safe).
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_nan() {
                return ".nan".to_owned();
            }
            if f.is_infinite() {
                return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
            }
            let text = python_float(f).to_ascii_lowercase();
            if !text.contains('.') && text.contains('e') {
                text.replacen('e', ".0e", 1)
            } else {
                text
            }
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn key(k: &str) -> String {
    if plain_ok(k) {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn emit_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (k, v) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(k));
        out.push(':');
        emit_value(out, v, indent, true);
    }
}

fn emit_value(out: &mut String, value: &Value, indent: usize, in_map: bool) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(out, m, indent + 2);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            // PyYAML writes a sequence in a mapping at the mapping's indentation.
            let at = if in_map { indent } else { indent + 2 };
            for item in items {
                out.push_str(&" ".repeat(at));
                out.push('-');
                emit_value(out, item, at, false);
            }
        }
        Value::Array(_) => out.push_str(" []\n"),
        scalar_value => {
            out.push(' ');
            out.push_str(&scalar(scalar_value));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(value: Value) -> String {
        let mut out = String::new();
        emit_map(&mut out, value.as_object().unwrap_or(&Map::new()), 0);
        out
    }

    #[test]
    fn params_are_written_as_pyyaml_writes_them() {
        let text = yaml(json!({
            "lr": {"value": 1e-5},
            "layers": {"value": [64, 128]},
            "opt": {"value": {"name": "adam", "beta": 0.9}},
            "flag": {"value": true},
            "word": {"value": "on"},
        }));
        assert_eq!(
            text,
            "lr:\n  value: 1.0e-05\nlayers:\n  value:\n  - 64\n  - 128\nopt:\n  value:\n    name: adam\n    beta: 0.9\nflag:\n  value: true\nword:\n  value: \"on\"\n"
        );
    }
}
