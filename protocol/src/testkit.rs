//! Deterministic fixtures for tests and benchmarks (feature `testkit`):
//! stewards, an agreement, member trusts with issuer and node keys, sample
//! claims, and a valid consented bundle. Keys come from fixed seeds, so
//! fixtures are reproducible; never use them outside tests.

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::Bundle;
use crate::claims::{
    Assignment, Claim, ClaimKind, CstfSubject, Dbs, DbsLevel, Identity, ImmunisationRecord, OhClearance, Registration,
    Regulator, RightToWork, Training, Vaccine,
};
use crate::consent::{Consent, SignedConsent};
use crate::credential::{self, Disclosure, Issue, SignedCredential};
use crate::datetime::Timestamp;
use crate::ids::{AgreementId, ConsentId, CredentialId, NodeId, OrgId, StaffRef};
use crate::keys::{IssuerSecretKey, StaffSecretKey, StewardSecretKey};
use crate::roster::{Chain, Change, Entry, EntryBody, MemberSpec, MoveKind, Terms};
use crate::signing::{Hash, Signed};

/// A fixed "now": 2026-11-23T09:00:00Z.
pub fn now() -> Timestamp {
    Timestamp::from_unix(1_795_424_400).unwrap_or_default()
}

/// 32 bytes from a label, for deterministic keys.
pub fn seed(label: &str) -> [u8; 32] {
    Hash::of(label.as_bytes()).0
}

/// A deterministic steward key.
pub fn steward(i: usize) -> StewardSecretKey {
    StewardSecretKey::from_bytes(&seed(&format!("steward-{i}")))
}

/// A deterministic issuer key for an organisation (generation `gen`).
pub fn issuer(org: &str, generation: u32) -> IssuerSecretKey {
    IssuerSecretKey::from_bytes(&seed(&format!("issuer-{org}-{generation}")))
}

/// A deterministic staff member's own key (for staff-signed consents).
pub fn staff(label: &str) -> StaffSecretKey {
    StaffSecretKey::from_bytes(&seed(&format!("staff-{label}")))
}

/// A deterministic node id for an organisation (the PeerId of an ed25519
/// key derived from the label; the secret is [`node_secret`]).
pub fn node(org: &str) -> NodeId {
    let sk = ed25519_dalek::SigningKey::from_bytes(&node_secret(org));
    NodeId::from_ed25519_public(&sk.verifying_key().to_bytes())
}

/// The secret bytes behind [`node`].
pub fn node_secret(org: &str) -> [u8; 32] {
    seed(&format!("node-{org}"))
}

/// An org id from a literal known to be valid.
pub fn org(code: &str) -> OrgId {
    code.parse().expect("valid org id in fixture")
}

/// The agreement id `london-mou`.
pub fn agreement() -> AgreementId {
    "london-mou".parse().expect("valid agreement id")
}

/// Terms covering every move and every claim in the catalogue.
pub fn terms() -> Terms {
    Terms {
        moves: MoveKind::ALL.iter().copied().collect(),
        accepts: ClaimKind::all().into_iter().collect(),
        lawful_basis: "UK GDPR Art. 6(1)(b) and 9(2)(b); staff-movement agreement".into(),
    }
}

/// A roster chain under construction, signed by the fixed stewards.
#[derive(Debug)]
pub struct RosterBuilder {
    /// The chain so far.
    pub chain: Chain,
    /// The stewards' keys.
    pub stewards: Vec<StewardSecretKey>,
    /// The time the next entry is issued at.
    pub clock: Timestamp,
}

impl RosterBuilder {
    /// A genesis for `agreement` with `n` stewards and threshold `m`,
    /// valid for 90 days from [`now`] minus 30 days.
    pub fn new(agreement: AgreementId, n: usize, m: u8) -> Self {
        let start = now().plus_days(-30);
        Self::with_valid_until(agreement, n, m, start.plus_days(90))
    }

