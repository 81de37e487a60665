//! The agreements this node holds: their roster chains, kept in the store,
//! checked entry by entry with the protocol's rules, and the set of member
//! nodes that may connect.
//!
//! An entry is accepted only if `protocol::roster` accepts it; it is
//! durable (with its audit entry) before it is acted on. Two different
//! valid entries at one seq halt the chain (both refused) and raise an
//! alarm that `/v1/status` and the metrics show until stewards resolve it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use staffpass_protocol::roster::{self as proto, Appended, Chain, Entry, Equivocation, MemberStatus, Prepared};
use staffpass_protocol::signing::Hash;
use staffpass_protocol::wire::roster::{self as wire_roster, Head};
use staffpass_protocol::{AgreementId, NodeId, OrgId, Timestamp, encoding};
use tracing::{error, info, warn};

use crate::audit::{self, Action, Audit};
use crate::metrics::Metrics;
use crate::store::{self, Batch, Store, Tree};

/// Why a roster entry or chain was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The protocol refused it.
    #[error(transparent)]
    Refused(#[from] proto::Error),
    /// This node holds no chain for the agreement, and the entry is not a genesis.
    #[error("this node holds no roster for agreement {agreement}; submit the whole chain from its genesis")]
    UnknownAgreement {
        /// The agreement.
        agreement: AgreementId,
    },
    /// A stored chain no longer verifies.
    #[error(
        "stored roster of {agreement} does not verify ({source}); the data directory may be damaged: restore it from backup"
    )]
    Corrupt {
        /// The agreement.
        agreement: String,
        /// Why.
        source: proto::Error,
    },
    /// A stored entry cannot be decoded.
    #[error("stored roster entry {key} cannot be decoded ({source}); restore the data directory from backup")]
    Undecodable {
        /// The store key.
        key: String,
        /// Why.
        source: encoding::Error,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] audit::Error),
    /// The blocking task that applies the entry did not finish (it
    /// panicked or the runtime is shutting down); nothing was acted on.
    #[error("the roster change did not complete: {0}")]
    Interrupted(String),
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        use proto::Error as P;
        match self {
            Error::Refused(e) => match e {
                P::UnsupportedVersion { .. } => "unsupported-version",
                P::NotGenesis => "not-genesis",
                P::WrongAgreement { .. } => "wrong-agreement",
                P::WrongSeq { .. } => "wrong-seq",
                P::Gap { .. } => "gap",
                P::BadPrev { .. } => "bad-prev",
                P::IssuedBeforePrevious { .. } => "issued-before-previous",
                P::UnknownSigner { .. } => "unknown-signer",
                P::DuplicateSigner { .. } => "duplicate-signer",
                P::BadSignature { .. } => "bad-signature",
                P::BelowThreshold { .. } => "below-threshold",
                P::Invalid(_) => "invalid-change",
                P::Equivocation { .. } => "equivocation",
                P::GenesisMismatch { .. } => "genesis-mismatch",
                P::Resolved { .. } => "resolved",
                P::FormerStewards { .. } => "former-stewards",
                P::FromTheFuture { .. } => "from-the-future",
                P::Halted { .. } => "halted",
            },
            Error::UnknownAgreement { .. } => "unknown-agreement",
            Error::Corrupt { .. } | Error::Undecodable { .. } => "corrupt",
            Error::Store(_) | Error::Audit(_) => "storage",
            Error::Interrupted(_) => "interrupted",
        }
    }
}

fn entry_key(agreement: &AgreementId, seq: u64) -> Vec<u8> {
    let mut k = format!("e/{agreement}/").into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn halt_key(agreement: &AgreementId) -> Vec<u8> {
    format!("h/{agreement}").into_bytes()
}

fn override_key(agreement: &AgreementId, seq: u64) -> Vec<u8> {
    let mut k = format!("o/{agreement}/").into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn evidence_key(agreement: &AgreementId, seq: u64, hash: &Hash) -> Vec<u8> {
    let mut k = format!("f/{agreement}/").into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&hash.0);
    k
}

/// Most pieces of former-steward evidence kept per agreement.
const MAX_EVIDENCE: usize = 32;

/// Where a roster entry came from. Only the node's own admin can install a
/// chain (a genesis); a peer can only extend a chain the node holds.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The local admin API (or `roster submit`), as the named client.
    Admin(String),
    /// A peer, by gossip or anti-entropy.
    Peer(libp2p::PeerId),
}

