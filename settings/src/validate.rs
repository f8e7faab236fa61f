//! Checks and conversions from raw text to typed values, one function per kind of setting.
//!
//! The rules follow W&B's `Settings` validators: exact names for enumerations, pydantic's
//! boolean words, run id and project character rules, and W&B's base URL checks.

use crate::error::{
    ApiKeyProblem, BaseUrlProblem, IntervalProblem, ProjectProblem, RunIdProblem, SettingsError,
    TagProblem,
};
use crate::raw::{Key, RawSettings};
use crate::secret::Secret;
use crate::source::Sourced;
use crate::values::{Console, Mode, Resume};

/// Characters a run id may not contain.
const RUN_ID_RESERVED: &str = ":;,#?/'";
/// Characters a project name may not contain.
const PROJECT_RESERVED: &str = "/\\#?%:";
/// Longest project name, in characters.
const PROJECT_MAX_CHARS: usize = 128;
/// Longest tag, in characters.
const TAG_MAX_CHARS: usize = 64;
/// Smallest sampling interval, in seconds.
const MIN_SAMPLING_INTERVAL: f64 = 0.1;

/// Whitespace as Python's `str.isspace` sees it (Unicode whitespace plus `\x1c`..`\x1f`).
pub(crate) fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s` without leading and trailing Python whitespace.
pub(crate) fn py_trim(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Checks every value of one layer, in [`Key::ALL`] order; the first problem is returned.
///
/// W&B validates each source as it applies it, so a bad value is an error even when a higher
/// source overrides it.
pub(crate) fn validate_layer(raw: &RawSettings) -> Result<(), SettingsError> {
    for key in raw.keys() {
        validate_key(raw, key)?;
    }
    Ok(())
}

/// Checks the value of `key` in `raw`, if set.
fn validate_key(raw: &RawSettings, key: Key) -> Result<(), SettingsError> {
    match key {
        Key::Mode => opt(&raw.mode, mode).map(drop),
        Key::Project => opt(&raw.project, project).map(drop),
        Key::RunId => opt(&raw.run_id, run_id).map(drop),
        Key::RunTags => opt(&raw.run_tags, run_tags).map(drop),
        Key::Resume => opt(&raw.resume, resume).map(drop),
        Key::Console => opt(&raw.console, console).map(drop),
        Key::XStatsSamplingInterval => {
            opt(&raw.x_stats_sampling_interval, sampling_interval).map(drop)
        }
        Key::XDisableStats => {
            opt(&raw.x_disable_stats, |s| boolean(Key::XDisableStats, s)).map(drop)
        }
        Key::XFileStreamNoGzip => opt(&raw.x_file_stream_no_gzip, |s| {
            boolean(Key::XFileStreamNoGzip, s)
        })
        .map(drop),
        Key::Silent => opt(&raw.silent, |s| boolean(Key::Silent, s)).map(drop),
        Key::Quiet => opt(&raw.quiet, |s| boolean(Key::Quiet, s)).map(drop),
        Key::UseDotWandb => opt(&raw.use_dot_wandb, |s| boolean(Key::UseDotWandb, s)).map(drop),
        Key::Launch => opt(&raw.launch, |s| boolean(Key::Launch, s)).map(drop),
        Key::BaseUrl => opt(&raw.base_url, base_url).map(drop),
        Key::SweepId => opt(&raw.sweep_id, sweep_id).map(drop),
        Key::ApiKey => opt(&raw.api_key, api_key).map(drop),
        Key::RootDir
        | Key::Entity
        | Key::RunName
        | Key::RunNotes
        | Key::RunGroup
        | Key::RunJobType
        | Key::Program
        | Key::Host
        | Key::IgnoreGlobs
        | Key::XSyncDirSuffix
        | Key::LaunchConfigPath
        | Key::SweepParamPath => Ok(()),
    }
}

/// Applies `check` to the value if there is one.
pub(crate) fn opt<T, U>(
    value: &Option<Sourced<T>>,
    check: impl FnOnce(&Sourced<T>) -> Result<U, SettingsError>,
) -> Result<Option<U>, SettingsError> {
    value.as_ref().map(check).transpose()
}

/// `mode`: one of W&B's six names.
pub(crate) fn mode(s: &Sourced<String>) -> Result<Mode, SettingsError> {
    Mode::parse(&s.value).ok_or_else(|| SettingsError::InvalidMode {
        value: s.value.clone(),
        origin: s.source.clone(),
    })
}

/// `console`: one of W&B's six names; `auto` becomes `wrap`.
pub(crate) fn console(s: &Sourced<String>) -> Result<Console, SettingsError> {
    Console::parse(&s.value).ok_or_else(|| SettingsError::InvalidConsole {
        value: s.value.clone(),
        origin: s.source.clone(),
    })
}

/// `resume`: one of `allow`, `must`, `never`, `auto`; `None` means "do not resume".
///
/// From code (`setup`/`init`), W&B also takes the booleans `True` (meaning `auto`) and `False`
/// (no resume); their text forms `true`/`false` are accepted from those sources only. From
/// files and the environment W&B rejects them, and so do we.
pub(crate) fn resume(s: &Sourced<String>) -> Result<Option<Resume>, SettingsError> {
    if let Some(r) = Resume::parse(&s.value) {
        return Ok(Some(r));
    }
    let from_code = s.source.precedence() >= crate::source::Source::Setup.precedence();
    match s.value.as_str() {
        "true" if from_code => Ok(Some(Resume::Auto)),
        "false" if from_code => Ok(None),
        _ => Err(SettingsError::InvalidResume {
            value: s.value.clone(),
            origin: s.source.clone(),
        }),
    }
}

/// A boolean in pydantic's lax text form (ASCII case-insensitive).
pub(crate) fn boolean(key: Key, s: &Sourced<String>) -> Result<bool, SettingsError> {
    let v = s.value.to_ascii_lowercase();
    match v.as_str() {
        "1" | "t" | "true" | "y" | "yes" | "on" => Ok(true),
        "0" | "f" | "false" | "n" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::InvalidBool {
            setting: key,
            value: s.value.clone(),
            origin: s.source.clone(),
        }),
    }
}

/// `x_stats_sampling_interval`: a finite number of seconds, at least 0.1.
pub(crate) fn sampling_interval(s: &Sourced<String>) -> Result<f64, SettingsError> {
    let err = |problem| SettingsError::InvalidStatsSamplingInterval {
        value: s.value.clone(),
        origin: s.source.clone(),
        problem,
    };
    let seconds: f64 = py_trim(&s.value)
        .parse()
        .map_err(|_| err(IntervalProblem::NotANumber))?;
    if !seconds.is_finite() {
        return Err(err(IntervalProblem::NotFinite));
    }
    if seconds < MIN_SAMPLING_INTERVAL {
        return Err(err(IntervalProblem::TooSmall));
    }
    Ok(seconds)
}

/// `run_id`: not empty, no surrounding whitespace, none of `:;,#?/'`.
pub(crate) fn run_id(s: &Sourced<String>) -> Result<String, SettingsError> {
    let err = |problem| SettingsError::InvalidRunId {
        value: s.value.clone(),
        origin: s.source.clone(),
        problem,
    };
    let id = &s.value;
    if id.is_empty() {
        return Err(err(RunIdProblem::Empty));
    }
    if py_trim(id).len() != id.len() {
        return Err(err(RunIdProblem::SurroundingWhitespace));
    }
    let found = reserved_in(id, RUN_ID_RESERVED);
    if !found.is_empty() {
        return Err(err(RunIdProblem::ReservedCharacters { found }));
    }
    Ok(id.clone())
}

