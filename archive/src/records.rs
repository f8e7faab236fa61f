//! What `pack` needs from a run's `.wandb` file, found without decoding every record: whether it
//! holds an exit record, the staged files of its artifact records, and the sweep its run
//! records name.
//!
//! Records are scanned raw; only the top-level field numbers of each record are read (a varint
//! walk), and only artifact and run records are decoded with prost.

use std::path::Path;

use prost::Message as _;

/// `Record.exit` field number.
const EXIT_FIELD: u64 = 18;
/// `Record.artifact` field number.
const ARTIFACT_FIELD: u64 = 8;
/// `Record.run` field number.
const RUN_FIELD: u64 = 17;

/// What a record file says about packing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordFacts {
    /// Whether it holds an exit record.
    pub has_exit: bool,
    /// The `local_path` of every artifact manifest entry without a `ref`, in file order.
    pub staged: Vec<String>,
    /// The sweep id of the run records that carry one (the last one seen).
    pub sweep_id: Option<String>,
}

/// Scans `record_file`; a file that cannot be read gives no facts.
pub fn scan(record_file: &Path) -> RecordFacts {
    use wandb_format::proto::record::RecordType;
    let mut facts = RecordFacts::default();
    let Ok(log) = wandb_format::LogFile::open(record_file) else {
        return facts;
    };
    for item in log.scan(wandb_format::Recovery::SkipCorrupt).flatten() {
        let wandb_format::ScanItem::Record(raw) = item else {
            continue;
        };
        match top_field(&raw.payload) {
            Some(EXIT_FIELD) => facts.has_exit = true,
            Some(ARTIFACT_FIELD) => {
                if let Ok(record) = wandb_format::proto::Record::decode(raw.payload.as_ref())
                    && let Some(RecordType::Artifact(artifact)) = record.record_type
                    && let Some(manifest) = artifact.manifest
                {
                    facts.staged.extend(
                        manifest
                            .contents
                            .into_iter()
                            .filter(|e| e.r#ref.is_empty() && !e.local_path.is_empty())
                            .map(|e| e.local_path),
                    );
                }
            }
            Some(RUN_FIELD) => {
                if let Ok(record) = wandb_format::proto::Record::decode(raw.payload.as_ref())
                    && let Some(RecordType::Run(run)) = record.record_type
                    && !run.sweep_id.is_empty()
                {
                    facts.sweep_id = Some(run.sweep_id);
                }
            }
            _ => {}
        }
    }
    facts
}

/// The number of the exit, artifact or run field in `payload`; `None` when there is none or the bytes are not protobuf.
fn top_field(payload: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    let mut found = None;
    while at < payload.len() {
        let key = varint(payload, &mut at)?;
        let field = key >> 3;
        match key & 7 {
            0 => {
                varint(payload, &mut at)?;
            }
            1 => at = at.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(payload, &mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
        if field == EXIT_FIELD || field == ARTIFACT_FIELD || field == RUN_FIELD {
            found = Some(field);
        }
    }
    (at == payload.len()).then_some(found).flatten()
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wandb_format::proto::record::RecordType;
    use wandb_format::proto::{Record, RunExitRecord};

    #[test]
    fn finds_exit_and_artifact_fields() {
        let exit = Record {
            num: 5,
            record_type: Some(RecordType::Exit(RunExitRecord::default())),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(top_field(&exit), Some(EXIT_FIELD));
        let plain = Record {
            num: 5,
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(top_field(&plain), None);
        assert_eq!(top_field(&[0xff]), None);
    }
}