impl Origin {
    /// The actor named in logs and the audit.
    fn actor(&self) -> String {
        match self {
            Origin::Admin(who) => who.clone(),
            Origin::Peer(peer) => format!("peer:{peer}"),
        }
    }
}

/// An alarm raised by a roster (shown in the API's status).
pub use staffpass_api::status::Alarm;

/// The chains this node holds.
pub struct Rosters {
    org: OrgId,
    chains: RwLock<BTreeMap<AgreementId, Chain>>,
    /// One writer at a time: it decides under the read lock, makes the
    /// outcome durable holding only this, then takes the write lock just
    /// to commit it in memory (readers never wait for an fsync).
    writer: Mutex<()>,
    /// Entries at taken seqs signed by former stewards, by agreement.
    evidence: RwLock<BTreeMap<AgreementId, Vec<Entry>>>,
    audit: Arc<Audit>,
    metrics: Arc<Metrics>,
}

impl Rosters {
    /// Loads and re-verifies every stored chain.
    pub fn load(org: OrgId, store: Arc<dyn Store>, audit: Arc<Audit>, metrics: Arc<Metrics>) -> Result<Self, Error> {
        let mut entries: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for (k, v) in store.scan_prefix(Tree::Rosters, b"e/")? {
            let e = encoding::from_bytes::<Entry>(&v, usize::MAX, "stored roster entry")
                .map_err(|source| Error::Undecodable { key: String::from_utf8_lossy(&k).into_owned(), source })?;
            entries.entry(e.body.agreement.to_string()).or_default().push(e);
        }
        let mut evidence: BTreeMap<AgreementId, Vec<Entry>> = BTreeMap::new();
        for (k, v) in store.scan_prefix(Tree::Rosters, b"f/")? {
            let e = encoding::from_bytes::<Entry>(&v, usize::MAX, "stored roster evidence")
                .map_err(|source| Error::Undecodable { key: String::from_utf8_lossy(&k).into_owned(), source })?;
            evidence.entry(e.body.agreement.clone()).or_default().push(e);
        }
        let mut chains = BTreeMap::new();
        for (agreement, list) in entries {
            let halted = match AgreementId::from_str(&agreement) {
                Ok(id) => match store.get(Tree::Rosters, &halt_key(&id))? {
                    Some(v) => Some(
                        encoding::from_bytes::<Equivocation>(&v, usize::MAX, "equivocation")
                            .map_err(|source| Error::Undecodable { key: format!("h/{agreement}"), source })?,
                    ),
                    None => None,
                },
                Err(_) => None,
            };
            let mut chain = Chain::restore(list, halted)
                .map_err(|source| Error::Corrupt { agreement: agreement.clone(), source })?;
            let prefix = format!("o/{agreement}/").into_bytes();
            for (k, _) in store.scan_prefix(Tree::Rosters, &prefix)? {
                let seq = k.get(prefix.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
                let seq = seq.ok_or_else(|| Error::Undecodable {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    source: encoding::Error::Malformed { what: "roster override key", reason: "no seq".into() },
                })?;
                chain.mark_overridden(seq);
            }
            chains.insert(chain.agreement().clone(), chain);
        }
        let r = Rosters {
            org,
            chains: RwLock::new(chains),
            writer: Mutex::new(()),
            evidence: RwLock::new(evidence),
            audit,
            metrics,
        };
        r.update_metrics(Timestamp::default());
        Ok(r)
    }

    /// Read access to every chain (for `verify_bundle` and the API).
    pub fn read(&self) -> RwLockReadGuard<'_, BTreeMap<AgreementId, Chain>> {
        self.chains.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Submits one entry (from the API or a peer). On `Applied` the entry is
    /// durable; the caller then refreshes the member set and spreads it.
    /// A chain the node does not hold is created only from `Origin::Admin`.
    pub fn submit(&self, entry: Entry, origin: &Origin, now: Timestamp) -> Result<Appended, Error> {
        let agreement = entry.body.agreement.clone();
        let seq = entry.body.seq;
        let actor = origin.actor();
        let actor = actor.as_str();
        let change = entry.body.change.clone();
        let result = self.decide_and_commit(entry, origin, actor, now);
        match &result {
            Ok(Appended::Applied) => {
                info!(%agreement, seq, change = change.name(), %actor, "roster entry applied");
                Metrics::count(&self.metrics.roster_entries, "applied");
            }
            Ok(Appended::AlreadyHave) => Metrics::count(&self.metrics.roster_entries, "duplicate"),
            Err(Error::Refused(proto::Error::Equivocation { seq, .. })) => {
                error!(%agreement, seq, %actor, "EQUIVOCATION: two different validly signed roster entries at one seq; both refused, roster halted until its stewards resolve it");
                Metrics::count(&self.metrics.roster_entries, "equivocation");
            }
            Err(e @ Error::Refused(proto::Error::FormerStewards { .. })) => {
                warn!(%agreement, seq, %actor, reason = e.code(), "roster entry signed by former stewards at a taken seq: refused, kept as evidence");
                Metrics::count(&self.metrics.roster_entries, "former-stewards");
            }
            Err(e) => {
                warn!(%agreement, seq, %actor, reason = e.code(), "roster entry refused");
                Metrics::count(&self.metrics.roster_entries, "refused");
            }
        }
        self.update_metrics(now);
        result
    }

    /// Decides under the read lock, makes the outcome durable holding only
    /// the writer lock, then commits it in memory under the write lock.
    fn decide_and_commit(&self, entry: Entry, origin: &Origin, actor: &str, now: Timestamp) -> Result<Appended, Error> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        proto::check_clock(&entry, now)?;
        let agreement = entry.body.agreement.clone();
        let (decided, held) = {
            let chains = self.read();
            match chains.get(&agreement) {
                None if entry.body.seq != 0 || matches!(origin, Origin::Peer(_)) => {
                    return Err(Error::UnknownAgreement { agreement });
                }
                None => (None, 0),
                Some(chain) => (Some(chain.prepare(entry.clone())), chain.entries().len() as u64),
            }
        };
        match decided {
            None => {
                let chain = Chain::new(entry.clone())?;
                self.persist(&entry, actor, now, "genesis")?;
                self.chains.write().unwrap_or_else(|p| p.into_inner()).insert(agreement, chain);
                Ok(Appended::Applied)
            }
            Some(Err(e @ proto::Error::FormerStewards { .. })) => {
                self.keep_evidence(entry, actor, now)?;
                Err(Error::Refused(e))
            }
            Some(Err(e)) => Err(Error::Refused(e)),
            Some(Ok(prepared)) => {
                match &prepared {
                    Prepared::AlreadyHave => {}
                    Prepared::Apply { entry, .. } => self.persist(entry, actor, now, entry.body.change.name())?,
                    Prepared::Halt(eq) => self.persist_halt(eq, actor, now)?,
                    Prepared::Resolve { chosen, entry, .. } => {
                        self.persist_resolution(chosen, Some(entry), held, actor, now)?
                    }
                    Prepared::Override { chosen, .. } => self.persist_resolution(chosen, None, held, actor, now)?,
                }
                self.commit(&agreement, prepared)
            }
        }
    }