    /// As [`RosterBuilder::new`], but the genesis is valid until
    /// `valid_until` (e.g. in the past of [`now`], for a stale roster).
    pub fn with_valid_until(agreement: AgreementId, n: usize, m: u8, valid_until: Timestamp) -> Self {
        let stewards: Vec<_> = (0..n).map(steward).collect();
        let start = now().plus_days(-30);
        let body = EntryBody {
            agreement,
            seq: 0,
            prev: Hash::default(),
            issued_at: start,
            change: Change::Genesis {
                title: "London staff-movement MOU".into(),
                terms: terms(),
                stewards: stewards.iter().map(|s| s.public()).collect::<BTreeSet<_>>(),
                threshold: m,
                valid_until,
            },
        };
        let mut e = Entry::unsigned(body);
        for s in stewards.iter().take(usize::from(m)) {
            e.sign(s);
        }
        let chain = Chain::new(e).unwrap_or_else(|err| panic!("fixture genesis refused: {err}"));
        RosterBuilder { chain, stewards, clock: start.plus_secs(60) }
    }

    /// The next entry for `change`, signed by the first `signers` stewards.
    pub fn entry(&self, change: Change, signers: usize) -> Entry {
        let st = self.chain.state();
        let mut e = Entry::unsigned(EntryBody {
            agreement: st.agreement.clone(),
            seq: st.seq + 1,
            prev: st.head,
            issued_at: self.clock,
            change,
        });
        for s in self.stewards.iter().take(signers) {
            e.sign(s);
        }
        e
    }

    /// Applies `change` signed by the threshold, advancing the clock a minute.
    pub fn push(&mut self, change: Change) -> &mut Self {
        let e = self.entry(change, usize::from(self.chain.state().threshold));
        self.chain.append(e).unwrap_or_else(|err| panic!("fixture change refused: {err}"));
        self.clock = self.clock.plus_secs(60);
        self
    }

    /// Adds `code` as a member with its generation-0 issuer key and fixed node.
    pub fn add_member(&mut self, code: &str) -> &mut Self {
        self.push(Change::AddMember(MemberSpec {
            org: org(code),
            name: format!("{code} NHS Trust"),
            issuer_keys: vec![issuer(code, 0).public()],
            nodes: vec![node(code)],
            addresses: vec![],
        }))
    }
}

/// The standard roster: `london-mou`, 3 stewards, threshold 2, members RJZ and RJ1.
pub fn roster() -> RosterBuilder {
    let mut r = RosterBuilder::new(agreement(), 3, 2);
    r.add_member("RJZ").add_member("RJ1");
    r
}

fn date(s: &str) -> crate::datetime::Date {
    s.parse().unwrap_or_else(|e| panic!("fixture date {s}: {e}"))
}

/// A full set of 14 sample claims for a fictitious member of staff.
pub fn sample_claims() -> Vec<Claim> {
    let training = |s, completed: &str, months| {
        Claim::Training(s, Training { level: 2, completed_on: date(completed), refresher_months: months })
    };
    vec![
        Claim::Identity(Identity {
            full_name: "Alex Testperson".into(),
            date_of_birth: date("1990-04-01"),
            ni_number: "ZZ123456A".parse().unwrap_or_else(|e| panic!("{e}")),
            verified_on: date("2024-09-01"),
        }),
        Claim::RightToWork(RightToWork {
            basis: "british-citizen".into(),
            checked_on: date("2024-09-01"),
            expires_on: None,
        }),
        Claim::Dbs(Dbs {
            level: DbsLevel::EnhancedBarred,
            certificate_number: "001234567890".into(),
            issued_on: date("2024-08-15"),
            update_service: true,
            recheck_on: Some(date("2027-08-15")),
        }),
        Claim::ProfessionalRegistration(Registration {
            regulator: Regulator::Gmc,
            number: "7654321".into(),
            expires_on: None,
        }),
        Claim::EmploymentAssignment(Assignment {
            assignment_number: "12345678-2".into(),
            job_role: "Specialty Registrar".into(),
            start: date("2024-09-01"),
            end: Some(date("2027-08-31")),
        }),
        Claim::OccupationalHealth(OhClearance { cleared_on: date("2024-08-20"), epp_cleared: true, review_on: None }),
        Claim::Immunisation(
            Vaccine::HepatitisB,
            ImmunisationRecord { completed_on: date("2020-01-10"), expires_on: None },
        ),
        Claim::Immunisation(Vaccine::Mmr, ImmunisationRecord { completed_on: date("2001-05-01"), expires_on: None }),
        training(CstfSubject::FireSafety, "2026-03-01", 12),
        training(CstfSubject::InfectionPreventionControl, "2026-01-15", 12),
        training(CstfSubject::InformationGovernance, "2025-06-01", 12),
        training(CstfSubject::Resuscitation, "2025-12-01", 12),
        training(CstfSubject::SafeguardingAdults, "2024-10-01", 36),
        training(CstfSubject::MovingHandling, "2025-02-01", 24),
    ]
}

