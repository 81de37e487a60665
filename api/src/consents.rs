//! Sharing consents at the home trust (`hr`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use staffpass_protocol::bundle::Rejection;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::consent::Consent;
use staffpass_protocol::receipt::Receipt;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{AgreementId, CredentialId, OrgId, Signature, Signed, StaffPublicKey, StaffRef, Timestamp};
use utoipa::ToSchema;

/// The body of `POST /v1/consents`: a staff member's choice to share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentRequest {
    /// The staff member.
    #[schema(value_type = crate::schema::StaffRef)]
    pub staff: StaffRef,
    /// The receiving organisation.
    #[schema(value_type = crate::schema::OrgId)]
    pub receiver: OrgId,
    /// The agreement.
    #[schema(value_type = crate::schema::AgreementId)]
    pub agreement: AgreementId,
    /// The move.
    #[schema(value_type = crate::schema::MoveKind)]
    pub move_kind: MoveKind,
    /// The claims to share.
    #[schema(value_type = Vec<crate::schema::ClaimKind>)]
    pub claims: BTreeSet<ClaimKind>,
    /// Start of sharing (default: now).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_before: Option<Timestamp>,
    /// End of sharing.
    #[schema(value_type = String, format = DateTime)]
    pub not_after: Timestamp,
    /// The staff member's own key, if they hold one (then they must sign).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::StaffPublicKey>)]
    pub staff_key: Option<StaffPublicKey>,
}

/// A consent as shown at the home trust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    /// The signed consent.
    #[schema(value_type = Object)]
    pub consent: Consent,
    /// Where it stands.
    pub state: ConsentState,
    /// The credential last sent.
    #[schema(value_type = crate::schema::CredentialId)]
    pub credential: CredentialId,
    /// Signed receipts from the receiver.
    #[schema(value_type = Vec<Object>)]
    pub receipts: Vec<Signed<Receipt>>,
    /// Hex of the bytes the staff member signs, while a staff signature is awaited.
    pub staff_signing_bytes: Option<String>,
}

/// Where a consent stands at the home trust: `{"state": name, ...its fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ConsentState {
    /// Waits for the staff member's own signature.
    AwaitingStaffSignature,
    /// The offer is in the outbox.
    Pending,
    /// The receiver verified and stored it.
    Delivered {
        /// When the receipt came.
        #[schema(value_type = String, format = DateTime)]
        at: Timestamp,
    },
    /// The receiver refused it.
    Rejected {
        /// Why.
        #[schema(value_type = String)]
        reason: Rejection,
        /// When.
        #[schema(value_type = String, format = DateTime)]
        at: Timestamp,
    },
    /// The staff member withdrew it.
    Withdrawn {
        /// When.
        #[schema(value_type = String, format = DateTime)]
        at: Timestamp,
        /// When the receiver confirmed erasure.
        #[schema(value_type = Option<String>, format = DateTime)]
        erased: Option<Timestamp>,
    },
}

impl ConsentState {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            ConsentState::AwaitingStaffSignature => "awaiting-staff-signature",
            ConsentState::Pending => "pending",
            ConsentState::Delivered { .. } => "delivered",
            ConsentState::Rejected { .. } => "rejected",
            ConsentState::Withdrawn { .. } => "withdrawn",
        }
    }
}

/// The body of `POST /v1/consents/{id}/staff-signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffSignature {
    /// The staff member's signature over `staff_signing_bytes`.
    #[schema(value_type = crate::schema::Signature)]
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_shape() {
        let at = Timestamp::from_unix(1_700_000_000).unwrap();
        let json = serde_json::to_value(ConsentState::Withdrawn { at, erased: None }).unwrap();
        assert_eq!(json, serde_json::json!({"state": "withdrawn", "at": at, "erased": null}));
        assert_eq!(serde_json::to_value(ConsentState::Pending).unwrap(), serde_json::json!({"state": "pending"}));
        for s in
            [ConsentState::Pending, ConsentState::Delivered { at }, ConsentState::Withdrawn { at, erased: Some(at) }]
        {
            let back: ConsentState = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(back, s);
            assert_eq!(serde_json::to_value(&s).unwrap()["state"], s.name());
        }
    }
}