/// `sweep_id`: not empty, no surrounding whitespace (W&B's `validate_sweep_id`).
pub(crate) fn sweep_id(s: &Sourced<String>) -> Result<String, SettingsError> {
    let err = |problem| SettingsError::InvalidSweepId {
        value: s.value.clone(),
        origin: s.source.clone(),
        problem,
    };
    if s.value.is_empty() {
        return Err(err(RunIdProblem::Empty));
    }
    if py_trim(&s.value).len() != s.value.len() {
        return Err(err(RunIdProblem::SurroundingWhitespace));
    }
    Ok(s.value.clone())
}

/// `project`: at most 128 characters, none of `/\#?%:`.
pub(crate) fn project(s: &Sourced<String>) -> Result<String, SettingsError> {
    let err = |problem| SettingsError::InvalidProject {
        value: s.value.clone(),
        origin: s.source.clone(),
        problem,
    };
    let chars = s.value.chars().count();
    if chars > PROJECT_MAX_CHARS {
        return Err(err(ProjectProblem::TooLong { chars }));
    }
    let found = reserved_in(&s.value, PROJECT_RESERVED);
    if !found.is_empty() {
        return Err(err(ProjectProblem::ReservedCharacters { found }));
    }
    Ok(s.value.clone())
}

/// `run_tags`: each tag 1 to 64 characters.
pub(crate) fn run_tags(s: &Sourced<Vec<String>>) -> Result<Vec<String>, SettingsError> {
    for (index, tag) in s.value.iter().enumerate() {
        let chars = tag.chars().count();
        let problem = if chars == 0 {
            TagProblem::Empty { index }
        } else if chars > TAG_MAX_CHARS {
            TagProblem::TooLong { index, chars }
        } else {
            continue;
        };
        return Err(SettingsError::InvalidRunTags {
            value: s.value.clone(),
            origin: s.source.clone(),
            problem,
        });
    }
    Ok(s.value.clone())
}

