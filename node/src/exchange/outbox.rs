//! The durable outbox: messages that must arrive (offers, withdrawals,
//! revocations) are written in the same commit as the change that caused
//! them, then delivered to the receiver's nodes (from the roster) with
//! exponential backoff and jitter until a valid signed receipt comes back.
//! A crash or partition delays delivery; it never loses it.
//!
//! This is the outbox's synchronous half, on [`Exchange`]: what is due,
//! what to send and to which nodes, the receipt's acceptance, the retry.
//! The async half that talks to the network is [`super::outbox_worker`].

use staffpass_protocol::bundle::Rejection;
use staffpass_protocol::receipt::{self, Expected, Outcome, verify_receipt};
use staffpass_protocol::roster::MemberStatus;
use staffpass_protocol::wire::exchange::{Request, Response};
use staffpass_protocol::{Bundle, NodeId, Signed, encoding};
use tracing::{debug, info, warn};

use super::records::*;
use super::{Exchange, backoff_ms, decode, event};
use crate::audit::Action;
use crate::metrics::ExchangeLabels;
use crate::store::{Batch, Tree};

/// Why a response was not taken as the receipt of an outbox message (the
/// message stays, and is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The protocol's receipt rules refused it.
    #[error(transparent)]
    Refused(#[from] receipt::Error),
    /// It could not be recorded.
    #[error(transparent)]
    Exchange(#[from] super::Error),
}

/// A stored outbox item, under its store key.
#[derive(Debug, Clone)]
pub struct Due {
    /// Its key in the Outbox tree.
    pub key: Vec<u8>,
    /// The item.
    pub item: OutboxItem,
}

/// A message ready to go: its request, and the receiver's nodes (from the
/// roster of the agreement it is sent under), in roster order.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// What is sent.
    pub due: Due,
    /// The request.
    pub request: Request,
    /// Where it may go.
    pub nodes: Vec<NodeId>,
}

/// The outbox's contents: what is due now, and when the next is due.
#[derive(Debug, Default)]
pub struct Pending {
    /// Items due now, oldest first.
    pub due: Vec<Due>,
    /// When the next item not yet due will be (ms since the epoch).
    pub next_ms: Option<i64>,
    /// The nodes (with their roster address hints) of receivers owed a
    /// withdrawal or revocation that are no longer active members of the
    /// agreement it goes under: the gate's one exception
    /// ([`super::Transport::owe`]).
    pub owed: Vec<(NodeId, Vec<String>)>,
}

impl Exchange {
    /// Every message in the outbox (for the API).
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, super::Error> {
        self.outbox_items().map(|items| items.into_iter().map(|d| d.item).collect())
    }

    pub(super) fn outbox_items(&self) -> Result<Vec<Due>, super::Error> {
        self.0
            .store
            .scan_prefix(Tree::Outbox, b"")?
            .into_iter()
            .map(|(key, v)| Ok(Due { key, item: decode(&v, "outbox item")? }))
            .collect()
    }

    /// What in the outbox is due now, and when the next will be; updates
    /// the pending gauge.
    pub fn outbox_pending(&self) -> Result<Pending, super::Error> {
        let items = self.outbox_items()?;
        self.0.metrics.outbox_pending.set(items.len() as i64);
        let t = self.0.clock.now_ms();
        let mut out = Pending { owed: self.owed_nodes(&items), ..Pending::default() };
        for due in items {
            let next = due.item.next_attempt_ms();
            if next > t {
                out.next_ms = Some(out.next_ms.map_or(next, |n| n.min(next)));
            } else {
                out.due.push(due);
            }
        }
        Ok(out)
    }

    /// The nodes of receivers owed a withdrawal or revocation in `items`
    /// whose standing in the agreement is no longer active.
    fn owed_nodes(&self, items: &[Due]) -> Vec<(NodeId, Vec<String>)> {
        let chains = self.0.rosters.read();
        let mut out: Vec<(NodeId, Vec<String>)> = Vec::new();
        for d in items.iter().filter(|d| d.item.kind != OutKind::Offer) {
            let Some(m) = chains.get(&d.item.agreement).and_then(|c| c.state().members.get(&d.item.to).cloned()) else {
                continue;
            };
            if m.status == MemberStatus::Active {
                continue;
            }
            for n in m.nodes {
                if !out.iter().any(|(o, _)| *o == n) {
                    out.push((n, m.addresses.clone()));
                }
            }
        }
        out
    }

