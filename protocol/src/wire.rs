//! Messages between nodes, with their size bounds.
//!
//! Encoded canonically (postcard). Every decoder takes bytes and refuses
//! anything over its bound, malformed, with trailing bytes, or in any
//! encoding but the canonical one.

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::consent::Withdrawal;
use crate::encoding::{self, Error};
use crate::ids::{AgreementId, MessageId};
use crate::receipt::Receipt;
use crate::revocation::Revocation;
use crate::roster::Entry;
use crate::signing::{Hash, Signed};

/// `/staffpass/exchange/1`: passports, withdrawals and revocations, each
/// answered by a signed receipt.
pub mod exchange {
    use super::*;

    /// The libp2p protocol name.
    pub const PROTOCOL: &str = "/staffpass/exchange/1";
    /// Largest request accepted.
    pub const MAX_REQUEST: usize = 256 * 1024;
    /// Largest response accepted.
    pub const MAX_RESPONSE: usize = 16 * 1024;

    /// A message that must arrive; the receiver is idempotent by `id`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// A consented bundle (a new share, or an update of a live one).
        Offer {
            /// Message id.
            id: MessageId,
            /// The bundle.
            bundle: Box<Bundle>,
        },
        /// The staff member withdrew: erase.
        Withdraw {
            /// Message id.
            id: MessageId,
            /// The signed withdrawal.
            withdrawal: Signed<Withdrawal>,
        },
        /// The issuer revoked a credential.
        Revoke {
            /// Message id.
            id: MessageId,
            /// The signed revocation.
            revocation: Signed<Revocation>,
        },
        /// A consented bundle with its standard-form copy: an SD-JWT VC
        /// presentation of exactly the consented claims (`exp` the earlier
        /// of the credential's expiry and the consent's end), which the
        /// receiver checks against the bundle
        /// ([`crate::bundle::check_presentation`]) and can hand to its HR
        /// system. What a node of this version sends; [`Request::Offer`]
        /// (without the copy) is still accepted from older nodes.
        PresentedOffer {
            /// Message id.
            id: MessageId,
            /// The bundle.
            bundle: Box<Bundle>,
            /// The SD-JWT VC presentation (compact, ending with `~`).
            presentation: String,
        },
    }

    /// What kind of message a request is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        /// Its name (`offer`, `withdraw`, `revoke`).
        pub fn as_str(self) -> &'static str {
            match self {
                Kind::Offer => "offer",
                Kind::Withdraw => "withdraw",
                Kind::Revoke => "revoke",
            }
        }
    }

    impl std::fmt::Display for Kind {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    impl Request {
        /// Its kind.
        pub fn kind(&self) -> Kind {
            match self {
                Request::Offer { .. } | Request::PresentedOffer { .. } => Kind::Offer,
                Request::Withdraw { .. } => Kind::Withdraw,
                Request::Revoke { .. } => Kind::Revoke,
            }
        }
        /// The message id.
        pub fn id(&self) -> MessageId {
            match self {
                Request::Offer { id, .. }
                | Request::Withdraw { id, .. }
                | Request::Revoke { id, .. }
                | Request::PresentedOffer { id, .. } => *id,
            }
        }
        /// An offer's bundle.
        pub fn bundle(&self) -> Option<&Bundle> {
            match self {
                Request::Offer { bundle, .. } | Request::PresentedOffer { bundle, .. } => Some(bundle),
                Request::Withdraw { .. } | Request::Revoke { .. } => None,
            }
        }
        /// Canonical bytes.
        pub fn encode(&self) -> Vec<u8> {
            encoding::to_bytes(self)
        }
        /// Decodes, within [`MAX_REQUEST`].
        pub fn decode(b: &[u8]) -> Result<Self, Error> {
            encoding::from_canonical_bytes(b, MAX_REQUEST, "exchange request")
        }
    }

    /// The answer: always a receipt signed by the receiver.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {
        /// The signed receipt.
        pub receipt: Signed<Receipt>,
    }

    impl Response {
        /// Canonical bytes.
        pub fn encode(&self) -> Vec<u8> {
            encoding::to_bytes(self)
        }
        /// Decodes, within [`MAX_RESPONSE`].
        pub fn decode(b: &[u8]) -> Result<Self, Error> {
            encoding::from_canonical_bytes(b, MAX_RESPONSE, "exchange response")
        }
    }
}

/// `/staffpass/roster/1`: anti-entropy for roster chains.
pub mod roster {
    use super::*;

    /// The libp2p protocol name.
    pub const PROTOCOL: &str = "/staffpass/roster/1";
    /// Largest request accepted.
    pub const MAX_REQUEST: usize = 16 * 1024;
    /// Largest response accepted.
    pub const MAX_RESPONSE: usize = 1024 * 1024;
    /// Most entries in one response.
    pub const MAX_ENTRIES: u16 = 128;
    /// Largest single entry (also the gossip message bound).
    pub const MAX_ENTRY: usize = 64 * 1024;

