//! The composition root: [`Builder`] opens keys and storage, builds the
//! services (exchange, roster sync), starts the network, the workers and
//! the local API, and routes network events to the services. Nothing in
//! this crate imports it but `main.rs`. Everything is shut down cleanly by
//! [`RunningNode::shutdown`]: the API stops accepting, connections close,
//! the audit log's head is checkpointed and the store is flushed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use libp2p::PeerId;
use staffpass_protocol::roster::{self as proto, Appended, KeyValidity};
use staffpass_protocol::{IssuerPublicKey, OrgId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::routes::AppState;
use crate::audit::Audit;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::exchange::{self, Exchange, Transport};
use crate::keys::KeyFiles;
use crate::metrics::Metrics;
use crate::network::{self, Event, Network, Verdict};
use crate::rosters::{self, Rosters};
use crate::store::{self, Store};
use crate::sync::RosterSync;
use crate::task::blocking;

/// Layout of a data directory.
pub use staffpass_api::data_dir as paths;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Key files.
    #[error("keys: {0}")]
    Keys(#[from] crate::keys::Error),
    /// Storage.
    #[error("storage: {0}")]
    Store(#[from] store::Error),
    /// Audit log.
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::Error),
    /// Rosters.
    #[error("rosters: {0}")]
    Rosters(#[from] rosters::Error),
    /// Network.
    #[error("network: {0}")]
    Network(#[from] network::Error),
    /// TLS for the API.
    #[error("API TLS: {0}")]
    Tls(#[from] crate::tls::Error),
    /// The API address.
    #[error("cannot listen for the API on {addr}: {source}")]
    ApiListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The public listener's address.
    #[error("cannot listen for the public listener on {addr}: {source}")]
    PublicListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The node key is not ed25519.
    #[error("the node key is not an ed25519 key")]
    NodeKey,
    /// The exchange service's start-up work (destroying the keys of
    /// records erased just before the last stop).
    #[error("exchange: {0}")]
    Exchange(#[from] exchange::Error),
}

/// The wall clock as a protocol timestamp.
pub use crate::clock::now;

/// A running node's parts: a cheap, cloneable handle. Built only here, by
/// [`Builder`]; the services it holds know nothing of it.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    org: OrgId,
    peer_id: PeerId,
    issuer: IssuerPublicKey,
    exchange: Exchange,
    sync: RosterSync,
    rosters: Arc<Rosters>,
    network: Network,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl Node {
    /// Starts the production node ([`Production`]) from its configuration.
    pub async fn start(config: Config) -> Result<RunningNode, StartError> {
        Production::new(config).start().await
    }

    /// Its organisation.
    pub fn org(&self) -> &OrgId {
        &self.0.org
    }
    /// Its transport identity.
    pub fn peer_id(&self) -> PeerId {
        self.0.peer_id
    }
    /// The public half of its current issuer key.
    pub fn issuer_key(&self) -> IssuerPublicKey {
        self.0.issuer
    }
    /// The exchange service.
    pub fn exchange(&self) -> &Exchange {
        &self.0.exchange
    }
    /// Roster sync.
    pub fn sync(&self) -> &RosterSync {
        &self.0.sync
    }
    /// The agreements it holds.
    pub fn rosters(&self) -> &Arc<Rosters> {
        &self.0.rosters
    }
    /// The network handle.
    pub fn network(&self) -> &Network {
        &self.0.network
    }
    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }
    /// True once start-up has finished.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst)
    }
    /// Submits a roster entry as the local admin (see [`RosterSync::submit`]).
    pub async fn submit_roster_entry(&self, entry: proto::Entry, actor: &str) -> Result<Appended, rosters::Error> {
        self.0.sync.submit(entry, actor).await
    }
}

/// A started node and the means to stop it.
pub struct RunningNode {
    node: Node,
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    clock: Arc<dyn Clock>,
    api_addr: SocketAddr,
    public_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }
    /// Where the API listens (the real port when configured with port 0).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }
    /// Where the public listener listens, if it is on.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public_addr
    }
    /// Stops everything, checkpoints the audit log and flushes the store.
    pub async fn shutdown(self) {
        info!("shutting down");
        let _ = self.stop.send(true);
        self.node.network().shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let (audit, at) = (self.audit, self.clock.now());
        match crate::task::run(move || audit.checkpoint(at)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "final audit checkpoint failed"),
            Err(e) => warn!(error = %e, "final audit checkpoint failed"),
        }
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "final flush failed");
        }
        info!("stopped");
    }
}

