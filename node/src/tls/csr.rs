//! Client certificates from a client's own certificate signing request, so
//! the client's private key never exists on the node.

use std::path::PathBuf;

use rcgen::{CertificateSigningRequestParams, DnType, DnValue, ExtendedKeyUsagePurpose};
use staffpass_api::Role;

use super::{
    CLIENTS_DIR, Error, Mode, Pki, create_private_dir, leaf_params, refuse_existing, serial_hex, validate_client_name,
    write_file,
};

/// Largest CSR file accepted.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// What [`Pki::sign_csr`] issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The certificate's name (CN).
    pub name: String,
    /// The certificate's role (OU), the one given to `sign_csr`.
    pub role: Role,
    /// The certificate, kept by the node as `clients/<name>.pem`.
    pub cert: PathBuf,
    /// Its serial number (lower-case hex), for `client-cert revoke --serial`.
    pub serial: String,
}

impl Pki {
    /// Issues a client certificate for the public key in `csr_pem` (a PEM
    /// PKCS#10 request; `origin` names it in errors), with `role`, signed by
    /// the node CA, and writes it to `clients/<name>.pem` (refusing to
    /// overwrite).
    ///
    /// The request's signature must verify with its own key
    /// ([`Error::CsrSignature`] otherwise). Nothing else in the request is
    /// trusted: the subject is built here (organisation of the node CA,
    /// `OU` = `role`, `CN` = `name`, or the request's CN when `name` is
    /// `None`, checked like any client name), with no extension from the
    /// request.
    pub fn sign_csr(&self, csr_pem: &[u8], origin: &str, name: Option<&str>, role: Role) -> Result<Signed, Error> {
        let bad = |reason: &str| Error::BadCsr { origin: origin.to_owned(), reason: reason.to_owned() };
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(bad("larger than 64 KiB; not a certificate signing request"));
        }
        let mut reader = csr_pem;
        let der = rustls_pemfile::csr(&mut reader)
            .map_err(|_| bad("not PEM"))?
            .ok_or_else(|| bad("no CERTIFICATE REQUEST block in the file"))?;
        let request = CertificateSigningRequestParams::from_der(&der).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => Error::CsrSignature { origin: origin.to_owned() },
            e => Error::BadCsr { origin: origin.to_owned(), reason: e.to_string() },
        })?;

        let name = match name {
            Some(n) => n.to_owned(),
            None => match request.params.distinguished_name.get(&DnType::CommonName) {
                Some(DnValue::Utf8String(s)) => s.clone(),
                Some(DnValue::PrintableString(s)) => s.as_str().to_owned(),
                _ => return Err(bad("no usable subject CN; give the name with --name")),
            },
        };
        validate_client_name(&name)?;
        let (cert_path, key_path) = self.client_paths(&name);
        refuse_existing(&cert_path)?;
        refuse_existing(&key_path)?;

        let (issuer, org) = self.issuer()?;
        let mut params = leaf_params(&org, &name, Some(role));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&request.public_key, &issuer).map_err(Error::generate("client certificate"))?;
        let serial = x509_parser::parse_x509_certificate(cert.der().as_ref())
            .map(|(_, x)| serial_hex(x.raw_serial()))
            .map_err(|e| Error::BadCertificate { origin: "the new certificate".to_owned(), reason: e.to_string() })?;
        create_private_dir(&self.dir().join(CLIENTS_DIR))?;
        write_file(&cert_path, cert.pem().as_bytes(), Mode::Public, false)?;
        tracing::info!(client = %name, %role, %serial, "issued an API client certificate from a signing request");
        Ok(Signed { name, role, cert: cert_path, serial })
    }
}
