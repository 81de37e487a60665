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

#[test]
fn every_link_names_an_operation_and_one_of_its_parameters() {
    let doc: serde_json::Value = serde_json::from_str(&staffpass_api::openapi::json()).unwrap();
    let mut params = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let names: Vec<String> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            params.insert(op["operationId"].as_str().unwrap().to_owned(), names);
        }
    }
    let mut links = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    let names = params.get(target).unwrap_or_else(|| panic!("link {name} names no operation {target}"));
                    for p in link["parameters"].as_object().unwrap().keys() {
                        assert!(names.contains(p), "link {name}: {target} has no parameter {p}");
                    }
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 10, "only {links} links in the document");
}
