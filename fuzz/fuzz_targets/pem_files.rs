//! PEM certificate, key, certificate-request and revocation-list files
//! from arbitrary bytes, through every reader the node and the API client
//! use: `certs`, `private_key` and `root_store` (the node's server
//! configuration and the client's), `client_config` (a client certificate
//! and key in one file, under the fixture CA), the X.509 parse the node
//! runs on its certificates (serial, subject alternative names), the
//! client certificate revocation list as `ClientVerifier` loads it, and
//! `Pki::sign_csr` on a certificate signing request.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use staffpass_api::Role;
use staffpass_node::tls::{self, ClientVerifier, Pki};

struct Setup {
    _tmp: tempfile::TempDir,
    pki: Pki,
    ca_pem: Vec<u8>,
    crl: PathBuf,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let tmp = staffpass_fuzz::scratch_dir();
        let pki = Pki::init(tmp.path().join("pki"), "RJZ", &["localhost".to_owned()], false).expect("a PKI");
        let ca_pem = std::fs::read(pki.ca_cert()).expect("the CA certificate");
        let crl = tmp.path().join("crl.pem");
        Setup { _tmp: tmp, pki, ca_pem, crl }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    if let Ok(certs) = tls::certs(data, "fuzz.pem") {
        for der in &certs {
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) {
                let _ = cert.raw_serial();
                if let Ok(Some(san)) = cert.subject_alternative_name() {
                    let _ = san.value.general_names.len();
                }
            }
        }
    }
    let _ = tls::private_key(data, "fuzz.key");
    let _ = staffpass_api::tls::root_store(data, "fuzz.pem");
    let _ = tls::client_config(&s.ca_pem, data, data);

    std::fs::write(&s.crl, data).expect("write the CRL file");
    let roots = staffpass_api::tls::root_store(&s.ca_pem, "ca.pem").expect("the fixture CA");
    let _ = ClientVerifier::new(Arc::new(roots), tls::provider(), s.crl.clone(), s.pki.ca_cert());

    let _ = s.pki.sign_csr(data, "fuzz.csr", None, Role::Hr);
});
