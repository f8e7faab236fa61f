//! A reader for INI settings files that behaves like Python's `configparser.ConfigParser` with
//! its defaults, and records the line of every key.
//!
//! What it reproduces: `[section]` headers (section names are case-sensitive; `[DEFAULT]` holds
//! values shared by every section); `key = value` or `key: value` split at the first `=` or `:`;
//! keys lowercased and values trimmed; full-line comments starting with `#` or `;` (no inline
//! comments); continuation lines indented deeper than their key, with blank lines kept inside a
//! value and trailing ones dropped; duplicate sections or keys are errors; `%%` and `%(name)s`
//! interpolation. Any error makes the whole file unusable, as in Python.

use std::collections::HashSet;
use std::fmt;

use crate::validate::{py_is_space, py_trim};

/// Python's limit on nested `%(name)s` references.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// The name of the section whose values every section inherits.
const DEFAULT_SECTION: &str = "DEFAULT";

/// One `key = value` item of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniItem {
    /// Lowercased key.
    pub(crate) key: String,
    /// Value, continuation lines joined with `\n`, interpolated when read via
    /// [`Ini::section_items`].
    pub(crate) value: String,
    /// 1-based line of the key.
    pub(crate) line: usize,
}

/// Why a file could not be read, with the messages Python would give (shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IniError {
    /// A key before any section header.
    MissingSectionHeader { line: usize },
    /// Lines that are neither headers, keys, comments nor continuations.
    Parsing { lines: Vec<usize> },
    /// A section header repeated.
    DuplicateSection { section: String, line: usize },
    /// A key repeated within a section.
    DuplicateOption {
        section: String,
        option: String,
        line: usize,
    },
    /// A bad `%` reference in a value.
    Interpolation {
        option: String,
        line: usize,
        message: String,
    },
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IniError::MissingSectionHeader { line } => {
                write!(f, "line {line}: key outside of any [section]")
            }
            IniError::Parsing { lines } => {
                let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
                write!(f, "cannot parse line {}", lines.join(", "))
            }
            IniError::DuplicateSection { section, line } => {
                write!(f, "line {line}: section {section:?} already exists")
            }
            IniError::DuplicateOption {
                section,
                option,
                line,
            } => {
                write!(
                    f,
                    "line {line}: key {option:?} in section {section:?} already exists"
                )
            }
            IniError::Interpolation {
                option,
                line,
                message,
            } => {
                write!(
                    f,
                    "line {line}: bad interpolation in key {option:?}: {message}"
                )
            }
        }
    }
}

/// A raw item: value lines not yet joined.
#[derive(Debug)]
struct RawItem {
    key: String,
    lines: Vec<String>,
    line: usize,
}

#[derive(Debug)]
struct Section {
    name: String,
    items: Vec<RawItem>,
}

/// A parsed file.
#[derive(Debug, Default)]
pub(crate) struct Ini {
    defaults: Vec<IniItem>,
    sections: Vec<(String, Vec<IniItem>)>,
}

/// Which section the parser is filling.
#[derive(Clone, Copy)]
enum Current {
    Defaults,
    Section(usize),
}

