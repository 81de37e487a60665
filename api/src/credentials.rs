//! Passport credentials at the home trust (`hr`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::{CredentialId, StaffRef, Timestamp};
use utoipa::ToSchema;

/// A credential as shown at the home trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    /// Id.
    #[schema(value_type = crate::schema::CredentialId)]
    pub id: CredentialId,
    /// Staff member.
    #[schema(value_type = crate::schema::StaffRef)]
    pub staff_ref: StaffRef,
    /// Issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    /// Expires.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// Claims in it.
    pub claims: Vec<String>,
    /// Revoked: reason.
    #[schema(value_type = Option<crate::schema::RevocationReason>)]
    pub revoked: Option<RevocationReason>,
}

/// The body of `POST /v1/credentials/{id}/revoke`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// Why (e.g. `training-expiry`, `leaving-organisation`).
    #[schema(value_type = crate::schema::RevocationReason)]
    pub reason: RevocationReason,
}

/// A standard form a passport leaves staffpass in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// An SD-JWT VC (RFC 9901 SD-JWT, IETF SD-JWT VC), signed by the home
    /// trust's issuer key: a staff wallet's copy.
    SdJwtVc,
    /// A FHIR R4 (4.0.1) `collection` Bundle, UK Core shaped: Organization,
    /// Practitioner (with qualifications), PractitionerRole, Provenance;
    /// never the NI number. For a workforce system.
    Fhir,
}

impl ExportFormat {
    /// The name, as in JSON and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::SdJwtVc => "sd-jwt-vc",
            ExportFormat::Fhir => "fhir",
        }
    }
}

/// The body of `POST /v1/staff/{ref}/export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The form.
    pub format: ExportFormat,
    /// Only these claims (each must be in the current credential); all of
    /// them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::schema::ClaimKind>>)]
    pub claims: Option<BTreeSet<ClaimKind>>,
}

/// This trust's Token Status List.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusListView {
    /// Where it is published: `<issuer>/statuslists/1`, the `uri` every
    /// exported credential's `status.status_list` names.
    pub uri: String,
    /// The `statuslist+jwt` signed with the issuer key: `status_list.lst`
    /// is one bit per exported credential (set: revoked, superseded by a
    /// re-issue, or erased), zlib-compressed, base64url.
    pub token: String,
}

/// The standard forms a received passport leaves in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReceivedExportFormat {
    /// A FHIR R4 Bundle (as [`ExportFormat::Fhir`]).
    Fhir,
    /// The SD-JWT VC presentation the home trust sent with the passport:
    /// exactly the consented claims, signed by the home (verify it with the
    /// home's published issuer key). A passport sent by an older node,
    /// without it, is a conflict (409).
    SdJwtVc,
}

/// The body of `POST /v1/received/{id}/export`: the form only, since a
/// received passport is exported with the claims it was shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceivedExportRequest {
    /// The form.
    pub format: ReceivedExportFormat,
}

/// An exported passport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportView {
    /// The form.
    pub format: ExportFormat,
    /// The credential it was made from.
    #[schema(value_type = crate::schema::CredentialId)]
    pub credential: CredentialId,
    /// The claims in it.
    pub claims: Vec<String>,
    /// The issuer URL it names (`iss`), where the trust's issuer metadata
    /// is published (a home trust's export; empty for a received
    /// passport's).
    pub issuer: String,
    /// The export: for `sd-jwt-vc` the token
    /// (`<issuer-signed JWT>~<disclosure>~...~`), for `fhir` the Bundle's
    /// JSON text.
    pub token: String,
}
