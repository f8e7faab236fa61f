//! Git facts for the environment record: the URL of the `origin` remote, with credentials
//! removed the way W&B removes them, and the commit checked out at `HEAD`.
//!
//! W&B asks the `git` executable (`git config --get remote.origin.url`, `git rev-parse --verify
//! HEAD`, with `GIT_DIR`, `GIT_WORK_TREE` and `GIT_INDEX_FILE` removed from its environment).
//! Spawning git costs milliseconds per call, so we first read the repository's files directly
//! (the `.git` directory or `gitdir:` file, `commondir` for worktrees, `HEAD`, loose refs,
//! `packed-refs` and the repository's `config`), which takes tens of microseconds. Anything the
//! fast path does not fully understand (reftable ref storage, `include` directives in the
//! config) makes it fall back to the git executable, bounded by a timeout. Like W&B, the
//! environment variables that redirect git are ignored, and a URL's credentials are dropped
//! (`https://user:token@host/x` becomes `https://user:@host/x`, `https://token@host/x` becomes
//! `https://host/x`; scp-like `git@host:org/repo` has no credentials and stays as it is).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the environment record needs to know about the repository around a directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GitInfo {
    /// URL of the `origin` remote, credentials removed; `None` when there is no such remote.
    pub(crate) remote_url: Option<String>,
    /// The commit at `HEAD`; `None` on a branch without commits yet.
    pub(crate) commit: Option<String>,
}

/// How many symbolic refs to follow before giving up (git's own limit is 5).
const MAX_SYMREF_DEPTH: usize = 5;

/// The repository facts for `dir`, or `None` when `dir` is not inside a git work tree (or git
/// is needed and is missing, fails, or runs past `timeout`).
pub(crate) fn detect(dir: &Path, timeout: Duration) -> Option<GitInfo> {
    match read_repository(dir) {
        Ok(found) => found,
        Err(Unsupported) => {
            log::debug!("git fast path unsupported here; running git");
            run_git(dir, timeout)
        }
    }
}

/// The fast path met something it does not handle; the git executable must decide.
#[derive(Debug)]
struct Unsupported;

/// Reads the repository containing `dir` without running git.
fn read_repository(dir: &Path) -> Result<Option<GitInfo>, Unsupported> {
    let Some(git_dir) = find_git_dir(dir) else {
        return Ok(None);
    };
    let common_dir = match fs::read_to_string(git_dir.join("commondir")) {
        Ok(relative) => git_dir.join(relative.trim()),
        Err(_) => git_dir.clone(),
    };
    let config = fs::read_to_string(common_dir.join("config")).unwrap_or_default();
    let entries = parse_config(&config);
    if entries
        .iter()
        .any(|e| e.section == "include" || e.section == "includeif")
        || entries.iter().any(|e| {
            e.section == "extensions"
                && e.key == "refstorage"
                && !e.value.eq_ignore_ascii_case("files")
        })
        || common_dir.join("reftable").is_dir()
    {
        return Err(Unsupported);
    }
    let remote_url = entries
        .iter()
        .rev()
        .find(|e| {
            e.section == "remote" && e.subsection.as_deref() == Some("origin") && e.key == "url"
        })
        .map(|e| strip_credentials(&e.value));
    let head = fs::read_to_string(git_dir.join("HEAD")).map_err(|_| Unsupported)?;
    let commit = resolve(head.trim(), &git_dir, &common_dir, 0)?;
    Ok(Some(GitInfo { remote_url, commit }))
}

/// The git directory of the work tree containing `dir`: the nearest `.git` directory, or the
/// directory named by the nearest `.git` file (`gitdir: <path>`, used by worktrees and
/// submodules). A candidate without a `HEAD` file is not a repository and is skipped.
fn find_git_dir(dir: &Path) -> Option<PathBuf> {
    for ancestor in dir.ancestors() {
        let candidate = ancestor.join(".git");
        let Ok(metadata) = fs::metadata(&candidate) else {
            continue;
        };
        let git_dir = if metadata.is_dir() {
            candidate
        } else {
            let Some(target) = fs::read_to_string(&candidate).ok().and_then(|text| {
                let target = text.lines().find_map(|line| line.strip_prefix("gitdir:"))?;
                Some(target.trim().to_owned())
            }) else {
                continue;
            };
            ancestor.join(target)
        };
        if git_dir.join("HEAD").is_file() {
            return Some(git_dir);
        }
    }
    None
}

