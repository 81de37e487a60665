//! Shared helpers for the cross-crate integration tests: real nodes in
//! this process, each on 127.0.0.1 with OS-chosen ports and its own temp
//! data directory; an admin API client per node; a roster built and
//! signed by the fixed test stewards on the real clock; and
//! [`wait_until`], which polls a condition against a deadline (never a
//! bare sleep).

pub mod raw;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use staffpass_api::agreements::{Submission, Submitted};
use staffpass_api::{Client, ClientError};
use staffpass_node::config::Config;
use staffpass_node::node::{self, Node, RunningNode, paths};
use staffpass_node::tls::Pki;
use staffpass_protocol::roster::{Change, Entry, MemberSpec};
use staffpass_protocol::testkit::RosterBuilder;
use staffpass_protocol::{AgreementId, IssuerPublicKey, NodeId, OrgId, Timestamp};

/// How long any one step may take before a test fails.
pub const STEP: Duration = Duration::from_secs(30);

/// Polls `cond` every 25 ms until it holds, failing the test with `what`
/// after `STEP`.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {STEP:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A node under test.
pub struct TestNode {
    /// Its organisation.
    pub org: OrgId,
    /// Its data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// Its configuration (ports fixed after the first start, so restarts keep them).
    pub config: Config,
    /// The running node, if started.
    pub running: Option<RunningNode>,
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Its issuer public key.
    pub issuer: IssuerPublicKey,
    /// Its peer-to-peer address.
    pub p2p: Multiaddr,
    /// Its API address.
    pub api: SocketAddr,
}

impl TestNode {
    /// Initialises and starts a node for `org`.
    pub async fn start_new(org: &str) -> anyhow::Result<Self> {
        Self::start_new_with(org, |_| {}).await
    }

    /// As [`TestNode::start_new`], with `tune` applied to the test
    /// configuration before the node is initialised.
    pub async fn start_new_with(org: &str, tune: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let org: OrgId = org.parse()?;
        let dir = tempfile::tempdir()?;
        let mut config = Config::new(org.clone());
        config.data_dir = dir.path().join("data");
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.network.anti_entropy_secs = 2;
        config.network.redial_max_secs = 2;
        config.exchange.retry_initial_ms = 100;
        config.exchange.retry_max_secs = 2;
        config.exchange.expiry_sweep_secs = 1;
        config.api.listen = "127.0.0.1:0".parse()?;
        tune(&mut config);
        let report = node::init(&config, &["localhost".into(), "127.0.0.1".into()], false)?;
        let running = Node::start(config.clone()).await?;
        let info = running.node().network().info().await?;
        let p2p = info.listen_addrs.first().cloned().ok_or_else(|| anyhow::anyhow!("node has no listen address"))?;
        let api = running.api_addr();
        config.network.listen = vec![p2p.to_string()];
        config.api.listen = api;
        Ok(TestNode {
            org,
            dir,
            config,
            running: Some(running),
            peer_id: report.peer_id,
            issuer: report.issuer_key,
            p2p,
            api,
        })
    }

    /// The running node.
    pub fn node(&self) -> &Node {
        self.running.as_ref().expect("node is running").node()
    }

    /// Its node id.
    pub fn node_id(&self) -> NodeId {
        staffpass_node::network::node_of(&self.peer_id).expect("ed25519 peer id")
    }

    /// Stops it cleanly.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts it again on the same ports and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.running = Some(Node::start(self.config.clone()).await?);
        Ok(())
    }

    /// An API client with the admin certificate.
    pub fn admin(&self) -> Client {
        let pki = Pki::at(paths::tls(&self.config.data_dir));
        self.client_with(&pki.admin_cert(), &pki.admin_key())
    }

    /// An API client with the client certificate `name` issued by the node's PKI.
    pub fn client_as(&self, name: &str) -> Client {
        let pki = Pki::at(paths::tls(&self.config.data_dir));
        let (cert, key) = pki.client_paths(name);
        self.client_with(&cert, &key)
    }

    fn client_with(&self, cert: &std::path::Path, key: &std::path::Path) -> Client {
        let pki = Pki::at(paths::tls(&self.config.data_dir));
        Client::from_files(&format!("https://127.0.0.1:{}", self.api.port()), pki.ca_cert(), cert, key)
            .expect("API client")
    }

    /// Its roster entry.
    pub fn member_spec(&self) -> MemberSpec {
        MemberSpec {
            org: self.org.clone(),
            name: format!("{} NHS Trust", self.org),
            issuer_keys: vec![self.issuer],
            nodes: vec![self.node_id()],
            addresses: vec![self.p2p.to_string()],
        }
    }

    /// The head seq of an agreement's roster on this node.
    pub fn roster_seq(&self, agreement: &AgreementId) -> Option<u64> {
        self.node().rosters().read().get(agreement).map(|c| c.seq())
    }

    /// True if this node is connected to `peer`.
    pub async fn connected_to(&self, peer: &PeerId) -> bool {
        self.node().network().info().await.map(|i| i.connected.iter().any(|(p, _)| p == peer)).unwrap_or(false)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // A node still running when a test panics is left to the runtime's
        // shutdown; its temp dir is removed with `dir`.
        let _ = self.running.take();
    }
}

