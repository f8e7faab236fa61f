//! The API key never shows up in Debug, Display or errors; and the sync API key lookup
//! (`WANDB_API_KEY`, then netrc by host and port).

mod common;

use common::{Fixture, home_var};
use wandb_settings::{
    ApiKeyError, ApiKeyProblem, ApiKeySource, ApiKeyWarning, Env, LoadOptions, Overrides,
    SetupSettings, api_key, load, lookup_api_key, netrc_path,
};

const KEY: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_KEY: &str = "local-ffffffffffffffffffffffffffffffffffffffff";

fn assert_hidden(text: &str) {
    assert!(!text.contains(KEY), "secret leaked: {text}");
    assert!(!text.contains("SECRETSECRET"), "secret leaked: {text}");
}

#[test]
fn api_key_never_printed() {
    let mut fx = Fixture::new();
    fx.write(&fx.system_file(), &format!("[default]\napi_key = {KEY}\n"));
    fx.set_env("WANDB_API_KEY", KEY);
    let setup =
        SetupSettings::load(&fx.ctx(), None, &Overrides::default().api_key(KEY)).expect("loads");
    let settings = setup
        .resolve(
            &Overrides::default().api_key(KEY),
            &Overrides::default().api_key(KEY),
        )
        .expect("valid");
    assert_eq!(settings.api_key.as_ref().map(|k| k.expose()), Some(KEY));
    assert_hidden(&format!("{settings:?}"));
    assert_hidden(&format!("{setup:?}"));
    assert_hidden(&format!("{:?}", setup.raw()));
    assert_hidden(&format!("{:?}", setup.report()));
    assert_hidden(&format!("{:?}", fx.ctx()));
    assert_hidden(&format!("{:?}", fx.env));
    assert_hidden(&format!("{:?}", setup.env_fingerprint()));
    let loaded = load(&fx.ctx(), &LoadOptions::default()).expect("loads");
    assert_hidden(&format!("{loaded:?}"));
    assert_eq!(
        format!(
            "{}",
            settings
                .api_key
                .as_ref()
                .map_or(String::new(), ToString::to_string)
        ),
        "***"
    );
}

#[test]
fn api_key_errors_and_warnings_never_print_it() {
    let mut fx = Fixture::new();
    fx.set_env("WANDB_API_KEY", " SECRETSECRET");
    let err = fx.setup(&Overrides::default()).expect_err("whitespace");
    assert_hidden(&err.to_string());
    assert_hidden(&format!("{err:?}"));

    let fx = Fixture::new();
    fx.write(&fx.system_file(), "[default]\napi_key = SECRETSECRET \n");
    // configparser trims values, so a continuation line is what leaves leading whitespace.
    fx.write(
        &fx.workspace_file(),
        "[default]\napi_key =\n  SECRETSECRET\n",
    );
    let setup = fx
        .setup(&Overrides::default())
        .expect("file problems are warnings");
    for w in &setup.report().warnings {
        assert_hidden(&w.to_string());
        assert_hidden(&format!("{w:?}"));
    }
    assert_eq!(setup.report().warnings.len(), 1);

    let env = Env::empty().with("WANDB_API_KEY", "SECRETSECRET");
    let err = lookup_api_key("https://api.wandb.ai", &env).expect_err("too short");
    assert_eq!(
        err.to_string(),
        "invalid api key from environment variable WANDB_API_KEY: must have at least 40 characters, has 12"
    );
    assert_hidden(&format!("{err:?}"));
}

/// An environment whose home holds the given `.netrc`.
fn home_with_netrc(fx: &Fixture, text: &str) -> Env {
    fx.write(&fx.home.join(".netrc"), text);
    fx.env.clone()
}

#[test]
fn env_key_comes_first() {
    let fx = Fixture::new();
    let env = home_with_netrc(&fx, &format!("machine api.wandb.ai password {OTHER_KEY}\n"))
        .with("WANDB_API_KEY", KEY);
    let found = lookup_api_key("https://api.wandb.ai", &env)
        .expect("ok")
        .found
        .expect("found");
    assert_eq!(found.key.expose(), KEY);
    assert_eq!(found.source, ApiKeySource::Env);
    // An empty variable counts as unset.
    let env = env.with("WANDB_API_KEY", "");
    assert_eq!(
        api_key("https://api.wandb.ai", &env).map(|k| k.expose().to_owned()),
        Some(OTHER_KEY.to_owned())
    );
}

