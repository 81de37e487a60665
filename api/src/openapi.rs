//! The OpenAPI 3.1 document of the local API, generated from the types of
//! this crate with utoipa.
//!
//! Each route is described once here, by its path constant from
//! [`crate::route`]; its tag is the least role that may call it
//! (`read-only`, `hr`, `admin`; `probe` needs none). The document is
//! committed as `api/openapi.json` (a test fails when it drifts; run
//! `UPDATE_OPENAPI=1 cargo test -p staffpass-api` to rewrite it) and served
//! by the node at `GET /v1/openapi.json`.

// The functions below exist only to carry `#[utoipa::path]`; the node's
// handlers are in staffpass-node.
#![allow(dead_code)]

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::agreements::{AgreementView, EntriesQuery, OverrideRequest, Submission, Submitted};
use crate::audit::{self, AuditQuery, Head, Verification, VerifyReport};
use crate::consents::{ConsentRequest, ConsentState, ConsentView, StaffSignature};
use crate::credentials::{
    CredentialView, ExportFormat, ExportRequest, ExportView, ReceivedExportFormat, ReceivedExportRequest,
    RevokeRequest, StatusListView,
};
use crate::error::{ErrorBody, ErrorInfo};
use crate::outbox::OutboxItemView;
use crate::received::{ClaimView, ReceivedExport, ReceivedView};
use crate::route;
use crate::staff::{
    ImportQuery, ImportReport, PageQuery, RowError, StaffInput, StaffKeyChangeRequest, StaffKeyRequest, StaffRecord,
    StaffSummary,
};
use crate::status::{AgreementSummary, Alarm, Peer, Status};

/// The API's OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as the pretty JSON committed in `api/openapi.json`, with a
/// final newline.
pub fn json() -> String {
    // The document is plain data; serialising it cannot fail.
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "staffpass node local API",
        description = "The HTTPS API of a staffpass node. Every connection presents a client certificate issued by \
                       the node's CA; its subject OU is the caller's role (admin ⊇ hr ⊇ read-only). Each operation's \
                       tag is the least role that may call it. Every error has the body ErrorBody.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&ClientCertificate, &ErrorResponses, &Links),
    paths(
        healthz, readyz, metrics, openapi, status, peers, issuer_metadata, status_list,
        agreements, submit_chain, agreement, entries, submit_entries, override_halt,
        staff_list, import_staff, staff_get, staff_put, staff_delete, staff_set_key, staff_change_key, record_claim, issue_credential, export_credential, activity,
        credential, revoke_credential, revoke_staff,
        consents, grant_consent, consent, withdraw_consent, sign_consent,
        received, received_one, export_received, outbox, audit_log, verify_audit, backup,
    ),
    components(schemas(
        ErrorBody, ErrorInfo, Status, AgreementSummary, Alarm, Peer, AgreementView, Submission, Submitted, OverrideRequest,
        StaffRecord, StaffKeyRequest, StaffKeyChangeRequest, StaffInput, StaffSummary, ImportReport, RowError, CredentialView, RevokeRequest,
        ExportFormat, ExportRequest, ExportView, StatusListView, ReceivedExportFormat, ReceivedExportRequest, ConsentRequest, ConsentView, ConsentState, StaffSignature, ReceivedView, ClaimView, ReceivedExport, OutboxItemView,
        audit::Entry, audit::Event, Head, audit::Checkpoint, VerifyReport, audit::Fault, Verification,
    )),
    tags(
        (name = "probe", description = "No client role needed (still over mutual TLS)."),
        (name = "read-only", description = "Needs the read-only role or higher."),
        (name = "hr", description = "Needs the hr role or admin."),
        (name = "admin", description = "Needs the admin role."),
    ),
)]
struct ApiDoc;

/// Declares the client-certificate authentication for every operation.
struct ClientCertificate;

impl Modify for ClientCertificate {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate issued by the node's CA (staffpass-node init writes admin.pem; \
                     more with staffpass-node issue-client); its subject OU is the role."
                        .to_owned(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
        openapi.security = Some(vec![SecurityRequirement::new("client_certificate", Vec::<String>::new())]);
    }
}

/// Gives every operation that names no `default` response the API's error
/// shape as its `default`: every error of every route has that body.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = ResponseBuilder::new()
            .description("An API error: the status and `error.code` say which")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for op in operations.into_iter().flatten() {
                op.responses.responses.entry("default".to_owned()).or_insert_with(|| RefOr::T(error.clone()));
            }
        }
    }
}

