//! Figure 1: `verify_bundle` on one core (a 14-claim passport with 5
//! disclosed, a roster of 50 members) against the raw ed25519-dalek
//! `verify_strict` rate for the signatures a bundle carries, and against
//! `verify_batch` of the same signatures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ed25519_dalek::{Signature, VerifyingKey};
use staffpass_protocol::bundle::check_presentation;
use staffpass_protocol::claims::{ClaimKind, CstfSubject, Vaccine};
use staffpass_protocol::revocation::Revocations;
use staffpass_protocol::roster::Chain;
use staffpass_protocol::testkit::{self, BundleParts};
use staffpass_protocol::{Bundle, Signable, verify_bundle};

use super::{Row, Sizes};

/// Figure 1's rows and the limit figure 3 is compared with.
pub struct Outcome {
    /// Table rows.
    pub rows: Vec<Row>,
    /// The raw single-core limit, bundles per second.
    pub limit: f64,
}

/// The 50-member roster, the 5-claim bundle.
pub fn fixture() -> (Chain, Bundle) {
    let mut r = testkit::roster();
    for i in 0..48 {
        r.add_member(&format!("B{i:03}"));
    }
    let mut parts: BundleParts = testkit::bundle_parts();
    let five = [
        ClaimKind::Identity,
        ClaimKind::Dbs,
        ClaimKind::Training(CstfSubject::FireSafety),
        ClaimKind::Training(CstfSubject::InfectionPreventionControl),
        ClaimKind::Immunisation(Vaccine::HepatitisB),
    ];
    parts.disclose = five.into_iter().collect();
    parts.consent.claims = parts.disclose.clone();
    let bundle = parts.build(&testkit::issuer("RJZ", 0));
    (r.chain, bundle)
}

/// The (message, signature, key) triples a bundle's verification checks.
pub fn signatures(bundle: &Bundle) -> anyhow::Result<Vec<(Vec<u8>, Signature, VerifyingKey)>> {
    let cred = &bundle.credential;
    let cons = &bundle.consent.signed;
    let key = |b: [u8; 32]| VerifyingKey::from_bytes(&b).context("issuer key");
    let mut out = vec![
        (cred.body.signing_bytes(), cred.signature.dalek(), key(cred.body.issuer_key.to_bytes())?),
        (cons.body.signing_bytes(), cons.signature.dalek(), key(cons.body.issuer_key.to_bytes())?),
    ];
    if let (Some(k), Some(s)) = (&cons.body.staff_key, &bundle.consent.staff_signature) {
        out.push((cons.body.signing_bytes(), s.dalek(), key(k.to_bytes())?));
    }
    Ok(out)
}

/// Calls `f` repeatedly for `secs`, returning calls per second.
pub fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    // Warm up.
    for _ in 0..50 {
        f();
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs figure 1.
pub fn run(sizes: &Sizes) -> anyhow::Result<Outcome> {
    let (chain, bundle) = fixture();
    let rosters = testkit::rosters(&chain);
    let status = Revocations::default();
    let sender = testkit::node("RJZ");
    let receiver = testkit::org("RJ1");
    let now = testkit::now();
    verify_bundle(&bundle, &sender, &receiver, &rosters, &status, now)
        .map_err(|r| anyhow::anyhow!("fixture bundle refused: {r}"))?;
    let sigs = signatures(&bundle)?;
    let n = sigs.len();

    let ours = rate(sizes.verify_secs, || {
        let r = verify_bundle(black_box(&bundle), &sender, &receiver, &rosters, &status, now);
        black_box(r.is_ok());
    });
    let single = rate(sizes.verify_secs, || {
        for (m, s, k) in &sigs {
            black_box(k.verify_strict(black_box(m), s).is_ok());
        }
    });
    let msgs: Vec<&[u8]> = sigs.iter().map(|(m, _, _)| m.as_slice()).collect();
    let ss: Vec<Signature> = sigs.iter().map(|(_, s, _)| *s).collect();
    let ks: Vec<VerifyingKey> = sigs.iter().map(|(_, _, k)| *k).collect();
    let batch = rate(sizes.verify_secs, || {
        black_box(ed25519_dalek::verify_batch(black_box(&msgs), &ss, &ks).is_ok());
    });
    // The standard-form copy every offer now carries: made at the home,
    // checked at the receiver beside the bundle.
    let key = testkit::issuer("RJZ", 0);
    let copy = super::exchange::presentation_of(&bundle, &key);
    let passport = verify_bundle(&bundle, &sender, &receiver, &rosters, &status, now)
        .map_err(|r| anyhow::anyhow!("fixture bundle refused: {r}"))?;
    check_presentation(&copy, &passport, &rosters, now).map_err(|r| anyhow::anyhow!("fixture copy refused: {r}"))?;
    let with_copy = rate(sizes.verify_secs, || {
        let r = verify_bundle(black_box(&bundle), &sender, &receiver, &rosters, &status, now)
            .and_then(|p| check_presentation(black_box(&copy), &p, &rosters, now));
        black_box(r.is_ok());
    });
    let issue_copy = rate(sizes.verify_secs, || {
        black_box(super::exchange::presentation_of(black_box(&bundle), &key));
    });
    let ratio = ours / single;
    let rows = vec![
        Row::new(
            "1 verify",
            &format!("verify_bundle, 1 core ({n} signatures, 5 of 14 claims, 50 members)"),
            ours,
            "bundles/s",
        )
        .baseline(single, &format!("raw verify_strict x{n}"))
        .target(">= 0.80 x raw limit", ratio >= 0.8),
        Row::new(
            "1 verify",
            &format!("raw verify_batch of the same {n} signatures (not adopted, see BENCHMARKS.md)"),
            batch,
            "bundles/s",
        )
        .baseline(single, &format!("raw verify_strict x{n}")),
        Row::new(
            "1 verify",
            "verify_bundle + check_presentation of its SD-JWT VC copy, 1 core (what a receiver does per offer)",
            with_copy,
            "bundles/s",
        )
        .baseline(ours, "verify_bundle alone"),
        Row::new(
            "1 verify",
            "the home makes the SD-JWT VC copy of a 5-claim bundle (1 signature, 5 disclosures), 1 core",
            issue_copy,
            "copies/s",
        ),
    ];
    Ok(Outcome { rows, limit: single })
}
