//! Allocation-free decoding of the records that make up the bulk of a `.wandb` file: history
//! rows whose items have a plain key (or a single `nested_key` part) and summary updates with
//! any key path (the SDK's `_wandb.runtime` has two parts), all with a `value_json`.
//!
//! [`parse_reusing`] reads the record with format's zero-copy views ([`wandb_format::RecordView`],
//! on `wandb_format::wire`'s cursor), which accept exactly what `prost` accepts and read the same
//! values. It takes history and summary records whose items have no typed value, and only when
//! the whole record is valid; anything else returns `None` and the caller decodes the record with
//! `prost`, which also words the error for damaged records.

use wandb_format::{Change, ItemView, RecordView};

/// One history or summary item, borrowed from the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FastItem<'a> {
    /// The `key` field ("" when absent).
    pub(crate) key: &'a str,
    /// The only `nested_key` part, if there is one.
    pub(crate) nested: Option<&'a str>,
    /// The `value_json` field.
    pub(crate) value_json: &'a str,
    /// The item's bytes, when its `nested_key` has two parts or more (summary items only).
    pub(crate) long_path: Option<&'a [u8]>,
}

impl<'a> FastItem<'a> {
    /// The item's one-segment path (`nested_key` wins over `key`, as in [`crate::jsonbuild::Path::of`]);
    /// meaningless when [`FastItem::long_path`] is set.
    pub(crate) fn segment(&self) -> &'a str {
        self.nested.unwrap_or(self.key)
    }

    /// Calls `f` with the item's key path (a stack array for paths of up to eight parts).
    pub(crate) fn with_path<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
        let Some(bytes) = self.long_path else {
            return f(&[self.segment()]);
        };
        let mut parts = [""; 8];
        let mut n = 0;
        for part in ItemView::nested_parts(bytes) {
            if n == parts.len() {
                return f(&ItemView::nested_parts(bytes).collect::<Vec<_>>());
            }
            parts[n] = part;
            n += 1;
        }
        f(&parts[..n])
    }

    /// The size estimate the full decoder's path uses for this item.
    pub(crate) fn estimate(&self) -> usize {
        self.key.len() + self.nested.map_or(0, |n| n.len() + 4) + self.value_json.len() + 4
    }
}

/// A record decoded by [`parse_reusing`].
#[derive(Debug, Default)]
pub(crate) struct FastRecord<'a> {
    /// True for a history record, false for a summary record.
    pub(crate) history: bool,
    /// History items, or the summary's `update` items.
    pub(crate) items: Vec<FastItem<'a>>,
    /// The summary's `remove` items.
    pub(crate) removes: Vec<FastItem<'a>>,
}

/// [`parse_reusing`] with a fresh item list (tests).
#[cfg(test)]
pub(crate) fn parse(payload: &[u8]) -> Option<FastRecord<'_>> {
    parse_reusing(payload, &mut Vec::new())
}

/// Parses a valid history or summary record with plain items (`None` for anything else), with the
/// item list in `spare`'s allocation; hand it back with [`FastRecord::recycle`] so that a scan
/// allocates it once rather than once a record.
pub(crate) fn parse_reusing<'a>(
    payload: &'a [u8],
    spare: &mut Vec<FastItem<'static>>,
) -> Option<FastRecord<'a>> {
    let view = RecordView::parse(payload).ok()?;
    let mut items = relabel(std::mem::take(spare));
    if items.capacity() == 0 {
        items.reserve(16);
    }
    if let Some(history) = view.history() {
        let mut plain_items = true;
        let common = history.walk_common(|item| match plain(item, false) {
            Some(item) if plain_items => items.push(item),
            _ => plain_items = false,
        });
        // An item that is not plain fails the record either way.
        if !plain_items {
            *spare = relabel(items);
            return None;
        }
        if common {
            return Some(FastRecord {
                history: true,
                items,
                removes: Vec::new(),
            });
        }
        items.clear();
        for item in history.items() {
            let Some(item) = item.ok().and_then(|i| plain(i, false)) else {
                *spare = relabel(items);
                return None;
            };
            items.push(item);
        }
        return Some(FastRecord {
            history: true,
            items,
            removes: Vec::new(),
        });
    }
    let summary = if view.field == 3 {
        view.updates()
    } else {
        None
    };
    let Some(summary) = summary else {
        *spare = relabel(items);
        return None;
    };
    let mut record = FastRecord {
        history: false,
        items,
        removes: Vec::new(),
    };
    let mut plain_items = true;
    let common = summary.walk_common(|change, item| match plain(item, true) {
        Some(item) if plain_items => match change {
            Change::Update => record.items.push(item),
            Change::Remove => record.removes.push(item),
        },
        _ => plain_items = false,
    });
    if !plain_items {
        record.recycle(spare);
        return None;
    }
    if common {
        return Some(record);
    }
    record.items.clear();
    record.removes.clear();
    // Walking the items to the end checks the whole record.
    for change in summary.changes() {
        let Some((change, item)) = change.ok().and_then(|(c, i)| Some((c, plain(i, true)?))) else {
            record.recycle(spare);
            return None;
        };
        match change {
            Change::Update => record.items.push(item),
            Change::Remove => record.removes.push(item),
        }
    }
    Some(record)
}

