//! [`Table`]: columns and rows, stored as the SDK's `.table.json` file.

use std::fmt;
use std::sync::{Arc, OnceLock};

use wandb_format::json;

use crate::error::{Error, Result};
use crate::media::{FileMedia, pyjson, sha256_hex};

/// A table, logged as the SDK's `table-file` value with its `{"columns": [...], "data":
/// [[...], ...]}` file under `files/media/table/`.
///
/// Cells are plain JSON values (numbers, strings, booleans, `null`, lists, objects). As in the
/// SDK, the file holds at most [`Table::MAX_ROWS`] rows; `nrows` counts them all.
///
/// Logged with [`Run::media`](crate::Run::media), a table is also the SDK's `run_table`
/// artifact `run-<run id>-<key>`: its `<key>.table.json` entry is the table as the SDK
/// serializes it for an artifact (at most [`Table::MAX_ARTIFACT_ROWS`] rows, with the column
/// types the SDK infers: `none`, `number`, `string`, `boolean`; a column of lists or objects
/// is typed `unknown`, where the SDK would describe their elements).
#[derive(Clone)]
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<json::Value>>,
    /// The file's bytes and their hash, made on first use.
    file: OnceLock<(Arc<[u8]>, String)>,
    /// The artifact entry's bytes and their base64 MD5, made on first use.
    artifact: OnceLock<(Arc<[u8]>, String)>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("columns", &self.columns)
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl Table {
    /// The most rows the SDK writes into a run's table file.
    pub const MAX_ROWS: usize = 10_000;

    /// The most rows the SDK writes into a table's artifact entry.
    pub const MAX_ARTIFACT_ROWS: usize = 200_000;

    /// The deepest nesting of lists and objects in a cell (the SDK's own `json.dump` gives up
    /// near Python's recursion limit of 1,000).
    pub const MAX_CELL_DEPTH: usize = 500;

    /// An empty table with these columns.
    pub fn new<I, S>(columns: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            file: OnceLock::new(),
            artifact: OnceLock::new(),
        }
    }

    /// A table with these columns and rows.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if a row does not have one cell per column.
    pub fn with_rows<I, S>(columns: I, rows: Vec<Vec<json::Value>>) -> Result<Table>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut table = Table::new(columns);
        for (idx, row) in rows.iter().enumerate() {
            table.check_row(idx, row)?;
        }
        table.rows = rows;
        Ok(table)
    }

    /// Adds a row.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if it does not have one cell per column.
    pub fn add_row(&mut self, row: Vec<json::Value>) -> Result<()> {
        self.check_row(self.rows.len(), &row)?;
        self.rows.push(row);
        self.file = OnceLock::new();
        self.artifact = OnceLock::new();
        Ok(())
    }

    fn check_row(&self, idx: usize, row: &[json::Value]) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(Error::InvalidArgument {
                what: "table row",
                reason: format!(
                    "row {idx} has {} cell(s), the table has {} column(s)",
                    row.len(),
                    self.columns.len()
                ),
            });
        }
        if let Some(col) = row
            .iter()
            .position(|cell| depth(cell) > Table::MAX_CELL_DEPTH)
        {
            return Err(Error::InvalidArgument {
                what: "table cell",
                reason: format!(
                    "row {idx}, column {:?} nests lists or objects deeper than {} levels",
                    self.columns.get(col).map_or("", String::as_str),
                    Table::MAX_CELL_DEPTH
                ),
            });
        }
        Ok(())
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The rows.
    pub fn rows(&self) -> &[Vec<json::Value>] {
        &self.rows
    }

    fn file(&self) -> &(Arc<[u8]>, String) {
        self.file.get_or_init(|| {
            let mut map = json::Map::with_capacity(2);
            map.insert(
                "columns",
                json::Value::Array(
                    self.columns
                        .iter()
                        .map(|c| json::Value::String(c.clone()))
                        .collect(),
                ),
            );
            map.insert(
                "data",
                json::Value::Array(
                    self.rows
                        .iter()
                        .take(Table::MAX_ROWS)
                        .map(|row| json::Value::Array(row.clone()))
                        .collect(),
                ),
            );
            let mut text = String::new();
            json::Value::Object(map).write_to(&mut text);
            let sha = sha256_hex(text.as_bytes());
            (Arc::from(text.into_bytes()), sha)
        })
    }

    /// The table's entry in its `run_table` artifact, as the SDK writes it (Python's
    /// `json.dump(table.to_json(artifact), f, sort_keys=True)`), and the entry's digest (base64
    /// MD5).
    pub(crate) fn artifact_entry(&self) -> &(Arc<[u8]>, String) {
        self.artifact.get_or_init(|| {
            let rows = &self.rows[..self.rows.len().min(Table::MAX_ARTIFACT_ROWS)];
            let mut map = json::Map::with_capacity(7);
            map.insert("_type", json::Value::String("table".to_owned()));
            map.insert("column_types", self.column_types(rows));
            map.insert("columns", self.columns_json());
            map.insert(
                "data",
                json::Value::Array(
                    rows.iter()
                        .map(|row| json::Value::Array(row.clone()))
                        .collect(),
                ),
            );
            map.insert("log_mode", json::Value::String("IMMUTABLE".to_owned()));
            map.insert("ncols", json::Value::from(self.columns.len() as u64));
            map.insert("nrows", json::Value::from(rows.len() as u64));
            let mut text = String::new();
            pyjson::write(&json::Value::Object(map), &mut text);
            let digest = wandb_format::artifact::file_digest(text.as_bytes());
            (Arc::from(text.into_bytes()), digest)
        })
    }

    fn columns_json(&self) -> json::Value {
        json::Value::Array(
            self.columns
                .iter()
                .map(|c| json::Value::String(c.clone()))
                .collect(),
        )
    }

    /// The SDK's `column_types` (a `typedDict` of one `union` per column) for these rows: each
    /// column starts as `none or unknown`, and the first cell of a type replaces `unknown`.
    fn column_types(&self, rows: &[Vec<json::Value>]) -> json::Value {
        let mut type_map = json::Map::with_capacity(self.columns.len());
        for (idx, name) in self.columns.iter().enumerate() {
            let mut kinds = std::collections::BTreeSet::new();
            for cell in rows.iter().filter_map(|row| row.get(idx)) {
                if let Some(kind) = CellKind::of(cell) {
                    kinds.insert(kind);
                }
            }
            if kinds.is_empty() {
                kinds.insert(CellKind::Unknown);
            }
            // The SDK sorts a union's types by their names, capitalized: `None` among them.
            let mut names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            names.push("none");
            names.sort_unstable();
            let allowed = names
                .into_iter()
                .map(|n| {
                    let mut t = json::Map::with_capacity(1);
                    t.insert("wb_type", json::Value::String(n.to_owned()));
                    json::Value::Object(t)
                })
                .collect();
            let mut params = json::Map::with_capacity(1);
            params.insert("allowed_types", json::Value::Array(allowed));
            let mut union = json::Map::with_capacity(2);
            union.insert("params", json::Value::Object(params));
            union.insert("wb_type", json::Value::String("union".to_owned()));
            type_map.insert(name.clone(), json::Value::Object(union));
        }
        let mut params = json::Map::with_capacity(1);
        params.insert("type_map", json::Value::Object(type_map));
        let mut dict = json::Map::with_capacity(2);
        dict.insert("params", json::Value::Object(params));
        dict.insert("wb_type", json::Value::String("typedDict".to_owned()));
        json::Value::Object(dict)
    }

    /// The value logged for the file at `path` when the table is also the artifact entry whose
    /// client URLs are `artifact_path` and `latest_artifact_path` (the SDK's key order).
    pub(crate) fn value_with_artifact(
        &self,
        path: &str,
        artifact_path: String,
        latest_artifact_path: String,
    ) -> json::Map {
        let mut map = json::Map::with_capacity(9);
        map.insert("_type", json::Value::String("table-file".to_owned()));
        map.insert("sha256", json::Value::String(self.sha256().to_owned()));
        map.insert("size", json::Value::from(self.bytes().len() as u64));
        map.insert("artifact_path", json::Value::String(artifact_path));
        map.insert(
            "_latest_artifact_path",
            json::Value::String(latest_artifact_path),
        );
        self.value_tail(path, &mut map);
        map
    }

    fn value_tail(&self, path: &str, map: &mut json::Map) {
        map.insert("path", json::Value::String(path.to_owned()));
        map.insert("ncols", json::Value::from(self.columns.len() as u64));
        map.insert("nrows", json::Value::from(self.rows.len() as u64));
        map.insert("log_mode", json::Value::String("IMMUTABLE".to_owned()));
    }
}

