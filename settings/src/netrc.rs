//! A `.netrc` reader that behaves like Python's `netrc` module (3.11+), which W&B uses.
//!
//! Tokens are separated by space, tab, CR and LF; `"..."` quotes and `\` escapes work as in
//! Python's lexer. Entries are `machine <name>` or `default`, followed by `login`/`user`,
//! `account` and `password` tokens; `macdef <name>` skips lines up to an empty one. `#` comments
//! follow Python's rules exactly, quirks included (a comment that starts a line directly after a
//! blank line inside an entry is read as tokens). A later entry for the same machine replaces
//! an earlier one. Error messages never include tokens, which might be secrets.

use std::collections::HashMap;
use std::fmt;

/// One machine's credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NetrcEntry {
    pub(crate) login: String,
    pub(crate) account: String,
    pub(crate) password: String,
}

impl fmt::Debug for NetrcEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetrcEntry")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// A parsed netrc file.
#[derive(Debug, Default)]
pub(crate) struct Netrc {
    hosts: HashMap<String, NetrcEntry>,
}

/// A syntax error, with the line Python would report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetrcError {
    pub(crate) line: usize,
    pub(crate) kind: NetrcErrorKind,
}

/// Kinds of netrc syntax errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetrcErrorKind {
    /// A token other than `machine`, `default`, `macdef` at the top level.
    BadToplevel,
    /// A token other than `login`, `user`, `account`, `password` inside an entry.
    BadFollower,
    /// `machine` or `macdef` without a name.
    MissingName,
    /// A `macdef` not ended by an empty line.
    UnterminatedMacro,
}

impl fmt::Display for NetrcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            NetrcErrorKind::BadToplevel => "unexpected token at top level",
            NetrcErrorKind::BadFollower => "unexpected token in machine entry",
            NetrcErrorKind::MissingName => "missing machine or macro name",
            NetrcErrorKind::UnterminatedMacro => "macro definition not ended by an empty line",
        };
        write!(f, "line {}: {what}", self.line)
    }
}

impl Netrc {
    /// Parses netrc text.
    pub(crate) fn parse(text: &str) -> Result<Netrc, NetrcError> {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut lex = Lexer {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            pushback: None,
        };
        let mut hosts = HashMap::new();
        let err = |lex: &Lexer, kind| NetrcError {
            line: lex.line,
            kind,
        };

        loop {
            let saved_line = lex.line;
            let tt = lex.token();
            if tt.is_empty() {
                break;
            }
            if tt.starts_with('#') {
                if lex.line == saved_line && tt.chars().count() == 1 {
                    lex.skip_line();
                }
                continue;
            }
            let name = match tt.as_str() {
                "machine" => lex.token(),
                "default" => "default".to_owned(),
                "macdef" => {
                    // The name is read and discarded; the body runs to an empty line.
                    let _name = lex.token();
                    loop {
                        let line = lex.skip_line();
                        if line.is_empty() {
                            return Err(err(&lex, NetrcErrorKind::UnterminatedMacro));
                        }
                        if line == "\n" {
                            break;
                        }
                    }
                    continue;
                }
                _ => return Err(err(&lex, NetrcErrorKind::BadToplevel)),
            };
            if name.is_empty() {
                return Err(err(&lex, NetrcErrorKind::MissingName));
            }

            let mut entry = NetrcEntry {
                login: String::new(),
                account: String::new(),
                password: String::new(),
            };
            loop {
                let prev_line = lex.line;
                let tt = lex.token();
                if tt.starts_with('#') {
                    if lex.line == prev_line {
                        lex.skip_line();
                    }
                    continue;
                }
                match tt.as_str() {
                    "" | "machine" | "default" | "macdef" => {
                        hosts.insert(name, entry);
                        lex.pushback = Some(tt);
                        break;
                    }
                    "login" | "user" => entry.login = lex.token(),
                    "account" => entry.account = lex.token(),
                    "password" => entry.password = lex.token(),
                    _ => return Err(err(&lex, NetrcErrorKind::BadFollower)),
                }
            }
        }
        Ok(Netrc { hosts })
    }

    /// The entry for `machine`, else the `default` entry, as Python's `authenticators`.
    pub(crate) fn authenticators(&self, machine: &str) -> Option<&NetrcEntry> {
        self.hosts
            .get(machine)
            .or_else(|| self.hosts.get("default"))
    }
}

/// Python's `_netrclex`, including its line counting (which `skip_line` does not advance).
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    pushback: Option<String>,
}