impl FastRecord<'_> {
    /// Hands the item list's allocation back for the next [`parse_reusing`].
    pub(crate) fn recycle(self, spare: &mut Vec<FastItem<'static>>) {
        *spare = relabel(self.items);
    }
}

/// The same allocation, emptied, as a vector of another element type (in the hot paths, the same
/// type with another lifetime): collecting an emptied vector into one of the same element layout
/// reuses its buffer.
pub(crate) fn relabel<T, U>(mut items: Vec<T>) -> Vec<U> {
    items.clear();
    items.into_iter().filter_map(|_| None).collect()
}

/// An item with no typed value and at most one key part, or any number of parts with `long`.
#[inline]
fn plain(item: ItemView<'_>, long: bool) -> Option<FastItem<'_>> {
    if item.typed.is_some() {
        return None;
    }
    let (nested, long_path) = match item.nested_len() {
        0 => (None, None),
        1 => (item.only_part(), None),
        _ if long => (None, Some(item.bytes())),
        _ => return None,
    };
    Some(FastItem {
        key: item.key,
        nested,
        value_json: item.value_json,
        long_path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prost::Message as _;
    use wandb_format::proto::record::RecordType;
    use wandb_format::proto::{
        HistoryItem, HistoryRecord, HistoryStep, Record, SummaryItem, SummaryRecord,
    };

    #[test]
    fn plain_records_match_prost_and_others_fall_back() {
        let history = Record {
            num: 7,
            record_type: Some(RecordType::History(HistoryRecord {
                item: vec![
                    HistoryItem {
                        nested_key: vec!["a".into()],
                        value_json: "1.5".into(),
                        ..Default::default()
                    },
                    HistoryItem {
                        key: "b".into(),
                        value_json: "\"x\"".into(),
                        ..Default::default()
                    },
                ],
                step: Some(HistoryStep { num: 3 }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = history.encode_to_vec();
        let fast = parse(&bytes).unwrap();
        let fast_history = parse(&bytes).unwrap();
        assert!(fast.history);
        assert_eq!(fast.items.len(), 2);
        assert_eq!(fast.items[0].segment(), "a");
        assert_eq!(fast.items[0].value_json, "1.5");
        assert_eq!(fast.items[1].segment(), "b");
        assert_eq!(fast.items[1].value_json, "\"x\"");

        let summary = Record {
            num: 1,
            record_type: Some(RecordType::Summary(SummaryRecord {
                update: vec![SummaryItem {
                    key: "k".into(),
                    value_json: "2".into(),
                    ..Default::default()
                }],
                remove: vec![SummaryItem {
                    nested_key: vec!["r".into()],
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = summary.encode_to_vec();
        let fast = parse(&bytes).unwrap();
        assert!(!fast.history);
        assert_eq!(fast.items[0].segment(), "k");
        assert_eq!(fast.removes[0].segment(), "r");

        // Nested paths, typed values and damage use the full decoder; other record fields do not
        // matter.
        let nested = Record {
            record_type: Some(RecordType::History(HistoryRecord {
                item: vec![HistoryItem {
                    nested_key: vec!["a".into(), "b".into()],
                    value_json: "1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(parse(&nested.encode_to_vec()).is_none());
        // Values of 128 bytes or more (two-byte lengths) take the general walk, to the same items.
        let long = "7".repeat(300);
        let long_value = Record {
            record_type: Some(RecordType::History(HistoryRecord {
                item: vec![HistoryItem {
                    key: "k".into(),
                    value_json: long.clone(),
                    ..Default::default()
                }],
                step: Some(HistoryStep { num: 1 }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = long_value.encode_to_vec();
        let fast = parse(&bytes).unwrap();
        assert_eq!(fast.items[0].value_json, long);
        let nested_summary = Record {
            record_type: Some(RecordType::Summary(SummaryRecord {
                update: vec![SummaryItem {
                    nested_key: vec!["_wandb".into(), "runtime".into()],
                    value_json: "4".into(),
                    ..Default::default()
                }],
                remove: vec![SummaryItem {
                    nested_key: vec!["a".into(), "b".into(), "c".into()],
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = nested_summary.encode_to_vec();
        let fast = parse(&bytes).unwrap();
        fast.items[0].with_path(|p| assert_eq!(p, ["_wandb", "runtime"]));
        fast.removes[0].with_path(|p| assert_eq!(p, ["a", "b", "c"]));
        let mut with_uuid = history.clone();
        with_uuid.uuid = "u".into();
        assert_eq!(
            parse(&with_uuid.encode_to_vec()).unwrap().items,
            fast_history.items
        );
        let mut typed = history.clone();
        if let Some(RecordType::History(h)) = &mut typed.record_type {
            h.item[0].value = Some(wandb_format::proto::history_item::Value::Number(1.5));
        }
        assert!(parse(&typed.encode_to_vec()).is_none());
        let mut truncated = history.encode_to_vec();
        truncated.pop();
        assert!(parse(&truncated).is_none());
        let mut bad_utf8 = history.encode_to_vec();
        let at = bad_utf8.iter().position(|&b| b == b'x').unwrap();
        bad_utf8[at] = 0xff;
        assert!(parse(&bad_utf8).is_none());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fixture_tests {
    use super::*;
    use prost::Message as _;
    use wandb_format::proto::Record;
    use wandb_format::proto::record::RecordType;
    use wandb_format::{LogFile, Recovery, ScanItem};

    fn same<'a>(
        fast: &[FastItem<'_>],
        full: impl ExactSizeIterator<Item = (&'a str, &'a [String], &'a str)>,
    ) {
        assert_eq!(fast.len(), full.len());
        for (f, (key, nested, value)) in fast.iter().zip(full) {
            assert_eq!(f.key, key);
            let want: Vec<&str> = if nested.is_empty() {
                vec![key]
            } else {
                nested.iter().map(String::as_str).collect()
            };
            f.with_path(|path| assert_eq!(path, want.as_slice()));
            assert_eq!(f.value_json, value);
        }
    }

    fn summary_item(i: &wandb_format::proto::SummaryItem) -> (&str, &[String], &str) {
        (
            i.key.as_str(),
            i.nested_key.as_slice(),
            i.value_json.as_str(),
        )
    }

    /// Every SDK fixture record the fast path accepts decodes to the same items with `prost`.
    #[test]
    fn fast_path_agrees_with_prost_on_sdk_fixtures() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sdk-0.31.0");
        let mut accepted = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "wandb") {
                    continue;
                }
                let log = LogFile::open(&path).unwrap();
                for item in log.scan(Recovery::SkipCorrupt) {
                    let ScanItem::Record(raw) = item.unwrap() else {
                        continue;
                    };
                    let Some(fast) = parse(&raw.payload) else {
                        continue;
                    };
                    accepted += 1;
                    let record = Record::decode(raw.payload.as_ref()).unwrap();
                    match record.record_type {
                        Some(RecordType::History(h)) => {
                            assert!(fast.history);
                            same(
                                &fast.items,
                                h.item.iter().map(|i| {
                                    assert!(i.value.is_none());
                                    (
                                        i.key.as_str(),
                                        i.nested_key.as_slice(),
                                        i.value_json.as_str(),
                                    )
                                }),
                            );
                        }
                        Some(RecordType::Summary(s)) => {
                            assert!(!fast.history);
                            same(&fast.items, s.update.iter().map(summary_item));
                            same(&fast.removes, s.remove.iter().map(summary_item));
                        }
                        other => panic!("fast path accepted {other:?}"),
                    }
                }
            }
        }
        assert!(accepted > 0, "no fixture record took the fast path");
    }
}