/// Parses `text` as Python's `ConfigParser.read` would.
pub(crate) fn parse(text: &str) -> Result<Ini, IniError> {
    // Python reads files with universal newlines.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }

    let mut defaults: Vec<RawItem> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<Current> = None;
    // Index of the item that continuation lines extend, within the current section.
    let mut option: Option<usize> = None;
    let mut indent_level = 0usize;
    let mut seen_options: HashSet<(String, String)> = HashSet::new();
    let mut bad_lines = Vec::new();

    for (index, line) in lines.iter().enumerate() {
        let lineno = index + 1;
        let stripped = py_trim(line);
        let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
        let value = if is_comment { "" } else { stripped };

        if value.is_empty() {
            // A blank line (not a comment) inside a value is kept; it ends nothing.
            if let (false, Some(cur), Some(opt)) = (is_comment, current, option) {
                section_items(cur, &mut defaults, &mut sections)[opt]
                    .lines
                    .push(String::new());
            }
            continue;
        }

        let cur_indent = line.chars().position(|c| !py_is_space(c)).unwrap_or(0);
        if let (Some(cur), Some(opt)) = (current, option)
            && cur_indent > indent_level
        {
            section_items(cur, &mut defaults, &mut sections)[opt]
                .lines
                .push(value.to_owned());
            continue;
        }
        indent_level = cur_indent;

        if let Some(header) = section_header(value) {
            if header == DEFAULT_SECTION {
                current = Some(Current::Defaults);
            } else if sections.iter().any(|s| s.name == header) {
                return Err(IniError::DuplicateSection {
                    section: header.to_owned(),
                    line: lineno,
                });
            } else {
                sections.push(Section {
                    name: header.to_owned(),
                    items: Vec::new(),
                });
                current = Some(Current::Section(sections.len() - 1));
            }
            option = None;
            continue;
        }

        let Some(cur) = current else {
            return Err(IniError::MissingSectionHeader { line: lineno });
        };

        let Some((name, val)) = split_option(value) else {
            // Python records the error and goes on; the previous key stays open.
            bad_lines.push(lineno);
            continue;
        };
        if name.is_empty() {
            bad_lines.push(lineno);
            option = None;
            continue;
        }
        let key = name.to_lowercase();
        let section_name = match cur {
            Current::Defaults => DEFAULT_SECTION.to_owned(),
            Current::Section(i) => sections[i].name.clone(),
        };
        if !seen_options.insert((section_name.clone(), key.clone())) {
            return Err(IniError::DuplicateOption {
                section: section_name,
                option: key,
                line: lineno,
            });
        }
        let items = section_items(cur, &mut defaults, &mut sections);
        items.push(RawItem {
            key,
            lines: vec![val.to_owned()],
            line: lineno,
        });
        option = Some(items.len() - 1);
    }

    if !bad_lines.is_empty() {
        return Err(IniError::Parsing { lines: bad_lines });
    }

    let join = |items: Vec<RawItem>| -> Vec<IniItem> {
        items
            .into_iter()
            .map(|item| IniItem {
                key: item.key,
                value: item
                    .lines
                    .join("\n")
                    .trim_end_matches(py_is_space)
                    .to_owned(),
                line: item.line,
            })
            .collect()
    };
    Ok(Ini {
        defaults: join(defaults),
        sections: sections
            .into_iter()
            .map(|s| (s.name, join(s.items)))
            .collect(),
    })
}

/// The item list the parser is filling.
fn section_items<'a>(
    cur: Current,
    defaults: &'a mut Vec<RawItem>,
    sections: &'a mut [Section],
) -> &'a mut Vec<RawItem> {
    match cur {
        Current::Defaults => defaults,
        Current::Section(i) => &mut sections[i].items,
    }
}

/// The name in a `[name]` header: everything up to the last `]`, which must leave at least one
/// character. Text after the `]` is ignored, as Python's pattern does.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// Splits `key = value` / `key: value` at the first delimiter; both sides trimmed.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let at = value.find(['=', ':'])?;
    let name = value[..at].trim_end_matches(py_is_space);
    let val = py_trim(&value[at + 1..]);
    Some((name, val))
}

impl Ini {
    /// The items of `section` plus those inherited from `[DEFAULT]`, interpolated, or `None` if
    /// there is no such section. Inherited items come first, as in Python.
    pub(crate) fn section_items(&self, section: &str) -> Result<Option<Vec<IniItem>>, IniError> {
        let Some((_, own)) = self.sections.iter().find(|(name, _)| name == section) else {
            return Ok(None);
        };
        let mut merged: Vec<IniItem> = self.defaults.clone();
        for item in own {
            match merged.iter_mut().find(|m| m.key == item.key) {
                Some(existing) => *existing = item.clone(),
                None => merged.push(item.clone()),
            }
        }
        let mut out = Vec::with_capacity(merged.len());
        for item in &merged {
            let mut value = String::new();
            interpolate(&item.key, item.line, &item.value, &merged, 1, &mut value)?;
            out.push(IniItem {
                key: item.key.clone(),
                value,
                line: item.line,
            });
        }
        Ok(Some(out))
    }
}

