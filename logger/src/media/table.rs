//! [`Table`]: columns and rows, stored as the SDK's `.table.json` file.

use std::fmt;
use std::sync::{Arc, OnceLock};

use wandb_format::json;

use crate::error::{Error, Result};
use crate::media::{FileMedia, sha256_hex};

/// A table, logged as the SDK's `table-file` value with its `{"columns": [...], "data":
/// [[...], ...]}` file under `files/media/table/`.
///
/// Cells are plain JSON values (numbers, strings, booleans, `null`, lists, objects). As in the
/// SDK, the file holds at most [`Table::MAX_ROWS`] rows; `nrows` counts them all.
#[derive(Clone)]
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<json::Value>>,
    /// The file's bytes and their hash, made on first use.
    file: OnceLock<(Arc<[u8]>, String)>,
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
        Ok(())
    }

    fn check_row(&self, idx: usize, row: &[json::Value]) -> Result<()> {
        if row.len() == self.columns.len() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            what: "table row",
            reason: format!(
                "row {idx} has {} cell(s), the table has {} column(s)",
                row.len(),
                self.columns.len()
            ),
        })
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
        map.insert("path", json::Value::String(path.to_owned()));
        map.insert("ncols", json::Value::from(self.columns.len() as u64));
        map.insert("nrows", json::Value::from(self.rows.len() as u64));
        map.insert("log_mode", json::Value::String("IMMUTABLE".to_owned()));
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
