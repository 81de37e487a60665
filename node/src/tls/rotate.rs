//! Replacing the node's API CA without touching anything else of the node.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{
    ADMIN_CERT, ADMIN_KEY, CA_CERT, CA_KEY, CLIENTS_DIR, CRL_FILE, Error, Pki, SERVER_CERT, SERVER_KEY, first_cert,
    parse_cert, read_file,
};

/// The files [`Pki::rotate_ca`] makes anew (the CA last).
const MADE: [&str; 6] = [SERVER_CERT, SERVER_KEY, ADMIN_CERT, ADMIN_KEY, CA_CERT, CA_KEY];

/// What [`Pki::rotate_ca`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    /// Where the old CA, certificates, keys, revocation list and client
    /// certificates were moved (nothing was deleted).
    pub replaced_dir: PathBuf,
    /// The files and directories moved there.
    pub moved: Vec<PathBuf>,
    /// SHA-256 of the old CA certificate (hex).
    pub old_ca_sha256: String,
    /// SHA-256 of the new CA certificate (hex).
    pub new_ca_sha256: String,
    /// The new CA certificate, which every client must now trust.
    pub ca_cert: PathBuf,
    /// The new admin client certificate and key.
    pub admin_cert: PathBuf,
    /// The new admin client key (0600).
    pub admin_key: PathBuf,
    /// The names in the new server certificate (same as the old one's, plus any added).
    pub server_names: Vec<String>,
    /// Client certificates (other than admin) that were issued under the old
    /// CA and must be issued again.
    pub to_reissue: Vec<String>,
}

impl Pki {
    /// Replaces the node's API CA, server certificate and admin client
    /// certificate with new ones (same organisation and server names, plus
    /// `extra_names`), and moves the old ones, with the revocation list and
    /// every client certificate issued under the old CA, to
    /// `replaced-<unix time>/` in this directory. Nothing outside this
    /// directory changes: not the node identity, keys or database.
    ///
    /// The new files are made in a staging directory first, so a failure
    /// before the swap leaves the old PKI in place. A running node keeps
    /// using the old CA until it is restarted.
    pub fn rotate_ca(&self, extra_names: &[String]) -> Result<Rotated, Error> {
        let (old_ca, org) = self.ca()?;
        let old_ca_sha256 = hex::encode(Sha256::digest(old_ca.as_ref()));
        let mut server_names = self.server_names().unwrap_or_default();
        if server_names.is_empty() {
            server_names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        }
        for name in extra_names {
            if !server_names.contains(name) {
                server_names.push(name.clone());
            }
        }

        let stamp = OffsetDateTime::now_utc().unix_timestamp();
        let staging = self.dir().join(format!(".rotate-new-{stamp}"));
        let replaced_dir = self.dir().join(format!("replaced-{stamp}"));
        for dir in [&staging, &replaced_dir] {
            if dir.exists() {
                return Err(Error::Exists { path: dir.clone() });
            }
        }
        let new = match Pki::init(&staging, &org, &server_names, false) {
            Ok(new) => new,
            Err(e) => {
                // Only never-used new files are there; the old PKI is untouched.
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let new_ca = first_cert(&read_file(&new.ca_cert())?, &new.ca_cert().display().to_string())?;
        let new_ca_sha256 = hex::encode(Sha256::digest(new_ca.as_ref()));

        let to_reissue = self.client_names();

        // Move the old files aside; on failure, put back what moved.
        super::create_private_dir(&replaced_dir)?;
        let mut moved = Vec::new();
        for name in MADE.iter().chain(&[CRL_FILE, CLIENTS_DIR]) {
            let from = self.dir().join(name);
            if !from.exists() {
                continue;
            }
            let to = replaced_dir.join(name);
            if let Err(e) = fs::rename(&from, &to) {
                for (back_from, back_to) in
                    moved.iter().rev().map(|n: &&str| (replaced_dir.join(n), self.dir().join(n)))
                {
                    let _ = fs::rename(back_from, back_to);
                }
                return Err(Error::io("move aside", &from, e));
            }
            moved.push(*name);
        }
        // Then the new ones in, the CA last.
        for name in MADE {
            let from = staging.join(name);
            let to = self.dir().join(name);
            fs::rename(&from, &to).map_err(|e| Error::io("move into place", &from, e))?;
        }
        fs::remove_dir(&staging).map_err(|e| Error::io("remove", &staging, e))?;
        #[cfg(unix)]
        fs::File::open(self.dir())
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync directory", self.dir(), e))?;

        tracing::info!(
            dir = %self.dir().display(),
            old_ca = %old_ca_sha256,
            new_ca = %new_ca_sha256,
            "replaced the node API CA, server and admin certificates"
        );
        Ok(Rotated {
            moved: moved.iter().map(|n| replaced_dir.join(n)).collect(),
            replaced_dir,
            old_ca_sha256,
            new_ca_sha256,
            ca_cert: self.ca_cert(),
            admin_cert: self.admin_cert(),
            admin_key: self.admin_key(),
            server_names,
            to_reissue,
        })
    }

    /// The DNS names and IP addresses in the current server certificate.
    fn server_names(&self) -> Result<Vec<String>, Error> {
        let path = self.server_cert();
        let der = first_cert(&read_file(&path)?, &path.display().to_string())?;
        let (_, cert) = parse_cert(&der, &path)?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                            names.push(std::net::IpAddr::from(v4).to_string());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                            names.push(std::net::IpAddr::from(v6).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(names)
    }

    /// Names of the client certificates in `clients/`.
    fn client_names(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.dir().join(CLIENTS_DIR)) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}