/// `base_url`: an absolute http(s) URL; `wandb.ai` hosts must be `https://api.wandb.ai`.
/// Returns the URL with trailing `/` removed.
pub(crate) fn base_url(s: &Sourced<String>) -> Result<String, SettingsError> {
    let err = |problem| SettingsError::InvalidBaseUrl {
        value: s.value.clone(),
        origin: s.source.clone(),
        problem,
    };
    let value = s.value.as_str();
    let parsed = url::Url::parse(value)
        .map_err(|e| err(BaseUrlProblem::NotAUrl(e.to_string().to_lowercase())))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(err(BaseUrlProblem::Scheme(parsed.scheme().to_owned())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(err(BaseUrlProblem::NotAUrl("empty host".to_owned())));
    }
    // W&B: a value that ends in "wandb.ai" plus anything without a dot must be api.wandb.ai
    // over https.
    let ends_in_wandb_ai = value
        .rfind("wandb.ai")
        .is_some_and(|at| !value[at + "wandb.ai".len()..].contains('.'));
    if ends_in_wandb_ai {
        if !value.contains("api.") {
            return Err(err(BaseUrlProblem::NotApiHost));
        }
        if !value.starts_with("https") {
            return Err(err(BaseUrlProblem::Insecure));
        }
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// `api_key`: must not start or end with whitespace (W&B checks the rest when it is used).
pub(crate) fn api_key(s: &Sourced<Secret>) -> Result<Secret, SettingsError> {
    let key = s.value.expose();
    if py_trim(key).len() != key.len() {
        return Err(SettingsError::InvalidApiKey {
            origin: s.source.clone(),
            problem: ApiKeyProblem::SurroundingWhitespace,
        });
    }
    Ok(s.value.clone())
}

/// W&B's local format check of an API key: a JWT (`x.y.z`, base64url parts) as is; otherwise,
/// after an optional `prefix-`, at least 40 of letters, digits, `_` and `-`.
pub fn check_api_key_format(key: &str) -> Result<(), ApiKeyProblem> {
    if key.is_empty() {
        return Err(ApiKeyProblem::Empty);
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(is_word))
    {
        return Ok(());
    }
    let secret = key.split_once('-').map_or(key, |(_, rest)| rest);
    if secret.is_empty() || !secret.chars().all(is_word) {
        return Err(ApiKeyProblem::BadCharacters);
    }
    let chars = secret.chars().count();
    if chars < 40 {
        return Err(ApiKeyProblem::TooShort { chars });
    }
    Ok(())
}

/// The characters of `reserved` found in `value`, in order of first appearance.
fn reserved_in(value: &str, reserved: &str) -> Vec<char> {
    let mut found = Vec::new();
    for c in value.chars() {
        if reserved.contains(c) && !found.contains(&c) {
            found.push(c);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn arg(v: &str) -> Sourced<String> {
        Sourced::new(v.to_owned(), Source::InitArg)
    }

    #[test]
    fn booleans_follow_pydantic() {
        for t in ["1", "true", "True", "YES", "on", "t", "y"] {
            assert_eq!(boolean(Key::Silent, &arg(t)), Ok(true), "{t}");
        }
        for f in ["0", "false", "No", "off", "f", "n"] {
            assert_eq!(boolean(Key::Silent, &arg(f)), Ok(false), "{f}");
        }
        assert!(boolean(Key::Silent, &arg("2")).is_err());
        assert!(boolean(Key::Silent, &arg("")).is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(sampling_interval(&arg(" 2.5 ")), Ok(2.5));
        assert_eq!(sampling_interval(&arg("0.1")), Ok(0.1));
        assert_eq!(sampling_interval(&arg("1e1")), Ok(10.0));
        assert!(sampling_interval(&arg("0.05")).is_err());
        assert!(sampling_interval(&arg("nan")).is_err());
        assert!(sampling_interval(&arg("inf")).is_err());
        assert!(sampling_interval(&arg("-1")).is_err());
    }

    #[test]
    fn run_ids() {
        assert!(run_id(&arg("abc-123_X")).is_ok());
        for bad in [
            "", " a", "a\t", "a:b", "a;b", "a,b", "a#b", "a?b", "a/b", "a'b",
        ] {
            assert!(run_id(&arg(bad)).is_err(), "{bad:?}");
        }
        let Err(SettingsError::InvalidRunId { problem, .. }) = run_id(&arg("a/b:c/")) else {
            panic!("expected an error");
        };
        assert_eq!(
            problem,
            RunIdProblem::ReservedCharacters {
                found: vec!['/', ':']
            }
        );
    }

    #[test]
    fn projects() {
        assert!(project(&arg(&"p".repeat(128))).is_ok());
        assert!(project(&arg(&"p".repeat(129))).is_err());
        assert!(project(&arg(&"é".repeat(128))).is_ok());
        for bad in ["a/b", "a\\b", "a#b", "a?b", "a%b", "a:b"] {
            assert!(project(&arg(bad)).is_err(), "{bad:?}");
        }
        assert!(project(&arg("")).is_ok());
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url(&arg("https://api.wandb.ai/")),
            Ok("https://api.wandb.ai".into())
        );
        assert_eq!(
            base_url(&arg("http://localhost:8080//")),
            Ok("http://localhost:8080".into())
        );
        assert_eq!(
            base_url(&arg("https://x.example/prefix/")),
            Ok("https://x.example/prefix".into())
        );
        assert_eq!(
            base_url(&arg("https://api.wandb.ai.example.com")),
            Ok("https://api.wandb.ai.example.com".into())
        );
        for bad in [
            "",
            "api.wandb.ai",
            "ftp://x",
            "https://wandb.ai",
            "https://app.wandb.ai",
            "http://api.wandb.ai",
            "http://",
        ] {
            assert!(base_url(&arg(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_key_format() {
        let k40 = "a".repeat(40);
        assert_eq!(check_api_key_format(&k40), Ok(()));
        assert_eq!(check_api_key_format(&format!("local-{k40}")), Ok(()));
        assert_eq!(check_api_key_format("aaa.bbb.ccc"), Ok(()));
        assert_eq!(check_api_key_format(""), Err(ApiKeyProblem::Empty));
        assert_eq!(
            check_api_key_format("short"),
            Err(ApiKeyProblem::TooShort { chars: 5 })
        );
        assert_eq!(
            check_api_key_format(&format!("{k40}!")),
            Err(ApiKeyProblem::BadCharacters)
        );
    }

    #[test]
    fn resume_booleans_only_from_code() {
        assert_eq!(resume(&arg("true")), Ok(Some(Resume::Auto)));
        assert_eq!(resume(&arg("false")), Ok(None));
        let env = Sourced::new(
            "true".to_owned(),
            Source::Env {
                var: "WANDB_RESUME".into(),
            },
        );
        assert!(resume(&env).is_err());
        assert_eq!(resume(&arg("must")), Ok(Some(Resume::Must)));
    }
}
