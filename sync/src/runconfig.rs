//! The run config as W&B's server stores it: `{"<key>": {"value": v}, ..., "_wandb": {"value":
//! {"t": ..., "m": [...], "e": {...}, "cli_version", "python_version"}}}`, built from the run
//! record's config, `config` records, `telemetry`, `metric` and `environment` records.
//!
//! * `t` is the merged telemetry keyed by proto field number: messages made of flags become the
//!   sorted list of set field numbers, messages of strings a map from number to string. It is
//!   built from the records' wire encoding, so new telemetry fields need no code here.
//! * `m` lists metric definitions keyed by field number, with the step metric referenced by its
//!   1-based position in the list (`"5"`).
//! * `e` maps each writer id to its merged environment snapshot (protojson field names).

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use prost::Message;
use wandb_format::proto::{ConfigRecord, EnvironmentRecord, MetricRecord, TelemetryRecord};

use crate::jsonbuild::{JsonTree, Node, Path, canonical};
use crate::metadata::environment_json;
use wandb_format::json::write_str;
use wandb_format::wire::{Cursor, RECURSION_LIMIT, Raw};

/// `TelemetryRecord.feature`.
const FEATURE_FIELD: u64 = 3;

/// `Feature.sync2`, which wandb-core's syncer sets.
const FEATURE_SYNC2: u64 = 76;

/// One merged telemetry field.
#[derive(Debug, Clone, PartialEq)]
enum TelemetryValue {
    Flags(BTreeSet<u64>),
    Strings(BTreeMap<u64, String>),
    Text(String),
}

/// The pieces of the run config, accumulated record by record.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunConfig {
    user: JsonTree,
    telemetry: BTreeMap<u64, TelemetryValue>,
    metrics: IndexMap<String, MetricRecord>,
    environments: IndexMap<String, EnvironmentRecord>,
    /// Writers whose environment snapshot came from an earlier fragment of the run: the next
    /// record of such a writer replaces the snapshot instead of merging into it (a resumed run
    /// started in the same process would otherwise repeat its `args`).
    carried_environments: BTreeSet<String>,
    /// Values that were not valid JSON and were left out.
    pub(crate) n_invalid: u64,
    version: u64,
}

impl RunConfig {
    /// A counter that changes whenever the config changes.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Applies a config update (from a `config` record or the run record's config).
    pub(crate) fn apply_config(&mut self, record: &ConfigRecord) {
        for item in &record.update {
            let path = Path::of(&item.key, &item.nested_key);
            match canonical(&item.value_json) {
                Ok(value) => self.user.set(&segments(path), &value),
                Err(_) => self.n_invalid += 1,
            }
        }
        for item in &record.remove {
            self.user
                .remove(&segments(Path::of(&item.key, &item.nested_key)));
        }
        self.version += 1;
    }

    /// Merges a telemetry record.
    pub(crate) fn apply_telemetry(&mut self, record: &TelemetryRecord) {
        let bytes = record.encode_to_vec();
        for (number, field) in wire_fields(&bytes) {
            if number >= 200 {
                // `_info` and other private fields are not part of `t`.
                continue;
            }
            match field {
                Raw::Len(sub) if matches!(number, 4 | 5 | 6 | 12 | 13) => {
                    let text = String::from_utf8_lossy(sub).into_owned();
                    self.telemetry.insert(number, TelemetryValue::Text(text));
                }
                Raw::Len(sub) => {
                    let mut flags = BTreeSet::new();
                    let mut strings = BTreeMap::new();
                    for (sub_number, sub_field) in wire_fields(sub) {
                        match sub_field {
                            Raw::Varint(v) if v != 0 => {
                                flags.insert(sub_number);
                            }
                            Raw::Len(text) => {
                                strings
                                    .insert(sub_number, String::from_utf8_lossy(text).into_owned());
                            }
                            _ => {}
                        }
                    }
                    let entry = self.telemetry.entry(number);
                    if strings.is_empty() {
                        match entry.or_insert_with(|| TelemetryValue::Flags(BTreeSet::new())) {
                            TelemetryValue::Flags(set) => set.extend(flags),
                            other => *other = TelemetryValue::Flags(flags),
                        }
                    } else {
                        match entry.or_insert_with(|| TelemetryValue::Strings(BTreeMap::new())) {
                            TelemetryValue::Strings(map) => map.extend(strings),
                            other => *other = TelemetryValue::Strings(strings),
                        }
                    }
                }
                _ => {}
            }
        }
        self.version += 1;
    }

