//! Building an [`Item`] from what the user asked for (`add`, `run`): the command or entry
//! point, the config from `--config k=v` and `--config-file`, the resource and its args, the
//! run id; and running one item now, without a queue (W&B's `launch`, synchronous).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::Stop;
use crate::env::{job_env, stale_names};
use crate::error::{Error, Result};
use crate::item::{DEFAULT_MAX_RETRIES, ITEM_VERSION, Item, Priority};
use crate::queue::now_rfc3339;
use crate::resource::{
    JobOutcome, PreparedJob, ResourceOptions, resource_for, validate_resource_args,
};

/// What the user asked to run.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct JobRequest {
    /// The command after `--`.
    pub command: Vec<String>,
    /// An entry point in the project folder (`train.py --lr 0.1`), instead of a command.
    pub entry_point: Option<String>,
    /// The project folder (the job's working folder); default: the current folder.
    pub project_dir: Option<PathBuf>,
    /// The run config.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// W&B project.
    pub project: Option<String>,
    /// W&B entity.
    pub entity: Option<String>,
    /// Run name.
    pub name: Option<String>,
    /// Run id (default: a new one).
    pub run_id: Option<String>,
    /// Priority.
    pub priority: Priority,
    /// Resource (default `local-process`).
    pub resource: Option<String>,
    /// Resource args.
    pub resource_args: serde_json::Map<String, serde_json::Value>,
    /// Retries after lease expiries (default 5).
    pub max_retries: Option<u32>,
    /// More environment for the job.
    pub env: BTreeMap<String, String>,
}

impl JobRequest {
    /// Checks the request and builds its item (a new item id, and a new run id if none).
    pub fn into_item(self) -> Result<Item> {
        let id = wandb_settings::generate_id(12);
        let cwd =
            std::env::current_dir().map_err(|e| Error::io(".", "read the current folder", e))?;
        let working_dir = match &self.project_dir {
            Some(dir) => {
                let dir = cwd.join(dir);
                if !dir.is_dir() {
                    return Err(Error::invalid(
                        None,
                        "--project-dir",
                        format!("{}: not a folder", dir.display()),
                    ));
                }
                dir.canonicalize().unwrap_or(dir)
            }
            None => cwd,
        };
        let command = match (&self.entry_point, self.command.is_empty()) {
            (Some(_), false) => {
                return Err(Error::invalid(
                    None,
                    "--entry-point",
                    "give an entry point or a command after `--`, not both",
                ));
            }
            (Some(entry), true) => entry_point_command(entry, &working_dir)?,
            (None, _) => self.command.clone(),
        };
        if command.is_empty() {
            return Err(Error::MissingCommand { item: id });
        }
        let resource = self.resource.unwrap_or_else(|| "local-process".to_owned());
        validate_resource_args(&resource, &self.resource_args, None)?;
        let run_id = match self.run_id {
            Some(run_id) => {
                check_run_id(&run_id)?;
                run_id
            }
            None => wandb_settings::generate_run_id(),
        };
        Ok(Item {
            version: ITEM_VERSION,
            id,
            created: now_rfc3339(),
            priority: self.priority,
            max_retries: self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            command,
            working_dir,
            config: self.config,
            project: self.project,
            entity: self.entity,
            name: self.name,
            run_id,
            resource,
            resource_args: self.resource_args,
            env: self.env,
        })
    }
}

/// W&B run ids: letters, digits, `-` and `_`, at most 64 characters.
fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            None,
            "--run-id",
            format!("{run_id:?}: a run id has letters, digits, `-` and `_` only (at most 64)"),
        ))
    }
}

/// The command of an entry point (as W&B: a `.py` file runs with Python, a `.sh` file with
/// bash, anything else as it is). The file must be in the project folder.
fn entry_point_command(entry: &str, project_dir: &Path) -> Result<Vec<String>> {
    let words: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
    let Some(first) = words.first() else {
        return Err(Error::invalid(None, "--entry-point", "empty"));
    };
    let file = project_dir.join(first);
    if !file.is_file() {
        return Err(Error::invalid(
            None,
            "--entry-point",
            format!("{}: no such file in the project folder", file.display()),
        ));
    }
    let python = std::env::var("WANDB_LAUNCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = if first.ends_with(".py") {
        vec![python]
    } else if first.ends_with(".sh") {
        vec!["bash".to_owned()]
    } else if !first.contains('/') {
        return Ok(std::iter::once(format!("./{first}"))
            .chain(words.into_iter().skip(1))
            .collect());
    } else {
        Vec::new()
    };
    command.extend(words);
    Ok(command)
}