/// Resolves the content of `HEAD` (or of a ref) to a commit id.
fn resolve(
    content: &str,
    git_dir: &Path,
    common_dir: &Path,
    depth: usize,
) -> Result<Option<String>, Unsupported> {
    if is_object_id(content) {
        return Ok(Some(content.to_ascii_lowercase()));
    }
    let Some(name) = content.strip_prefix("ref:").map(str::trim) else {
        return Err(Unsupported);
    };
    if depth >= MAX_SYMREF_DEPTH
        || name.is_empty()
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(Unsupported);
    }
    // Per-worktree refs live in the worktree's git dir, shared ones in the common dir.
    for base in [git_dir, common_dir] {
        if let Ok(text) = fs::read_to_string(base.join(name)) {
            return resolve(text.trim(), git_dir, common_dir, depth + 1);
        }
    }
    if let Ok(packed) = fs::read_to_string(common_dir.join("packed-refs")) {
        for line in packed.lines() {
            if line.starts_with('#') || line.starts_with('^') {
                continue;
            }
            if let Some((id, ref_name)) = line.split_once(' ')
                && ref_name.trim() == name
                && is_object_id(id)
            {
                return Ok(Some(id.to_ascii_lowercase()));
            }
        }
    }
    // A branch with no commit yet (a fresh `git init`): git rev-parse fails, W&B records none.
    Ok(None)
}

/// A full SHA-1 or SHA-256 object id in hex.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One `key = value` of a git config file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigEntry {
    /// Section name, lower-cased (`remote`).
    section: String,
    /// Subsection (`origin`), case kept; `None` for `[core]`-style sections.
    subsection: Option<String>,
    /// Key, lower-cased (`url`).
    key: String,
    /// Value with quotes, escapes and comments processed; `true` for a bare key.
    value: String,
}

/// A small git config parser: sections with optional quoted (or legacy dotted) subsections,
/// `key = value` lines, `#`/`;` comments, double quotes, backslash escapes and continuation
/// lines. Lines it cannot read are skipped.
fn parse_config(text: &str) -> Vec<ConfigEntry> {
    let mut entries = Vec::new();
    let mut section = String::new();
    let mut subsection: Option<String> = None;
    let mut lines = text.lines();
    while let Some(raw) = lines.next() {
        let mut line = raw.trim_start().to_owned();
        if line.starts_with('[') {
            let Some(end) = header_end(&line) else {
                continue;
            };
            let header = line.get(1..end).unwrap_or_default().trim().to_owned();
            (section, subsection) = parse_section_header(&header);
            line = line
                .get(end + 1..)
                .unwrap_or_default()
                .trim_start()
                .to_owned();
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || section.is_empty() {
            continue;
        }
        // Join continuation lines (a value ending in an unescaped backslash).
        while ends_with_continuation(&line) {
            line.pop();
            match lines.next() {
                Some(next) => line.push_str(next),
                None => break,
            }
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), parse_value(value)),
            None => (line.trim(), "true".to_owned()),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            continue;
        }
        entries.push(ConfigEntry {
            section: section.clone(),
            subsection: subsection.clone(),
            key: key.to_ascii_lowercase(),
            value,
        });
    }
    entries
}

/// Index of the `]` closing a section header, skipping a quoted subsection.
fn header_end(line: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ']' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `remote "origin"` -> (`remote`, `Some("origin")`); legacy `remote.origin` -> the same, with
/// the subsection lower-cased as git does.
fn parse_section_header(header: &str) -> (String, Option<String>) {
    if let Some((name, rest)) = header.split_once(char::is_whitespace) {
        let quoted = rest.trim();
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or(quoted);
        let mut sub = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    sub.push(next);
                }
            } else {
                sub.push(c);
            }
        }
        return (name.to_ascii_lowercase(), Some(sub));
    }
    match header.split_once('.') {
        Some((name, sub)) => (name.to_ascii_lowercase(), Some(sub.to_ascii_lowercase())),
        None => (header.to_ascii_lowercase(), None),
    }
}

/// Whether a line ends with a backslash that is not itself escaped.
fn ends_with_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

/// A config value: trims unquoted whitespace, drops comments, removes quotes and decodes
/// `\\`, `\"`, `\n`, `\t` and `\b`.
fn parse_value(raw: &str) -> String {
    let mut value = String::new();
    let mut pending_space = String::new();
    let mut in_quotes = false;
    let mut chars = raw.trim_start().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                value.push_str(&pending_space);
                pending_space.clear();
                in_quotes = !in_quotes;
            }
            '\\' => {
                value.push_str(&pending_space);
                pending_space.clear();
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('b') => {
                        value.pop();
                    }
                    Some(other) => value.push(other),
                    None => {}
                }
            }
            '#' | ';' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => pending_space.push(c),
            c => {
                value.push_str(&pending_space);
                pending_space.clear();
                value.push(c);
            }
        }
    }
    value
}

