//! The node's local PKI for its HTTPS API, and the rustls configurations
//! built from it.
//!
//! `staffpass-node init` calls [`Pki::init`], which makes, in one directory:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem`, `ca.key` | the node's own CA (10 years); it signs every certificate below |
//! | `server.pem`, `server.key` | the API's server certificate (2 years), for the given DNS names / IP addresses |
//! | `admin.pem`, `admin.key` | the first client certificate (2 years), role `admin` |
//! | `crl.pem` | the client certificates revoked so far (made by the first [`Pki::revoke`]) |
//!
//! More client certificates come from [`Pki::issue_client`] and are written
//! to `clients/<name>.pem` and `clients/<name>.key`, or from a client's own
//! certificate signing request ([`Pki::sign_csr`], `clients/<name>.pem` only:
//! the private key never leaves the client's machine).
//!
//! [`Pki::revoke`] adds a client certificate to `crl.pem`, a certificate
//! revocation list signed by the node CA; the API's client verifier
//! ([`server_config`]) loads it, and reloads it when the file changes, so a
//! running node refuses a revoked certificate from its next handshake.
//! [`Pki::rotate_ca`] replaces the CA, the server and the admin certificates
//! (and nothing outside this directory), keeping the old files aside.
//!
//! A client certificate binds its holder's role: subject `OU` is the role
//! (`admin`, `hr` or `read-only`), `CN` is the user's name. The server reads
//! both from the certificate after rustls has verified it against the node
//! CA (see `crate::api::auth`); nothing else grants a role.
//!
//! Keys are ECDSA P-256 (supported by rcgen and by rustls' ring provider).
//! Private keys are written with mode 0600, atomically (temporary file,
//! fsync, rename), and are never printed or logged. Every rustls
//! configuration here names its crypto provider explicitly ([`provider`]), so
//! nothing depends on a process-wide default.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use staffpass_api::Role;

/// The file names in the PKI directory; the client side finds them here too.
pub use staffpass_api::data_dir::{ADMIN_CERT, ADMIN_KEY, CA_CERT, CA_KEY, CLIENTS_DIR, SERVER_CERT, SERVER_KEY};
use staffpass_api::tls::root_store;
/// The PEM parsing and client configuration shared with the API client.
pub use staffpass_api::tls::{certs, client_config, private_key, provider};

mod crl;
mod csr;
mod rotate;

pub use crl::{ClientVerifier, RevokeTarget, Revoked};
pub use csr::{MAX_CSR_BYTES, Signed};
pub use rotate::Rotated;

/// File name of the certificate revocation list, in the PKI directory.
pub const CRL_FILE: &str = "crl.pem";
/// Directory (under [`CLIENTS_DIR`]) where revoked client certificates are kept.
pub const REVOKED_DIR: &str = "revoked";

/// Name (CN) of the admin client certificate made by [`Pki::init`].
pub const ADMIN_NAME: &str = "admin";

/// Validity of the node CA.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// Validity of server and client certificates.
pub const LEAF_VALIDITY: Duration = Duration::days(730);
/// Certificates start this long before "now", to tolerate small clock skew.
const BACKDATE: Duration = Duration::hours(1);

/// Longest accepted client name (also used as a file name).
pub const MAX_NAME_LEN: usize = staffpass_api::tls::MAX_CLIENT_NAME_LEN;