/// How deep lists and objects nest in `value` (a scalar is 0), without recursion.
fn depth(value: &json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            json::Value::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|v| (v, level + 1)));
            }
            json::Value::Object(map) => {
                deepest = deepest.max(level + 1);
                stack.extend(map.iter().map(|(_, v)| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// The SDK's type of a table cell (`TypeRegistry.type_of`), `None` for `null` and NaN (which
/// the SDK types as `none`). Ordered as the SDK sorts a union's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CellKind {
    Boolean,
    Number,
    String,
    /// Lists and objects: their types are not described here.
    Unknown,
}

impl CellKind {
    fn of(cell: &json::Value) -> Option<CellKind> {
        match cell {
            json::Value::Null => None,
            json::Value::Float(f) if f.is_nan() => None,
            json::Value::Bool(_) => Some(CellKind::Boolean),
            json::Value::Int(_) | json::Value::UInt(_) | json::Value::Float(_) => {
                Some(CellKind::Number)
            }
            json::Value::String(_) => Some(CellKind::String),
            json::Value::Array(_) | json::Value::Object(_) => Some(CellKind::Unknown),
        }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::Boolean => "boolean",
            CellKind::Number => "number",
            CellKind::String => "string",
            CellKind::Unknown => "unknown",
        }
    }
}

impl FileMedia for Table {
    fn media_subdir(&self) -> &'static str {
        "media/table"
    }

    fn extension(&self) -> &str {
        ".table.json"
    }

    fn bytes(&self) -> &Arc<[u8]> {
        &self.file().0
    }

    fn sha256(&self) -> &str {
        &self.file().1
    }

    fn value_for(&self, path: &str) -> json::Map {
        // The SDK's key order: Media.to_json, then Table.to_json.
        let mut map = json::Map::with_capacity(7);
        map.insert("_type", json::Value::String("table-file".to_owned()));
        map.insert("sha256", json::Value::String(self.sha256().to_owned()));
        map.insert("size", json::Value::from(self.bytes().len() as u64));
        self.value_tail(path, &mut map);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_the_sdk_layout() {
        let table = Table::with_rows(
            ["a", "b", "c"],
            vec![
                vec![
                    json::Value::Int(1),
                    json::Value::String("x".into()),
                    json::Value::Float(2.5),
                ],
                vec![
                    json::Value::Int(2),
                    json::Value::String("y".into()),
                    json::Value::Null,
                ],
            ],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(table.bytes()).unwrap(),
            r#"{"columns":["a","b","c"],"data":[[1,"x",2.5],[2,"y",null]]}"#
        );
        let value = table.value_for("media/table/t.table.json");
        assert_eq!(value.get("nrows"), Some(&json::Value::Int(2)));
        assert_eq!(
            value.get("_type").and_then(json::Value::as_str),
            Some("table-file")
        );
    }

    #[test]
    fn cells_nest_at_most_max_cell_depth() {
        let nested = |levels: usize| {
            let mut v = json::Value::Null;
            for _ in 0..levels {
                v = json::Value::Array(vec![v]);
            }
            v
        };
        let mut table = Table::new(["deep"]);
        table.add_row(vec![nested(Table::MAX_CELL_DEPTH)]).unwrap();
        let err = table
            .add_row(vec![nested(Table::MAX_CELL_DEPTH + 1)])
            .unwrap_err();
        assert!(
            err.to_string().contains("row 1, column \"deep\" nests"),
            "{err}"
        );
        // The artifact entry of the deepest cell allowed is written.
        assert!(table.artifact_entry().0.len() > 2 * Table::MAX_CELL_DEPTH);
    }

    #[test]
    fn rows_must_fit_the_columns() {
        let mut table = Table::new(["a"]);
        let err = table.add_row(vec![]).unwrap_err();
        assert!(
            err.to_string()
                .contains("row 0 has 0 cell(s), the table has 1 column(s)")
        );
        table.add_row(vec![json::Value::Bool(true)]).unwrap();
        let before = table.sha256().to_owned();
        table.add_row(vec![json::Value::Bool(false)]).unwrap();
        assert_ne!(table.sha256(), before, "the file follows the rows");
    }
}