/// OpenAPI links: where an answer's ids can be used next (a listed staff
/// reference to read, change or erase that record; an issued credential to
/// read or revoke it; a granted consent to read, sign or withdraw it). A
/// client or a test generator follows them to reach real records.
struct Links;

/// `(operation, status, link name, target operation, target parameter,
/// runtime expression for its value)`.
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("staff_list", "200", "StaffRecord", "staff_get", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "StaffActivity", "activity", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "IssueCredential", "issue_credential", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "RecordClaim", "record_claim", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "ReplaceStaff", "staff_put", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "RevokeStaff", "revoke_staff", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "SetStaffKey", "staff_set_key", "ref", "$response.body#/0/staff_ref"),
    ("staff_list", "200", "EraseStaff", "staff_delete", "ref", "$response.body#/0/staff_ref"),
    ("staff_get", "200", "IssueCredential", "issue_credential", "ref", "$response.body#/staff_ref"),
    ("issue_credential", "201", "Credential", "credential", "id", "$response.body#/id"),
    ("issue_credential", "201", "RevokeCredential", "revoke_credential", "id", "$response.body#/id"),
    ("grant_consent", "201", "Consent", "consent", "id", "$response.body#/consent/id"),
    ("grant_consent", "201", "SignConsent", "sign_consent", "id", "$response.body#/consent/id"),
    ("grant_consent", "201", "WithdrawConsent", "withdraw_consent", "id", "$response.body#/consent/id"),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for op in operations.into_iter().flatten() {
                let Some(id) = op.operation_id.clone() else { continue };
                for (_, status, name, target, param, expression) in LINKS.iter().filter(|l| l.0 == id) {
                    if let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) {
                        let link = LinkBuilder::new().operation_id(*target).parameter(*param, *expression).build();
                        response.links.insert((*name).to_owned(), RefOr::T(link));
                    }
                }
            }
        }
    }
}

#[utoipa::path(get, path = route::HEALTHZ, tag = "probe",
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain")))]
fn healthz() {}

#[utoipa::path(get, path = route::READYZ, tag = "probe",
    responses(
        (status = 200, description = "Start-up has finished", body = String, content_type = "text/plain"),
        (status = 503, description = "Still starting", body = ErrorBody),
    ))]
fn readyz() {}

#[utoipa::path(get, path = route::METRICS, tag = "read-only",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text"),
    ))]
fn metrics() {}

#[utoipa::path(get, path = route::OPENAPI, tag = "read-only",
    responses(
        (status = 200, description = "This document", body = Object),
    ))]
fn openapi() {}

#[utoipa::path(get, path = route::ISSUER_METADATA, tag = "read-only",
    responses(
        (status = 200, description = "The trust's JWT VC issuer metadata: `issuer` (its HTTPS issuer URL) and \
                                      `jwks` (its issuer key as an Ed25519 JWK, `kid` the RFC 7638 thumbprint)", body = Object),
    ))]
fn issuer_metadata() {}

#[utoipa::path(get, path = route::STATUS_LIST, tag = "read-only",
    responses(
        (status = 200, description = "The trust's Token Status List", body = StatusListView),
    ))]
fn status_list() {}

#[utoipa::path(get, path = route::STATUS, tag = "read-only",
    responses(
        (status = 200, description = "The node's status", body = Status),
    ))]
fn status() {}

#[utoipa::path(get, path = route::PEERS, tag = "read-only",
    responses(
        (status = 200, description = "Members of the rosters held, and connected peers", body = Vec<Peer>),
    ))]
fn peers() {}

#[utoipa::path(get, path = route::AGREEMENTS, tag = "read-only",
    responses(
        (status = 200, description = "The agreements this node holds a roster for", body = Vec<AgreementSummary>),
    ))]
fn agreements() {}

#[utoipa::path(post, path = route::AGREEMENTS, tag = "admin", request_body = Submission,
    responses(
        (status = 201, description = "Entries applied", body = Submitted),
        (status = 200, description = "Every entry was already held", body = Submitted),
        (status = "default", description = "An API error (409: wrong seq, fork or halted; 422: refused)", body = ErrorBody),
    ))]
fn submit_chain() {}

