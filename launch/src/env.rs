//! The job's environment, as W&B Launch hands it over.
//!
//! W&B's runners (local-process, local-container, kubernetes, ...) all take the variables from
//! `LaunchProject.get_env_vars_dict` in `wandb/sdk/launch/_project_spec.py`; the agent's
//! requeue of a preempted run is in `wandb/sdk/launch/agent/agent.py`. What each variable is,
//! and where W&B sets it:
//!
//! | variable | value | W&B |
//! |---|---|---|
//! | `WANDB_CONFIG` | the run config overrides as one JSON object | `_inject_wandb_config_env_vars`, when the JSON is at most 32,670 characters |
//! | `WANDB_CONFIG_0`, `_1`, ... | that JSON cut into pieces of 32,670 characters (`WANDB_CONFIG` is then not set) | same function, when longer (`MAX_ENV_LENGTHS`, `launch/utils.py`; 512 for SageMaker) |
//! | `WANDB_RUN_ID` | the item's run id | `get_env_vars_dict` |
//! | `WANDB_PROJECT` | the target project (only when there is one) | `get_env_vars_dict` |
//! | `WANDB_ENTITY` | the target entity (we set it only when there is one: offline there may be none) | `get_env_vars_dict` |
//! | `WANDB_LAUNCH` | `True` (the SDK's `settings.launch`, which makes `wandb.init` read `WANDB_CONFIG`) | `get_env_vars_dict` |
//! | `WANDB_NAME` | the run name, when given | `get_env_vars_dict` |
//! | `WANDB_LAUNCH_QUEUE_NAME` | the queue the item came from (not set by `run`) | `get_env_vars_dict` (`wandb.env.LAUNCH_QUEUE_NAME`) |
//! | `WANDB_LAUNCH_QUEUE_ENTITY` | the queue's entity (the item's entity, when given) | `get_env_vars_dict` (`wandb.env.LAUNCH_QUEUE_ENTITY`) |
//! | `WANDB_LAUNCH_TRACE_ID` | the run queue item's id (here: the item id) | `get_env_vars_dict` (`wandb.env.LAUNCH_TRACE_ID`) |
//! | `WANDB_RESUME` | `allow`, on an attempt after the first (W&B: `_resume_count > 0`, set when the agent requeues a preempted run) | `get_env_vars_dict` |
//! | `WANDB_LAUNCH_FILE_OVERRIDES` | `{}` (file overrides: none offline) | `_inject_file_overrides_env_vars` |
//! | `WANDB_ARTIFACTS` | `{}` (no job artifact offline) | `get_env_vars_dict` |
//!
//! Not set here: `WANDB_API_KEY` and `WANDB_BASE_URL` (W&B passes the agent's; offline there is
//! no server and a key never goes into a job's environment from us), `WANDB_DOCKER` (only with
//! a docker image), `WANDB_USERNAME` (the author). A sweep's runs get `WANDB_SWEEP_ID`,
//! `WANDB_SWEEP_PARAM_PATH` and `WANDB_DIR` through their item's `env` (`sweep/controller.rs`).
//!
//! The official SDK reads the config in `wandb_init._handle_launch_config`, only when
//! `settings.launch` is true (`WANDB_LAUNCH=True`): `WANDB_CONFIG` first, else the pieces
//! `WANDB_CONFIG_0..n` joined in order until the first missing number; the result updates
//! `wandb.config`, in offline mode too.

use std::path::{Path, PathBuf};

use crate::item::Item;

/// Longest value W&B puts in one `WANDB_CONFIG*` variable (characters, as Python counts them).
pub const MAX_ENV_LENGTH: usize = 32_670;

/// The launch variables of one attempt of `item`, taken from `queue` (`None` for `run`).
/// The item's own `env` comes first, so the launch variables win over it.
pub fn job_env(item: &Item, queue: Option<&str>, attempt: u32) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = item
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut set = |name: &str, value: &str| env.push((name.to_owned(), value.to_owned()));
    if let Some(project) = &item.project {
        set("WANDB_PROJECT", project);
    }
    if let Some(entity) = &item.entity {
        set("WANDB_ENTITY", entity);
    }
    set("WANDB_LAUNCH", "True");
    set("WANDB_RUN_ID", &item.run_id);
    if let Some(name) = &item.name {
        set("WANDB_NAME", name);
    }
    if attempt > 0 {
        set("WANDB_RESUME", "allow");
    }
    if let Some(queue) = queue {
        set("WANDB_LAUNCH_QUEUE_NAME", queue);
        if let Some(entity) = &item.entity {
            set("WANDB_LAUNCH_QUEUE_ENTITY", entity);
        }
    }
    set("WANDB_LAUNCH_TRACE_ID", &item.id);
    env.extend(config_env(&item.config, MAX_ENV_LENGTH));
    env.push(("WANDB_LAUNCH_FILE_OVERRIDES".into(), "{}".into()));
    env.push(("WANDB_ARTIFACTS".into(), "{}".into()));
    env
}

