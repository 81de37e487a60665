//! The running node: opens keys and storage, starts the network and the
//! local API, and drives roster sync. Everything is shut down cleanly by
//! [`RunningNode::shutdown`]: the API stops accepting, connections close,
//! and the store is flushed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libp2p::PeerId;
use staffpass_protocol::roster::{self as proto, Appended};
use staffpass_protocol::wire::roster::{self as wire_roster, Head, MAX_ENTRIES};
use staffpass_protocol::{AgreementId, IssuerSecretKey, NodeId, OrgId, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::audit::Audit;
use crate::config::Config;
use crate::keys::KeyFiles;
use crate::metrics::Metrics;
use crate::network::{self, Event, Network, Verdict};
use crate::rosters::{self, Rosters};
use crate::store::{self, Store};

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
    /// The node key is not ed25519.
    #[error("the node key is not an ed25519 key")]
    NodeKey,
}

/// The wall clock as a protocol timestamp.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    Timestamp::from_unix(secs).unwrap_or_default()
}

/// Shared state of a running node.
pub struct Inner {
    /// Its configuration.
    pub config: Config,
    /// Its organisation.
    pub org: OrgId,
    /// Its transport identity.
    pub peer_id: PeerId,
    /// The same, as a protocol node id.
    pub node_id: NodeId,
    /// The current issuer key.
    pub issuer: IssuerSecretKey,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// The agreements it holds.
    pub rosters: Rosters,
    /// The network handle.
    pub network: Network,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// When it started.
    pub started_at: Timestamp,
    /// Key of the keyed hash that turns assignment numbers into staff references.
    pub staff_ref_key: [u8; 32],
    /// Wakes the outbox sender after a commit that queued a message.
    pub outbox_wake: tokio::sync::Notify,
    /// How many receipts this node has stored for its outgoing messages;
    /// observers (benchmarks, tests) wait on it instead of polling.
    pub receipts_stored: watch::Sender<u64>,
    /// Member peers caught misbehaving.
    pub misbehaviour: Arc<crate::misbehaviour::Misbehaviour>,
    ready: AtomicBool,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct Node(pub Arc<Inner>);

impl std::ops::Deref for Node {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A started node and the means to stop it.
pub struct RunningNode {
    node: Node,
    api_addr: SocketAddr,
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
    /// Stops everything and flushes the store.
    pub async fn shutdown(self) {
        info!("shutting down");
        let _ = self.stop.send(true);
        self.node.network.shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        if let Err(e) = self.node.store.flush() {
            warn!(error = %e, "final flush failed");
        }
        info!("stopped");
    }
}

impl Node {
    /// Opens the data directory and starts the node.
    pub async fn start(config: Config) -> Result<RunningNode, StartError> {
        let data = config.data_dir.clone();
        let keys = KeyFiles::load(&paths::keys(&data))?;
        let store_cfg = store::Config { cache_capacity: config.storage.cache_mb << 20, ..store::Config::default() };
        let store: Arc<dyn Store> = Arc::new(store::SledStore::open_with(
            &paths::db(&data),
            keys.data(),
            store::OpenMode::Existing,
            &store_cfg,
        )?);
        let audit = Arc::new(Audit::open(store.clone())?);
        let metrics = Arc::new(Metrics::new());
        let rosters = Rosters::load(config.org.clone(), store.clone(), audit.clone(), metrics.clone())?;
        let keypair = keys.node().libp2p_keypair();
        let ed = keypair.clone().try_into_ed25519().map_err(|_| StartError::NodeKey)?;
        let node_id = NodeId::from_ed25519_public(&ed.public().to_bytes());
        let misbehaviour = Arc::new(crate::misbehaviour::Misbehaviour::default());
        let (network, events) = Network::start(keypair, &config.network, metrics.clone(), misbehaviour.clone()).await?;
        let peer_id = network.peer_id();

        let node = Node(Arc::new(Inner {
            org: config.org.clone(),
            peer_id,
            node_id,
            issuer: keys.issuer().duplicate(),
            store,
            audit,
            rosters,
            network,
            metrics,
            started_at: now(),
            staff_ref_key: derive_key(keys.data(), "staffpass/staff-ref/v1"),
            outbox_wake: tokio::sync::Notify::new(),
            receipts_stored: watch::Sender::new(0),
            misbehaviour,
            ready: AtomicBool::new(false),
            config,
        }));
        info!(org = %node.org, peer = %peer_id, "node starting");

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(node.clone().event_loop(events, stop_rx.clone())));
        tasks.push(tokio::spawn(node.clone().anti_entropy_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(node.clone().outbox_loop(stop_rx.clone())));
        if let Err(e) = node.sweep_expired() {
            warn!(error = %e, "start-up expiry sweep failed");
        }
        tasks.push(tokio::spawn(node.clone().sweep_loop(stop_rx.clone())));

        let api_addr = node.config.api.listen;
        let listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|source| StartError::ApiListen { addr: api_addr, source })?;
        let api_addr = listener.local_addr().map_err(|source| StartError::ApiListen { addr: api_addr, source })?;
        let tls = crate::tls::server_config(paths::tls(&data))?;
        let router = crate::api::routes::router(node.clone());
        let api_cfg = &node.config.api;
        let api_options = crate::api::server::Options {
            body_limit: api_cfg.body_limit_bytes,
            max_connections: api_cfg.max_connections,
            max_connections_per_ip: api_cfg.max_connections_per_ip,
            handshake_timeout: Duration::from_secs(api_cfg.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(api_cfg.idle_timeout_secs),
            http2_keep_alive: Duration::from_secs(api_cfg.http2_keep_alive_secs),
            refused: node.metrics.api_connections_refused.clone(),
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

        let agreements: Vec<AgreementId> = node.rosters.read().keys().cloned().collect();
        for id in agreements {
            node.network.subscribe(id).await?;
        }
        node.refresh_members().await;
        node.rosters.update_metrics(now());
        node.ready.store(true, Ordering::SeqCst);
        info!(api = %api_addr, "node ready");
        Ok(RunningNode { node, api_addr, stop, tasks })
    }

    /// True once start-up has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Tells the network who may connect, after a roster change.
    pub async fn refresh_members(&self) {
        if let Err(e) = self.network.set_members(self.rosters.members()).await {
            warn!(error = %e, "cannot update the member set");
        }
    }

    /// Submits a roster entry from the API: applies it durably, then
    /// spreads it by gossip and updates who may connect.
    pub async fn submit_roster_entry(&self, entry: proto::Entry, actor: &str) -> Result<Appended, rosters::Error> {
        let agreement = entry.body.agreement.clone();
        let bytes = staffpass_protocol::encoding::to_bytes(&entry);
        let is_genesis = entry.body.seq == 0;
        let r = self.apply_roster_entry(entry, rosters::Origin::Admin(actor.to_string())).await;
        match &r {
            Ok(Appended::Applied) => {
                if is_genesis {
                    let _ = self.network.subscribe(agreement.clone()).await;
                }
                if let Err(e) = self.network.publish(agreement, bytes).await {
                    warn!(error = %e, "roster entry applied but not gossiped; anti-entropy will carry it");
                }
                self.refresh_members().await;
            }
            Err(rosters::Error::Refused(proto::Error::Equivocation { .. })) => {
                // Spread the conflicting entry: every node holding the
                // other one then sees the equivocation too.
                if let Err(e) = self.network.publish(agreement, bytes).await {
                    warn!(error = %e, "equivocation evidence not gossiped; anti-entropy will carry it");
                }
                self.refresh_members().await;
            }
            _ => {}
        }
        r
    }

    /// Runs `f` with this node on the blocking pool. Anything that commits
    /// to the store goes through here: a commit waits for its fsync (roster
    /// applies hold the roster lock meanwhile), which must not stall the
    /// runtime's workers (the network, the API and, in benchmarks and
    /// tests, other nodes in the same process share them); commits that
    /// arrive together then share one group flush.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, tokio::task::JoinError>
    where
        T: Send + 'static,
        F: FnOnce(&Node) -> T + Send + 'static,
    {
        let node = self.clone();
        tokio::task::spawn_blocking(move || f(&node)).await
    }

    /// Applies one roster entry durably, on the blocking pool.
    async fn apply_roster_entry(
        &self,
        entry: proto::Entry,
        origin: rosters::Origin,
    ) -> Result<Appended, rosters::Error> {
        self.blocking(move |n| n.rosters.submit(entry, &origin, now()))
            .await
            .unwrap_or_else(|e| Err(rosters::Error::Interrupted(e.to_string())))
    }

    async fn event_loop(self, mut events: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
        loop {
            let ev = tokio::select! {
                ev = events.recv() => match ev { Some(ev) => ev, None => return },
                _ = stop.wait_for(|s| *s) => return,
            };
            match ev {
                Event::Connected { peer } => {
                    tokio::spawn(self.clone().sync_with(peer));
                }
                Event::Disconnected { .. } => {}
                Event::RosterRequest { peer, request, channel } => {
                    let response = self.answer_roster(&peer, request);
                    let _ = self.network.respond_roster(channel, response).await;
                }
                Event::Gossip { source, id, topic, data } => {
                    let verdict = self.on_gossip(source, &topic, &data).await;
                    Metrics::count(&self.metrics.gossip_messages, verdict_name(verdict));
                    let _ = self.network.report_gossip(id, source, verdict).await;
                }
                Event::ExchangeRequest { peer, request, channel } => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        let response = crate::flows::receive(&node, peer, request).await;
                        if let Some(response) = response {
                            let _ = node.network.respond_exchange(channel, response).await;
                        }
                    });
                }
            }
        }
    }