    /// The head of one chain.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Head {
        /// The agreement.
        pub agreement: AgreementId,
        /// The head's seq.
        pub seq: u64,
        /// The head's hash.
        pub hash: Hash,
    }

    /// A roster sync request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// "Here are my heads; what are yours?"
        Heads(Vec<Head>),
        /// Entries of a chain from a seq on.
        Fetch {
            /// The agreement.
            agreement: AgreementId,
            /// First seq wanted.
            from: u64,
            /// Most entries wanted (capped at [`MAX_ENTRIES`]).
            limit: u16,
        },
    }

    /// A roster sync response.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Response {
        /// The responder's heads of the chains both hold.
        Heads(Vec<Head>),
        /// Entries, in seq order.
        Entries(Vec<Entry>),
        /// The responder does not hold that chain.
        Unknown,
    }

    impl Request {
        /// Canonical bytes.
        pub fn encode(&self) -> Vec<u8> {
            encoding::to_bytes(self)
        }
        /// Decodes, within [`MAX_REQUEST`].
        pub fn decode(b: &[u8]) -> Result<Self, Error> {
            encoding::from_canonical_bytes(b, MAX_REQUEST, "roster request")
        }
    }

    impl Response {
        /// Canonical bytes.
        pub fn encode(&self) -> Vec<u8> {
            encoding::to_bytes(self)
        }
        /// Decodes, within [`MAX_RESPONSE`].
        pub fn decode(b: &[u8]) -> Result<Self, Error> {
            encoding::from_canonical_bytes(b, MAX_RESPONSE, "roster response")
        }
    }

    /// Why an `Entries` answer is not an answer to the `Fetch` that was sent.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum Unasked {
        /// An entry of another agreement.
        #[error("an entry of agreement {found} in an answer about {asked}")]
        ForeignAgreement {
            /// The agreement asked about.
            asked: AgreementId,
            /// The one found.
            found: AgreementId,
        },
        /// An entry outside `from .. from + limit`.
        #[error("an entry at seq {seq}, outside the {from}..{end} asked for")]
        OutOfRange {
            /// Its seq.
            seq: u64,
            /// First seq asked for.
            from: u64,
            /// One past the last seq asked for.
            end: u64,
        },
        /// Entries not in seq order.
        #[error("entries out of seq order ({seq} after {previous})")]
        OutOfOrder {
            /// The previous entry's seq.
            previous: u64,
            /// This entry's seq.
            seq: u64,
        },
        /// More entries than asked for (a halted chain may add its two pieces of evidence).
        #[error("{count} entries where at most {limit} were asked for")]
        TooMany {
            /// How many came.
            count: usize,
            /// How many were asked for.
            limit: u16,
        },
    }

    /// Checks that `entries` answer `Fetch { agreement, from, limit }` and
    /// nothing else: every entry is of that agreement, at a seq in
    /// `from .. from + limit`, in seq order (one seq may repeat: a halted
    /// chain serves both entries of its equivocation), and there are at most
    /// `limit` (+ 1 for that evidence). A peer's answer counts only for what
    /// was asked; anything else is refused whole.
    pub fn check_fetched(agreement: &AgreementId, from: u64, limit: u16, entries: &[Entry]) -> Result<(), Unasked> {
        if entries.len() > usize::from(limit) + 1 {
            return Err(Unasked::TooMany { count: entries.len(), limit });
        }
        let end = from.saturating_add(u64::from(limit));
        let mut previous: Option<u64> = None;
        for e in entries {
            if &e.body.agreement != agreement {
                return Err(Unasked::ForeignAgreement { asked: agreement.clone(), found: e.body.agreement.clone() });
            }
            let seq = e.body.seq;
            if seq < from || seq >= end {
                return Err(Unasked::OutOfRange { seq, from, end });
            }
            if let Some(previous) = previous.filter(|p| seq < *p) {
                return Err(Unasked::OutOfOrder { previous, seq });
            }
            previous = Some(seq);
        }
        Ok(())
    }

    /// Decodes one roster entry (a gossip message or a file), within [`MAX_ENTRY`].
    pub fn decode_entry(b: &[u8]) -> Result<Entry, Error> {
        encoding::from_canonical_bytes(b, MAX_ENTRY, "roster entry")
    }

    /// The gossipsub topic of an agreement, named by its genesis entry's
    /// hash (hashed again, under a label) rather than its id: every peer a
    /// node connects to sees the names of the topics it subscribes to, and
    /// only members hold the genesis, so a member of one agreement cannot
    /// tell which other agreements a node is in from their topic names.
    pub fn topic(genesis: &Hash) -> String {
        let mut label = b"staffpass roster topic v1\0".to_vec();
        label.extend_from_slice(&genesis.0);
        format!("/staffpass/roster/1/{}", Hash::of(&label))
    }
}