/// ALPN protocols the API server offers, in order of preference.
pub const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Errors of the local PKI and TLS configuration.
///
/// Messages name the file involved and say what to do; none of them contains
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `init` or `issue_client` would overwrite an existing file.
    #[error(
        "{} already exists; refusing to overwrite it. Re-run with --force to replace the node's API \
         certificates (every client certificate issued so far will stop working), or remove the file",
        path.display()
    )]
    Exists { path: PathBuf },

    /// A file or directory could not be read, written or inspected.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A private key file is readable by other users.
    #[error(
        "private key {} is accessible by other users (mode {mode:o}); run `chmod 600 {}` and make sure \
         it is owned by the user running the node",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    /// A PEM file or the client configuration is not usable.
    #[error(transparent)]
    Pem(#[from] staffpass_api::tls::Error),

    /// A PEM file held no usable certificate.
    #[error("{origin}: {reason}")]
    BadCertificate { origin: String, reason: String },

    /// A PEM file held no usable private key. The reason never quotes the file.
    #[error("{origin}: no usable private key (expected a PEM PKCS#8, SEC1 or PKCS#1 key)")]
    BadKey { origin: String },

    /// The CA key does not belong to the CA certificate.
    #[error(
        "{} does not belong to the CA certificate {}; restore the matching pair from backup, or re-run \
         init with --force to make a new CA",
        key.display(),
        cert.display()
    )]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },

    /// No server name was given for the API certificate.
    #[error(
        "no server name given for the API certificate: give at least one DNS name or IP address the API \
         is reached at (e.g. localhost, 127.0.0.1)"
    )]
    NoServerNames,

    /// A server name is neither an IP address nor a valid DNS name.
    #[error("{name:?} is not a valid DNS name or IP address for the API certificate")]
    InvalidServerName { name: String },

    /// The organisation name is empty or too long.
    #[error("organisation {org:?} is not usable in a certificate: give 1 to {MAX_NAME_LEN} characters")]
    InvalidOrg { org: String },

    /// A client name is not usable as a certificate name and a file name.
    #[error(
        "client name {name:?} is not allowed: use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 . _ -, \
         starting with a letter or digit"
    )]
    InvalidClientName { name: String },

    /// rcgen failed to generate a key or a certificate.
    #[error("could not generate the {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("{what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },

    /// The client certificate verifier could not be built.
    #[error("cannot build the client certificate verifier from {}: {source}", path.display())]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },

    /// No client certificate of that name was issued (or it was revoked already).
    #[error(
        "no client certificate named {name:?} in {}; list the directory, or revoke by --serial",
        dir.display()
    )]
    UnknownClient { name: String, dir: PathBuf },

    /// A serial number is not hexadecimal.
    #[error("serial {serial:?} is not a certificate serial number (hexadecimal, colons allowed)")]
    InvalidSerial { serial: String },

    /// The certificate is on the revocation list already.
    #[error("certificate with serial {serial} is already revoked (in {})", crl.display())]
    AlreadyRevoked { serial: String, crl: PathBuf },

    /// The certificate to revoke was not issued by this node CA.
    #[error(
        "{} was not issued by the current node CA {}; it is not accepted by the API anyway",
        cert.display(),
        ca.display()
    )]
    NotThisCa { cert: PathBuf, ca: PathBuf },

    /// The revocation list is not usable: unreadable, not signed by the node CA, or malformed.
    #[error(
        "certificate revocation list {}: {reason}; restore it from backup (or move it aside and revoke \
         again every certificate that was on it)",
        path.display()
    )]
    BadCrl { path: PathBuf, reason: String },

    /// A certificate signing request does not parse or uses an unsupported key.
    #[error("certificate signing request {origin}: {reason}")]
    BadCsr { origin: String, reason: String },

    /// A certificate signing request's signature does not verify with its own key.
    #[error(
        "certificate signing request {origin}: its signature does not verify (damaged or tampered with); \
         ask the client to make a new one with `staffpass-admin cert request`"
    )]
    CsrSignature { origin: String },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io { action, path: path.to_path_buf(), source }
    }

    fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| Error::Generate { what, source }
    }
}

