//! `wandb-test-backend`: runs the W&B-compatible test backend until Ctrl-C (or SIGTERM).
//!
//! Prints the base URL as the first line on stdout, serves until interrupted, and can write the
//! reconstructed state as JSON on exit (`--dump`). The state is also served live at
//! `GET <base>/_state`, and faults can be added with `POST <base>/_faults`. The API key is
//! never printed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wandb_testkit::{
    BackendConfig, DEFAULT_API_KEY, DEFAULT_ENTITY, Https, LinkModel, TestBackend,
};

/// W&B-compatible test backend on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// API key clients must send (defaults to the testkit's fixed test key).
    #[arg(long, env = "WANDB_TESTKIT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Accept any (or no) credentials.
    #[arg(long)]
    any_key: bool,
    /// Entity reported when clients send none.
    #[arg(long, default_value = DEFAULT_ENTITY)]
    entity: String,
    /// Server feature to advertise (repeatable), e.g. FILESTREAM_GZIP.
    #[arg(long = "feature")]
    features: Vec<String>,
    /// Write the state as JSON to this file on exit.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Also write the base URL to this file once listening.
    #[arg(long)]
    url_file: Option<PathBuf>,
    /// Model a wide-area link: this round-trip time in milliseconds (half each way, and one
    /// more round trip for each new connection's handshake).
    #[arg(long, value_name = "MS")]
    rtt_ms: Option<u64>,
    /// Model a link of this many Mbit/s in each direction, shared by all connections.
    #[arg(long, value_name = "MBIT")]
    mbit: Option<u64>,
    /// Serve HTTPS, offering these HTTP versions by ALPN (`h2` offers HTTP/2 and HTTP/1.1),
    /// with a certificate from an authority made at start-up; see --ca-file.
    #[arg(long, value_name = "VERSIONS")]
    https: Option<HttpsArg>,
    /// Write the HTTPS authority's certificate (PEM) to this file, for the client's
    /// REQUESTS_CA_BUNDLE or SSL_CERT_FILE.
    #[arg(long, value_name = "PATH", requires = "https")]
    ca_file: Option<PathBuf>,
}

/// The values of `--https`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum HttpsArg {
    /// HTTP/2 and HTTP/1.1.
    H2,
    /// HTTP/1.1 only.
    Http1,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wandb-test-backend: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let config = BackendConfig {
        api_key: args.api_key.unwrap_or_else(|| DEFAULT_API_KEY.to_owned()),
        check_auth: !args.any_key,
        default_entity: args.entity,
        features: args.features,
        port: args.port,
        link: link_model(args.rtt_ms, args.mbit),
        https: args.https.map(|https| match https {
            HttpsArg::H2 => Https::Http2,
            HttpsArg::Http1 => Https::Http1Only,
        }),
        ..BackendConfig::default()
    };
    let backend = TestBackend::start_with(config).map_err(|e| e.to_string())?;
    if let (Some(path), Some(pem)) = (&args.ca_file, backend.ca_pem()) {
        std::fs::write(path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let url = backend.base_url();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{url}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.url_file {
        std::fs::write(path, format!("{url}\n"))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    wait_for_signal()?;
    if let Some(path) = &args.dump {
        let json = backend.state_json().map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wandb-test-backend: state written to {}", path.display());
    }
    backend.stop().map_err(|e| e.to_string())
}

/// Blocks until Ctrl-C or (on Unix) SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
        }
    })
}

/// The link model the flags ask for, if any.
fn link_model(rtt_ms: Option<u64>, mbit: Option<u64>) -> Option<LinkModel> {
    if rtt_ms.is_none() && mbit.is_none() {
        return None;
    }
    let link = LinkModel::with_rtt(std::time::Duration::from_millis(rtt_ms.unwrap_or(0)));
    Some(match mbit {
        Some(mbit) => link.megabits_per_second(mbit),
        None => link,
    })
}