    fn commit(&self, agreement: &AgreementId, prepared: Prepared) -> Result<Appended, Error> {
        let mut chains = self.chains.write().unwrap_or_else(|p| p.into_inner());
        let chain = chains.get_mut(agreement).ok_or(Error::UnknownAgreement { agreement: agreement.clone() })?;
        Ok(chain.commit(prepared)?)
    }

    /// This node's admin ends a halt locally: of the two entries at the
    /// halted seq, the one with hash `chosen` stands; the other is refused
    /// from then on. Audited as `override`. Stewards should still sign a
    /// resolution (`roster propose resolve`), which every node applies.
    pub fn override_halt(
        &self,
        agreement: &AgreementId,
        chosen: &Hash,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (prepared, held) = {
            let chains = self.read();
            let chain = chains.get(agreement).ok_or(Error::UnknownAgreement { agreement: agreement.clone() })?;
            (chain.prepare_override(chosen)?, chain.entries().len() as u64)
        };
        if let Prepared::Override { chosen, .. } = &prepared {
            self.persist_resolution(chosen, None, held, actor, now)?;
        }
        self.commit(agreement, prepared)?;
        warn!(%agreement, %actor, "roster halt overridden locally by the node's admin");
        self.update_metrics(now);
        Ok(())
    }

    /// Makes a resolution durable: the halt marker goes, the entries from
    /// the halted seq on (`held` of them in all) are replaced by the chosen
    /// entry and the stewards' resolution after it, or, for a local
    /// override, marked as overridden.
    fn persist_resolution(
        &self,
        chosen: &Entry,
        resolution: Option<&Entry>,
        held: u64,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        let agreement = &chosen.body.agreement;
        let seq = chosen.body.seq;
        let mut batch = Batch::default();
        batch.delete(Tree::Rosters, halt_key(agreement));
        for stale in seq..held {
            batch.delete(Tree::Rosters, entry_key(agreement, stale));
        }
        batch.put(Tree::Rosters, entry_key(agreement, seq), encoding::to_bytes(chosen));
        let reason = match resolution {
            Some(r) => {
                batch.put(Tree::Rosters, entry_key(agreement, r.body.seq), encoding::to_bytes(r));
                "resolve"
            }
            None => {
                batch.put(Tree::Rosters, override_key(agreement, seq), chosen.hash().0.to_vec());
                "override"
            }
        };
        let event = audit::Event {
            actor: actor.to_string(),
            action: Action::RosterChange,
            staff: None,
            org: None,
            object: Some(format!("{agreement}#{seq}")),
            reason: Some(reason.into()),
        };
        self.audit.commit(batch, vec![event], now)?;
        Ok(())
    }

