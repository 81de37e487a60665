//! Passport credentials and selective disclosure.
//!
//! A credential carries no personal data: the subject's pseudonymous
//! reference, issue and expiry times, and one salted digest per claim
//! (SD-JWT's idea, RFC 9901). A [`Disclosure`] (salt + claim) reveals one
//! claim; the receiver hashes it and finds the digest in the signed
//! credential. Digests are sorted, so their order says nothing.

use serde::{Deserialize, Serialize};

use crate::claims::Claim;
use crate::datetime::Timestamp;
use crate::ids::{CredentialId, OrgId, StaffRef};
use crate::keys::{IssuerPublicKey, IssuerSecretKey};
use crate::signing::{Hash, Signable, Signed};

/// A passport credential (unsigned body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Its id.
    pub id: CredentialId,
    /// The issuing organisation (the home trust).
    pub issuer: OrgId,
    /// The issuer key that signs it.
    pub issuer_key: IssuerPublicKey,
    /// The staff member, by pseudonymous reference.
    pub subject: StaffRef,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
    /// One salted digest per claim, sorted.
    pub digests: Vec<Hash>,
}

impl Signable for Credential {
    const TAG: &'static str = "credential";
    const VERSION: u16 = 1;
}

/// A signed credential.
pub type SignedCredential = Signed<Credential>;

/// A 128-bit salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salt(pub [u8; 16]);

/// One claim revealed: the salt and the claim, whose digest is in the
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// Random salt, at least 128 bits from a CSPRNG.
    pub salt: Salt,
    /// The claim.
    pub claim: Claim,
}

impl Signable for Disclosure {
    const TAG: &'static str = "disclosure";
    const VERSION: u16 = 1;
}

impl Disclosure {
    /// A disclosure with a fresh salt.
    pub fn new<R: rand::CryptoRng + ?Sized>(claim: Claim, rng: &mut R) -> Self {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Disclosure { salt: Salt(salt), claim }
    }

    /// The digest the credential holds for it.
    pub fn digest(&self) -> Hash {
        self.hash()
    }
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The credential id.
    pub id: CredentialId,
    /// The issuing organisation.
    pub issuer: OrgId,
    /// The staff member.
    pub subject: StaffRef,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry time.
    pub expires_at: Timestamp,
}

/// Issues a credential over `disclosures`, signed with `key`.
pub fn issue(key: &IssuerSecretKey, what: Issue, disclosures: &[Disclosure]) -> SignedCredential {
    let mut digests: Vec<Hash> = disclosures.iter().map(Disclosure::digest).collect();
    digests.sort();
    digests.dedup();
    let body = Credential {
        id: what.id,
        issuer: what.issuer,
        issuer_key: key.public(),
        subject: what.subject,
        issued_at: what.issued_at,
        expires_at: what.expires_at,
        digests,
    };
    Signed::new(body, |b| key.sign(b))
}
