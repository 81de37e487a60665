//! `staffpass-node`: a trust's node. `init` creates its data directory;
//! `run` runs it until SIGINT or SIGTERM, then shuts down cleanly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use staffpass_node::config::{Config, LogFormat};
use staffpass_node::node::{self, Node};
use staffpass_protocol::OrgId;

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
/// exchange.retry_max_secs, exchange.expiry_sweep_secs, storage.cache_mb,
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
    ClientCert {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
        data_dir: PathBuf,
        /// The user's account name (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// The role: admin, hr or read-only.
        #[arg(long)]
        role: staffpass_node::api::Role,
    },
    /// Rotate the issuer key (run with the node stopped). The old key is kept
    /// as a retired key file. Give the printed keys to your agreement
    /// stewards: a `rotate-key` roster change must add the new key (and
    /// retire the old one) before passports signed with it are accepted.
    RotateIssuerKey {
        /// The node's data directory.
        #[arg(long, env = "STAFFPASS_DATA_DIR")]
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
        Command::ClientCert { data_dir, name, role } => {
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
        Command::RotateIssuerKey { data_dir } => {
            let r = staffpass_node::keys::KeyFiles::rotate_issuer(&node::paths::keys(&data_dir))?;
            println!("Issuer key rotated.");
            println!("  new key:     {}", r.new);
            println!("  retired key: {} (kept in {})", r.old, r.retired_path.display());
            println!(
                "Ask your stewards for: staffpass-admin roster propose rotate-key --add {} --retire {}",
                r.new, r.old
            );
            Ok(())
        }
        Command::ShowConfig { config, set } => {
            let cfg = Config::load(config.as_deref(), env_vars(), &set)?;
            print!("{}", cfg.example());
            Ok(())
        }
    }
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
