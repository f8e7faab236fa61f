//! Builders for the records the logger writes besides history rows, shaped like the ones the
//! official SDK 0.31.0 writes (see `fixtures/sdk-0.31.0`).

use std::time::{SystemTime, UNIX_EPOCH};

use wandb_format::json;
use wandb_format::proto;
use wandb_format::proto::record::RecordType;
use wandb_settings::Settings;

use crate::options::SavePolicy;

/// The `producer` written in every header record: `wandb-offline-rs <version>`.
pub const PRODUCER: &str = concat!("wandb-offline-rs ", env!("CARGO_PKG_VERSION"));

/// The oldest reader version that can read our files (as wandb-core writes it).
pub(crate) const MIN_CONSUMER: &str = "0.70.0";

/// A record holding `record_type` (the writer sets `num`).
pub(crate) fn wrap(record_type: RecordType) -> proto::Record {
    proto::Record {
        record_type: Some(record_type),
        ..Default::default()
    }
}

fn with_info(record_type: RecordType, info: proto::RecordInfo) -> proto::Record {
    proto::Record {
        record_type: Some(record_type),
        info: Some(info),
        ..Default::default()
    }
}

/// `_info` with the run id as stream id.
pub(crate) fn stream_info(run_id: &str) -> proto::RecordInfo {
    proto::RecordInfo {
        stream_id: run_id.to_owned(),
        ..Default::default()
    }
}

/// A protobuf timestamp.
pub(crate) fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// The first record of every file.
pub(crate) fn header(run_id: &str) -> proto::Record {
    with_info(
        RecordType::Header(proto::HeaderRecord {
            version_info: Some(proto::VersionInfo {
                producer: PRODUCER.to_owned(),
                min_consumer: MIN_CONSUMER.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        stream_info(run_id),
    )
}

/// Config items with plain JSON values, top-level `key`s, as the SDK writes them.
fn config_items(map: &json::Map) -> Vec<proto::ConfigItem> {
    map.iter()
        .map(|(key, value)| proto::ConfigItem {
            key: key.clone(),
            value_json: value.to_string(),
            ..Default::default()
        })
        .collect()
}

/// The run record: identity, settings-derived metadata, start time and initial config.
pub(crate) fn run(
    run_id: &str,
    settings: &Settings,
    start: SystemTime,
    config: &json::Map,
) -> proto::Record {
    // The SDK always puts `_wandb` first: `{}`, or the launch queue's keys; sync fills it in.
    let mut wandb = json::Map::new();
    for (key, value) in settings.launch_queue.wandb_config_items() {
        wandb.insert(key, json::Value::from(value));
    }
    let mut items = vec![proto::ConfigItem {
        key: "_wandb".to_owned(),
        value_json: json::Value::Object(wandb).to_string(),
        ..Default::default()
    }];
    items.extend(
        config_items(config)
            .into_iter()
            .filter(|i| i.key != "_wandb"),
    );
    with_info(
        RecordType::Run(proto::RunRecord {
            run_id: run_id.to_owned(),
            entity: settings.entity.clone().unwrap_or_default(),
            project: settings.project.clone().unwrap_or_default(),
            config: Some(proto::ConfigRecord {
                update: items,
                ..Default::default()
            }),
            run_group: settings.run_group.clone().unwrap_or_default(),
            job_type: settings.run_job_type.clone().unwrap_or_default(),
            display_name: settings.run_name.clone().unwrap_or_default(),
            notes: settings.run_notes.clone().unwrap_or_default(),
            tags: settings.run_tags.clone().unwrap_or_default(),
            host: settings.host.clone(),
            sweep_id: settings.sweep_id.clone().unwrap_or_default(),
            start_time: Some(timestamp(start)),
            ..Default::default()
        }),
        stream_info(run_id),
    )
}

/// A config update.
pub(crate) fn config(
    update: &json::Map,
    remove: &[String],
    info: proto::RecordInfo,
) -> proto::Record {
    with_info(
        RecordType::Config(proto::ConfigRecord {
            update: config_items(update),
            remove: remove
                .iter()
                .map(|key| proto::ConfigItem {
                    key: key.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        info,
    )
}

/// A summary item: `key` for a top-level key (as the SDK's client writes explicit summary
/// values), `nested_key` for a path.
pub(crate) fn summary_item(path: &[String], value: &json::Value) -> proto::SummaryItem {
    let value_json = if value.is_null() {
        String::new()
    } else {
        value.to_string()
    };
    match path {
        [key] => proto::SummaryItem {
            key: key.clone(),
            value_json,
            ..Default::default()
        },
        _ => proto::SummaryItem {
            nested_key: path.to_vec(),
            value_json,
            ..Default::default()
        },
    }
}

/// The summary wandb-core writes before each row and at exit: `_wandb.runtime` and `_runtime`
/// in whole seconds.
pub(crate) fn runtime_summary(runtime_secs: u64) -> proto::Record {
    let text = runtime_secs.to_string();
    wrap(RecordType::Summary(proto::SummaryRecord {
        update: vec![
            proto::SummaryItem {
                nested_key: vec!["_wandb".to_owned(), "runtime".to_owned()],
                value_json: text.clone(),
                ..Default::default()
            },
            proto::SummaryItem {
                key: "_runtime".to_owned(),
                value_json: text,
                ..Default::default()
            },
        ],
        ..Default::default()
    }))
}

/// A file saved under `files/`.
pub(crate) fn files(rel: &str, policy: SavePolicy, info: proto::RecordInfo) -> proto::Record {
    with_info(
        RecordType::Files(proto::FilesRecord {
            files: vec![proto::FilesItem {
                path: rel.to_owned(),
                policy: policy.to_proto(),
                r#type: 0,
            }],
            ..Default::default()
        }),
        info,
    )
}

/// The run is about to be preempted.
pub(crate) fn preempting(info: proto::RecordInfo) -> proto::Record {
    with_info(
        RecordType::Preempting(proto::RunPreemptingRecord::default()),
        info,
    )
}

/// The last record: exit code and runtime in whole seconds.
pub(crate) fn exit(exit_code: i32, runtime_secs: u64, info: proto::RecordInfo) -> proto::Record {
    with_info(
        RecordType::Exit(proto::RunExitRecord {
            exit_code,
            runtime: i32::try_from(runtime_secs).unwrap_or(i32::MAX),
            ..Default::default()
        }),
        info,
    )
}

/// A chunk of console output.
pub(crate) fn output_raw(stdout: bool, text: &str, time: SystemTime) -> proto::Record {
    use proto::output_raw_record::OutputType;
    wrap(RecordType::OutputRaw(proto::OutputRawRecord {
        output_type: if stdout {
            OutputType::Stdout as i32
        } else {
            OutputType::Stderr as i32
        },
        timestamp: Some(timestamp(time)),
        line: text.to_owned(),
        ..Default::default()
    }))
}
