//! Every route of the local API, by its path template (axum's `{param}`
//! syntax). The node routes by these constants and the client fills them
//! with [`path`], so each path is written here only. The role each route
//! needs is declared by the node's route groups and shown in the OpenAPI
//! document as the operation's tag (`read-only`, `hr`, `admin`).

/// `GET`: liveness, no role (`ok`).
pub const HEALTHZ: &str = "/healthz";
/// `GET`: readiness, no role (`ready`, or 503).
pub const READYZ: &str = "/readyz";
/// `GET`: Prometheus/OpenMetrics text.
pub const METRICS: &str = "/metrics";
/// `GET`: this API's OpenAPI 3.1 document.
pub const OPENAPI: &str = "/v1/openapi.json";
/// `GET`: the node's status.
pub const STATUS: &str = "/v1/status";
/// `GET`: known and connected peers.
pub const PEERS: &str = "/v1/peers";
/// `GET`: agreements held; `POST`: submit a chain (admin).
pub const AGREEMENTS: &str = "/v1/agreements";
/// `GET`: one agreement's roster.
pub const AGREEMENT: &str = "/v1/agreements/{id}";
/// `GET`: its entries; `POST`: submit entries (admin).
pub const AGREEMENT_ENTRIES: &str = "/v1/agreements/{id}/entries";
/// `POST`: this node's admin ends an equivocation halt locally (admin).
pub const AGREEMENT_OVERRIDE: &str = "/v1/agreements/{id}/override";
/// `GET`: staff records, a page at a time.
pub const STAFF: &str = "/v1/staff";
/// `POST`: import staff records (CSV or JSON).
pub const STAFF_IMPORT: &str = "/v1/staff/import";
/// `GET`, `PUT`, `DELETE`: one staff record.
pub const STAFF_MEMBER: &str = "/v1/staff/{ref}";
/// `POST`: record one claim.
pub const STAFF_CLAIMS: &str = "/v1/staff/{ref}/claims";
/// `POST`: issue a credential.
pub const STAFF_CREDENTIALS: &str = "/v1/staff/{ref}/credentials";
/// `POST`: revoke every credential of a staff member (the current one and
/// each one a live consent references).
pub const STAFF_REVOKE: &str = "/v1/staff/{ref}/revoke";
/// `POST` (admin): replace or remove a staff member's registered key.
pub const STAFF_KEY: &str = "/v1/staff/{ref}/key";
/// `POST` (hr): the staff member's own change of their registered key,
/// signed with the key it replaces.
pub const STAFF_KEY_CHANGE: &str = "/v1/staff/{ref}/key-change";
/// `POST` (hr): the staff member's current credential in a standard form
/// (an SD-JWT VC: their wallet copy); audited.
pub const STAFF_EXPORT: &str = "/v1/staff/{ref}/export";
/// `GET`: this trust's JWT VC issuer metadata (issuer URL and keys), for
/// verifiers of what it exports.
pub const ISSUER_METADATA: &str = "/v1/node/issuer-metadata";
/// `GET`: this trust's Token Status List (`statuslist+jwt`), whose bits say
/// which exported credentials no longer stand.
pub const STATUS_LIST: &str = "/v1/node/status-list";
/// `GET`: a staff member's own activity in the audit log.
pub const STAFF_ACTIVITY: &str = "/v1/staff/{ref}/activity";
/// `GET`: one credential.
pub const CREDENTIAL: &str = "/v1/credentials/{id}";
/// `POST`: revoke a credential.
pub const CREDENTIAL_REVOKE: &str = "/v1/credentials/{id}/revoke";
/// `GET`: every consent; `POST`: grant one.
pub const CONSENTS: &str = "/v1/consents";
/// `GET`: one consent; `DELETE`: withdraw it.
pub const CONSENT: &str = "/v1/consents/{id}";
/// `POST`: the staff member's own signature.
pub const CONSENT_STAFF_SIGNATURE: &str = "/v1/consents/{id}/staff-signature";
/// `GET`: passports received.
pub const RECEIVED: &str = "/v1/received";
/// `GET`: one received passport, with claim values.
pub const RECEIVED_ONE: &str = "/v1/received/{id}";
/// `POST` (hr): a received passport in a standard form (a FHIR Bundle),
/// for this trust's workforce systems; audited.
pub const RECEIVED_EXPORT: &str = "/v1/received/{id}/export";
/// `GET`: messages waiting in the outbox.
pub const OUTBOX: &str = "/v1/outbox";
/// `GET`: the audit log, a page at a time.
pub const AUDIT: &str = "/v1/audit";
/// `GET`: verify the audit log's hash chain.
pub const AUDIT_VERIFY: &str = "/v1/audit/verify";
/// `GET` (admin): a consistent snapshot of the node's data, sealed (a
/// data backup; no keys).
pub const BACKUP: &str = "/v1/backup";

/// `template` with its one `{param}` segment replaced by `id`.
///
/// Ids in this API (agreement ids, staff references, consent and credential
/// ids) are made of URL-safe characters, so they go into the path as they are.
pub fn path(template: &str, id: &impl std::fmt::Display) -> String {
    match (template.find('{'), template.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{id}{}", &template[..open], &template[close + 1..])
        }
        _ => template.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_one_parameter() {
        assert_eq!(path(CONSENT_STAFF_SIGNATURE, &"consent-1"), "/v1/consents/consent-1/staff-signature");
        assert_eq!(path(STAFF_MEMBER, &"sr-x"), "/v1/staff/sr-x");
        assert_eq!(path(STATUS, &"unused"), STATUS);
    }
}