impl Lexer {
    fn read_char(&mut self) -> Option<char> {
        let c = *self.chars.get(self.pos)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn is_space(c: char) -> bool {
        matches!(c, '\n' | '\t' | '\r' | ' ')
    }

    /// The next token, or an empty string at the end.
    fn token(&mut self) -> String {
        if let Some(t) = self.pushback.take() {
            return t;
        }
        let mut token = String::new();
        while let Some(c) = self.read_char() {
            if Self::is_space(c) {
                continue;
            }
            if c == '"' {
                while let Some(c) = self.read_char() {
                    if c == '"' {
                        return token;
                    }
                    if c == '\\' {
                        token.extend(self.read_char());
                    } else {
                        token.push(c);
                    }
                }
                return token;
            }
            if c == '\\' {
                token.extend(self.read_char());
            } else {
                token.push(c);
            }
            while let Some(c) = self.read_char() {
                if Self::is_space(c) {
                    return token;
                }
                if c == '\\' {
                    token.extend(self.read_char());
                } else {
                    token.push(c);
                }
            }
            return token;
        }
        token
    }

    /// Python's `readline()` on the underlying stream: the rest of the line including `\n`
    /// (empty at the end). Like Python, it does not count the line.
    fn skip_line(&mut self) -> String {
        let mut line = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            self.pos += 1;
            line.push(c);
            if c == '\n' {
                break;
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str, machine: &str) -> Option<String> {
        Netrc::parse(text)
            .ok()?
            .authenticators(machine)
            .map(|e| e.password.clone())
    }

    // Expected results below were checked against CPython 3.11's netrc module.

    #[test]
    fn basic_and_default() {
        let text =
            "machine api.wandb.ai\n  login user\n  password abc\ndefault login x password d\n";
        assert_eq!(password(text, "api.wandb.ai").as_deref(), Some("abc"));
        assert_eq!(password(text, "other").as_deref(), Some("d"));
        assert_eq!(password("machine a password b", "c"), None);
    }

    #[test]
    fn one_line_quotes_escapes_and_user() {
        let text =
            "machine h:8080 user u password \"p w\\\"x\" account a\nmachine e password a\\ b";
        assert_eq!(password(text, "h:8080").as_deref(), Some("p w\"x"));
        assert_eq!(password(text, "e").as_deref(), Some("a b"));
    }

    #[test]
    fn last_entry_wins() {
        assert_eq!(
            password("machine a password 1\nmachine a password 2\n", "a").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn comments() {
        let text = "# top comment\nmachine a # trailing words\n  password b\n";
        assert_eq!(password(text, "a").as_deref(), Some("b"));
        // Python quirk: "#word" at top level skips only that token.
        assert_eq!(
            Netrc::parse("#comment words\nmachine a password b\n").map(|_| ()),
            Err(NetrcError {
                line: 2,
                kind: NetrcErrorKind::BadToplevel
            })
        );
        // Python quirk: a comment after a blank line inside an entry is read as tokens.
        assert_eq!(
            Netrc::parse("machine a password b\n\n# comment here\n").map(|_| ()),
            Err(NetrcError {
                line: 3,
                kind: NetrcErrorKind::BadFollower
            })
        );
    }

    #[test]
    fn macdef() {
        let text = "macdef init\ncd /x\nput y\n\nmachine a password b\n";
        assert_eq!(password(text, "a").as_deref(), Some("b"));
        assert_eq!(
            Netrc::parse("macdef init\ncd /x\n").map(|_| ()),
            Err(NetrcError {
                line: 2,
                kind: NetrcErrorKind::UnterminatedMacro
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            Netrc::parse("machine").map(|_| ()),
            Err(NetrcError {
                line: 1,
                kind: NetrcErrorKind::MissingName
            })
        );
        assert_eq!(
            Netrc::parse("machine a pass b").map(|_| ()),
            Err(NetrcError {
                line: 1,
                kind: NetrcErrorKind::BadFollower
            })
        );
        assert_eq!(
            Netrc::parse("login x").map(|_| ()),
            Err(NetrcError {
                line: 1,
                kind: NetrcErrorKind::BadToplevel
            })
        );
        let e = Netrc::parse("machine a password my secret\n").map(|_| ());
        assert!(e.is_err());
        assert!(!format!("{e:?}").contains("secret"));
    }

    #[test]
    fn empty_quoted_token_ends_parsing() {
        assert_eq!(password("\"\" machine a password b", "a"), None);
    }
}
