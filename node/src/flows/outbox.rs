//! The durable outbox: messages that must arrive (offers, withdrawals,
//! revocations) are written in the same commit as the change that caused
//! them, then delivered to the receiver's nodes (from the roster) with
//! exponential backoff and jitter until a valid signed receipt comes back.
//! A crash or partition delays delivery; it never loses it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use staffpass_protocol::bundle::{Exchange, Rejection, check_terms};
use staffpass_protocol::receipt::{self, Expected, Outcome, verify_receipt};
use staffpass_protocol::wire::exchange::{Request, Response};
use staffpass_protocol::{Bundle, MessageId, encoding};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use super::records::*;
use super::{backoff_ms, decode, event};
use crate::audit::Action;
use crate::metrics::ExchangeLabels;
use crate::network;
use crate::node::{Node, now};
use crate::store::{Batch, Tree};

/// Most deliveries in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// A stored outbox item with when it is next due.
#[derive(Debug, Clone)]
struct Due {
    item: OutboxItem,
    next_ms: i64,
}

impl Node {
    /// Runs the outbox until `stop`.
    pub async fn outbox_loop(self, mut stop: watch::Receiver<bool>) {
        let in_flight: Arc<Mutex<HashSet<MessageId>>> = Arc::default();
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let mut next_wake = Duration::from_secs(5);
            match self.outbox_items() {
                Ok(items) => {
                    self.metrics.outbox_pending.set(items.len() as i64);
                    let t = now_ms();
                    for (key, due) in items {
                        if due.next_ms > t {
                            next_wake = next_wake.min(Duration::from_millis((due.next_ms - t) as u64));
                            continue;
                        }
                        {
                            let mut f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                            if !f.insert(due.item.id) {
                                continue;
                            }
                        }
                        let Ok(permit) = permits.clone().acquire_owned().await else { return };
                        let node = self.clone();
                        let in_flight = in_flight.clone();
                        tokio::spawn(async move {
                            let id = due.item.id;
                            node.deliver(key, due).await;
                            in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                            drop(permit);
                            node.outbox_wake.notify_one();
                        });
                    }
                }
                Err(e) => warn!(error = %e, "cannot read the outbox"),
            }
            tokio::select! {
                _ = self.outbox_wake.notified() => {}
                _ = tokio::time::sleep(next_wake) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn outbox_items(&self) -> Result<Vec<(Vec<u8>, Due)>, super::Error> {
        self.store
            .scan_prefix(Tree::Outbox, b"")?
            .into_iter()
            .map(|(k, v)| {
                let item: OutboxItem = decode(&v, "outbox item")?;
                let next_ms = item.next_attempt_ms();
                Ok((k, Due { item, next_ms }))
            })
            .collect()
    }

    async fn deliver(&self, key: Vec<u8>, due: Due) {
        let item = due.item;
        let request = match Request::decode(&item.request) {
            Ok(r) => r,
            Err(e) => {
                warn!(message = %item.id, error = %e, "undecodable outbox item left in place");
                return;
            }
        };
        if let Request::Offer { bundle, .. } = &request
            && let Err(reason) = self.offer_allowed(bundle)
        {
            self.refuse_locally(&key, &item, reason);
            return;
        }
        let peers: Vec<libp2p::PeerId> = {
            let chains = self.rosters.read();
            chains
                .get(&item.agreement)
                .map(|c| c.state().nodes_of(&item.to).iter().filter_map(network::peer_of).collect())
                .unwrap_or_default()
        };
        let mut last_error = format!("no node of {} in the roster of {}", item.to, item.agreement);
        for peer in peers {
            match self.network.exchange(peer, request.clone()).await {
                Ok(resp) => match self.accept_receipt_blocking(&key, &item, resp).await {
                    Ok(()) => return,
                    Err(e) => last_error = e,
                },
                Err(e) => last_error = e.to_string(),
            }
        }
        debug!(message = %item.id, attempts = item.attempts + 1, error = %last_error, "delivery failed; will retry");
        self.metrics
            .exchange_messages
            .get_or_create(&ExchangeLabels {
                direction: "out".into(),
                kind: item.kind.as_str().into(),
                outcome: "retry".into(),
            })
            .inc();
        let mut next = item.clone();
        next.attempts += 1;
        next.last_error = Some(last_error.chars().take(200).collect());
        let cfg = &self.config.exchange;
        let delay = backoff_ms(next.attempts - 1, cfg.retry_initial_ms, cfg.retry_max_secs * 1000);
        next.set_next_attempt_ms(now_ms() + delay as i64);
        let mut batch = Batch::default();
        batch.put(Tree::Outbox, key, encoding::to_bytes(&next));
        if let Err(e) = self.store.commit(batch) {
            warn!(error = %e, "cannot record the retry");
        }
    }

    /// Whether an offer may still go out, by this node's own roster and
    /// the agreement's terms now (the same check as at grant and at the
    /// receiver). Fails closed.
    fn offer_allowed(&self, bundle: &Bundle) -> Result<(), Rejection> {
        let consent = bundle.consent.consent();
        let exchange = Exchange {
            agreement: &consent.agreement,
            issuer: &self.org,
            receiver: &consent.receiver,
            move_kind: consent.move_kind,
            claims: &consent.claims,
        };
        check_terms(&*self.rosters.read(), &exchange, now()).map(|_| ())
    }

    /// Gives up an offer the roster no longer allows: the consent shows the
    /// rejection and its reason; nothing was sent.
    fn refuse_locally(&self, key: &[u8], item: &OutboxItem, reason: Rejection) {
        let at = now();
        let result = (|| -> Result<(), super::Error> {
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
            self.audit.commit(batch, vec![ev], at)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                info!(message = %item.id, consent = %item.consent, reason = reason.code(), "offer not sent: the roster no longer allows it")
            }
            Err(e) => warn!(message = %item.id, error = %e, "cannot record a refused offer"),
        }
    }

    /// [`Node::accept_receipt`] on the blocking pool (its commit waits for
    /// an fsync; receipts arriving together then share one flush).
    async fn accept_receipt_blocking(&self, key: &[u8], item: &OutboxItem, resp: Response) -> Result<(), String> {
        let (key, item) = (key.to_vec(), item.clone());
        self.blocking(move |n| n.accept_receipt(&key, &item, resp))
            .await
            .unwrap_or_else(|e| Err(format!("receipt handler failed: {e}")))
    }

    /// Checks a receipt by the protocol's rules ([`verify_receipt`]) and
    /// records it with the consent, removing the message from the outbox,
    /// in one commit.
    fn accept_receipt(&self, key: &[u8], item: &OutboxItem, resp: Response) -> Result<(), String> {
        let expect = Expected { message: item.id, kind: item.kind, receiver: &item.to, agreement: &item.agreement };
        let b = {
            let chains = self.rosters.read();
            verify_receipt(&resp.receipt, &expect, &*chains, now()).map_err(|e| e.to_string())?
        };
        let mut consent = self.consent(&item.consent).map_err(|e| e.to_string())?;
        let at = now();
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
                (Action::Erasure, None)
            }
            (Outcome::RevocationAcknowledged { .. }, OutKind::Revoke) => {
                (Action::Receipt, Some("revocation-acknowledged".into()))
            }
            (outcome, kind) => {
                return Err(receipt::Error::OutcomeMismatch { kind, outcome: outcome.name() }.to_string());
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
        self.audit.commit(batch, vec![ev], at).map_err(|e| e.to_string())?;
        // A revocation's acknowledgement is a delivery, not a rejection.
        let outcome = match &b.outcome {
            Outcome::Rejected { .. } => b.outcome.label(),
            _ => "delivered".into(),
        };
        self.metrics
            .exchange_messages
            .get_or_create(&ExchangeLabels {
                direction: "out".into(),
                kind: item.kind.as_str().into(),
                outcome: outcome.clone(),
            })
            .inc();
        info!(message = %item.id, consent = %item.consent, kind = item.kind.as_str(), to = %item.to, %outcome, "receipt stored");
        self.receipts_stored.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Runs the expiry sweep at start and then periodically, until `stop`.
    pub async fn sweep_loop(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.exchange.expiry_sweep_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.sweep_expired() {
                warn!(error = %e, "expiry sweep failed");
            }
        }
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
