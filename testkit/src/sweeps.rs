//! Sweeps as the backend stores them: `UpsertSweep` creates or updates one, `UpsertBucket`'s
//! `sweep` variable attaches a run to it by name.
//!
//! As on W&B, the client cannot choose a new sweep's name: `UpsertSweep` without a known `id`
//! creates a sweep and the server names it (eight lower-case letters and digits); with the `id`
//! the reply gave (the storage id), it updates that sweep. The configuration is kept as the YAML
//! text the client sent; the runs of a sweep are the runs whose last `sweep` names it, in the
//! same entity and project.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::graphql::{Context, b64, entity_or_default, error_reply, project_or_default, str_var};
use crate::state::{RunKey, Store};

/// The states `UpsertSweep` accepts (W&B's `SweepState`, as the SDK sends them).
pub const SWEEP_STATES: [&str; 5] = ["PENDING", "RUNNING", "PAUSED", "CANCELED", "FINISHED"];

/// Everything the server knows about one sweep.
#[derive(Debug, Default, Clone)]
pub(crate) struct SweepData {
    pub(crate) storage_id: String,
    pub(crate) config: Option<String>,
    pub(crate) state: String,
    pub(crate) description: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) controller: Option<String>,
    pub(crate) prior_runs_filters: Option<String>,
    /// `UpsertSweep` calls that created or updated it.
    pub(crate) upserts: u64,
}

/// The reconstructed state of one sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepState {
    /// Entity (the default entity when the client sent `null`).
    pub entity: String,
    /// Project (`uncategorized` when the client sent `null`).
    pub project: String,
    /// The name the server gave it (what runs name in UpsertBucket's `sweep`).
    pub name: String,
    /// Storage id (the `id` of a later UpsertSweep).
    pub storage_id: String,
    /// The `config` text as sent (YAML).
    pub config: Option<String>,
    /// `PENDING` until a client sends another state.
    pub state: String,
    /// `description`.
    pub description: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `controller` (JSONString, as sent).
    pub controller: Option<String>,
    /// `priorRunsFilters` (JSONString, as sent).
    pub prior_runs_filters: Option<String>,
    /// The ids of the runs attached to it (UpsertBucket `sweep`), sorted.
    pub runs: Vec<String>,
    /// `UpsertSweep` calls that created or updated it.
    pub upserts: u64,
}

/// The public snapshot of every sweep, ordered by (entity, project, name).
pub(crate) fn snapshot(store: &Store) -> Vec<SweepState> {
    store
        .sweeps
        .iter()
        .map(|((entity, project, name), sweep)| {
            let runs = store
                .runs
                .values()
                .filter(|run| {
                    run.entity == *entity
                        && run.project == *project
                        && run.sweep.as_deref() == Some(name.as_str())
                })
                .map(|run| run.name.clone())
                .collect();
            SweepState {
                entity: entity.clone(),
                project: project.clone(),
                name: name.clone(),
                storage_id: sweep.storage_id.clone(),
                config: sweep.config.clone(),
                state: sweep.state.clone(),
                description: sweep.description.clone(),
                display_name: sweep.display_name.clone(),
                controller: sweep.controller.clone(),
                prior_runs_filters: sweep.prior_runs_filters.clone(),
                runs,
                upserts: sweep.upserts,
            }
        })
        .collect()
}

/// A new sweep name: eight characters of `[a-z0-9]`, deterministic in creation order.
fn generate_name(store: &mut Store) -> String {
    store.generated_sweeps += 1;
    let mut n = store.generated_sweeps;
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut name = [b'0'; 6];
    for slot in name.iter_mut().rev() {
        *slot = digits[(n % 36) as usize];
        n /= 36;
    }
    format!("sw{}", String::from_utf8_lossy(&name))
}

