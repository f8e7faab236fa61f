//! The `wire_parity` fuzz target: [`crate::wire::Cursor`] and the views built on it against prost,
//! in both directions.
//!
//! Every input is read by the cursor and by prost's own primitives (`decode_varint`, `decode_key`,
//! `skip_field`, and a message of unknown fields only), and decoded as each message the views read
//! (`Record`, `HistoryRecord`, `HistoryItem`, `HistoryStep`, `SummaryRecord`, `ConfigRecord`), as
//! given and wrapped as the body of the enclosing message, so the fuzzer reaches every level. What
//! prost accepts, the views must read to the same values; what prost rejects, they must reject (for
//! a `Record`, whenever its record-type fields are all of the types the views read).

use prost::Message;
use prost::encoding::{DecodeContext, WireType as ProstWireType, decode_key, decode_varint};

use crate::proto::{
    ConfigRecord, HistoryItem, HistoryRecord, HistoryStep, Record, SummaryRecord, history_item,
    record::RecordType,
};
use crate::view::{
    Change, HistoryView, ItemKind, ItemView, Items, RecordView, TypedValue, UpdatesView,
};
use crate::wire::{Cursor, RECURSION_LIMIT, WireType};

/// An item as both sides read it: key, nested key parts, `value_json`, typed value.
#[derive(Clone, Debug, PartialEq)]
struct Item {
    key: String,
    nested: Vec<String>,
    value_json: String,
    typed: Option<Typed>,
}

/// A typed value, with doubles compared by their bits (NaN included).
#[derive(Clone, Debug, PartialEq)]
enum Typed {
    Null,
    Bool(bool),
    Int(i64),
    Number(u64),
    Text(String),
    Json(String),
}

/// A record-type message as both sides read it.
#[derive(Clone, Debug, PartialEq)]
enum Content {
    History {
        step: i64,
        items: Vec<Item>,
    },
    Updates {
        updates: Vec<Item>,
        removes: Vec<Item>,
    },
    Other,
}

/// Checks the cursor and the views against prost on `data`, at every level.
pub fn wire_parity(data: &[u8]) {
    check_primitives(data);
    check_record(data);
    check_history(data);
    check_updates(data);
    check_item(data);
    check_step(data);
    // The same bytes one level down, so that what the fuzzer finds at one level is tried at the
    // others.
    let item = wrap(1, data);
    check_history(&item);
    check_updates(&item);
    let removal = wrap(2, data);
    check_updates(&removal);
    let step = wrap(2, data);
    check_history(&step);
    for field in [2, 3, 5] {
        check_record(&wrap(field, data));
    }
    check_record(&wrap(2, &item));
    check_record(&wrap(3, &removal));
}