/// The files of a node's local PKI, in one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Refers to the PKI in `dir` without touching the file system.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Pki { dir: dir.into() }
    }

    /// Creates the node CA, the API server certificate (with `server_names`
    /// as DNS / IP subject alternative names) and the first admin client
    /// certificate in `dir` (created with mode 0700 if missing).
    ///
    /// Refuses to overwrite any of the files unless `force`; with `force`, a
    /// new CA replaces the old one and every earlier client certificate stops
    /// being accepted.
    pub fn init(dir: impl AsRef<Path>, org: &str, server_names: &[String], force: bool) -> Result<Pki, Error> {
        let pki = Pki::at(dir.as_ref());
        let org = org.trim();
        if org.is_empty() || org.chars().count() > MAX_NAME_LEN {
            return Err(Error::InvalidOrg { org: org.to_owned() });
        }
        let sans = server_sans(server_names)?;
        let targets =
            [pki.ca_cert(), pki.ca_key(), pki.server_cert(), pki.server_key(), pki.admin_cert(), pki.admin_key()];
        if !force {
            for path in &targets {
                refuse_existing(path)?;
            }
        }
        create_private_dir(pki.dir())?;

        // The CA.
        let ca_key = new_key_pair("node CA key")?;
        let mut ca_params = CertificateParams::default();
        let (not_before, not_after) = validity(CA_VALIDITY);
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        ca_params.distinguished_name = dn(&[(DnType::OrganizationName, org), (DnType::CommonName, &ca_name(org))]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(Error::generate("node CA certificate"))?;
        let ca_key_pem = Zeroizing::new(ca_key.serialize_pem());
        let issuer = Issuer::new(ca_params, ca_key);

        // The API server certificate.
        let server_key = new_key_pair("API server key")?;
        let mut server_params = leaf_params(org, &format!("staffpass-node API ({org})"), None);
        server_params.subject_alt_names = sans;
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert =
            server_params.signed_by(&server_key, &issuer).map_err(Error::generate("API server certificate"))?;
        let server_key_pem = Zeroizing::new(server_key.serialize_pem());

        // The first admin client certificate.
        let (admin_cert, admin_key_pem) = client_cert(&issuer, org, ADMIN_NAME, Role::Admin)?;

        // Leaves first and the CA last, so the CA key only lands once
        // everything it signed is on disk.
        write_file(&pki.server_cert(), server_cert.pem().as_bytes(), Mode::Public, force)?;
        write_file(&pki.server_key(), server_key_pem.as_bytes(), Mode::Private, force)?;
        write_file(&pki.admin_cert(), admin_cert.as_bytes(), Mode::Public, force)?;
        write_file(&pki.admin_key(), admin_key_pem.as_bytes(), Mode::Private, force)?;
        write_file(&pki.ca_cert(), ca_cert.pem().as_bytes(), Mode::Public, force)?;
        write_file(&pki.ca_key(), ca_key_pem.as_bytes(), Mode::Private, force)?;
        tracing::info!(dir = %pki.dir().display(), org, "created the node API CA, server and admin certificates");
        Ok(pki)
    }

    /// Issues a client certificate for `name` with `role`, signed by the
    /// node CA in `dir`, and writes it to `clients/<name>.pem` and
    /// `clients/<name>.key`. Refuses to overwrite an existing one.
    ///
    /// Returns the paths of the certificate and of the key.
    pub fn issue_client(dir: impl AsRef<Path>, name: &str, role: Role) -> Result<(PathBuf, PathBuf), Error> {
        validate_client_name(name)?;
        let pki = Pki::at(dir.as_ref());
        let (cert_path, key_path) = pki.client_paths(name);
        refuse_existing(&cert_path)?;
        refuse_existing(&key_path)?;

        let (issuer, org) = pki.issuer()?;

        let (cert_pem, key_pem) = client_cert(&issuer, &org, name, role)?;
        create_private_dir(&pki.dir().join(CLIENTS_DIR))?;
        write_file(&cert_path, cert_pem.as_bytes(), Mode::Public, false)?;
        write_file(&key_path, key_pem.as_bytes(), Mode::Private, false)?;
        tracing::info!(client = name, %role, "issued an API client certificate");
        Ok((cert_path, key_path))
    }

    /// Loads the node CA as an rcgen issuer, after checking that its key
    /// belongs to its certificate. Returns it with the CA's organisation.
    fn issuer(&self) -> Result<(Issuer<'static, KeyPair>, String), Error> {
        let (ca_der, org) = self.ca()?;
        let ca_cert_path = self.ca_cert();
        let ca_key_path = self.ca_key();
        let ca_key_pem = read_private_file(&ca_key_path)?;
        let ca_key_str = std::str::from_utf8(&ca_key_pem)
            .map_err(|_| Error::BadKey { origin: ca_key_path.display().to_string() })?;
        let ca_key =
            KeyPair::from_pem(ca_key_str).map_err(|_| Error::BadKey { origin: ca_key_path.display().to_string() })?;
        let (_, ca_x509) = parse_cert(&ca_der, &ca_cert_path)?;
        if ca_key.public_key_raw() != ca_x509.public_key().subject_public_key.data.as_ref() {
            return Err(Error::CaKeyMismatch { cert: ca_cert_path, key: ca_key_path });
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key)
            .map_err(|e| Error::BadCertificate { origin: ca_cert_path.display().to_string(), reason: e.to_string() })?;
        Ok((issuer, org))
    }

    /// The node CA certificate (DER) and its organisation (subject `O`).
    fn ca(&self) -> Result<(CertificateDer<'static>, String), Error> {
        let ca_cert_path = self.ca_cert();
        let ca_pem = read_file(&ca_cert_path)?;
        let ca_der = first_cert(&ca_pem, &ca_cert_path.display().to_string())?;
        let (_, ca_x509) = parse_cert(&ca_der, &ca_cert_path)?;
        let org =
            ca_x509.subject().iter_organization().next().and_then(|o| o.as_str().ok()).unwrap_or_default().to_owned();
        Ok((ca_der, org))
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the node CA certificate (`ca.pem`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// Path of the node CA key (`ca.key`).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join(CA_KEY)
    }

    /// Path of the API server certificate (`server.pem`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join(SERVER_CERT)
    }

    /// Path of the API server key (`server.key`).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join(SERVER_KEY)
    }

    /// Path of the first admin client certificate (`admin.pem`).
    pub fn admin_cert(&self) -> PathBuf {
        self.dir.join(ADMIN_CERT)
    }

    /// Path of the first admin client key (`admin.key`).
    pub fn admin_key(&self) -> PathBuf {
        self.dir.join(ADMIN_KEY)
    }

    /// Path of the certificate revocation list (`crl.pem`).
    pub fn crl(&self) -> PathBuf {
        self.dir.join(CRL_FILE)
    }

    /// Paths of the certificate and key [`Pki::issue_client`] writes for `name`.
    pub fn client_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(CLIENTS_DIR);
        (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
    }
}

