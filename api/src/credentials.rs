//! Passport credentials at the home trust (`hr`).

use serde::{Deserialize, Serialize};
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
