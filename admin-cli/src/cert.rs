//! `cert request`: an API client key pair made on the client's own machine,
//! and a certificate signing request for the node admin. The private key is
//! written to a new 0600 file and never printed; only the request leaves
//! the machine, and the node admin issues the certificate from it with
//! `staffpass-node client-cert sign --csr FILE --role ROLE`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde::Serialize;
use staffpass_api::Role;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::files;
use crate::output::{self, Fields, Format};

/// API client certificate commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a key pair and a certificate signing request for the node's API.
    ///
    /// Writes DIR/NAME.key (the private key, a new 0600 file, never printed)
    /// and DIR/NAME.csr (the request). Give the .csr file to the node admin,
    /// who runs `staffpass-node client-cert sign --csr NAME.csr --role ROLE`
    /// and gives back NAME.pem with the node CA (ca.pem); then use --cert
    /// NAME.pem --key NAME.key --ca ca.pem. The role written in the request
    /// is only a note for the admin: the node grants the role given to
    /// `sign`.
    Request {
        /// Your account name (letters, digits, '.', '_', '-'; it becomes the certificate's CN).
        #[arg(long)]
        name: String,
        /// The role you ask for: admin, hr or read-only.
        #[arg(long)]
        role: Role,
        /// Directory for the key and the request (created 0700 if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The files `cert request` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    /// The account name (CN).
    pub name: String,
    /// The role asked for.
    pub role: Role,
    /// The private key (0600).
    pub key: PathBuf,
    /// The signing request, to give to the node admin.
    pub csr: PathBuf,
}

/// Runs a cert command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Request { name, role, out } => {
            let made = request(&name, role, &out)?;
            if format.is_json() {
                return output::json(&made);
            }
            Fields::new()
                .add("name", made.name.clone())
                .add("role asked", made.role.to_string())
                .add("key (0600)", made.key.display().to_string())
                .add("request", made.csr.display().to_string())
                .print()?;
            output::line(format!(
                "Give {} to your node admin, who runs: staffpass-node client-cert sign --csr {} --role {}",
                made.csr.display(),
                made.csr.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                made.role
            ))
        }
    }
}

/// Makes an ECDSA P-256 key pair and a signing request for `name` (CN)
/// asking for `role` (OU, informational), and writes `DIR/NAME.key` (new,
/// 0600) and `DIR/NAME.csr` (new, 0644). Refuses to replace either file.
pub fn request(name: &str, role: Role, out: &Path) -> Result<Request> {
    if !staffpass_api::tls::is_client_name(name) {
        return Err(Error::BadValue {
            what: "name",
            input: name.to_owned(),
            reason: format!(
                "use 1 to {} characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
                staffpass_api::tls::MAX_CLIENT_NAME_LEN
            ),
        });
    }
    let key_path = out.join(format!("{name}.key"));
    let csr_path = out.join(format!("{name}.csr"));
    for path in [&key_path, &csr_path] {
        if path.exists() {
            return Err(Error::Exists { path: path.clone() });
        }
    }

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::CertRequest)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationalUnitName, role.to_string());
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(Error::CertRequest)?;
    let csr_pem = csr.pem().map_err(Error::CertRequest)?;
    let key_pem = Zeroizing::new(key.serialize_pem());

    if !out.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(out).map_err(|source| Error::Write { path: out.to_path_buf(), source })?;
    }
    files::create_secret(&key_path, key_pem.as_bytes())?;
    if let Err(e) = files::create(&csr_path, csr_pem.as_bytes()) {
        // Leave nothing half made: a key without its request is of no use.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(Request { name: name.to_owned(), role, key: key_path, csr: csr_path })
}