/// Makes the outbox's transport from the started network.
type MakeTransport<T> = Box<dyn FnOnce(&Network) -> T + Send>;

/// The composition root: builds the store, the audit log, the rosters, the
/// exchange service, the network and the API, spawns the workers, and
/// routes network events to the services. The store, the clock and the
/// outbox's transport can be swapped; [`Production`] is the production
/// wiring (sled in the data directory, the system clock, libp2p).
pub struct Builder<T: Transport = Network> {
    config: Config,
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    transport: MakeTransport<T>,
}

/// Safe issuer key rotation: a key prepared by `staffpass-node
/// rotate-issuer-key` becomes current at start-up only once the roster of
/// every agreement this trust is a member of lists it as valid now, so the
/// node never signs with a key a receiver's roster does not know yet.
/// Until then the current key keeps signing, and the log says what the
/// stewards still have to do. The promotion is audited.
fn promote_prepared_issuer(
    dir: &Path,
    keys: KeyFiles,
    org: &OrgId,
    rosters: &Rosters,
    audit: &Audit,
    now: staffpass_protocol::Timestamp,
) -> Result<KeyFiles, StartError> {
    let Some(next) = KeyFiles::prepared_issuer(dir)? else { return Ok(keys) };
    let next = next.public();
    let (mut member_of, mut waiting) = (0, Vec::new());
    for c in rosters.read().values() {
        let st = c.state();
        if !matches!(st.status(org), Some(proto::MemberStatus::Active | proto::MemberStatus::Suspended)) {
            continue;
        }
        member_of += 1;
        if st.key_validity(org, &next, now) != KeyValidity::Valid {
            waiting.push(c.agreement().to_string());
        }
    }
    if member_of == 0 || !waiting.is_empty() {
        info!(
            key = %next,
            waiting_for = %if member_of == 0 { "no agreement yet".to_string() } else { waiting.join(",") },
            "a prepared issuer key waits for the rosters to list it; the current key signs meanwhile \
             (stewards: staffpass-admin roster propose rotate-key --org {org} --add {next})"
        );
        return Ok(keys);
    }
    let Some(r) = KeyFiles::promote_prepared(dir, now)? else { return Ok(keys) };
    let event = crate::audit::Event {
        actor: "node".into(),
        action: crate::audit::Action::KeyRotation,
        staff: None,
        org: Some(org.clone()),
        object: Some(format!("issuer:{}", r.new)),
        reason: Some("prepared-key-listed".into()),
    };
    audit.commit(store::Batch::default(), vec![event], now)?;
    info!(old = %r.old, new = %r.new, "issuer key rotated: the rosters list the prepared key");
    Ok(KeyFiles::load(dir)?)
}

/// The production wiring.
pub type Production = Builder<Network>;

impl Production {
    /// The production wiring for `config`.
    pub fn new(config: Config) -> Self {
        Builder { config, store: None, clock: Arc::new(SystemClock), transport: Box::new(|n: &Network| n.clone()) }
    }
}

impl<T: Transport> Builder<T> {
    /// Uses `store` instead of the sled database in the data directory.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Delivers the outbox over `transport` instead of the libp2p network.
    pub fn transport<U: Transport>(self, transport: U) -> Builder<U> {
        Builder { config: self.config, store: self.store, clock: self.clock, transport: Box::new(move |_| transport) }
    }

