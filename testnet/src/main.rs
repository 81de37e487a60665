//! `staffpass-testnet`: a whole network of trusts in one command, as local
//! processes or in docker. Synthetic staff data, the stewards' offline
//! signing with `staffpass-admin`, real `staffpass-node` processes, and
//! scenarios that assert what happened (see issue 7 and `testnet/README.md`).

#[cfg(feature = "bench")]
mod bench;
#[cfg(not(feature = "bench"))]
#[path = "bench_off.rs"]
mod bench;
mod bins;
mod data;
mod docker;
mod hr;
mod net;
mod report;
mod scan;
mod scenarios;
mod soak;
mod stewards;
mod topology;
mod torture;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::report::Report;

/// The same allocator as `staffpass-node`: the benchmarks run nodes inside
/// this process (figures 2-5, 9, 10), and under glibc's malloc a tenth of
/// figure 3's CPU went to malloc and free (a `perf` profile, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use crate::scenarios::Options;

/// staffpass-testnet: bring up a network of NHS trusts running
/// staffpass-node, seed it, move staff across it, and check what happened.
///
/// Topology: RJZ King's, RJ1 Guy's and St Thomas', RV5 SLaM, RJ2 Lewisham
/// and Greenwich, RPG Oxleas, a hospice (ext:charity:1012345), and RAX in no
/// agreement; agreements london-mou (the five trusts), kings-health-partners
/// (RJZ, RJ1, RV5) and one-bromley (RJZ, RPG, the hospice).
#[derive(Debug, Parser)]
#[command(name = "staffpass-testnet", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct Common {
    /// Directory for the network (default: a new temp dir, removed afterwards
    /// unless --keep; `up` always keeps it and prints its path).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the directory (data dirs, node logs, steward files) afterwards.
    #[arg(long)]
    keep: bool,
    /// Seed of the synthetic staff data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Synthetic staff per trust.
    #[arg(long, default_value_t = 40)]
    rows: usize,
    /// Do not build staffpass-node and staffpass-admin first (under `cargo run` they are built).
    #[arg(long)]
    no_build: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: bring a network up, seed it, move staff across it, tell the story, tear it down.
    Demo {
        #[command(flatten)]
        common: Common,
    },
    /// Run a scenario (moves, node-loss, partition, outsider, equivocation, standards) or all of them.
    Scenario {
        /// The scenario, or `all`.
        name: String,
        /// Run it in docker instead of local processes.
        #[arg(long)]
        docker: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Bring a seeded local network up and leave it running (stop it with `down`).
    Up {
        #[command(flatten)]
        common: Common,
    },
    /// Stop a network started with `up` and remove its directory.
    Down {
        /// The directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write synthetic staff records as an ESR-style CSV the node imports.
    Data {
        /// Seed: the same seed (and day) gives the same file.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// How many people.
        #[arg(long, default_value_t = 100)]
        rows: usize,
        /// The file to write (`-` for stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// The export day, YYYY-MM-DD (default: today); every date lies before it.
        #[arg(long)]
        today: Option<staffpass_protocol::Date>,
    },
    /// Docker mode: build the static node and its FROM-scratch image, run the network in compose.
    #[command(subcommand)]
    Docker(DockerCommand),
    /// Run the benchmark figures, each beside its baseline, and print one table (see BENCHMARKS.md).
    Bench(bench::Args),
    /// Crash torture: the london-mou trusts under continuous load while a
    /// random node is killed (SIGKILL; docker kill) and restarted N times;
    /// then the network settles and nothing may be lost, duplicated or left
    /// unerased, and every audit log must verify (`--seed` also orders the
    /// load and the kills).
    Torture {
        /// How many kills.
        #[arg(long, default_value_t = 10)]
        kills: usize,
        /// Write the outcome as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Kill docker containers instead of local processes.
        #[arg(long)]
        docker: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Soak: the london-mou trusts under a steady load for M minutes; every node's RSS, open files
    /// and disk use and the load's latency sampled to <out>/soak.csv and plotted to
    /// <out>/soak.png, then judged (flat memory and files, bounded disk, no error, nothing lost).
    Soak {
        /// How long the load runs, in minutes.
        #[arg(long, default_value_t = 2.0)]
        minutes: f64,
        /// Operations (grants, updates, withdrawals, revocations) per second across the network.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 5)]
        sample_secs: u64,
        /// Directory for soak.csv, soak.png and soak.json.
        #[arg(long, default_value = "soak")]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
enum DockerCommand {
    /// Build the image, start the seven containers, seed them, leave them running.
    Up {
        #[command(flatten)]
        common: Common,
    },
    /// Run a scenario (or `all`) in docker.
    Scenario {
        /// The scenario, or `all`.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Stop and remove the containers and networks (and the directory given to `up`).
    Down {
        /// The directory given to `docker up`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = tokio::select! {
        r = run(cli) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; the network was torn down")),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("staffpass-testnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn options(common: &Common, docker: bool, live: bool) -> Result<Options> {
    Ok(Options {
        docker,
        dir: common.dir.clone(),
        keep: common.keep,
        seed: common.seed,
        rows: common.rows.clamp(12, 10_000),
        bins: bins::find(common.no_build)?,
        no_build: common.no_build,
        live,
        detached: false,
    })
}

/// Runs the scenarios `name` (or all); true if every check passed.
async fn scenario(name: &str, opts: &Options) -> Result<bool> {
    let names: Vec<&str> = if name == "all" { scenarios::NAMES.to_vec() } else { vec![name] };
    for n in &names {
        if !scenarios::NAMES.contains(n) {
            bail!("no scenario {n:?}; the scenarios are {} (or all)", scenarios::NAMES.join(", "));
        }
    }
    if opts.docker {
        docker::available().map_err(anyhow::Error::msg)?;
        docker::build_image(!opts.no_build).await?;
    }
    let mut ok = true;
    let mut summary = Vec::new();
    for n in names {
        let mode = if opts.docker { "docker" } else { "local" };
        let mut r = Report::new(&format!("scenario {n} ({mode})"), opts.live);
        let outcome = async {
            let mut w = scenarios::bring_up(opts, &mut r).await?;
            scenarios::run(n, &mut w, &mut r).await?;
            scenarios::scan_personal_data(&w, opts.docker, &mut r)
        }
        .await;
        if let Err(e) = &outcome {
            r.check(format!("ran to the end (stopped: {e:#})"), false);
        }
        r.print();
        ok &= r.passed();
        summary.push(format!("{n}: {}", if r.passed() { "passed" } else { "FAILED" }));
    }
    if summary.len() > 1 {
        println!("== {}", summary.join(", "));
    }
    Ok(ok)
}

async fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Bench(args) => {
            // The benchmark drives its own runtimes; keep them off this one.
            tokio::task::spawn_blocking(move || bench::run(args)).await.context("the benchmark task failed")??;
            Ok(true)
        }
        Command::Demo { common } => {
            let opts = options(&common, false, true)?;
            let mut r = Report::new("staffpass demo: five NHS trusts, a hospice and an outsider", true);
            let outcome = async {
                let mut w = scenarios::bring_up(&opts, &mut r).await?;
                scenarios::moves(&mut w, &mut r).await?;
                scenarios::scan_personal_data(&w, false, &mut r)?;
                if common.keep {
                    r.line(format!("kept: {} (node logs in nodes/*.log)", w.net.root.display()));
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = &outcome {
                r.check(format!("ran to the end (stopped: {e:#})"), false);
            }
            r.print();
            Ok(r.passed())
        }
        Command::Torture { kills, json, docker, common } => {
            let opts = options(&common, docker, false)?;
            if docker {
                docker::available().map_err(anyhow::Error::msg)?;
                docker::build_image(!common.no_build).await?;
            }
            let outcome = torture::run(&opts, kills, common.seed, json).await?;
            Ok(outcome.passed())
        }
        Command::Soak { minutes, rate, sample_secs, out, common } => {
            let opts = options(&common, false, false)?;
            let plan = soak::Plan { minutes, rate, sample_secs, out, seed: common.seed };
            soak::run(&opts, &plan).await
        }
        Command::Scenario { name, docker, common } => scenario(&name, &options(&common, docker, false)?).await,
        Command::Up { common } => {
            let opts = up_options(options(&common, false, true)?);
            let mut r = Report::new("staffpass testnet up", true);
            let mut w = scenarios::bring_up(&opts, &mut r).await?;
            w.net.detached = true;
            w.net.save()?;
            print_up(&w.net);
            Ok(true)
        }
        Command::Down { dir } => down(&dir),
        Command::Data { seed, rows, out, today } => {
            let today = today.unwrap_or_else(|| staffpass_node::node::now().date());
            let csv = data::generate(&data::Spec { seed, rows, today, first_assignment: 10_000_000 });
            if out.as_os_str() == "-" {
                print!("{csv}");
            } else {
                std::fs::write(&out, csv).with_context(|| format!("cannot write {}", out.display()))?;
                eprintln!("Wrote {rows} synthetic staff records to {} (seed {seed}, as of {today}).", out.display());
            }
            Ok(true)
        }
        Command::Docker(DockerCommand::Scenario { name, common }) => {
            scenario(&name, &options(&common, true, false)?).await
        }
        Command::Docker(DockerCommand::Up { common }) => {
            docker::available().map_err(anyhow::Error::msg)?;
            let opts = options(&common, true, true)?;
            docker::build_image(!common.no_build).await?;
            let dir = common.dir.clone().unwrap_or_else(|| PathBuf::from("staffpass-testnet-docker"));
            let opts = Options { dir: Some(dir), keep: true, detached: true, ..opts };
            let mut r = Report::new("staffpass testnet up (docker)", true);
            let mut w = scenarios::bring_up(&opts, &mut r).await?;
            w.net.detached = true;
            w.net.save()?;
            print_up(&w.net);
            Ok(true)
        }
        Command::Docker(DockerCommand::Down { dir }) => {
            let root = dir.clone().unwrap_or_else(|| PathBuf::from("staffpass-testnet-docker"));
            docker::compose_at(&root).down_blocking();
            if dir.is_some() && root.join("testnet.json").is_file() {
                std::fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
            }
            println!("docker testnet down");
            Ok(true)
        }
    }
}

/// `up` leaves the network running: its directory (the one given with
/// `--dir`, or else a new temp dir) is kept after this program exits.
fn up_options(opts: Options) -> Options {
    Options { keep: true, detached: true, ..opts }
}

fn print_up(net: &net::Testnet) {
    println!("The network is up, in {} (kept after exit).", net.root.display());
    println!("Talk to a node with the admin CLI, e.g.:");
    if let Some(n) = net.nodes.get("RJZ") {
        println!("  staffpass-admin node status {}", n.admin_args().join(" "));
    }
    for n in net.nodes.values() {
        println!("  {:<22} API {}  data {}", n.org(), n.api, n.data_dir.display());
    }
    println!("Stop it with: staffpass-testnet down --dir {}", net.root.display());
}

fn down(dir: &std::path::Path) -> Result<bool> {
    let path = dir.join("testnet.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}: is this a directory given to `up`?", path.display()))?;
    let saved: net::Saved =
        serde_json::from_str(&text).with_context(|| format!("{} is not a testnet file", path.display()))?;
    for n in &saved.nodes {
        if let Some(pid) = n.pid {
            // Only processes this testnet started (their data dir is in `dir`).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir.canonicalize().unwrap_or_default().display().to_string())
            {
                let _ = net::terminate(pid);
            }
        }
    }
    if saved.mode == "docker" {
        docker::compose_at(dir).down_blocking();
    }
    for n in &saved.nodes {
        if let Some(pid) = n.pid {
            let gone = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while !gone() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    println!("Stopped {} nodes and removed {}.", saved.nodes.len(), dir.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent_and_every_help_renders() {
        let mut cmd = Cli::command();
        cmd.build();
        cmd.clone().debug_assert();
        fn walk(c: &clap::Command) {
            let mut c = c.clone();
            assert!(!c.render_long_help().to_string().is_empty(), "{}", c.get_name());
            for s in c.get_subcommands() {
                walk(s);
            }
        }
        walk(&cmd);
    }

    #[test]
    fn up_without_dir_runs_in_a_new_temp_dir_that_it_keeps() {
        let cli = Cli::try_parse_from(["staffpass-testnet", "up"]).unwrap();
        let Command::Up { common } = cli.command else { panic!("parsed as {:?}", cli.command) };
        let bins = bins::Bins { node: "staffpass-node".into(), admin: "staffpass-admin".into() };
        let opts = up_options(Options {
            docker: false,
            dir: common.dir,
            keep: common.keep,
            seed: common.seed,
            rows: common.rows,
            bins,
            no_build: true,
            live: true,
            detached: false,
        });
        assert!(opts.keep && opts.detached);
        let (root, remove) = scenarios::root_dir(&opts).unwrap();
        let fresh_temp = root.parent() == Some(std::env::temp_dir().as_path()) && root.is_dir();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(fresh_temp, "{} is not a new directory in the temp dir", root.display());
        assert!(!remove, "up keeps its directory");
    }

    #[test]
    fn every_scenario_name_is_known() {
        assert_eq!(scenarios::NAMES, ["moves", "node-loss", "partition", "outsider", "equivocation", "standards"]);
    }
}
