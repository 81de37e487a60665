//! Shared fixtures for the fuzz targets: the protocol testkit's roster,
//! a valid bundle and the parties of an exchange, built once per process.
//!
//! Every target checks one decoder (and, where it makes sense, the rule
//! that judges what decodes) against these fixtures, so a decoded value
//! meets a real roster and real keys rather than an empty state.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use staffpass_protocol::bundle::Bundle;
use staffpass_protocol::datetime::{Date, Timestamp};
use staffpass_protocol::ids::{AgreementId, NodeId, OrgId};
use staffpass_protocol::revocation::Revocations;
use staffpass_protocol::roster::Chain;
use staffpass_protocol::testkit::{self, BundleParts};

/// What every target judges against.
#[derive(Debug)]
pub struct Fixture {
    /// `london-mou` with RJZ and RJ1 (3 stewards, threshold 2).
    pub chain: Chain,
    /// The same chain, as the map `verify_*` take.
    pub rosters: BTreeMap<AgreementId, Chain>,
    /// The parts of a valid bundle from RJZ to RJ1.
    pub parts: BundleParts,
    /// That bundle, signed with RJZ's issuer key.
    pub bundle: Bundle,
    /// The same, for a staff member who holds a key and signed the consent.
    pub staff_bundle: Bundle,
    /// The fixed "now" the bundle is valid at.
    pub now: Timestamp,
    /// Its day, for the staff imports.
    pub today: Date,
    /// RJZ's node (the sender).
    pub sender: NodeId,
    /// RJZ.
    pub home: OrgId,
    /// RJ1 (the receiver).
    pub receiver: OrgId,
    /// Nothing revoked or withdrawn.
    pub status: Revocations,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let chain = testkit::roster().chain;
        let rosters = testkit::rosters(&chain);
        let parts = testkit::bundle_parts();
        let key = testkit::issuer("RJZ", 0);
        let bundle = parts.build(&key);
        let staff = testkit::staff("fuzz");
        let mut staff_parts = parts.clone();
        staff_parts.consent.staff_key = Some(staff.public());
        let mut staff_bundle = staff_parts.build(&key);
        staff_bundle.consent.staff_signature = Some(staff.sign(&staff_bundle.consent.signed.body));
        let now = testkit::now();
        Fixture {
            chain,
            rosters,
            parts,
            bundle,
            staff_bundle,
            now,
            today: now.date(),
            sender: testkit::node("RJZ"),
            home: testkit::org("RJZ"),
            receiver: testkit::org("RJ1"),
            status: Revocations::default(),
        }
    })
}

/// A temporary directory for targets that must go through files, in
/// memory (`/dev/shm`) where there is one: thousands of writes a second.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.expect("a temporary directory")
}
