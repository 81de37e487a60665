//! # staffpass-protocol
//!
//! Everything that decides "is this valid?" in staffpass, as pure
//! functions over bytes and time: typed identifiers, role-separated keys,
//! domain-separated canonical signing, the roster chain state machine, the
//! claim catalogue, passport credentials with selective disclosure,
//! consents, withdrawals, revocations, receipts, the terms of an agreement
//! for one exchange ([`bundle::check_terms`]), the receiver's acceptance
//! rules for bundles, withdrawals and revocations
//! ([`bundle::verify_bundle`], [`consent::verify_withdrawal`],
//! [`revocation::verify_revocation`]), the sender's check of a receipt
//! ([`receipt::verify_receipt`]) and the wire messages.
//!
//! No I/O, no async, no clock: time is always an argument. The node, the
//! admin CLI and the tests all use these same rules.

pub mod bundle;
pub mod claims;
pub mod consent;
pub mod credential;
pub mod datetime;
pub mod encoding;
pub mod fhir;
pub mod ids;
pub mod keys;
pub mod receipt;
pub mod revocation;
pub mod roster;
pub mod sdjwt;
pub mod signing;
pub mod statuslist;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

pub use bundle::{Bundle, Rejection, VerifiedPassport, check_terms, verify_bundle};
pub use claims::{Claim, ClaimKind};
pub use consent::verify_withdrawal;
pub use datetime::{Date, Timestamp};
pub use ids::{AgreementId, ConsentId, CredentialId, MessageId, NodeId, OrgId, StaffRef};
pub use keys::{IssuerPublicKey, IssuerSecretKey, StaffPublicKey, StaffSecretKey, StewardPublicKey, StewardSecretKey};
pub use receipt::verify_receipt;
pub use revocation::verify_revocation;
pub use signing::{Hash, Signable, Signature, Signed};
