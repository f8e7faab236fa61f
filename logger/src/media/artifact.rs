//! The `run_table` artifact the SDK creates for every logged [`Table`]: `run-<run id>-<key>`
//! of type `run_table`, holding the table as `<key>.table.json`, written into the run's file as
//! an `artifact` record (what `wandb sync` uploads as an artifact) with the SDK's manifest and
//! digests. The entry's file is staged in the run folder (`artifacts/staging/`), where both
//! syncs read it through the record's `local_path`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use wandb_format::proto;

use crate::media::{Table, sha256_hex};

/// The folder of a run folder where artifact entries are staged.
pub(crate) const STAGING_DIR: &str = "artifacts/staging";

/// Length of the SDK's artifact client ids.
const CLIENT_ID_LEN: usize = 128;

/// A table's `run_table` artifact, ready for the writer: the staged file and the record.
pub(crate) struct RunTable {
    /// Where the entry's file is staged (absolute, the record's `local_path`).
    pub(crate) staged: PathBuf,
    /// The entry's bytes.
    pub(crate) bytes: Arc<[u8]>,
    /// The `artifact` record.
    pub(crate) record: proto::ArtifactRecord,
    /// `wandb-client-artifact://<client id>/<entry>`, logged with the table's value.
    pub(crate) artifact_path: String,
    /// `wandb-client-artifact://<sequence client id>:latest/<entry>`.
    pub(crate) latest_artifact_path: String,
}

/// Where a run names things.
pub(crate) struct RunNames<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) project: &'a str,
    pub(crate) entity: &'a str,
    pub(crate) run_dir: &'a Path,
}

impl RunTable {
    /// The artifact of `table` logged under `key` by the run `names` describes.
    pub(crate) fn new(names: &RunNames<'_>, key: &str, table: &Table) -> RunTable {
        let (bytes, digest) = table.artifact_entry();
        let entry_path = format!("{key}.table.json");
        let staged = names.run_dir.join(STAGING_DIR).join(format!(
            "{}.table.json",
            sha256_hex(bytes).get(..32).unwrap_or_default()
        ));
        let entry = proto::ArtifactManifestEntry {
            path: entry_path.clone(),
            digest: digest.clone(),
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            local_path: staged.to_string_lossy().into_owned(),
            ..Default::default()
        };
        let contents = vec![entry];
        let client_id = wandb_settings::generate_id(CLIENT_ID_LEN);
        let sequence_client_id = wandb_settings::generate_id(CLIENT_ID_LEN);
        let record = proto::ArtifactRecord {
            run_id: names.run_id.to_owned(),
            project: names.project.to_owned(),
            entity: names.entity.to_owned(),
            r#type: "run_table".to_owned(),
            name: sanitize_artifact_name(&format!("run-{}-{key}", names.run_id)),
            digest: wandb_format::artifact::manifest_digest(&contents),
            aliases: vec!["latest".to_owned()],
            manifest: Some(proto::ArtifactManifest {
                version: 1,
                storage_policy: "wandb-storage-policy-v1".to_owned(),
                storage_policy_config: vec![proto::StoragePolicyConfigItem {
                    key: "storageLayout".to_owned(),
                    value_json: "\"V2\"".to_owned(),
                }],
                contents,
                ..Default::default()
            }),
            finalize: true,
            client_id: client_id.clone(),
            sequence_client_id: sequence_client_id.clone(),
            digest_algorithm: "MANIFEST_MD5".to_owned(),
            ..Default::default()
        };
        let artifact_path = format!("wandb-client-artifact://{client_id}/{entry_path}");
        let latest_artifact_path =
            format!("wandb-client-artifact://{sequence_client_id}:latest/{entry_path}");
        RunTable {
            staged,
            bytes: Arc::clone(bytes),
            record,
            artifact_path,
            latest_artifact_path,
        }
    }
}

