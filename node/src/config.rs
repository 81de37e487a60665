//! Node configuration: a TOML file with documented defaults, overridable
//! per value by environment variables (`STAFFPASS_<SECTION>__<KEY>`, e.g.
//! `STAFFPASS_NETWORK__MDNS=true`) and by `--set section.key=value` flags,
//! validated at start with a message that says what to fix.
//!
//! [`Config::example`] renders the commented example written by
//! `staffpass-node init`; a test checks it parses back to the defaults, so
//! it cannot drift from this file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use staffpass_protocol::OrgId;

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "STAFFPASS_";

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML (after overrides) does not describe a valid configuration.
    #[error("invalid configuration{origin}: {message}")]
    Parse {
        /// Where (file path, if any).
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// An override is not `section.key=value`.
    #[error("override {input:?} is not of the form section.key=value (e.g. network.mdns=true)")]
    BadOverride {
        /// What was given.
        input: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration value {key}: {message}")]
    Invalid {
        /// Which key.
        key: &'static str,
        /// What to fix.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This trust's organisation id (ODS code, e.g. `RJZ`). Required.
    pub org: OrgId,
    /// Data directory: keys, certificates, database. Default: `./staffpass-data`.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// Peer-to-peer network.
    #[serde(default)]
    pub network: Network,
    /// Local HTTPS API.
    #[serde(default)]
    pub api: Api,
    /// The public HTTPS listener (issuer metadata and status list only).
    #[serde(default)]
    pub public: Public,
    /// Passport flows.
    #[serde(default)]
    pub exchange: Exchange,
    /// The database.
    #[serde(default)]
    pub storage: Storage,
    /// Logging.
    #[serde(default)]
    pub log: Log,
}

/// Peer-to-peer network settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Multiaddrs to listen on. Default: TCP and QUIC on port 7400, all interfaces.
    #[serde(default = "defaults::listen")]
    pub listen: Vec<String>,
    /// Addresses to announce to peers, if they differ from the listen
    /// addresses (NAT, containers). Default: none.
    #[serde(default)]
    pub external_addresses: Vec<String>,
    /// Discover peers on the local network with mDNS (testnets). Default: false.
    #[serde(default)]
    pub mdns: bool,
    /// Close a connection idle this long, in seconds. Default: 300.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Timeout of one request to a peer, in seconds. Default: 30.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// How often to compare roster heads with every connected peer, in seconds. Default: 30.
    #[serde(default = "defaults::anti_entropy_secs")]
    pub anti_entropy_secs: u64,
    /// Longest wait between redials of a member that cannot be reached, in seconds. Default: 60.
    #[serde(default = "defaults::redial_max_secs")]
    pub redial_max_secs: u64,
    /// In each agreement, how many of the other members' nodes this node
    /// dials and keeps connected (its standing peers), chosen by
    /// rendezvous hashing of the two node ids; every other member's node
    /// may still connect, and is dialled when there is something to send
    /// it (the connection closes after `idle_timeout_secs`). An agreement
    /// with no more other nodes than this has them all dialled. 4 to 1000.
    /// Default: 24.
    #[serde(default = "defaults::standing_peers")]
    pub standing_peers: usize,
    /// Most concurrent inbound streams per protocol, per connection. Default: 64.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: usize,
    /// Most incoming connections still in their handshake (before the
    /// peer is known); more are refused at once. Default: 128.
    #[serde(default = "defaults::max_pending_incoming")]
    pub max_pending_incoming: u32,
    /// Most incoming connections still in their handshake from one IP
    /// address, so one host cannot take every place of
    /// `max_pending_incoming`. Default: 16.
    #[serde(default = "defaults::max_pending_incoming_per_ip")]
    pub max_pending_incoming_per_ip: u32,
    /// Most established connections with one peer, both directions. Default: 4.
    #[serde(default = "defaults::max_connections_per_peer")]
    pub max_connections_per_peer: u32,
    /// Most established connections in total. Default: 1024.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// New connections are refused while this process uses more than this
    /// percentage of the machine's physical memory. Default: 80.
    #[serde(default = "defaults::max_memory_percent")]
    pub max_memory_percent: u8,
    /// Roster requests (and, in a bucket of their own, roster gossip
    /// messages) accepted from one peer per second, sustained; beyond
    /// this and the burst, requests are answered `Unknown` and gossip is
    /// ignored. Default: 20.
    #[serde(default = "defaults::roster_requests_per_sec")]
    pub roster_requests_per_sec: u32,
    /// Roster requests (and gossip messages) one peer may send back to back. Default: 200.
    #[serde(default = "defaults::roster_request_burst")]
    pub roster_request_burst: u32,
    /// Exchange requests (offers, withdrawals, revocations) accepted from
    /// one peer per second, sustained; beyond this and the burst they are
    /// not answered, and the sender's outbox retries later. Default: 1000.
    #[serde(default = "defaults::exchange_requests_per_sec")]
    pub exchange_requests_per_sec: u32,
    /// Exchange requests one peer may send back to back. Default: 2000.
    #[serde(default = "defaults::exchange_request_burst")]
    pub exchange_request_burst: u32,
}

/// Local API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Address of the HTTPS API. Default: `127.0.0.1:7443`.
    #[serde(default = "defaults::api_listen")]
    pub listen: SocketAddr,
    /// Largest request body, in bytes, except imports. Default: 1 MiB.
    #[serde(default = "defaults::body_limit")]
    pub body_limit_bytes: usize,
    /// Largest staff import body, in bytes. Default: 64 MiB.
    #[serde(default = "defaults::import_limit")]
    pub import_limit_bytes: usize,
    /// Most connections open at once, handshaking or served. When full, a
    /// new connection takes the place of the oldest one still in its TLS
    /// handshake, or is refused if there is none. Default: 256.
    #[serde(default = "defaults::api_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once from one IP address. When reached, a
    /// new connection from it takes the place of its oldest one still in
    /// its TLS handshake, or is refused if there is none. Default: 32.
    #[serde(default = "defaults::api_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Longest a client may take to complete its TLS handshake, in seconds. Default: 3.
    #[serde(default = "defaults::api_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// A served connection with no request in flight for this long is
    /// closed, in seconds (HTTP/1 and HTTP/2). Default: 120.
    #[serde(default = "defaults::api_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Interval of HTTP/2 keep-alive pings, in seconds; a client that does
    /// not answer one within the same time is disconnected. Default: 30.
    #[serde(default = "defaults::api_http2_keep_alive_secs")]
    pub http2_keep_alive_secs: u64,
}