/// Everything behind a bundle, so tests can change one thing and re-sign.
#[derive(Debug, Clone)]
pub struct BundleParts {
    /// The credential body (sign with [`BundleParts::build`]).
    pub credential: Issue,
    /// All disclosures of the credential.
    pub all: Vec<Disclosure>,
    /// Which claims to disclose.
    pub disclose: BTreeSet<ClaimKind>,
    /// The consent body.
    pub consent: Consent,
}

impl BundleParts {
    /// Signs and assembles the bundle with `key` (the home's issuer key).
    pub fn build(&self, key: &IssuerSecretKey) -> Bundle {
        let credential: SignedCredential = credential::issue(key, self.credential.clone(), &self.all);
        let mut consent = self.consent.clone();
        consent.issuer_key = key.public();
        let signed = Signed::new(consent, |c| key.sign(c));
        Bundle {
            credential,
            disclosures: self.all.iter().filter(|d| self.disclose.contains(&d.claim.kind())).cloned().collect(),
            consent: SignedConsent { signed, staff_signature: None },
        }
    }
}

/// A valid bundle from RJZ to RJ1 under [`roster`]: 14 claims, 3 disclosed
/// (identity, DBS, fire safety), for a rotation, window open at [`now`].
pub fn bundle_parts() -> BundleParts {
    let mut rng = rand::rngs::StdRng::from_seed_bytes(seed("salts"));
    let all: Vec<Disclosure> = sample_claims().into_iter().map(|c| Disclosure::new(c, &mut rng)).collect();
    let disclose: BTreeSet<ClaimKind> =
        [ClaimKind::Identity, ClaimKind::Dbs, ClaimKind::Training(CstfSubject::FireSafety)].into_iter().collect();
    let subject: StaffRef = "st-0000000000000000000000000000abcd".parse().unwrap_or_else(|e| panic!("{e}"));
    let issued = now().plus_days(-1);
    BundleParts {
        credential: Issue {
            id: CredentialId::from_bytes([1; 16]),
            issuer: org("RJZ"),
            subject: subject.clone(),
            issued_at: issued,
            expires_at: issued.plus_days(365),
        },
        all,
        disclose: disclose.clone(),
        consent: Consent {
            id: ConsentId::from_bytes([2; 16]),
            subject,
            home: org("RJZ"),
            receiver: org("RJ1"),
            agreement: agreement(),
            move_kind: MoveKind::Rotation,
            claims: disclose,
            not_before: issued,
            not_after: now().plus_days(30),
            issued_at: issued,
            issuer_key: issuer("RJZ", 0).public(),
            staff_key: None,
        },
    }
}

/// A seedable CSPRNG for fixtures.
trait FromSeedBytes {
    fn from_seed_bytes(seed: [u8; 32]) -> Self;
}

impl FromSeedBytes for rand::rngs::StdRng {
    fn from_seed_bytes(seed: [u8; 32]) -> Self {
        <rand::rngs::StdRng as rand::SeedableRng>::from_seed(seed)
    }
}

/// The agreements map used by `verify_bundle` in tests.
pub fn rosters(chain: &Chain) -> BTreeMap<AgreementId, Chain> {
    [(chain.agreement().clone(), chain.clone())].into_iter().collect()
}