    /// Keeps an entry signed by former stewards as evidence (at most
    /// [`MAX_EVIDENCE`] per agreement) and audits it; it raises an alarm.
    fn keep_evidence(&self, entry: Entry, actor: &str, now: Timestamp) -> Result<(), Error> {
        let agreement = entry.body.agreement.clone();
        let hash = entry.hash();
        {
            let held = self.evidence.read().unwrap_or_else(|p| p.into_inner());
            let list = held.get(&agreement).map(Vec::as_slice).unwrap_or_default();
            if list.len() >= MAX_EVIDENCE || list.iter().any(|e| e.hash() == hash) {
                return Ok(());
            }
        }
        let mut batch = Batch::default();
        batch.put(Tree::Rosters, evidence_key(&agreement, entry.body.seq, &hash), encoding::to_bytes(&entry));
        let event = audit::Event {
            actor: actor.to_string(),
            action: Action::RosterChange,
            staff: None,
            org: None,
            object: Some(format!("{}#{}", agreement, entry.body.seq)),
            reason: Some("former-stewards".into()),
        };
        self.audit.commit(batch, vec![event], now)?;
        self.evidence.write().unwrap_or_else(|p| p.into_inner()).entry(agreement).or_default().push(entry);
        Ok(())
    }

    fn persist(&self, entry: &Entry, actor: &str, now: Timestamp, change: &str) -> Result<(), Error> {
        let mut batch = Batch::default();
        batch.put(Tree::Rosters, entry_key(&entry.body.agreement, entry.body.seq), encoding::to_bytes(entry));
        let event = audit::Event {
            actor: actor.to_string(),
            action: Action::RosterChange,
            staff: None,
            org: None,
            object: Some(format!("{}#{}", entry.body.agreement, entry.body.seq)),
            reason: Some(change.to_string()),
        };
        self.audit.commit(batch, vec![event], now)?;
        Ok(())
    }

