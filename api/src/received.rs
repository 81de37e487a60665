//! Passports received at the host trust (`hr`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::claims::{Claim, Validity};
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{AgreementId, ConsentId, CredentialId, OrgId, StaffRef, Timestamp};
use utoipa::ToSchema;

/// A received passport as shown to the host trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceivedView {
    /// The consent it was shared under.
    #[schema(value_type = crate::schema::ConsentId)]
    pub consent: ConsentId,
    /// The credential.
    #[schema(value_type = crate::schema::CredentialId)]
    pub credential: CredentialId,
    /// The home trust.
    #[schema(value_type = crate::schema::OrgId)]
    pub issuer: OrgId,
    /// The staff member's pseudonymous reference.
    #[schema(value_type = Option<crate::schema::StaffRef>)]
    pub subject: Option<StaffRef>,
    /// The agreement.
    #[schema(value_type = Option<crate::schema::AgreementId>)]
    pub agreement: Option<AgreementId>,
    /// The move.
    #[schema(value_type = Option<crate::schema::MoveKind>)]
    pub move_kind: Option<MoveKind>,
    /// `active`, `revoked`, `erased`.
    pub status: String,
    /// Revocation reason or erasure cause.
    pub reason: Option<String>,
    /// When it arrived.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub received_at: Option<Timestamp>,
    /// Sharing ends (erased then).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_after: Option<Timestamp>,
    /// Credential expiry.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The claims.
    pub claims: Vec<ClaimView>,
    /// Copies of it this trust exported (oldest first). Listed after
    /// erasure too: they are outside the node's reach, and the host must
    /// remove them itself when the passport is withdrawn or erased.
    #[serde(default)]
    pub exports: Vec<ReceivedExport>,
}

/// One export of a received passport: its form and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceivedExport {
    /// The form (`fhir`).
    pub format: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// One claim as shown to the host trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    /// Which claim.
    pub claim: String,
    /// Whether it is in date today.
    #[schema(value_type = Object)]
    pub validity: Validity,
    /// The value (only when one passport is shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Claim>,
}
