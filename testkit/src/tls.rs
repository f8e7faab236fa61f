//! HTTPS for the test backend: a private certificate authority made when the backend starts,
//! a server certificate it signs for `127.0.0.1` and `localhost`, and the HTTP versions the
//! server offers by ALPN.
//!
//! Clients trust the backend through [`crate::TestBackend::ca_pem`] (the PEM a user would give
//! `wandb-sync` as `REQUESTS_CA_BUNDLE`); nothing is written to the system's trust store.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::TestkitError;

/// Which HTTP versions an HTTPS backend offers in the TLS handshake (ALPN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Https {
    /// `h2` first, then `http/1.1`: what a W&B server behind a common load balancer offers.
    #[default]
    Http2,
    /// `http/1.1` only: a server (or proxy) that does not speak HTTP/2.
    Http1Only,
}

/// The ALPN name of HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The server half of the backend's TLS: the acceptor and the authority's certificate.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    /// The authority's certificate (PEM), which clients add to their roots.
    pub(crate) ca_pem: String,
}

impl Tls {
    /// Makes a fresh authority and server certificate and the acceptor offering `https`'s
    /// protocols.
    pub(crate) fn new(https: Https) -> Result<Tls, TestkitError> {
        let tls_error = |what: &'static str| {
            move |e: rcgen::Error| TestkitError::Tls {
                what,
                message: e.to_string(),
            }
        };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("authority"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wandb-testkit authority");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(tls_error("authority key"))?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(tls_error("authority"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(tls_error("server certificate"))?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "wandb-testkit");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().map_err(tls_error("server key"))?;
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .map_err(tls_error("server certificate"))?;

        let config_error = |e: tokio_rustls::rustls::Error| TestkitError::Tls {
            what: "server config",
            message: e.to_string(),
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .map_err(config_error)?;
        config.alpn_protocols = match https {
            Https::Http2 => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
            Https::Http1Only => vec![ALPN_HTTP1.to_vec()],
        };
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca_cert.pem(),
        })
    }
}
