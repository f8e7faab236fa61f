//! Errors returned by the test backend's control API.

use std::io;

/// An error starting, stopping or restarting the backend.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// Building the tokio runtime failed.
    #[error("could not build the tokio runtime: {0}")]
    Runtime(#[source] io::Error),
    /// Binding 127.0.0.1:`port` failed.
    #[error("could not bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port that was asked for (0 = ephemeral).
        port: u16,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another socket operation failed.
    #[error("socket error: {0}")]
    Io(#[source] io::Error),
    /// The server task did not react in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The backend's runtime is already gone.
    #[error("the backend is shut down")]
    ShutDown,
    /// Making the backend's certificates or TLS configuration failed.
    #[error("could not make the TLS {what}: {message}")]
    Tls {
        /// What was being made (the authority, the server certificate, the config).
        what: &'static str,
        /// The TLS library's message.
        message: String,
    },
    /// Serializing the state failed.
    #[error("could not serialize the state: {0}")]
    Json(#[source] serde_json::Error),
}
