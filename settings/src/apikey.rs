//! Finding the API key for uploads, in W&B's order: `WANDB_API_KEY`, then the netrc file.
//!
//! The netrc file is `$NETRC` if set, else `~/.netrc` if it exists, else `~/_netrc` if it exists,
//! else `~/.netrc` (`~/_netrc` on Windows). The entry used is the one whose `machine` is the
//! host and port of the base URL exactly as written there (Python's `urlsplit(...).netloc`),
//! falling back to a `default` entry; its password is the key.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::env::{NETRC, WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE};
use crate::environment::Env;
use crate::error::ApiKeyProblem;
use crate::files::expand_user;
use crate::netrc::Netrc;
use crate::secret::Secret;
use crate::validate::check_api_key_format;

/// Where an API key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeySource {
    /// The `WANDB_API_KEY` environment variable.
    Env,
    /// A netrc file.
    Netrc {
        /// The file.
        path: PathBuf,
        /// The machine name looked up.
        machine: String,
    },
}

impl fmt::Display for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeySource::Env => write!(f, "environment variable {WANDB_API_KEY}"),
            ApiKeySource::Netrc { path, machine } => {
                write!(f, "netrc file {} (machine {machine})", path.display())
            }
        }
    }
}

/// An API key and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundApiKey {
    /// The key (prints as `***`).
    pub key: Secret,
    /// Where it came from.
    pub source: ApiKeySource,
}

/// A problem with the netrc file that did not stop the lookup (W&B prints these and goes on as
/// if there were no key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeyWarning {
    /// The netrc file exists but could not be read or parsed.
    NetrcUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (never includes file contents).
        problem: String,
    },
    /// The netrc entry for the machine has no password.
    NetrcEmptyPassword {
        /// The file.
        path: PathBuf,
        /// The machine.
        machine: String,
    },
}

impl fmt::Display for ApiKeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeyWarning::NetrcUnreadable { path, problem } => {
                write!(f, "failed to read netrc file {}: {problem}", path.display())
            }
            ApiKeyWarning::NetrcEmptyPassword { path, machine } => {
                write!(
                    f,
                    "entry for machine {machine:?} in {} has no api key",
                    path.display()
                )
            }
        }
    }
}

/// The outcome of an API key lookup that did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiKeyLookup {
    /// The key, if one was found.
    pub found: Option<FoundApiKey>,
    /// Problems met on the way.
    pub warnings: Vec<ApiKeyWarning>,
}

/// A key was found but cannot be used. Messages never include the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// W&B refuses both variables at once.
    #[error("both {WANDB_API_KEY} and {WANDB_IDENTITY_TOKEN_FILE} are set, which is not allowed")]
    KeyAndIdentityToken,
    /// The key is malformed.
    #[error("invalid api key from {origin}: {problem}")]
    InvalidKey {
        /// Where it was found.
        origin: ApiKeySource,
        /// What is wrong with it.
        problem: ApiKeyProblem,
    },
}

/// The netrc file to read: `$NETRC` (with `~` expanded), else `~/.netrc` if it exists, else
/// `~/_netrc` if it exists, else the platform's usual name. `None` without `NETRC` or a home.
pub fn netrc_path(env: &Env) -> Option<PathBuf> {
    let home = env.home_dir();
    if let Some(path) = env.get_os(NETRC).filter(|p| !p.is_empty()) {
        return Some(expand_user(Path::new(path), home.as_deref()));
    }
    let home = home?;
    let unix = home.join(".netrc");
    let windows = home.join("_netrc");
    if unix.exists() {
        Some(unix)
    } else if windows.exists() || cfg!(windows) {
        Some(windows)
    } else {
        Some(unix)
    }
}

/// The `host[:port]` part of a URL as written (Python's `urlsplit(url).netloc`), or `None` if
/// the URL has none.
pub fn netloc(url: &str) -> Option<&str> {
    let rest = match url.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => url,
    };
    let authority = rest.strip_prefix("//")?;
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    Some(&authority[..end]).filter(|n| !n.is_empty())
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Looks up the API key for `base_url`: `WANDB_API_KEY` if set and not empty, else the netrc
/// entry for the URL's host and port. Fails when the key found is malformed or when
/// `WANDB_API_KEY` and `WANDB_IDENTITY_TOKEN_FILE` are both set, as W&B does.
pub fn lookup_api_key(base_url: &str, env: &Env) -> Result<ApiKeyLookup, ApiKeyError> {
    let from_env = env.get(WANDB_API_KEY).filter(|k| !k.is_empty());
    let token_file = env
        .get_os(WANDB_IDENTITY_TOKEN_FILE)
        .filter(|v| !v.is_empty());
    if let Some(key) = from_env {
        if token_file.is_some() {
            return Err(ApiKeyError::KeyAndIdentityToken);
        }
        check_api_key_format(key).map_err(|problem| ApiKeyError::InvalidKey {
            origin: ApiKeySource::Env,
            problem,
        })?;
        return Ok(ApiKeyLookup {
            found: Some(FoundApiKey {
                key: Secret::new(key),
                source: ApiKeySource::Env,
            }),
            warnings: Vec::new(),
        });
    }

    let mut lookup = ApiKeyLookup::default();
    let (Some(path), Some(machine)) = (netrc_path(env), netloc(base_url.trim_end_matches('/')))
    else {
        return Ok(lookup);
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(lookup),
        Err(e) => {
            let problem = e.to_string().to_lowercase();
            lookup
                .warnings
                .push(ApiKeyWarning::NetrcUnreadable { path, problem });
            return Ok(lookup);
        }
    };
    let parsed = match String::from_utf8(text) {
        Ok(text) => Netrc::parse(&text).map_err(|e| e.to_string()),
        Err(_) => Err("not valid utf-8".to_owned()),
    };
    let netrc = match parsed {
        Ok(netrc) => netrc,
        Err(problem) => {
            lookup
                .warnings
                .push(ApiKeyWarning::NetrcUnreadable { path, problem });
            return Ok(lookup);
        }
    };
    let Some(entry) = netrc.authenticators(machine) else {
        return Ok(lookup);
    };
    if entry.password.is_empty() {
        lookup.warnings.push(ApiKeyWarning::NetrcEmptyPassword {
            path,
            machine: machine.to_owned(),
        });
        return Ok(lookup);
    }
    let source = ApiKeySource::Netrc {
        path,
        machine: machine.to_owned(),
    };
    if let Err(problem) = check_api_key_format(&entry.password) {
        return Err(ApiKeyError::InvalidKey {
            origin: source,
            problem,
        });
    }
    lookup.found = Some(FoundApiKey {
        key: Secret::new(entry.password.clone()),
        source,
    });
    Ok(lookup)
}

/// The API key for `base_url` from `WANDB_API_KEY` or the netrc file, or `None`. Errors and
/// warnings are dropped; use [`lookup_api_key`] to report them.
pub fn api_key(base_url: &str, env: &Env) -> Option<Secret> {
    lookup_api_key(base_url, env).ok()?.found.map(|f| f.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlocs() {
        assert_eq!(netloc("https://api.wandb.ai"), Some("api.wandb.ai"));
        assert_eq!(
            netloc("http://localhost:8080/prefix?x#y"),
            Some("localhost:8080")
        );
        assert_eq!(netloc("https://u:p@Host:443/"), Some("u:p@Host:443"));
        assert_eq!(netloc("api.wandb.ai"), None);
        assert_eq!(netloc("//h/x"), Some("h"));
        assert_eq!(netloc("https://"), None);
    }
}
