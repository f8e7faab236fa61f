//! The writer's table of keys: interning, cached encodings, metric definitions and the derived
//! summary of every key.
//!
//! Every distinct key path gets a [`KeyId`] the first time it is logged. Its [`KeyInfo`] caches
//! the encoded bytes the history encoder needs, the summary policy resolved from
//! `define_metric` (exact names first, then globs), and the summary state (latest value,
//! statistics, or an explicit value). Lookups of string-literal keys go through a small cache
//! keyed by the literal's address, so the common case costs a few instructions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use wandb_format::json;

use crate::options::{Metric, SummaryStat};
use crate::value::{Key, KeyRepr, Value};
use crate::writer::encode::{item_prefix, write_value};

/// Index of a key in the [`KeyTable`].
pub(crate) type KeyId = u32;

/// Which statistics a metric's summary keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatFlags {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) mean: bool,
    pub(crate) first: bool,
    pub(crate) last: bool,
}

/// How a key's summary is derived from history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The latest value (W&B's default).
    #[default]
    Latest,
    /// An object of statistics, e.g. `{"min":3}`.
    Stats(StatFlags),
    /// No summary (`summary="none"`).
    Off,
}

/// Running statistics of a key.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    first: Option<Value>,
    last: Option<Value>,
    min: Option<f64>,
    max: Option<f64>,
    sum: f64,
    count: u64,
}

impl Stats {
    fn update(&mut self, flags: StatFlags, value: &Value) {
        if flags.first && self.first.is_none() {
            self.first = Some(value.clone());
        }
        if flags.last {
            self.last = Some(value.clone());
        }
        let number = match value {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Json(v) => match **v {
                json::Value::UInt(u) => Some(u as f64),
                _ => None,
            },
            Value::Bool(_) => None,
        };
        if let Some(x) = number {
            // NaN never becomes the minimum or maximum; it does poison the mean, as it would in
            // any sum.
            if !x.is_nan() {
                self.min = Some(self.min.map_or(x, |m| m.min(x)));
                self.max = Some(self.max.map_or(x, |m| m.max(x)));
            }
            self.sum += x;
            self.count += 1;
        }
    }

    /// Statistics continuing the summary `{"min": .., "max": .., "first": ..}` of an earlier
    /// fragment. The mean restarts: the number of values behind it is not in the summary.
    fn carried(value: &json::Value) -> Stats {
        let number = |key: &str| value.get(key).and_then(json::Value::as_f64);
        Stats {
            first: value.get("first").cloned().map(Value::from),
            min: number("min"),
            max: number("max"),
            ..Stats::default()
        }
    }

    fn to_json(&self, flags: StatFlags) -> Option<json::Value> {
        let mut map = json::Map::new();
        if flags.min
            && let Some(min) = self.min
        {
            map.insert("min", json::Value::Float(min));
        }
        if flags.max
            && let Some(max) = self.max
        {
            map.insert("max", json::Value::Float(max));
        }
        if flags.mean && self.count > 0 {
            map.insert("mean", json::Value::Float(self.sum / self.count as f64));
        }
        if flags.first
            && let Some(first) = &self.first
        {
            map.insert("first", first.to_json());
        }
        if flags.last
            && let Some(last) = &self.last
        {
            map.insert("last", last.to_json());
        }
        (!map.is_empty()).then_some(json::Value::Object(map))
    }
}

/// A key's current summary value.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum SummaryState {
    /// Nothing (never logged, removed, or summary off).
    #[default]
    Unset,
    /// The latest logged value.
    Latest(Value),
    /// Statistics of the logged values.
    Stats(Stats),
    /// A value set explicitly with `summary_set`.
    Explicit(json::Value),
    /// The value an earlier fragment of a resumed run left; the first logged value replaces it
    /// (a `min`/`max`/`first` statistic starts from it, see [`Stats::carried`]).
    Carried(json::Value),
}