/// Parses `--config k=v` pairs: the value is JSON when it parses as JSON (`0.1`, `true`,
/// `[1,2]`, `"x"`), else the string as given.
pub fn parse_pairs(
    pairs: &[String],
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::invalid(
                None,
                field,
                format!("{pair:?} is not key=value"),
            ));
        };
        if key.is_empty() {
            return Err(Error::invalid(
                None,
                field,
                format!("{pair:?} has an empty key"),
            ));
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

/// Reads a config file: JSON (`.json`) or YAML (anything else), one object at the top. A file
/// in W&B's `config.yaml` shape (each key holding `{value: ...}`, `_wandb` and
/// `wandb_version` aside) gives the values.
pub fn read_config_file(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read config file", e))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let value: serde_json::Value = if is_json {
        serde_json::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
    };
    let serde_json::Value::Object(mut map) = value else {
        return Err(Error::ConfigFile {
            path: path.to_path_buf(),
            reason: "the top level is not a mapping of keys to values".to_owned(),
        });
    };
    map.remove("wandb_version");
    map.remove("_wandb");
    let wandb_shape = !map.is_empty()
        && map
            .values()
            .all(|v| v.as_object().is_some_and(|o| o.contains_key("value")));
    if wandb_shape {
        for value in map.values_mut() {
            if let Some(inner) = value.get("value").cloned() {
                *value = inner;
            }
        }
    }
    Ok(map)
}

/// Parses `--resource-args`: one JSON object, or `key=value` pairs.
pub fn parse_resource_args(args: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    if let [one] = args
        && one.trim_start().starts_with('{')
    {
        return match serde_json::from_str(one) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(Error::invalid(None, "--resource-args", "not a JSON object")),
            Err(e) => Err(Error::invalid(None, "--resource-args", e.to_string())),
        };
    }
    parse_pairs(args, "--resource-args")
}

/// Runs `item` now, without a queue (W&B's `launch`, synchronous): its output goes to ours,
/// `stop` (SIGTERM, SIGINT) forwards SIGTERM to it, SIGKILL after `grace`.
pub fn run_now(item: &Item, stop: &Stop, grace: Duration) -> Result<JobOutcome> {
    let resource = resource_for(&item.resource, &ResourceOptions::default(), Some(&item.id))?;
    let inherited: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    let mut job = PreparedJob::new(&item.id, item.command.clone(), &item.working_dir, "")
        .with_env(job_env(item, None, 0))
        .with_resource_args(item.resource_args.clone())
        .with_run(&item.run_id, 0);
    job.env_remove = stale_names(inherited.iter().map(String::as_str));
    let mut running = resource.start(&job)?;
    let mut kill_at: Option<Instant> = None;
    loop {
        if let Some(outcome) = running.poll()? {
            return Ok(outcome);
        }
        if stop.is_stopped() && kill_at.is_none() {
            running.terminate(grace)?;
            kill_at = Some(Instant::now() + grace);
        }
        if let Some(at) = kill_at
            && Instant::now() >= at
        {
            running.kill()?;
            kill_at = Some(Instant::now() + Duration::from_secs(3600));
        }
        if kill_at.is_none() {
            stop.wait(Duration::from_millis(100));
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_take_json_values_else_strings() {
        let map = parse_pairs(
            &[
                "lr=0.1".into(),
                "name=abc".into(),
                "layers=[1,2]".into(),
                "on=true".into(),
            ],
            "--config",
        )
        .unwrap();
        assert_eq!(map["lr"], serde_json::json!(0.1));
        assert_eq!(map["name"], "abc");
        assert_eq!(map["layers"], serde_json::json!([1, 2]));
        assert_eq!(map["on"], true);
        let err = parse_pairs(&["novalue".into()], "--config").unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }

    #[test]
    fn config_files_yaml_json_and_wandb_shape() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("c.yaml");
        std::fs::write(&yaml, "lr: 0.01\nepochs: 3\nopt:\n  name: adam\n").unwrap();
        let map = read_config_file(&yaml).unwrap();
        assert_eq!(map["lr"], serde_json::json!(0.01));
        assert_eq!(map["opt"]["name"], "adam");
        let wandb = dir.path().join("config.yaml");
        std::fs::write(
            &wandb,
            "wandb_version: 1\nlr:\n  desc: null\n  value: 0.5\n",
        )
        .unwrap();
        assert_eq!(
            read_config_file(&wandb).unwrap()["lr"],
            serde_json::json!(0.5)
        );
        let json = dir.path().join("c.json");
        std::fs::write(&json, r#"{"a": 1"#).unwrap();
        let err = read_config_file(&json).unwrap_err();
        assert!(err.to_string().contains("c.json"), "{err}");
        std::fs::write(&yaml, "- 1\n- 2\n").unwrap();
        assert!(read_config_file(&yaml).is_err());
    }

    #[test]
    fn resource_args_json_or_pairs() {
        let map = parse_resource_args(&[r#"{"partition": "gpu", "cpus": 4}"#.into()]).unwrap();
        assert_eq!(map["cpus"], 4);
        let map = parse_resource_args(&["partition=gpu".into(), "time=01:00:00".into()]).unwrap();
        assert_eq!(map["time"], "01:00:00");
        assert!(parse_resource_args(&["{oops".into()]).is_err());
    }
}
