//! The exchange service: staff records, issuing credentials, consents, the
//! durable outbox, receiving and verifying bundles, withdrawal, expiry,
//! revocation and updates.
//!
//! [`Exchange`] is synchronous and owns no runtime, no network types and no
//! clock of its own: the store, the audit log, the rosters and a
//! [`Clock`] are handed to it ([`Parts`]). Its async callers reach it
//! through [`crate::task::blocking`]; the outbox and the expiry sweep are
//! small workers ([`outbox_worker`], [`sweep_worker`]) over a
//! [`Transport`]. Whether a bundle, a receipt, a withdrawal or a
//! revocation is acceptable is decided by `staffpass_protocol`; this
//! service only calls those rules and keeps what they accept.
//!
//! Each change is an atomic store commit together with its audit entry
//! (a consent that needs a fresh credential commits the credential first).
//! A receipt is signed and sent only after the data it acknowledges is
//! durable. Messages that must arrive go through the outbox (written in the
//! same commit as the change that caused them) and are retried until a
//! signed receipt comes back; receivers are idempotent by message id.

pub mod export;
pub mod outbox;
pub mod outbox_worker;
pub mod receive;
pub mod records;
pub mod retention;
pub mod staff;
pub mod status;
pub mod sweep_worker;
pub mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::RngExt;
use staffpass_protocol::bundle::{self, Rejection, check_terms};
use staffpass_protocol::claims::{Claim, ClaimKind};
use staffpass_protocol::consent::{Consent, STAFF_KEY_CHANGE_WINDOW_SECS, SignedConsent, StaffKeyChange, Withdrawal};
use staffpass_protocol::credential::{self, Disclosure, Issue};
use staffpass_protocol::revocation::{Revocation, RevocationReason};
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::wire::exchange;
use staffpass_protocol::{
    AgreementId, Bundle, ConsentId, CredentialId, IssuerPublicKey, IssuerSecretKey, MessageId, OrgId, Signature,
    Signed, StaffPublicKey, StaffRef, Timestamp, encoding,
};
use tokio::sync::{Notify, watch};

use crate::audit::{self, Action, Audit};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::rosters::Rosters;
use crate::store::{self, Batch, RecordKeys, Store, Tree, record_keys};
use records::*;
pub use staff::{ImportReport, StaffInput, StaffRecord};
pub use transport::Transport;

/// Settings of the exchange service (the `[exchange]` section of the config).
pub use crate::config::Exchange as Settings;