/// Removes credentials from a remote URL exactly as W&B's `remote_url_without_password` does
/// (it is built on Python's `urlparse`):
///
/// * no `scheme://host` part (scp-like `git@host:path`, a local path): unchanged;
/// * a password: the user is kept with an empty password (`https://user:@host/path`);
/// * only a user name (often a token): dropped (`https://host/path`).
///
/// Like `urlparse`, the scheme and host name come out lower-cased. Unlike it, an IPv6 host
/// keeps its brackets, and an invalid port is dropped rather than raising an error.
pub(crate) fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return url.to_owned();
    };
    let Some(after_slashes) = rest.strip_prefix("//") else {
        return url.to_owned();
    };
    let netloc_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (netloc, tail) = after_slashes.split_at(netloc_end);
    let (userinfo, host_port) = match netloc.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, netloc),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return url.to_owned();
        };
        (
            format!("[{}]", inner.to_ascii_lowercase()),
            after.strip_prefix(':'),
        )
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (host_port.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return url.to_owned();
    }
    let port = port
        .filter(|p| !p.is_empty())
        .and_then(|p| p.parse::<u16>().ok());
    let host_port = match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let netloc = match userinfo.and_then(|u| u.split_once(':')) {
        Some((user, _password)) => format!("{user}:@{host_port}"),
        None => host_port,
    };
    format!("{}://{netloc}{tail}", scheme.to_ascii_lowercase())
}

/// Splits `scheme:rest` the way Python's `urlsplit` does: the scheme starts with an ASCII
/// letter and holds only letters, digits, `+`, `-` and `.`.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some((scheme, rest))
}

/// The slow path: asks the git executable, like W&B, within `timeout` in total.
fn run_git(dir: &Path, timeout: Duration) -> Option<GitInfo> {
    let deadline = Instant::now() + timeout;
    let head = git_output(dir, &["rev-parse", "--verify", "-q", "HEAD"], deadline)?;
    let commit = match head {
        GitOutput::Success(text) => Some(text.trim().to_owned()).filter(|c| is_object_id(c)),
        GitOutput::Failed(128) => return None, // Not a repository.
        GitOutput::Failed(_) => None,          // Unborn branch.
    };
    let remote_url = match git_output(dir, &["config", "--get", "remote.origin.url"], deadline) {
        Some(GitOutput::Success(text)) => Some(text.trim().to_owned())
            .filter(|u| !u.is_empty())
            .map(|u| strip_credentials(&u)),
        _ => None,
    };
    Some(GitInfo { remote_url, commit })
}

/// How a git command ended.
enum GitOutput {
    /// Exit status 0, with its standard output.
    Success(String),
    /// A non-zero exit status (-1 when killed by a signal).
    Failed(i32),
}

