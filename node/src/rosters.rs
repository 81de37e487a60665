//! The agreements this node holds: their roster chains, kept in the store,
//! checked entry by entry with the protocol's rules, and the set of member
//! nodes that may connect.
//!
//! An entry is accepted only if `protocol::roster` accepts it; it is
//! durable (with its audit entry) before it is acted on. Two different
//! valid entries at one seq halt the chain (both refused) and raise an
//! alarm that `/v1/status` and the metrics show until stewards resolve it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use libp2p::Multiaddr;
use staffpass_protocol::roster::{self as proto, Appended, Chain, Entry, Equivocation, MemberStatus};
use staffpass_protocol::signing::Hash;
use staffpass_protocol::wire::roster::Head;
use staffpass_protocol::{AgreementId, NodeId, OrgId, Timestamp, encoding};
use tracing::{error, info, warn};

use crate::audit::{self, Action, Audit};
use crate::metrics::Metrics;
use crate::network;
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

/// An alarm raised by a roster (shown in the API's status).
pub use staffpass_api::status::Alarm;

/// The chains this node holds.
pub struct Rosters {
    org: OrgId,
    chains: RwLock<BTreeMap<AgreementId, Chain>>,
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
            let chain = Chain::restore(list, halted).map_err(|source| Error::Corrupt { agreement, source })?;
            chains.insert(chain.agreement().clone(), chain);
        }
        let r = Rosters { org, chains: RwLock::new(chains), audit, metrics };
        r.update_metrics(Timestamp::default());
        Ok(r)
    }

    /// Read access to every chain (for `verify_bundle` and the API).
    pub fn read(&self) -> RwLockReadGuard<'_, BTreeMap<AgreementId, Chain>> {
        self.chains.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Submits one entry (from the API or a peer). On `Applied` the entry is
    /// durable; the caller then refreshes the member set and spreads it.
    pub fn submit(&self, entry: Entry, actor: &str, now: Timestamp) -> Result<Appended, Error> {
        let agreement = entry.body.agreement.clone();
        let mut chains = self.chains.write().unwrap_or_else(|p| p.into_inner());
        let result = match chains.get_mut(&agreement) {
            None => {
                if entry.body.seq != 0 {
                    return Err(Error::UnknownAgreement { agreement });
                }
                let chain = Chain::new(entry.clone())?;
                self.persist(&entry, actor, now, "genesis")?;
                chains.insert(agreement.clone(), chain);
                Ok(Appended::Applied)
            }
            Some(chain) => {
                let mut next = chain.clone();
                match next.append(entry.clone()) {
                    Ok(Appended::Applied) => {
                        self.persist(&entry, actor, now, change_name(&entry))?;
                        *chain = next;
                        Ok(Appended::Applied)
                    }
                    Ok(Appended::AlreadyHave) => Ok(Appended::AlreadyHave),
                    Err(e @ proto::Error::Equivocation { .. }) => {
                        if let Some(eq) = next.halted() {
                            self.persist_halt(eq, actor, now)?;
                            *chain = next;
                        }
                        Err(Error::Refused(e))
                    }
                    Err(e) => Err(Error::Refused(e)),
                }
            }
        };
        drop(chains);
        match &result {
            Ok(Appended::Applied) => {
                info!(%agreement, seq = entry.body.seq, change = change_name(&entry), %actor, "roster entry applied");
                Metrics::count(&self.metrics.roster_entries, "applied");
            }
            Ok(Appended::AlreadyHave) => Metrics::count(&self.metrics.roster_entries, "duplicate"),
            Err(Error::Refused(proto::Error::Equivocation { seq, .. })) => {
                error!(%agreement, seq, %actor, "EQUIVOCATION: two different validly signed roster entries at one seq; both refused, roster halted until its stewards resolve it");
                Metrics::count(&self.metrics.roster_entries, "equivocation");
            }
            Err(e) => {
                warn!(%agreement, seq = entry.body.seq, %actor, reason = e.code(), "roster entry refused");
                Metrics::count(&self.metrics.roster_entries, "refused");
            }
        }
        self.update_metrics(now);
        result
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

    /// The member nodes that may connect: every node of every active member
    /// of each agreement in which this node's organisation is active.
    pub fn members(&self) -> Vec<network::Member> {
        let mut out: BTreeMap<NodeId, Vec<Multiaddr>> = BTreeMap::new();
        for chain in self.read().values() {
            let st = chain.state();
            if st.status(&self.org) != Some(MemberStatus::Active) {
                continue;
            }
            for m in st.members.values().filter(|m| m.status == MemberStatus::Active) {
                let addrs: Vec<Multiaddr> = m.addresses.iter().filter_map(|a| Multiaddr::from_str(a).ok()).collect();
                for n in &m.nodes {
                    out.entry(n.clone()).or_default().extend(addrs.iter().cloned());
                }
            }
        }
        out.into_iter()
            .filter_map(|(n, mut addresses)| {
                addresses.dedup();
                network::peer_of(&n).map(|peer| network::Member { peer, addresses })
            })
            .collect()
    }

    /// The heads of every chain. A halted chain reports, at the seq of
    /// the equivocation, a hash that matches neither entry, so every peer
    /// that compares heads fetches both and sees the equivocation too.
    pub fn heads(&self) -> Vec<Head> {
        self.read().values().map(head).collect()
    }

    /// The heads of the chains `node` is a member of (rosters are not shown
    /// to outsiders).
    pub fn heads_for(&self, node: &NodeId) -> Vec<Head> {
        self.read().values().filter(|c| c.state().org_of_node(node).is_some()).map(head).collect()
    }

    /// Entries of a chain from `from`, at most `limit`, if `node` belongs to
    /// one of its members. A halted chain serves both conflicting entries
    /// at the seq of the equivocation, and nothing after it.
    pub fn entries_for(&self, agreement: &AgreementId, from: u64, limit: usize, node: &NodeId) -> Option<Vec<Entry>> {
        let chains = self.read();
        let c = chains.get(agreement)?;
        c.state().org_of_node(node)?;
        let mut out: Vec<Entry> = c.entries_from(from).iter().take(limit).cloned().collect();
        if let Some(eq) = c.halted() {
            out.retain(|e| e.body.seq < eq.seq);
            if from <= eq.seq {
                out.push(eq.existing.clone());
                out.push(eq.conflicting.clone());
            }
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

    /// Alarms: every halted chain.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.read()
            .values()
            .filter_map(|c| c.halted())
            .map(|eq| Alarm {
                kind: "equivocation".into(),
                agreement: eq.existing.body.agreement.clone(),
                seq: eq.seq,
                hashes: [eq.existing.hash(), eq.conflicting.hash()],
                message: "two different validly signed roster entries at one seq; exchanges under this agreement are stopped until its stewards resolve it".into(),
            })
            .collect()
    }
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

/// A short name for a change, for logs and the audit.
pub fn change_name(e: &Entry) -> &'static str {
    use proto::Change::*;
    match &e.body.change {
        Genesis { .. } => "genesis",
        AddMember(_) => "add-member",
        UpdateMember { .. } => "update-member",
        RotateKey { .. } => "rotate-key",
        Suspend { .. } => "suspend",
        Reinstate { .. } => "reinstate",
        Remove { .. } => "remove",
        SetStewards { .. } => "set-stewards",
        SetTerms(_) => "set-terms",
        Resign { .. } => "resign",
    }
}
