//! The receiving side: verify, store durably, then receipt. Idempotent by
//! message id: a replayed message gets the stored receipt back and changes
//! nothing. A refused bundle leaves only an audit entry (reason, ids).

use std::path::Path;

use staffpass_protocol::bundle::{Held, Rejection, check_held_by, check_presentation, verify_bundle};
use staffpass_protocol::claims::Claim;
use staffpass_protocol::consent::{Withdrawal, verify_withdrawal};
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason, Revocations, verify_revocation};
use staffpass_protocol::roster::MemberStatus;
use staffpass_protocol::wire::exchange::{self, Request, Response};
use staffpass_protocol::{AgreementId, ConsentId, MessageId, NodeId, OrgId, Signed, Timestamp, encoding};
use tracing::{info, warn};

use super::records::*;
use super::{Error, Exchange, decode, event};
use crate::audit::Action;
use crate::metrics::ExchangeLabels;
use crate::store::{Batch, Tree, record_keys};

/// The store's metadata key recording that its records are sealed under
/// per-record keys (so the record-keys file must exist if any record does).
pub const RECORD_KEYS_V1: &[u8] = b"exchange/record-keys-v1";

impl Exchange {
    /// Handles one exchange request from the node `sender`; `None` only if
    /// the request could not be answered at all (storage failure): the
    /// sender retries. Idempotent by message id: a replay gets the stored
    /// receipt back. It commits, so its async callers run it through
    /// [`crate::task::blocking`] (offers arriving together then share one
    /// group commit).
    pub fn receive(&self, sender: &NodeId, request: Request) -> Option<Response> {
        let id = request.id();
        let kind = request.kind();
        // One message at a time per consent and per credential: an offer
        // racing a withdrawal or revocation of the same record ends the
        // same way in every interleaving (checked and committed under it).
        // A revocation rewrites every passport of its credential, whatever
        // its consent (found by a scan), so it holds every stripe: it is
        // rare, and an offer of a successor under one of those consents
        // must not be overwritten by the record it read before (found by
        // the docker crash torture).
        let _held = match &request {
            Request::Offer { bundle, .. } | Request::PresentedOffer { bundle, .. } => {
                self.lock_records(&[bundle.consent.consent().id.as_bytes(), bundle.credential.body.id.as_bytes()])
            }
            Request::Withdraw { withdrawal, .. } => self.lock_records(&[withdrawal.body.consent.as_bytes()]),
            Request::Revoke { .. } => self.lock_all_records(),
        };
        // Replay: answer with the stored receipt.
        match self.0.store.get(Tree::Inbox, id.as_bytes()) {
            Ok(Some(bytes)) => {
                return encoding::from_bytes::<Response>(&bytes, exchange::MAX_RESPONSE, "stored receipt").ok();
            }
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "inbox lookup failed; not answering so the sender retries");
                return None;
            }
        }
        let at = self.now();
        let result = match request {
            Request::Offer { id, bundle } => self.on_offer(id, &bundle, None, sender, at),
            Request::PresentedOffer { id, bundle, presentation } => {
                self.on_offer(id, &bundle, Some(presentation), sender, at)
            }
            Request::Withdraw { id, withdrawal } => self.on_withdraw(id, &withdrawal, sender, at),
            Request::Revoke { id, revocation } => self.on_revoke(id, &revocation, sender, at),
        };
        match result {
            Ok(resp) => {
                let outcome = resp.receipt.body.outcome.label();
                self.0
                    .metrics
                    .exchange_messages
                    .get_or_create(&ExchangeLabels { direction: "in".into(), kind: kind.as_str().into(), outcome })
                    .inc();
                Some(resp)
            }
            Err(e) => {
                warn!(%sender, message = %id, error = %e, "exchange message not processed; the sender will retry");
                None
            }
        }
    }

    /// Locks the stripes of `ids`, in stripe order (so two messages never
    /// wait on each other).
    pub(super) fn lock_records(&self, ids: &[&[u8]]) -> Vec<std::sync::MutexGuard<'_, ()>> {
        let n = self.0.receive_locks.len();
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let h = staffpass_protocol::Hash::of(id);
                usize::from(u16::from_be_bytes([h.0[0], h.0[1]])) % n
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|i| self.0.receive_locks[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .collect()
    }

    /// Locks every stripe, in order.
    fn lock_all_records(&self) -> Vec<std::sync::MutexGuard<'_, ()>> {
        self.0.receive_locks.iter().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).collect()
    }

    fn receipt(&self, message: MessageId, outcome: Outcome, at: Timestamp) -> Response {
        let body = Receipt { message, receiver: self.0.org.clone(), outcome, at, issuer_key: self.0.issuer.public() };
        Response { receipt: Signed::new(body, |b| self.0.issuer.sign(b)) }
    }

    /// Stores the inbox entry for `message` with `batch` and its audit
    /// event in one commit, then returns the receipt (sent only after this
    /// is durable).
    fn commit_with_receipt(
        &self,
        mut batch: Batch,
        events: Vec<crate::audit::Event>,
        response: Response,
        at: Timestamp,
    ) -> Result<Response, Error> {
        let message = response.receipt.body.message;
        batch.put(Tree::Inbox, message.as_bytes().to_vec(), response.encode());
        batch.put(Tree::Index, inbox_index_key(at, &message), Vec::new());
        self.0.audit.commit(batch, events, at)?;
        Ok(response)
    }

    /// Forgets the stored receipts of messages handled more than
    /// `exchange.inbox_keep_days` ago (a sender retries for far less; a
    /// replay older than that is handled afresh, and every handler refuses
    /// what it already did). Returns how many were forgotten.
    pub fn prune_inbox(&self) -> Result<usize, Error> {
        let cutoff = self.now().plus_days(-i64::from(self.0.settings.inbox_keep_days));
        let end = inbox_index_key(cutoff, &MessageId::from_bytes([0; 16]));
        let mut batch = Batch::default();
        let mut n = 0;
        for (k, _) in self.0.store.range_from(Tree::Index, INBOX_INDEX, 10_000)? {
            if !k.starts_with(INBOX_INDEX) || k >= end {
                break;
            }
            if let Some(id) = k.get(INBOX_INDEX.len() + 8..) {
                batch.delete(Tree::Inbox, id.to_vec());
            }
            batch.delete(Tree::Index, k);
            n += 1;
        }
        if n > 0 {
            self.0.store.commit(batch)?;
        }
        Ok(n)
    }

    /// Refuses an offer whose credential is revoked and marks the older
    /// passport held under its consent revoked, in one commit (with
    /// `batch`: the supersession marker).
    fn reject_superseded(
        &self,
        id: MessageId,
        mut held: ReceivedRecord,
        reason: RevocationReason,
        sender: &NodeId,
        at: Timestamp,
        mut batch: Batch,
    ) -> Result<Response, Error> {
        let consent = held.passport.consent;
        let key = received_key(&consent);
        held.state = ReceivedState::Revoked { reason, at };
        batch.put(Tree::Received, key.clone(), self.seal_received(&key, &held)?);
        let mut marked = event(&format!("peer:{sender}"), Action::Revocation);
        marked.staff = Some(held.passport.subject.clone());
        marked.org = Some(held.passport.issuer.clone());
        marked.object = Some(format!("{consent}/{}", held.passport.credential));
        marked.reason = Some(format!("{reason}:superseded-by-revoked"));
        let rejection = Rejection::CredentialRevoked;
        info!(message = %id, reason = rejection.code(), "exchange message rejected; the passport it supersedes is revoked");
        let mut ev = event("peer", Action::Rejection);
        ev.org = Some(held.passport.issuer.clone());
        ev.object = Some(format!("{consent}/{id}"));
        ev.reason = Some(rejection.code().to_string());
        let resp = self.receipt(id, Outcome::Rejected { reason: rejection }, at);
        self.commit_with_receipt(batch, vec![marked, ev], resp, at)
    }

    fn reject(
        &self,
        id: MessageId,
        reason: Rejection,
        from: Option<OrgId>,
        object: String,
        at: Timestamp,
    ) -> Result<Response, Error> {
        self.reject_with(Batch::default(), id, reason, from, object, at)
    }

    /// [`Exchange::reject`], committing `batch` with the rejection.
    fn reject_with(
        &self,
        batch: Batch,
        id: MessageId,
        reason: Rejection,
        from: Option<OrgId>,
        object: String,
        at: Timestamp,
    ) -> Result<Response, Error> {
        info!(message = %id, reason = reason.code(), "exchange message rejected");
        let mut ev = event("peer", Action::Rejection);
        ev.org = from;
        ev.object = Some(object);
        ev.reason = Some(reason.code().to_string());
        let resp = self.receipt(id, Outcome::Rejected { reason }, at);
        self.commit_with_receipt(batch, vec![ev], resp, at)
    }

    fn on_offer(
        &self,
        id: MessageId,
        bundle: &staffpass_protocol::Bundle,
        presentation: Option<String>,
        sender: &NodeId,
        at: Timestamp,
    ) -> Result<Response, Error> {
        let consent = bundle.consent.consent();
        let cred_id = bundle.credential.body.id;
        let mut status = Revocations::default();
        if let Some(v) = self.0.store.get(Tree::Received, &revoked_key(&bundle.credential.body.issuer, &cred_id))? {
            status.credentials.insert(cred_id, decode::<RevocationReason>(&v, "revocation")?);
        }
        if self.0.store.get(Tree::Received, &withdrawn_key(&consent.home, &consent.id))?.is_some() {
            status.consents.insert(consent.id);
        }
        let superseded = superseded_key(&consent.home, &consent.id);
        let refused_after = match self.0.store.get(Tree::Received, &superseded)? {
            Some(v) => Some(decode::<Timestamp>(&v, "supersession marker")?),
            None => None,
        };
        let current = self.passport(&consent.id)?;
        let held = self.held_from(&consent.id, current.as_ref())?;
        let verdict = {
            let chains = self.0.rosters.read();
            verify_bundle(bundle, sender, &self.0.org, &*chains, &status, at)
                .and_then(|p| {
                    // Never replace another member's passport under the same consent id.
                    check_held_by(held.as_ref().map(HeldRecord::as_held), &p.issuer).map(|()| p)
                })
                .and_then(|p| match &presentation {
                    // Its standard-form copy must say what the bundle says.
                    Some(vc) => check_presentation(vc, &p, &*chains, at).map(|()| p),
                    None => Ok(p),
                })
        };
        let passport = match verdict {
            Ok(p) => p,
            Err(Rejection::CredentialRevoked) => {
                // The issuer's own credential for this consent (its
                // signatures checked) is revoked: the revocation overtook
                // the offer that carried it. Every credential issued before
                // it under this consent is superseded by a revoked one: the
                // marker refuses a late offer of one, and an older passport
                // held is revoked too.
                let issued = bundle.credential.body.issued_at;
                let mut batch = Batch::default();
                if refused_after.is_none_or(|t| t < issued) {
                    batch.put(Tree::Received, superseded, encoding::to_bytes(&issued));
                }
                if let Some(held) = current.filter(|h| superseded_by(h, &bundle.credential.body)) {
                    let reason = status.credentials.get(&cred_id).copied().unwrap_or(RevocationReason::ProvidedInError);
                    return self.reject_superseded(id, held, reason, sender, at, batch);
                }
                let object = format!("{}/{}", consent.id, id);
                let from = Some(bundle.credential.body.issuer.clone());
                return self.reject_with(batch, id, Rejection::CredentialRevoked, from, object, at);
            }
            Err(reason) => {
                return self.reject(
                    id,
                    reason,
                    Some(bundle.credential.body.issuer.clone()),
                    format!("{}/{}", consent.id, id),
                    at,
                );
            }
        };
        let claims = passport.claims.iter().map(Claim::kind).collect();
        let key = received_key(&consent.id);
        // A passport is replaced only by a newer credential: a late retry
        // of an older offer is acknowledged, and the newer one kept.
        if let Some(held) = &current
            && held.passport.credential != passport.credential
            && held.passport.issued_at > passport.issued_at
        {
            let mut ev = event(&format!("peer:{sender}"), Action::Receipt);
            ev.staff = Some(consent.subject.clone());
            ev.org = Some(consent.home.clone());
            ev.object = Some(format!("{}/{}/{}", consent.id, cred_id, id));
            ev.reason = Some("older-than-held".into());
            let resp = self.receipt(id, Outcome::Received { consent: consent.id, credential: cred_id, claims }, at);
            return self.commit_with_receipt(Batch::default(), vec![ev], resp, at);
        }
        // Issued no later than a credential of this consent refused as
        // revoked: superseded by a revoked credential, refused as such.
        if refused_after.is_some_and(|t| passport.issued_at <= t) {
            let object = format!("{}/{}", consent.id, id);
            let from = Some(bundle.credential.body.issuer.clone());
            return self.reject(id, Rejection::CredentialRevoked, from, object, at);
        }
        let record = ReceivedRecord {
            passport,
            sender: sender.clone(),
            received_at: at,
            message: id,
            state: ReceivedState::Active,
            presentation,
        };
        let mut batch = Batch::default();
        batch.put(Tree::Received, key.clone(), self.seal_received(&key, &record)?);
        let mut ev = event(&format!("peer:{sender}"), Action::Receipt);
        ev.staff = Some(consent.subject.clone());
        ev.org = Some(consent.home.clone());
        ev.object = Some(format!("{}/{}/{}", consent.id, cred_id, id));
        let resp = self.receipt(id, Outcome::Received { consent: consent.id, credential: cred_id, claims }, at);
        let resp = self.commit_with_receipt(batch, vec![ev], resp, at)?;
        info!(message = %id, consent = %consent.id, from = %consent.home, "passport received and stored");
        Ok(resp)
    }

    /// A received passport's value, sealed under its own key.
    fn seal_received(&self, key: &[u8], rec: &ReceivedRecord) -> Result<Vec<u8>, Error> {
        Ok(record_keys::seal_record(&self.0.record_keys, Tree::Received, key, &encoding::to_bytes(rec))?)
    }

    /// A received passport, opened with its own key.
    pub(super) fn open_received(&self, key: &[u8], v: &[u8]) -> Result<ReceivedRecord, Error> {
        let plain = record_keys::open_record(&self.0.record_keys, Tree::Received, key, v)?;
        // Stored by an earlier version (no standard-form copy), or now.
        decode::<ReceivedRecord>(&plain, "received passport")
            .or_else(|e| decode::<ReceivedRecordV1>(&plain, "received passport").map(Into::into).map_err(|_| e))
    }

    /// Destroys an erased passport's key, once its erasure is committed:
    /// what sled's log still holds of it can then be opened by no one. A
    /// failure here is caught up at the next start
    /// ([`Exchange::shred_orphaned_keys`]).
    fn shred(&self, consent: &ConsentId) {
        if let Err(e) = self.0.record_keys.destroy(&received_key(consent)) {
            warn!(consent = %consent, error = %e, "an erased passport's key could not be destroyed yet");
        }
    }

    /// Seals under per-record keys what an earlier version kept under the
    /// data key alone (staff records, credentials, waiting offers, received
    /// passports): once, in one commit, recorded in the store's metadata.
    /// Returns how many values were sealed.
    pub fn seal_legacy_records(&self) -> Result<usize, Error> {
        const DONE: &[u8] = RECORD_KEYS_V1;
        if self.0.store.get(Tree::Meta, DONE)?.is_some() {
            return Ok(0);
        }
        let mut batch = Batch::default();
        let mut n = 0;
        let staff = self.0.store.scan_prefix(Tree::Staff, b"")?;
        let ids: Vec<Vec<u8>> =
            staff.iter().filter_map(|(k, _)| staff_ref_of_key(k)).map(|r| staff_key_id(&r)).collect();
        self.0.record_keys.ensure(ids.iter().map(Vec::as_slice))?;
        for (k, v) in staff {
            let Some(r) = staff_ref_of_key(&k) else { continue };
            if self.open_staff(&r, &v).is_err()
                && let Ok(rec) = decode::<super::StaffRecord>(&v, "staff record")
            {
                batch.put(Tree::Staff, k, self.seal_staff(&rec)?);
                n += 1;
            }
        }
        for (k, v) in self.0.store.scan_prefix(Tree::Credentials, b"c/")? {
            if decode::<OfStaff>(&v, "credential").is_err()
                && let Ok(rec) = decode::<CredentialRecord>(&v, "credential")
            {
                batch.put(Tree::Credentials, k, self.seal_credential(&rec)?);
                n += 1;
            }
        }
        for due in self.outbox_items()? {
            if due.item.kind == OutKind::Offer
                && self.outbox_request(&due.item).is_err()
                && Request::decode(&due.item.request).is_ok()
            {
                let mut item = due.item.clone();
                item.request = self.seal_for(&item.staff, Tree::Outbox, item.id.as_bytes(), &item.request)?;
                batch.put(Tree::Outbox, due.key, encoding::to_bytes(&item));
                n += 1;
            }
        }
        for (k, v) in self.0.store.scan_prefix(Tree::Received, b"p/")? {
            if self.open_received(&k, &v).is_err()
                && let Ok(rec) = decode::<ReceivedRecord>(&v, "received passport")
            {
                let sealed = self.seal_received(&k, &rec)?;
                batch.put(Tree::Received, k, sealed);
                n += 1;
            }
        }
        batch.put(Tree::Meta, DONE.to_vec(), b"1".to_vec());
        self.0.store.commit(batch)?;
        if n > 0 {
            info!(values = n, "records of an earlier version sealed under per-record keys");
        }
        Ok(n)
    }

    /// Destroys every record key whose passport is no longer held (erased
    /// just before a crash). Returns how many. Refuses (the key file is
    /// damaged) when a record still held has no key: the file was cut
    /// short or replaced by an older copy, and starting would leave those
    /// records unreadable, as if erased.
    pub fn shred_orphaned_keys(&self) -> Result<usize, Error> {
        let mut live: std::collections::HashSet<Vec<u8>> =
            self.0.store.scan_prefix(Tree::Received, b"p/")?.into_iter().map(|(k, _)| k).collect();
        // And at the home: the key of every member of staff still held.
        for (k, _) in self.0.store.scan_prefix(Tree::Staff, b"")? {
            if let Some(r) = staff_ref_of_key(&k) {
                live.insert(staff_key_id(&r));
            }
        }
        let missing = live.iter().filter(|id| !self.0.record_keys.holds(id)).count();
        if missing > 0 {
            let path = self.0.record_keys.path().map(Path::to_path_buf).unwrap_or_else(|| record_keys::FILE.into());
            return Err(crate::store::Error::Corrupt {
                path,
                detail: format!(
                    "the record-keys file lacks the keys of {missing} records the store holds (cut short, or an older copy): restore it from the key backup"
                ),
            }
            .into());
        }
        Ok(self.0.record_keys.retain(|id| live.contains(id))?)
    }

    /// What is held under `consent`: the passport or its tombstone.
    fn held(&self, consent: &ConsentId) -> Result<Option<HeldRecord>, Error> {
        let passport = self.passport(consent)?;
        self.held_from(consent, passport.as_ref())
    }

    /// The passport held under `consent`, opened.
    fn passport(&self, consent: &ConsentId) -> Result<Option<ReceivedRecord>, Error> {
        let key = received_key(consent);
        self.0.store.get(Tree::Received, &key)?.map(|v| self.open_received(&key, &v)).transpose()
    }

    /// What is held under `consent`, given its passport (already read).
    fn held_from(&self, consent: &ConsentId, passport: Option<&ReceivedRecord>) -> Result<Option<HeldRecord>, Error> {
        if let Some(rec) = passport {
            return Ok(Some(HeldRecord {
                issuer: rec.passport.issuer.clone(),
                agreement: Some(rec.passport.agreement.clone()),
            }));
        }
        if let Some(v) = self.0.store.get(Tree::Received, &erased_key(consent))? {
            let tomb: ErasedRecord = decode(&v, "erasure record")?;
            return Ok(Some(HeldRecord { issuer: tomb.issuer, agreement: None }));
        }
        Ok(None)
    }

    fn on_withdraw(
        &self,
        id: MessageId,
        w: &Signed<Withdrawal>,
        sender: &NodeId,
        at: Timestamp,
    ) -> Result<Response, Error> {
        let b = &w.body;
        let object = format!("{}/{}", b.consent, id);
        let held = self.held(&b.consent)?;
        let verdict = {
            let chains = self.0.rosters.read();
            verify_withdrawal(w, sender, &self.0.org, held.as_ref().map(HeldRecord::as_held), &*chains, at)
        };
        if let Err(r) = verdict {
            return self.reject(id, r, Some(b.home.clone()), object, at);
        }
        let mut batch = Batch::default();
        batch.put(Tree::Received, withdrawn_key(&b.home, &b.consent), b.withdrawn_at.unix().to_be_bytes().to_vec());
        // The withdrawal marker refuses every later offer: the supersession
        // marker has nothing left to do.
        batch.delete(Tree::Received, superseded_key(&b.home, &b.consent));
        self.erase_into(&mut batch, &b.consent, "withdrawn", at)?;
        let mut ev = event(&format!("peer:{sender}"), Action::Erasure);
        ev.staff = Some(b.subject.clone());
        ev.org = Some(b.home.clone());
        ev.object = Some(object);
        let standing = held.as_ref().and_then(|h| h.agreement.as_ref()).and_then(|a| self.own_exception(a));
        ev.reason = Some(standing.map_or_else(|| "withdrawn".into(), |s| format!("withdrawn:{s}")));
        let resp = self.receipt(id, Outcome::Erased { consent: b.consent }, at);
        let resp = self.commit_with_receipt(batch, vec![ev], resp, at)?;
        self.shred(&b.consent);
        info!(message = %id, consent = %b.consent, "consent withdrawn; passport erased");
        self.warn_of_copies(&b.consent);
        Ok(resp)
    }

    /// This trust's standing in `agreement` when it is not active: the
    /// reason an erasure or revocation received under the gate's exception
    /// is audited with.
    fn own_exception(&self, agreement: &AgreementId) -> Option<&'static str> {
        match self.0.rosters.status_of(agreement, &self.0.org)? {
            MemberStatus::Active => None,
            MemberStatus::Suspended => Some("while-suspended"),
            MemberStatus::Removed => Some("while-removed"),
        }
    }

    /// Replaces a received passport by a tombstone holding ids only.
    fn erase_into(&self, batch: &mut Batch, consent: &ConsentId, why: &str, at: Timestamp) -> Result<bool, Error> {
        let key = received_key(consent);
        let Some(v) = self.0.store.get(Tree::Received, &key)? else { return Ok(false) };
        let rec = self.open_received(&key, &v)?;
        let tomb = ErasedRecord {
            consent: *consent,
            credential: rec.passport.credential,
            issuer: rec.passport.issuer.clone(),
            erased_at: at,
            why: why.to_string(),
        };
        batch.delete(Tree::Received, received_key(consent));
        batch.delete(Tree::Received, superseded_key(&rec.passport.issuer, consent));
        batch.put(Tree::Received, erased_key(consent), encoding::to_bytes(&tomb));
        Ok(true)
    }

    fn on_revoke(
        &self,
        id: MessageId,
        r: &Signed<Revocation>,
        sender: &NodeId,
        at: Timestamp,
    ) -> Result<Response, Error> {
        let b = &r.body;
        let object = format!("{}/{}", b.credential, id);
        // The issuer's own passports of this credential, each judged in the
        // roster of the agreement it came under.
        let mut covered = Vec::new();
        for (k, v) in self.0.store.scan_prefix(Tree::Received, b"p/")? {
            let rec = self.open_received(&k, &v)?;
            if b.covers(&rec.passport.issuer, &rec.passport.credential) {
                covered.push((k, rec));
            }
        }
        let verdict = {
            let chains = self.0.rosters.read();
            if covered.is_empty() {
                verify_revocation(r, sender, None, &*chains, at).map(|_| Vec::new())
            } else {
                let mut refusal = None;
                let mut marked = Vec::new();
                for (k, rec) in covered {
                    let held = Held { issuer: &rec.passport.issuer, agreement: Some(&rec.passport.agreement) };
                    match verify_revocation(r, sender, Some(held), &*chains, at) {
                        Ok(_) => marked.push((k, rec)),
                        Err(e) => {
                            refusal.get_or_insert(e);
                        }
                    }
                }
                match refusal {
                    Some(e) if marked.is_empty() => Err(e),
                    _ => Ok(marked),
                }
            }
        };
        let marked = match verdict {
            Ok(m) => m,
            Err(rej) => return self.reject(id, rej, Some(b.issuer.clone()), object, at),
        };
        let mut batch = Batch::default();
        batch.put(Tree::Received, revoked_key(&b.issuer, &b.credential), encoding::to_bytes(&b.reason));
        let mut events = Vec::new();
        for (k, mut rec) in marked {
            rec.state = ReceivedState::Revoked { reason: b.reason, at };
            let sealed = self.seal_received(&k, &rec)?;
            batch.put(Tree::Received, k, sealed);
            let mut ev = event(&format!("peer:{sender}"), Action::Revocation);
            ev.staff = Some(rec.passport.subject.clone());
            ev.org = Some(b.issuer.clone());
            ev.object = Some(format!("{}/{}", rec.passport.consent, b.credential));
            ev.reason = Some(match self.own_exception(&rec.passport.agreement) {
                Some(s) => format!("{}:{s}", b.reason),
                None => b.reason.to_string(),
            });
            events.push(ev);
        }
        if events.is_empty() {
            let mut ev = event(&format!("peer:{sender}"), Action::Revocation);
            ev.org = Some(b.issuer.clone());
            ev.object = Some(object);
            ev.reason = Some(b.reason.to_string());
            events.push(ev);
        }
        let resp = self.receipt(id, Outcome::RevocationAcknowledged { credential: b.credential }, at);
        let resp = self.commit_with_receipt(batch, events, resp, at)?;
        info!(message = %id, credential = %b.credential, reason = %b.reason, "credential revoked by its issuer");
        Ok(resp)
    }

    /// Erases every received passport whose consent window has ended.
    /// Returns how many were erased.
    pub fn sweep_expired(&self) -> Result<usize, Error> {
        let at = self.now();
        let mut n = 0;
        for (k, v) in self.0.store.scan_prefix(Tree::Received, b"p/")? {
            let consent = self.open_received(&k, &v)?.passport.consent;
            // Judged, erased and shredded under the consent's lock, from the
            // record as it is now: an offer may have replaced the one the
            // scan read by a newer passport, which must be neither erased
            // nor left without its key.
            let _held = self.lock_records(&[consent.as_bytes()]);
            let Some(rec) = self.passport(&consent)? else { continue };
            let kept_until = rec.received_at.plus_days(i64::from(self.0.settings.max_keep_days));
            let why = if rec.passport.not_after <= at {
                "expired"
            } else if kept_until <= at {
                "kept-too-long"
            } else {
                continue;
            };
            let mut batch = Batch::default();
            if self.erase_into(&mut batch, &rec.passport.consent, why, at)? {
                let mut ev = event("system", Action::Expiry);
                ev.staff = Some(rec.passport.subject.clone());
                ev.org = Some(rec.passport.issuer.clone());
                ev.object = Some(rec.passport.consent.to_string());
                self.0.audit.commit(batch, vec![ev], at)?;
                self.shred(&rec.passport.consent);
                n += 1;
                info!(consent = %rec.passport.consent, "consent window ended; passport erased");
                self.warn_of_copies(&rec.passport.consent);
            }
        }
        Ok(n)
    }

    /// Received passports, as an HR officer at the host trust sees them.
    pub fn received(&self) -> Result<Vec<ReceivedView>, Error> {
        let today = self.now().date();
        let mut out = Vec::new();
        for (k, v) in self.0.store.scan_prefix(Tree::Received, b"p/")? {
            let r = self.open_received(&k, &v)?;
            out.push(view_of(&r, today, false, self.export_views(&r.passport.consent)?));
        }
        for (_, v) in self.0.store.scan_prefix(Tree::Received, b"e/")? {
            let e: ErasedRecord = decode(&v, "erasure record")?;
            out.push(erased_view(&e, self.export_views(&e.consent)?));
        }
        Ok(out)
    }

    /// One received passport, with claim values.
    pub fn received_one(&self, consent: &ConsentId) -> Result<ReceivedView, Error> {
        let key = received_key(consent);
        if let Some(v) = self.0.store.get(Tree::Received, &key)? {
            return Ok(view_of(&self.open_received(&key, &v)?, self.now().date(), true, self.export_views(consent)?));
        }
        if let Some(v) = self.0.store.get(Tree::Received, &erased_key(consent))? {
            return Ok(erased_view(&decode(&v, "erasure record")?, self.export_views(consent)?));
        }
        Err(Error::NoReceived(*consent))
    }

    /// After an erasure: warns if copies of the passport were exported
    /// (they are outside the node's reach; the host must remove them).
    fn warn_of_copies(&self, consent: &ConsentId) {
        match self.export_marks(consent) {
            Ok(marks) if !marks.is_empty() => {
                let formats: Vec<&str> = marks.iter().map(|m| m.format.as_str()).collect();
                warn!(consent = %consent, copies = marks.len(), formats = %formats.join(","), "an erased passport had been exported: remove those copies (staffpass-admin received show)");
            }
            Ok(_) => {}
            Err(e) => warn!(consent = %consent, error = %e, "cannot read the exports of an erased passport"),
        }
    }

    /// The exports made of a received passport, as the API shows them.
    fn export_views(&self, consent: &ConsentId) -> Result<Vec<ReceivedExport>, Error> {
        Ok(self.export_marks(consent)?.into_iter().map(|m| ReceivedExport { format: m.format, at: m.at }).collect())
    }
}