/// Everything the writer knows about one key.
#[derive(Debug)]
pub(crate) struct KeyInfo {
    /// The key path (one component for a flat key).
    pub(crate) path: Vec<String>,
    /// The path joined with `.`, for glob matching.
    dotted: String,
    /// Encoded `nested_key` fields and the `value_json` tag.
    pub(crate) prefix: Vec<u8>,
    /// How the summary is derived.
    pub(crate) policy: Policy,
    /// The step metric whose latest value is added to rows that lack it (`step_sync`).
    pub(crate) sync_step_metric: Option<Vec<String>>,
    /// The summary value.
    pub(crate) state: SummaryState,
    /// Whether the summary changed since it was last written.
    pub(crate) dirty: bool,
    /// Whether `latest` is kept (the key is some metric's step metric).
    pub(crate) track_latest: bool,
    /// The latest value logged, whatever the policy (for `step_sync`).
    pub(crate) latest: Option<Value>,
    /// Row generation in which this key was last put into the pending row.
    pub(crate) pending_gen: u64,
    /// Its index in the pending row, valid when `pending_gen` is the current generation.
    pub(crate) pending_idx: usize,
}

impl KeyInfo {
    /// Records a logged value in the summary; returns whether the key just became dirty (so
    /// the caller lists it once).
    #[inline]
    pub(crate) fn observe(&mut self, value: &Value) -> bool {
        // The hot case, a float replacing a float: no clone, no drop glue.
        if let (SummaryState::Latest(Value::Float(slot)), Value::Float(x), Policy::Latest) =
            (&mut self.state, value, self.policy)
        {
            *slot = *x;
            return !std::mem::replace(&mut self.dirty, true);
        }
        match self.policy {
            Policy::Off => return false,
            Policy::Latest => self.state = SummaryState::Latest(value.clone()),
            Policy::Stats(flags) => {
                match &self.state {
                    SummaryState::Stats(_) => {}
                    SummaryState::Carried(carried) => {
                        self.state = SummaryState::Stats(Stats::carried(carried));
                    }
                    _ => self.state = SummaryState::Stats(Stats::default()),
                }
                if let SummaryState::Stats(stats) = &mut self.state {
                    stats.update(flags, value);
                }
            }
        }
        !std::mem::replace(&mut self.dirty, true)
    }

    /// The summary value as JSON, if there is one.
    pub(crate) fn summary_json(&self) -> Option<json::Value> {
        match (&self.state, self.policy) {
            (SummaryState::Unset, _) => None,
            (SummaryState::Latest(v), _) => Some(v.to_json()),
            (SummaryState::Stats(stats), Policy::Stats(flags)) => stats.to_json(flags),
            (SummaryState::Stats(_), _) => None,
            (SummaryState::Explicit(v) | SummaryState::Carried(v), _) => Some(v.clone()),
        }
    }

    /// The summary value as JSON text, appended to `out`; `false` if there is none.
    pub(crate) fn write_summary_json(&self, out: &mut String) -> bool {
        match &self.state {
            SummaryState::Latest(v) => {
                write_value(v, out);
                true
            }
            _ => match self.summary_json() {
                Some(v) => {
                    v.write_to(out);
                    true
                }
                None => false,
            },
        }
    }
}

/// A fast, non-cryptographic hasher for short keys (keys come from the program, not an
/// adversary).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

const STATIC_CACHE_SLOTS: usize = 1024;

/// One slot of the cache of string-literal keys: the literal's address and length, and its id.
#[derive(Clone, Copy, Default)]
struct StaticSlot {
    addr: usize,
    len: usize,
    id: KeyId,
}

/// A metric definition as the writer applies it.
#[derive(Clone, Debug)]
struct MetricRule {
    policy: Policy,
    sync_step_metric: Option<Vec<String>>,
}

impl MetricRule {
    fn from_metric(metric: &Metric) -> MetricRule {
        let policy = if metric.summary.contains(&SummaryStat::None) {
            Policy::Off
        } else if metric.summary.is_empty() {
            Policy::Latest
        } else {
            let has = |s| metric.summary.contains(&s);
            Policy::Stats(StatFlags {
                min: has(SummaryStat::Min),
                max: has(SummaryStat::Max),
                mean: has(SummaryStat::Mean),
                first: has(SummaryStat::First),
                last: has(SummaryStat::Last),
            })
        };
        let step_sync = metric.step_sync.unwrap_or(metric.step_metric.is_some());
        MetricRule {
            policy,
            sync_step_metric: metric
                .step_metric
                .as_deref()
                .filter(|_| step_sync)
                .map(split_metric_name),
        }
    }
}

