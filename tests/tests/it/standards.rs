//! Standards out (issue 16) on a real node: the public listener serves the
//! issuer metadata and the Token Status List to a client with no
//! certificate, and nothing else; a credential exported through the API
//! verifies against the published key, and its status bit flips when it
//! is revoked; a host exports a received passport as a FHIR Bundle.

use staffpass_api::consents::ConsentRequest;
use staffpass_api::credentials::{
    ExportFormat, ExportRequest, ReceivedExportFormat, ReceivedExportRequest, RevokeRequest,
};
use staffpass_api::data_dir as paths;
use staffpass_api::staff::{ImportFormat, ImportQuery, PageQuery};
use staffpass_node::tls::Pki;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::keys::IssuerPublicKey;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{sdjwt, statuslist};
use staffpass_tests::{TestNode, now, staff_csv, wait_until};

/// A client trusting the node's CA, holding no client certificate.
fn anonymous(node: &TestNode) -> reqwest::Client {
    let ca = std::fs::read(Pki::at(paths::tls(&node.config.data_dir)).ca_cert()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

fn key_of(jwk: &serde_json::Value) -> IssuerPublicKey {
    sdjwt::issuer_key_of_jwk(jwk).expect("an Ed25519 JWK")
}

#[tokio::test]
async fn the_public_listener_serves_the_metadata_and_the_status_list_to_anyone_and_nothing_else() {
    let node = TestNode::start_new_with("RJZ", |c| {
        c.public.listen = Some("127.0.0.1:0".parse().unwrap());
        c.exchange.issuer_url = Some("https://127.0.0.1/passports".into());
    })
    .await
    .unwrap();
    let public = node.running.as_ref().unwrap().public_addr().expect("the public listener is on");
    let base = format!("https://127.0.0.1:{}", public.port());
    let web = anonymous(&node);

    let admin = node.admin();
    let csv = staff_csv(&[("12345678-1", "Alex Testperson", "ZZ123456A")]);
    admin.import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await.unwrap();
    let staff = admin.staff_list(&PageQuery::default()).await.unwrap().remove(0).staff_ref;
    admin.issue_credential(&staff).await.unwrap();
    let export =
        admin.export_credential(&staff, &ExportRequest { format: ExportFormat::SdJwtVc, claims: None }).await.unwrap();

    // The metadata, where the draft puts it for an issuer URL with a path.
    let resp = web.get(format!("{base}/.well-known/jwt-vc-issuer/passports")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let meta: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(meta["issuer"], "https://127.0.0.1/passports");
    let key = key_of(&meta["jwks"]["keys"][0]);
    assert_eq!(key, node.issuer);
    let now = now();
    let v = sdjwt::verify(&export.token, &key, now).unwrap();
    let (idx, uri) = statuslist::entry_of(&v.payload).unwrap();
    assert_eq!(uri, "https://127.0.0.1/passports/statuslists/1");

    // The status list, at the path of the uri the credential names.
    let fetch = |web: reqwest::Client, url: String| async move {
        let resp = web.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/statuslist+jwt");
        resp.text().await.unwrap()
    };
    let url = format!("{base}/passports/statuslists/1");
    let list = statuslist::verify(&fetch(web.clone(), url.clone()).await, &key, uri, now).unwrap();
    assert!(!list.get(idx));
    let revoke = RevokeRequest { reason: RevocationReason::LeavingOrganisation };
    admin.revoke_staff(&staff, &revoke).await.unwrap();
    let list = statuslist::verify(&fetch(web.clone(), url).await, &key, uri, now).unwrap();
    assert!(list.get(idx), "the revoked credential's bit is set");

    // Nothing else: not the API's routes, not under another path.
    for path in ["/v1/status", "/v1/staff", "/.well-known/jwt-vc-issuer", "/statuslists/1"] {
        let resp = web.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not-found", "{path}: one JSON error shape");
    }
    // And the local API still wants a client certificate.
    let err = web.get(format!("https://127.0.0.1:{}/v1/status", node.api.port())).send().await;
    assert!(err.is_err(), "the local API served a client with no certificate");
}

#[tokio::test]
async fn the_public_listener_is_off_by_default() {
    let node = TestNode::start_new("RJZ").await.unwrap();
    assert_eq!(node.running.as_ref().unwrap().public_addr(), None);
}

#[tokio::test]
async fn the_host_exports_a_received_passport_as_fhir_and_sd_jwt_vc_over_the_api() {
    let (home, host, _roster) = staffpass_tests::connected_pair("RJZ", "RJ1").await;
    let admin = home.admin();
    let csv = staff_csv(&[("12345678-1", "Alex Testperson", "ZZ123456A")]);
    admin.import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await.unwrap();
    let staff = admin.staff_list(&PageQuery::default()).await.unwrap().remove(0).staff_ref;
    let request = ConsentRequest {
        staff: staff.clone(),
        receiver: "RJ1".parse().unwrap(),
        agreement: "london-mou".parse().unwrap(),
        move_kind: MoveKind::Rotation,
        claims: ["identity", "dbs"].iter().map(|c| c.parse::<ClaimKind>().unwrap()).collect(),
        not_before: None,
        not_after: now().plus_days(30),
        staff_key: None,
    };
    let consent = admin.grant_consent(&request).await.unwrap().consent.id;
    let hr = host.admin();
    wait_until("the passport arrives", || {
        let hr = hr.clone();
        async move { hr.received_one(&consent).await.is_ok_and(|r| r.status == "active") }
    })
    .await;

    let fhir = ReceivedExportRequest { format: ReceivedExportFormat::Fhir };
    let out = hr.export_received(&consent, &fhir).await.unwrap();
    let b: serde_json::Value = serde_json::from_str(&out.token).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(out.claims, vec!["identity".to_string(), "dbs".into()]);
    assert!(!out.token.contains("ZZ123456A"), "the NI number was exported");
    assert!(out.token.contains("Alex Testperson"), "the consented identity claim gives the name");

    // As the SD-JWT VC the home sent with the bundle: exactly the
    // consented claims, verified with the key the home publishes in its
    // issuer metadata.
    let vc = hr.export_received(&consent, &ReceivedExportRequest { format: ReceivedExportFormat::SdJwtVc }).await;
    let vc = vc.unwrap();
    let meta = admin.issuer_metadata().await.unwrap();
    let key = sdjwt::issuer_key_of_jwk(&meta["jwks"]["keys"][0]).expect("an Ed25519 JWK");
    let v = sdjwt::verify(&vc.token, &key, now()).expect("verifies with the home's published key");
    assert_eq!(v.claims.keys().map(String::as_str).collect::<Vec<_>>(), ["dbs", "identity"]);
    assert_eq!(v.payload["iss"], meta["issuer"]);
    // For the check by the SD-JWT reference implementation
    // (tools/sdjwt-check.sh runs this test with the variable set).
    if let Some(dir) = std::env::var_os("STAFFPASS_SDJWT_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("host-copy.sdjwt"), &vc.token).unwrap();
        std::fs::write(dir.join("home-issuer-metadata.json"), meta.to_string()).unwrap();
    }

    // Not a claim subset: a request the document does not allow, refused
    // with the JSON error.
    let path = format!("/v1/received/{consent}/export");
    let body = serde_json::json!({ "format": "fhir", "claims": ["dbs"] });
    let e = hr.post_json::<_, serde_json::Value>(&path, &body).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(422), "{body}: {e}");
    // The home trust holds no received passport under that consent.
    assert_eq!(admin.export_received(&consent, &fhir).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));

    // The copy is listed with the passport, and still after erasure.
    let exports = hr.received_one(&consent).await.unwrap().exports;
    assert_eq!(exports.iter().map(|x| x.format.as_str()).collect::<Vec<_>>(), ["fhir", "sd-jwt-vc"]);
    admin.withdraw_consent(&consent).await.unwrap();
    wait_until("the passport is erased", || {
        let hr = hr.clone();
        async move { hr.received_one(&consent).await.is_ok_and(|r| r.status == "erased") }
    })
    .await;
    assert_eq!(hr.received_one(&consent).await.unwrap().exports, exports, "the erased passport's copies");
}