#[utoipa::path(get, path = route::AGREEMENT, tag = "read-only",
    params(("id" = crate::schema::AgreementId, Path, description = "Agreement id")),
    responses(
        (status = 200, description = "The roster", body = AgreementView),
        (status = "default", description = "An API error (404: no roster held)", body = ErrorBody),
    ))]
fn agreement() {}

#[utoipa::path(get, path = route::AGREEMENT_ENTRIES, tag = "read-only",
    params(("id" = crate::schema::AgreementId, Path, description = "Agreement id"), EntriesQuery),
    responses(
        (status = 200, description = "Signed roster entries from `from` on", body = Vec<Object>),
    ))]
fn entries() {}

#[utoipa::path(post, path = route::AGREEMENT_ENTRIES, tag = "admin", request_body = Submission,
    params(("id" = crate::schema::AgreementId, Path, description = "Agreement id")),
    responses(
        (status = 201, description = "Entries applied", body = Submitted),
        (status = 200, description = "Every entry was already held", body = Submitted),
        (status = "default", description = "An API error (422 wrong-agreement: an entry is for another agreement)", body = ErrorBody),
    ))]
fn submit_entries() {}

#[utoipa::path(post, path = route::AGREEMENT_OVERRIDE, tag = "admin", request_body = OverrideRequest,
    params(("id" = crate::schema::AgreementId, Path, description = "Agreement id")),
    responses(
        (status = 200, description = "The halt is over on this node; the roster as it now stands", body = AgreementView),
        (status = "default", description = "An API error (404: no roster held; 422: not halted, or the hash is neither entry)", body = ErrorBody),
    ))]
fn override_halt() {}

#[utoipa::path(get, path = route::STAFF, tag = "hr", params(PageQuery),
    responses(
        (status = 200, description = "A page of staff records, without claim values", body = Vec<StaffSummary>),
    ))]
fn staff_list() {}

#[utoipa::path(post, path = route::STAFF_IMPORT, tag = "hr", params(ImportQuery),
    request_body(description = "An ESR-style CSV export, or a JSON array of StaffInput", content(
        (String = "text/csv"),
        (Vec<StaffInput> = "application/json"),
    )),
    responses(
        (status = 200, description = "What was imported", body = ImportReport),
        (status = "default", description = "An API error (422 rows-rejected: details is the ImportReport; 413: too large; 415: other type)", body = ErrorBody),
    ))]
fn import_staff() {}

#[utoipa::path(get, path = route::STAFF_MEMBER, tag = "hr",
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The record", body = StaffRecord),
    ))]
fn staff_get() {}

#[utoipa::path(put, path = route::STAFF_MEMBER, tag = "hr", request_body = StaffInput,
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The record as stored", body = StaffRecord),
    ))]
fn staff_put() {}

#[utoipa::path(delete, path = route::STAFF_MEMBER, tag = "hr",
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 204, description = "Erased: record and credentials deleted, every live consent withdrawn (receivers told to erase), the person's key destroyed"),
    ))]
fn staff_delete() {}

#[utoipa::path(post, path = route::STAFF_KEY, tag = "admin", request_body = StaffKeyRequest,
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The staff record with its new key (audited)", body = StaffRecord),
    ))]
fn staff_set_key() {}

#[utoipa::path(post, path = route::STAFF_KEY_CHANGE, tag = "hr", request_body = StaffKeyChangeRequest,
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The staff record with its new key (audited)", body = StaffRecord),
    ))]
fn staff_change_key() {}

#[utoipa::path(post, path = route::STAFF_CLAIMS, tag = "hr", request_body(content = Object, description = "One claim"),
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The record with the claim", body = StaffRecord),
    ))]
fn record_claim() {}

#[utoipa::path(post, path = route::STAFF_EXPORT, tag = "hr", request_body = ExportRequest,
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The current credential in the form asked for, signed anew (audited as an export)", body = ExportView),
    ))]
fn export_credential() {}

#[utoipa::path(post, path = route::STAFF_CREDENTIALS, tag = "hr",
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 201, description = "The credential issued", body = CredentialView),
    ))]
fn issue_credential() {}

#[utoipa::path(get, path = route::STAFF_ACTIVITY, tag = "hr",
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The staff member's audit entries", body = Vec<audit::Entry>),
    ))]
fn activity() {}

