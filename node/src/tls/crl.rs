//! Client certificate revocation: `crl.pem`, a certificate revocation list
//! signed by the node CA, written by [`Pki::revoke`] and enforced by
//! [`ClientVerifier`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use time::OffsetDateTime;

use super::{
    ADMIN_CERT, ADMIN_NAME, CA_VALIDITY, CLIENTS_DIR, Error, Mode, Pki, REVOKED_DIR, create_private_dir, first_cert,
    parse_cert, read_file, serial_hex, validate_client_name, write_file,
};

/// Which client certificate to revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeTarget {
    /// The certificate issued under this name (`clients/<name>.pem`, or
    /// `admin.pem` for `admin` when no client of that name exists).
    Name(String),
    /// The certificate with this serial number (hexadecimal, colons allowed).
    Serial(String),
}

/// What [`Pki::revoke`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked certificate's serial number (lower-case hex).
    pub serial: String,
    /// The certificate's name (CN), when its file was found.
    pub name: Option<String>,
    /// The revocation list written.
    pub crl: PathBuf,
    /// How many certificates the list now revokes.
    pub total: usize,
    /// Files moved to `clients/revoked/` (kept, not deleted), so the name can be issued again.
    pub moved: Vec<PathBuf>,
}

impl Pki {
    /// Revokes a client certificate: adds its serial to `crl.pem` (signed by
    /// the node CA, written atomically, 0644) and moves its files from
    /// `clients/` to `clients/revoked/`. A running node refuses it from its
    /// next TLS handshake (see [`ClientVerifier`]); connections already open
    /// stay open until they close.
    pub fn revoke(&self, target: &RevokeTarget) -> Result<Revoked, Error> {
        let (issuer, _) = self.issuer()?;
        let (ca_der, _) = self.ca()?;
        let ca_path = self.ca_cert();
        let (_, ca_x509) = parse_cert(&ca_der, &ca_path)?;

        // The certificate: its serial, and its files when it has some.
        let (serial, name, files) = match target {
            RevokeTarget::Name(name) => {
                validate_client_name(name)?;
                let (cert, key) = self.client_paths(name);
                let (cert, key) = if cert.is_file() {
                    (cert, Some(key))
                } else if name == ADMIN_NAME && self.admin_cert().is_file() {
                    // The first admin certificate stays where clients look for it.
                    (self.admin_cert(), None)
                } else {
                    return Err(Error::UnknownClient { name: name.clone(), dir: self.dir().join(CLIENTS_DIR) });
                };
                let pem = read_file(&cert)?;
                let der = first_cert(&pem, &cert.display().to_string())?;
                let (_, x509) = parse_cert(&der, &cert)?;
                if x509.issuer() != ca_x509.subject() || x509.verify_signature(Some(ca_x509.public_key())).is_err() {
                    return Err(Error::NotThisCa { cert, ca: ca_path });
                }
                let serial = x509.raw_serial().to_vec();
                let files = std::iter::once(cert).chain(key.filter(|k| k.is_file())).collect::<Vec<_>>();
                (serial, Some(name.clone()), files)
            }
            RevokeTarget::Serial(text) => {
                let serial = parse_serial(text)?;
                let found = self.find_client_by_serial(&serial)?;
                match found {
                    Some((name, cert, key)) => {
                        let files = std::iter::once(cert).chain(Some(key).filter(|k| k.is_file())).collect();
                        (serial, Some(name), files)
                    }
                    None => (serial, None, Vec::new()),
                }
            }
        };
        let serial_text = serial_hex(&serial);

        let crl_path = self.crl();
        let existing = read_crl(&crl_path, &ca_der)?;
        let mut revoked = existing.as_ref().map(|c| c.revoked.clone()).unwrap_or_default();
        if revoked.iter().any(|r| r.serial_number.as_ref() == normalise(&serial)) {
            return Err(Error::AlreadyRevoked { serial: serial_text, crl: crl_path });
        }
        let now = OffsetDateTime::now_utc();
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(normalise(&serial)),
            revocation_time: now,
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
        let number = existing.as_ref().map_or(0, |c| c.number).saturating_add(1);
        let params = CertificateRevocationListParams {
            this_update: now,
            // rustls ignores the CRL's expiry by default; this only keeps
            // the list well-formed.
            next_update: now + CA_VALIDITY,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let total = params.revoked_certs.len();
        let crl = params.signed_by(&issuer).map_err(Error::generate("certificate revocation list"))?;
        let pem = crl.pem().map_err(Error::generate("certificate revocation list"))?;
        write_file(&crl_path, pem.as_bytes(), Mode::Public, true)?;

        // Keep the revoked files aside, so the name can be issued again.
        let mut moved = Vec::new();
        let into = self.dir().join(CLIENTS_DIR).join(REVOKED_DIR);
        for file in files.into_iter().filter(|f| f.parent() == Some(self.dir().join(CLIENTS_DIR).as_path())) {
            create_private_dir(&into)?;
            let Some(file_name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
            let to = into.join(format!("{serial_text}.{file_name}"));
            fs::rename(&file, &to).map_err(|e| Error::io("move aside", &file, e))?;
            moved.push(to);
        }
        tracing::info!(serial = %serial_text, name = ?name, total, "revoked an API client certificate");
        Ok(Revoked { serial: serial_text, name, crl: crl_path, total, moved })
    }

    /// The client certificate in `clients/` (or `admin.pem`) with this serial.
    fn find_client_by_serial(&self, serial: &[u8]) -> Result<Option<(String, PathBuf, PathBuf)>, Error> {
        let dir = self.dir().join(CLIENTS_DIR);
        let mut candidates = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "pem")
                        && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                    {
                        candidates.push((stem.to_owned(), path.clone(), path.with_extension("key")));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("list", &dir, e)),
        }
        candidates.push((ADMIN_NAME.to_owned(), self.dir().join(ADMIN_CERT), PathBuf::new()));
        for (name, cert, key) in candidates {
            let Ok(pem) = fs::read(&cert) else { continue };
            let Ok(der) = first_cert(&pem, &cert.display().to_string()) else { continue };
            let Ok((_, x509)) = parse_cert(&der, &cert) else { continue };
            if normalise(x509.raw_serial()) == normalise(serial) {
                return Ok(Some((name, cert, key)));
            }
        }
        Ok(None)
    }
}

