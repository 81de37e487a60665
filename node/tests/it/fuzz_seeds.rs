//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`)
//! from the golden wire vectors, the protocol's testkit fixtures, a fresh
//! PKI and the node's own example files. Not a check: run it by hand when
//! a format changes, and commit what it writes (see FUZZING.md):
//!
//! ```text
//! cargo test -p staffpass-node --test it -- --ignored fuzz_seeds --exact
//! ```
//!
//! `STAFFPASS_FUZZ_SEEDS=<dir>` writes elsewhere.

use std::path::{Path, PathBuf};

use staffpass_node::config::Config;
use staffpass_node::keys::{DataKey, NodeKey};
use staffpass_node::tls::{Pki, RevokeTarget};
use staffpass_protocol::consent::Withdrawal;
use staffpass_protocol::encoding;
use staffpass_protocol::ids::MessageId;
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason};
use staffpass_protocol::roster::Change;
use staffpass_protocol::signing::Signed;
use staffpass_protocol::testkit;
use staffpass_protocol::wire::{exchange, roster as wire_roster};

fn out_dir() -> PathBuf {
    match std::env::var_os("STAFFPASS_FUZZ_SEEDS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds"),
    }
}

fn put(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let bytes = bytes.as_ref();
    let dir = out_dir().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    // Every wire message is also a seed of the codec, framed as on a stream:
    // the target's selector byte, a 4-byte big-endian length, the message.
    let selector = ["wire_exchange_request", "wire_exchange_response", "wire_roster_request", "wire_roster_response"]
        .iter()
        .position(|t| *t == target);
    if let Some(selector) = selector {
        let len = u32::try_from(bytes.len()).unwrap().to_be_bytes();
        let framed = [&[selector as u8][..], &len, bytes].concat();
        put("wire_frames", &format!("{target}-{name}"), framed);
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A staff import as the testnet's HR exports write it (`staffpass-testnet
/// data --rows 3 --today 2026-11-23`), cut to the columns that matter.
const CSV: &str = "\
assignment_number,full_name,ni_number,date_of_birth,job_role,assignment_start,identity_verified,registration_body,registration_number,right_to_work,right_to_work_checked,right_to_work_expires,dbs_level,dbs_certificate,dbs_issued,dbs_update_service,references_checked,references_count,oh_cleared,oh_epp,immunisation:hepatitis-b/completed,immunisation:mmr/completed,training:fire-safety/completed,training:fire-safety/refresher_months
10000000-1,Yusuf Synthetica,ZZ055433A,1995-04-07,Porter,2018-12-10,2018-12-10,,,settled-status,2018-12-10,,enhanced,501580028409,2022-03-15,yes,2018-12-10,2,2018-12-10,no,2017-09-30,,2026-10-06,12
10000001-3,Quinn Sample,ZZ160162B,1988-03-04,Ward Sister,2024-05-25,2024-05-25,NMC,83Y7860E,british-citizen,2024-05-25,,enhanced-barred,070380860197,2024-01-28,yes,2024-05-25,2,2024-05-25,yes,2013-06-10,2016-01-18,2025-08-17,12
10000002-1,\"Example, Aisha\",ZZ123456C,1979-12-31,Registrar,2025-02-01,2025-02-01,GMC,7654321,british-citizen,2025-02-01,,basic,,,,,,,,,,,
";

#[test]
#[ignore = "writes the fuzz seed corpora; run by hand"]
fn fuzz_seeds() {
    // Wire messages: the golden vectors, by protocol.
    let wire: serde_json::Value =
        serde_json::from_str(include_str!("../../../protocol/tests/vectors/wire.json")).unwrap();
    for v in wire["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let target = match name {
            n if n.starts_with("exchange-request") => "wire_exchange_request",
            n if n.starts_with("exchange-response") => "wire_exchange_response",
            n if n.starts_with("roster-request") => "wire_roster_request",
            n if n.starts_with("roster-response") => "wire_roster_response",
            n => panic!("a wire vector of no known kind: {n}"),
        };
        put(target, &format!("golden-{name}"), hex(v["bytes"].as_str().unwrap()));
    }

    // Wire messages valid against the fuzz fixtures (testkit roster, bundle).
    let r = testkit::roster();
    let chain = r.chain.clone();
    let rjz = testkit::issuer("RJZ", 0);
    let rj1 = testkit::issuer("RJ1", 0);
    let parts = testkit::bundle_parts();
    let bundle = parts.build(&rjz);
    let id = MessageId::from_bytes([9; 16]);
    let now = testkit::now();
    let offer = exchange::Request::Offer { id, bundle: Box::new(bundle.clone()) };
    put("wire_exchange_request", "fixture-offer", offer.encode());
    // With the standard-form copy its home sends (so the fuzzer starts
    // from one that passes `check_presentation`).
    let claims: Vec<_> = bundle.disclosures.iter().map(|d| d.claim.clone()).collect();
    let vc = staffpass_protocol::sdjwt::Vc {
        iss: "https://staffpass.rjz.invalid",
        iat: now,
        exp: bundle.credential.body.expires_at.min(parts.consent.not_after),
        sub: &bundle.credential.body.subject,
        cnf: parts.consent.staff_key.as_ref(),
        status: None,
        claims: &claims,
    };
    let mut n = 0u8;
    let presentation = staffpass_protocol::sdjwt::issue(&rjz, &vc, &mut || {
        n += 1;
        [n; 16]
    });
    let presented = exchange::Request::PresentedOffer { id, bundle: Box::new(bundle.clone()), presentation };
    put("wire_exchange_request", "fixture-presented-offer", presented.encode());
    let w = Withdrawal {
        consent: parts.consent.id,
        subject: parts.consent.subject.clone(),
        home: testkit::org("RJZ"),
        receiver: testkit::org("RJ1"),
        withdrawn_at: now,
        issuer_key: rjz.public(),
    };
    let withdraw = exchange::Request::Withdraw { id, withdrawal: Signed::new(w, |b| rjz.sign(b)) };
    put("wire_exchange_request", "fixture-withdraw", withdraw.encode());
    let rv = Revocation {
        credential: parts.credential.id,
        issuer: testkit::org("RJZ"),
        reason: RevocationReason::LeavingOrganisation,
        revoked_at: now,
        issuer_key: rjz.public(),
    };
    let revoke = exchange::Request::Revoke { id, revocation: Signed::new(rv, |b| rjz.sign(b)) };
    put("wire_exchange_request", "fixture-revoke", revoke.encode());
    let receipt = Receipt {
        message: id,
        receiver: testkit::org("RJ1"),
        outcome: Outcome::Received {
            consent: parts.consent.id,
            credential: parts.credential.id,
            claims: parts.disclose.clone(),
        },
        at: now,
        issuer_key: rj1.public(),
    };
    let response = exchange::Response { receipt: Signed::new(receipt, |b| rj1.sign(b)) };
    put("wire_exchange_response", "fixture-accepted", response.encode());

    let heads = vec![wire_roster::Head { agreement: chain.agreement().clone(), seq: chain.seq(), hash: chain.head() }];
    put("wire_roster_request", "fixture-heads", wire_roster::Request::Heads(heads.clone()).encode());
    let fetch = wire_roster::Request::Fetch { agreement: chain.agreement().clone(), from: 1, limit: 128 };
    put("wire_roster_request", "fixture-fetch", fetch.encode());
    put("wire_roster_response", "fixture-heads", wire_roster::Response::Heads(heads).encode());
    let all = wire_roster::Response::Entries(chain.entries().to_vec());
    put("wire_roster_response", "fixture-entries", all.encode());

    // Roster entries: the fixture chain's own, and a valid next one of each kind.
    for e in chain.entries() {
        put("roster_entry", &format!("fixture-seq-{}", e.body.seq), encoding::to_bytes(e));
    }
    let suspend = Change::Suspend { org: testkit::org("RJ1"), reason: "audit overdue".into() };
    let next = r.entry(suspend, 2);
    put("roster_entry", "fixture-next-suspend", encoding::to_bytes(&next));
    let rotate = Change::RotateKey {
        org: testkit::org("RJZ"),
        add: testkit::issuer("RJZ", 1).public(),
        retire: Some(rjz.public()),
    };
    put("roster_entry", "fixture-next-rotate", encoding::to_bytes(&r.entry(rotate, 2)));
    let resign = Change::Resign { valid_until: now.plus_days(120) };
    put("roster_entry", "fixture-next-resign", encoding::to_bytes(&r.entry(resign, 3)));

    // The admin CLI's roster files: a chain file and a change file.
    put("admin_change_file", "chain.json", serde_json::to_vec_pretty(chain.entries()).unwrap());
    put("admin_change_file", "change.json", serde_json::to_vec_pretty(&next).unwrap());

    // Staff imports.
    put("staff_csv", "testnet-export.csv", CSV);
    let (good, _) = staffpass_node::exchange::staff::parse_csv(CSV.as_bytes(), now.date()).unwrap();
    let inputs: Vec<_> = good.into_iter().map(|(_, i)| i).collect();
    assert!(!inputs.is_empty(), "the seed CSV has no good row");
    put("staff_json", "testnet-export.json", serde_json::to_vec_pretty(&inputs).unwrap());

    // The node's configuration: its own commented example, with and without overrides.
    let cfg = Config::new(testkit::org("RJZ"));
    put("config_toml", "example.toml", cfg.example());
    put(
        "config_toml",
        "example-overrides",
        format!("{}\0STAFFPASS_NETWORK__MDNS=true\0api.listen=127.0.0.1:9000", cfg.example()),
    );
    put("config_toml", "minimal.toml", "org = \"RJZ\"\n");

    // Key files: a selector byte (0 issuer, 1 node, 2 data: the node's;
    // 3 steward, 4 issuer, 5 staff: the admin CLI's), then the file.
    let with = |kind: u8, text: &str| [&[kind][..], text.as_bytes()].concat();
    put("key_files", "node-issuer", with(0, &rjz.to_secret_text()));
    let node = NodeKey::from_bytes(&testkit::node_secret("RJZ")).unwrap();
    put("key_files", "node-node", with(1, &node.to_secret_text()));
    put("key_files", "node-data", with(2, &DataKey::from_bytes([7; 32]).to_secret_text()));
    put("key_files", "admin-steward", with(3, &testkit::steward(0).to_secret_text()));
    put("key_files", "admin-issuer", with(4, &rjz.to_secret_text()));
    put("key_files", "admin-staff", with(5, &testkit::staff("seed").to_secret_text()));
    put("key_files", "admin-steward-public", with(3, &testkit::steward(0).public().to_string()));

    // PEM files: a fresh node PKI, a revocation list and a signing request.
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(tmp.path().join("pki"), "RJZ", &["localhost".into(), "127.0.0.1".into()], false).unwrap();
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    put("pem_files", "ca.pem", read(pki.ca_cert()));
    put("pem_files", "server.pem", read(pki.server_cert()));
    put("pem_files", "admin-cert-and-key.pem", [read(pki.admin_cert()), read(pki.admin_key())].concat());
    pki.revoke(&RevokeTarget::Name("admin".into())).unwrap();
    put("pem_files", "crl.pem", read(pki.crl()));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "hr-desk");
    put("pem_files", "request.csr", params.serialize_request(&key).unwrap().pem().unwrap());
}
