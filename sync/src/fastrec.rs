//! Allocation-free decoding of the records that make up the bulk of a `.wandb` file: history
//! rows and summary updates whose items have a plain key (or a single `nested_key` part) and a
//! `value_json`.
//!
//! [`parse`] reads the record with format's zero-copy views ([`wandb_format::RecordView`], on
//! `wandb_format::wire`'s cursor), which accept exactly what `prost` accepts and read the same
//! values. It takes history and summary records whose items all have at most one key part and
//! no typed value, and only when the whole record is valid; anything else returns `None` and the
//! caller decodes the record with `prost`, which also words the error for damaged records.

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
}

impl<'a> FastItem<'a> {
    /// The item's one-segment path (`nested_key` wins over `key`, as in [`crate::jsonbuild::Path::of`]).
    pub(crate) fn segment(&self) -> &'a str {
        self.nested.unwrap_or(self.key)
    }

    /// The size estimate the full decoder's path uses for this item.
    pub(crate) fn estimate(&self) -> usize {
        self.key.len() + self.nested.map_or(0, |n| n.len() + 4) + self.value_json.len() + 4
    }
}

/// A record decoded by [`parse`].
#[derive(Debug, Default)]
pub(crate) struct FastRecord<'a> {
    /// True for a history record, false for a summary record.
    pub(crate) history: bool,
    /// History items, or the summary's `update` items.
    pub(crate) items: Vec<FastItem<'a>>,
    /// The summary's `remove` items.
    pub(crate) removes: Vec<FastItem<'a>>,
}

/// Parses a valid history or summary record with plain items; `None` for anything else.
pub(crate) fn parse(payload: &[u8]) -> Option<FastRecord<'_>> {
    let view = RecordView::parse(payload).ok()?;
    if let Some(history) = view.history() {
        let mut items = Vec::with_capacity(16);
        for item in history.items() {
            items.push(plain(item.ok()?)?);
        }
        return Some(FastRecord {
            history: true,
            items,
            removes: Vec::new(),
        });
    }
    if view.field != 3 {
        return None;
    }
    let summary = view.updates()?;
    let mut record = FastRecord {
        history: false,
        items: Vec::with_capacity(16),
        removes: Vec::new(),
    };
    // Walking the items to the end checks the whole record.
    for change in summary.changes() {
        let (change, item) = change.ok()?;
        let item = plain(item)?;
        match change {
            Change::Update => record.items.push(item),
            Change::Remove => record.removes.push(item),
        }
    }
    Some(record)
}

/// An item with at most one key part and no typed value.
#[inline]
fn plain<'a>(item: ItemView<'a>) -> Option<FastItem<'a>> {
    if item.typed.is_some() {
        return None;
    }
    let nested = match item.nested_len() {
        0 => None,
        1 => item.only_part(),
        _ => return None,
    };
    Some(FastItem {
        key: item.key,
        nested,
        value_json: item.value_json,
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
            assert_eq!(f.nested, nested.first().map(String::as_str));
            assert!(nested.len() <= 1);
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