/// Python's `BasicInterpolation`: `%%` is `%`, `%(name)s` is the value of `name` in the same
/// section (or `[DEFAULT]`), expanded in turn.
fn interpolate(
    option: &str,
    line: usize,
    value: &str,
    map: &[IniItem],
    depth: usize,
    out: &mut String,
) -> Result<(), IniError> {
    let err = |message: String| IniError::Interpolation {
        option: option.to_owned(),
        line,
        message,
    };
    if depth > MAX_INTERPOLATION_DEPTH {
        return Err(err("references nested too deeply".to_owned()));
    }
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let after = &rest[1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            let reference = inner
                .find(')')
                .filter(|close| *close > 0 && inner[close + 1..].starts_with('s'))
                .ok_or_else(|| err("bad variable reference; expected %(name)s".to_owned()))?;
            let name = inner[..reference].to_lowercase();
            rest = &inner[reference + 2..];
            let target = map
                .iter()
                .find(|m| m.key == name)
                .ok_or_else(|| err(format!("no key {name:?} to substitute")))?;
            if target.value.contains('%') {
                interpolate(option, line, &target.value, map, depth + 1, out)?;
            } else {
                out.push_str(&target.value);
            }
        } else {
            return Err(err("'%' must be followed by '%' or '('".to_owned()));
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Result<Vec<(String, String, usize)>, IniError> {
        let ini = parse(text)?;
        Ok(ini
            .section_items("default")?
            .unwrap_or_default()
            .into_iter()
            .map(|i| (i.key, i.value, i.line))
            .collect())
    }

    fn kv(text: &str) -> Vec<(String, String)> {
        items(text)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // Expected values below were checked against CPython 3.11's configparser.

    #[test]
    fn continuation_blank_lines_and_comments() {
        let text = "[default]\nkey = a\n\n  b\n# c\n  ; x\n  d\n\nother: 1\n";
        assert_eq!(kv(text), pairs(&[("key", "a\n\nb\nd"), ("other", "1")]));
    }

    #[test]
    fn indented_keys() {
        let text = "[default]\n  key = a\n    b\n  c = 2\n";
        assert_eq!(kv(text), pairs(&[("key", "a\nb"), ("c", "2")]));
    }

    #[test]
    fn header_junk_and_case_and_delimiters() {
        assert_eq!(kv("[default] junk\nKEY:a=b\n"), pairs(&[("key", "a=b")]));
    }

    #[test]
    fn defaults_and_interpolation() {
        let text = "[DEFAULT]\nx=1\n[default]\ny=%(x)s%%\n";
        assert_eq!(kv(text), pairs(&[("x", "1"), ("y", "1%")]));
        assert!(matches!(
            items("[default]\ny=%z\n"),
            Err(IniError::Interpolation { .. })
        ));
        assert!(matches!(
            items("[default]\ny=%(nope)s\n"),
            Err(IniError::Interpolation { .. })
        ));
        let deep = "[default]\na=%(a)s\n";
        assert!(matches!(items(deep), Err(IniError::Interpolation { .. })));
    }

    #[test]
    fn errors() {
        assert_eq!(
            items("[default]\nx=1\nX=2\n"),
            Err(IniError::DuplicateOption {
                section: "default".into(),
                option: "x".into(),
                line: 3
            })
        );
        assert_eq!(
            items("[default]\n=1\n"),
            Err(IniError::Parsing { lines: vec![2] })
        );
        assert_eq!(
            items("x=1\n[default]\n"),
            Err(IniError::MissingSectionHeader { line: 1 })
        );
        assert_eq!(
            items("[default]\nx\ny\n"),
            Err(IniError::Parsing { lines: vec![2, 3] })
        );
        assert_eq!(
            items("[default]\nx=1\n[default]\n"),
            Err(IniError::DuplicateSection {
                section: "default".into(),
                line: 3
            })
        );
        assert_eq!(
            items("\u{feff}[default]\nx=1\n"),
            Err(IniError::MissingSectionHeader { line: 1 })
        );
    }

    #[test]
    fn no_inline_comments_and_empty_first_line() {
        assert_eq!(
            kv("[default]\nx = a ; not comment\n"),
            pairs(&[("x", "a ; not comment")])
        );
        assert_eq!(kv("[default]\nx=\n  a\n"), pairs(&[("x", "\na")]));
    }

    #[test]
    fn other_sections_and_line_numbers() {
        let text =
            "[other]\nmode = online\n[default]\n# c\nmode = offline\n[Default]\nproject = q\n";
        assert_eq!(items(text), Ok(vec![("mode".into(), "offline".into(), 5)]));
        assert_eq!(
            parse("[other]\nx=1\n").and_then(|i| i.section_items("default")),
            Ok(None)
        );
    }

    #[test]
    fn carriage_returns_are_newlines() {
        assert_eq!(
            kv("[default]\r\nx=1\ry=2\r\n"),
            pairs(&[("x", "1"), ("y", "2")])
        );
    }

    #[test]
    fn weird_headers() {
        assert_eq!(kv("[]]\nx=1\n[default]\nx = 3 \n"), pairs(&[("x", "3")]));
        assert_eq!(
            items("[]\n"),
            Err(IniError::MissingSectionHeader { line: 1 })
        );
    }
}