#[test]
fn netrc_by_host_and_port() {
    let fx = Fixture::new();
    let text = format!(
        "machine api.wandb.ai\n  login user\n  password {KEY}\nmachine localhost:8080 login user password {OTHER_KEY}\n"
    );
    let env = home_with_netrc(&fx, &text);
    let get = |url: &str| api_key(url, &env).map(|k| k.expose().to_owned());
    assert_eq!(get("https://api.wandb.ai").as_deref(), Some(KEY));
    assert_eq!(get("https://api.wandb.ai/").as_deref(), Some(KEY));
    assert_eq!(get("http://localhost:8080/").as_deref(), Some(OTHER_KEY));
    // The netloc must match as written: no port, another port, or an explicit default port.
    assert_eq!(get("http://localhost"), None);
    assert_eq!(get("http://localhost:9090"), None);
    assert_eq!(get("https://api.wandb.ai:443"), None);

    let found = lookup_api_key("http://localhost:8080", &env)
        .expect("ok")
        .found
        .expect("found");
    assert_eq!(
        found.source,
        ApiKeySource::Netrc {
            path: fx.home.join(".netrc"),
            machine: "localhost:8080".to_owned()
        }
    );
    assert_eq!(
        found.source.to_string(),
        format!(
            "netrc file {} (machine localhost:8080)",
            fx.home.join(".netrc").display()
        )
    );
}

#[test]
fn netrc_default_entry() {
    let fx = Fixture::new();
    let env = home_with_netrc(
        &fx,
        &format!("machine a.example password x\ndefault login u password {KEY}\n"),
    );
    assert_eq!(
        api_key("https://other.example", &env).map(|k| k.expose().to_owned()),
        Some(KEY.to_owned())
    );
}

#[test]
fn netrc_location() {
    let fx = Fixture::new();
    // Nothing exists: the conventional name.
    let conventional = if cfg!(windows) { "_netrc" } else { ".netrc" };
    assert_eq!(netrc_path(&fx.env), Some(fx.home.join(conventional)));
    // Only _netrc exists.
    fx.write(
        &fx.home.join("_netrc"),
        &format!("machine api.wandb.ai password {KEY}\n"),
    );
    assert_eq!(netrc_path(&fx.env), Some(fx.home.join("_netrc")));
    assert_eq!(
        api_key("https://api.wandb.ai", &fx.env).map(|k| k.expose().to_owned()),
        Some(KEY.to_owned())
    );
    // .netrc wins over _netrc.
    fx.write(&fx.home.join(".netrc"), "");
    assert_eq!(netrc_path(&fx.env), Some(fx.home.join(".netrc")));
    assert_eq!(api_key("https://api.wandb.ai", &fx.env), None);
    // NETRC wins over both, with ~ expanded.
    let env = fx.env.clone().with("NETRC", "~/_netrc");
    assert_eq!(netrc_path(&env), Some(fx.home.join("_netrc")));
    assert_eq!(
        api_key("https://api.wandb.ai", &env).map(|k| k.expose().to_owned()),
        Some(KEY.to_owned())
    );
    // No home and no NETRC: nowhere to look.
    let bare = Env::empty();
    assert_eq!(netrc_path(&bare), None);
    assert_eq!(api_key("https://api.wandb.ai", &bare), None);
    let _ = home_var();
}

#[test]
fn netrc_problems_are_warnings() {
    let fx = Fixture::new();
    let env = home_with_netrc(&fx, "machine api.wandb.ai password SECRETSECRET extra\n");
    let lookup = lookup_api_key("https://api.wandb.ai", &env).expect("parse errors are not fatal");
    assert_eq!(lookup.found, None);
    assert_eq!(
        lookup.warnings,
        vec![ApiKeyWarning::NetrcUnreadable {
            path: fx.home.join(".netrc"),
            problem: "line 2: unexpected token in machine entry".to_owned(),
        }]
    );
    assert_hidden(&lookup.warnings[0].to_string());

    let env = home_with_netrc(&fx, "machine api.wandb.ai login me\n");
    let lookup = lookup_api_key("https://api.wandb.ai", &env).expect("ok");
    assert_eq!(lookup.found, None);
    assert_eq!(
        lookup.warnings[0].to_string(),
        format!(
            "entry for machine \"api.wandb.ai\" in {} has no api key",
            fx.home.join(".netrc").display()
        )
    );
}

#[test]
fn malformed_netrc_key_is_an_error() {
    let fx = Fixture::new();
    let env = home_with_netrc(&fx, "machine api.wandb.ai password SECRETSECRET\n");
    let err = lookup_api_key("https://api.wandb.ai", &env).expect_err("too short");
    assert!(matches!(
        err,
        ApiKeyError::InvalidKey {
            problem: ApiKeyProblem::TooShort { chars: 12 },
            ..
        }
    ));
    assert_hidden(&err.to_string());
}

#[test]
fn key_and_identity_token_conflict() {
    let env = Env::empty()
        .with("WANDB_API_KEY", KEY)
        .with("WANDB_IDENTITY_TOKEN_FILE", "/t");
    let err = lookup_api_key("https://api.wandb.ai", &env).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "both WANDB_API_KEY and WANDB_IDENTITY_TOKEN_FILE are set, which is not allowed"
    );
}