/// All keys of a run.
pub(crate) struct KeyTable {
    keys: Vec<KeyInfo>,
    flat: FastMap<Box<str>, KeyId>,
    nested: FastMap<Vec<String>, KeyId>,
    statics: Box<[StaticSlot]>,
    exact: FastMap<Vec<String>, MetricRule>,
    globs: Vec<(String, MetricRule)>,
    any_step_sync: bool,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable {
            keys: Vec::new(),
            flat: FastMap::default(),
            nested: FastMap::default(),
            statics: vec![StaticSlot::default(); STATIC_CACHE_SLOTS].into_boxed_slice(),
            exact: FastMap::default(),
            globs: Vec::new(),
            any_step_sync: false,
        }
    }
}

impl KeyTable {
    /// The id of a top-level key, interning it if new.
    #[inline]
    pub(crate) fn intern(&mut self, key: &Key) -> KeyId {
        match key.repr() {
            KeyRepr::Static(s) => {
                let addr = s.as_ptr() as usize;
                // Literals can be packed a few bytes apart: mix every address bit into the index.
                let slot_idx = ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize
                    % STATIC_CACHE_SLOTS;
                if let Some(slot) = self.statics.get(slot_idx)
                    && slot.addr == addr
                    && slot.len == s.len()
                {
                    return slot.id;
                }
                let id = self.intern_flat(s);
                if let Some(slot) = self.statics.get_mut(slot_idx) {
                    *slot = StaticSlot {
                        addr,
                        len: s.len(),
                        id,
                    };
                }
                id
            }
            KeyRepr::Shared(s) => self.intern_flat(s),
        }
    }

    /// The id of a top-level key given as text.
    pub(crate) fn intern_flat(&mut self, name: &str) -> KeyId {
        if let Some(&id) = self.flat.get(name) {
            return id;
        }
        let id = self.add(vec![name.to_owned()]);
        self.flat.insert(name.into(), id);
        id
    }

    /// The id of a key path (one or more components).
    pub(crate) fn intern_path(&mut self, path: &[String]) -> KeyId {
        if let [name] = path {
            return self.intern_flat(name);
        }
        if let Some(&id) = self.nested.get(path) {
            return id;
        }
        let id = self.add(path.to_vec());
        self.nested.insert(path.to_vec(), id);
        id
    }

    /// The id of a key path, if it was ever interned.
    pub(crate) fn lookup_path(&self, path: &[String]) -> Option<KeyId> {
        match path {
            [name] => self.flat.get(name.as_str()).copied(),
            _ => self.nested.get(path).copied(),
        }
    }

    fn add(&mut self, path: Vec<String>) -> KeyId {
        let dotted = path.join(".");
        let rule = self.rule_for(&path, &dotted).cloned();
        let id = KeyId::try_from(self.keys.len()).unwrap_or(KeyId::MAX);
        self.keys.push(KeyInfo {
            prefix: item_prefix(&path),
            policy: rule.as_ref().map(|r| r.policy).unwrap_or_default(),
            sync_step_metric: rule.and_then(|r| r.sync_step_metric),
            path,
            dotted,
            state: SummaryState::Unset,
            dirty: false,
            track_latest: false,
            latest: None,
            pending_gen: u64::MAX,
            pending_idx: 0,
        });
        id
    }

    fn rule_for(&self, path: &[String], dotted: &str) -> Option<&MetricRule> {
        if let Some(rule) = self.exact.get(path) {
            return Some(rule);
        }
        if path.first().is_some_and(|first| first.starts_with('_')) {
            return None;
        }
        // The most recent matching glob wins.
        self.globs
            .iter()
            .rev()
            .find(|(prefix, _)| dotted.starts_with(prefix.as_str()))
            .map(|(_, rule)| rule)
    }

    /// Whether any metric definition asks for `step_sync`.
    pub(crate) fn any_step_sync(&self) -> bool {
        self.any_step_sync
    }