    /// Adds or replaces a metric definition.
    pub(crate) fn apply_metric(&mut self, record: &MetricRecord) {
        if record.expanded_from_glob {
            // 0.19+ write the metric a glob expanded to; wandb-core leaves it out of `m`, since
            // the glob's own entry covers it.
            return;
        }
        let key = if record.glob_name.is_empty() {
            format!("n:{}", record.name)
        } else {
            format!("g:{}", record.glob_name)
        };
        let overwrite = record.control.as_ref().is_some_and(|c| c.overwrite);
        match self.metrics.get_mut(&key) {
            Some(existing) if !overwrite => {
                let mut merged = existing.encode_to_vec();
                record.encode(&mut merged).ok();
                if let Ok(decoded) = MetricRecord::decode(merged.as_slice()) {
                    *existing = decoded;
                }
            }
            _ => {
                self.metrics.insert(key, record.clone());
            }
        }
        self.version += 1;
    }

    /// Merges an environment record into its writer's snapshot.
    pub(crate) fn apply_environment(&mut self, record: &EnvironmentRecord) {
        let carried = self.carried_environments.remove(&record.writer_id);
        let entry = self
            .environments
            .entry(record.writer_id.clone())
            .or_default();
        if carried {
            *entry = EnvironmentRecord::default();
        }
        let bytes = record.encode_to_vec();
        let _ = entry.merge(bytes.as_slice());
        self.version += 1;
    }

    /// Marks the state as carried into the run's next fragment (see `carried_environments`).
    pub(crate) fn into_next_fragment(mut self) -> RunConfig {
        self.carried_environments = self.environments.keys().cloned().collect();
        self
    }

    /// All environment snapshots merged into one (for `wandb-metadata.json`), if any.
    pub(crate) fn merged_environment(&self) -> Option<EnvironmentRecord> {
        let mut iter = self.environments.values();
        let mut merged = iter.next()?.clone();
        for env in iter {
            let _ = merged.merge(env.encode_to_vec().as_slice());
        }
        Some(merged)
    }

    /// The config as the JSON text UpsertBucket sends.
    pub(crate) fn to_json(&self) -> String {
        self.to_tree().to_json()
    }

    /// The config as a tree: every user key wrapped as `{"value": v}`, plus `_wandb`.
    pub(crate) fn to_tree(&self) -> JsonTree {
        let mut out = JsonTree::default();
        for (key, node) in self.user.iter() {
            if key == "_wandb" {
                continue;
            }
            let mut wrapper = JsonTree::default();
            wrapper.insert("value", node.clone());
            out.insert(key, Node::Object(wrapper));
        }
        let mut wandb = match self.user.get("_wandb") {
            Some(Node::Object(tree)) => tree.clone(),
            Some(Node::Raw(text)) => JsonTree::from_text(text).unwrap_or_default(),
            None => JsonTree::default(),
        };
        if let Some(TelemetryValue::Text(v)) = self.telemetry.get(&5) {
            wandb.insert("cli_version", Node::Raw(json_string(v)));
        }
        if let Some(TelemetryValue::Text(v)) = self.telemetry.get(&4) {
            wandb.insert("python_version", Node::Raw(json_string(v)));
        }
        wandb.insert("t", Node::Raw(self.telemetry_json()));
        wandb.insert("m", Node::Raw(self.metrics_json()));
        if !self.environments.is_empty() {
            let mut envs = String::from("{");
            for (i, (writer, env)) in self.environments.iter().enumerate() {
                if i > 0 {
                    envs.push(',');
                }
                write_str(&mut envs, writer);
                envs.push(':');
                envs.push_str(&environment_json(env, None));
            }
            envs.push('}');
            wandb.insert("e", Node::Raw(envs));
        }
        let mut wrapper = JsonTree::default();
        wrapper.insert("value", Node::Object(wandb));
        out.insert("_wandb", Node::Object(wrapper));
        out
    }

