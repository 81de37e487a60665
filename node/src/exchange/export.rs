//! Passports out of staffpass in standard form: the staff member's
//! current credential as an SD-JWT VC (their wallet copy), and this
//! trust's JWT VC issuer metadata, which a verifier needs for the key.
//! Every export is an audit entry (`export`, the format as its reason):
//! what leaves the node is out of its reach, and a later withdrawal or
//! erasure shows which copies were made.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use staffpass_protocol::StaffRef;
use staffpass_protocol::claims::{Claim, ClaimKind};
use staffpass_protocol::sdjwt::{self, Vc};

use super::{Error, Exchange, event};
use crate::audit::Action;
use crate::store::Batch;

/// The format name of an SD-JWT VC export (as in the API and the audit).
pub const SD_JWT_VC: &str = "sd-jwt-vc";

/// An exported credential.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The credential it was made from.
    pub credential: staffpass_protocol::CredentialId,
    /// The claims in it.
    pub claims: Vec<ClaimKind>,
    /// The token.
    pub token: String,
}

impl Exchange {
    /// This trust's issuer URL (`iss` of its SD-JWT VCs).
    pub fn issuer_url(&self) -> String {
        self.0.settings.issuer_url_of(&self.0.org)
    }

    /// The JWT VC Issuer Metadata document: the issuer URL and its key set,
    /// each key by RFC 7638 thumbprint: the current issuer key first, then
    /// every other key of this trust in the rosters it holds that can
    /// still have a living credential: not retired, or retired less than a
    /// credential's lifetime ago (what it signed before stays valid until
    /// it expires).
    pub fn issuer_metadata(&self) -> Value {
        let now = self.now();
        let lifetime = i64::from(self.0.settings.credential_validity_days);
        let current = self.0.issuer.public();
        let mut keys = vec![current];
        for chain in self.0.rosters.read().values() {
            let Some(m) = chain.state().members.get(&self.0.org) else { continue };
            for k in &m.keys {
                if k.retired_at.is_none_or(|r| r.plus_days(lifetime) > now) && !keys.contains(&k.key) {
                    keys.push(k.key);
                }
            }
        }
        let jwks: Vec<_> = keys.iter().map(sdjwt::issuer_jwk).collect();
        json!({ "issuer": self.issuer_url(), "jwks": { "keys": jwks } })
    }

    /// The staff member's current credential as an SD-JWT VC: every claim
    /// it holds, or those in `only` (each must be held). Signed anew with
    /// the current issuer key and fresh salts; `exp` is the credential's;
    /// `status` its entry in the trust's status list (allocated now if it
    /// has none).
    /// A revoked or expired credential is not exported.
    pub fn export_sd_jwt_vc(
        &self,
        r: &StaffRef,
        only: Option<&BTreeSet<ClaimKind>>,
        actor: &str,
    ) -> Result<Exported, Error> {
        let staff = self.staff(r)?;
        // Held to the commit: the entry is allocated, and a revocation or
        // re-issue marks it, under the same lock.
        let _home = self.lock_home();
        let cred = self.current_credential(r)?.ok_or_else(|| {
            Error::Conflict(format!("{r} has no credential: issue one (POST /v1/staff/{r}/credentials) first"))
        })?;
        let now = self.now();
        if cred.revoked.is_some() {
            return Err(Error::Conflict(format!("the current credential of {r} is revoked: issue a new one first")));
        }
        if cred.signed.body.expires_at <= now {
            return Err(Error::Conflict(format!("the current credential of {r} has expired: issue a new one first")));
        }
        if let Some(only) = only {
            let held: BTreeSet<ClaimKind> = cred.disclosures.iter().map(|d| d.claim.kind()).collect();
            if let Some(missing) = only.iter().find(|k| !held.contains(k)) {
                return Err(Error::ClaimNotHeld(*missing));
            }
        }
        let claims: Vec<Claim> = cred
            .disclosures
            .iter()
            .map(|d| d.claim.clone())
            .filter(|c| only.is_none_or(|o| o.contains(&c.kind())))
            .collect();
        let iss = self.issuer_url();
        let mut batch = Batch::default();
        let status = self.status_entry_into(&cred.signed.body.id, &mut batch)?;
        let vc = Vc {
            iss: &iss,
            iat: now,
            exp: cred.signed.body.expires_at,
            sub: r,
            cnf: staff.staff_key.as_ref(),
            status: Some(status),
            claims: &claims,
        };
        let mut rng = rand::rng();
        let token = sdjwt::issue(&self.0.issuer, &vc, &mut || {
            let mut salt = [0u8; 16];
            rand::Rng::fill_bytes(&mut rng, &mut salt);
            salt
        });
        let mut ev = event(actor, Action::Export);
        ev.staff = Some(r.clone());
        ev.object = Some(cred.signed.body.id.to_string());
        ev.reason = Some(SD_JWT_VC.into());
        self.0.audit.commit(batch, vec![ev], now)?;
        Ok(Exported { credential: cred.signed.body.id, claims: claims.iter().map(Claim::kind).collect(), token })
    }
}
