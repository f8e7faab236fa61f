//! A W&B-compatible test backend for integration tests and benchmarks.
//!
//! [`TestBackend`] listens on `127.0.0.1` (ephemeral port by default) and speaks the subset of
//! the W&B protocol that the official `wandb sync` (wandb-core) and our own sync tool use:
//!
//! * `POST /graphql`: `UpsertBucket`, `ServerFeaturesQuery`, `CreateRunFiles`, `Viewer`,
//!   `ServerInfo`, `RunResumeStatus`, `NotifyScriptableRunAlert`, `MarkRunFilesUploaded`
//!   (dispatched on `operationName`, else sniffed from the query text; anything else gets a
//!   GraphQL `errors` reply). Requires `Authorization: Basic base64("api:<key>")`.
//! * `POST /files/{entity}/{project}/{run}/file_stream` (optionally gzip): history, events,
//!   summary and console lines by offset, `uploaded`, `preempting`, `complete` + `exitcode`.
//! * `PUT /_upload/{entity}/{project}/{run}/{path}`: the upload URLs `CreateRunFiles` hands
//!   out (no auth, like signed storage URLs); `GET` on the same URL downloads.
//! * Artifacts (see [`ArtifactState`]): `CreateArtifact`, `CreateArtifactManifest`,
//!   `UpdateArtifactManifest`, `CreateArtifactFiles`, `CommitArtifact`, `UseArtifact`, with
//!   `PUT /_artifact_upload/{artifact}/{md5 hex}` for files (content stored once per entity,
//!   project and MD5, so a file the server has gets no upload URL) and
//!   `PUT /_artifact_manifest/{artifact}` for the manifest (`GET` downloads both).
//! * `POST /sdk/otel/...`: wandb-core's own telemetry, answered with an empty 200.
//! * Control endpoints (never faulted or counted): `GET /_state` (the [`BackendState`] as
//!   JSON), `GET`/`POST /_faults` (a list of [`FaultRule`]s, or `{"clear": true, "rules":
//!   [...]}`), `POST /_reset`, `GET`/`POST /_features`, `GET /_health`.
//! * `GET /{entity}/{project}/runs/{run}`: the run URL sync tools print, answered with that
//!   run's [`RunState`] as JSON (404 naming the run when it is unknown).
//!
//! With [`BackendConfig::https`] it serves HTTPS instead, with a certificate for `127.0.0.1` and
//! `localhost` signed by an authority made at start-up ([`TestBackend::ca_pem`]), offering
//! HTTP/2 and HTTP/1.1 ([`Https::Http2`]) or HTTP/1.1 only by ALPN.
//!
//! Everything uploaded is reconstructed per run into a [`RunState`]; see [`faults`] for the
//! deterministic fault injection. Non-finite numbers in uploaded JSON lines (`NaN`,
//! `Infinity`, `-Infinity`) are represented as the JSON **strings** `"NaN"`, `"Infinity"`,
//! `"-Infinity"` in the parsed state (see [`json`]).
//!
//! ```no_run
//! use wandb_testkit::{Route, TestBackend};
//!
//! let backend = TestBackend::start().expect("start backend");
//! backend.faults().fail_next(Route::FileStream, 2, 503);
//! // ... run a client against backend.base_url() with backend.api_key() ...
//! let state = backend.state();
//! assert!(state.runs.iter().all(|r| r.complete));
//! ```

mod artifacts;
mod backend;
mod bench;
pub mod compare;
mod error;
pub mod faults;
mod filestream;
mod graphql;
pub mod json;
mod link;
mod sdk;
mod server;
mod slurm;
mod state;
mod sweeps;
mod tls;
mod urlpath;

pub use artifacts::{ArtifactCounters, ArtifactFile, ArtifactState};
pub use backend::{BackendConfig, DEFAULT_API_KEY, DEFAULT_ENTITY, TestBackend};
pub use bench::cpu_seconds;
pub use error::TestkitError;
pub use faults::{FaultAction, FaultRule, Faults, InjectedFault, Route};
pub use graphql::{DEFAULT_PROJECT, SUPPORTED_OPERATIONS};
pub use link::LinkModel;
pub use sdk::{python_script, sdk_python, skip};
pub use slurm::{DEFAULT_SLURM_CONF, SlurmCluster, slurm_cluster};
pub use state::{
    Alert, BackendState, Counters, RequestLogEntry, RunCounters, RunState, UploadedFile,
    strip_console_prefix,
};
pub use sweeps::{SWEEP_STATES, SweepState};
pub use tls::Https;
pub use urlpath::{decode_segment, encode_segment};