    /// Opens the data directory and starts the node.
    pub async fn start(self) -> Result<RunningNode, StartError> {
        let Builder { config, store, clock, transport } = self;
        let data = config.data_dir.clone();
        let keys = KeyFiles::load(&paths::keys(&data))?;
        let injected_store = store.is_some();
        // The node's own store, also kept as itself for backups.
        let mut own_store = None;
        let store: Arc<dyn Store> = match store {
            Some(s) => s,
            None => {
                let store_cfg =
                    store::Config { cache_capacity: config.storage.cache_mb << 20, ..store::Config::default() };
                let sled = Arc::new(store::SledStore::open_with(
                    &paths::db(&data),
                    keys.data(),
                    store::OpenMode::Existing,
                    &store_cfg,
                )?);
                own_store = Some(sled.clone());
                sled
            }
        };
        // Per-record keys beside the store (not in it: sled's log keeps old
        // values, this file is replaced whole); in memory for an injected store.
        let record_keys = Arc::new(if injected_store {
            store::RecordKeys::in_memory(keys.data())
        } else {
            let file = data.join(store::record_keys::FILE);
            refuse_lost_record_keys(&*store, &file)?;
            store::RecordKeys::open(&file, keys.data())?
        });
        // A backup needs the store's own snapshot and the record keys
        // beside it: none for an injected store.
        let backup = own_store.map(|store| {
            Arc::new(crate::backup::Source {
                store,
                record_keys: record_keys.clone(),
                data_dir: data.clone(),
                org: config.org.clone(),
            })
        });
        let audit = Arc::new(Audit::open(store.clone())?);
        let metrics = Arc::new(Metrics::new());
        let rosters = Arc::new(Rosters::load(config.org.clone(), store.clone(), audit.clone(), metrics.clone())?);
        let keys = promote_prepared_issuer(&paths::keys(&data), keys, &config.org, &rosters, &audit, clock.now())?;
        // Signed checkpoints of the audit log; the latest also in a file
        // beside the store (none for an injected store, as for record keys).
        let checkpoints = crate::audit::Checkpoints::new(keys.issuer().duplicate())
            .earlier_keys(earlier_issuer_keys(config.org.clone(), Arc::downgrade(&rosters)));
        let checkpoints =
            if injected_store { checkpoints } else { checkpoints.file(data.join(crate::audit::CHECKPOINT_FILE)) };
        audit.start_checkpoints(checkpoints, clock.now())?;
        let keypair = keys.node().libp2p_keypair();
        keypair.clone().try_into_ed25519().map_err(|_| StartError::NodeKey)?;
        let misbehaviour = Arc::new(crate::misbehaviour::Misbehaviour::default());
        let (network, events) = Network::start(keypair, &config.network, metrics.clone(), misbehaviour.clone()).await?;
        let peer_id = network.peer_id();
        let exchange = Exchange::new(exchange::Parts {
            org: config.org.clone(),
            issuer: keys.issuer().duplicate(),
            store: store.clone(),
            audit: audit.clone(),
            rosters: rosters.clone(),
            clock: clock.clone(),
            settings: config.exchange.clone(),
            staff_ref_key: derive_key(keys.data(), "staffpass/staff-ref/v1"),
            metrics: metrics.clone(),
            record_keys,
        });
        // Records of an earlier version get their own keys; keys of records
        // erased just before a crash are destroyed.
        exchange.seal_legacy_records()?;
        let shredded = exchange.shred_orphaned_keys()?;
        if shredded > 0 {
            info!(keys = shredded, "destroyed the keys of records erased before the last stop");
        }
        let sync =
            RosterSync::new(rosters.clone(), network.clone(), metrics.clone(), clock.clone(), misbehaviour.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let node = Node(Arc::new(Inner {
            org: config.org.clone(),
            peer_id,
            issuer: keys.issuer().public(),
            exchange: exchange.clone(),
            sync: sync.clone(),
            rosters: rosters.clone(),
            network: network.clone(),
            metrics: metrics.clone(),
            ready: ready.clone(),
        }));
        info!(org = %config.org, peer = %peer_id, "node starting");

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(route_events(
            exchange.clone(),
            sync.clone(),
            network.clone(),
            (metrics.clone(), misbehaviour),
            events,
            stop_rx.clone(),
        )));
        let anti_entropy = Duration::from_secs(config.network.anti_entropy_secs);
        tasks.push(tokio::spawn(crate::sync::run(sync.clone(), anti_entropy, stop_rx.clone())));
        tasks.push(tokio::spawn(exchange::outbox_worker::run(exchange.clone(), transport(&network), stop_rx.clone())));
        match blocking(&exchange, |ex| ex.sweep_expired()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "start-up expiry sweep failed"),
            Err(e) => warn!(error = %e, "start-up expiry sweep failed"),
        }
        let sweep = Duration::from_secs(config.exchange.expiry_sweep_secs);
        tasks.push(tokio::spawn(exchange::sweep_worker::run(exchange.clone(), sweep, stop_rx.clone())));
        tasks.push(tokio::spawn(checkpoint_worker(audit.clone(), clock.clone(), stop_rx.clone())));

