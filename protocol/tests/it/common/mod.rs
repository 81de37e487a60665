//! Helpers shared by the protocol's integration tests.
//!
//! Each test file that needs them says `mod common;`; not every file uses
//! every helper.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::marker::PhantomData;

use serde::Serialize;
use serde::ser::SerializeTuple;
use staffpass_protocol::claims::Claim;
use staffpass_protocol::credential::{Disclosure, Salt};
use staffpass_protocol::datetime::Timestamp;
use staffpass_protocol::keys::StewardSecretKey;
use staffpass_protocol::roster::{Chain, Entry};
use staffpass_protocol::signing::Signable;
use staffpass_protocol::testkit::{self, BundleParts};

/// Raw canonical body bytes presented as a value of type `T`: its signing
/// bytes are `T`'s domain prefix (tag, version) followed by exactly these
/// bytes. This lets a test sign or verify arbitrary bodies under any type's
/// tag with the crate's one signing and one verifying function.
pub struct Raw<T>(pub Vec<u8>, PhantomData<T>);

impl<T> Raw<T> {
    pub fn new(body: Vec<u8>) -> Self {
        Raw(body, PhantomData)
    }
}

impl<T> Serialize for Raw<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // postcard writes a tuple with no length prefix and a u8 as one
        // byte, so this serialises to the bytes themselves.
        let mut t = s.serialize_tuple(self.0.len())?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<T: Signable> Signable for Raw<T> {
    const TAG: &'static str = T::TAG;
    const VERSION: u16 = T::VERSION;
}

/// `bytes` with byte `i` xor-ed with `mask`.
pub fn flip(bytes: &[u8], i: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[i] ^= mask;
    out
}

/// A timestamp from RFC 3339 text.
pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The fixture's sample claims as disclosures with fixed salts (`0x10 + i`
/// repeated), independent of any RNG, so golden vectors stay put.
pub fn fixed_disclosures(claims: Vec<Claim>) -> Vec<Disclosure> {
    claims.into_iter().enumerate().map(|(i, claim)| Disclosure { salt: Salt([0x10 + i as u8; 16]), claim }).collect()
}

/// [`testkit::bundle_parts`] with fixed salts.
pub fn fixed_parts() -> BundleParts {
    let mut parts = testkit::bundle_parts();
    parts.all = fixed_disclosures(testkit::sample_claims());
    parts
}

/// A different, validly signed entry at `seq` of `chain` (the same change
/// one second later), signed by `signers`: an equivocation.
pub fn conflicting(chain: &Chain, seq: u64, signers: &[StewardSecretKey]) -> Entry {
    let original = &chain.entries()[usize::try_from(seq).unwrap()];
    let mut body = original.body.clone();
    body.issued_at = body.issued_at.plus_secs(1);
    let mut e = Entry::unsigned(body);
    for s in signers {
        e.sign(s);
    }
    e
}

/// Sample values of every signed type, for tests that need one of each.
pub mod samples {
    use staffpass_protocol::claims::ClaimKind;
    use staffpass_protocol::consent::{Consent, Withdrawal};
    use staffpass_protocol::credential::{self, Credential, Disclosure};
    use staffpass_protocol::ids::{ConsentId, CredentialId, MessageId};
    use staffpass_protocol::receipt::{Outcome, Receipt};
    use staffpass_protocol::revocation::{Revocation, RevocationReason};
    use staffpass_protocol::roster::EntryBody;
    use staffpass_protocol::testkit::{self, issuer, org};

    pub fn credential() -> Credential {
        let parts = super::fixed_parts();
        credential::issue(&issuer("RJZ", 0), parts.credential, &parts.all).body
    }

    pub fn disclosure() -> Disclosure {
        super::fixed_parts().all.remove(0)
    }

    pub fn consent() -> Consent {
        super::fixed_parts().consent
    }

    pub fn withdrawal() -> Withdrawal {
        Withdrawal {
            consent: ConsentId::from_bytes([2; 16]),
            subject: consent().subject,
            home: org("RJZ"),
            receiver: org("RJ1"),
            withdrawn_at: testkit::now(),
            issuer_key: issuer("RJZ", 0).public(),
        }
    }

    pub fn revocation() -> Revocation {
        Revocation {
            credential: CredentialId::from_bytes([1; 16]),
            issuer: org("RJZ"),
            reason: RevocationReason::TrainingExpiry,
            revoked_at: testkit::now(),
            issuer_key: issuer("RJZ", 0).public(),
        }
    }

    pub fn receipt() -> Receipt {
        Receipt {
            message: MessageId::from_bytes([0x11; 16]),
            receiver: org("RJ1"),
            outcome: Outcome::Received {
                consent: ConsentId::from_bytes([2; 16]),
                credential: CredentialId::from_bytes([1; 16]),
                claims: [ClaimKind::Identity].into_iter().collect(),
            },
            at: testkit::now(),
            issuer_key: issuer("RJ1", 0).public(),
        }
    }

    /// The standard roster's add-member entry (RJZ).
    pub fn entry_body() -> EntryBody {
        testkit::roster().chain.entries()[1].body.clone()
    }
}