    fn persist_halt(&self, eq: &Equivocation, actor: &str, now: Timestamp) -> Result<(), Error> {
        let mut batch = Batch::default();
        batch.put(Tree::Rosters, halt_key(&eq.existing.body.agreement), encoding::to_bytes(eq));
        let event = audit::Event {
            actor: actor.to_string(),
            action: Action::RosterChange,
            staff: None,
            org: None,
            object: Some(format!("{}#{}", eq.existing.body.agreement, eq.seq)),
            reason: Some("equivocation".into()),
        };
        self.audit.commit(batch, vec![event], now)?;
        Ok(())
    }

    /// Refreshes the roster gauges.
    pub fn update_metrics(&self, now: Timestamp) {
        for (id, c) in self.read().iter() {
            let a = id.as_str();
            Metrics::set_agreement(&self.metrics.roster_seq, a, c.seq() as i64);
            Metrics::set_agreement(&self.metrics.roster_equivocation, a, i64::from(c.halted().is_some()));
            if now != Timestamp::default() {
                Metrics::set_agreement(&self.metrics.roster_stale, a, i64::from(!c.state().is_fresh(now)));
            }
        }
    }

    /// The nodes of every active member of each agreement this node is an
    /// active member of, by agreement, each with the address hints its
    /// member's entry gives (roster sync turns them into the member set,
    /// choosing in each agreement the nodes it keeps connected).
    pub fn member_nodes_by_agreement(&self) -> BTreeMap<AgreementId, Vec<(NodeId, Vec<String>)>> {
        self.read()
            .iter()
            .filter(|(_, chain)| chain.state().status(&self.org) == Some(MemberStatus::Active))
            .map(|(id, chain)| {
                let nodes = chain
                    .state()
                    .members
                    .values()
                    .filter(|m| m.status == MemberStatus::Active)
                    .flat_map(|m| m.nodes.iter().map(|n| (n.clone(), m.addresses.clone())))
                    .collect();
                (id.clone(), nodes)
            })
            .collect()
    }

    /// The nodes of every active member of the agreements this node is an
    /// active member of, each with the address hints the rosters give it
    /// (in roster order).
    pub fn member_nodes(&self) -> BTreeMap<NodeId, Vec<String>> {
        let mut out: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for (n, hints) in self.member_nodes_by_agreement().into_values().flatten() {
            out.entry(n).or_default().extend(hints);
        }
        out
    }

    /// The nodes of the active members of every agreement in which this
    /// node's organisation is suspended or removed: they may still send it
    /// erasure and revocation requests for the passports it holds, so it
    /// admits them (it dials none of them). Nodes already in
    /// [`Rosters::member_nodes`] are left out.
    pub fn answer_only_nodes(&self) -> BTreeSet<NodeId> {
        let dialled = self.member_nodes();
        let mut out = BTreeSet::new();
        for chain in self.read().values() {
            let st = chain.state();
            if !matches!(st.status(&self.org), Some(MemberStatus::Suspended | MemberStatus::Removed)) {
                continue;
            }
            for m in st.members.values().filter(|m| m.status == MemberStatus::Active) {
                out.extend(m.nodes.iter().filter(|n| !dialled.contains_key(*n)).cloned());
            }
        }
        out
    }

    /// The status of `org` in `agreement`'s roster, if it is held and
    /// names it.
    pub fn status_of(&self, agreement: &AgreementId, org: &OrgId) -> Option<MemberStatus> {
        self.read().get(agreement)?.state().status(org)
    }

    /// The heads of every chain. A halted chain reports, at the seq of
    /// the equivocation, a hash that matches neither entry, so every peer
    /// that compares heads fetches both and sees the equivocation too.
    pub fn heads(&self) -> Vec<Head> {
        self.read().values().map(head).collect()
    }