pub use staffpass_api::received::{ClaimView, ReceivedExport, ReceivedView};

/// A received passport as the API shows it; claim values only if `values`.
fn view_of(
    r: &ReceivedRecord,
    today: staffpass_protocol::Date,
    values: bool,
    exports: Vec<ReceivedExport>,
) -> ReceivedView {
    let (status, reason) = match &r.state {
        ReceivedState::Active => ("active".to_string(), None),
        ReceivedState::Revoked { reason, .. } => ("revoked".to_string(), Some(reason.to_string())),
    };
    let p = &r.passport;
    ReceivedView {
        consent: p.consent,
        credential: p.credential,
        issuer: p.issuer.clone(),
        subject: Some(p.subject.clone()),
        agreement: Some(p.agreement.clone()),
        move_kind: Some(p.move_kind),
        status,
        reason,
        received_at: Some(r.received_at),
        not_after: Some(p.not_after),
        expires_at: Some(p.expires_at),
        claims: p
            .claims
            .iter()
            .map(|c| ClaimView {
                claim: c.kind().to_string(),
                validity: c.validity(today),
                value: values.then(|| c.clone()),
            })
            .collect(),
        exports,
    }
}

/// What the API shows of an erased passport: ids and the cause.
fn erased_view(e: &ErasedRecord, exports: Vec<ReceivedExport>) -> ReceivedView {
    ReceivedView {
        consent: e.consent,
        credential: e.credential,
        issuer: e.issuer.clone(),
        subject: None,
        agreement: None,
        move_kind: None,
        status: "erased".into(),
        reason: Some(e.why.clone()),
        received_at: None,
        not_after: None,
        expires_at: None,
        claims: Vec::new(),
        exports,
    }
}

/// A held record's issuer and agreement, read from the store.
struct HeldRecord {
    issuer: OrgId,
    agreement: Option<AgreementId>,
}

impl HeldRecord {
    fn as_held(&self) -> Held<'_> {
        Held { issuer: &self.issuer, agreement: self.agreement.as_ref() }
    }
}

/// The index of stored receipts by time: `inbox/<unix seconds, big-endian><message id>`.
const INBOX_INDEX: &[u8] = b"inbox/";

fn inbox_index_key(at: Timestamp, id: &MessageId) -> Vec<u8> {
    let mut k = INBOX_INDEX.to_vec();
    k.extend_from_slice(&at.unix().max(0).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Whether `held` is an active passport that the issuer's credential
/// `newer`, offered under the same consent, supersedes: same issuer and
/// subject, another credential, issued no earlier.
fn superseded_by(held: &ReceivedRecord, newer: &staffpass_protocol::credential::Credential) -> bool {
    matches!(held.state, ReceivedState::Active)
        && held.passport.issuer == newer.issuer
        && held.passport.subject == newer.subject
        && held.passport.credential != newer.id
        && held.passport.issued_at <= newer.issued_at
}