    /// Applies a metric definition to future and existing keys.
    pub(crate) fn define(&mut self, metric: &Metric) {
        let rule = MetricRule::from_metric(metric);
        self.any_step_sync |= rule.sync_step_metric.is_some();
        if let Some(step_path) = &rule.sync_step_metric {
            let step_id = self.intern_path(step_path);
            if let Some(info) = self.get_mut(step_id) {
                info.track_latest = true;
            }
        }
        match metric.name.strip_suffix('*') {
            Some(prefix) => self.globs.push((prefix.to_owned(), rule)),
            None => {
                self.exact.insert(split_metric_name(&metric.name), rule);
            }
        }
        for idx in 0..self.keys.len() {
            let Some(info) = self.keys.get(idx) else {
                continue;
            };
            let rule = self.rule_for(&info.path, &info.dotted).cloned();
            let policy = rule.as_ref().map(|r| r.policy).unwrap_or_default();
            let sync = rule.and_then(|r| r.sync_step_metric);
            if let Some(info) = self.keys.get_mut(idx) {
                if info.policy != policy
                    && !matches!(
                        info.state,
                        SummaryState::Explicit(_) | SummaryState::Carried(_)
                    )
                {
                    info.state = SummaryState::Unset;
                }
                info.policy = policy;
                info.sync_step_metric = sync;
            }
        }
    }

    /// The key with id `id`.
    #[inline]
    pub(crate) fn get(&self, id: KeyId) -> Option<&KeyInfo> {
        self.keys.get(id as usize)
    }

    /// The key with id `id`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: KeyId) -> Option<&mut KeyInfo> {
        self.keys.get_mut(id as usize)
    }

    /// All keys, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &KeyInfo> {
        self.keys.iter()
    }
}

/// Splits a metric name on unescaped dots (`a.b` is `a` → `b`; `a\.b` is the key `a.b`).
pub(crate) fn split_metric_name(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                current.push('.');
                chars.next();
            }
            '.' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_split_on_unescaped_dots() {
        assert_eq!(split_metric_name("a.b"), ["a", "b"]);
        assert_eq!(split_metric_name("a\\.b"), ["a.b"]);
        assert_eq!(split_metric_name("val/loss"), ["val/loss"]);
    }

    #[test]
    fn interning_is_stable() {
        let mut table = KeyTable::default();
        let a = table.intern(&Key::from("loss"));
        let b = table.intern(&Key::new("loss"));
        let c = table.intern_path(&["loss".to_owned()]);
        assert_eq!((a, b), (a, c));
        let n = table.intern_path(&["train".to_owned(), "a".to_owned()]);
        assert_ne!(n, a);
        assert_eq!(
            table.lookup_path(&["train".to_owned(), "a".to_owned()]),
            Some(n)
        );
    }

    #[test]
    fn metric_rules_apply_to_old_and_new_keys() {
        let mut table = KeyTable::default();
        let old = table.intern(&Key::from("val/a"));
        table.define(&Metric::new("val/*").summary(SummaryStat::Mean));
        let new = table.intern(&Key::from("val/b"));
        let hidden = table.intern(&Key::from("_val/x"));
        for id in [old, new] {
            assert!(matches!(table.get(id).unwrap().policy, Policy::Stats(f) if f.mean));
        }
        table.define(&Metric::new("val/b").summary(SummaryStat::None));
        assert_eq!(table.get(new).unwrap().policy, Policy::Off);
        assert_eq!(table.get(hidden).unwrap().policy, Policy::Latest);
    }

    #[test]
    fn stats_skip_nan_for_min_max() {
        let flags = StatFlags {
            min: true,
            max: true,
            mean: true,
            first: true,
            last: true,
        };
        let mut stats = Stats::default();
        for v in [Value::Float(2.0), Value::Float(f64::NAN), Value::Int(-1)] {
            stats.update(flags, &v);
        }
        let json = stats.to_json(flags).unwrap().to_string();
        assert_eq!(json, r#"{"min":-1,"max":2,"mean":NaN,"first":2,"last":-1}"#);
    }
}