/// `data` as the value of length-delimited field `field`.
fn wrap(field: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    prost::encoding::encode_key(field, ProstWireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

/// Varints, keys and schema-less skipping agree with prost byte for byte.
fn check_primitives(data: &[u8]) {
    let mut prost_buf = data;
    let prost = decode_varint(&mut prost_buf);
    let mut cursor = Cursor::new(data);
    match (prost, cursor.varint()) {
        (Ok(want), Ok(got)) => {
            assert_eq!(got, want, "varint value");
            assert_eq!(cursor.rest().len(), prost_buf.len(), "varint length");
        }
        (Err(_), Err(_)) => {}
        (want, got) => panic!("varint: prost {want:?}, cursor {got:?}"),
    }

    // Field by field, as an unknown-field-only message: same keys, same bytes consumed.
    let mut prost_buf = data;
    let mut cursor = Cursor::new(data);
    let ctx = DecodeContext::default();
    loop {
        assert_eq!(
            cursor.rest().len(),
            prost_buf.len(),
            "cursor and prost drifted apart"
        );
        if prost_buf.is_empty() {
            assert!(cursor.is_empty());
            break;
        }
        let prost_key = decode_key(&mut prost_buf);
        let key = cursor.key();
        let (tag, prost_type, number, wire_type) = match (prost_key, key) {
            (Ok((tag, prost_type)), Ok((number, wire_type))) => {
                (tag, prost_type, number, wire_type)
            }
            (Err(_), Err(_)) => break,
            (want, got) => panic!("key: prost {want:?}, cursor {got:?}"),
        };
        assert_eq!(number, tag, "field number");
        assert_eq!(wire_type, wire_type_of(prost_type), "wire type");
        let prost = prost::encoding::skip_field(prost_type, tag, &mut prost_buf, ctx.clone());
        match (prost, cursor.skip(wire_type, number, RECURSION_LIMIT)) {
            (Ok(()), Ok(())) => {}
            (Err(_), Err(_)) => break,
            (want, got) => panic!("skip: prost {want:?}, cursor {got:?}"),
        }
    }

    let prost = <() as Message>::decode(data).is_ok();
    let mut cursor = Cursor::new(data);
    let walked = std::iter::from_fn(|| cursor.next_field(RECURSION_LIMIT).transpose())
        .try_for_each(|field| field.map(drop))
        .is_ok();
    assert_eq!(walked, prost, "a message of unknown fields");
}

fn wire_type_of(wire_type: ProstWireType) -> WireType {
    match wire_type {
        ProstWireType::Varint => WireType::Varint,
        ProstWireType::SixtyFourBit => WireType::Fixed64,
        ProstWireType::LengthDelimited => WireType::Len,
        ProstWireType::StartGroup => WireType::StartGroup,
        ProstWireType::EndGroup => WireType::EndGroup,
        ProstWireType::ThirtyTwoBit => WireType::Fixed32,
    }
}

/// Reads the items of a view, or the first error.
fn view_items(items: Items<'_>) -> Result<Vec<Item>, String> {
    items
        .map(|item| item.map(|item| item_of(&item)).map_err(|e| e.to_string()))
        .collect()
}

fn item_of(item: &ItemView<'_>) -> Item {
    let path: Vec<String> = item.path().map(str::to_owned).collect();
    assert_eq!(path.len(), item.path_len(), "path length");
    let nested = if item.nested_len() == 0 {
        assert_eq!(
            path,
            [item.key],
            "a key path without nested parts is the key"
        );
        Vec::new()
    } else {
        path
    };
    assert_eq!(nested.len(), item.nested_len());
    Item {
        key: item.key.to_owned(),
        nested,
        value_json: item.value_json.to_owned(),
        typed: item.typed.map(|typed| match typed {
            TypedValue::Null => Typed::Null,
            TypedValue::Bool(b) => Typed::Bool(b),
            TypedValue::Int(i) => Typed::Int(i),
            TypedValue::Number(n) => Typed::Number(n.to_bits()),
            TypedValue::Text(t) => Typed::Text(t.to_owned()),
            TypedValue::Json(j) => Typed::Json(j.to_owned()),
        }),
    }
}

fn prost_item(key: &str, nested: &[String], value_json: &str, typed: Option<Typed>) -> Item {
    Item {
        key: key.to_owned(),
        nested: nested.to_vec(),
        value_json: value_json.to_owned(),
        typed,
    }
}

fn prost_history_item(item: &HistoryItem) -> Item {
    let typed = item.value.as_ref().map(|value| match value {
        history_item::Value::None(_) => Typed::Null,
        history_item::Value::Boolean(b) => Typed::Bool(*b),
        history_item::Value::Integer(i) => Typed::Int(*i),
        history_item::Value::Number(n) => Typed::Number(n.to_bits()),
        history_item::Value::Text(t) => Typed::Text(t.clone()),
        history_item::Value::Json(j) => Typed::Json(j.clone()),
    });
    prost_item(&item.key, &item.nested_key, &item.value_json, typed)
}

fn prost_history(history: &HistoryRecord) -> Content {
    Content::History {
        step: history.step.as_ref().map_or(0, |step| step.num),
        items: history.item.iter().map(prost_history_item).collect(),
    }
}

fn prost_updates<'a, I: 'a>(
    update: &'a [I],
    remove: &'a [I],
    fields: impl Fn(&'a I) -> (&'a str, &'a [String], &'a str),
) -> Content {
    let convert = |item: &'a I| {
        let (key, nested, value_json) = fields(item);
        prost_item(key, nested, value_json, None)
    };
    Content::Updates {
        updates: update.iter().map(convert).collect(),
        removes: remove.iter().map(convert).collect(),
    }
}

fn view_history(view: &HistoryView<'_>) -> Result<Content, String> {
    let items = view_items(view.items());
    // A record the common-layout walk reads to the end is one the items read, to the same items.
    let mut walked = Vec::new();
    if view.walk_common(|item| walked.push(item_of(&item))) {
        assert_eq!(
            items.as_ref().ok(),
            Some(&walked),
            "walk_common read a history record the items read otherwise"
        );
        assert!(
            view.step().is_ok(),
            "walk_common passed a history record with a bad step"
        );
    }
    let items = items?;
    let step = view.step().map_err(|e| e.to_string())?;
    Ok(Content::History { step, items })
}

fn view_updates(view: &UpdatesView<'_>) -> Result<Content, String> {
    let separate = (|| {
        Ok(Content::Updates {
            updates: view_items(view.updates())?,
            removes: view_items(view.removes())?,
        })
    })();
    // One pass over both fields reads the same.
    let one_pass = (|| {
        let (mut updates, mut removes) = (Vec::new(), Vec::new());
        for change in view.changes() {
            let (change, item) = change.map_err(|e| e.to_string())?;
            match change {
                Change::Update => updates.push(item_of(&item)),
                Change::Remove => removes.push(item_of(&item)),
            }
        }
        Ok::<_, String>(Content::Updates { updates, removes })
    })();
    assert_eq!(
        separate.is_ok(),
        one_pass.is_ok(),
        "changes() and updates()/removes() disagree"
    );
    if let (Ok(separate), Ok(one_pass)) = (&separate, &one_pass) {
        assert_eq!(separate, one_pass, "changes() reads other items");
    }
    let (mut updates, mut removes) = (Vec::new(), Vec::new());
    if view.walk_common(|change, item| match change {
        Change::Update => updates.push(item_of(&item)),
        Change::Remove => removes.push(item_of(&item)),
    }) {
        assert_eq!(
            one_pass.as_ref().ok(),
            Some(&Content::Updates { updates, removes }),
            "walk_common read a summary or config record the changes read otherwise"
        );
    }
    separate
}

/// prost's result against the view's: equal when both accept, both reject otherwise.
fn agree<T: PartialEq + std::fmt::Debug, E: std::fmt::Debug, F: std::fmt::Debug>(
    what: &str,
    prost: Result<T, E>,
    view: Result<T, F>,
) {
    match (prost, view) {
        (Ok(want), Ok(got)) => assert_eq!(got, want, "{what}: the view reads other values"),
        (Err(_), Err(_)) => {}
        (Ok(want), Err(error)) => panic!("{what}: prost read {want:?}, the view failed: {error:?}"),
        (Err(error), Ok(got)) => panic!("{what}: prost failed ({error:?}), the view read {got:?}"),
    }
}

fn check_history(data: &[u8]) {
    let prost = HistoryRecord::decode(data).map(|history| prost_history(&history));
    agree(
        "HistoryRecord",
        prost,
        view_history(&HistoryView::new(data, RECURSION_LIMIT)),
    );
}

fn check_updates(data: &[u8]) {
    let view = view_updates(&UpdatesView::new(data, RECURSION_LIMIT));
    let summary = SummaryRecord::decode(data).map(|summary| {
        prost_updates(&summary.update, &summary.remove, |item| {
            (
                item.key.as_str(),
                item.nested_key.as_slice(),
                item.value_json.as_str(),
            )
        })
    });
    agree("SummaryRecord", summary, view.clone());
    let config = ConfigRecord::decode(data).map(|config| {
        prost_updates(&config.update, &config.remove, |item| {
            (
                item.key.as_str(),
                item.nested_key.as_slice(),
                item.value_json.as_str(),
            )
        })
    });
    agree("ConfigRecord", config, view);
}

fn check_item(data: &[u8]) {
    let prost = HistoryItem::decode(data).map(|item| prost_history_item(&item));
    let view = ItemView::parse(data, ItemKind::History, RECURSION_LIMIT).map(|item| item_of(&item));
    agree("HistoryItem", prost, view);
}

fn check_step(data: &[u8]) {
    let prost = HistoryStep::decode(data).map(|step| step.num);
    // A history record whose only field is this step.
    let view = HistoryView::new(&wrap(2, data), RECURSION_LIMIT + 1).step();
    agree("HistoryStep", prost, view);
}

/// A `Record`: prost and [`RecordView`] (walked to the end) agree whenever prost accepts, and
/// whenever every record-type field is of a type the views read.
pub(crate) fn check_record(data: &[u8]) {
    let prost = Record::decode(data);
    let view = RecordView::parse(data)
        .map_err(|e| e.to_string())
        .and_then(|view| {
            let content = if let Some(history) = view.history() {
                view_history(&history)?
            } else if let Some(updates) = view.updates() {
                view_updates(&updates)?
            } else {
                Content::Other
            };
            Ok((view.num, view.type_name(), content))
        });
    let prost = prost.map(|record| {
        let content = match &record.record_type {
            Some(RecordType::History(history)) => prost_history(history),
            Some(RecordType::Summary(summary)) => {
                prost_updates(&summary.update, &summary.remove, |item| {
                    (
                        item.key.as_str(),
                        item.nested_key.as_slice(),
                        item.value_json.as_str(),
                    )
                })
            }
            Some(RecordType::Config(config)) => {
                prost_updates(&config.update, &config.remove, |item| {
                    (
                        item.key.as_str(),
                        item.nested_key.as_slice(),
                        item.value_json.as_str(),
                    )
                })
            }
            _ => Content::Other,
        };
        (record.num, record.type_name(), content)
    });
    if prost.is_err() && view.is_ok() && !only_viewed_types(data) {
        // prost found something wrong in a record type the views do not read.
        return;
    }
    agree("Record", prost, view);
}

/// Whether every record-type field of a (wire-valid) record is of a type the views check.
fn only_viewed_types(data: &[u8]) -> bool {
    let mut cursor = Cursor::new(data);
    while let Ok(Some((number, _))) = cursor.next_field(RECURSION_LIMIT) {
        if matches!(number, 4 | 6..=13 | 17 | 18 | 20..=23 | 25..=27) {
            return false;
        }
    }
    true
}