/// The SDK's `sanitize_artifact_name`: characters other than `[a-zA-Z0-9_.-]` are removed, and
/// a name that changed gets `-` and the unpadded URL-safe base64 of its CRC-32 (big-endian).
pub(crate) fn sanitize_artifact_name(name: &str) -> String {
    let sanitized: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    if sanitized == name {
        return sanitized;
    }
    let crc = crc32fast::hash(name.as_bytes()).to_be_bytes();
    let suffix = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crc);
    format!("{sanitized}-{suffix}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use wandb_format::json::Value;
    use wandb_format::{Entry, LogFile, Recovery};

    /// The SDK 0.31 fixture run that logged a 3-row Table under `table`.
    fn fixture() -> (PathBuf, proto::ArtifactRecord) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/compat/0.31.0");
        let file = root.join("wandb/offline-run-20261201_195954-cmpmedia/run-cmpmedia.wandb");
        let log = LogFile::open(&file).unwrap();
        let record = log
            .records(Recovery::Strict)
            .find_map(|entry| match entry.unwrap() {
                Entry::Record { record, .. } => match record.record_type {
                    Some(proto::record::RecordType::Artifact(a)) => Some(a),
                    _ => None,
                },
                Entry::Damage(d) => panic!("{d}"),
            })
            .expect("the fixture has an artifact record");
        (root, record)
    }

    #[test]
    fn a_table_is_the_artifact_the_sdk_writes() {
        let (root, theirs) = fixture();
        let table = Table::with_rows(
            ["id", "name", "score"],
            vec![
                vec![Value::Int(1), Value::String("a".into()), Value::Float(0.5)],
                vec![Value::Int(2), Value::String("b".into()), Value::Float(0.25)],
                vec![
                    Value::Int(3),
                    Value::String("c".into()),
                    Value::Float(0.125),
                ],
            ],
        )
        .unwrap();
        let names = RunNames {
            run_id: "cmpmedia",
            project: "wandb-rs-compat",
            entity: "",
            run_dir: Path::new("/runs/offline-run-x"),
        };
        let ours = RunTable::new(&names, "table", &table);

        // The staged bytes are the SDK's, byte for byte.
        let their_entry = &theirs.manifest.as_ref().unwrap().contents[0];
        let staged = their_entry
            .local_path
            .strip_prefix("/tmp/wandb-offline-fixtures/0.31.0/")
            .unwrap();
        let their_bytes = std::fs::read(root.join(staged)).unwrap();
        assert_eq!(
            std::str::from_utf8(&ours.bytes).unwrap(),
            std::str::from_utf8(&their_bytes).unwrap()
        );

        // The record is the SDK's but for the random client ids and the staging path.
        assert_eq!(ours.record.client_id.len(), 128);
        assert_eq!(ours.record.sequence_client_id.len(), 128);
        assert_ne!(ours.record.client_id, ours.record.sequence_client_id);
        assert!(
            ours.staged
                .starts_with(Path::new("/runs/offline-run-x").join(STAGING_DIR))
        );
        let mut normalised = ours.record.clone();
        normalised.client_id.clone_from(&theirs.client_id);
        normalised
            .sequence_client_id
            .clone_from(&theirs.sequence_client_id);
        normalised.info.clone_from(&theirs.info);
        if let Some(manifest) = normalised.manifest.as_mut() {
            manifest.contents[0]
                .local_path
                .clone_from(&their_entry.local_path);
        }
        assert_eq!(normalised, theirs);
        assert_eq!(
            ours.artifact_path,
            format!(
                "wandb-client-artifact://{}/table.table.json",
                ours.record.client_id
            )
        );
        assert_eq!(
            ours.latest_artifact_path,
            format!(
                "wandb-client-artifact://{}:latest/table.table.json",
                ours.record.sequence_client_id
            )
        );
    }

    #[test]
    fn column_types_follow_the_sdk() {
        // The SDK 0.31 types the first three columns of `[[None, True, None, 1],
        // [float("nan"), False, None, "x"]]` as below (NaN is `none` to it); it refuses the
        // mixed fourth (TypeError), which is here the union of its types.
        let table = Table::with_rows(
            ["n", "b", "e", "m"],
            vec![
                vec![Value::Null, Value::Bool(true), Value::Null, Value::Int(1)],
                vec![
                    Value::Float(f64::NAN),
                    Value::Bool(false),
                    Value::Null,
                    Value::String("x".into()),
                ],
            ],
        )
        .unwrap();
        let text = std::str::from_utf8(&table.artifact_entry().0)
            .unwrap()
            .to_owned();
        let union = |types: &[&str]| {
            let allowed: Vec<String> = types
                .iter()
                .map(|t| format!("{{\"wb_type\": \"{t}\"}}"))
                .collect();
            format!(
                "{{\"params\": {{\"allowed_types\": [{}]}}, \"wb_type\": \"union\"}}",
                allowed.join(", ")
            )
        };
        for (column, types) in [
            ("n", &["none", "unknown"][..]),
            ("b", &["boolean", "none"][..]),
            ("e", &["none", "unknown"][..]),
            ("m", &["none", "number", "string"][..]),
        ] {
            let want = format!("\"{column}\": {}", union(types));
            assert!(text.contains(&want), "{want} in {text}");
        }
        assert!(text.contains("\"data\": [[null, true, null, 1], [NaN, false, null, \"x\"]]"));
    }

    #[test]
    fn names_are_sanitized_as_the_sdk_does() {
        assert_eq!(sanitize_artifact_name("run-abc-table"), "run-abc-table");
        // `sanitize_artifact_name("run-abc-eval/table 1")` in the SDK 0.31.
        assert_eq!(
            sanitize_artifact_name("run-abc-eval/table 1"),
            "run-abc-evaltable1-NpA_Nw"
        );
    }
}