/// Runs `git <args>` in `dir`; `None` if git cannot start or runs past `deadline` (it is then
/// killed).
fn git_output(dir: &Path, args: &[&str], deadline: Instant) -> Option<GitOutput> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return Some(GitOutput::Failed(status.code().unwrap_or(-1)));
    }
    // The outputs are a few dozen bytes: git has exited, so this cannot block.
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    Some(GitOutput::Success(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_like_wandb() {
        let cases = [
            (
                "https://user:s3cret@github.com/org/repo.git",
                "https://user:@github.com/org/repo.git",
            ),
            (
                "https://ghp_token@github.com/org/repo.git",
                "https://github.com/org/repo.git",
            ),
            (
                "https://github.com/org/repo.git",
                "https://github.com/org/repo.git",
            ),
            ("HTTPS://GitHub.COM/Org/Repo", "https://github.com/Org/Repo"),
            (
                "ssh://git@example.com:2222/x.git",
                "ssh://example.com:2222/x.git",
            ),
            (
                "https://u:p@w@host:8443/p?q=1#f",
                "https://u:@host:8443/p?q=1#f",
            ),
            ("https://u:p@[::1]:8080/x", "https://u:@[::1]:8080/x"),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
            ("github.com:org/repo.git", "github.com:org/repo.git"),
            ("/srv/git/repo.git", "/srv/git/repo.git"),
            ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
            ("https://user:pw@/nohost", "https://user:pw@/nohost"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(strip_credentials(input), expected, "{input}");
        }
    }

    #[test]
    fn config_parser() {
        let text = "[core]\n\trepositoryformatversion = 0\n\tbare\n\
                    [remote \"origin\"]\n\turl = \"https://h/x\" ; comment\n\tfetch = +refs/*:refs/*\n\
                    [Remote \"Other\"] url=a\\\n  b\n[branch.Main]\n  remote = origin # c\n\
                    [broken\nkey-without-section=1\n[x]\n  bad key = 1\n  v = \"a\\\"b\\\\c\\td\"\n";
        let entries = parse_config(text);
        let find = |section: &str, sub: Option<&str>, key: &str| {
            entries
                .iter()
                .find(|e| e.section == section && e.subsection.as_deref() == sub && e.key == key)
                .map(|e| e.value.clone())
        };
        assert_eq!(find("core", None, "bare").as_deref(), Some("true"));
        assert_eq!(
            find("remote", Some("origin"), "url").as_deref(),
            Some("https://h/x")
        );
        assert_eq!(
            find("remote", Some("Other"), "url").as_deref(),
            Some("a  b")
        );
        assert_eq!(
            find("branch", Some("main"), "remote").as_deref(),
            Some("origin")
        );
        assert_eq!(find("x", None, "v").as_deref(), Some("a\"b\\c\td"));
        assert!(entries.iter().all(|e| e.key != "bad key"));
    }

    /// Runs git in `dir` for test setup; panics (fails the test) if git fails.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn temp_repository_fast_path_matches_git() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        fs::create_dir(&repo).unwrap();
        let sub = repo.join("a/b");
        fs::create_dir_all(&sub).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);

        // No commit yet, no remote.
        assert_eq!(read_repository(&sub).unwrap(), Some(GitInfo::default()));

        fs::write(repo.join("f.txt"), "x").unwrap();
        git(&repo, &["add", "f.txt"]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        git(
            &repo,
            &[
                "remote",
                "add",
                "origin",
                "https://alice:hunter2@Example.com/org/repo.git",
            ],
        );
        let head = git(&repo, &["rev-parse", "HEAD"]);
        let expected = GitInfo {
            remote_url: Some("https://alice:@example.com/org/repo.git".into()),
            commit: Some(head.clone()),
        };
        assert_eq!(read_repository(&sub).unwrap(), Some(expected.clone()));
        assert_eq!(
            run_git(&sub, Duration::from_secs(10)),
            Some(expected.clone())
        );
        assert_eq!(
            detect(&sub, Duration::from_secs(10)),
            Some(expected.clone())
        );

        // Packed refs, then a detached HEAD.
        git(&repo, &["pack-refs", "--all"]);
        assert!(!repo.join(".git/refs/heads/main").exists());
        assert_eq!(read_repository(&repo).unwrap(), Some(expected.clone()));
        git(&repo, &["checkout", "-q", "--detach"]);
        assert_eq!(read_repository(&repo).unwrap(), Some(expected.clone()));

        // A linked worktree (a `.git` file plus `commondir`).
        git(&repo, &["checkout", "-q", "main"]);
        let worktree = tmp.path().join("wt");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "side",
                worktree.to_str().unwrap(),
            ],
        );
        fs::write(worktree.join("g.txt"), "y").unwrap();
        git(&worktree, &["add", "g.txt"]);
        git(&worktree, &["commit", "-q", "-m", "second"]);
        let side = git(&worktree, &["rev-parse", "HEAD"]);
        assert_ne!(side, head);
        let fast = read_repository(&worktree).unwrap().unwrap();
        assert_eq!(fast.commit.as_deref(), Some(side.as_str()));
        assert_eq!(fast.remote_url, expected.remote_url);
        assert_eq!(run_git(&worktree, Duration::from_secs(10)), Some(fast));

        // An include directive sends us to the git executable, which gives the same answer.
        let config = repo.join(".git/config");
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str("[include]\n\tpath = extra.config\n");
        fs::write(&config, text).unwrap();
        assert!(read_repository(&repo).is_err());
        assert_eq!(detect(&repo, Duration::from_secs(10)), Some(expected));

        // Outside any repository.
        let outside = tmp.path().join("plain");
        fs::create_dir(&outside).unwrap();
        assert_eq!(read_repository(&outside).unwrap(), None);
        assert_eq!(run_git(&outside, Duration::from_secs(10)), None);
    }

    #[test]
    fn hostile_files_do_not_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let git_dir = tmp.path().join(".git");
        fs::create_dir_all(&git_dir).unwrap();
        for head in [
            "ref: ../../../etc/passwd",
            "ref: ",
            "garbage",
            "ref: refs/heads/x",
        ] {
            fs::write(git_dir.join("HEAD"), head).unwrap();
            let _ = read_repository(tmp.path());
        }
        // A symbolic ref loop ends in Unsupported, not a stack overflow.
        fs::create_dir_all(git_dir.join("refs/heads")).unwrap();
        fs::write(git_dir.join("HEAD"), "ref: refs/heads/a").unwrap();
        fs::write(git_dir.join("refs/heads/a"), "ref: refs/heads/b").unwrap();
        fs::write(git_dir.join("refs/heads/b"), "ref: refs/heads/a").unwrap();
        assert!(read_repository(tmp.path()).is_err());
        // A `.git` file pointing nowhere is not a repository.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(".git"), "gitdir: /nonexistent/dir").unwrap();
        assert_eq!(find_git_dir(other.path()), find_git_dir(Path::new("/")));
    }
}
