//! In-memory test kit (feature `testkit`, enabled only by this crate's
//! dev-dependency, never in a release build): a [`ManualClock`], exchange
//! services over the in-memory store ([`MemStore`]), and a [`Loopback`]
//! transport that hands a request straight to another service in the same
//! process. A whole move — grant, offer, verify, store, receipt — runs in
//! a test without a socket, a disk or a sleep.
//!
//! Trusts use the protocol testkit's fixed keys and roster
//! (`staffpass_protocol::testkit`), so their issuer keys and node ids are
//! the ones the roster names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use staffpass_protocol::claims::{ClaimKind, CstfSubject};
use staffpass_protocol::roster::{Change, Entry, MoveKind};
use staffpass_protocol::testkit::{self as fixture, RosterBuilder};
use staffpass_protocol::wire::exchange::{Request, Response};
use staffpass_protocol::{AgreementId, NodeId, OrgId, StaffRef, Timestamp};

use crate::audit::Audit;
use crate::clock::Clock;
use crate::exchange::records::ConsentRecord;
use crate::exchange::{self, ConsentRequest, Exchange, Parts, StaffInput, Transport};
use crate::metrics::Metrics;
use crate::rosters::{Origin, Rosters};
use crate::store::MemStore;

/// A clock that moves only when a test moves it.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn at(at: Timestamp) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(at.unix() * 1000)))
    }
    /// Moves it on by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
    /// Moves it on by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the loopback delivered no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoopbackError {
    /// No service under that node id, or the link to it is cut.
    #[error("node {0} is unreachable")]
    Unreachable(NodeId),
    /// The service did not answer (it could not store the message).
    #[error("node {0} did not answer")]
    NoAnswer(NodeId),
}

#[derive(Default)]
struct HubState {
    services: BTreeMap<NodeId, Exchange>,
    cut: BTreeSet<NodeId>,
}

/// Where loopback transports find each other's services.
#[derive(Clone, Default)]
pub struct Hub {
    state: Arc<Mutex<HubState>>,
    requests: Arc<AtomicUsize>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// Registers `service` as the node `node`.
    pub fn add(&self, node: NodeId, service: Exchange) {
        self.lock().services.insert(node, service);
    }
    /// Cuts (`true`) or restores the link to `node`.
    pub fn cut(&self, node: &NodeId, cut: bool) {
        let mut s = self.lock();
        if cut {
            s.cut.insert(node.clone());
        } else {
            s.cut.remove(node);
        }
    }
    /// How many requests reached a service so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    /// A transport sending as the node `from`.
    pub fn transport(&self, from: NodeId) -> Loopback {
        Loopback { hub: self.clone(), from }
    }
}

/// A transport that calls the receiving service directly, as the node it
/// was made for.
#[derive(Clone)]
pub struct Loopback {
    hub: Hub,
    from: NodeId,
}

impl Transport for Loopback {
    type Error = LoopbackError;

    async fn exchange(&self, to: &NodeId, request: Request) -> Result<Response, LoopbackError> {
        let service = {
            let s = self.hub.lock();
            if s.cut.contains(to) {
                return Err(LoopbackError::Unreachable(to.clone()));
            }
            s.services.get(to).cloned().ok_or_else(|| LoopbackError::Unreachable(to.clone()))?
        };
        self.hub.requests.fetch_add(1, Ordering::SeqCst);
        service.receive(&self.from, request).ok_or_else(|| LoopbackError::NoAnswer(to.clone()))
    }
}

/// One trust in a test network: its exchange service over an in-memory
/// store, and its loopback transport.
pub struct Trust {
    /// Its organisation.
    pub org: OrgId,
    /// Its node.
    pub node: NodeId,
    /// Its exchange service.
    pub exchange: Exchange,
    /// Its store.
    pub store: Arc<MemStore>,
    /// Its audit log.
    pub audit: Arc<Audit>,
    /// Its rosters.
    pub rosters: Arc<Rosters>,
    /// Its transport.
    pub transport: Loopback,
}

impl Trust {
    /// Imports one member of staff with the protocol testkit's 14 sample
    /// claims; returns their reference.
    pub fn import_staff(&self, assignment: &str) -> StaffRef {
        let input =
            StaffInput { assignment_number: assignment.into(), claims: fixture::sample_claims(), staff_key: None };
        let report = self.exchange.import_staff(vec![(1, input)], Vec::new(), false, "hr").expect("import in memory");
        assert_eq!(report.imported, 1, "import refused: {report:?}");
        self.exchange.staff_ref_for(assignment)
    }