    fn telemetry_json(&self) -> String {
        // Like wandb-core's syncer, mark the run as uploaded by a syncer (feature `sync2`).
        let mut telemetry = self.telemetry.clone();
        if let TelemetryValue::Flags(set) = telemetry
            .entry(FEATURE_FIELD)
            .or_insert_with(|| TelemetryValue::Flags(BTreeSet::new()))
        {
            set.insert(FEATURE_SYNC2);
        }
        let mut out = String::from("{");
        let mut first = true;
        for (number, value) in &telemetry {
            let text = match value {
                // A message that is present but sets no known flag (0.15-0.18 files set fields
                // wandb-core no longer knows) is `[]`, as wandb-core writes it.
                TelemetryValue::Flags(set) => {
                    let items: Vec<String> = set.iter().map(u64::to_string).collect();
                    format!("[{}]", items.join(","))
                }
                TelemetryValue::Strings(map) => {
                    let mut s = String::from("{");
                    for (i, (k, v)) in map.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str(&format!("\"{k}\":"));
                        write_str(&mut s, v);
                    }
                    s.push('}');
                    s
                }
                TelemetryValue::Text(v) => json_string(v),
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&format!("\"{number}\":{text}"));
        }
        out.push('}');
        out
    }

    fn metrics_json(&self) -> String {
        // Named metrics first, then globs, as wandb-core lists them.
        let ordered: Vec<&MetricRecord> = self
            .metrics
            .values()
            .filter(|m| m.glob_name.is_empty())
            .chain(self.metrics.values().filter(|m| !m.glob_name.is_empty()))
            .collect();
        let names: Vec<&str> = ordered
            .iter()
            .map(|m| {
                if m.glob_name.is_empty() {
                    m.name.as_str()
                } else {
                    ""
                }
            })
            .collect();
        let mut out = String::from("[");
        for (i, metric) in ordered.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            let mut parts: Vec<String> = Vec::new();
            if !metric.name.is_empty() {
                parts.push(format!("\"1\":{}", json_string(&metric.name)));
            }
            if !metric.glob_name.is_empty() {
                parts.push(format!("\"2\":{}", json_string(&metric.glob_name)));
            }
            if !metric.step_metric.is_empty() {
                match names.iter().position(|n| *n == metric.step_metric) {
                    Some(index) => parts.push(format!("\"5\":{}", index + 1)),
                    None => parts.push(format!("\"4\":{}", json_string(&metric.step_metric))),
                }
            }
            let mut options = Vec::new();
            if let Some(o) = &metric.options {
                if o.step_sync {
                    options.push(1);
                }
                if o.hidden {
                    options.push(2);
                }
            }
            // wandb-core marks every named metric that came from a record as defined (0.18 writes
            // glob expansions as named records without the flag), and no glob.
            if metric.glob_name.is_empty() {
                options.push(3);
            }
            parts.push(format!("\"6\":{}", number_list(&options)));
            let mut summary = Vec::new();
            if let Some(s) = &metric.summary {
                for (flag, number) in [
                    (s.min, 1),
                    (s.max, 2),
                    (s.mean, 3),
                    (s.best, 4),
                    (s.last, 5),
                    (s.none, 6),
                    (s.copy, 7),
                    (s.first, 8),
                ] {
                    if flag {
                        summary.push(number);
                    }
                }
            }
            parts.push(format!("\"7\":{}", number_list(&summary)));
            if metric.goal != 0 {
                parts.push(format!("\"8\":{}", metric.goal));
            }
            if metric.expanded_from_glob {
                parts.push("\"10\":true".to_owned());
            }
            out.push_str(&parts.join(","));
            out.push('}');
        }
        out.push(']');
        out
    }
}

fn number_list(numbers: &[u32]) -> String {
    let items: Vec<String> = numbers.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(","))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    out
}

fn segments(path: Path<'_>) -> Vec<&str> {
    match path {
        Path::Key(k) => vec![k],
        Path::Nested(p) => p.iter().map(String::as_str).collect(),
    }
}

