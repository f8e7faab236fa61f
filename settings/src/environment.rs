//! An injectable snapshot of environment variables, and a fingerprint of the `WANDB_*` ones.
//!
//! Loading never reads the process environment itself: it takes an [`Env`], which is either a
//! snapshot of the process environment or a map built by a test. Tests therefore never need to
//! mutate the real environment and can run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use crate::env::{HOME, USERPROFILE, WANDB_KUBEFLOW_URL, WANDB_PREFIX, WANDB_SERVICE};

/// A snapshot of environment variables.
///
/// Variables whose names are not valid Unicode are dropped (none of them can matter here);
/// values are kept as `OsString` so that paths survive unchanged. `Debug` prints only the names,
/// since values can hold secrets such as `WANDB_API_KEY`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// An environment with no variables.
    pub fn empty() -> Self {
        Env::default()
    }

    /// A snapshot of the current process environment.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| name.into_string().ok().map(|name| (name, value)))
            .collect();
        Env { vars }
    }

    /// An environment holding exactly the given variables.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<OsString>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env { vars }
    }

    /// Returns this environment with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<OsString>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.vars.remove(name);
    }

    /// The value of `name`, or `None` if it is unset or not valid Unicode.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).and_then(|v| v.to_str())
    }

    /// The raw value of `name`, or `None` if it is unset.
    pub fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(name).map(OsString::as_os_str)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OsStr)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_os_str()))
    }

    /// The home directory named by this environment: `HOME` (`USERPROFILE` on Windows), if set
    /// and not empty.
    pub fn home_dir(&self) -> Option<PathBuf> {
        let var = if cfg!(windows) { USERPROFILE } else { HOME };
        self.get_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// The fingerprint of this environment's `WANDB_*` variables.
    pub fn fingerprint(&self) -> EnvFingerprint {
        env_fingerprint(self)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Into<String>, V: Into<OsString>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Env::from_pairs(iter)
    }
}

/// A fingerprint of the `WANDB_*` variables of an environment (except `WANDB_SERVICE` and
/// `WANDB_KUBEFLOW_URL`, which W&B also leaves out).
///
/// It keeps the variable names and a hash of each value, never the values, so it is safe to log.
/// Take one when settings are loaded and compare it with a later one to notice that `WANDB_*`
/// changed after setup: W&B then warns that the changes are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EnvFingerprint {
    vars: BTreeMap<String, u64>,
}

impl EnvFingerprint {
    /// Names of the fingerprinted variables, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// W&B's own test: whether the set of variable names differs (W&B ignores changed values).
    pub fn names_changed(&self, other: &EnvFingerprint) -> bool {
        !self.vars.keys().eq(other.vars.keys())
    }

    /// Whether any variable was added, removed, or changed its value.
    pub fn changed(&self, other: &EnvFingerprint) -> bool {
        self != other
    }

    /// Names of the variables that were added, removed, or changed value between `self` and
    /// `other`, sorted.
    pub fn changed_vars(&self, other: &EnvFingerprint) -> Vec<String> {
        let names: BTreeSet<&String> = self.vars.keys().chain(other.vars.keys()).collect();
        names
            .into_iter()
            .filter(|name| self.vars.get(*name) != other.vars.get(*name))
            .cloned()
            .collect()
    }
}

/// Fingerprints the `WANDB_*` variables of `env`; see [`EnvFingerprint`].
pub fn env_fingerprint(env: &Env) -> EnvFingerprint {
    let vars = env
        .iter()
        .filter(|(name, _)| {
            name.starts_with(WANDB_PREFIX) && *name != WANDB_SERVICE && *name != WANDB_KUBEFLOW_URL
        })
        .map(|(name, value)| {
            let mut hasher = DefaultHasher::new();
            value.hash(&mut hasher);
            (name.to_owned(), hasher.finish())
        })
        .collect();
    EnvFingerprint { vars }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_values() {
        let env = Env::empty().with("WANDB_API_KEY", "supersecretvalue");
        let dbg = format!("{env:?}");
        assert!(dbg.contains("WANDB_API_KEY"));
        assert!(!dbg.contains("supersecret"));
        let fp = format!("{:?}", env.fingerprint());
        assert!(!fp.contains("supersecret"));
    }

    #[test]
    fn fingerprint_tracks_wandb_vars_only() {
        let a = Env::from_pairs([("WANDB_MODE", "offline"), ("PATH", "/bin")]);
        let b = a.clone().with("PATH", "/usr/bin").with(WANDB_SERVICE, "x");
        assert!(!a.fingerprint().changed(&b.fingerprint()));

        let c = a.clone().with("WANDB_MODE", "disabled");
        assert!(a.fingerprint().changed(&c.fingerprint()));
        assert!(!a.fingerprint().names_changed(&c.fingerprint()));
        assert_eq!(
            a.fingerprint().changed_vars(&c.fingerprint()),
            ["WANDB_MODE"]
        );

        let d = a.clone().with("WANDB_PROJECT", "p");
        assert!(a.fingerprint().names_changed(&d.fingerprint()));
        assert_eq!(
            a.fingerprint().changed_vars(&d.fingerprint()),
            ["WANDB_PROJECT"]
        );
        assert_eq!(
            d.fingerprint().names().collect::<Vec<_>>(),
            ["WANDB_MODE", "WANDB_PROJECT"]
        );
    }

    #[test]
    fn home_dir_ignores_empty() {
        let var = if cfg!(windows) { USERPROFILE } else { HOME };
        assert_eq!(Env::empty().with(var, "").home_dir(), None);
        assert_eq!(
            Env::empty().with(var, "/h").home_dir(),
            Some(PathBuf::from("/h"))
        );
    }
}
