//! Allocation-free decoding of the records that make up the bulk of a `.wandb` file: history
//! rows and summary updates whose items have a plain key (or a single `nested_key` part) and a
//! `value_json`.
//!
//! [`parse`] accepts only payloads in exactly the layout writers produce (`num`, then the
//! record type's message, nothing else; items with fields 1, 2 and 16 only) and only when every
//! part is valid; anything else returns `None` and the caller decodes the record with `prost`.
//! It is therefore never more lenient than `prost`: whatever it accepts, `prost` decodes to the
//! same keys and values.

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

/// A varint as protobuf encodes it; `None` when malformed or longer than ten bytes.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// A length-delimited value.
fn bytes<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf)?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Some(head)
}

fn string<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(bytes(buf)?).ok()
}

/// Parses a history or summary record in the plain layout; `None` for anything else.
pub(crate) fn parse(payload: &[u8]) -> Option<FastRecord<'_>> {
    let mut buf = payload;
    if buf.first() == Some(&0x08) {
        buf = &buf[1..];
        varint(&mut buf)?;
    }
    let (&tag, rest) = buf.split_first()?;
    buf = rest;
    let history = match tag {
        0x12 => true,
        0x1a => false,
        _ => return None,
    };
    let body = bytes(&mut buf)?;
    if !buf.is_empty() {
        return None;
    }
    let mut record = FastRecord {
        history,
        items: Vec::with_capacity(16),
        removes: Vec::new(),
    };
    let mut body = body;
    while let Some((&tag, rest)) = body.split_first() {
        body = rest;
        match (tag, history) {
            (0x0a, _) => record.items.push(item(bytes(&mut body)?)?),
            (0x12, true) => step(bytes(&mut body)?)?,
            (0x12, false) => record.removes.push(item(bytes(&mut body)?)?),
            _ => return None,
        }
    }
    Some(record)
}

/// A `HistoryStep`: only `num` (field 1, a varint).
fn step(mut buf: &[u8]) -> Option<()> {
    while let Some((&tag, rest)) = buf.split_first() {
        buf = rest;
        if tag != 0x08 {
            return None;
        }
        varint(&mut buf)?;
    }
    Some(())
}

/// A `HistoryItem` or `SummaryItem` with `key`, at most one `nested_key` part and `value_json`.
fn item(mut buf: &[u8]) -> Option<FastItem<'_>> {
    let mut item = FastItem::default();
    while let Some((&tag, rest)) = buf.split_first() {
        buf = rest;
        match tag {
            0x0a => item.key = string(&mut buf)?,
            0x12 => {
                if item.nested.is_some() {
                    return None;
                }
                item.nested = Some(string(&mut buf)?);
            }
            // Field 16, length-delimited: the key is the two-byte varint 0x82 0x01.
            0x82 => {
                let (&second, rest) = buf.split_first()?;
                if second != 0x01 {
                    return None;
                }
                buf = rest;
                item.value_json = string(&mut buf)?;
            }
            _ => return None,
        }
    }
    Some(item)
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

        // Nested paths, typed values, extra fields and damage use the full decoder.
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
        assert!(parse(&with_uuid.encode_to_vec()).is_none());
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
