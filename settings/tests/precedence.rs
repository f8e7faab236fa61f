//! Table-driven precedence test: every combination of sources setting a key, for several keys,
//! each source overriding the ones below and each missing one falling back.

mod common;

use std::path::PathBuf;

use common::Fixture;
use wandb_settings::{Key, Overrides, Settings, SetupSettings, Source};

/// Source levels, lowest first (level 0 is the default).
const LEVELS: usize = 6;

/// A key and the text it gets at each level 1..=6 (system file, workspace file, env, setup,
/// init settings, init argument), plus the rendered value expected for the default and for each
/// level.
struct Case {
    key: Key,
    texts: [&'static str; LEVELS],
    default: &'static str,
    rendered: [&'static str; LEVELS],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: Key::Mode,
            texts: ["offline", "dryrun", "disabled", "shared", "run", "online"],
            default: "online",
            rendered: ["offline", "dryrun", "disabled", "shared", "run", "online"],
        },
        Case {
            key: Key::Project,
            texts: ["p-sys", "p-ws", "p-env", "p-setup", "p-init", "p-arg"],
            default: "-",
            rendered: ["p-sys", "p-ws", "p-env", "p-setup", "p-init", "p-arg"],
        },
        Case {
            key: Key::Entity,
            texts: ["e-sys", "e-ws", "e-env", "e-setup", "e-init", "e-arg"],
            default: "-",
            rendered: ["e-sys", "e-ws", "e-env", "e-setup", "e-init", "e-arg"],
        },
        Case {
            key: Key::RunId,
            texts: ["id1", "id2", "id3", "id4", "id5", "id6"],
            default: "-",
            rendered: ["id1", "id2", "id3", "id4", "id5", "id6"],
        },
        Case {
            key: Key::BaseUrl,
            texts: [
                "https://s1.example/",
                "https://s2.example",
                "http://s3.example:8080/",
                "https://s4.example/p/",
                "https://s5.example",
                "https://api.wandb.ai",
            ],
            default: "https://api.wandb.ai",
            rendered: [
                "https://s1.example",
                "https://s2.example",
                "http://s3.example:8080",
                "https://s4.example/p",
                "https://s5.example",
                "https://api.wandb.ai",
            ],
        },
        Case {
            key: Key::XStatsSamplingInterval,
            texts: ["1", "2.5", "3", "4", "5", "6"],
            default: "15",
            rendered: ["1", "2.5", "3", "4", "5", "6"],
        },
        Case {
            key: Key::Console,
            texts: ["off", "redirect", "wrap_raw", "wrap_emu", "auto", "wrap"],
            default: "wrap",
            rendered: ["off", "redirect", "wrap_raw", "wrap_emu", "wrap", "wrap"],
        },
        Case {
            key: Key::RunTags,
            // Files keep run_tags as one tag; everywhere else text is split on commas.
            texts: ["a,b", "c", "d,e", "f", "g,h", "i"],
            default: "-",
            rendered: ["a,b", "c", "d|e", "f", "g|h", "i"],
        },
        Case {
            key: Key::Resume,
            texts: ["allow", "must", "never", "auto", "allow", "must"],
            default: "-",
            rendered: ["allow", "must", "never", "auto", "allow", "must"],
        },
        Case {
            key: Key::Silent,
            texts: ["true", "no", "1", "off", "yes", "false"],
            default: "false",
            rendered: ["true", "false", "true", "false", "true", "false"],
        },
    ]
}

/// The value of `key` rendered as text ("-" for none; lists joined with "|").
fn render(s: &Settings, key: Key) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    match key {
        Key::Mode => s.mode.to_string(),
        Key::Project => opt(&s.project),
        Key::Entity => opt(&s.entity),
        Key::RunId => opt(&s.run_id),
        Key::BaseUrl => s.base_url.clone(),
        Key::XStatsSamplingInterval => s.x_stats_sampling_interval.to_string(),
        Key::Console => s.console.to_string(),
        Key::RunTags => s
            .run_tags
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.join("|")),
        Key::Resume => s.resume.map_or_else(|| "-".to_owned(), |r| r.to_string()),
        Key::Silent => s.silent.to_string(),
        other => panic!("no renderer for {other}"),
    }
}

/// Which levels (bit 0 = system file ... bit 5 = init argument) set the key of case `i` for
/// combination `combo`: each key gets a different mask, so layers interleave per key.
fn mask(combo: usize, i: usize) -> usize {
    (combo + i * 11) % (1 << LEVELS)
}

