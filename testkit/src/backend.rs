//! [`TestBackend`]: the synchronous handle that owns the tokio runtime, the listener and the
//! shared state, so plain `#[test]` functions can drive it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdTcpListener};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::error::TestkitError;
use crate::faults::Faults;
use crate::link::{Link, LinkModel};
use crate::server::{Shared, accept_loop};
use crate::state::{BackendState, RunKey, RunState, Store};
use crate::tls::{Https, Tls};

/// The API key accepted by default (40 characters, like a real W&B key).
pub const DEFAULT_API_KEY: &str = "testkitkey0123456789abcdef0123456789abcd";

/// Entity reported when a client sends `entity: null`.
pub const DEFAULT_ENTITY: &str = "test-entity";

/// How long [`TestBackend::stop`] waits for the server task to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`TestBackend::restart`] keeps retrying to bind the old port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for [`TestBackend::start_with`].
#[derive(Clone)]
pub struct BackendConfig {
    /// The API key clients must send as `Authorization: Basic base64("api:<key>")`.
    pub api_key: String,
    /// When false, any (or no) credentials are accepted.
    pub check_auth: bool,
    /// Entity used when UpsertBucket sends `entity: null`.
    pub default_entity: String,
    /// Server features reported by `ServerFeaturesQuery` (e.g. `FILESTREAM_GZIP`).
    pub features: Vec<String>,
    /// Port on 127.0.0.1 to listen on; 0 picks an ephemeral port.
    pub port: u16,
    /// Tokio worker threads.
    pub worker_threads: usize,
    /// Keep each GraphQL request's `variables` in the request log (on by default; turn off
    /// for very long benchmarks to save memory).
    pub record_variables: bool,
    /// A model of the network between clients and the backend (delay each way, shared
    /// bandwidth); `None` serves at loopback speed.
    pub link: Option<LinkModel>,
    /// Serve HTTPS, with a certificate from an authority made at start-up
    /// ([`TestBackend::ca_pem`]), offering these HTTP versions; `None` serves plain HTTP/1.1.
    pub https: Option<Https>,
    /// On HTTP/2, each stream's receive window in bytes (the connection's is four times it):
    /// how much a client may send before the server's next window update. `None` keeps hyper's
    /// 1 MiB, which caps one upload at 1 MiB a round trip on a long link; a server tuned for
    /// long links advertises more.
    pub http2_window: Option<u32>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            check_auth: true,
            default_entity: DEFAULT_ENTITY.to_owned(),
            features: Vec::new(),
            port: 0,
            worker_threads: 2,
            record_variables: true,
            link: None,
            https: None,
            http2_window: None,
        }
    }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig")
            .field("api_key", &"<redacted>")
            .field("check_auth", &self.check_auth)
            .field("default_entity", &self.default_entity)
            .field("features", &self.features)
            .field("port", &self.port)
            .field("worker_threads", &self.worker_threads)
            .field("record_variables", &self.record_variables)
            .field("link", &self.link)
            .field("https", &self.https)
            .field("http2_window", &self.http2_window)
            .finish()
    }
}

/// A running server task: how to stop it and how to know it stopped.
struct ServerTask {
    shutdown: oneshot::Sender<()>,
    done: mpsc::Receiver<()>,
}

/// A W&B-compatible backend listening on `127.0.0.1`, reconstructing what clients upload.
///
/// All methods take `&self`, so the handle can be shared with other threads (e.g. one thread
/// stops and restarts the server while another runs a client). Dropping it shuts the server
/// down.
pub struct TestBackend {
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
    addr: SocketAddr,
    api_key: String,
    server: Mutex<Option<ServerTask>>,
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl TestBackend {
    /// Starts a backend with [`BackendConfig::default`] on an ephemeral port.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(BackendConfig::default())
    }