        let api_addr = config.api.listen;
        let listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|source| StartError::ApiListen { addr: api_addr, source })?;
        let api_addr = listener.local_addr().map_err(|source| StartError::ApiListen { addr: api_addr, source })?;
        let tls = crate::tls::server_config(paths::tls(&data))?;
        let api_refused = metrics.api_connections_refused.clone();
        let state = AppState {
            exchange: exchange.clone(),
            sync: sync.clone(),
            rosters: rosters.clone(),
            network: network.clone(),
            audit: audit.clone(),
            metrics,
            peer_id,
            ready: ready.clone(),
            import_limit: config.api.import_limit_bytes,
            backup,
        };
        let router = crate::api::routes::router(state);
        let public_addr = match config.public.listen {
            Some(addr) => Some(
                start_public(&config.public, addr, &paths::tls(&data), exchange.clone(), &stop_rx, &mut tasks).await?,
            ),
            None => None,
        };
        let api_cfg = &config.api;
        let api_options = crate::api::server::Options {
            body_limit: api_cfg.body_limit_bytes,
            max_connections: api_cfg.max_connections,
            max_connections_per_ip: api_cfg.max_connections_per_ip,
            handshake_timeout: Duration::from_secs(api_cfg.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(api_cfg.idle_timeout_secs),
            http2_keep_alive: Duration::from_secs(api_cfg.http2_keep_alive_secs),
            refused: api_refused,
            ..Default::default()
        };
        let mut api_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = api_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::api::server::serve_with(listener, tls, router, shutdown, api_options).await {
                warn!(error = %e, "API server stopped");
            }
        }));

        // Who may connect, and the roster topics to follow.
        sync.refresh_members().await;
        rosters.update_metrics(clock.now());
        ready.store(true, Ordering::SeqCst);
        info!(api = %api_addr, "node ready");
        Ok(RunningNode { node, store, audit, clock, api_addr, public_addr, stop, tasks })
    }
}

/// Binds the public listener and serves [`crate::api::public`] on it until
/// `stop`, with the certificate and key of `public` (default: the local
/// API's, from `tls_dir`). Returns where it listens.
async fn start_public(
    public: &crate::config::Public,
    addr: SocketAddr,
    tls_dir: &std::path::Path,
    exchange: Exchange,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<SocketAddr, StartError> {
    let pki = crate::tls::Pki::at(tls_dir);
    let (cert, key) = match (&public.cert_file, &public.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (pki.server_cert(), pki.server_key()),
    };
    let tls = crate::tls::public_server_config(&cert, &key)?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::PublicListen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| StartError::PublicListen { addr, source })?;
    let router = crate::api::public::router(exchange);
    let options = crate::api::server::Options { public: true, ..Default::default() };
    let mut stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::api::server::serve_with(listener, tls, router, shutdown, options).await {
            warn!(error = %e, "public listener stopped");
        }
    }));
    info!(public = %bound, "public listener (issuer metadata, status list) on");
    Ok(bound)
}