    /// A consent request sharing identity, DBS and fire-safety training
    /// with `receiver` under `london-mou` for a rotation, for 30 days.
    pub fn request(&self, staff: &StaffRef, receiver: &OrgId) -> ConsentRequest {
        ConsentRequest {
            staff: staff.clone(),
            receiver: receiver.clone(),
            agreement: fixture::agreement(),
            move_kind: MoveKind::Rotation,
            claims: [ClaimKind::Identity, ClaimKind::Dbs, ClaimKind::Training(CstfSubject::FireSafety)]
                .into_iter()
                .collect(),
            not_before: None,
            not_after: self.exchange.now().plus_days(30),
            staff_key: None,
        }
    }

    /// Grants [`Trust::request`].
    pub fn grant(&self, staff: &StaffRef, receiver: &OrgId) -> Result<ConsentRecord, exchange::Error> {
        self.exchange.grant_consent(self.request(staff, receiver), "hr")
    }

    /// Runs one pass of the outbox: every message due now is delivered
    /// (or rescheduled). Returns how many were due.
    pub async fn deliver(&self) -> usize {
        let pending = self.exchange.outbox_pending().expect("outbox readable");
        let n = pending.due.len();
        for due in pending.due {
            exchange::outbox_worker::deliver(&self.exchange, &self.transport, due).await;
        }
        n
    }

    /// Applies a roster entry as the local admin.
    pub fn submit(&self, entry: Entry) {
        self.rosters
            .submit(entry, &Origin::Admin("test".into()), self.exchange.now())
            .unwrap_or_else(|e| panic!("roster entry refused at {}: {e}", self.org));
    }
}

/// Trusts in one process, members of the protocol testkit's `london-mou`
/// roster, on one manual clock, connected by loopback.
pub struct Net {
    /// The shared clock (starts at `staffpass_protocol::testkit::now()`).
    pub clock: Arc<ManualClock>,
    /// The loopback hub.
    pub hub: Hub,
    /// The roster, for further changes ([`Net::change`]).
    pub roster: RosterBuilder,
    /// The trusts, in the order given.
    pub trusts: Vec<Trust>,
}

impl Net {
    /// Trusts `codes`, each an active member of `london-mou`.
    pub fn new(codes: &[&str]) -> Net {
        Net::with_settings(codes, &exchange::Settings::default())
    }

    /// As [`Net::new`], every trust with `settings`.
    pub fn with_settings(codes: &[&str], settings: &exchange::Settings) -> Net {
        let clock = ManualClock::at(fixture::now());
        let hub = Hub::default();
        let mut roster = RosterBuilder::new(fixture::agreement(), 3, 2);
        for c in codes {
            roster.add_member(c);
        }
        let trusts = codes.iter().map(|c| Net::trust(c, &clock, &hub, roster.chain.entries(), settings)).collect();
        Net { clock, hub, roster, trusts }
    }

    fn trust(
        code: &str,
        clock: &Arc<ManualClock>,
        hub: &Hub,
        entries: &[Entry],
        settings: &exchange::Settings,
    ) -> Trust {
        let org = fixture::org(code);
        let node = fixture::node(code);
        let store = Arc::new(MemStore::new());
        let audit = Arc::new(Audit::open(store.clone()).expect("audit log in memory"));
        let metrics = Arc::new(Metrics::new());
        let rosters =
            Arc::new(Rosters::load(org.clone(), store.clone(), audit.clone(), metrics.clone()).expect("rosters"));
        let exchange = Exchange::new(Parts {
            org: org.clone(),
            issuer: fixture::issuer(code, 0),
            store: store.clone(),
            audit: audit.clone(),
            rosters: rosters.clone(),
            clock: clock.clone(),
            settings: settings.clone(),
            staff_ref_key: fixture::seed(&format!("staff-ref-{code}")),
            metrics,
            record_keys: Arc::new(crate::store::RecordKeys::in_memory(&crate::keys::DataKey::from_bytes(
                fixture::seed(&format!("data-{code}")),
            ))),
        });
        hub.add(node.clone(), exchange.clone());
        let trust = Trust { org, transport: hub.transport(node.clone()), node, exchange, store, audit, rosters };
        for e in entries {
            trust.submit(e.clone());
        }
        trust
    }

    /// The trust of `code`.
    pub fn get(&self, code: &str) -> &Trust {
        let org = fixture::org(code);
        self.trusts.iter().find(|t| t.org == org).unwrap_or_else(|| panic!("no trust {code} in this net"))
    }

    /// Signs `change` into the roster and applies it at every trust.
    pub fn change(&mut self, change: Change) {
        self.roster.push(change);
        let entry = self.roster.chain.entries().last().cloned().expect("the entry just pushed");
        for t in &self.trusts {
            t.submit(entry.clone());
        }
    }

    /// The agreement every trust is in.
    pub fn agreement(&self) -> AgreementId {
        fixture::agreement()
    }
}
