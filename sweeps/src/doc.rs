//! The configuration document as a tree whose every node remembers its line.
//!
//! YAML (1.2) and JSON are read by `saphyr` into [`Node`]s; a configuration given as a
//! `serde_json::Value` (from a persisted sweep) becomes the same tree with line 0 ("unknown").
//! The validator in `config.rs` walks this tree, so each error can name the line and the key.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::error::{ConfigError, ConfigErrorKind};

/// One node of the document, with the 1-based line it starts on (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) kind: NodeKind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order: key, the key's line, value.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// A short description of what the node is, for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Null => "null".to_owned(),
            NodeKind::Bool(b) => format!("{b}"),
            NodeKind::Int(i) => format!("{i}"),
            NodeKind::Float(f) => format!("{f}"),
            NodeKind::Str(s) => format!("{s:?}"),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => "a mapping".to_owned(),
        }
    }

    /// The node as JSON; non-finite floats (the error has their line) (YAML's `.inf`, `.nan`) have no JSON form and are refused.
    pub(crate) fn to_json(&self) -> Result<serde_json::Value, (usize, ConfigErrorKind)> {
        use serde_json::Value;
        Ok(match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => {
                    return Err((
                        self.line,
                        ConfigErrorKind::NonFinite {
                            found: format!("{f}"),
                        },
                    ));
                }
            },
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => {
                Value::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            NodeKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, _, v) in entries {
                    map.insert(k.clone(), v.to_json()?);
                }
                Value::Object(map)
            }
        })
    }

    /// The tree of a JSON value; every line is 0 (unknown).
    pub(crate) fn from_json(value: &serde_json::Value) -> Node {
        use serde_json::Value;
        let kind = match value {
            Value::Null => NodeKind::Null,
            Value::Bool(b) => NodeKind::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => NodeKind::Int(i),
                None => NodeKind::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => NodeKind::Str(s.clone()),
            Value::Array(items) => NodeKind::Seq(items.iter().map(Node::from_json).collect()),
            Value::Object(map) => NodeKind::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), 0, Node::from_json(v)))
                    .collect(),
            ),
        };
        Node { line: 0, kind }
    }
}

/// How deep collections may nest: far beyond any sweep configuration, far below what would
/// exhaust a thread's stack in the parser, the conversion or the drop of the tree.
pub(crate) const MAX_DEPTH: usize = 128;

/// The deepest nesting of flow collections (`[`, `{`) in the text, quoted scalars and comments
/// skipped, with the line where it is first exceeded: checked before the parser builds a tree.
fn flow_depth_exceeded(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if prev.is_whitespace() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '\'' if !prev.is_alphanumeric() => {
                for c in chars.by_ref() {
                    match c {
                        '\'' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > max {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    None
}

/// Parses YAML 1.2 (JSON included) into a tree; `file` names the source in errors.
pub(crate) fn parse(text: &str, file: Option<&str>) -> Result<Node, ConfigError> {
    let at = |line: usize, kind: ConfigErrorKind| ConfigError {
        file: file.map(str::to_owned),
        line,
        key: String::new(),
        kind,
    };
    if let Some(line) = flow_depth_exceeded(text, MAX_DEPTH) {
        return Err(at(line, ConfigErrorKind::TooDeep { max: MAX_DEPTH }));
    }
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(docs) => docs,
        Err(err) => {
            // saphyr reads YAML 1.2, whose flow syntax covers JSON; a JSON document it still
            // refuses (tabs before a key, say) is read as JSON, without lines.
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                return Ok(Node::from_json(&value));
            }
            return Err(at(
                err.marker().line(),
                ConfigErrorKind::Syntax {
                    message: err.info().to_owned(),
                },
            ));
        }
    };
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(at(1, ConfigErrorKind::Empty));
    };
    if let Some(second) = docs.next() {
        return Err(at(
            second.span.start.line(),
            ConfigErrorKind::MultipleDocuments,
        ));
    }
    convert(doc, "", 0).map_err(|(line, key, kind)| ConfigError {
        file: file.map(str::to_owned),
        line,
        key,
        kind,
    })
}

type ConvertError = (usize, String, ConfigErrorKind);

fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn scalar_kind(scalar: Scalar<'_>) -> NodeKind {
    match scalar {
        Scalar::Null => NodeKind::Null,
        Scalar::Boolean(b) => NodeKind::Bool(b),
        Scalar::Integer(i) => NodeKind::Int(i),
        Scalar::FloatingPoint(f) => NodeKind::Float(f.into_inner()),
        Scalar::String(s) => NodeKind::Str(s.into_owned()),
    }
}

fn convert(node: MarkedYaml<'_>, key: &str, depth: usize) -> Result<Node, ConvertError> {
    let line = node.span.start.line();
    if depth > MAX_DEPTH {
        return Err((
            line,
            key.to_owned(),
            ConfigErrorKind::TooDeep { max: MAX_DEPTH },
        ));
    }
    let kind = match node.data {
        YamlData::Value(scalar) => scalar_kind(scalar),
        YamlData::Representation(text, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(text, style, tag.as_ref()) {
                Some(scalar) => scalar_kind(scalar),
                None => return Err((line, key.to_owned(), ConfigErrorKind::BadTaggedValue)),
            }
        }
        YamlData::Tagged(_, inner) => return convert(*inner, key, depth),
        YamlData::Sequence(items) => NodeKind::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(idx, item)| convert(item, &format!("{key}[{idx}]"), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key_line = k.span.start.line();
                let name = match convert(k, key, depth + 1)?.kind {
                    NodeKind::Str(s) => s,
                    // W&B's keys are strings; a number or boolean key is written as text, the way
                    // a JSON round trip of the Python dictionary would.
                    NodeKind::Int(i) => i.to_string(),
                    NodeKind::Bool(b) => b.to_string(),
                    other => {
                        return Err((
                            key_line,
                            key.to_owned(),
                            ConfigErrorKind::ExpectedType {
                                expected: "a string key",
                                found: Node {
                                    line: key_line,
                                    kind: other,
                                }
                                .describe(),
                            },
                        ));
                    }
                };
                let value = convert(v, &child_key(key, &name), depth + 1)?;
                entries.push((name, key_line, value));
            }
            NodeKind::Map(entries)
        }
        YamlData::Alias(_) => return Err((line, key.to_owned(), ConfigErrorKind::Alias)),
        YamlData::BadValue => return Err((line, key.to_owned(), ConfigErrorKind::BadTaggedValue)),
    };
    Ok(Node { line, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let text = format!("a: {}1{}\n", open.repeat(100_000), close.repeat(100_000));
            let err = parse(&text, Some("deep.yaml")).unwrap_err();
            assert_eq!(
                err.to_string(),
                "deep.yaml:1: collections nested deeper than 128 levels"
            );
        }
        // Brackets in quotes and comments do not count.
        let text = format!(
            "a: '{}'  # {}\nb: \"{}\"\n",
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500)
        );
        assert!(parse(&text, None).is_ok());
        // Block nesting deeper than the limit.
        let mut text = String::new();
        for level in 0..200 {
            text.push_str(&" ".repeat(level));
            text.push_str("k:\n");
        }
        let err = parse(&text, None).unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::TooDeep { .. }), "{err}");
    }
}
