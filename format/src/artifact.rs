//! W&B's artifact digests: of one file (the base64 MD5 a manifest entry declares) and of a whole
//! manifest (the artifact's digest, which the server finds an artifact version by).
//!
//! Both sides use them: the logger when it writes an artifact record (a Table's `run_table`),
//! sync when it checks a record's digest before uploading it.

use base64::Engine as _;
use md5::{Digest, Md5};

use crate::proto::ArtifactManifestEntry;

/// The digest a manifest entry declares for a file's content: the base64 (standard alphabet,
/// padded) of its MD5, e.g. `zYflYFjLF6VjLRyHBuKXGw==`.
pub fn file_digest(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// The W&B artifact digest of a manifest (`digest_algorithm` `MANIFEST_MD5`): the lowercase hex
/// MD5 of `wandb-artifact-manifest-v1\n` followed by a `path:digest\n` line per entry, sorted
/// by path.
pub fn manifest_digest(entries: &[ArtifactManifestEntry]) -> String {
    let mut sorted: Vec<&ArtifactManifestEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Md5::new();
    hasher.update(b"wandb-artifact-manifest-v1\n");
    for entry in sorted {
        hasher.update(entry.path.as_bytes());
        hasher.update(b":");
        hasher.update(entry.digest.as_bytes());
        hasher.update(b"\n");
    }
    let mut out = String::with_capacity(32);
    for b in hasher.finalize() {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, digest: &str) -> ArtifactManifestEntry {
        ArtifactManifestEntry {
            path: path.into(),
            digest: digest.into(),
            size: 6,
            ..Default::default()
        }
    }

    #[test]
    fn manifest_digest_matches_the_sdk() {
        // The digests the SDK 0.31 wrote for a directory artifact and a Table.
        let entries = [
            entry("sub/b.txt", "8M8qklFgRQJKDJkUeyjwWw=="),
            entry("a.txt", "n5+Q2+Pl7hIYyGuIOdsZlQ=="),
        ];
        assert_eq!(
            manifest_digest(&entries),
            "2c611cf13ce16eaf7cda3226b0968298"
        );
        let table = [entry("tbl.table.json", "WCvtwUIfIRB5rhrUuCD6ig==")];
        assert_eq!(manifest_digest(&table), "9a2a6affca9a3503c1e225bd780cc355");
    }

    #[test]
    fn file_digest_is_base64_md5() {
        assert_eq!(file_digest(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(file_digest(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }
}