/// The API server's rustls configuration, from the PKI in `dir`: its
/// certificate and key, and a verifier that **requires** a client
/// certificate chaining to the node CA and not on the node's revocation
/// list (`crl.pem`, reloaded when it changes; see [`ClientVerifier`]).
/// Sessions are never resumed, so every connection's certificate is
/// checked against the current list. ALPN: h2, http/1.1.
pub fn server_config(dir: impl AsRef<Path>) -> Result<Arc<ServerConfig>, Error> {
    let pki = Pki::at(dir.as_ref());
    let provider = provider();

    let ca_path = pki.ca_cert();
    let ca_pem = read_file(&ca_path)?;
    let roots = root_store(&ca_pem, &ca_path.display().to_string())?;
    let verifier = Arc::new(ClientVerifier::new(Arc::new(roots), provider.clone(), pki.crl(), ca_path)?);

    let cert_path = pki.server_cert();
    let cert_pem = read_file(&cert_path)?;
    let chain = certs(&cert_pem, &cert_path.display().to_string())?;
    let key_path = pki.server_key();
    let key_pem = read_private_file(&key_path)?;
    let key = private_key(&key_pem, &key_path.display().to_string())?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Rustls { what: "TLS protocol versions".to_owned(), source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| Error::Rustls {
            what: format!("{} and {} do not form a usable certificate", cert_path.display(), key_path.display()),
            source,
        })?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    // The server picks the cipher suite in its own order (the provider's,
    // strongest first), not in whatever order a client lists them.
    config.ignore_client_order = true;
    // No session resumption: a resumed session is not verified again, so a
    // revoked certificate could keep connecting with an earlier session.
    // Every connection makes a full handshake (cheap for a local admin API).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The public listener's rustls configuration: `cert` and `key` (PEM; the
/// key file 0600), **no** client certificate asked for, TLS 1.2 and 1.3
/// with the provider's safe defaults, ALPN h2 and http/1.1.
pub fn public_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let cert_pem = read_file(cert)?;
    let chain = certs(&cert_pem, &cert.display().to_string())?;
    let key_pem = read_private_file(key)?;
    let secret = private_key(&key_pem, &key.display().to_string())?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Rustls { what: "TLS protocol versions".to_owned(), source })?
        .with_no_client_auth()
        .with_single_cert(chain, secret)
        .map_err(|source| Error::Rustls {
            what: format!("{} and {} do not form a usable certificate", cert.display(), key.display()),
            source,
        })?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

fn first_cert(pem: &[u8], origin: &str) -> Result<CertificateDer<'static>, Error> {
    certs(pem, origin)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::BadCertificate { origin: origin.to_owned(), reason: "no certificate found".to_owned() })
}

fn parse_cert<'a>(
    der: &'a CertificateDer<'_>,
    path: &Path,
) -> Result<(&'a [u8], x509_parser::certificate::X509Certificate<'a>), Error> {
    x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Error::BadCertificate { origin: path.display().to_string(), reason: e.to_string() })
}