/// A serial without DER's leading zero bytes, so that "00ab" and "ab" match.
fn normalise(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
    &serial[start..]
}

fn parse_serial(text: &str) -> Result<Vec<u8>, Error> {
    let cleaned: String = text.trim().chars().filter(|c| *c != ':').collect();
    let cleaned = cleaned.strip_prefix("0x").unwrap_or(&cleaned);
    let padded = if cleaned.len() % 2 == 1 { format!("0{cleaned}") } else { cleaned.to_owned() };
    match hex::decode(&padded) {
        Ok(bytes) if !bytes.is_empty() && bytes.len() <= 20 => Ok(bytes),
        _ => Err(Error::InvalidSerial { serial: text.to_owned() }),
    }
}

/// The parts of an existing revocation list that the next one keeps.
struct ExistingCrl {
    number: u64,
    revoked: Vec<RevokedCertParams>,
}

/// Reads `crl.pem` if it exists, checking that the node CA signed it.
fn read_crl(path: &Path, ca_der: &CertificateDer<'_>) -> Result<Option<ExistingCrl>, Error> {
    let Some(der) = load_crl_der(path)? else { return Ok(None) };
    let bad = |reason: String| Error::BadCrl { path: path.to_path_buf(), reason };
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let (_, ca) = parse_cert(ca_der, path)?;
    if crl.issuer() != ca.subject() || crl.verify_signature(ca.public_key()).is_err() {
        return Err(bad("it is not signed by the current node CA".to_owned()));
    }
    let number = crl
        .crl_number()
        .map(|n| n.to_bytes_be())
        .filter(|b| b.len() <= 8)
        .map(|b| b.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(normalise(r.raw_serial())),
            revocation_time: r.revocation_date.to_datetime(),
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        })
        .collect();
    Ok(Some(ExistingCrl { number, revoked }))
}