/// Routes the network's events to the services until `stop`: connections
/// and roster messages to roster sync, exchange requests to the exchange
/// service (on the blocking pool, from the sender's node id).
/// How many exchange messages of one peer may be rejected: a burst, then
/// one a second. A peer over it has its exchange requests refused unread
/// (no response, so an honest sender retries later) and counted as
/// `rejection-rate-limit`, so a member sending bad offers cannot make this
/// node verify, audit and keep receipts without bound.
pub const REJECTIONS: crate::limits::Rate = crate::limits::Rate { per_sec: 1, burst: 20 };

async fn route_events(
    exchange: Exchange,
    sync: RosterSync,
    network: Network,
    (metrics, misbehaviour): (Arc<Metrics>, Arc<crate::misbehaviour::Misbehaviour>),
    mut events: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let rejections = Arc::new(crate::limits::PeerRates::new(REJECTIONS, crate::limits::MAX_TRACKED_PEERS));
    loop {
        let ev = tokio::select! {
            ev = events.recv() => match ev { Some(ev) => ev, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        match ev {
            Event::Connected { peer } => {
                tokio::spawn(sync.clone().sync_with(peer));
            }
            Event::Disconnected { .. } => {}
            Event::RosterRequest { peer, request, channel } => {
                let response = sync.answer(&peer, request);
                let _ = network.respond_roster(channel, response).await;
            }
            Event::Gossip { source, id, topic, data } => {
                let verdict = sync.on_gossip(source, &topic, &data).await;
                Metrics::count(&metrics.gossip_messages, verdict_name(verdict));
                let _ = network.report_gossip(id, source, verdict).await;
            }
            Event::ExchangeRequest { peer, request, channel } => {
                if !rejections.has_token(&peer) {
                    misbehaviour.over_limit(&metrics, &peer, "rejection-rate-limit");
                    drop(channel);
                    continue;
                }
                let (exchange, network, rejections) = (exchange.clone(), network.clone(), rejections.clone());
                tokio::spawn(async move {
                    let Some(sender) = network::node_of(&peer) else { return };
                    match blocking(&exchange, move |ex| ex.receive(&sender, request)).await {
                        Ok(Some(response)) => {
                            if matches!(
                                response.receipt.body.outcome,
                                staffpass_protocol::receipt::Outcome::Rejected { .. }
                            ) {
                                rejections.allow(&peer);
                            }
                            let _ = network.respond_exchange(channel, response).await;
                        }
                        Ok(None) => {}
                        Err(e) => warn!(%peer, error = %e, "exchange handler failed; the sender will retry"),
                    }
                });
            }
        }
    }
}

/// Checkpoints the audit log every [`crate::audit::CHECKPOINT_INTERVAL`] if its
/// head moved, until `stop`.
async fn checkpoint_worker(audit: Arc<Audit>, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) {
    crate::task::every(crate::audit::CHECKPOINT_INTERVAL, stop, move || {
        let (audit, at) = (audit.clone(), clock.now());
        async move {
            match crate::task::run(move || audit.checkpoint(at)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "audit checkpoint failed; trying again later"),
                Err(e) => warn!(error = %e, "audit checkpoint failed; trying again later"),
            }
            true
        }
    })
    .await;
}

/// The earlier issuer keys accepted on the audit log's checkpoints (after
/// a rotation): those this node's organisation has in a roster chain the
/// node holds, not retired (nor revoked) by the checkpoint's time. A
/// checkpoint from before the roster added the key is accepted: the node
/// held its key before its organisation joined.
fn earlier_issuer_keys(org: OrgId, rosters: Weak<Rosters>) -> crate::audit::EarlierKeys {
    Box::new(move |key, at| {
        rosters.upgrade().is_some_and(|r| {
            r.read().values().any(|chain| {
                matches!(chain.state().key_validity(&org, key, at), KeyValidity::Valid | KeyValidity::NotYetValid)
            })
        })
    })
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "accepted",
        Verdict::Ignore => "ignored",
        Verdict::Reject => "rejected",
    }
}