    /// The heads of the chains `node` belongs to as an active or suspended
    /// member (nothing about any other agreement is shown to it, not even
    /// its id).
    ///
    /// A removed member is shown the chain up to the entry that removed it
    /// (so it learns that it was removed), never anything after.
    pub fn heads_for(&self, node: &NodeId) -> Vec<Head> {
        self.read()
            .values()
            .filter_map(|c| {
                let until = readable_until(c, node)?;
                let h = head(c);
                if h.seq <= until {
                    return Some(h);
                }
                let hash = c.hash_at(until)?;
                Some(Head { agreement: c.agreement().clone(), seq: until, hash })
            })
            .collect()
    }

    /// The roster gossip topic of every chain held: its name, whether this
    /// node subscribes (its organisation is an active or suspended member),
    /// and whose nodes may subscribe to it (the nodes of its active and
    /// suspended members) or are let go after a grace period (removed
    /// members' nodes, which may not have applied their removal yet).
    pub fn topics(&self) -> Vec<TopicRule> {
        self.read()
            .values()
            .filter_map(|c| {
                let genesis = c.hash_at(0)?;
                let st = c.state();
                let mut readers = Vec::new();
                let mut former = Vec::new();
                for m in st.members.values() {
                    let into = if matches!(m.status, MemberStatus::Active | MemberStatus::Suspended) {
                        &mut readers
                    } else {
                        &mut former
                    };
                    into.extend(m.nodes.iter().cloned());
                }
                let subscribed = matches!(st.status(&self.org), Some(MemberStatus::Active | MemberStatus::Suspended));
                Some(TopicRule {
                    agreement: c.agreement().clone(),
                    topic: wire_roster::topic(&genesis),
                    subscribed,
                    readers,
                    former,
                })
            })
            .collect()
    }

    /// The roster gossip topic of `agreement`, if this node holds it.
    pub fn topic_of(&self, agreement: &AgreementId) -> Option<String> {
        self.read().get(agreement)?.hash_at(0).map(|g| wire_roster::topic(&g))
    }

    /// The agreement whose roster gossip topic is `topic`, if this node
    /// holds it.
    pub fn agreement_of_topic(&self, topic: &str) -> Option<AgreementId> {
        self.read()
            .values()
            .find(|c| c.hash_at(0).is_some_and(|g| wire_roster::topic(&g) == topic))
            .map(|c| c.agreement().clone())
    }

    /// Entries of a chain from `from`, at most `limit` and at most `budget`
    /// encoded bytes (at least one entry), if `node` belongs to an active
    /// or suspended member of it; `None` otherwise, the same answer as for
    /// a chain this node does not hold. A halted chain serves both
    /// conflicting entries at the seq of the equivocation, and nothing
    /// after it.
    pub fn entries_for(
        &self,
        agreement: &AgreementId,
        from: u64,
        limit: usize,
        budget: usize,
        node: &NodeId,
    ) -> Option<Vec<Entry>> {
        let chains = self.read();
        let c = chains.get(agreement)?;
        let until = readable_until(c, node)?;
        let halt = c.halted().map(|eq| eq.seq);
        let mut out = Vec::new();
        let mut used = 0usize;
        let evidence =
            c.halted().filter(|eq| from <= eq.seq && eq.seq <= until).map(|eq| [&eq.existing, &eq.conflicting]);
        let held = c
            .entries_from(from)
            .iter()
            .take_while(|e| halt.is_none_or(|h| e.body.seq < h) && e.body.seq <= until)
            .take(limit);
        for e in held.chain(evidence.into_iter().flatten()) {
            let len = encoding::to_bytes(e).len();
            if !out.is_empty() && used + len > budget {
                break;
            }
            used += len;
            out.push(e.clone());
        }
        Some(out)
    }