/// The DER of the CRL in `path`, or `None` if there is no such file.
fn load_crl_der(path: &Path) -> Result<Option<CertificateRevocationListDer<'static>>, Error> {
    let pem = match fs::read(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut reader = pem.as_slice();
    let crl = rustls_pemfile::crls(&mut reader)
        .next()
        .ok_or_else(|| Error::BadCrl { path: path.to_path_buf(), reason: "no CRL in the file".to_owned() })?
        .map_err(|e| Error::BadCrl { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(Some(crl))
}

/// What identifies one version of the CRL file: a new file (atomic rename)
/// has a new inode, and a change in place a new length or mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Result<Option<Stamp>, std::io::Error> {
    match fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            Ok(Some(Stamp { inode, len: meta.len(), modified: meta.modified().ok() }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug)]
struct Loaded {
    stamp: Option<Stamp>,
    /// `Err` when the current file is unusable: every handshake is refused
    /// until it is fixed (fail closed).
    verifier: Result<Arc<dyn ClientCertVerifier>, String>,
}

/// The API's client certificate verifier: rustls' WebPKI verifier over the
/// node CA, with the node's revocation list (`crl.pem`) when there is one.
///
/// Before each handshake it checks the CRL file's inode, length and mtime
/// (one `stat`) and rebuilds the inner verifier when the file changed, so
/// `staffpass-node client-cert revoke` takes effect on a running node
/// without a restart. If the new file is unusable, every client
/// certificate is refused (and the reason logged) until it is fixed. If
/// the file disappears, the last list loaded stays in force until the node
/// restarts.
#[derive(Debug)]
pub struct ClientVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    crl: PathBuf,
    ca: PathBuf,
    hints: Vec<DistinguishedName>,
    loaded: RwLock<Arc<Loaded>>,
}

impl ClientVerifier {
    /// A verifier for client certificates issued by `roots`, refusing those
    /// listed in the CRL at `crl` (if that file exists). Fails if the CRL
    /// exists but is unusable. `ca` names the roots' file in errors.
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        crl: PathBuf,
        ca: PathBuf,
    ) -> Result<Self, Error> {
        let stamp = stamp(&crl).map_err(|e| Error::io("inspect", &crl, e))?;
        let inner = build(&roots, &provider, &crl, &ca)?;
        let hints = inner.root_hint_subjects().to_vec();
        let loaded = RwLock::new(Arc::new(Loaded { stamp, verifier: Ok(inner) }));
        Ok(ClientVerifier { roots, provider, crl, ca, hints, loaded })
    }

    /// The verifier for the CRL file as it is now, or an error if that
    /// file is unusable.
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let now = stamp(&self.crl);
        let loaded = match self.loaded.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let fresh = match &now {
            Ok(s) => *s == loaded.stamp,
            Err(_) => false,
        };
        // A list that disappears does not un-revoke anything on a running
        // node (`rotate-api-ca` moves it aside while the node still serves
        // the old CA): keep the last one until a new file or a restart.
        let fresh = fresh || matches!((&now, &loaded.stamp), (Ok(None), Some(_)));
        let loaded = if fresh {
            loaded
        } else {
            // The stamp taken before reading: a change after it is seen next time.
            let (stamp, verifier) = match now {
                Ok(stamp) => {
                    (stamp, build(&self.roots, &self.provider, &self.crl, &self.ca).map_err(|e| e.to_string()))
                }
                Err(e) => (None, Err(Error::io("inspect", &self.crl, e).to_string())),
            };
            match &verifier {
                Ok(_) => tracing::info!(crl = %self.crl.display(), "loaded the API client certificate revocation list"),
                Err(e) => tracing::error!(
                    error = %e,
                    "the API client certificate revocation list is unusable; refusing every client certificate until it is fixed"
                ),
            }
            let fresh = Arc::new(Loaded { stamp, verifier });
            match self.loaded.write() {
                Ok(mut l) => *l = fresh.clone(),
                Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
            }
            fresh
        };
        match &loaded.verifier {
            Ok(v) => Ok(v.clone()),
            Err(_) => {
                Err(rustls::Error::General("the node's client certificate revocation list is unusable".to_owned()))
            }
        }
    }
}

fn build(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    crl: &Path,
    ca: &Path,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    if let Some(der) = load_crl_der(crl)? {
        // The node CA signs leaves directly: only they can be revoked.
        builder = builder.with_crls([der]).only_check_end_entity_revocation();
    }
    builder.build().map_err(|source| match source {
        rustls::server::VerifierBuilderError::InvalidCrl(e) => {
            Error::BadCrl { path: crl.to_path_buf(), reason: format!("{e:?}") }
        }
        source => Error::Verifier { path: ca.to_path_buf(), source },
    })
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        assert_eq!(parse_serial("0a:FF").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(parse_serial("abc").unwrap(), vec![0x0a, 0xbc]);
        assert!(matches!(parse_serial("xyz"), Err(Error::InvalidSerial { .. })));
        assert!(matches!(parse_serial(""), Err(Error::InvalidSerial { .. })));
        assert_eq!(normalise(&[0, 0, 1]), &[1]);
        assert_eq!(normalise(&[0]), &[0]);
    }
}