#[utoipa::path(get, path = route::CREDENTIAL, tag = "hr",
    params(("id" = crate::schema::CredentialId, Path, description = "Credential id")),
    responses(
        (status = 200, description = "The credential", body = CredentialView),
    ))]
fn credential() {}

#[utoipa::path(post, path = route::CREDENTIAL_REVOKE, tag = "hr", request_body = RevokeRequest,
    params(("id" = crate::schema::CredentialId, Path, description = "Credential id")),
    responses(
        (status = 200, description = "The credential, revoked", body = CredentialView),
    ))]
fn revoke_credential() {}

#[utoipa::path(post, path = route::STAFF_REVOKE, tag = "hr", request_body = RevokeRequest,
    params(("ref" = crate::schema::StaffRef, Path, description = "Staff reference")),
    responses(
        (status = 200, description = "The credentials revoked now (none if all already were)", body = Vec<CredentialView>),
    ))]
fn revoke_staff() {}

#[utoipa::path(get, path = route::CONSENTS, tag = "hr",
    responses(
        (status = 200, description = "Every consent", body = Vec<ConsentView>),
    ))]
fn consents() {}

#[utoipa::path(post, path = route::CONSENTS, tag = "hr", request_body = ConsentRequest,
    responses(
        (status = 201, description = "The consent recorded; its offer is queued", body = ConsentView),
    ))]
fn grant_consent() {}

#[utoipa::path(get, path = route::CONSENT, tag = "hr",
    params(("id" = crate::schema::ConsentId, Path, description = "Consent id")),
    responses(
        (status = 200, description = "The consent", body = ConsentView),
    ))]
fn consent() {}

#[utoipa::path(delete, path = route::CONSENT, tag = "hr",
    params(("id" = crate::schema::ConsentId, Path, description = "Consent id")),
    responses(
        (status = 200, description = "The consent, withdrawn", body = ConsentView),
    ))]
fn withdraw_consent() {}

#[utoipa::path(post, path = route::CONSENT_STAFF_SIGNATURE, tag = "hr", request_body = StaffSignature,
    params(("id" = crate::schema::ConsentId, Path, description = "Consent id")),
    responses(
        (status = 200, description = "The consent, signed by the staff member", body = ConsentView),
    ))]
fn sign_consent() {}

#[utoipa::path(get, path = route::RECEIVED, tag = "hr",
    responses(
        (status = 200, description = "Passports received, without claim values", body = Vec<ReceivedView>),
    ))]
fn received() {}

#[utoipa::path(get, path = route::RECEIVED_ONE, tag = "hr",
    params(("id" = crate::schema::ConsentId, Path, description = "Consent id")),
    responses(
        (status = 200, description = "One passport, with claim values", body = ReceivedView),
    ))]
fn received_one() {}

#[utoipa::path(post, path = route::RECEIVED_EXPORT, tag = "hr", request_body = ReceivedExportRequest,
    params(("id" = crate::schema::ConsentId, Path, description = "Consent id")),
    responses(
        (status = 200, description = "The received passport as a FHIR Bundle (format `fhir`) or as the home's SD-JWT VC presentation of the consented claims (format `sd-jwt-vc`); audited as an export and listed with the passport", body = ExportView),
    ))]
fn export_received() {}

#[utoipa::path(get, path = route::OUTBOX, tag = "admin",
    responses(
        (status = 200, description = "Messages waiting", body = Vec<OutboxItemView>),
    ))]
fn outbox() {}

#[utoipa::path(get, path = route::AUDIT, tag = "admin", params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = Vec<audit::Entry>),
    ))]
fn audit_log() {}

#[utoipa::path(get, path = route::AUDIT_VERIFY, tag = "admin",
    responses(
        (status = 200, description = "The chain verifies", body = Verification),
        (status = 409, description = "The chain is broken", body = Verification),
    ))]
fn verify_audit() {}

#[utoipa::path(get, path = route::BACKUP, tag = "admin",
    responses(
        (status = 200, description = "A data backup: a consistent snapshot of the store (values sealed under the \
                                      node's data key), the latest audit checkpoint, node.toml and the API \
                                      certificates, in the staffpass backup format (magic SPBACKUP, version 1). \
                                      It holds no key: restore it with the key backup that `staffpass-node backup \
                                      --keys-out` writes on the node's host. Taking one is audited.",
         body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 409, description = "The node runs on an injected store: nothing on disk to back up", body = ErrorBody),
    ))]
fn backup() {}