    /// The hash this node reports for `seq` of a chain: the entry's, or at
    /// a halted seq the evidence marker of [`Rosters::heads`].
    pub fn hash_at(&self, agreement: &AgreementId, seq: u64) -> Option<Hash> {
        let chains = self.read();
        let c = chains.get(agreement)?;
        if let Some(eq) = c.halted().filter(|eq| eq.seq == seq) {
            return Some(evidence_marker(eq));
        }
        c.entries().get(usize::try_from(seq).ok()?).map(Entry::hash)
    }

    /// Alarms: every halted chain, and every entry signed by former
    /// stewards at a taken seq (evidence; the chain goes on).
    pub fn alarms(&self) -> Vec<Alarm> {
        let chains = self.read();
        let mut out: Vec<Alarm> = chains
            .values()
            .filter_map(|c| c.halted())
            .map(|eq| Alarm {
                kind: "equivocation".into(),
                agreement: eq.existing.body.agreement.clone(),
                seq: eq.seq,
                hashes: [eq.existing.hash(), eq.conflicting.hash()],
                message: "two different validly signed roster entries at one seq; exchanges under this agreement are stopped until its stewards resolve it".into(),
            })
            .collect();
        for (agreement, list) in self.evidence.read().unwrap_or_else(|p| p.into_inner()).iter() {
            let Some(chain) = chains.get(agreement) else { continue };
            for e in list {
                let held = chain.hash_at(e.body.seq).unwrap_or_default();
                out.push(Alarm {
                    kind: "former-stewards".into(),
                    agreement: agreement.clone(),
                    seq: e.body.seq,
                    hashes: [held, e.hash()],
                    message: "stewards no longer in office signed a different entry at a taken seq; refused and kept as evidence, the chain goes on; tell the agreement's stewards (their old keys may be compromised)".into(),
                });
            }
        }
        out
    }
}

/// True if `node` belongs to an active or suspended member of the chain: a
/// removed member reads nothing added after its removal, an outsider
/// nothing at all.
/// The last seq of a chain that `node` may read: all of it for a node of
/// an active or suspended member, up to the entry that removed it for a
/// removed member's, nothing (`None`) for anyone else.
fn readable_until(c: &Chain, node: &NodeId) -> Option<u64> {
    let m = c.state().org_of_node(node)?;
    match m.status {
        MemberStatus::Active | MemberStatus::Suspended => Some(u64::MAX),
        MemberStatus::Removed => Some(m.status_seq),
    }
}

/// One agreement's roster gossip topic and who may subscribe to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    /// The agreement.
    pub agreement: AgreementId,
    /// The topic's name ([`wire_roster::topic`] of the genesis hash).
    pub topic: String,
    /// Whether this node subscribes to it.
    pub subscribed: bool,
    /// Nodes that may subscribe (of active and suspended members).
    pub readers: Vec<NodeId>,
    /// Nodes of removed members: a subscription is let go for a grace
    /// period, then the peer is disconnected.
    pub former: Vec<NodeId>,
}

/// A chain's head as reported to peers.
fn head(c: &Chain) -> Head {
    let agreement = c.agreement().clone();
    match c.halted() {
        Some(eq) => Head { agreement, seq: eq.seq, hash: evidence_marker(eq) },
        None => Head { agreement, seq: c.seq(), hash: c.head() },
    }
}

