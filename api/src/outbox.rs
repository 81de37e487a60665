//! The durable outbox of messages that must arrive (`admin`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::{AgreementId, ConsentId, MessageId, OrgId};
use utoipa::ToSchema;

/// What an outbox message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A bundle.
    Offer,
    /// A withdrawal.
    Withdraw,
    /// A revocation.
    Revoke,
}

impl Kind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Offer => "offer",
            Kind::Withdraw => "withdraw",
            Kind::Revoke => "revoke",
        }
    }
}

/// One message waiting in the outbox (`GET /v1/outbox`); never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutboxItemView {
    /// Message id.
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Its kind.
    pub kind: Kind,
    /// The consent it belongs to.
    #[schema(value_type = String)]
    pub consent: ConsentId,
    /// The receiving organisation.
    #[schema(value_type = String)]
    pub to: OrgId,
    /// Under which agreement.
    #[schema(value_type = String)]
    pub agreement: AgreementId,
    /// Attempts so far.
    pub attempts: u32,
    /// Last failure, if any (no personal data).
    pub last_error: Option<String>,
}