/// The wall clock.
pub fn now() -> Timestamp {
    node::now()
}

/// A roster for `agreement` signed by the fixed test stewards (3, threshold
/// 2), valid for 30 days; its entries are dated from an hour ago, a minute
/// apart, so keys are valid for anything signed now.
pub fn roster(agreement: &str) -> RosterBuilder {
    roster_valid_until(agreement, now().plus_days(30))
}

/// As [`roster`], valid until `valid_until`.
pub fn roster_valid_until(agreement: &str, valid_until: Timestamp) -> RosterBuilder {
    let id: AgreementId = agreement.parse().expect("agreement id");
    let mut r = RosterBuilder::with_valid_until(id, 3, 2, valid_until);
    r.clock = now().plus_secs(-3600);
    r
}

/// Adds `nodes` as members, returning the entries from genesis.
pub fn add_members(r: &mut RosterBuilder, nodes: &[&TestNode]) -> Vec<Entry> {
    for n in nodes {
        r.push(Change::AddMember(n.member_spec()));
    }
    r.chain.entries().to_vec()
}

/// Two new nodes for `a` and `b`, both members of `london-mou` (each
/// given the whole chain by its admin), once they are connected.
pub async fn connected_pair(a: &str, b: &str) -> (TestNode, TestNode, RosterBuilder) {
    connected_pair_with(a, b, |_| {}).await
}

/// As [`connected_pair`], with `tune` applied to the first node's configuration.
pub async fn connected_pair_with(
    a: &str,
    b: &str,
    tune: impl FnOnce(&mut Config),
) -> (TestNode, TestNode, RosterBuilder) {
    let a = TestNode::start_new_with(a, tune).await.expect("first node starts");
    let b = TestNode::start_new(b).await.expect("second node starts");
    let mut r = roster("london-mou");
    let chain = add_members(&mut r, &[&a, &b]);
    submit(&a, &chain).await.expect("the chain is accepted by the first node");
    submit(&b, &chain).await.expect("the chain is accepted by the second node");
    let p = b.peer_id;
    wait_until("the two nodes connect", || async { a.connected_to(&p).await }).await;
    (a, b, r)
}

/// Submits one signed roster entry to a node's API.
pub async fn submit_entry(node: &TestNode, e: &Entry) -> Result<Submitted, ClientError> {
    node.admin().submit_entries(&e.body.agreement, &Submission::One(Box::new(e.clone()))).await
}

/// Submits `entries` to a node's API.
pub async fn submit(node: &TestNode, entries: &[Entry]) -> anyhow::Result<Submitted> {
    Ok(node.admin().submit_chain(entries).await?)
}

/// The CSV header of [`staff_csv`]: 14 claims per person.
pub const CSV_HEADER: &str = "assignment_number,full_name,ni_number,date_of_birth,job_role,assignment_start,registration_body,registration_number,right_to_work,right_to_work_checked,dbs_level,dbs_certificate,dbs_issued,dbs_update_service,references_checked,oh_cleared,oh_epp,immunisation:hepatitis-b/completed,immunisation:mmr/completed,training:fire-safety/completed,training:fire-safety/refresher_months,training:infection-prevention-control/completed,training:infection-prevention-control/refresher_months,training:information-governance/completed,training:information-governance/refresher_months,training:resuscitation/completed,training:resuscitation/refresher_months,training:safeguarding-adults/completed,training:safeguarding-adults/refresher_months";

/// One CSV row for a fictitious person (NI numbers use the unallocated ZZ prefix).
pub fn staff_row(assignment: &str, name: &str, ni: &str) -> String {
    format!(
        "{assignment},{name},{ni},1990-04-01,Specialty Registrar,2024-09-01,GMC,7654321,british-citizen,2024-09-01,enhanced-barred,001234567890,2024-08-15,yes,2024-08-01,2024-08-20,yes,2020-01-10,2001-05-01,2026-03-01,12,2026-01-15,12,2025-06-01,12,2025-12-01,12,2024-10-01,36"
    )
}

