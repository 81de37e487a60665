//! `staffpass-node`: a trust's node. `init` creates its data directory;
//! `run` runs it until SIGINT or SIGTERM, then shuts down cleanly;
//! `backup` and `restore` copy a running node's data out and back.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use staffpass_node::config::{Config, LogFormat};
use staffpass_node::node::{self, Node};
use staffpass_node::tls::{Pki, RevokeTarget};
use staffpass_protocol::OrgId;

/// The node's allocator is jemalloc, which hands freed memory back to the
/// system within seconds. Under glibc's malloc, memory freed in one of its
/// per-thread arenas stayed there: a 60-minute soak ended at 232 MiB per
/// node under glibc and 133 MiB under jemalloc (BENCHMARKS.md, "Soak"; what
/// still grows is issue 17's). It is built with its background thread on
/// (the workspace's `background_threads` feature), which purges freed pages
/// after they have been idle ten seconds: without it jemalloc purges only
/// on later allocations, so a node gone idle after a burst (an import, a
/// wave of passports) kept its peak (issue 17, figure 7).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// staffpass-node: runs a trust's staffpass node.
///
/// Every configuration value can be set in the config file, by an
/// environment variable STAFFPASS_<SECTION>__<KEY> (e.g.
/// STAFFPASS_NETWORK__MDNS=true, STAFFPASS_API__LISTEN=127.0.0.1:7443), or
/// by `--set section.key=value`. Keys: org, data_dir, network.listen,
/// network.external_addresses, network.mdns, network.idle_timeout_secs,
/// network.request_timeout_secs, network.anti_entropy_secs,
/// network.redial_max_secs, network.max_concurrent_streams, api.listen,
/// api.body_limit_bytes, api.import_limit_bytes,
/// exchange.credential_validity_days, exchange.retry_initial_ms,
/// exchange.retry_max_secs, exchange.expiry_sweep_secs, exchange.issuer_url,
/// public.listen, public.cert_file, public.key_file, storage.cache_mb,
/// log.format. The
/// config file written by `init` documents each one and its default.
#[derive(Parser, Debug)]
#[command(name = "staffpass-node", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a node: data directory (0700), issuer, node and data keys
    /// (0600), local CA with server and admin client certificates, database,
    /// and a commented config file. Refuses to overwrite an existing node
    /// unless --force.
    Init {
        /// This trust's organisation id (ODS code, e.g. RJZ; non-NHS partners ext:<register>:<number>).
        #[arg(long, env = "STAFFPASS_ORG")]
        org: OrgId,
        /// Data directory to create.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// Peer-to-peer listen multiaddrs (repeatable). Default: TCP and QUIC on port 7400.
        #[arg(long)]
        listen: Vec<String>,
        /// Address for the local HTTPS API. Default: 127.0.0.1:7443.
        #[arg(long)]
        api_listen: Option<std::net::SocketAddr>,
        /// Extra host names or IP addresses for the API certificate (repeatable).
        #[arg(long = "api-name")]
        api_names: Vec<String>,
        /// Replace an existing node's keys and certificates (its identity changes!).
        #[arg(long)]
        force: bool,
    },
    /// Run the node until SIGINT or SIGTERM.
    Run {
        /// Config file (written by init as <data-dir>/node.toml).
        #[arg(long, env = "STAFFPASS_CONFIG")]
        config: Option<PathBuf>,
        /// Override one config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Log format: human or json (overrides log.format).
        #[arg(long)]
        log_format: Option<String>,
    },
    /// Issue a client certificate for the local API, signed by the node's
    /// CA, bound to a role: admin (everything), hr (staff, consents,
    /// received passports), read-only (status, peers, agreements, metrics).
    ///
    /// Without a subcommand, makes the key pair on this machine
    /// (clients/NAME.key, 0600). `sign` issues one from a client's own
    /// signing request instead (the key stays on the client's machine);
    /// `revoke` puts one on the node's revocation list.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    ClientCert {
        #[command(subcommand)]
        action: Option<ClientCertCommand>,
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The user's account name (letters, digits, '.', '_', '-').
        #[arg(long, required = true)]
        name: Option<String>,
        /// The role: admin, hr or read-only.
        #[arg(long, required = true)]
        role: Option<staffpass_node::api::Role>,
    },
    /// Replace the local API's CA, server certificate and admin client
    /// certificate (run with the node stopped, or restart it afterwards).
    /// The old files, the revocation list and every client certificate
    /// issued under the old CA are moved to tls/replaced-<time>/, not
    /// deleted. The node identity (PeerId), issuer and data keys, and the
    /// database are not touched. Every client must then use the new CA
    /// certificate and a certificate issued by the new CA.
    RotateApiCa {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// Extra host names or IP addresses for the new API certificate
        /// (repeatable); the old certificate's names are kept.
        #[arg(long = "api-name")]
        api_names: Vec<String>,
    },
    /// Rotate the issuer key, safely: prepare a new key (the node may keep
    /// running) and print it for your agreement stewards, who add it with
    /// `staffpass-admin roster propose rotate-key --org ORG --add KEY`. At
    /// its next start after every agreement's roster lists the new key,
    /// the node makes it current and deletes the old secret (audited);
    /// until then it keeps signing with the old key, so no receiver ever
    /// sees a signature by a key its roster does not know. Running it
    /// again prints the key already prepared.
    RotateIssuerKey {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// Replace the key now (node stopped), without waiting for the
        /// rosters: for a key feared compromised. Until the stewards add
        /// the new key, receivers refuse what it signs (offers fail;
        /// withdrawals and revocations are retried until they pass).
        #[arg(long)]
        immediate: bool,
    },
    /// Back up a running node. The node takes a consistent snapshot of its
    /// data (asked with the admin client certificate of its data
    /// directory), written to --out (0600): the store as stored (personal
    /// data sealed under the data key), the audit checkpoint, node.toml and
    /// the API certificates. It holds no key. With --keys-out, the keys
    /// (keys/*.key, record-keys and the API private keys), read on this
    /// host, go to a separate file (0600): keep it apart from the data
    /// backups and for a short time, since an erasure is final in your
    /// backups only once every key backup from before it is gone.
    Backup {
        /// Config file (default: <data-dir>/node.toml).
        #[arg(long, env = "STAFFPASS_CONFIG")]
        config: Option<PathBuf>,
        /// The node's data directory (default: the config's data_dir).
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Override one config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The data backup to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Also write the key backup here (must not exist).
        #[arg(long)]
        keys_out: Option<PathBuf>,
    },
    /// Restore a node from a data backup and its key backup into a new
    /// data directory (created 0700; refused if it holds anything). Both
    /// files are checked whole first, and the directory is moved into place
    /// only once its store opens, its record keys open and its audit log
    /// verifies, so a failure leaves nothing behind. The restored node has
    /// the identity of the one backed up: never run both.
    Restore {
        /// The data backup (from `backup --out`).
        #[arg(long)]
        from: PathBuf,
        /// The key backup (from `backup --keys-out`).
        #[arg(long)]
        keys: PathBuf,
        /// The new data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print the effective configuration (after file, environment and --set).
    ShowConfig {
        /// Config file.
        #[arg(long, env = "STAFFPASS_CONFIG")]
        config: Option<PathBuf>,
        /// Override one config value: section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

/// The `client-cert` subcommands.
#[derive(Subcommand, Debug)]
enum ClientCertCommand {
    /// Issue a certificate from a client's certificate signing request
    /// (made with `staffpass-admin cert request`). Only the request's public
    /// key is used: the role is the one given here, whatever the request
    /// claims, and the name is --name or the request's CN. Writes
    /// clients/NAME.pem; give it to the client with the node CA (tls/ca.pem).
    Sign {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// The signing request (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// The role: admin, hr or read-only.
        #[arg(long)]
        role: staffpass_node::api::Role,
        /// The account name (default: the request's CN, checked like any name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a client certificate, by name or by serial: it goes on the
    /// node's revocation list (tls/crl.pem, signed by the node CA) and its
    /// files move to tls/clients/revoked/. A running node refuses it from
    /// its next TLS handshake; no restart is needed.
    Revoke {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// The certificate's name (as issued).
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        name: Option<String>,
        /// The certificate's serial number (hex), e.g. one no longer on file.
        #[arg(long)]
        serial: Option<String>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn env_vars() -> Vec<(String, String)> {
    // STAFFPASS_CONFIG names the file itself, not a value in it.
    std::env::vars().filter(|(k, _)| k != "STAFFPASS_CONFIG").collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("staffpass-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { org, data_dir, listen, api_listen, api_names, force } => {
            let mut cfg = Config::new(org);
            cfg.data_dir = data_dir;
            if !listen.is_empty() {
                cfg.network.listen = listen;
            }
            if let Some(a) = api_listen {
                cfg.api.listen = a;
            }
            cfg.validate()?;
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            names.extend(api_names);
            if !cfg.api.listen.ip().is_unspecified() && !names.contains(&cfg.api.listen.ip().to_string()) {
                names.push(cfg.api.listen.ip().to_string());
            }
            let report = node::init(&cfg, &names, force)?;
            println!("Created node for {} in {}", cfg.org, report.data_dir.display());
            println!("  config:      {}", report.config.display());
            println!("  peer id:     {}", report.peer_id);
            println!("  issuer key:  {}", report.issuer_key);
            println!("  admin cert:  {}", report.admin_cert.display());
            println!("Give the peer id, issuer key and your listen addresses to your agreement stewards.");
            Ok(())
        }
        Command::Run { config, mut set, log_format } => {
            if let Some(f) = log_format {
                set.push(format!("log.format=\"{f}\""));
            }
            let cfg = Config::load(config.as_deref(), env_vars(), &set)?;
            init_logging(cfg.log.format);
            let running = Node::start(cfg).await?;
            wait_for_signal().await?;
            running.shutdown().await;
            Ok(())
        }
        Command::ClientCert { action: Some(action), .. } => client_cert(action),
        Command::ClientCert { action: None, data_dir, name, role } => {
            let (Some(data_dir), Some(name), Some(role)) = (data_dir, name, role) else {
                anyhow::bail!("client-cert needs --data-dir, --name and --role (or a subcommand: sign, revoke)");
            };
            let (cert, key) = staffpass_node::tls::Pki::issue_client(node::paths::tls(&data_dir), &name, role)?;
            println!("Issued a {role} certificate for {name}:");
            println!("  certificate: {}", cert.display());
            println!("  key (0600):  {}", key.display());
            println!(
                "  node CA:     {}",
                staffpass_node::tls::Pki::at(node::paths::tls(&data_dir)).ca_cert().display()
            );
            Ok(())
        }
        Command::RotateApiCa { data_dir, api_names } => {
            let r = Pki::at(node::paths::tls(&data_dir)).rotate_ca(&api_names)?;
            println!("Replaced the API CA, server certificate and admin client certificate.");
            println!("  old CA (sha256 {}) and files moved to {}:", r.old_ca_sha256, r.replaced_dir.display());
            for path in &r.moved {
                println!("    {}", path.display());
            }
            println!("  new CA:      {} (sha256 {})", r.ca_cert.display(), r.new_ca_sha256);
            println!("  admin cert:  {}", r.admin_cert.display());
            println!("  admin key:   {} (0600)", r.admin_key.display());
            println!("  API names:   {}", r.server_names.join(", "));
            println!("Unchanged: the node identity (PeerId), issuer and data keys, and the database.");
            println!("Restart the node: until then it still serves with the old CA.");
            println!(
                "Every client must now trust the new CA ({}) and use a certificate issued by it; \
                 the old admin and client certificates are refused.",
                r.ca_cert.display()
            );
            if !r.to_reissue.is_empty() {
                println!(
                    "Issue new certificates for: {} (staffpass-node client-cert sign --csr FILE --role ROLE)",
                    r.to_reissue.join(", ")
                );
            }
            Ok(())
        }
        Command::RotateIssuerKey { data_dir, immediate: false } => {
            let (current, next) = staffpass_node::keys::KeyFiles::prepare_issuer(&node::paths::keys(&data_dir))?;
            println!("New issuer key prepared; the node keeps signing with the current one for now.");
            println!("  current key:  {current}");
            println!("  prepared key: {next}");
            println!("Ask the stewards of every agreement you are in for:");
            println!("  staffpass-admin roster propose rotate-key --org <your org> --add {next}");
            println!(
                "Once every roster lists it, restart the node: it makes the new key current and deletes the old secret."
            );
            Ok(())
        }
        Command::RotateIssuerKey { data_dir, immediate: true } => {
            let r = staffpass_node::keys::KeyFiles::rotate_issuer(&node::paths::keys(&data_dir))?;
            println!("Issuer key rotated.");
            println!("  new key:     {}", r.new);
            println!("  retired key: {} (its secret is deleted)", r.old);
            println!(
                "Ask your stewards for: staffpass-admin roster propose rotate-key --add {} --retire {}",
                r.new, r.old
            );
            Ok(())
        }
        Command::Backup { config, data_dir, set, out, keys_out } => {
            backup(config, data_dir, &set, &out, keys_out.as_deref()).await
        }
        Command::Restore { from, keys, data_dir } => {
            let r = staffpass_node::backup::restore(&from, &keys, &data_dir)?;
            println!(
                "Restored the node of {} (backup taken {}) into {}:",
                r.header.org,
                r.header.created,
                r.data_dir.display()
            );
            println!("  store entries: {}", r.entries);
            println!("  audit log:     {} entries, verified", r.audit_entries);
            println!("  record keys:   {}", r.record_keys);
            if r.record_keys_differ {
                println!(
                    "Warning: the key backup was not taken with this data backup: records made after it cannot be \
                     opened, and those erased since stay erased."
                );
            }
            println!("Start it with: staffpass-node run --config {}", node::paths::config(&r.data_dir).display());
            println!("It has the identity (peer id, issuer key) of the node backed up: never run both.");
            Ok(())
        }
        Command::ShowConfig { config, set } => {
            let cfg = Config::load(config.as_deref(), env_vars(), &set)?;
            print!("{}", cfg.example());
            Ok(())
        }
    }
}

fn client_cert(action: ClientCertCommand) -> anyhow::Result<()> {
    match action {
        ClientCertCommand::Sign { data_dir, csr, role, name } => {
            let pki = Pki::at(node::paths::tls(&data_dir));
            let pem = read_limited(&csr, staffpass_node::tls::MAX_CSR_BYTES)?;
            let signed = pki.sign_csr(&pem, &csr.display().to_string(), name.as_deref(), role)?;
            println!("Issued a {} certificate for {} from {}:", signed.role, signed.name, csr.display());
            println!("  certificate: {}", signed.cert.display());
            println!("  serial:      {}", signed.serial);
            println!("  node CA:     {}", pki.ca_cert().display());
            println!("Give the client both files; its private key never left its machine.");
            Ok(())
        }
        ClientCertCommand::Revoke { data_dir, name, serial } => {
            let target = match (name, serial) {
                (_, Some(serial)) => RevokeTarget::Serial(serial),
                (Some(name), None) => RevokeTarget::Name(name),
                (None, None) => anyhow::bail!("give the certificate's name or --serial"),
            };
            let r = Pki::at(node::paths::tls(&data_dir)).revoke(&target)?;
            match &r.name {
                Some(name) => println!("Revoked the certificate of {name} (serial {}).", r.serial),
                None => println!("Revoked the certificate with serial {} (no file of it found).", r.serial),
            }
            println!("  revocation list: {} ({} revoked)", r.crl.display(), r.total);
            for path in &r.moved {
                println!("  kept aside:      {}", path.display());
            }
            println!(
                "A running node refuses it from its next TLS handshake (no restart needed); \
                 connections it already has open stay open until they close, or restart the node to cut them."
            );
            Ok(())
        }
    }
}

/// How many snapshots `backup` takes before giving up on a record key
/// file that keeps changing.
const BACKUP_ATTEMPTS: u32 = 3;
/// Time allowed for downloading one backup.
const BACKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

async fn backup(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    set: &[String],
    out: &std::path::Path,
    keys_out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use staffpass_node::backup::{self, KeySet, NewFile};
    use std::io::Write;
    let config = config.or_else(|| data_dir.as_deref().map(node::paths::config));
    let mut cfg = Config::load(config.as_deref(), env_vars(), set)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    let data = cfg.data_dir.clone();
    let mut api = cfg.api.listen;
    if api.ip().is_unspecified() {
        api.set_ip(if api.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let client =
        staffpass_api::Client::from_client_files(&format!("https://{api}"), &node::paths::admin_client_files(&data))?
            .with_timeout(BACKUP_TIMEOUT);
    for _ in 0..BACKUP_ATTEMPTS {
        let mut file = NewFile::create(out)?;
        let mut download = client.backup().await?;
        while let Some(chunk) = download.chunk().await? {
            file.file().write_all(&chunk).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        }
        let summary = backup::check(file.tmp_path())?;
        // Read after the snapshot, and kept only if it is the key file the
        // snapshot was taken with.
        let keys = match keys_out {
            Some(path) => {
                let keys = KeySet::read(&data)?;
                if keys.record_keys_digest() != summary.header.record_keys {
                    continue;
                }
                let mut kf = NewFile::create(path)?;
                keys.write(kf.file(), cfg.org.clone(), summary.header.created)?;
                Some((kf, keys.paths()))
            }
            None => None,
        };
        let written = file.persist()?;
        println!("Data backup of {} written to {} (0600):", cfg.org, written.display());
        println!("  taken:         {}", summary.header.created);
        println!("  store entries: {} (personal data sealed under the data key; no keys)", summary.entries);
        println!("  files:         {}", summary.files.join(", "));
        match keys {
            Some((kf, paths)) => {
                let written = kf.persist()?;
                println!("Key backup written to {} (0600):", written.display());
                println!("  files:         {}", paths.join(", "));
                println!(
                    "Keep the key backup apart from the data backups, and for a short time (e.g. 7 days): an erasure \
                     is final in your backups only once every key backup from before it is gone."
                );
            }
            None => println!(
                "No key backup written (--keys-out): the data backup can only be restored with this node's keys."
            ),
        }
        return Ok(());
    }
    Err(backup::Error::KeysMoving { attempts: BACKUP_ATTEMPTS }.into())
}

/// Reads at most `max` bytes of `path`, refusing a larger file.
fn read_limited(path: &std::path::Path, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if bytes.len() > max {
        anyhow::bail!("{} is larger than {max} bytes; not a certificate signing request", path.display());
    }
    Ok(bytes)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
