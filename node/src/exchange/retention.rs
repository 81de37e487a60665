//! Retention at the home trust: what has ended is not kept for ever.
//! Credentials that expired or were revoked, and consents that ended
//! (erasure confirmed after a withdrawal, refused by the receiver, or past
//! their window with nothing left to send), are deleted
//! `exchange.home_keep_days` after they ended. A credential a kept consent
//! still references is kept with it. Each staff member concerned gets one
//! audit entry, ids and counts only.
//!
//! Deleting leaves the old ciphertext in sled's log under the staff
//! member's own key, which lives as long as they are on the staff; erasing
//! the member of staff ([`Exchange::erase_staff`]) destroys it.

use std::collections::{BTreeMap, BTreeSet};

use staffpass_protocol::Timestamp;

use super::records::*;
use super::{Error, Exchange, decode, event};
use crate::audit::Action;
use crate::store::{Batch, Tree};

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    /// Credentials deleted.
    pub credentials: usize,
    /// Consents deleted.
    pub consents: usize,
}

impl Exchange {
    /// Deletes the credentials and consents that ended more than
    /// `exchange.home_keep_days` ago (see the module's documentation), in
    /// one commit with an audit entry per member of staff concerned.
    pub fn apply_retention(&self) -> Result<Retained, Error> {
        let at = self.now();
        let cutoff = at.plus_days(-i64::from(self.0.settings.home_keep_days));
        let waiting: BTreeSet<_> = self.outbox_items()?.into_iter().map(|d| d.item.consent).collect();
        let mut batch = Batch::default();
        let mut per_staff: BTreeMap<staffpass_protocol::StaffRef, Retained> = BTreeMap::new();
        let mut kept_credentials = BTreeSet::new();
        for c in self.consents()? {
            let consent = c.signed.consent();
            if !waiting.contains(&consent.id) && ended(&c).is_some_and(|t| t <= cutoff) {
                batch.delete(Tree::Consents, consent_key(&consent.id));
                per_staff.entry(consent.subject.clone()).or_default().consents += 1;
            } else {
                kept_credentials.insert(c.credential);
            }
        }
        for (k, v) in self.0.store.scan_prefix(Tree::Credentials, b"c/")? {
            let of: OfStaff = decode(&v, "credential")?;
            let cred: CredentialRecord =
                decode(&self.open_for(&of.staff, Tree::Credentials, &k, &of.sealed)?, "credential")?;
            let id = cred.signed.body.id;
            let over = match cred.revoked {
                Some((_, revoked_at)) => revoked_at.min(cred.signed.body.expires_at),
                None => cred.signed.body.expires_at,
            };
            if over > cutoff || kept_credentials.contains(&id) {
                continue;
            }
            batch.delete(Tree::Credentials, k);
            // Marked, and its index forgotten: it ended, and is gone.
            self.status_mark_into([&id], true, &mut batch)?;
            if self.current_id(&of.staff)? == Some(id) {
                batch.delete(Tree::Credentials, current_key(&of.staff));
            }
            per_staff.entry(of.staff).or_default().credentials += 1;
        }
        let mut total = Retained::default();
        let events: Vec<_> = per_staff
            .into_iter()
            .map(|(staff, n)| {
                total.credentials += n.credentials;
                total.consents += n.consents;
                let mut ev = event("node", Action::Expiry);
                ev.staff = Some(staff);
                ev.object = Some(format!("credentials={},consents={}", n.credentials, n.consents));
                ev.reason = Some("retention".into());
                ev
            })
            .collect();
        if !events.is_empty() {
            self.0.audit.commit(batch, events, at)?;
        }
        Ok(total)
    }
}

/// When a consent ended, if it has: its erasure confirmed after a
/// withdrawal, its refusal by the receiver, or the end of its window
/// (the receiver erases by itself then). A withdrawal whose erasure is not
/// yet confirmed has not ended.
fn ended(c: &ConsentRecord) -> Option<Timestamp> {
    match &c.state {
        ConsentState::Withdrawn { erased, .. } => *erased,
        ConsentState::Rejected { at, .. } => Some(*at),
        _ => Some(c.signed.consent().not_after),
    }
}
