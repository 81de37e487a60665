//! Passports out of staffpass in standard form: the staff member's
//! current credential as an SD-JWT VC (their wallet copy), and this
//! trust's JWT VC issuer metadata, which a verifier needs for the key.
//! Every export is an audit entry (`export`, the format as its reason):
//! what leaves the node is out of its reach, and a later withdrawal or
//! erasure shows which copies were made.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use staffpass_protocol::claims::{Claim, ClaimKind};
use staffpass_protocol::sdjwt::{self, Vc};
use staffpass_protocol::{ConsentId, OrgId, StaffRef, Timestamp, fhir};

use super::{Error, Exchange, event};
use crate::audit::Action;
use crate::exchange::records::{CredentialRecord, ExportMark, ReceivedState, erased_key, exports_key, received_key};
use crate::store::{Batch, Tree};

/// The format name of an SD-JWT VC export (as in the API and the audit).
pub const SD_JWT_VC: &str = "sd-jwt-vc";
/// The format name of a FHIR R4 Bundle export.
pub const FHIR: &str = "fhir";

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
        let (cred, claims) = self.exportable(r, only)?;
        let now = self.now();
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
        self.audit_export(batch, actor, r, cred.signed.body.id.to_string(), SD_JWT_VC, now)?;
        Ok(Exported { credential: cred.signed.body.id, claims: claims.iter().map(Claim::kind).collect(), token })
    }

    /// The current credential of `r` and its claims (all, or those in
    /// `only`, each of which must be held), if it can be exported: issued,
    /// not revoked, not expired.
    fn exportable(
        &self,
        r: &StaffRef,
        only: Option<&BTreeSet<ClaimKind>>,
    ) -> Result<(CredentialRecord, Vec<Claim>), Error> {
        let cred = self.current_credential(r)?.ok_or_else(|| {
            Error::Conflict(format!("{r} has no credential: issue one (POST /v1/staff/{r}/credentials) first"))
        })?;
        if cred.revoked.is_some() {
            return Err(Error::Conflict(format!("the current credential of {r} is revoked: issue a new one first")));
        }
        if cred.signed.body.expires_at <= self.now() {
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
        Ok((cred, claims))
    }

    /// An organisation's name, from the first roster held that has it.
    fn org_name(&self, org: &OrgId) -> Option<String> {
        self.0.rosters.read().values().find_map(|c| c.state().members.get(org).map(|m| m.name.clone()))
    }

    /// Records an export in the audit log, with `batch`.
    fn audit_export(
        &self,
        batch: Batch,
        actor: &str,
        staff: &StaffRef,
        object: String,
        format: &str,
        at: Timestamp,
    ) -> Result<(), Error> {
        let mut ev = event(actor, Action::Export);
        ev.staff = Some(staff.clone());
        ev.object = Some(object);
        ev.reason = Some(format.into());
        self.0.audit.commit(batch, vec![ev], at)?;
        Ok(())
    }

    /// The staff member's current credential as a FHIR R4 Bundle
    /// (`protocol::fhir`) for a workforce system at the home trust: every
    /// claim it holds, or those in `only`. Audited as an export (`fhir`).
    pub fn export_fhir(
        &self,
        r: &StaffRef,
        only: Option<&BTreeSet<ClaimKind>>,
        actor: &str,
    ) -> Result<Exported, Error> {
        self.staff(r)?;
        let (cred, claims) = self.exportable(r, only)?;
        let now = self.now();
        let name = self.org_name(&self.0.org);
        let bundle = fhir::bundle(&fhir::Export {
            home: fhir::Org { id: &self.0.org, name: name.as_deref() },
            host: None,
            staff: r,
            claims: &claims,
            credential: cred.signed.body.id,
            consent: None,
            host_period: None,
            erase_after: None,
            recorded: now,
        });
        self.audit_export(Batch::default(), actor, r, cred.signed.body.id.to_string(), FHIR, now)?;
        Ok(Exported {
            credential: cred.signed.body.id,
            claims: claims.iter().map(Claim::kind).collect(),
            token: bundle.to_string(),
        })
    }

    /// A passport received here (active, not revoked or erased) as a FHIR R4
    /// Bundle for this trust's workforce systems: the consented claims, the
    /// home trust and this one, the host role from receipt to the consent's
    /// end, and that end as the erase-after date. Audited as an export
    /// (`fhir`, the consent as its object) and listed with the passport.
    pub fn export_received_fhir(&self, consent: &ConsentId, actor: &str) -> Result<Exported, Error> {
        // Under the consent's lock: read from the passport as it stands,
        // and the list of exports changed by one export at a time.
        let _held = self.lock_records(&[consent.as_bytes()]);
        let rec = self.exportable_received(consent)?;
        let p = &rec.passport;
        let now = self.now();
        let (home_name, host_name) = (self.org_name(&p.issuer), self.org_name(&self.0.org));
        let bundle = fhir::bundle(&fhir::Export {
            home: fhir::Org { id: &p.issuer, name: home_name.as_deref() },
            host: Some(fhir::Org { id: &self.0.org, name: host_name.as_deref() }),
            staff: &p.subject,
            claims: &p.claims,
            credential: p.credential,
            consent: Some(p.consent),
            host_period: Some((rec.received_at.min(p.not_after), p.not_after)),
            erase_after: Some(p.not_after),
            recorded: now,
        });
        self.record_received_export(&rec, FHIR, actor, now)?;
        Ok(Exported {
            credential: p.credential,
            claims: p.claims.iter().map(Claim::kind).collect(),
            token: bundle.to_string(),
        })
    }

    /// A passport received here (active) as the SD-JWT VC presentation its
    /// home trust sent with it: exactly the consented claims, signed by the
    /// home, checked against the bundle on arrival, verifiable by the
    /// host's HR system with the home's published key and no staffpass.
    /// Audited as an export (`sd-jwt-vc`) and listed with the passport. A
    /// passport sent by an older node, without that copy, is a conflict.
    pub fn export_received_sd_jwt_vc(&self, consent: &ConsentId, actor: &str) -> Result<Exported, Error> {
        let _held = self.lock_records(&[consent.as_bytes()]);
        let rec = self.exportable_received(consent)?;
        let Some(token) = rec.presentation.clone() else {
            return Err(Error::Conflict(format!(
                "the passport of consent {consent} came without an SD-JWT VC copy (sent by an older staffpass node); \
                 export it as fhir, or ask the home trust to send it again"
            )));
        };
        self.record_received_export(&rec, SD_JWT_VC, actor, self.now())?;
        let p = &rec.passport;
        Ok(Exported { credential: p.credential, claims: p.claims.iter().map(Claim::kind).collect(), token })
    }

    /// A received passport that may be exported: held, not revoked.
    fn exportable_received(&self, consent: &ConsentId) -> Result<super::records::ReceivedRecord, Error> {
        let key = received_key(consent);
        let Some(v) = self.0.store.get(Tree::Received, &key)? else {
            return Err(if self.0.store.get(Tree::Received, &erased_key(consent))?.is_some() {
                Error::Conflict(format!("the passport of consent {consent} was erased"))
            } else {
                Error::NoReceived(*consent)
            });
        };
        let rec = self.open_received(&key, &v)?;
        if !matches!(rec.state, ReceivedState::Active) {
            return Err(Error::Conflict(format!("the passport of consent {consent} was revoked by its home trust")));
        }
        Ok(rec)
    }

    /// Lists an export with the received passport and audits it, in one
    /// commit (call under the consent's lock).
    fn record_received_export(
        &self,
        rec: &super::records::ReceivedRecord,
        format: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        let consent = &rec.passport.consent;
        let mut marks = self.export_marks(consent)?;
        marks.push(ExportMark { format: format.into(), at: now });
        let mut batch = Batch::default();
        batch.put(Tree::Received, exports_key(consent), staffpass_protocol::encoding::to_bytes(&marks));
        self.audit_export(batch, actor, &rec.passport.subject, consent.to_string(), format, now)
    }

    /// The exports made of a received passport, oldest first.
    pub(super) fn export_marks(&self, consent: &ConsentId) -> Result<Vec<ExportMark>, Error> {
        match self.0.store.get(Tree::Received, &exports_key(consent))? {
            Some(v) => super::decode(&v, "export marks"),
            None => Ok(Vec::new()),
        }
    }

    /// The standard-form copy an offer carries beside its bundle: an
    /// SD-JWT VC presentation of exactly the consented claims of `cred`,
    /// for the staff member's key if the consent names one, expiring when
    /// the shared passport does (the earlier of the credential's expiry
    /// and the consent's end), with the credential's status list entry
    /// (allocated into `batch` if it has none: call with the home lock
    /// held, and commit before letting it go). Signed with the current
    /// issuer key and fresh salts.
    pub(super) fn presentation_into(
        &self,
        cred: &CredentialRecord,
        consent: &staffpass_protocol::consent::Consent,
        batch: &mut Batch,
    ) -> Result<String, Error> {
        let claims: Vec<Claim> =
            cred.disclosures.iter().map(|d| d.claim.clone()).filter(|c| consent.claims.contains(&c.kind())).collect();
        let status = self.status_entry_into(&cred.signed.body.id, batch)?;
        let iss = self.issuer_url();
        let vc = Vc {
            iss: &iss,
            iat: self.now(),
            exp: cred.signed.body.expires_at.min(consent.not_after),
            sub: &cred.staff_ref,
            cnf: consent.staff_key.as_ref(),
            status: Some(status),
            claims: &claims,
        };
        let mut rng = rand::rng();
        Ok(sdjwt::issue(&self.0.issuer, &vc, &mut || {
            let mut salt = [0u8; 16];
            rand::Rng::fill_bytes(&mut rng, &mut salt);
            salt
        }))
    }
}