    /// Starts a backend with the given settings.
    pub fn start_with(config: BackendConfig) -> Result<Self, TestkitError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("wandb-testkit")
            .enable_all()
            .build()
            .map_err(TestkitError::Runtime)?;
        let listener = StdTcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, config.port))
            .map_err(|source| TestkitError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(TestkitError::Io)?;
        let tls = config.https.map(Tls::new).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            faults: Faults::default(),
            features: Mutex::new(config.features.clone()),
            api_key: config.check_auth.then(|| config.api_key.clone()),
            default_entity: config.default_entity.clone(),
            base_url: format!("{scheme}://{addr}"),
            started: Instant::now(),
            record_variables: config.record_variables,
            link: config.link.map(|model| Arc::new(Link::new(model))),
            tls,
            http2_window: config.http2_window,
        });
        let backend = Self {
            shared,
            runtime: Some(runtime),
            addr,
            api_key: config.api_key,
            server: Mutex::new(None),
        };
        backend.spawn_server(listener)?;
        Ok(backend)
    }

    fn server(&self) -> MutexGuard<'_, Option<ServerTask>> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn_server(&self, listener: StdTcpListener) -> Result<(), TestkitError> {
        let runtime = self.runtime.as_ref().ok_or(TestkitError::ShutDown)?;
        listener.set_nonblocking(true).map_err(TestkitError::Io)?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    accept_loop(listener, shared, shutdown_rx).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
            let _ = done_tx.send(());
        });
        match ready_rx.recv_timeout(STOP_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(TestkitError::Io(e)),
            Err(_) => return Err(TestkitError::Timeout("starting the server task")),
        }
        *self.server() = Some(ServerTask {
            shutdown: shutdown_tx,
            done: done_rx,
        });
        Ok(())
    }

    /// The PEM certificate of the authority that signed an HTTPS backend's certificate (what a
    /// client adds to its roots, e.g. as `REQUESTS_CA_BUNDLE`); `None` on plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|tls| tls.ca_pem.as_str())
    }

    /// The base URL to give clients, e.g. `http://127.0.0.1:41234` or, on HTTPS,
    /// `https://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The socket address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key clients must use.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The value of the `Authorization` header clients must send.
    pub fn auth_header(&self) -> String {
        use base64::Engine as _;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("api:{}", self.api_key));
        format!("Basic {token}")
    }

    /// The fault plan (shared; changes apply to the next requests).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Whether `CreateArtifactFiles` hands out multipart uploads for files sent with
    /// `uploadPartsInput` (on by default; off, such files get a single upload URL, as from a
    /// server whose storage has no multipart uploads). [`TestBackend::reset`] turns it on again.
    pub fn set_multipart_uploads(&self, enabled: bool) {
        self.shared.store().no_multipart = !enabled;
    }

    /// Replaces the features reported by `ServerFeaturesQuery`.
    pub fn set_features<I, S>(&self, features: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .set_features(features.into_iter().map(Into::into).collect());
    }

    /// A parsed snapshot of everything stored.
    pub fn state(&self) -> BackendState {
        let features = self.shared.features();
        self.shared.store().snapshot(&features)
    }

    /// The snapshot as JSON (the same document `GET /_state` serves).
    pub fn state_json(&self) -> Result<String, TestkitError> {
        serde_json::to_string_pretty(&self.state()).map_err(TestkitError::Json)
    }

    /// A parsed snapshot of one run.
    pub fn run(&self, entity: &str, project: &str, run_id: &str) -> Option<RunState> {
        let key: RunKey = (entity.to_owned(), project.to_owned(), run_id.to_owned());
        self.shared.store().runs.get(&key).map(|run| run.snapshot())
    }

    /// A parsed snapshot of the (first) run with this id, in any entity and project.
    pub fn find_run(&self, run_id: &str) -> Option<RunState> {
        self.shared
            .store()
            .runs
            .values()
            .find(|run| run.name == run_id)
            .map(|run| run.snapshot())
    }

    /// Makes later file_stream replies for this run carry `"stopped": true` (the "Stop" button
    /// of the UI). Returns false when the run is unknown.
    pub fn request_stop(&self, entity: &str, project: &str, run_id: &str) -> bool {
        let key: RunKey = (entity.to_owned(), project.to_owned(), run_id.to_owned());
        match self.shared.store().runs.get_mut(&key) {
            Some(run) => {
                run.stop_requested = true;
                true
            }
            None => false,
        }
    }

    /// Forgets every run, counter, error and the request log (faults are kept).
    pub fn reset_state(&self) {
        *self.shared.store() = Store::default();
    }

    /// Polls the state every 20 ms until `predicate` holds or `timeout` passes; returns the
    /// state that satisfied it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&BackendState) -> bool,
    ) -> Option<BackendState> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state();
            if predicate(&state) {
                return Some(state);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.server().is_some()
    }

    /// Stops serving: closes the listener and aborts every open connection. The state is kept.
    /// Does nothing when already stopped.
    pub fn stop(&self) -> Result<(), TestkitError> {
        let Some(task) = self.server().take() else {
            return Ok(());
        };
        let _ = task.shutdown.send(());
        task.done
            .recv_timeout(STOP_TIMEOUT)
            .map_err(|_| TestkitError::Timeout("stopping the server task"))
    }

    /// Starts serving again on the same port with the same state (stopping first if running).
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.stop()?;
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match StdTcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(TestkitError::Bind {
                        port: self.addr.port(),
                        source,
                    });
                }
            }
        };
        self.spawn_server(listener)
    }

    /// Stops, sleeps for `down_for`, then restarts (blocking the calling thread).
    pub fn stop_for(&self, down_for: Duration) -> Result<(), TestkitError> {
        self.stop()?;
        std::thread::sleep(down_for);
        self.restart()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