    fn answer_roster(&self, peer: &PeerId, request: wire_roster::Request) -> wire_roster::Response {
        let Some(node) = network::node_of(peer) else { return wire_roster::Response::Unknown };
        match request {
            wire_roster::Request::Heads(theirs) => {
                let mine: Vec<Head> = self
                    .rosters
                    .heads_for(&node)
                    .into_iter()
                    .filter(|h| theirs.iter().any(|t| t.agreement == h.agreement))
                    .collect();
                wire_roster::Response::Heads(mine)
            }
            wire_roster::Request::Fetch { agreement, from, limit } => {
                let limit = usize::from(limit.min(MAX_ENTRIES));
                // Room for the frame and the enum tag within the response bound.
                let budget = wire_roster::MAX_RESPONSE - 1024;
                match self.rosters.entries_for(&agreement, from, limit, budget, &node) {
                    Some(entries) => wire_roster::Response::Entries(entries),
                    None => wire_roster::Response::Unknown,
                }
            }
        }
    }

    async fn on_gossip(&self, source: PeerId, topic: &str, data: &[u8]) -> Verdict {
        let Some(agreement) = topic.strip_prefix("/staffpass/roster/").and_then(|a| a.parse::<AgreementId>().ok())
        else {
            return Verdict::Reject;
        };
        let entry = match wire_roster::decode_entry(data) {
            Ok(e) if e.body.agreement == agreement => e,
            _ => return Verdict::Reject,
        };
        match self.apply_roster_entry(entry, rosters::Origin::Peer(source)).await {
            Ok(Appended::Applied) => {
                self.refresh_members().await;
                Verdict::Accept
            }
            Ok(Appended::AlreadyHave) => Verdict::Ignore,
            Err(rosters::Error::Refused(proto::Error::Gap { .. })) => {
                tokio::spawn(self.clone().sync_with(source));
                Verdict::Ignore
            }
            Err(rosters::Error::Refused(proto::Error::Equivocation { .. })) => {
                // Validly signed evidence: forward it so every node sees
                // both entries; the relaying peer did nothing wrong.
                self.refresh_members().await;
                Verdict::Accept
            }
            Err(rosters::Error::Refused(e @ proto::Error::GenesisMismatch { .. })) => {
                self.misbehaved(source, "foreign-genesis", &e).await;
                Verdict::Reject
            }
            Err(rosters::Error::Refused(proto::Error::Halted { .. }))
            | Err(rosters::Error::UnknownAgreement { .. })
            | Err(rosters::Error::Store(_))
            | Err(rosters::Error::Audit(_))
            | Err(rosters::Error::Interrupted(_)) => Verdict::Ignore,
            Err(_) => Verdict::Reject,
        }
    }

