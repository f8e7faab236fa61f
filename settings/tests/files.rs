//! Settings files: configparser syntax, which files are read, what is ignored, and W&B's
//! "invalid file values are reported and ignored" behaviour.

mod common;

use common::Fixture;
use wandb_settings::{
    IgnoredReason, IgnoredSetting, Key, LoadOptions, Overrides, SetupSettings, Source, Warning,
    load,
};

#[test]
fn configparser_syntax() {
    let fx = Fixture::new();
    let text = "\
# a comment
; another comment
[other]
project = not-this-one
[default]
PROJECT : from-file
  # indented comment is skipped
Run_Group = multi
  line
   value

entity=e
[DEFAULT]
run_job_type = from-defaults-section
[Default]
run_notes = wrong case section
";
    fx.write(&fx.system_file(), text);
    let s = fx.load().expect("loads");
    assert_eq!(s.project.as_deref(), Some("from-file"));
    assert_eq!(
        s.source(Key::Project),
        &Source::SystemFile {
            path: fx.system_file(),
            line: 6
        }
    );
    assert_eq!(s.run_group.as_deref(), Some("multi\nline\nvalue"));
    assert_eq!(
        s.source(Key::RunGroup),
        &Source::SystemFile {
            path: fx.system_file(),
            line: 8
        }
    );
    assert_eq!(s.entity.as_deref(), Some("e"));
    assert_eq!(
        s.source(Key::Entity),
        &Source::SystemFile {
            path: fx.system_file(),
            line: 12
        }
    );
    // [DEFAULT] values are inherited by [default], as configparser does.
    assert_eq!(s.run_job_type.as_deref(), Some("from-defaults-section"));
    assert_eq!(
        s.source(Key::RunJobType),
        &Source::SystemFile {
            path: fx.system_file(),
            line: 14
        }
    );
    assert_eq!(s.run_notes, None);
}

#[test]
fn interpolation_and_percent() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nhost = h\nentity = p-%(host)s-100%%\n",
    );
    let s = fx.load().expect("loads");
    assert_eq!(s.entity.as_deref(), Some("p-h-100%"));
}

#[test]
fn workspace_overrides_system_per_key() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nproject = sys\nentity = sys-ent\n",
    );
    fx.write(&fx.workspace_file(), "[default]\nproject = ws\n");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.project.as_deref(), Some("ws"));
    assert_eq!(s.entity.as_deref(), Some("sys-ent"));
    assert_eq!(
        setup.report().files_read,
        vec![fx.system_file(), fx.workspace_file()]
    );
}

#[test]
fn config_dir_moves_the_system_file() {
    let mut fx = Fixture::new();
    let cfg = fx.home.join("elsewhere");
    fx.write(
        &cfg.join("settings"),
        "[default]\nproject = from-config-dir\n",
    );
    fx.write(&fx.system_file(), "[default]\nproject = default-location\n");
    fx.set_env("WANDB_CONFIG_DIR", cfg.to_str().expect("utf-8 temp path"));
    let s = fx.load().expect("loads");
    assert_eq!(s.project.as_deref(), Some("from-config-dir"));

    // An explicit settings_system (from setup) wins over WANDB_CONFIG_DIR.
    let explicit = fx.home.join("explicit");
    fx.write(&explicit, "[default]\nproject = explicit\n");
    let setup =
        SetupSettings::load(&fx.ctx(), Some(&explicit), &Overrides::default()).expect("loads");
    assert_eq!(
        setup.settings().expect("valid").project.as_deref(),
        Some("explicit")
    );
    assert_eq!(
        setup.report().system_settings_path.as_ref(),
        Some(&explicit)
    );
}

#[test]
fn dot_wandb_is_used_when_it_exists() {
    let fx = Fixture::new();
    fx.write(&fx.workspace_file(), "[default]\nproject = plain\n");
    let s = fx.load().expect("loads");
    assert_eq!(s.wandb_dir, fx.cwd.join("wandb"));
    assert_eq!(s.project.as_deref(), Some("plain"));

    fx.write(
        &fx.cwd.join(".wandb").join("settings"),
        "[default]\nproject = dotted\n",
    );
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.wandb_dir, fx.cwd.join(".wandb"));
    assert_eq!(s.project.as_deref(), Some("dotted"));
    assert_eq!(
        setup.report().workspace_settings_path,
        fx.cwd.join(".wandb").join("settings")
    );
    assert_eq!(
        s.settings_workspace(),
        fx.cwd.join(".wandb").join("settings")
    );

    // use_dot_wandb forces the choice either way.
    let s = setup
        .resolve(
            &Overrides::default(),
            &Overrides::default().use_dot_wandb("false"),
        )
        .expect("valid");
    assert_eq!(s.wandb_dir, fx.cwd.join("wandb"));
}