/// Passport flow settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// Validity of an issued credential, in days. Default: 365.
    #[serde(default = "defaults::credential_days")]
    pub credential_validity_days: u32,
    /// First retry delay of the outbox, in milliseconds. Default: 500.
    #[serde(default = "defaults::retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay of the outbox, in seconds. Default: 300.
    #[serde(default = "defaults::retry_max_secs")]
    pub retry_max_secs: u64,
    /// How often received passports are swept for ended consents, in seconds. Default: 60.
    #[serde(default = "defaults::expiry_sweep_secs")]
    pub expiry_sweep_secs: u64,
    /// The longest this node keeps a received passport, in days, whatever
    /// the sender's consent says (it is erased then, like an ended
    /// consent). Default: 1830 (the longest a consent may last).
    #[serde(default = "defaults::max_keep_days")]
    pub max_keep_days: u32,
    /// How long the receipt of a handled message is kept to answer a
    /// replay of it, in days. Default: 30.
    #[serde(default = "defaults::inbox_keep_days")]
    pub inbox_keep_days: u32,
    /// At the home trust, how long credentials that expired or were
    /// revoked, and consents that ended (erasure confirmed, refused, or
    /// past their window), are kept before they are deleted, in days.
    /// Default: 180.
    #[serde(default = "defaults::home_keep_days")]
    pub home_keep_days: u32,
    /// The HTTPS URL that names this trust as the issuer (`iss`) of the
    /// SD-JWT VCs it exports, where its issuer metadata is published.
    /// Default: none, which stands for `https://staffpass.<org>.invalid`:
    /// set it before exporting credentials for use outside staffpass.
    #[serde(default)]
    pub issuer_url: Option<String>,
}

impl Exchange {
    /// The issuer URL of `org`'s SD-JWT VCs: `issuer_url`, or the
    /// placeholder `https://staffpass.<org, lower case>.invalid`.
    pub fn issuer_url_of(&self, org: &OrgId) -> String {
        self.issuer_url.clone().unwrap_or_else(|| {
            let host: String = org
                .to_string()
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!("https://staffpass.{host}.invalid")
        })
    }
}

