//! `verify`: clean, torn, damaged and unreadable files, and every exit status.

use insta::assert_snapshot;
use wandb_inspect::Exit;

use crate::util::{damaged_copy, fixtures, inspect, json_lines, redact};

#[test]
fn sdk_fixtures_are_clean() {
    let output = inspect(&[&"verify", &fixtures()]);
    assert_eq!(output.exit, Exit::Ok);
    assert_eq!(output.stderr, "");
    assert_snapshot!("verify_fixtures", redact(&output.stdout, None));
}

#[test]
fn a_torn_tail_is_a_warning_unless_strict() {
    let tmp = tempfile::tempdir().unwrap();
    // Cut inside the last record, and inside a multi-chunk record.
    let cut = damaged_copy(tmp.path(), "plain", "cut.wandb", |bytes| {
        bytes.truncate(21_280)
    });
    let cut_multi = damaged_copy(tmp.path(), "multiblock", "cut-multi.wandb", |bytes| {
        bytes.truncate(40_000)
    });
    let empty = damaged_copy(tmp.path(), "plain", "empty.wandb", Vec::clear);
    let output = inspect(&[&"verify", &cut, &cut_multi, &empty]);
    assert_eq!(output.exit, Exit::Ok, "{}", output.stdout);
    assert_snapshot!("verify_torn", redact(&output.stdout, Some(tmp.path())));
    let output = inspect(&[&"verify", &"--strict", &cut]);
    assert_eq!(output.exit, Exit::Damage);
    assert_snapshot!(
        "verify_torn_strict",
        redact(&output.stdout, Some(tmp.path()))
    );
}

#[test]
fn bit_flips_garbage_and_bad_headers_are_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flipped = damaged_copy(dir, "plain", "flipped.wandb", |bytes| bytes[1000] ^= 0x10);
    let flipped_multi = damaged_copy(dir, "multiblock", "flipped-multi.wandb", |bytes| {
        bytes[70_000] ^= 0x01
    });
    let garbage = damaged_copy(dir, "plain", "garbage.wandb", |bytes| {
        bytes.extend_from_slice(&[0xAB; 100])
    });
    let header = damaged_copy(dir, "plain", "header.wandb", |bytes| bytes[4] = 0);
    for path in [&flipped, &flipped_multi, &garbage, &header] {
        assert_eq!(
            inspect(&[&"verify", path]).exit,
            Exit::Damage,
            "{}",
            path.display()
        );
    }
    let output = inspect(&[&"verify", &flipped, &flipped_multi, &garbage, &header]);
    assert_eq!(output.exit, Exit::Damage);
    assert_eq!(output.stderr, "");
    assert_snapshot!("verify_damaged", redact(&output.stdout, Some(dir)));
    let output = inspect(&[&"verify", &"--json", &flipped, &header]);
    let lines = json_lines(&output.stdout);
    assert_eq!(lines[0]["status"], "damaged");
    assert_eq!(lines[0]["records"], 161);
    assert_eq!(lines[1]["records"], 0);
    assert_snapshot!("verify_damaged_json", redact(&output.stdout, Some(dir)));
}

#[test]
fn unreadable_inputs_exit_2_and_the_rest_is_still_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let flipped = damaged_copy(tmp.path(), "plain", "flipped.wandb", |bytes| {
        bytes[1000] ^= 0x10
    });
    let missing = tmp.path().join("missing.wandb");
    let output = inspect(&[&"verify", &missing, &flipped]);
    assert_eq!(output.exit, Exit::Error);
    assert!(
        output.stdout.contains("flipped.wandb: DAMAGED"),
        "{}",
        output.stdout
    );
    assert_snapshot!(
        "verify_missing_stderr",
        redact(&output.stderr, Some(tmp.path()))
    );
    let output = inspect(&[&"verify", &tmp.path().join("nothing-*.wandb")]);
    assert_eq!(output.exit, Exit::Error);
    assert!(
        output.stderr.contains("nothing matches it as a pattern"),
        "{}",
        output.stderr
    );
}

#[test]
fn json_reports_clean_files_too() {
    let output = inspect(&[&"verify", &"--json", &fixtures().join("plain")]);
    assert_eq!(output.exit, Exit::Ok);
    assert_snapshot!("verify_json_plain", redact(&output.stdout, None));
}