/// A certificate serial number as lower-case hex, colon-free.
fn serial_hex(raw: &[u8]) -> String {
    hex::encode(raw)
}

fn ca_name(org: &str) -> String {
    format!("staffpass node CA ({org})")
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn validity(length: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - BACKDATE, now + length)
}

fn new_key_pair(what: &'static str) -> Result<KeyPair, Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::generate(what))
}

fn leaf_params(org: &str, common_name: &str, role: Option<Role>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let (not_before, not_after) = validity(LEAF_VALIDITY);
    params.not_before = not_before;
    params.not_after = not_after;
    let role = role.map(|r| r.to_string());
    let mut parts = Vec::with_capacity(3);
    if !org.is_empty() {
        parts.push((DnType::OrganizationName, org));
    }
    if let Some(role) = &role {
        parts.push((DnType::OrganizationalUnitName, role.as_str()));
    }
    parts.push((DnType::CommonName, common_name));
    params.distinguished_name = dn(&parts);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A client certificate (PEM) and its key (PEM) for `name` with `role`.
fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    org: &str,
    name: &str,
    role: Role,
) -> Result<(String, Zeroizing<String>), Error> {
    let key = new_key_pair("client key")?;
    let mut params = leaf_params(org, name, Some(role));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).map_err(Error::generate("client certificate"))?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

fn server_sans(names: &[String]) -> Result<Vec<SanType>, Error> {
    if names.is_empty() {
        return Err(Error::NoServerNames);
    }
    names
        .iter()
        .map(|name| {
            let name = name.trim();
            if let Ok(ip) = name.parse::<std::net::IpAddr>() {
                return Ok(SanType::IpAddress(ip));
            }
            // rustls only verifies DNS names it can parse; check the same way.
            if name.is_empty() || rustls_pki_types::DnsName::try_from(name).is_err() {
                return Err(Error::InvalidServerName { name: name.to_owned() });
            }
            name.to_owned()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| Error::InvalidServerName { name: name.to_owned() })
        })
        .collect()
}

/// Client names end up in a certificate's CN and in file names.
fn validate_client_name(name: &str) -> Result<(), Error> {
    if staffpass_api::tls::is_client_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidClientName { name: name.to_owned() })
    }
}

fn refuse_existing(path: &Path) -> Result<(), Error> {
    match path.try_exists() {
        Ok(false) => Ok(()),
        Ok(true) => Err(Error::Exists { path: path.to_path_buf() }),
        Err(e) => Err(Error::io("check", path, e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| Error::io("create directory", dir, e))
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// Reads a private key file, refusing one that other users can access.
fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyPermissions { path: path.to_path_buf(), mode });
        }
    }
    read_file(path).map(Zeroizing::new)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 0644: certificates.
    Public,
    /// 0600: private keys.
    Private,
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory (created 0600), fsync, mode, rename, fsync of the directory.
/// Without `overwrite`, an existing `path` is never replaced.
fn write_file(path: &Path, contents: &[u8], mode: Mode, overwrite: bool) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".staffpass-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(contents).map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io("sync", tmp.path(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let bits = match mode {
            Mode::Public => 0o644,
            Mode::Private => 0o600,
        };
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(bits))
            .map_err(|e| Error::io("set permissions on", tmp.path(), e))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    let persisted = if overwrite { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    persisted.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Error::Exists { path: path.to_path_buf() }
        } else {
            Error::io("write", path, e.error)
        }
    })?;
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("sync directory", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names() {
        for ok in ["alice", "hr-desk.1", "A_b", "0"] {
            assert!(validate_client_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "../ca", "a b", "é", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_client_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names() {
        let sans = server_sans(&["localhost".into(), "127.0.0.1".into(), "::1".into()]).unwrap();
        assert_eq!(sans.len(), 3);
        assert!(matches!(sans[1], SanType::IpAddress(_)));
        assert!(matches!(server_sans(&[]), Err(Error::NoServerNames)));
        assert!(matches!(server_sans(&["bad name".into()]), Err(Error::InvalidServerName { .. })));
    }

    #[test]
    fn key_errors_do_not_quote_the_file() {
        let secret = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==!!\n-----END PRIVATE KEY-----\n";
        let err = private_key(secret, "k.key").unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