/// `WANDB_CONFIG` holding `config` as JSON, or, past `max_len` characters, `WANDB_CONFIG_0..n`
/// holding consecutive pieces of `max_len` characters.
pub fn config_env(
    config: &serde_json::Map<String, serde_json::Value>,
    max_len: usize,
) -> Vec<(String, String)> {
    let json = serde_json::Value::Object(config.clone()).to_string();
    let max_len = max_len.max(1);
    if json.chars().count() <= max_len {
        return vec![("WANDB_CONFIG".to_owned(), json)];
    }
    let chars: Vec<char> = json.chars().collect();
    chars
        .chunks(max_len)
        .enumerate()
        .map(|(i, piece)| (format!("WANDB_CONFIG_{i}"), piece.iter().collect()))
        .collect()
}

/// The names among `inherited` (the agent's environment) that would confuse the job's reading
/// of its config: `WANDB_CONFIG`, `WANDB_CONFIG_<n>`, `WANDB_LAUNCH_FILE_OVERRIDES_<n>`.
pub fn stale_names<'a>(inherited: impl Iterator<Item = &'a str>) -> Vec<String> {
    let numbered = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    inherited
        .filter(|name| {
            *name == "WANDB_CONFIG"
                || numbered(name, "WANDB_CONFIG_")
                || numbered(name, "WANDB_LAUNCH_FILE_OVERRIDES_")
        })
        .map(str::to_owned)
        .collect()
}

/// The `WANDB_DIR` the job will use: the item's, else the agent's, else its working folder
/// (a relative one is taken from the working folder). Its runs go in `<that>/wandb/`.
pub fn job_wandb_dir(item: &Item, agent_wandb_dir: Option<&Path>) -> PathBuf {
    let dir = item
        .env
        .get("WANDB_DIR")
        .map(PathBuf::from)
        .or_else(|| agent_wandb_dir.map(Path::to_path_buf));
    match dir {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => item.working_dir.join(dir),
        None => item.working_dir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n_keys: usize) -> serde_json::Map<String, serde_json::Value> {
        (0..n_keys)
            .map(|i| (format!("key_{i:05}"), serde_json::json!("é".repeat(10))))
            .collect()
    }

    #[test]
    fn small_config_is_one_variable() {
        let env = config_env(&config(2), MAX_ENV_LENGTH);
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].0, "WANDB_CONFIG");
        let back: serde_json::Value = serde_json::from_str(&env[0].1).unwrap();
        assert_eq!(back["key_00001"], "é".repeat(10));
    }

    #[test]
    fn large_config_is_cut_in_pieces_of_max_characters() {
        let config = config(3000);
        let json = serde_json::Value::Object(config.clone()).to_string();
        assert!(json.chars().count() > MAX_ENV_LENGTH);
        let env = config_env(&config, MAX_ENV_LENGTH);
        assert!(env.len() >= 2);
        for (i, (name, value)) in env.iter().enumerate() {
            assert_eq!(name, &format!("WANDB_CONFIG_{i}"));
            if i + 1 < env.len() {
                assert_eq!(value.chars().count(), MAX_ENV_LENGTH);
            }
        }
        let joined: String = env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(joined, json);
    }

    #[test]
    fn exactly_max_characters_is_still_one_variable() {
        let mut config = serde_json::Map::new();
        config.insert("k".into(), serde_json::json!(""));
        let base = serde_json::Value::Object(config.clone()).to_string().len();
        config.insert(
            "k".into(),
            serde_json::json!("x".repeat(MAX_ENV_LENGTH - base)),
        );
        let env = config_env(&config, MAX_ENV_LENGTH);
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].1.chars().count(), MAX_ENV_LENGTH);
    }

    #[test]
    fn stale_config_variables_are_found() {
        let names = [
            "WANDB_CONFIG",
            "WANDB_CONFIG_3",
            "WANDB_CONFIG_DIR",
            "WANDB_CONFIG_",
            "PATH",
        ];
        assert_eq!(
            stale_names(names.into_iter()),
            ["WANDB_CONFIG", "WANDB_CONFIG_3"]
        );
    }
}
