//! The durable outbox of messages that must arrive (`admin`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::{AgreementId, ConsentId, MessageId, OrgId};
use utoipa::ToSchema;

/// What an outbox message is: the kind of its request, as the protocol
/// names it (`offer`, `withdraw`, `revoke`).
pub use staffpass_protocol::wire::exchange::Kind;

/// One message waiting in the outbox (`GET /v1/outbox`); never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutboxItemView {
    /// Message id.
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Its kind: `offer`, `withdraw` or `revoke`.
    #[schema(value_type = String)]
    pub kind: Kind,
    /// The consent it belongs to.
    #[schema(value_type = crate::schema::ConsentId)]
    pub consent: ConsentId,
    /// The receiving organisation.
    #[schema(value_type = crate::schema::OrgId)]
    pub to: OrgId,
    /// Under which agreement.
    #[schema(value_type = crate::schema::AgreementId)]
    pub agreement: AgreementId,
    /// Attempts so far.
    pub attempts: u32,
    /// Last failure, if any (no personal data).
    pub last_error: Option<String>,
}