/// The fields of an encoded message, read without its schema, with field numbers as `u64` (the
/// keys of `t`); stops at the first malformed byte (the bytes come from prost, so there is none).
fn wire_fields(data: &[u8]) -> impl Iterator<Item = (u64, Raw<'_>)> + '_ {
    let mut cursor = Cursor::new(data);
    std::iter::from_fn(move || {
        let (number, raw) = cursor.next_field(RECURSION_LIMIT).ok()??;
        Some((u64::from(number), raw))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::proto::{ConfigItem, Feature, MetricOptions, MetricSummary};

    #[test]
    fn a_resumed_fragment_replaces_its_writers_environment_instead_of_merging() {
        let env = |args: &[&str]| EnvironmentRecord {
            writer_id: "w1".into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        };
        let mut config = RunConfig::default();
        config.apply_environment(&env(&["--a"]));
        // Within a fragment, a writer's records merge (wandb-core sends the GPU part later).
        config.apply_environment(&EnvironmentRecord {
            writer_id: "w1".into(),
            host: "h".into(),
            ..Default::default()
        });
        let mut next = config.into_next_fragment();
        next.apply_environment(&env(&["--a"]));
        let merged = next.merged_environment().unwrap();
        assert_eq!(merged.args, ["--a"], "not repeated");
        assert_eq!(merged.host, "", "the new fragment's snapshot only");
        // Another writer's snapshot from the earlier fragment is kept.
        let mut config = RunConfig::default();
        config.apply_environment(&EnvironmentRecord {
            writer_id: "w0".into(),
            ..Default::default()
        });
        let mut next = config.into_next_fragment();
        next.apply_environment(&env(&[]));
        assert_eq!(next.environments.len(), 2);
    }

    #[test]
    fn config_wraps_values_and_adds_wandb() {
        let mut config = RunConfig::default();
        config.apply_config(&ConfigRecord {
            update: vec![
                ConfigItem {
                    key: "lr".into(),
                    value_json: "0.10".into(),
                    ..Default::default()
                },
                ConfigItem {
                    key: "_wandb".into(),
                    value_json: "{}".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        config.apply_telemetry(&TelemetryRecord {
            cli_version: "0.31.0".into(),
            python_version: "3.11.7".into(),
            feature: Some(Feature {
                finish: true,
                watch: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        config.apply_metric(&MetricRecord {
            name: "step".into(),
            options: Some(MetricOptions {
                defined: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        config.apply_metric(&MetricRecord {
            name: "loss".into(),
            step_metric: "step".into(),
            summary: Some(MetricSummary {
                min: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            config.to_json(),
            r#"{"lr":{"value":0.1},"_wandb":{"value":{"cli_version":"0.31.0","python_version":"3.11.7","t":{"3":[1,2,76],"4":"3.11.7","5":"0.31.0"},"m":[{"1":"step","6":[3],"7":[]},{"1":"loss","5":1,"6":[3],"7":[1]}]}}}"#
        );
    }

    /// What the official `wandb sync` 0.31 sends for metric records of older SDKs (checked on
    /// files written by 0.18.7 and 0.25.1, and on hand-made records without `defined`).
    #[test]
    fn metrics_as_wandb_core_lists_them() {
        let mut config = RunConfig::default();
        let step_sync = Some(MetricOptions {
            step_sync: true,
            ..Default::default()
        });
        config.apply_metric(&MetricRecord {
            glob_name: "val/*".into(),
            options: Some(MetricOptions {
                step_sync: true,
                defined: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        // 0.18: a glob's expansion, as a named record without `defined`.
        config.apply_metric(&MetricRecord {
            name: "val/acc".into(),
            options: step_sync.clone(),
            ..Default::default()
        });
        // 0.19+: the same, flagged; wandb-core leaves it out.
        config.apply_metric(&MetricRecord {
            name: "val/loss".into(),
            options: step_sync.clone(),
            expanded_from_glob: true,
            ..Default::default()
        });
        assert_eq!(
            config.metrics_json(),
            r#"[{"1":"val/acc","6":[1,3],"7":[]},{"2":"val/*","6":[1],"7":[]}]"#
        );
    }

    /// A telemetry message that is present but sets no flag this proto knows (0.15-0.18 set
    /// import and env fields wandb-core no longer has) is `[]`, as wandb-core writes it.
    #[test]
    fn present_empty_telemetry_messages_are_empty_lists() {
        let mut config = RunConfig::default();
        config.apply_telemetry(&TelemetryRecord {
            imports_init: Some(Default::default()),
            env: Some(Default::default()),
            ..Default::default()
        });
        assert_eq!(config.telemetry_json(), r#"{"1":[],"3":[76],"8":[]}"#);
    }
}