/// `UpsertSweep`: creates a sweep (no `id`, or an unknown one: an error then) or updates the one
/// whose storage id is `id`.
pub(crate) fn upsert_sweep(store: &mut Store, ctx: &Context<'_>, vars: &Value) -> Value {
    let state = str_var(vars, "state");
    if let Some(state) = &state
        && !SWEEP_STATES.contains(&state.as_str())
    {
        store.error(format!("UpsertSweep: unknown state {state:?}"));
        return error_reply(&format!("invalid sweep state {state:?}"));
    }
    let key: RunKey = match str_var(vars, "id") {
        Some(id) => match store.sweep_by_id.get(&id) {
            Some(key) => key.clone(),
            None => {
                store.error(format!("UpsertSweep: unknown sweep id {id:?}"));
                return error_reply(&format!("sweep {id:?} not found"));
            }
        },
        None => {
            if str_var(vars, "config").is_none() {
                store.error("UpsertSweep: a new sweep without config".to_owned());
                return error_reply("a sweep needs a config");
            }
            let name = generate_name(store);
            (
                entity_or_default(vars, "entityName", ctx),
                project_or_default(vars, "projectName"),
                name,
            )
        }
    };
    let storage_id = base64::engine::general_purpose::STANDARD
        .encode(format!("Sweep:v1:{}:{}:{}", key.2, key.1, key.0));
    store.sweep_by_id.insert(storage_id.clone(), key.clone());
    let sweep = store
        .sweeps
        .entry(key.clone())
        .or_insert_with(|| SweepData {
            storage_id,
            state: "PENDING".to_owned(),
            ..SweepData::default()
        });
    sweep.upserts += 1;
    let set = |field: &mut Option<String>, name: &str| {
        if let Some(value) = str_var(vars, name) {
            *field = Some(value);
        }
    };
    set(&mut sweep.config, "config");
    set(&mut sweep.description, "description");
    set(&mut sweep.display_name, "displayName");
    set(&mut sweep.controller, "controller");
    set(&mut sweep.prior_runs_filters, "priorRunsFilters");
    if let Some(state) = state {
        sweep.state = state;
    }
    let (entity, project, name) = key;
    json!({"data": {"upsertSweep": {
        "sweep": {
            "id": sweep.storage_id,
            "name": name,
            "project": {
                "id": b64(&format!("Project:v1:{project}:{entity}")),
                "name": project,
                "entity": {"id": b64(&format!("Entity:v1:{entity}")), "name": entity},
            },
        },
        "configValidationWarnings": [],
    }}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            default_entity: "me",
            base_url: "http://127.0.0.1:1",
            features: &[],
        }
    }

    #[test]
    fn create_names_the_sweep_and_an_update_by_id_keeps_it() {
        let mut store = Store::default();
        let reply = upsert_sweep(
            &mut store,
            &ctx(),
            &json!({"config": "method: grid\n", "projectName": "p", "entityName": null}),
        );
        let sweep = &reply["data"]["upsertSweep"]["sweep"];
        assert_eq!(sweep["name"], "sw000001");
        assert_eq!(sweep["project"]["entity"]["name"], "me");
        let id = sweep["id"].as_str().unwrap().to_owned();
        upsert_sweep(&mut store, &ctx(), &json!({"id": id, "state": "FINISHED"}));
        let all = snapshot(&store);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].state, "FINISHED");
        assert_eq!(all[0].config.as_deref(), Some("method: grid\n"));
        assert_eq!(all[0].upserts, 2);
    }

    #[test]
    fn bad_requests_are_errors() {
        let mut store = Store::default();
        let no_config = upsert_sweep(&mut store, &ctx(), &json!({"projectName": "p"}));
        assert!(no_config["errors"].is_array());
        let unknown = upsert_sweep(&mut store, &ctx(), &json!({"id": "nope", "config": "x"}));
        assert!(unknown["errors"].is_array());
        let state = upsert_sweep(&mut store, &ctx(), &json!({"config": "x", "state": "DONE"}));
        assert!(state["errors"].is_array());
        assert!(snapshot(&store).is_empty());
        assert_eq!(store.errors.len(), 3);
    }
}