#[test]
fn every_combination_of_sources() {
    let cases = cases();
    for combo in 0..(1 << LEVELS) {
        let mut fx = Fixture::new();
        let mut system = String::from("[default]\n");
        let mut workspace = String::from("[default]\n");
        let mut system_lines = Vec::new();
        let mut workspace_lines = Vec::new();
        let mut setup = Overrides::default();
        let mut init_settings = Overrides::default();
        let mut init_args = Overrides::default();

        for (i, case) in cases.iter().enumerate() {
            let m = mask(combo, i);
            let set = |level: usize| m & (1 << level) != 0;
            if set(0) {
                system.push_str(&format!("{} = {}\n", case.key.name(), case.texts[0]));
                system_lines.push((case.key, system.lines().count()));
            }
            if set(1) {
                workspace.push_str(&format!("{}: {}\n", case.key.name(), case.texts[1]));
                workspace_lines.push((case.key, workspace.lines().count()));
            }
            if set(2) {
                fx.set_env(case.key.env_var(), case.texts[2]);
            }
            if set(3) {
                setup.set(case.key, case.texts[3]);
            }
            if set(4) {
                init_settings.set(case.key, case.texts[4]);
            }
            if set(5) {
                init_args.set(case.key, case.texts[5]);
            }
        }
        fx.write(&fx.system_file(), &system);
        fx.write(&fx.workspace_file(), &workspace);

        let loaded = SetupSettings::load(&fx.ctx(), None, &setup).expect("setup loads");
        assert!(
            loaded.report().warnings.is_empty(),
            "{:?}",
            loaded.report().warnings
        );
        let settings = loaded
            .resolve(&init_settings, &init_args)
            .expect("init resolves");

        for (i, case) in cases.iter().enumerate() {
            let m = mask(combo, i);
            let top = (0..LEVELS).rev().find(|level| m & (1 << level) != 0);
            let (want_value, want_source) = match top {
                None => (case.default.to_owned(), Source::Default),
                Some(level) => {
                    let source = match level {
                        0 => Source::SystemFile {
                            path: fx.system_file(),
                            line: line_of(&system_lines, case.key),
                        },
                        1 => Source::WorkspaceFile {
                            path: fx.workspace_file(),
                            line: line_of(&workspace_lines, case.key),
                        },
                        2 => Source::Env {
                            var: case.key.env_var().to_owned(),
                        },
                        3 => Source::Setup,
                        4 => Source::InitSettings,
                        _ => Source::InitArg,
                    };
                    (case.rendered[level].to_owned(), source)
                }
            };
            assert_eq!(
                render(&settings, case.key),
                want_value,
                "{} in combination {combo:#08b}",
                case.key
            );
            assert_eq!(
                settings.source(case.key),
                &want_source,
                "{} in combination {combo:#08b}",
                case.key
            );
        }
    }
}

fn line_of(lines: &[(Key, usize)], key: Key) -> usize {
    lines
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, l)| *l)
        .expect("line recorded")
}

#[test]
fn root_dir_precedence_skips_files() {
    let mut fx = Fixture::new();
    fx.write(&fx.system_file(), "[default]\nroot_dir = /from/system\n");
    fx.write(
        &fx.workspace_file(),
        "[default]\nroot_dir = /from/workspace\n",
    );
    let s = fx.load().expect("loads");
    assert_eq!(s.root_dir, fx.cwd);
    assert_eq!(s.source(Key::RootDir), &Source::Default);

    fx.set_env("WANDB_DIR", "rel/dir");
    let setup = fx.setup(&Overrides::default()).expect("loads");
    let s = setup.settings().expect("valid");
    assert_eq!(s.root_dir, fx.cwd.join("rel/dir"));
    assert_eq!(s.wandb_dir, fx.cwd.join("rel/dir").join("wandb"));

    let s = setup
        .resolve(
            &Overrides::default().root_dir("/abs/init"),
            &Overrides::default(),
        )
        .expect("valid");
    assert_eq!(s.root_dir, PathBuf::from("/abs/init"));
    assert_eq!(s.source(Key::RootDir), &Source::InitSettings);

    let s = setup
        .resolve(&Overrides::default(), &Overrides::default().root_dir("~/r"))
        .expect("valid");
    assert_eq!(s.root_dir, fx.home.join("r"));
}

#[test]
fn setup_update_and_init_do_not_leak_between_inits() {
    let fx = Fixture::new();
    let mut setup = fx
        .setup(&Overrides::default().project("one"))
        .expect("loads");
    setup
        .update(&Overrides::default().entity("ent"))
        .expect("valid");
    let a = setup
        .resolve(&Overrides::default(), &Overrides::default().project("two"))
        .expect("valid");
    assert_eq!(a.project.as_deref(), Some("two"));
    let b = setup.settings().expect("valid");
    assert_eq!(b.project.as_deref(), Some("one"));
    assert_eq!(b.entity.as_deref(), Some("ent"));
    assert_eq!(b.source(Key::Entity), &Source::Setup);
}