/// A 32-byte key for one purpose, derived from the data key.
fn derive_key(data: &crate::keys::DataKey, label: &str) -> [u8; 32] {
    let secret = data.to_secret_text();
    staffpass_protocol::Hash::of(&[label.as_bytes(), b"\0", secret.as_bytes()].concat()).0
}

/// Refuses to start when the record-keys `file` is gone but the store
/// holds records sealed under it: opening it as an empty set of keys would
/// leave every staff record and received passport unreadable (each read a
/// 500) instead of a clear start-up error. A fresh node (no records) and a
/// store of an earlier version (not yet sealed per record) start.
fn refuse_lost_record_keys(store: &dyn Store, file: &Path) -> Result<(), StartError> {
    match std::fs::symlink_metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return Ok(()),
    }
    if store.get(store::Tree::Meta, exchange::receive::RECORD_KEYS_V1)?.is_none() {
        return Ok(());
    }
    // Staff records (keyed by staff ref) and held passports (`p/…`) are
    // sealed per record; other values of those trees (tombstones) are not.
    for (tree, prefix) in [(store::Tree::Staff, &b""[..]), (store::Tree::Received, b"p/")] {
        if store.range_from(tree, prefix, 1)?.iter().any(|(k, _)| k.starts_with(prefix)) {
            return Err(StartError::Store(store::Error::Corrupt {
                path: file.to_path_buf(),
                detail: "the record-keys file is missing, but the store holds records sealed under its keys".into(),
            }));
        }
    }
    Ok(())
}

fn io_error(op: &'static str, e: std::io::Error) -> StartError {
    StartError::Store(store::Error::Io { op, detail: e.to_string() })
}

/// Creates a node's data directory: keys, local PKI, database, config.
/// Refuses to touch an existing node unless `force`; with `force`, an
/// existing database (unreadable under the new data key) is moved aside to
/// `db.replaced-<time>`, never deleted.
pub fn init(config: &Config, server_names: &[String], force: bool) -> Result<InitReport, StartError> {
    let data = config.data_dir.clone();
    let config_path = paths::config(&data);
    if config_path.exists() && !force {
        return Err(StartError::Keys(crate::keys::Error::Exists { path: config_path }));
    }
    create_private_dir(&data).map_err(|e| io_error("create the data directory", e))?;
    let keys = KeyFiles::create(&paths::keys(&data), force)?;
    crate::tls::Pki::init(paths::tls(&data), &config.org.to_string(), server_names, force)?;
    let db = paths::db(&data);
    if force && db.exists() {
        let aside = data.join(format!("db.replaced-{}", now().unix()));
        std::fs::rename(&db, &aside).map_err(|e| io_error("move the old database aside", e))?;
    }
    // The files beside the old database are sealed or signed under the old
    // keys: moved aside with it (never deleted), or the new node could not
    // open them and would refuse to start.
    for name in [store::record_keys::FILE, crate::audit::CHECKPOINT_FILE] {
        let file = data.join(name);
        if force && std::fs::symlink_metadata(&file).is_ok() {
            let aside = data.join(format!("{name}.replaced-{}", now().unix()));
            std::fs::rename(&file, &aside).map_err(|e| io_error("move an old node's file aside", e))?;
        }
    }
    let st = store::SledStore::open(&db, keys.data(), store::OpenMode::Create)?;
    st.flush()?;
    drop(st);
    std::fs::write(&config_path, config.example()).map_err(|e| io_error("write the config file", e))?;
    Ok(InitReport {
        data_dir: data.clone(),
        config: config_path,
        peer_id: keys.node().peer_id(),
        issuer_key: keys.issuer().public(),
        admin_cert: crate::tls::Pki::at(paths::tls(&data)).admin_cert(),
    })
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The node's PeerId (for the roster).
    pub peer_id: PeerId,
    /// The issuer public key (for the roster).
    pub issuer_key: staffpass_protocol::IssuerPublicKey,
    /// The admin client certificate.
    pub admin_cert: PathBuf,
}

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