#[test]
fn workspace_file_stays_relative_to_cwd_even_with_wandb_dir() {
    let mut fx = Fixture::new();
    let root = fx.home.join("root");
    fx.write(
        &root.join("wandb").join("settings"),
        "[default]\nproject = under-root\n",
    );
    fx.write(&fx.workspace_file(), "[default]\nproject = under-cwd\n");
    fx.set_env("WANDB_DIR", root.to_str().expect("utf-8 temp path"));
    let s = fx.load().expect("loads");
    assert_eq!(s.project.as_deref(), Some("under-cwd"));
    assert_eq!(s.root_dir, root);
    assert_eq!(s.settings_workspace(), root.join("wandb").join("settings"));
}

#[test]
fn ignored_keys_are_reported() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nroot_dir = /x\nsettings_system = /y\nanonymous = must\nsave_code = true\nprojct = typo\n_stats_sampling_interval = 2\nmode = offline\n",
    );
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.mode.as_str(), "offline");
    // A leading underscore means x_, as in W&B.
    assert_eq!(s.x_stats_sampling_interval, 2.0);
    let path = fx.system_file();
    let at = |line| Source::SystemFile {
        path: path.clone(),
        line,
    };
    let ignored = |name: &str, line, reason| IgnoredSetting {
        name: name.to_owned(),
        origin: at(line),
        reason,
    };
    assert_eq!(
        setup.report().ignored,
        vec![
            ignored("root_dir", 2, IgnoredReason::NotAllowedInFile),
            ignored("settings_system", 3, IgnoredReason::NotAllowedInFile),
            ignored("anonymous", 4, IgnoredReason::Deprecated),
            ignored("save_code", 5, IgnoredReason::Unsupported),
            ignored("projct", 6, IgnoredReason::Unknown),
        ]
    );
    assert_eq!(
        setup.report().ignored[0].to_string(),
        format!(
            "ignoring root_dir from file {} line 2: not allowed in a settings file",
            path.display()
        )
    );
}

#[test]
fn lists_in_files() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nignore_globs = *.tmp,cache/*\nrun_tags = a,b\n",
    );
    let s = fx.load().expect("loads");
    assert_eq!(s.ignore_globs, ["*.tmp", "cache/*"]);
    assert_eq!(s.run_tags, Some(vec!["a,b".to_owned()]));
}

#[test]
fn invalid_value_rejects_both_files_with_a_warning() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nproject = fine\n\nmode = onlin\n",
    );
    fx.write(&fx.workspace_file(), "[default]\nentity = also-dropped\n");
    let setup = fx
        .setup(&Overrides::default())
        .expect("file problems are not fatal");
    let s = setup.settings().expect("valid");
    assert_eq!(s.project, None);
    assert_eq!(s.entity, None);
    assert_eq!(s.mode.as_str(), "online");
    let warnings = &setup.report().warnings;
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        format!(
            "ignoring all settings files: invalid mode \"onlin\" from file {} line 4: expected one of online, offline, dryrun, disabled, shared, run",
            fx.system_file().display()
        )
    );
}

#[test]
fn invalid_system_value_overridden_by_workspace_is_fine() {
    let fx = Fixture::new();
    fx.write(&fx.system_file(), "[default]\nmode = onlin\n");
    fx.write(&fx.workspace_file(), "[default]\nmode = offline\n");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    assert!(setup.report().warnings.is_empty());
    assert_eq!(setup.settings().expect("valid").mode.as_str(), "offline");
}

#[test]
fn unparsable_file_is_ignored_alone() {
    let fx = Fixture::new();
    fx.write(
        &fx.system_file(),
        "[default]\nproject = p\nproject = again\n",
    );
    fx.write(&fx.workspace_file(), "[default]\nentity = e\n");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.project, None);
    assert_eq!(s.entity.as_deref(), Some("e"));
    assert_eq!(
        setup.report().warnings,
        vec![Warning::SettingsFileUnreadable {
            path: fx.system_file(),
            problem: "line 3: key \"project\" in section \"default\" already exists".to_owned(),
        }]
    );
    for bad in [
        "project = no header\n",
        "[default]\nno delimiter\n",
        "[default]\nx = %oops\n",
    ] {
        fx.write(&fx.system_file(), bad);
        let setup = fx.setup(&Overrides::default()).expect("loads");
        assert_eq!(setup.report().warnings.len(), 1, "{bad:?}");
        assert_eq!(setup.report().files_read, vec![fx.workspace_file()]);
    }
}

#[test]
fn missing_files_are_fine() {
    let fx = Fixture::new();
    let setup = fx.setup(&Overrides::default()).expect("loads");
    assert!(setup.report().warnings.is_empty());
    assert!(setup.report().files_read.is_empty());
    let loaded = load(&fx.ctx(), &LoadOptions::default()).expect("loads");
    assert_eq!(loaded.settings.root_dir, fx.cwd);
    assert_eq!(loaded.report.system_settings_path, Some(fx.system_file()));
    assert_eq!(loaded.report.workspace_settings_path, fx.workspace_file());
}