/// What the exchange service is built from.
pub struct Parts {
    /// This trust.
    pub org: OrgId,
    /// Its current issuer key.
    pub issuer: IssuerSecretKey,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The audit log (over the same store).
    pub audit: Arc<Audit>,
    /// The agreements this node holds.
    pub rosters: Arc<Rosters>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Credential validity and outbox retry settings.
    pub settings: Settings,
    /// Key of the keyed hash that turns assignment numbers into staff references.
    pub staff_ref_key: [u8; 32],
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Per-record keys (each received passport's), for crypto-shredding.
    pub record_keys: Arc<RecordKeys>,
}

/// The exchange service: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Exchange(Arc<Inner>);

struct Inner {
    org: OrgId,
    issuer: IssuerSecretKey,
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    rosters: Arc<Rosters>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    staff_ref_key: [u8; 32],
    metrics: Arc<Metrics>,
    record_keys: Arc<RecordKeys>,
    /// Serialises what the receive path does to one consent or credential
    /// (an offer racing a withdrawal or a revocation of the same record):
    /// each message holds the stripes of the ids it touches.
    receive_locks: Vec<std::sync::Mutex<()>>,
    /// Serialises every read-change-write of the home's consent records
    /// and outbox items: the outbox worker's receipts and retries against
    /// HR's withdrawals, updates, revocations and erasures (found by the
    /// crash torture: a withdrawal committed between a receipt's read and
    /// write was undone).
    home_lock: std::sync::Mutex<()>,
    /// Wakes the outbox worker after a commit that queued a message.
    outbox_wake: Notify,
    /// How many receipts this node has stored for its outgoing messages;
    /// observers (benchmarks, tests) wait on it instead of polling.
    receipts_stored: watch::Sender<u64>,
}

/// Why a flow operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such staff record.
    #[error("no staff record {0}")]
    NoStaff(StaffRef),
    /// No such credential.
    #[error("no credential {0}")]
    NoCredential(CredentialId),
    /// No such consent.
    #[error("no consent {0}")]
    NoConsent(ConsentId),
    /// No such received passport.
    #[error("no received passport under consent {0}")]
    NoReceived(ConsentId),
    /// The agreement's terms do not allow this exchange now (the roster
    /// is missing, halted or stale, an organisation is not an active
    /// member, the move is not covered or a claim not accepted).
    #[error("agreement {agreement} does not allow this consent: {reason}")]
    Terms {
        /// The agreement.
        agreement: AgreementId,
        /// Which rule refused it.
        reason: Rejection,
    },
    /// The staff member has no such claim on record.
    #[error("the staff record has no {0} to share")]
    ClaimNotHeld(ClaimKind),
    /// Bad request values.
    #[error("{0}")]
    Invalid(String),
    /// The operation does not fit the current state.
    #[error("{0}")]
    Conflict(String),
    /// A signature does not verify.
    #[error("the staff signature does not verify over this consent")]
    BadStaffSignature,
    /// Storage.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Audit log.
    #[error(transparent)]
    Audit(#[from] audit::Error),
    /// Stored data could not be decoded.
    #[error("stored {what} cannot be decoded: {source}")]
    Corrupt {
        /// What.
        what: &'static str,
        /// Why.
        source: encoding::Error,
    },
    /// The blocking task doing the work did not finish (it panicked or the
    /// runtime is shutting down); nothing after it was acted on.
    #[error(transparent)]
    Interrupted(#[from] crate::task::Interrupted),
}

/// Staff records whose claims changed, with the kinds that changed.
type ChangedClaims = Vec<(StaffRef, BTreeSet<ClaimKind>)>;

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NoStaff(_) | Error::NoCredential(_) | Error::NoConsent(_) | Error::NoReceived(_) => "not-found",
            Error::Terms { reason, .. } => match reason {
                Rejection::IssuerNotMember
                | Rejection::IssuerSuspended
                | Rejection::ReceiverNotMember
                | Rejection::ReceiverSuspended => "not-active-member",
                r => r.code(),
            },
            Error::ClaimNotHeld(_) => "claim-not-held",
            Error::Invalid(_) => "invalid",
            Error::Conflict(_) => "conflict",
            Error::BadStaffSignature => "bad-staff-signature",
            Error::Store(_) | Error::Audit(_) | Error::Corrupt { .. } => "storage",
            Error::Interrupted(_) => "interrupted",
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, Error> {
    encoding::from_bytes(bytes, usize::MAX, what).map_err(|source| Error::Corrupt { what, source })
}

fn event(actor: &str, action: Action) -> audit::Event {
    audit::Event { actor: actor.to_string(), action, staff: None, org: None, object: None, reason: None }
}

/// A fresh random message id.
pub(super) fn message_id() -> MessageId {
    MessageId::random(&mut rand::rng())
}

impl Exchange {
    /// Builds the service from its parts.
    pub fn new(parts: Parts) -> Self {
        let Parts { org, issuer, store, audit, rosters, clock, settings, staff_ref_key, metrics, record_keys } = parts;
        Exchange(Arc::new(Inner {
            org,
            issuer,
            store,
            audit,
            rosters,
            clock,
            settings,
            staff_ref_key,
            metrics,
            record_keys,
            receive_locks: (0..RECEIVE_STRIPES).map(|_| std::sync::Mutex::new(())).collect(),
            home_lock: std::sync::Mutex::new(()),
            outbox_wake: Notify::new(),
            receipts_stored: watch::Sender::new(0),
        }))
    }

    /// Holds the home's consent and outbox lock (see `Inner::home_lock`).
    pub(super) fn lock_home(&self) -> std::sync::MutexGuard<'_, ()> {
        self.0.home_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This trust.
    pub fn org(&self) -> &OrgId {
        &self.0.org
    }

    /// The public half of the current issuer key.
    pub fn issuer_key(&self) -> IssuerPublicKey {
        self.0.issuer.public()
    }

    /// The agreements this service judges exchanges by.
    pub fn rosters(&self) -> &Arc<Rosters> {
        &self.0.rosters
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The current time, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    /// Counts the receipts stored for outgoing messages; observers
    /// (benchmarks, tests) wait on it instead of polling.
    pub fn receipts_stored(&self) -> watch::Receiver<u64> {
        self.0.receipts_stored.subscribe()
    }

    /// Waits until a commit queued an outbox message (or a delivery ended).
    pub async fn outbox_changed(&self) {
        self.0.outbox_wake.notified().await
    }

    /// Wakes the outbox worker.
    pub fn wake_outbox(&self) {
        self.0.outbox_wake.notify_one();
    }

    /// The current time in milliseconds since the epoch, by the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.0.clock.now_ms()
    }

    // ---------------------------------------------------------------- staff

    /// The pseudonymous reference of an assignment number (keyed hash, so
    /// the same assignment always maps to the same reference here).
    pub fn staff_ref_for(&self, assignment_number: &str) -> StaffRef {
        let h = staffpass_protocol::Hash::of(&[&self.0.staff_ref_key[..], assignment_number.as_bytes()].concat());
        format!("st-{}", hex::encode(&h.0[..16])).parse().unwrap_or_else(|_| StaffRef::random(&mut rand::rng()))
    }

    /// Seals `v` (at store key `k` of `tree`) under staff member `r`'s own key.
    fn seal_for(&self, r: &StaffRef, tree: Tree, k: &[u8], v: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(record_keys::seal_as(&self.0.record_keys, &staff_key_id(r), tree, k, v)?)
    }

    /// Opens what [`Exchange::seal_for`] sealed.
    fn open_for(&self, r: &StaffRef, tree: Tree, k: &[u8], v: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(record_keys::open_as(&self.0.record_keys, &staff_key_id(r), tree, k, v)?)
    }

    /// A staff record's stored value.
    fn seal_staff(&self, rec: &StaffRecord) -> Result<Vec<u8>, Error> {
        self.seal_for(&rec.staff_ref, Tree::Staff, rec.staff_ref.as_str().as_bytes(), &encoding::to_bytes(rec))
    }

    /// A staff record from its stored value.
    fn open_staff(&self, r: &StaffRef, v: &[u8]) -> Result<StaffRecord, Error> {
        decode(&self.open_for(r, Tree::Staff, r.as_str().as_bytes(), v)?, "staff record")
    }

    /// A credential's stored value.
    fn seal_credential(&self, rec: &CredentialRecord) -> Result<Vec<u8>, Error> {
        let k = credential_key(&rec.signed.body.id);
        let sealed = self.seal_for(&rec.staff_ref, Tree::Credentials, &k, &encoding::to_bytes(rec))?;
        Ok(encoding::to_bytes(&OfStaff { staff: rec.staff_ref.clone(), sealed }))
    }

    /// An outbox item; an offer's request (a bundle, with the disclosed
    /// claims) is sealed under the staff member's key.
    fn outbox_item(
        &self,
        id: MessageId,
        consent: &Consent,
        kind: OutKind,
        request: exchange::Request,
    ) -> Result<OutboxItem, Error> {
        let mut item = OutboxItem::new(id, consent, kind, request, self.0.clock.now_ms());
        if kind == OutKind::Offer {
            item.request = self.seal_for(&consent.subject, Tree::Outbox, id.as_bytes(), &item.request)?;
        }
        Ok(item)
    }

    /// The request an outbox item carries (an offer's opened with the
    /// staff member's key: gone once they were erased).
    pub fn outbox_request(&self, item: &OutboxItem) -> Result<exchange::Request, Error> {
        let bytes = if item.kind == OutKind::Offer {
            self.open_for(&item.staff, Tree::Outbox, item.id.as_bytes(), &item.request)?
        } else {
            item.request.clone()
        };
        exchange::Request::decode(&bytes).map_err(|e| Error::Invalid(format!("outbox item {}: {e}", item.id)))
    }

    /// Reads a staff record.
    pub fn staff(&self, r: &StaffRef) -> Result<StaffRecord, Error> {
        let v = self.0.store.get(Tree::Staff, r.as_str().as_bytes())?.ok_or_else(|| Error::NoStaff(r.clone()))?;
        self.open_staff(r, &v)
    }

    /// Lists staff references (paged by reference).
    pub fn staff_list(&self, after: Option<&StaffRef>, limit: usize) -> Result<Vec<StaffRecord>, Error> {
        let start = after.map(|a| format!("{a}\u{0}").into_bytes()).unwrap_or_default();
        self.0
            .store
            .range_from(Tree::Staff, &start, limit)?
            .iter()
            .map(|(k, v)| {
                let r = staff_ref_of_key(k).ok_or_else(|| Error::Invalid("a staff key is not a reference".into()))?;
                self.open_staff(&r, v)
            })
            .collect()
    }

    /// Imports staff. All-or-nothing unless `partial`: with any refused row
    /// nothing is stored. Re-importing an assignment updates its record.
    pub fn import_staff(
        &self,
        rows: Vec<(u64, StaffInput)>,
        mut errors: Vec<staff::RowError>,
        partial: bool,
        actor: &str,
    ) -> Result<ImportReport, Error> {
        let mut report = ImportReport {
            rows: (rows.len() + errors.len()) as u64,
            rejected: errors.len() as u64,
            ..Default::default()
        };
        errors.sort_by_key(|e| e.line);
        errors.truncate(staff::MAX_REPORTED);
        report.errors = errors;
        if report.rejected > 0 && !partial {
            report.aborted = true;
            return Ok(report);
        }
        let (report, changed) = self.store_import(rows, report, actor)?;
        for (r, kinds) in changed {
            self.after_staff_change(&r, &kinds, actor)?;
        }
        Ok(report)
    }

    /// The storing half of an import, in chunks of [`IMPORT_CHUNK`] rows:
    /// each chunk is one batch, one audit entry and one durable commit, so
    /// what an import holds in memory at once (the batch, sled's
    /// transaction, the pages it dirties) is bounded whatever the file's
    /// size. Everything that can refuse the import is checked before the
    /// first chunk is written; a crash between chunks leaves the rows of
    /// the chunks committed (a re-import of the same file finishes it:
    /// re-importing a row that is already there changes nothing). Returns
    /// the records whose claims changed, for the follow-up (credential
    /// updates).
    fn store_import(
        &self,
        rows: Vec<(u64, StaffInput)>,
        mut report: ImportReport,
        actor: &str,
    ) -> Result<(ImportReport, ChangedClaims), Error> {
        let at = self.now();
        // A registered staff key cannot be replaced by an import: refuse
        // the whole file before anything of it is stored.
        for (_, input) in rows.iter().filter(|(_, i)| i.staff_key.is_some()) {
            let staff_ref = self.staff_ref_for(&input.assignment_number);
            if let Some(v) = self.0.store.get(Tree::Staff, staff_ref.as_str().as_bytes())? {
                let old = self.open_staff(&staff_ref, &v)?;
                check_staff_key(&staff_ref, old.staff_key, input.staff_key, false)?;
            }
        }
        let mut changed = Vec::new();
        let parts = rows.len().div_ceil(IMPORT_CHUNK).max(1);
        let mut rows = rows.into_iter().peekable();
        let mut part = 0;
        while part == 0 || rows.peek().is_some() {
            part += 1;
            let chunk: Vec<(u64, StaffInput)> = rows.by_ref().take(IMPORT_CHUNK).collect();
            let (created, updated) = (report.created, report.updated);
            let batch = self.import_chunk(chunk, at, &mut report, &mut changed)?;
            let mut ev = event(actor, Action::Import);
            ev.object = Some(format!(
                "rows={},created={},updated={},rejected={},part={part}/{parts}",
                report.rows,
                report.created - created,
                report.updated - updated,
                report.rejected
            ));
            self.0.audit.commit(batch, vec![ev], at)?;
        }
        Ok((report, changed))
    }

    /// One chunk of an import as a batch (its record keys made first).
    fn import_chunk(
        &self,
        chunk: Vec<(u64, StaffInput)>,
        at: Timestamp,
        report: &mut ImportReport,
        changed: &mut ChangedClaims,
    ) -> Result<Batch, Error> {
        let mut batch = Batch::default();
        let ids: Vec<Vec<u8>> =
            chunk.iter().map(|(_, i)| staff_key_id(&self.staff_ref_for(&i.assignment_number))).collect();
        self.0.record_keys.ensure(ids.iter().map(Vec::as_slice))?;
        for (_, input) in chunk {
            let staff_ref = self.staff_ref_for(&input.assignment_number);
            let existing = self.0.store.get(Tree::Staff, staff_ref.as_str().as_bytes())?;
            let old: Option<StaffRecord> = existing.map(|v| self.open_staff(&staff_ref, &v)).transpose()?;
            // A re-import without a key keeps the registered one.
            check_staff_key(&staff_ref, old.as_ref().and_then(|o| o.staff_key), input.staff_key, false)?;
            let rec = StaffRecord {
                staff_ref: staff_ref.clone(),
                assignment_number: input.assignment_number,
                claims: input.claims.into_iter().map(|c| (c.kind(), c)).collect(),
                staff_key: input.staff_key.or_else(|| old.as_ref().and_then(|o| o.staff_key)),
                created_at: old.as_ref().map(|o| o.created_at).unwrap_or(at),
                updated_at: at,
            };
            match &old {
                Some(o) if o.claims == rec.claims && o.staff_key == rec.staff_key => {}
                Some(o) => {
                    report.updated += 1;
                    changed.push((rec.staff_ref.clone(), changed_claims(&o.claims, &rec.claims)));
                }
                None => report.created += 1,
            }
            report.imported += 1;
            batch.put(Tree::Staff, staff_ref.as_str().as_bytes().to_vec(), self.seal_staff(&rec)?);
        }
        Ok(batch)
    }

    /// Replaces one staff record's claims (and staff key).
    pub fn put_staff(&self, r: &StaffRef, input: StaffInput, actor: &str) -> Result<StaffRecord, Error> {
        staff::validate_input(&input, 1, self.now().date())
            .map_err(|e| Error::Invalid(format!("{}: {}", e.code, e.message)))?;
        let old = self.staff(r)?;
        if self.staff_ref_for(&input.assignment_number) != *r {
            return Err(Error::Invalid("the assignment number belongs to another staff reference".into()));
        }
        check_staff_key(r, old.staff_key, input.staff_key, true)?;
        let rec = StaffRecord {
            claims: input.claims.into_iter().map(|c| (c.kind(), c)).collect(),
            staff_key: input.staff_key,
            updated_at: self.now(),
            ..old.clone()
        };
        self.save_staff(&rec, actor, Action::StaffUpdate)?;
        self.after_staff_change(r, &changed_claims(&old.claims, &rec.claims), actor)?;
        Ok(rec)
    }

    /// Replaces (or with `None` removes) a staff member's registered key:
    /// an admin's act, audited (`admin`, reason `staff-key-change`).
    pub fn replace_staff_key(
        &self,
        r: &StaffRef,
        key: Option<StaffPublicKey>,
        actor: &str,
    ) -> Result<StaffRecord, Error> {
        let mut rec = self.staff(r)?;
        rec.staff_key = key;
        rec.updated_at = self.now();
        let mut batch = Batch::default();
        batch.put(Tree::Staff, r.as_str().as_bytes().to_vec(), self.seal_staff(&rec)?);
        let mut ev = event(actor, Action::Admin);
        ev.staff = Some(r.clone());
        ev.reason = Some("staff-key-change".into());
        self.0.audit.commit(batch, vec![ev], self.now())?;
        Ok(rec)
    }

    /// The staff member changes (or removes) their own registered key, by
    /// a change signed with that key ([`StaffKeyChange`]) near this node's
    /// clock; audited (reason `staff-key-change-signed`). A member of staff
    /// with no registered key has nothing to sign with: HR registers the
    /// first key with a staff edit.
    pub fn change_staff_key(
        &self,
        r: &StaffRef,
        new: Option<StaffPublicKey>,
        signed_at: Timestamp,
        signature: &Signature,
        actor: &str,
    ) -> Result<StaffRecord, Error> {
        let mut rec = self.staff(r)?;
        let Some(old) = rec.staff_key else {
            return Err(Error::Conflict(format!("{r} has no registered staff key to sign a change with")));
        };
        let at = self.now();
        if (at.unix() - signed_at.unix()).abs() > STAFF_KEY_CHANGE_WINDOW_SECS {
            return Err(Error::Invalid(format!(
                "the key change was signed at {signed_at}, more than {STAFF_KEY_CHANGE_WINDOW_SECS} s from this node's clock ({at}); sign it again"
            )));
        }
        let change = StaffKeyChange { staff: r.clone(), old, new, signed_at };
        old.verify(&change, signature).map_err(|_| Error::BadStaffSignature)?;
        rec.staff_key = new;
        rec.updated_at = at;
        let mut batch = Batch::default();
        batch.put(Tree::Staff, r.as_str().as_bytes().to_vec(), self.seal_staff(&rec)?);
        let mut ev = event(actor, Action::StaffUpdate);
        ev.staff = Some(r.clone());
        ev.reason = Some("staff-key-change-signed".into());
        self.0.audit.commit(batch, vec![ev], at)?;
        Ok(rec)
    }

    /// Records one check or training completion (replacing the previous one of its kind).
    pub fn record_claim(&self, r: &StaffRef, claim: Claim, actor: &str) -> Result<StaffRecord, Error> {
        claim.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        let mut rec = self.staff(r)?;
        let kind = claim.kind();
        rec.claims.insert(kind, claim);
        rec.updated_at = self.now();
        self.save_staff(&rec, actor, Action::StaffUpdate)?;
        self.after_staff_change(r, &[kind].into_iter().collect(), actor)?;
        Ok(rec)
    }

    fn save_staff(&self, rec: &StaffRecord, actor: &str, action: Action) -> Result<(), Error> {
        let mut batch = Batch::default();
        batch.put(Tree::Staff, rec.staff_ref.as_str().as_bytes().to_vec(), self.seal_staff(rec)?);
        let mut ev = event(actor, action);
        ev.staff = Some(rec.staff_ref.clone());
        self.0.audit.commit(batch, vec![ev], self.now())?;
        Ok(())
    }

    /// After a record changed: if a credential was issued, re-issue it and
    /// re-send it to the receiver of every live consent, also one that
    /// does not cover a changed claim, so that the new credential
    /// supersedes the old one everywhere (no receiver is left holding a
    /// credential that a later revocation of the current one would not
    /// name).
    fn after_staff_change(&self, r: &StaffRef, changed: &BTreeSet<ClaimKind>, actor: &str) -> Result<(), Error> {
        if changed.is_empty() || self.current_credential(r)?.is_none() {
            return Ok(());
        }
        let cred = self.issue_credential(r, actor)?;
        let _home = self.lock_home();
        let at = self.now();
        let mut batch = Batch::default();
        let mut events = Vec::new();
        let waiting = self.outbox_items()?;
        for mut c in self.consents_of(r)? {
            let live = matches!(c.state, ConsentState::Delivered { .. } | ConsentState::Pending)
                && c.signed.consent().not_after > at;
            if !live {
                continue;
            }
            // Its offers still waiting carry a superseded credential: only
            // the newest goes out (one already in flight is refused or
            // ignored by the receiver, which keeps the newest).
            for due in
                waiting.iter().filter(|d| d.item.consent == c.signed.consent().id && d.item.kind == OutKind::Offer)
            {
                batch.delete(Tree::Outbox, due.key.clone());
            }
            let id = message_id();
            let request = self.offer_into(id, &cred, &c.signed, &mut batch)?;
            let item = self.outbox_item(id, c.signed.consent(), OutKind::Offer, request)?;
            c.credential = cred.signed.body.id;
            c.messages.push(id);
            put_consent(&mut batch, &c);
            item.put(&mut batch);
            let mut ev = event(actor, Action::Offer);
            ev.staff = Some(r.clone());
            ev.org = Some(c.signed.consent().receiver.clone());
            ev.object = Some(format!("{}/{}", c.signed.consent().id, id));
            events.push(ev);
        }
        if !events.is_empty() {
            self.0.audit.commit(batch, events, at)?;
            self.wake_outbox();
        }
        Ok(())
    }

    // ----------------------------------------------------------- credentials

    /// The current credential of a staff member, if one was issued.
    pub fn current_credential(&self, r: &StaffRef) -> Result<Option<CredentialRecord>, Error> {
        let Some(id) = self.current_id(r)? else { return Ok(None) };
        self.credential(&id).map(Some)
    }

    /// The id of a staff member's current credential, if one was issued.
    pub(super) fn current_id(&self, r: &StaffRef) -> Result<Option<CredentialId>, Error> {
        self.0.store.get(Tree::Credentials, &current_key(r))?.map(|v| decode(&v, "credential id")).transpose()
    }

    /// Reads a credential.
    pub fn credential(&self, id: &CredentialId) -> Result<CredentialRecord, Error> {
        let k = credential_key(id);
        let v = self.0.store.get(Tree::Credentials, &k)?.ok_or(Error::NoCredential(*id))?;
        let of: OfStaff = decode(&v, "credential")?;
        decode(&self.open_for(&of.staff, Tree::Credentials, &k, &of.sealed)?, "credential")
    }

    /// Issues a passport credential from the staff member's current record,
    /// signed with the current issuer key; it replaces the previous one.
    pub fn issue_credential(&self, r: &StaffRef, actor: &str) -> Result<CredentialRecord, Error> {
        let rec = self.staff(r)?;
        let mut rng = rand::rng();
        let disclosures: Vec<Disclosure> = rec.claim_list().into_iter().map(|c| Disclosure::new(c, &mut rng)).collect();
        // Strictly later than the credential it replaces, even within one
        // second: a receiver keeps the passport with the later `issued_at`
        // whatever order offers arrive in, so two re-issues in the same
        // second must not tie (found by the crash torture: a late retry of
        // the older one replaced the newer).
        // Held to the commit: the replaced credential's status entry is
        // marked in it (an export allocates entries under the same lock).
        let _home = self.lock_home();
        let now = self.now();
        let prev = self.current_credential(r)?;
        let at = match &prev {
            Some(prev) if prev.signed.body.issued_at >= now => prev.signed.body.issued_at.plus_secs(1),
            _ => now,
        };
        let signed = credential::issue(
            &self.0.issuer,
            Issue {
                id: CredentialId::random(&mut rng),
                issuer: self.0.org.clone(),
                subject: r.clone(),
                issued_at: at,
                expires_at: at.plus_days(i64::from(self.0.settings.credential_validity_days)),
            },
            &disclosures,
        );
        let record = CredentialRecord { signed, disclosures, staff_ref: r.clone(), revoked: None };
        let mut batch = Batch::default();
        batch.put(Tree::Credentials, credential_key(&record.signed.body.id), self.seal_credential(&record)?);
        batch.put(Tree::Credentials, current_key(r), encoding::to_bytes(&record.signed.body.id));
        // Superseded: a verifier of its standard-form copy sees it no longer stands.
        self.status_mark_into(prev.iter().map(|p| &p.signed.body.id), false, &mut batch)?;
        let mut ev = event(actor, Action::Issue);
        ev.staff = Some(r.clone());
        ev.object = Some(record.signed.body.id.to_string());
        self.0.audit.commit(batch, vec![ev], now)?;
        Ok(record)
    }

    /// The offer of `cred` under `consent`: its bundle and the
    /// standard-form copy ([`Exchange::presentation_into`]; call with the
    /// home lock held, and commit `batch` before letting it go).
    fn offer_into(
        &self,
        id: MessageId,
        cred: &CredentialRecord,
        consent: &SignedConsent,
        batch: &mut Batch,
    ) -> Result<exchange::Request, Error> {
        let bundle = self.bundle(cred, consent)?;
        let presentation = self.presentation_into(cred, consent.consent(), batch)?;
        Ok(exchange::Request::PresentedOffer { id, bundle: Box::new(bundle), presentation })
    }

    fn bundle(&self, cred: &CredentialRecord, consent: &SignedConsent) -> Result<Bundle, Error> {
        let wanted = &consent.consent().claims;
        let disclosures: Vec<Disclosure> =
            cred.disclosures.iter().filter(|d| wanted.contains(&d.claim.kind())).cloned().collect();
        Ok(Bundle { credential: cred.signed.clone(), disclosures, consent: consent.clone() })
    }

    /// Revokes a credential, and with it every other credential of the
    /// same member of staff that a live consent still references (one the
    /// re-issue superseded at a receiver that was not re-sent): every
    /// receiver is told about the credential it holds, through the outbox.
    pub fn revoke_credential(
        &self,
        id: &CredentialId,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<CredentialRecord, Error> {
        let cred = self.credential(id)?;
        if cred.revoked.is_some() {
            return Err(Error::Conflict(format!("credential {id} is already revoked")));
        }
        let mut ids = self.live_credentials(&cred.staff_ref)?;
        ids.insert(*id);
        let revoked = self.revoke_set(&cred.staff_ref, &ids, reason, actor)?;
        revoked.into_iter().find(|c| c.signed.body.id == *id).ok_or(Error::NoCredential(*id))
    }

    /// Revokes every credential of a member of staff: the current one and
    /// every one a live consent references. Returns those revoked now
    /// (none if all already were).
    pub fn revoke_staff(
        &self,
        r: &StaffRef,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<Vec<CredentialRecord>, Error> {
        let mut ids = self.live_credentials(r)?;
        if let Some(current) = self.current_credential(r)? {
            ids.insert(current.signed.body.id);
        }
        self.revoke_set(r, &ids, reason, actor)
    }

    /// The credentials of `r` that live consents (neither withdrawn nor
    /// awaiting the staff signature) reference.
    fn live_credentials(&self, r: &StaffRef) -> Result<BTreeSet<CredentialId>, Error> {
        Ok(self
            .consents_of(r)?
            .into_iter()
            .filter(|c| !matches!(c.state, ConsentState::AwaitingStaffSignature | ConsentState::Withdrawn { .. }))
            .map(|c| c.credential)
            .collect())
    }

    /// Revokes the credentials `ids` of `r` not yet revoked, and queues for
    /// each live consent a revocation of the credential it references, in
    /// one commit.
    fn revoke_set(
        &self,
        r: &StaffRef,
        ids: &BTreeSet<CredentialId>,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<Vec<CredentialRecord>, Error> {
        let _home = self.lock_home();
        let at = self.now();
        let mut batch = Batch::default();
        let mut events = Vec::new();
        let mut revoked = Vec::new();
        let mut revocations = BTreeMap::new();
        for id in ids {
            let mut cred = self.credential(id)?;
            if cred.revoked.is_some() {
                continue;
            }
            cred.revoked = Some((reason, at));
            let revocation = Signed::new(
                Revocation {
                    credential: *id,
                    issuer: self.0.org.clone(),
                    reason,
                    revoked_at: at,
                    issuer_key: self.0.issuer.public(),
                },
                |b| self.0.issuer.sign(b),
            );
            revocations.insert(*id, revocation);
            batch.put(Tree::Credentials, credential_key(id), self.seal_credential(&cred)?);
            let mut ev = event(actor, Action::Revocation);
            ev.staff = Some(r.clone());
            ev.object = Some(id.to_string());
            ev.reason = Some(reason.to_string());
            events.push(ev);
            revoked.push(cred);
        }
        if revoked.is_empty() {
            return Ok(revoked);
        }
        self.status_mark_into(revoked.iter().map(|c| &c.signed.body.id), false, &mut batch)?;
        let mut told = BTreeSet::new();
        for mut c in self.consents_of(r)? {
            let consent = c.signed.consent().clone();
            let Some(revocation) = revocations.get(&c.credential) else { continue };
            if matches!(c.state, ConsentState::AwaitingStaffSignature | ConsentState::Withdrawn { .. })
                || !told.insert((consent.receiver.clone(), consent.agreement.clone(), c.credential))
            {
                continue;
            }
            let mid = message_id();
            let item = self.outbox_item(
                mid,
                &consent,
                OutKind::Revoke,
                exchange::Request::Revoke { id: mid, revocation: revocation.clone() },
            )?;
            item.put(&mut batch);
            c.messages.push(mid);
            put_consent(&mut batch, &c);
            let mut ev = event(actor, Action::Offer);
            ev.staff = Some(r.clone());
            ev.org = Some(consent.receiver.clone());
            ev.object = Some(format!("{}/{}/{mid}", consent.id, c.credential));
            events.push(ev);
        }
        self.0.audit.commit(batch, events, at)?;
        self.wake_outbox();
        Ok(revoked)
    }

    // -------------------------------------------------------------- consents

    /// Whether the agreement's terms, by this node's roster at `at`, allow
    /// this trust to share `claims` with `receiver` for `move_kind`
    /// (`protocol::bundle::check_terms`, the rule the receiver applies too).
    /// Fails closed.
    fn terms_allow(
        &self,
        agreement: &AgreementId,
        receiver: &OrgId,
        move_kind: MoveKind,
        claims: &BTreeSet<ClaimKind>,
        at: Timestamp,
    ) -> Result<(), Rejection> {
        let exchange = bundle::Exchange { agreement, issuer: &self.0.org, receiver, move_kind, claims };
        check_terms(&*self.0.rosters.read(), &exchange, at).map(|_| ())
    }

    /// Records a staff member's sharing consent and queues the offer. If the
    /// staff member holds a key, the consent waits for their signature.
    pub fn grant_consent(&self, req: ConsentRequest, actor: &str) -> Result<ConsentRecord, Error> {
        let at = self.now();
        let rec = self.staff(&req.staff)?;
        self.terms_allow(&req.agreement, &req.receiver, req.move_kind, &req.claims, at)
            .map_err(|reason| Error::Terms { agreement: req.agreement.clone(), reason })?;
        if req.receiver == self.0.org {
            return Err(Error::Invalid("a trust cannot share a passport with itself".into()));
        }
        for c in &req.claims {
            if !rec.claims.contains_key(c) {
                return Err(Error::ClaimNotHeld(*c));
            }
        }
        if req.claims.is_empty() {
            return Err(Error::Invalid("a consent must name at least one claim".into()));
        }
        let not_before = req.not_before.unwrap_or(at);
        if req.not_after <= not_before || req.not_after <= at {
            return Err(Error::Invalid("not_after must be after not_before and in the future".into()));
        }
        if req.not_after > at.plus_days(5 * 366) {
            return Err(Error::Invalid("a consent may last at most five years".into()));
        }
        let cred = match self.current_credential(&req.staff)? {
            Some(c) if c.revoked.is_none() && c.signed.body.expires_at > req.not_after.min(at.plus_days(1)) => c,
            _ => self.issue_credential(&req.staff, actor)?,
        };
        if let (Some(registered), Some(named)) = (rec.staff_key, req.staff_key)
            && registered != named
        {
            return Err(Error::Invalid(
                "the consent must use the staff member's registered key (only an admin can replace it)".into(),
            ));
        }
        let staff_key = req.staff_key.or(rec.staff_key);
        // Held to the commit: the offer's standard-form copy allocates the
        // credential's status list entry.
        let _home = self.lock_home();
        let consent = Consent {
            id: ConsentId::random(&mut rand::rng()),
            subject: req.staff.clone(),
            home: self.0.org.clone(),
            receiver: req.receiver.clone(),
            agreement: req.agreement.clone(),
            move_kind: req.move_kind,
            claims: req.claims.clone(),
            not_before,
            not_after: req.not_after,
            issued_at: at,
            issuer_key: self.0.issuer.public(),
            staff_key,
        };
        let signed = SignedConsent { signed: Signed::new(consent, |c| self.0.issuer.sign(c)), staff_signature: None };
        let mut record = ConsentRecord {
            signed,
            credential: cred.signed.body.id,
            state: ConsentState::AwaitingStaffSignature,
            created_at: at,
            messages: Vec::new(),
            receipts: Vec::new(),
        };
        let mut batch = Batch::default();
        let mut events = Vec::new();
        let mut ev = event(actor, Action::Consent);
        ev.staff = Some(req.staff.clone());
        ev.org = Some(req.receiver.clone());
        ev.object = Some(record.signed.consent().id.to_string());
        events.push(ev);
        if staff_key.is_none() {
            self.queue_offer(&mut record, &cred, &mut batch, &mut events, actor)?;
        }
        put_consent(&mut batch, &record);
        self.0.audit.commit(batch, events, at)?;
        self.wake_outbox();
        Ok(record)
    }

    /// Adds the staff member's signature to a consent awaiting it, and queues the offer.
    pub fn sign_consent(&self, id: &ConsentId, signature: Signature, actor: &str) -> Result<ConsentRecord, Error> {
        let _home = self.lock_home();
        let mut record = self.consent(id)?;
        if !matches!(record.state, ConsentState::AwaitingStaffSignature) {
            return Err(Error::Conflict("this consent is not waiting for a staff signature".into()));
        }
        let key: StaffPublicKey = record.signed.consent().staff_key.ok_or(Error::BadStaffSignature)?;
        key.verify(record.signed.consent(), &signature).map_err(|_| Error::BadStaffSignature)?;
        record.signed.staff_signature = Some(signature);
        let cred = self.credential(&record.credential)?;
        let at = self.now();
        let mut batch = Batch::default();
        let mut events = Vec::new();
        self.queue_offer(&mut record, &cred, &mut batch, &mut events, actor)?;
        put_consent(&mut batch, &record);
        self.0.audit.commit(batch, events, at)?;
        self.wake_outbox();
        Ok(record)
    }

    fn queue_offer(
        &self,
        record: &mut ConsentRecord,
        cred: &CredentialRecord,
        batch: &mut Batch,
        events: &mut Vec<audit::Event>,
        actor: &str,
    ) -> Result<(), Error> {
        let id = message_id();
        let request = self.offer_into(id, cred, &record.signed, batch)?;
        let consent = record.signed.consent();
        let item = self.outbox_item(id, consent, OutKind::Offer, request)?;
        item.put(batch);
        let mut ev = event(actor, Action::Offer);
        ev.staff = Some(consent.subject.clone());
        ev.org = Some(consent.receiver.clone());
        ev.object = Some(format!("{}/{}", consent.id, id));
        events.push(ev);
        record.state = ConsentState::Pending;
        record.messages.push(id);
        Ok(())
    }

    /// The staff member withdraws a consent: the receiver is told, through
    /// the outbox, to erase.
    pub fn withdraw_consent(&self, id: &ConsentId, actor: &str) -> Result<ConsentRecord, Error> {
        let _home = self.lock_home();
        let mut record = self.consent(id)?;
        if matches!(record.state, ConsentState::Withdrawn { .. }) {
            return Err(Error::Conflict(format!("consent {id} is already withdrawn")));
        }
        let at = self.now();
        let mut batch = Batch::default();
        let consent = record.signed.consent().clone();
        let mut ev = event(actor, Action::Withdrawal);
        ev.staff = Some(consent.subject.clone());
        ev.org = Some(consent.receiver.clone());
        ev.object = Some(id.to_string());
        self.withdraw_into(&mut record, at, &mut batch)?;
        self.0.audit.commit(batch, vec![ev], at)?;
        self.wake_outbox();
        Ok(record)
    }

    /// Withdraws a consent not yet withdrawn, into `batch`: the receiver is
    /// told to erase (unless it never heard of it: awaiting the staff
    /// signature), and its offers still waiting are cancelled, so nothing
    /// of it is sent after this commit.
    fn withdraw_into(&self, record: &mut ConsentRecord, at: Timestamp, batch: &mut Batch) -> Result<(), Error> {
        let was = std::mem::replace(&mut record.state, ConsentState::Withdrawn { at, erased: None });
        let consent = record.signed.consent().clone();
        if !matches!(was, ConsentState::AwaitingStaffSignature) {
            let withdrawal = Signed::new(
                Withdrawal {
                    consent: consent.id,
                    subject: consent.subject.clone(),
                    home: self.0.org.clone(),
                    receiver: consent.receiver.clone(),
                    withdrawn_at: at,
                    issuer_key: self.0.issuer.public(),
                },
                |b| self.0.issuer.sign(b),
            );
            let mid = message_id();
            let item = self.outbox_item(
                mid,
                &consent,
                OutKind::Withdraw,
                exchange::Request::Withdraw { id: mid, withdrawal },
            )?;
            item.put(batch);
            record.messages.push(mid);
            for due in self.outbox_items()? {
                if due.item.consent == consent.id && due.item.kind == OutKind::Offer {
                    batch.delete(Tree::Outbox, due.key);
                }
            }
        }
        put_consent(batch, record);
        Ok(())
    }

    /// Erases a member of staff at this (home) trust — they left, or asked
    /// for erasure: every live consent is withdrawn (each receiver told to
    /// erase), their offers still waiting are cancelled, their record and
    /// every credential (with its disclosures) are deleted, all in one
    /// commit with an audit entry that names only their reference; then
    /// their key is destroyed, so what sled's log keeps of their records
    /// opens with nothing this node holds. Consents stay, ids and claim
    /// kinds only, to track the erasure receipts. Returns how many consents
    /// were withdrawn.
    pub fn erase_staff(&self, r: &StaffRef, actor: &str) -> Result<usize, Error> {
        self.staff(r)?;
        let home = self.lock_home();
        let at = self.now();
        let mut batch = Batch::default();
        let mut withdrawn = 0;
        for mut c in self.consents_of(r)? {
            if matches!(c.state, ConsentState::Withdrawn { .. }) {
                continue;
            }
            self.withdraw_into(&mut c, at, &mut batch)?;
            withdrawn += 1;
        }
        for due in self.outbox_items()? {
            if due.item.staff == *r && due.item.kind == OutKind::Offer {
                batch.delete(Tree::Outbox, due.key);
            }
        }
        let mut erased = Vec::new();
        for (k, v) in self.0.store.scan_prefix(Tree::Credentials, b"c/")? {
            let of: OfStaff = decode(&v, "credential")?;
            if of.staff == *r {
                if let Some(id) = credential_id_of_key(&k) {
                    erased.push(id);
                }
                batch.delete(Tree::Credentials, k);
            }
        }
        self.status_mark_into(&erased, true, &mut batch)?;
        batch.delete(Tree::Credentials, current_key(r));
        batch.delete(Tree::Staff, r.as_str().as_bytes().to_vec());
        let mut ev = event(actor, Action::StaffDelete);
        ev.staff = Some(r.clone());
        ev.object = Some(format!("erased,consents-withdrawn={withdrawn}"));
        self.0.audit.commit(batch, vec![ev], at)?;
        drop(home);
        self.wake_outbox();
        if let Err(e) = self.0.record_keys.destroy(&staff_key_id(r)) {
            tracing::warn!(staff = %r, error = %e, "an erased staff member's key could not be destroyed yet");
        }
        Ok(withdrawn)
    }

    /// Reads a consent.
    pub fn consent(&self, id: &ConsentId) -> Result<ConsentRecord, Error> {
        let v = self.0.store.get(Tree::Consents, id.as_bytes())?.ok_or(Error::NoConsent(*id))?;
        decode(&v, "consent")
    }

    /// Every consent recorded here.
    pub fn consents(&self) -> Result<Vec<ConsentRecord>, Error> {
        self.0.store.scan_prefix(Tree::Consents, b"")?.iter().map(|(_, v)| decode(v, "consent")).collect()
    }

    /// The consents of one staff member.
    pub fn consents_of(&self, r: &StaffRef) -> Result<Vec<ConsentRecord>, Error> {
        Ok(self.consents()?.into_iter().filter(|c| c.signed.consent().subject == *r).collect())
    }
}

pub use staffpass_api::consents::ConsentRequest;

/// The staff member's key is theirs: once registered, an edit (or, with
/// `removing`, an edit that leaves it out) cannot replace or remove it;
/// only [`Exchange::replace_staff_key`] (an admin, audited) can.
fn check_staff_key(
    r: &StaffRef,
    registered: Option<StaffPublicKey>,
    given: Option<StaffPublicKey>,
    removing: bool,
) -> Result<(), Error> {
    match (registered, given) {
        (Some(old), Some(new)) if old != new => Err(Error::Conflict(format!(
            "{r} has a registered staff key: only an admin can replace it (staffpass-admin staff set-key)"
        ))),
        (Some(_), None) if removing => Err(Error::Conflict(format!(
            "{r} has a registered staff key: only an admin can remove it (staffpass-admin staff set-key --remove)"
        ))),
        _ => Ok(()),
    }
}

/// Rows stored per commit by an import.
const IMPORT_CHUNK: usize = 2_000;

/// How many stripes the receive path's locks have. An offer holds two
/// (its consent's and its credential's) until its passport is durable, so
/// with 64 offers in flight 64 stripes made most of them queue behind an
/// unrelated offer's fsync (issue 17, figure 3); with 4,096 two offers
/// share a stripe rarely. A revocation takes all of them, in order.
const RECEIVE_STRIPES: usize = 4_096;

fn changed_claims(old: &BTreeMap<ClaimKind, Claim>, new: &BTreeMap<ClaimKind, Claim>) -> BTreeSet<ClaimKind> {
    old.keys().chain(new.keys()).filter(|k| old.get(k) != new.get(k)).copied().collect()
}

/// Exponential backoff with full jitter, in milliseconds.
pub fn backoff_ms(attempts: u32, initial_ms: u64, max_ms: u64) -> u64 {
    let exp = initial_ms.saturating_mul(1u64 << attempts.min(30)).min(max_ms);
    let lo = exp / 2;
    lo + rand::rng().random_range(0..=exp - lo)
}