/// A CSV export of `rows` (assignment, name, NI number).
pub fn staff_csv(rows: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for (a, n, ni) in rows {
        s.push_str(&staff_row(a, n, ni));
        s.push('\n');
    }
    s
}

/// Every file under `dir`.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// True if any file under `dir` contains `needle` as raw bytes.
pub fn any_file_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    files_under(dir)
        .iter()
        .any(|p| std::fs::read(p).map(|b| b.windows(needle.len()).any(|w| w == needle)).unwrap_or(false))
}

/// The parts of a valid bundle from `org` (a raw peer's trust, signed
/// with testkit's issuer key for it) to `to`, on the real clock.
pub fn bundle_parts(org: &str, to: &str) -> staffpass_protocol::testkit::BundleParts {
    let mut p = staffpass_protocol::testkit::bundle_parts();
    let t = now().plus_secs(-60);
    p.credential.issuer = org.parse().expect("org code");
    p.credential.issued_at = t;
    p.credential.expires_at = t.plus_days(365);
    p.consent.home = org.parse().expect("org code");
    p.consent.receiver = to.parse().expect("org code");
    p.consent.issued_at = t;
    p.consent.not_before = t;
    p.consent.not_after = t.plus_days(30);
    p
}

/// Three connected members of `london-mou` (RJZ, RJ1, RV5), meshed from
/// the roster's address hints, and the roster.
pub async fn trio() -> (TestNode, TestNode, TestNode, RosterBuilder) {
    let a = TestNode::start_new("RJZ").await.expect("RJZ starts");
    let b = TestNode::start_new("RJ1").await.expect("RJ1 starts");
    let c = TestNode::start_new("RV5").await.expect("RV5 starts");
    let mut r = roster("london-mou");
    let chain = add_members(&mut r, &[&a, &b, &c]);
    for n in [&a, &b, &c] {
        submit(n, &chain).await.expect("the chain is accepted");
    }
    for (x, y) in [(&a, &b), (&a, &c), (&b, &c)] {
        let (xn, yp) = (x, y.peer_id);
        wait_until("the three nodes form a mesh from roster hints", || async move { xn.connected_to(&yp).await }).await;
    }
    (a, b, c, r)
}

/// A raw peer registered in the roster as `org`'s node, with testkit's
/// issuer key for `org`: a real member of `r`'s agreement with keys of
/// its own, that a test can make misbehave on the wire.
pub async fn raw_member(home: &TestNode, r: &mut RosterBuilder, org: &str) -> raw::RawPeer {
    let raw = raw::RawPeer::new(libp2p::identity::Keypair::generate_ed25519()).expect("raw peer");
    let e = r.entry(
        Change::AddMember(MemberSpec {
            org: org.parse().expect("org code"),
            name: format!("{org} test trust"),
            issuer_keys: vec![staffpass_protocol::testkit::issuer(org, 0).public()],
            nodes: vec![staffpass_node::network::node_of(&raw.peer_id()).expect("ed25519 peer id")],
            addresses: vec![],
        }),
        2,
    );
    r.chain.append(e.clone()).expect("the member entry extends the chain");
    submit_entry(home, &e).await.expect("the member entry is accepted");
    raw
}

/// A roster for `agreement` whose genesis is signed by one steward key of
/// an attacker's choosing (threshold 1): valid in itself, but not the
/// chain any honest node's admin installed.
pub fn self_signed_roster(agreement: &str) -> RosterBuilder {
    let mut r = RosterBuilder::with_valid_until(agreement.parse().expect("agreement id"), 1, 1, now().plus_days(30));
    r.stewards = vec![staffpass_protocol::StewardSecretKey::from_bytes(&[7; 32])];
    let mut genesis = r.chain.entries()[0].clone();
    if let Change::Genesis { stewards, .. } = &mut genesis.body.change {
        *stewards = [r.stewards[0].public()].into_iter().collect();
    }
    genesis.signatures.clear();
    genesis.sign(&r.stewards[0]);
    r.chain = staffpass_protocol::roster::Chain::new(genesis).expect("a self-signed genesis");
    r.clock = now().plus_secs(-3600);
    r
}

/// A separate agreement, `rogue-pact`, made by other stewards, that lists
/// the outsider and `members`: the outsider believes they are its peers,
/// but they never signed it.
pub fn forged_agreement(outsider: &TestNode, members: &[&TestNode]) -> Vec<Entry> {
    let mut r = self_signed_roster("rogue-pact");
    let mut all = vec![outsider];
    all.extend_from_slice(members);
    add_members(&mut r, &all)
}