/// The optional public HTTPS listener: it serves this trust's JWT VC
/// issuer metadata (`/.well-known/jwt-vc-issuer`) and its Token Status
/// List (`/statuslists/1`), under the path of `exchange.issuer_url`, to
/// anyone, with no client certificate, and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Public {
    /// Address to listen on. Default: none (off).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain it presents: one verifiers trust for the host
    /// of `exchange.issuer_url`. Default: the local API's certificate
    /// (signed by this node's own CA, so only for tests).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (mode 0600). Default: the local API's.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Database settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// sled's page cache, in MiB: more keeps more of the database in
    /// memory (sled counts it in bytes on disk; what it holds in memory is
    /// several times that). Default: 8 (issue 17: 32 left an idle node
    /// 28 MB larger after a bulk import, and 4 saved nothing more).
    #[serde(default = "defaults::cache_mb")]
    pub cache_mb: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { cache_mb: defaults::cache_mb() }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings. Levels come from `RUST_LOG` (default `info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `human` or `json`. Default: `human`.
    #[serde(default)]
    pub format: LogFormat,
}

mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    pub fn data_dir() -> PathBuf {
        PathBuf::from("./staffpass-data")
    }
    pub fn listen() -> Vec<String> {
        vec!["/ip4/0.0.0.0/tcp/7400".into(), "/ip4/0.0.0.0/udp/7400/quic-v1".into()]
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn anti_entropy_secs() -> u64 {
        30
    }
    pub fn redial_max_secs() -> u64 {
        60
    }
    pub fn standing_peers() -> usize {
        24
    }
    pub fn max_concurrent_streams() -> usize {
        64
    }
    pub fn max_pending_incoming() -> u32 {
        128
    }
    pub fn max_pending_incoming_per_ip() -> u32 {
        16
    }
    pub fn max_connections_per_peer() -> u32 {
        4
    }
    pub fn max_connections() -> u32 {
        1024
    }
    pub fn max_memory_percent() -> u8 {
        80
    }
    pub fn roster_requests_per_sec() -> u32 {
        20
    }
    pub fn roster_request_burst() -> u32 {
        200
    }
    pub fn exchange_requests_per_sec() -> u32 {
        1000
    }
    pub fn exchange_request_burst() -> u32 {
        2000
    }
    pub fn api_max_connections() -> usize {
        256
    }
    pub fn api_max_connections_per_ip() -> usize {
        32
    }
    pub fn api_handshake_timeout_secs() -> u64 {
        3
    }
    pub fn api_idle_timeout_secs() -> u64 {
        120
    }
    pub fn api_http2_keep_alive_secs() -> u64 {
        30
    }
    pub fn api_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7443))
    }
    pub fn body_limit() -> usize {
        1024 * 1024
    }
    pub fn import_limit() -> usize {
        64 * 1024 * 1024
    }
    pub fn credential_days() -> u32 {
        365
    }
    pub fn max_keep_days() -> u32 {
        1830
    }
    pub fn inbox_keep_days() -> u32 {
        30
    }
    pub fn home_keep_days() -> u32 {
        180
    }
    pub fn retry_initial_ms() -> u64 {
        500
    }
    pub fn retry_max_secs() -> u64 {
        300
    }
    pub fn expiry_sweep_secs() -> u64 {
        60
    }
    pub fn cache_mb() -> u64 {
        8
    }
}

impl Default for Network {
    fn default() -> Self {
        Network {
            listen: defaults::listen(),
            external_addresses: Vec::new(),
            mdns: false,
            idle_timeout_secs: defaults::idle_timeout_secs(),
            request_timeout_secs: defaults::request_timeout_secs(),
            anti_entropy_secs: defaults::anti_entropy_secs(),
            redial_max_secs: defaults::redial_max_secs(),
            standing_peers: defaults::standing_peers(),
            max_concurrent_streams: defaults::max_concurrent_streams(),
            max_pending_incoming: defaults::max_pending_incoming(),
            max_pending_incoming_per_ip: defaults::max_pending_incoming_per_ip(),
            max_connections_per_peer: defaults::max_connections_per_peer(),
            max_connections: defaults::max_connections(),
            max_memory_percent: defaults::max_memory_percent(),
            roster_requests_per_sec: defaults::roster_requests_per_sec(),
            roster_request_burst: defaults::roster_request_burst(),
            exchange_requests_per_sec: defaults::exchange_requests_per_sec(),
            exchange_request_burst: defaults::exchange_request_burst(),
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: defaults::api_listen(),
            body_limit_bytes: defaults::body_limit(),
            import_limit_bytes: defaults::import_limit(),
            max_connections: defaults::api_max_connections(),
            max_connections_per_ip: defaults::api_max_connections_per_ip(),
            handshake_timeout_secs: defaults::api_handshake_timeout_secs(),
            idle_timeout_secs: defaults::api_idle_timeout_secs(),
            http2_keep_alive_secs: defaults::api_http2_keep_alive_secs(),
        }
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            credential_validity_days: defaults::credential_days(),
            retry_initial_ms: defaults::retry_initial_ms(),
            retry_max_secs: defaults::retry_max_secs(),
            expiry_sweep_secs: defaults::expiry_sweep_secs(),
            max_keep_days: defaults::max_keep_days(),
            inbox_keep_days: defaults::inbox_keep_days(),
            home_keep_days: defaults::home_keep_days(),
            issuer_url: None,
        }
    }
}

impl Config {
    /// The defaults for `org`.
    pub fn new(org: OrgId) -> Self {
        Config {
            org,
            data_dir: defaults::data_dir(),
            network: Network::default(),
            api: Api::default(),
            public: Public::default(),
            exchange: Exchange::default(),
            storage: Storage::default(),
            log: Log::default(),
        }
    }

    /// Loads `path` (if given), then the environment, then `overrides`
    /// (`section.key=value`), and validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, Error> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| Error::Read { path: p.to_path_buf(), source })?,
                format!(" in {}", p.display()),
            ),
            None => (String::new(), String::new()),
        };
        Self::from_toml(&text, &origin, env, overrides)
    }

    /// [`Config::load`] of a file's text, already read: parses `text`,
    /// applies the environment, then `overrides`, and validates the
    /// result. `origin` is added to parse errors (e.g. `" in node.toml"`).
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, Error> {
        let origin = origin.to_owned();
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Parse { origin: origin.clone(), message: e.message().into() })?;
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix(ENV_PREFIX) {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                set_path(&mut table, &key, &v);
            }
        }
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| Error::BadOverride { input: o.clone() })?;
            if k.trim().is_empty() {
                return Err(Error::BadOverride { input: o.clone() });
            }
            set_path(&mut table, k.trim(), v);
        }
        let cfg: Config =
            table.try_into().map_err(|e: toml::de::Error| Error::Parse { origin, message: e.message().to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and formats.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |key, message: &str| Err(Error::Invalid { key, message: message.into() });
        if self.network.listen.is_empty() {
            return invalid("network.listen", "at least one listen address is needed");
        }
        for a in self.network.listen.iter().chain(&self.network.external_addresses) {
            if libp2p::Multiaddr::from_str(a).is_err() {
                return Err(Error::Invalid {
                    key: "network.listen",
                    message: format!("{a:?} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/7400)"),
                });
            }
        }
        if !(1..=86_400).contains(&self.network.idle_timeout_secs) {
            return invalid("network.idle_timeout_secs", "must be 1 to 86400");
        }
        if !(1..=600).contains(&self.network.request_timeout_secs) {
            return invalid("network.request_timeout_secs", "must be 1 to 600");
        }
        if !(1..=86_400).contains(&self.network.anti_entropy_secs) {
            return invalid("network.anti_entropy_secs", "must be 1 to 86400");
        }
        if !(1..=3600).contains(&self.network.redial_max_secs) {
            return invalid("network.redial_max_secs", "must be 1 to 3600");
        }
        if !(1..=1024).contains(&self.network.max_concurrent_streams) {
            return invalid("network.max_concurrent_streams", "must be 1 to 1024");
        }
        let n = &self.network;
        // Fewer than 4 standing peers leaves a real chance that an
        // agreement's standing connections split into parts that gossip
        // cannot cross (anti-entropy then waits for an on-demand dial).
        in_range("network.standing_peers", n.standing_peers, 4, 1000)?;
        in_range("network.max_pending_incoming", n.max_pending_incoming, 1, 65_536)?;
        // At most the total (the message then names its value).
        in_range("network.max_pending_incoming_per_ip", n.max_pending_incoming_per_ip, 1, n.max_pending_incoming)?;
        in_range("network.max_connections_per_peer", n.max_connections_per_peer, 1, 64)?;
        in_range("network.max_connections", n.max_connections, 1, 1_000_000)?;
        if n.max_connections < n.max_connections_per_peer {
            return invalid("network.max_connections", "must be at least network.max_connections_per_peer");
        }
        in_range("network.max_memory_percent", n.max_memory_percent, 1, 100)?;
        in_range("network.roster_requests_per_sec", n.roster_requests_per_sec, 1, 1_000_000)?;
        in_range("network.roster_request_burst", n.roster_request_burst, 1, 1_000_000)?;
        in_range("network.exchange_requests_per_sec", n.exchange_requests_per_sec, 1, 1_000_000)?;
        in_range("network.exchange_request_burst", n.exchange_request_burst, 1, 1_000_000)?;
        if !(1024..=16 * 1024 * 1024).contains(&self.api.body_limit_bytes) {
            return invalid("api.body_limit_bytes", "must be 1 KiB to 16 MiB");
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.api.import_limit_bytes) {
            return invalid("api.import_limit_bytes", "must be 1 KiB to 1 GiB");
        }
        let a = &self.api;
        in_range("api.max_connections", a.max_connections, 1, 65_536)?;
        in_range("api.max_connections_per_ip", a.max_connections_per_ip, 1, a.max_connections)?;
        in_range("api.handshake_timeout_secs", a.handshake_timeout_secs, 1, 60)?;
        in_range("api.idle_timeout_secs", a.idle_timeout_secs, 1, 86_400)?;
        in_range("api.http2_keep_alive_secs", a.http2_keep_alive_secs, 1, 3600)?;
        if !(1..=3650).contains(&self.exchange.inbox_keep_days) {
            return invalid("exchange.inbox_keep_days", "must be 1 to 3650");
        }
        if !(1..=3650).contains(&self.exchange.home_keep_days) {
            return invalid("exchange.home_keep_days", "must be 1 to 3650");
        }
        if let Some(url) = &self.exchange.issuer_url {
            let host = url.strip_prefix("https://").unwrap_or_default();
            if host.is_empty()
                || host.starts_with('/')
                || url.len() > 256
                || url.ends_with('/')
                || url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '"' | '\\'))
            {
                return invalid(
                    "exchange.issuer_url",
                    "must be an https:// URL of at most 256 characters, without a query, fragment, quotes or a trailing /",
                );
            }
        }
        if !(1..=3650).contains(&self.exchange.max_keep_days) {
            return invalid("exchange.max_keep_days", "must be 1 to 3650");
        }
        if !(1..=3650).contains(&self.exchange.credential_validity_days) {
            return invalid("exchange.credential_validity_days", "must be 1 to 3650");
        }
        if !(1..=60_000).contains(&self.exchange.retry_initial_ms) {
            return invalid("exchange.retry_initial_ms", "must be 1 to 60000");
        }
        if !(1..=86_400).contains(&self.exchange.retry_max_secs) {
            return invalid("exchange.retry_max_secs", "must be 1 to 86400");
        }
        if !(1..=86_400).contains(&self.exchange.expiry_sweep_secs) {
            return invalid("exchange.expiry_sweep_secs", "must be 1 to 86400");
        }
        if !(4..=65_536).contains(&self.storage.cache_mb) {
            return invalid("storage.cache_mb", "must be 4 to 65536");
        }
        if self.public.cert_file.is_some() != self.public.key_file.is_some() {
            return invalid("public.cert_file", "public.cert_file and public.key_file are set together or not at all");
        }
        if self.public.listen.is_some() && self.public.listen == Some(self.api.listen) {
            return invalid("public.listen", "must not be the local API's address");
        }
        Ok(())
    }

    /// The commented example configuration for this config's values.
    pub fn example(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |v: &[String]| format!("[{}]", v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "));
        format!(
            r#"# staffpass-node configuration.
# Every value can be overridden by an environment variable
# STAFFPASS_<SECTION>__<KEY> (e.g. STAFFPASS_NETWORK__MDNS=true) or by
# `staffpass-node run --set section.key=value`.

# This trust's organisation id (ODS code, e.g. RJZ). Required.
org = {org}
# Data directory: keys, certificates, database. Default: "./staffpass-data".
data_dir = {data_dir}

[network]
# Multiaddrs to listen on. Default: TCP and QUIC on port 7400, all interfaces.
listen = {listen}
# Addresses to announce to peers if they differ from the listen addresses. Default: [].
external_addresses = {external}
# Discover peers on the local network with mDNS (testnets only). Default: false.
mdns = {mdns}
# Close a connection idle this long, in seconds. Default: 300.
idle_timeout_secs = {idle}
# Timeout of one request to a peer, in seconds. Default: 30.
request_timeout_secs = {req}
# How often to compare roster heads with connected peers, in seconds. Default: 30.
anti_entropy_secs = {ae}
# Longest wait between redials of an unreachable member, in seconds. Default: 60.
redial_max_secs = {redial}
# In each agreement, how many other members' nodes this node dials and keeps
# connected, chosen by rendezvous hashing of the node ids; the others may
# still connect and are dialled when there is something to send them (that
# connection closes after idle_timeout_secs). 4 to 1000. Default: 24.
standing_peers = {standing}
# Most concurrent inbound streams per protocol, per connection. Default: 64.
max_concurrent_streams = {streams}
# Most incoming connections still in their handshake; more are refused at once. Default: 128.
max_pending_incoming = {pending}
# Most incoming connections in their handshake from one IP address. Default: 16.
max_pending_incoming_per_ip = {pending_ip}
# Most established connections with one peer, both directions. Default: 4.
max_connections_per_peer = {per_peer}
# Most established connections in total. Default: 1024.
max_connections = {conns}
# Refuse new connections while this process uses more than this percentage
# of the machine's physical memory. Default: 80.
max_memory_percent = {memory}
# Roster requests accepted from one peer per second (roster gossip has a
# bucket of its own at the same rate); beyond the burst, requests are
# answered Unknown and gossip is ignored, and each is counted in
# staffpass_peer_misbehaviour_total{{reason="roster-rate-limit"}} (or
# "gossip-rate-limit"). Default: 20.
roster_requests_per_sec = {roster_rate}
# Roster requests (or gossip messages) one peer may send back to back. Default: 200.
roster_request_burst = {roster_burst}
# Exchange requests accepted from one peer per second; beyond the burst
# they are not answered (the sender retries later). Default: 1000.
exchange_requests_per_sec = {exchange_rate}
# Exchange requests one peer may send back to back. Default: 2000.
exchange_request_burst = {exchange_burst}

[api]
# Address of the local HTTPS API (client certificates required). Default: "127.0.0.1:7443".
listen = {api}
# Largest request body in bytes, except imports. Default: 1048576.
body_limit_bytes = {body}
# Largest staff import body in bytes. Default: 67108864.
import_limit_bytes = {import}
# Most connections open at once; when full, a new one replaces the oldest
# still in its TLS handshake, or is refused. Default: 256.
max_connections = {api_conns}
# Most connections open at once from one IP address; when reached, a new one
# from it replaces its oldest still in its TLS handshake, or is refused. Default: 32.
max_connections_per_ip = {api_per_ip}
# Longest a client may take to complete its TLS handshake, in seconds. Default: 3.
handshake_timeout_secs = {api_handshake}
# Close a connection with no request in flight for this long, in seconds. Default: 120.
idle_timeout_secs = {api_idle}
# Interval of HTTP/2 keep-alive pings (and how long to wait for the answer), in seconds. Default: 30.
http2_keep_alive_secs = {api_keep_alive}

[exchange]
# Validity of an issued credential, in days. Default: 365.
credential_validity_days = {cred}
# First retry delay of the outbox, in milliseconds. Default: 500.
retry_initial_ms = {ri}
# Longest retry delay of the outbox, in seconds. Default: 300.
retry_max_secs = {rm}
# How often received passports are swept for ended consents, in seconds. Default: 60.
expiry_sweep_secs = {sweep}
# The longest a received passport is kept, in days, whatever the sender's
# consent says (then erased like an ended consent). Default: 1830.
max_keep_days = {keep}
# How long the receipt of a handled message is kept to answer a replay, in days. Default: 30.
inbox_keep_days = {inbox}
# At the home trust: how long expired or revoked credentials and ended
# consents are kept before they are deleted, in days. Default: 180.
home_keep_days = {home_keep}
# The HTTPS URL that names this trust as the issuer of the SD-JWT VCs it
# exports (their `iss`), where its issuer metadata is published. Default:
# https://staffpass.<org>.invalid, a placeholder: set it before exporting.
{issuer_url}

[public]
# Optional public HTTPS listener: serves only this trust's issuer metadata
# (/.well-known/jwt-vc-issuer) and status list (/statuslists/1), under the
# path of exchange.issuer_url, to anyone (no client certificate). Default: off.
{public_listen}
# The certificate (PEM chain) and key it presents, trusted for the issuer
# URL's host. Default: the local API's (this node's own CA: tests only).
{public_cert}
{public_key}

[storage]
# sled's page cache in MiB: more keeps more of the database in memory (sled
# counts it in bytes on disk; what it holds in memory is several times that).
# Default: 8.
cache_mb = {cache}

[log]
# "human" or "json". Levels come from RUST_LOG (default info). Default: "human".
format = {format}
"#,
            org = q(&self.org.to_string()),
            data_dir = q(&self.data_dir.display().to_string()),
            listen = list(&self.network.listen),
            external = list(&self.network.external_addresses),
            mdns = self.network.mdns,
            idle = self.network.idle_timeout_secs,
            req = self.network.request_timeout_secs,
            ae = self.network.anti_entropy_secs,
            redial = self.network.redial_max_secs,
            standing = self.network.standing_peers,
            streams = self.network.max_concurrent_streams,
            pending = self.network.max_pending_incoming,
            pending_ip = self.network.max_pending_incoming_per_ip,
            per_peer = self.network.max_connections_per_peer,
            conns = self.network.max_connections,
            memory = self.network.max_memory_percent,
            roster_rate = self.network.roster_requests_per_sec,
            roster_burst = self.network.roster_request_burst,
            exchange_rate = self.network.exchange_requests_per_sec,
            exchange_burst = self.network.exchange_request_burst,
            api = q(&self.api.listen.to_string()),
            body = self.api.body_limit_bytes,
            import = self.api.import_limit_bytes,
            api_conns = self.api.max_connections,
            api_per_ip = self.api.max_connections_per_ip,
            api_handshake = self.api.handshake_timeout_secs,
            api_idle = self.api.idle_timeout_secs,
            api_keep_alive = self.api.http2_keep_alive_secs,
            cred = self.exchange.credential_validity_days,
            keep = self.exchange.max_keep_days,
            inbox = self.exchange.inbox_keep_days,
            home_keep = self.exchange.home_keep_days,
            issuer_url = match &self.exchange.issuer_url {
                Some(u) => format!("issuer_url = {}", q(u)),
                None => "# issuer_url = \"https://staffpass.example.nhs.uk\"".to_string(),
            },
            ri = self.exchange.retry_initial_ms,
            rm = self.exchange.retry_max_secs,
            sweep = self.exchange.expiry_sweep_secs,
            cache = self.storage.cache_mb,
            public_listen = match &self.public.listen {
                Some(a) => format!("listen = {}", q(&a.to_string())),
                None => "# listen = \"0.0.0.0:8443\"".to_string(),
            },
            public_cert = match &self.public.cert_file {
                Some(p) => format!("cert_file = {}", q(&p.display().to_string())),
                None => "# cert_file = \"/etc/staffpass/public.crt\"".to_string(),
            },
            public_key = match &self.public.key_file {
                Some(p) => format!("key_file = {}", q(&p.display().to_string())),
                None => "# key_file = \"/etc/staffpass/public.key\"".to_string(),
            },
            format = q(match self.log.format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            }),
        )
    }
}

/// `Ok` if `lo <= value <= hi`, else the error naming `key` and the range.
fn in_range<T: PartialOrd + std::fmt::Display>(key: &'static str, value: T, lo: T, hi: T) -> Result<(), Error> {
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(Error::Invalid { key, message: format!("must be {lo} to {hi}") })
    }
}

/// Sets `a.b.c = value` in a TOML table, parsing the value as a TOML
/// literal when it is one (numbers, booleans, arrays) and as a string
/// otherwise.
fn set_path(table: &mut toml::Table, key: &str, value: &str) {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else { return };
        t = next;
    }
    t.insert(last.to_string(), parsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        "RJZ".parse().unwrap()
    }

    #[test]
    fn the_example_parses_back_to_the_same_config() {
        let mut c = Config::new(org());
        c.network.mdns = true;
        c.api.listen = "127.0.0.1:9000".parse().unwrap();
        c.network.max_connections_per_peer = 2;
        c.network.max_pending_incoming_per_ip = 3;
        c.network.max_memory_percent = 50;
        c.network.roster_requests_per_sec = 5;
        c.network.exchange_request_burst = 10;
        c.network.standing_peers = 6;
        c.api.max_connections_per_ip = 8;
        c.api.handshake_timeout_secs = 1;
        c.api.http2_keep_alive_secs = 10;
        c.exchange.issuer_url = Some("https://staffpass.kch.nhs.uk".into());
        let dir = std::env::temp_dir().join(format!("staffpass-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, c.example()).unwrap();
        let back = Config::load(Some(&path), Vec::new(), &[]).unwrap();
        assert_eq!(back, c);
        let defaults = Config::new(org());
        std::fs::write(&path, defaults.example()).unwrap();
        assert_eq!(Config::load(Some(&path), Vec::new(), &[]).unwrap(), defaults);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn env_and_flags_override_the_file() {
        let env = vec![
            ("STAFFPASS_ORG".to_string(), "RJ1".to_string()),
            ("STAFFPASS_NETWORK__MDNS".to_string(), "true".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load(None, env, &["api.listen=127.0.0.1:1234".into(), "network.anti_entropy_secs=5".into()])
            .unwrap();
        assert_eq!(c.org.to_string(), "RJ1");
        assert!(c.network.mdns);
        assert_eq!(c.api.listen.port(), 1234);
        assert_eq!(c.network.anti_entropy_secs, 5);
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let base = vec![("STAFFPASS_ORG".to_string(), "RJZ".to_string())];
        let err = Config::load(None, base.clone(), &["network.anti_entropy_secs=0".into()]).unwrap_err();
        assert!(err.to_string().contains("network.anti_entropy_secs"), "{err}");
        let err = Config::load(None, base.clone(), &["network.listen=[\"tcp:7400\"]".into()]).unwrap_err();
        assert!(err.to_string().contains("multiaddr"), "{err}");
        let err = Config::load(None, base.clone(), &["network.typo=1".into()]).unwrap_err();
        assert!(err.to_string().contains("typo"), "{err}");
        let err = Config::load(None, vec![("STAFFPASS_ORG".into(), "not an org".into())], &[]).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
        assert!(matches!(Config::load(None, base.clone(), &["nonsense".into()]), Err(Error::BadOverride { .. })));
        for (set, key) in [
            ("network.standing_peers=3", "network.standing_peers"),
            ("network.standing_peers=1001", "network.standing_peers"),
            ("network.max_pending_incoming=0", "network.max_pending_incoming"),
            ("network.max_pending_incoming_per_ip=129", "network.max_pending_incoming_per_ip"),
            ("network.max_connections_per_peer=0", "network.max_connections_per_peer"),
            ("network.max_connections=2", "network.max_connections"),
            ("network.max_memory_percent=101", "network.max_memory_percent"),
            ("network.roster_requests_per_sec=0", "network.roster_requests_per_sec"),
            ("network.roster_request_burst=0", "network.roster_request_burst"),
            ("network.exchange_requests_per_sec=0", "network.exchange_requests_per_sec"),
            ("network.exchange_request_burst=0", "network.exchange_request_burst"),
            ("api.max_connections=0", "api.max_connections"),
            ("api.max_connections_per_ip=257", "api.max_connections_per_ip"),
            ("api.handshake_timeout_secs=0", "api.handshake_timeout_secs"),
            ("api.idle_timeout_secs=0", "api.idle_timeout_secs"),
            ("api.http2_keep_alive_secs=0", "api.http2_keep_alive_secs"),
        ] {
            let err = Config::load(None, base.clone(), &[set.into()]).unwrap_err();
            assert!(err.to_string().contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn issuer_url_must_be_https() {
        let base = vec![("STAFFPASS_ORG".to_string(), "RJZ".to_string())];
        for bad in [
            "http://staffpass.example",
            "https://",
            "https:///path",
            "https://a.example/",
            "https://a.example/x?y=1",
            "https://a.example#f",
            "https://a b.example",
            "ftp://a.example",
        ] {
            let set = format!("exchange.issuer_url=\"{bad}\"");
            let err = Config::load(None, base.clone(), &[set]).unwrap_err();
            assert!(err.to_string().contains("exchange.issuer_url"), "{bad}: {err}");
        }
        let ok = Config::load(None, base.clone(), &["exchange.issuer_url=\"https://staffpass.kch.nhs.uk/v1\"".into()])
            .unwrap();
        assert_eq!(ok.exchange.issuer_url_of(&ok.org), "https://staffpass.kch.nhs.uk/v1");
        let default = Config::load(None, base, &[]).unwrap();
        assert_eq!(default.exchange.issuer_url_of(&default.org), "https://staffpass.rjz.invalid");
        let ext: OrgId = "ext:charity:1012345".parse().unwrap();
        assert_eq!(default.exchange.issuer_url_of(&ext), "https://staffpass.ext-charity-1012345.invalid");
    }
}
