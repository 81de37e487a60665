//! The receiving side: verify, store durably, then receipt. Idempotent by
//! message id: a replayed message gets the stored receipt back and changes
//! nothing. A refused bundle leaves only an audit entry (reason, ids).

use libp2p::PeerId;
use staffpass_protocol::bundle::{Rejection, verify_bundle};
use staffpass_protocol::claims::Claim;
use staffpass_protocol::consent::Withdrawal;
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason, Revocations};
use staffpass_protocol::roster::KeyValidity;
use staffpass_protocol::wire::exchange::{self, Request, Response};
use staffpass_protocol::{ConsentId, IssuerPublicKey, MessageId, NodeId, OrgId, Signed, Timestamp, encoding};
use tracing::{info, warn};

use super::records::*;
use super::{Error, decode, event};
use crate::audit::Action;
use crate::metrics::ExchangeLabels;
use crate::network;
use crate::node::{Node, now};
use crate::store::{Batch, Tree};

/// Handles one exchange request from `peer`; `None` only if the request
/// could not be answered at all (storage failure): the sender retries.
///
/// Verification and the durable commit run on the blocking pool: a commit
/// waits for an fsync, and with every receipt waiting on a runtime worker
/// at most one commit per worker could share a flush. On the blocking
/// pool, offers arriving together share one group commit.
pub async fn receive(node: &Node, peer: PeerId, request: Request) -> Option<Response> {
    match node.blocking(move |n| receive_blocking(n, peer, request)).await {
        Ok(resp) => resp,
        Err(e) => {
            warn!(%peer, error = %e, "exchange handler failed; the sender will retry");
            None
        }
    }
}

fn receive_blocking(node: &Node, peer: PeerId, request: Request) -> Option<Response> {
    let id = request.id();
    let kind = match &request {
        Request::Offer { .. } => "offer",
        Request::Withdraw { .. } => "withdraw",
        Request::Revoke { .. } => "revoke",
    };
    // Replay: answer with the stored receipt.
    match node.store.get(Tree::Inbox, id.as_bytes()) {
        Ok(Some(bytes)) => {
            return encoding::from_bytes::<Response>(&bytes, exchange::MAX_RESPONSE, "stored receipt").ok();
        }
        Ok(None) => {}
        Err(e) => {
            warn!(error = %e, "inbox lookup failed; not answering so the sender retries");
            return None;
        }
    }
    let sender = network::node_of(&peer)?;
    let at = now();
    let result = match request {
        Request::Offer { id, bundle } => node.on_offer(id, &bundle, &sender, at),
        Request::Withdraw { id, withdrawal } => node.on_withdraw(id, &withdrawal, &sender, at),
        Request::Revoke { id, revocation } => node.on_revoke(id, &revocation, &sender, at),
    };
    match result {
        Ok(resp) => {
            let outcome = match &resp.receipt.body.outcome {
                Outcome::Rejected { reason } => format!("rejected:{}", reason.code()),
                Outcome::Received { .. } => "received".into(),
                Outcome::Erased { .. } => "erased".into(),
                Outcome::RevocationAcknowledged { .. } => "revocation-acknowledged".into(),
            };
            node.metrics
                .exchange_messages
                .get_or_create(&ExchangeLabels { direction: "in".into(), kind: kind.into(), outcome })
                .inc();
            Some(resp)
        }
        Err(e) => {
            warn!(%peer, message = %id, error = %e, "exchange message not processed; the sender will retry");
            None
        }
    }
}

impl Node {
    fn receipt(&self, message: MessageId, outcome: Outcome, at: Timestamp) -> Response {
        let body = Receipt { message, receiver: self.org.clone(), outcome, at, issuer_key: self.issuer.public() };
        Response { receipt: Signed::new(body, |b| self.issuer.sign(b)) }
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
        batch.put(Tree::Inbox, response.receipt.body.message.as_bytes().to_vec(), response.encode());
        self.audit.commit(batch, events, at)?;
        Ok(response)
    }

    fn reject(
        &self,
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
        self.commit_with_receipt(Batch::default(), vec![ev], resp, at)
    }