    /// Anti-entropy with one peer: compare heads, fetch what is missing,
    /// and fetch any entry whose hash differs (so equivocation is seen).
    pub async fn sync_with(self, peer: PeerId) {
        // Only the heads of chains the peer belongs to: it learns nothing
        // of this node's other agreements.
        let Some(node) = network::node_of(&peer) else { return };
        let request = wire_roster::Request::Heads(self.rosters.heads_for(&node));
        let theirs = match self.network.roster(peer, request).await {
            Ok(wire_roster::Response::Heads(h)) => h,
            Ok(_) => return,
            Err(e) => {
                debug!(%peer, error = %e, "anti-entropy: heads request failed");
                return;
            }
        };
        let mut changed = false;
        for head in theirs {
            let mine = self.rosters.heads().into_iter().find(|h| h.agreement == head.agreement);
            let Some(mine) = mine else { continue };
            let from = if head.seq > mine.seq {
                mine.seq + 1
            } else if self.rosters.hash_at(&head.agreement, head.seq) != Some(head.hash) {
                head.seq
            } else {
                continue;
            };
            changed |= self.fetch(peer, &head.agreement, from, head.seq).await;
        }
        if changed {
            self.refresh_members().await;
        }
    }

    /// Fetches entries `from ..= until` of `agreement` from `peer` and
    /// applies them. An answer counts only for the agreement and seq range
    /// asked for: one that holds anything else is refused whole, and so is a
    /// different genesis; the peer is then counted as misbehaving and
    /// disconnected.
    async fn fetch(&self, peer: PeerId, agreement: &AgreementId, mut from: u64, until: u64) -> bool {
        let origin = rosters::Origin::Peer(peer);
        let mut changed = false;
        while from <= until {
            let req = wire_roster::Request::Fetch { agreement: agreement.clone(), from, limit: MAX_ENTRIES };
            let entries = match self.network.roster(peer, req).await {
                Ok(wire_roster::Response::Entries(e)) if !e.is_empty() => e,
                _ => return changed,
            };
            if let Err(e) = wire_roster::check_fetched(agreement, from, MAX_ENTRIES, &entries) {
                self.misbehaved(peer, "unasked-roster-entries", &e).await;
                return changed;
            }
            let last = entries.last().map_or(from, |e| e.body.seq);
            for e in entries {
                match self.apply_roster_entry(e, origin.clone()).await {
                    Ok(Appended::Applied) => changed = true,
                    Ok(Appended::AlreadyHave) => {}
                    Err(rosters::Error::Refused(proto::Error::Equivocation { .. })) => return true,
                    Err(rosters::Error::Refused(e @ proto::Error::GenesisMismatch { .. })) => {
                        self.misbehaved(peer, "foreign-genesis", &e).await;
                        return changed;
                    }
                    Err(_) => return changed,
                }
            }
            from = last + 1;
        }
        changed
    }

    /// A member peer sent something no honest node sends: count it, log it
    /// (rate-limited) and hang up on it.
    async fn misbehaved(&self, peer: PeerId, reason: &'static str, detail: &(dyn std::fmt::Display + Sync)) {
        self.misbehaviour.record(&self.metrics, &peer, reason, detail);
        let _ = self.network.disconnect(peer).await;
    }

    async fn anti_entropy_loop(self, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_secs(self.config.network.anti_entropy_secs);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.rosters.update_metrics(now());
            let Ok(info) = self.network.info().await else { return };
            for (peer, _) in info.connected {
                tokio::spawn(self.clone().sync_with(peer));
            }
        }
    }
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
