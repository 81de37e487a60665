//! The committed `api/openapi.json` is the document the types generate.

use std::path::Path;

#[test]
fn committed_document_is_current() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = staffpass_api::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &generated).expect("write api/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "api/openapi.json is not the document the API types generate; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p staffpass-api --test openapi` and commit it"
    );
}

#[test]
fn is_openapi_3_1_with_every_route() {
    let doc: serde_json::Value = serde_json::from_str(&staffpass_api::openapi::json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        staffpass_api::route::STATUS,
        staffpass_api::route::CONSENT_STAFF_SIGNATURE,
        staffpass_api::route::AUDIT_VERIFY,
        staffpass_api::route::OPENAPI,
    ] {
        assert!(paths.contains_key(p), "{p} is missing from the document");
    }
    // Every operation names the role it needs as its tag.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let tags = op["tags"].as_array().map(Vec::len).unwrap_or(0);
            assert_eq!(tags, 1, "{method} {path} must have exactly one tag, its role");
        }
    }
}