/// A hash that stands for "both of these entries": it matches neither, and
/// is the same whichever of the two a node saw first.
fn evidence_marker(eq: &Equivocation) -> Hash {
    let (a, b) = (eq.existing.hash(), eq.conflicting.hash());
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Hash::of(&[b"staffpass/equivocation\0".as_slice(), &lo.0, &hi.0].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use staffpass_protocol::testkit;

    fn rosters() -> Rosters {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let audit = Arc::new(Audit::open(store.clone()).expect("audit"));
        Rosters::load(testkit::org("RJZ"), store, audit, Arc::new(Metrics::new())).expect("rosters")
    }

    #[test]
    fn only_the_admin_installs_a_chain_a_peer_only_extends_one() {
        let r = rosters();
        let chain = testkit::roster().chain;
        let genesis = chain.entries()[0].clone();
        let peer = Origin::Peer(libp2p::PeerId::random());
        let err = r.submit(genesis.clone(), &peer, testkit::now()).expect_err("a peer cannot create a chain");
        assert_eq!(err.code(), "unknown-agreement");
        assert!(r.read().is_empty());

        let admin = Origin::Admin("admin".into());
        assert_eq!(r.submit(genesis, &admin, testkit::now()).expect("admin installs"), Appended::Applied);
        assert_eq!(
            r.submit(chain.entries()[1].clone(), &peer, testkit::now()).expect("peer extends"),
            Appended::Applied
        );
        assert_eq!(r.read().get(chain.agreement()).map(Chain::seq), Some(1));
    }

    #[test]
    fn future_dated_entries_are_refused_and_former_stewards_raise_an_alarm_not_a_halt() {
        let r = rosters();
        let mut b = testkit::roster();
        let admin = Origin::Admin("admin".into());
        for e in b.chain.entries() {
            r.submit(e.clone(), &admin, b.clock).expect("chain installs");
        }
        // Dated a year after this node's clock.
        let late = b.entry(proto::Change::Resign { valid_until: b.clock.plus_days(500) }, 2);
        let mut late = late;
        late.body.issued_at = b.clock.plus_days(365);
        late.signatures.clear();
        late.sign(&b.stewards[0]);
        late.sign(&b.stewards[1]);
        let err = r.submit(late, &admin, b.clock).expect_err("from the future");
        assert_eq!(err.code(), "from-the-future");

        // Stewards 1 and 2 are replaced; then they sign another entry at seq 2.
        let new = [testkit::steward(0).public(), testkit::steward(5).public()].into_iter().collect();
        b.push(proto::Change::SetStewards { stewards: new, threshold: 2 });
        r.submit(b.chain.entries()[3].clone(), &admin, b.clock).expect("steward change applies");
        let mut fork = b.chain.entries()[2].clone();
        fork.body.issued_at = fork.body.issued_at.plus_secs(1);
        fork.signatures.clear();
        fork.sign(&testkit::steward(1));
        fork.sign(&testkit::steward(2));
        let peer = Origin::Peer(libp2p::PeerId::random());
        let err = r.submit(fork, &peer, b.clock).expect_err("former stewards");
        assert_eq!(err.code(), "former-stewards");
        let alarms = r.alarms();
        assert_eq!(alarms.len(), 1);
        assert_eq!((alarms[0].kind.as_str(), alarms[0].seq), ("former-stewards", 2));
        assert!(r.read().values().all(|c| c.halted().is_none()));
    }

    #[test]
    fn a_fetch_answer_is_filled_by_byte_budget() {
        let r = rosters();
        let mut b = testkit::roster();
        for _ in 0..20 {
            let until = b.chain.state().valid_until.plus_days(1);
            b.push(proto::Change::Resign { valid_until: until });
        }
        let admin = Origin::Admin("admin".into());
        for e in b.chain.entries() {
            r.submit(e.clone(), &admin, b.clock).expect("chain installs");
        }
        let member = testkit::node("RJZ");
        let size = encoding::to_bytes(&b.chain.entries()[5]).len();
        let some = r.entries_for(b.chain.agreement(), 3, 128, size * 4, &member).expect("a member reads");
        assert!(!some.is_empty() && some.len() <= 4, "{} entries", some.len());
        let used: usize = some.iter().map(|e| encoding::to_bytes(e).len()).sum();
        assert!(used <= size * 4);
        assert_eq!(some[0].body.seq, 3);
        // One entry is always served, however small the budget.
        assert_eq!(r.entries_for(b.chain.agreement(), 3, 128, 1, &member).map(|e| e.len()), Some(1));
        // An outsider gets nothing.
        assert!(r.entries_for(b.chain.agreement(), 0, 128, usize::MAX, &testkit::node("RV5")).is_none());
    }
}
