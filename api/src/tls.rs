//! The rustls configuration of the API client, and the PEM parsing it
//! shares with the node's server configuration.
//!
//! The crypto provider is named explicitly ([`provider`], ring), so nothing
//! depends on a process-wide default.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why PEM material or a TLS configuration is not usable. Messages name the
/// file and never quote key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM file held no usable certificate.
    #[error("{origin}: {reason}")]
    BadCertificate { origin: String, reason: String },

    /// A PEM file held no usable private key. The reason never quotes the file.
    #[error("{origin}: no usable private key (expected a PEM PKCS#8, SEC1 or PKCS#1 key)")]
    BadKey { origin: String },

    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("{what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider of every TLS configuration of the API: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration for the API client: trusts the node CA in
/// `ca_pem` and presents the client certificate `cert_pem` with `key_pem`.
///
/// ALPN is http/1.1 only: the API client (reqwest) is built without HTTP/2.
pub fn client_config(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientConfig, Error> {
    let roots = root_store(ca_pem, "node CA certificate")?;
    let chain = certs(cert_pem, "client certificate")?;
    let key = private_key(key_pem, "client key")?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Rustls { what: "TLS protocol versions".to_owned(), source })?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|source| Error::Rustls {
            what: "the client certificate and key do not form a usable pair".to_owned(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Parses every certificate in a PEM buffer; `origin` names it in errors.
pub fn certs(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadCertificate { origin: origin.to_owned(), reason: format!("not valid PEM ({e})") })?;
    if certs.is_empty() {
        return Err(Error::BadCertificate {
            origin: origin.to_owned(),
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) found".to_owned(),
        });
    }
    Ok(certs)
}

/// Parses the first private key in a PEM buffer; `origin` names it in
/// errors, which never quote the buffer.
pub fn private_key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| Error::BadKey { origin: origin.to_owned() })
}

/// A trust-anchor store of every certificate in a PEM buffer.
pub fn root_store(pem: &[u8], origin: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem, origin)? {
        roots
            .add(cert)
            .map_err(|source| Error::Rustls { what: format!("{origin} is not usable as a trust anchor"), source })?;
    }
    Ok(roots)
}

/// Longest API client name (a certificate's CN, and a file name on the node).
pub const MAX_CLIENT_NAME_LEN: usize = 64;

/// True if `name` can name an API client certificate: 1 to
/// [`MAX_CLIENT_NAME_LEN`] characters from `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit (so it is also a safe file name).
pub fn is_client_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLIENT_NAME_LEN
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