    /// The receiver's standing when it is not active: the reason an
    /// erasure or revocation sent under the gate's exception is audited with.
    fn exception(&self, item: &OutboxItem) -> Option<&'static str> {
        match self.0.rosters.status_of(&item.agreement, &item.to)? {
            MemberStatus::Active => None,
            MemberStatus::Suspended => Some("receiver-suspended"),
            MemberStatus::Removed => Some("receiver-removed"),
        }
    }

    /// Readies one due message: decodes its request and finds the
    /// receiver's nodes. An offer the roster no longer allows is given up
    /// here (see [`Exchange::refuse_locally`]); an undecodable item is left
    /// in place. `None`: nothing to send.
    pub fn prepare(&self, due: Due) -> Option<Delivery> {
        if !self.still_queued(&due) {
            return None;
        }
        let request = match self.outbox_request(&due.item) {
            Ok(r) => r,
            Err(e) => {
                warn!(message = %due.item.id, error = %e, "undecodable outbox item left in place");
                return None;
            }
        };
        if let Some(bundle) = request.bundle()
            && let Err(reason) = self.offer_allowed(bundle)
        {
            self.refuse_locally(&due.key, &due.item, reason);
            return None;
        }
        let nodes = {
            let chains = self.0.rosters.read();
            chains.get(&due.item.agreement).map(|c| c.state().nodes_of(&due.item.to).to_vec()).unwrap_or_default()
        };
        Some(Delivery { due, request, nodes })
    }

    /// Whether `due` is still in the outbox: a delivery may start from a
    /// scan taken before the item was accepted or cancelled.
    fn still_queued(&self, due: &Due) -> bool {
        matches!(self.0.store.get(Tree::Outbox, &due.key), Ok(Some(_)))
    }

    /// Why a message found no node: the error recorded when none was tried.
    pub fn no_node_error(item: &OutboxItem) -> String {
        format!("no node of {} in the roster of {}", item.to, item.agreement)
    }

    /// A withdrawal or revocation the receiver rejected for a reason that
    /// can pass (a key the receiver's roster does not know yet, a roster
    /// behind, a clock ahead): it is signed again, now and with the current
    /// key, under a new message id (the receiver answers a replayed id with
    /// the receipt it stored), and retried with backoff; the rejection is
    /// kept with the consent and audited. The consent shows no erasure
    /// receipt until one comes.
    fn retry_rejected(&self, due: &Due, resp: Response, reason: Rejection) -> Result<(), super::Error> {
        let item = &due.item;
        let at = self.now();
        let mid = super::message_id();
        let request = match self.outbox_request(item)? {
            Request::Withdraw { withdrawal, .. } => {
                let mut w = withdrawal.body;
                w.withdrawn_at = at;
                w.issuer_key = self.0.issuer.public();
                Request::Withdraw { id: mid, withdrawal: Signed::new(w, |b| self.0.issuer.sign(b)) }
            }
            Request::Revoke { revocation, .. } => {
                let mut r = revocation.body;
                r.revoked_at = at;
                r.issuer_key = self.0.issuer.public();
                Request::Revoke { id: mid, revocation: Signed::new(r, |b| self.0.issuer.sign(b)) }
            }
            Request::Offer { .. } | Request::PresentedOffer { .. } => {
                return Err(super::Error::Invalid("an offer is not re-signed".into()));
            }
        };
        let mut next = item.clone();
        next.id = mid;
        next.request = request.encode();
        self.schedule_retry(&mut next, reason.code());
        let mut consent = self.consent(&item.consent)?;
        consent.receipts.push(resp.receipt);
        consent.messages.push(mid);
        let mut batch = Batch::default();
        batch.delete(Tree::Outbox, due.key.clone());
        next.put(&mut batch);
        put_consent(&mut batch, &consent);
        let mut ev = event(&format!("org:{}", item.to), Action::Rejection);
        ev.staff = Some(item.staff.clone());
        ev.org = Some(item.to.clone());
        ev.object = Some(format!("{}/{}", item.consent, item.id));
        ev.reason = Some(reason.code().to_string());
        self.0.audit.commit(batch, vec![ev], at)?;
        self.count_out(item.kind, format!("rejected:{}:retry", reason.code()));
        info!(message = %item.id, retry = %mid, reason = reason.code(), "rejected; re-signed and retried later");
        Ok(())
    }

    /// Counts one more attempt of `item`, failed with `last_error`, and sets
    /// its next attempt by backoff.
    fn schedule_retry(&self, item: &mut OutboxItem, last_error: &str) {
        item.attempts += 1;
        item.last_error = Some(last_error.chars().take(200).collect());
        let cfg = &self.0.settings;
        let delay = backoff_ms(item.attempts - 1, cfg.retry_initial_ms, cfg.retry_max_secs * 1000);
        item.set_next_attempt_ms(self.0.clock.now_ms() + delay as i64);
    }

    /// Records a failed delivery: counts it, and schedules the next attempt
    /// with backoff.
    pub fn retry_later(&self, due: &Due, last_error: &str) {
        let (key, item) = (due.key.clone(), &due.item);
        debug!(message = %item.id, attempts = item.attempts + 1, error = %last_error, "delivery failed; will retry");
        self.count_out(item.kind, "retry".into());
        let mut next = item.clone();
        self.schedule_retry(&mut next, last_error);
        let _home = self.lock_home();
        if !self.still_queued(due) {
            // Accepted or cancelled meanwhile: nothing to retry.
            return;
        }
        let mut batch = Batch::default();
        batch.put(Tree::Outbox, key, encoding::to_bytes(&next));
        if let Err(e) = self.0.store.commit(batch) {
            warn!(error = %e, "cannot record the retry");
        }
    }

    /// Whether an offer may still go out, by this node's own roster and
    /// the agreement's terms now (the same check as at grant and at the
    /// receiver). Fails closed.
    fn offer_allowed(&self, bundle: &Bundle) -> Result<(), Rejection> {
        let c = bundle.consent.consent();
        self.terms_allow(&c.agreement, &c.receiver, c.move_kind, &c.claims, self.now())
    }

    /// Gives up an offer the roster no longer allows: the consent shows the
    /// rejection and its reason; nothing was sent.
    fn refuse_locally(&self, key: &[u8], item: &OutboxItem, reason: Rejection) {
        let at = self.now();
        let _home = self.lock_home();
        let result = (|| -> Result<(), super::Error> {
            if self.0.store.get(Tree::Outbox, key)?.is_none() {
                return Ok(());
            }
            let mut consent = self.consent(&item.consent)?;
            if !matches!(consent.state, ConsentState::Withdrawn { .. }) {
                consent.state = ConsentState::Rejected { reason, at };
            }
            let mut batch = Batch::default();
            put_consent(&mut batch, &consent);
            batch.delete(Tree::Outbox, key.to_vec());
            let mut ev = event("system", Action::Rejection);
            ev.staff = Some(item.staff.clone());
            ev.org = Some(item.to.clone());
            ev.object = Some(format!("{}/{}", item.consent, item.id));
            ev.reason = Some(reason.code().to_string());
            self.0.audit.commit(batch, vec![ev], at)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                info!(message = %item.id, consent = %item.consent, reason = reason.code(), "offer not sent: the roster no longer allows it")
            }
            Err(e) => warn!(message = %item.id, error = %e, "cannot record a refused offer"),
        }
    }

    /// Checks a receipt by the protocol's rules ([`verify_receipt`]) and
    /// records it with the consent, removing the message from the outbox,
    /// in one commit.
    pub fn accept_receipt(&self, due: &Due, resp: Response) -> Result<(), ReceiptError> {
        let (key, item) = (&due.key, &due.item);
        let expect = Expected { message: item.id, kind: item.kind, receiver: &item.to, agreement: &item.agreement };
        let b = {
            let chains = self.0.rosters.read();
            verify_receipt(&resp.receipt, &expect, &*chains, self.now())?
        };
        let _home = self.lock_home();
        if !self.still_queued(due) {
            // Accepted already (a delivery started from an older scan), or
            // cancelled: the receipt verified, and changes nothing.
            debug!(message = %item.id, "receipt for a message no longer in the outbox; nothing to record");
            return Ok(());
        }
        let retry = match &b.outcome {
            Outcome::Rejected { reason } if item.kind != OutKind::Offer && !final_for_erasure(*reason) => Some(*reason),
            _ => None,
        };
        if let Some(reason) = retry {
            return Ok(self.retry_rejected(due, resp.clone(), reason)?);
        }
        let mut consent = self.consent(&item.consent)?;
        let at = self.now();
        let (action, reason) = match (&b.outcome, item.kind) {
            (Outcome::Received { .. }, OutKind::Offer) => {
                if !matches!(consent.state, ConsentState::Withdrawn { .. }) {
                    consent.state = ConsentState::Delivered { at: b.at };
                }
                (Action::Receipt, None)
            }
            (Outcome::Rejected { reason }, kind) => {
                if kind == OutKind::Offer && !matches!(consent.state, ConsentState::Withdrawn { .. }) {
                    consent.state = ConsentState::Rejected { reason: *reason, at: b.at };
                }
                (Action::Rejection, Some(reason.code().to_string()))
            }
            (Outcome::Erased { .. }, OutKind::Withdraw) => {
                if let ConsentState::Withdrawn { erased, .. } = &mut consent.state {
                    *erased = Some(b.at);
                }
                (Action::Erasure, self.exception(item).map(String::from))
            }
            (Outcome::RevocationAcknowledged { .. }, OutKind::Revoke) => {
                let why = match self.exception(item) {
                    Some(e) => format!("revocation-acknowledged:{e}"),
                    None => "revocation-acknowledged".into(),
                };
                (Action::Receipt, Some(why))
            }
            (outcome, kind) => {
                return Err(receipt::Error::OutcomeMismatch { kind, outcome: outcome.name() }.into());
            }
        };
        consent.receipts.push(resp.receipt.clone());
        let mut batch = Batch::default();
        put_consent(&mut batch, &consent);
        batch.delete(Tree::Outbox, key.to_vec());
        let mut ev = event(&format!("org:{}", item.to), action);
        ev.staff = Some(item.staff.clone());
        ev.org = Some(item.to.clone());
        ev.object = Some(format!("{}/{}", item.consent, item.id));
        ev.reason = reason.clone();
        self.0.audit.commit(batch, vec![ev], at).map_err(super::Error::from)?;
        // A revocation's acknowledgement is a delivery, not a rejection.
        let outcome = match &b.outcome {
            Outcome::Rejected { .. } => b.outcome.label(),
            _ => "delivered".into(),
        };
        self.count_out(item.kind, outcome.clone());
        info!(message = %item.id, consent = %item.consent, kind = item.kind.as_str(), to = %item.to, %outcome, "receipt stored");
        self.0.receipts_stored.send_modify(|n| *n += 1);
        Ok(())
    }
}

impl Exchange {
    /// Counts an outgoing message's outcome.
    fn count_out(&self, kind: OutKind, outcome: String) {
        let labels = ExchangeLabels { direction: "out".into(), kind: kind.as_str().into(), outcome };
        self.0.metrics.exchange_messages.get_or_create(&labels).inc();
    }
}

impl OutboxItem {
    /// When the next attempt is due (ms since the epoch).
    pub fn next_attempt_ms(&self) -> i64 {
        self.next_ms.unwrap_or(self.created_ms)
    }
    fn set_next_attempt_ms(&mut self, ms: i64) {
        self.next_ms = Some(ms);
    }
}

/// Rejections of a withdrawal or revocation that no retry can change: the
/// receiver holds another member's record under that id, or cannot read
/// the message at all.
fn final_for_erasure(reason: Rejection) -> bool {
    matches!(reason, Rejection::ConsentMismatch | Rejection::Malformed | Rejection::UnsupportedVersion)
}
