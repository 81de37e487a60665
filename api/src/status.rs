//! The node's status and its peers (`read-only`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::roster::MemberStatus;
use staffpass_protocol::{AgreementId, Hash, Timestamp};
use utoipa::ToSchema;

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The node's organisation (ODS code).
    pub org: String,
    /// Its libp2p PeerId.
    pub peer_id: String,
    /// Its current issuer public key.
    pub issuer_key: String,
    /// Its listen addresses.
    pub listen_addrs: Vec<String>,
    /// Peers connected now.
    pub connected_peers: usize,
    /// The agreements it holds a roster for.
    pub agreements: Vec<AgreementSummary>,
    /// Alarms raised by rosters (equivocations).
    pub alarms: Vec<Alarm>,
    /// Messages waiting in the outbox.
    pub outbox_pending: i64,
    /// The node's version.
    pub version: String,
}

/// One agreement in `/v1/status` and `/v1/agreements`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgreementSummary {
    /// Its id.
    #[schema(value_type = crate::schema::AgreementId)]
    pub id: AgreementId,
    /// Its title.
    pub title: String,
    /// Head seq.
    pub seq: u64,
    /// Head hash.
    pub head: String,
    /// The roster fails closed after this.
    #[schema(value_type = String, format = DateTime)]
    pub valid_until: Timestamp,
    /// Not past valid_until.
    pub fresh: bool,
    /// Halted by an equivocation.
    pub halted: bool,
    /// This node's organisation's standing in it.
    #[schema(value_type = Option<String>)]
    pub member_status: Option<MemberStatus>,
    /// Active members.
    pub active_members: usize,
}

/// One peer in `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    /// Its PeerId.
    pub peer_id: String,
    /// The organisation it belongs to, by the rosters held.
    pub org: Option<String>,
    /// Connected now.
    pub connected: bool,
    /// Dialled and kept connected by this node: one of its standing peers
    /// in an agreement (at most `network.standing_peers` per agreement), or
    /// a node it owes an erasure or revocation. Any other member may
    /// connect, and is dialled only when there is something to send it.
    #[serde(default)]
    pub standing: bool,
}

/// An alarm raised by a roster: an equivocation that halted it, or evidence
/// of a fork signed by former stewards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alarm {
    /// What happened: `equivocation` (the chain is halted until its stewards
    /// resolve it) or `former-stewards` (evidence only: stewards no longer in
    /// office signed another entry at a taken seq; the chain goes on).
    pub kind: String,
    /// The agreement.
    #[schema(value_type = crate::schema::AgreementId)]
    pub agreement: AgreementId,
    /// Where.
    pub seq: u64,
    /// Hashes of the two conflicting entries.
    #[schema(value_type = Vec<String>)]
    pub hashes: [Hash; 2],
    /// What to do.
    pub message: String,
}