    fn on_offer(
        &self,
        id: MessageId,
        bundle: &staffpass_protocol::Bundle,
        sender: &NodeId,
        at: Timestamp,
    ) -> Result<Response, Error> {
        let consent = bundle.consent.consent();
        let cred_id = bundle.credential.body.id;
        let mut status = Revocations::default();
        if let Some(v) = self.store.get(Tree::Received, &revoked_key(&cred_id))? {
            status.credentials.insert(cred_id, decode::<RevocationReason>(&v, "revocation")?);
        }
        if self.store.get(Tree::Received, &withdrawn_key(&consent.id))?.is_some() {
            status.consents.insert(consent.id);
        }
        let verdict = {
            let chains = self.rosters.read();
            verify_bundle(bundle, sender, &self.org, &*chains, &status, at)
        };
        let passport = match verdict {
            Ok(p) => p,
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
        let record = ReceivedRecord {
            passport,
            sender: sender.clone(),
            received_at: at,
            message: id,
            state: ReceivedState::Active,
        };
        let mut batch = Batch::default();
        batch.put(Tree::Received, received_key(&consent.id), encoding::to_bytes(&record));
        let mut ev = event(&format!("peer:{sender}"), Action::Receipt);
        ev.staff = Some(consent.subject.clone());
        ev.org = Some(consent.home.clone());
        ev.object = Some(format!("{}/{}/{}", consent.id, cred_id, id));
        let resp = self.receipt(id, Outcome::Received { consent: consent.id, credential: cred_id, claims }, at);
        let resp = self.commit_with_receipt(batch, vec![ev], resp, at)?;
        info!(message = %id, consent = %consent.id, from = %consent.home, "passport received and stored");
        Ok(resp)
    }

    /// The issuer key check for withdrawals and revocations: the sending
    /// node belongs to `org` in some agreement held here, and `key` was one
    /// of its issuer keys at `signed_at`.
    fn check_org_message(
        &self,
        org: &OrgId,
        sender: &NodeId,
        key: &IssuerPublicKey,
        signed_at: Timestamp,
    ) -> Result<(), Rejection> {
        let chains = self.rosters.read();
        let mut sender_ok = false;
        let mut key_state = KeyValidity::Unknown;
        for c in chains.values() {
            let st = c.state();
            if st.nodes_of(org).contains(sender) {
                sender_ok = true;
            }
            match st.key_validity(org, key, signed_at) {
                KeyValidity::Valid => key_state = KeyValidity::Valid,
                k if key_state != KeyValidity::Valid && k != KeyValidity::Unknown => key_state = k,
                _ => {}
            }
        }
        if !sender_ok {
            return Err(Rejection::SenderNotIssuer);
        }
        match key_state {
            KeyValidity::Valid => Ok(()),
            KeyValidity::Unknown => Err(Rejection::UnknownIssuerKey),
            KeyValidity::NotYetValid => Err(Rejection::IssuerKeyNotYetValid),
            KeyValidity::Retired => Err(Rejection::IssuerKeyRetired),
        }
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
        if !w.version_ok() {
            return self.reject(id, Rejection::UnsupportedVersion, Some(b.home.clone()), object, at);
        }
        if let Err(r) = self.check_org_message(&b.home, sender, &b.issuer_key, b.withdrawn_at) {
            return self.reject(id, r, Some(b.home.clone()), object, at);
        }
        if b.issuer_key.verify(b, &w.signature).is_err() {
            return self.reject(id, Rejection::BadConsentSignature, Some(b.home.clone()), object, at);
        }
        if b.receiver != self.org {
            return self.reject(id, Rejection::ConsentForOtherReceiver, Some(b.home.clone()), object, at);
        }
        let mut batch = Batch::default();
        batch.put(Tree::Received, withdrawn_key(&b.consent), b.withdrawn_at.unix().to_be_bytes().to_vec());
        self.erase_into(&mut batch, &b.consent, "withdrawn", at)?;
        let mut ev = event(&format!("peer:{sender}"), Action::Erasure);
        ev.staff = Some(b.subject.clone());
        ev.org = Some(b.home.clone());
        ev.object = Some(object);
        ev.reason = Some("withdrawn".into());
        let resp = self.receipt(id, Outcome::Erased { consent: b.consent }, at);
        let resp = self.commit_with_receipt(batch, vec![ev], resp, at)?;
        info!(message = %id, consent = %b.consent, "consent withdrawn; passport erased");
        Ok(resp)
    }

    /// Replaces a received passport by a tombstone holding ids only.
    fn erase_into(&self, batch: &mut Batch, consent: &ConsentId, why: &str, at: Timestamp) -> Result<bool, Error> {
        let Some(v) = self.store.get(Tree::Received, &received_key(consent))? else { return Ok(false) };
        let rec: ReceivedRecord = decode(&v, "received passport")?;
        let tomb = ErasedRecord {
            consent: *consent,
            credential: rec.passport.credential,
            issuer: rec.passport.issuer.clone(),
            erased_at: at,
            why: why.to_string(),
        };
        batch.delete(Tree::Received, received_key(consent));
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
        if !r.version_ok() {
            return self.reject(id, Rejection::UnsupportedVersion, Some(b.issuer.clone()), object, at);
        }
        if let Err(rej) = self.check_org_message(&b.issuer, sender, &b.issuer_key, b.revoked_at) {
            return self.reject(id, rej, Some(b.issuer.clone()), object, at);
        }
        if b.issuer_key.verify(b, &r.signature).is_err() {
            return self.reject(id, Rejection::BadCredentialSignature, Some(b.issuer.clone()), object, at);
        }
        let mut batch = Batch::default();
        batch.put(Tree::Received, revoked_key(&b.credential), encoding::to_bytes(&b.reason));
        let mut events = Vec::new();
        for (k, v) in self.store.scan_prefix(Tree::Received, b"p/")? {
            let mut rec: ReceivedRecord = decode(&v, "received passport")?;
            if rec.passport.credential != b.credential || rec.passport.issuer != b.issuer {
                continue;
            }
            rec.state = ReceivedState::Revoked { reason: b.reason, at };
            batch.put(Tree::Received, k, encoding::to_bytes(&rec));
            let mut ev = event(&format!("peer:{sender}"), Action::Revocation);
            ev.staff = Some(rec.passport.subject.clone());
            ev.org = Some(b.issuer.clone());
            ev.object = Some(format!("{}/{}", rec.passport.consent, b.credential));
            ev.reason = Some(b.reason.to_string());
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
        let at = now();
        let mut n = 0;
        for (_, v) in self.store.scan_prefix(Tree::Received, b"p/")? {
            let rec: ReceivedRecord = decode(&v, "received passport")?;
            if rec.passport.not_after > at {
                continue;
            }
            let mut batch = Batch::default();
            if self.erase_into(&mut batch, &rec.passport.consent, "expired", at)? {
                let mut ev = event("system", Action::Expiry);
                ev.staff = Some(rec.passport.subject.clone());
                ev.org = Some(rec.passport.issuer.clone());
                ev.object = Some(rec.passport.consent.to_string());
                self.audit.commit(batch, vec![ev], at)?;
                n += 1;
                info!(consent = %rec.passport.consent, "consent window ended; passport erased");
            }
        }
        Ok(n)
    }

    /// Received passports, as an HR officer at the host trust sees them.
    pub fn received(&self) -> Result<Vec<ReceivedView>, Error> {
        let today = now().date();
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(Tree::Received, b"p/")? {
            out.push(view_of(&decode(&v, "received passport")?, today, false));
        }
        for (_, v) in self.store.scan_prefix(Tree::Received, b"e/")? {
            let e: ErasedRecord = decode(&v, "erasure record")?;
            out.push(erased_view(&e));
        }
        Ok(out)
    }

    /// One received passport, with claim values.
    pub fn received_one(&self, consent: &ConsentId) -> Result<ReceivedView, Error> {
        if let Some(v) = self.store.get(Tree::Received, &received_key(consent))? {
            return Ok(view_of(&decode(&v, "received passport")?, now().date(), true));
        }
        if let Some(v) = self.store.get(Tree::Received, &erased_key(consent))? {
            return Ok(erased_view(&decode(&v, "erasure record")?));
        }
        Err(Error::NoReceived(*consent))
    }
}

pub use staffpass_api::received::{ClaimView, ReceivedView};

/// A received passport as the API shows it; claim values only if `values`.
fn view_of(r: &ReceivedRecord, today: staffpass_protocol::Date, values: bool) -> ReceivedView {
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
    }
}

/// What the API shows of an erased passport: ids and the cause.
fn erased_view(e: &ErasedRecord) -> ReceivedView {
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
    }
}
