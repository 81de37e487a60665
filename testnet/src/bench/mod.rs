//! `staffpass-testnet bench`: every performance figure of issue 8, each
//! beside its baseline measured in the same run, printed as one table and
//! optionally written as JSON.
//!
//! Figures: 1 bundle verification, 2 exchange latency, 3 exchange
//! throughput, 4 central-gateway comparison, 5 roster propagation (10 and
//! 50 real nodes, 25,000 simulated), 6 import, 7 memory, 8 disk, 9 roster
//! entry cost on a short and a long chain and on a 25,000-member roster,
//! 10 move latency during a roster flood, 11 a real node in a 25,000-member
//! agreement (catch-up through the API, idle RSS, memory per member,
//! bounded connections). `--quick`
//! shrinks every size for CI smoke runs; its numbers are not the figures.

mod exchange;
mod flood;
mod gateway;
mod national;
mod process;
mod propagation;
mod roster_cost;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

/// `bench` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Small sizes for a smoke run (under two minutes); not the real figures.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Run only these figures (1-11; repeatable). Default: all.
    #[arg(long = "only", value_name = "N")]
    pub only: Vec<u8>,
    /// The `staffpass-node` binary for figures 6-8 and 11. Default: beside this
    /// binary (under `cargo run`, built first with the same profile).
    #[arg(long, value_name = "PATH")]
    pub node_bin: Option<PathBuf>,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    /// Seconds each pure verification loop runs.
    pub verify_secs: f64,
    /// Sequential moves for the latency figures.
    pub moves: usize,
    /// Offers for the throughput figure.
    pub offers: usize,
    /// Roster changes per network size.
    pub roster_changes: usize,
    /// The large real network (the small one is 10 nodes).
    pub roster_nodes: usize,
    /// The simulated network of figure 5 (1% of it offline during the
    /// changes).
    pub sim_nodes: usize,
    /// Staff rows imported.
    pub import_rows: usize,
    /// Passports received by the measured node.
    pub passports: usize,
    /// Peers connected to the measured node.
    pub peers: usize,
    /// Entries of the long chain of figure 9 (the short one is 100), and
    /// how many its catch-up row verifies from genesis.
    pub roster_chain: usize,
    /// Members of figure 9's national roster (one entry each).
    pub roster_members: usize,
    /// Members of figure 11's agreement held by a real node (its own
    /// organisation and synthetic ones, one entry each).
    pub national_members: usize,
}

impl Sizes {
    fn for_run(quick: bool) -> Self {
        if quick {
            Sizes {
                verify_secs: 0.5,
                moves: 100,
                offers: 1_000,
                roster_changes: 3,
                roster_nodes: 10,
                sim_nodes: 300,
                import_rows: 3_000,
                passports: 500,
                peers: 10,
                roster_chain: 1_000,
                roster_members: 1_000,
                national_members: 500,
            }
        } else {
            Sizes {
                verify_secs: 3.0,
                moves: 1_000,
                offers: 5_000,
                roster_changes: 20,
                roster_nodes: 100,
                sim_nodes: 25_000,
                import_rows: 30_000,
                passports: 5_000,
                peers: 50,
                roster_chain: 10_000,
                roster_members: staffpass_protocol::roster::limits::MAX_MEMBERS,
                national_members: staffpass_protocol::roster::limits::MAX_MEMBERS,
            }
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Figure number and name, e.g. `1 verify`.
    pub figure: String,
    /// What is measured.
    pub metric: String,
    /// Our figure.
    pub ours: f64,
    /// Its unit.
    pub unit: String,
    /// The baseline, measured in the same run (if the row has one).
    pub baseline: Option<f64>,
    /// What the baseline is.
    pub baseline_what: String,
    /// ours / baseline.
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met (`None`: no target on this row).
    pub met: Option<bool>,
}

impl Row {
    fn new(figure: &str, metric: &str, ours: f64, unit: &str) -> Self {
        Row {
            figure: figure.into(),
            metric: metric.into(),
            ours,
            unit: unit.into(),
            baseline: None,
            baseline_what: String::new(),
            ratio: None,
            target: String::new(),
            met: None,
        }
    }

    fn baseline(mut self, value: f64, what: &str) -> Self {
        self.baseline = Some(value);
        self.baseline_what = what.into();
        self.ratio = (value != 0.0).then(|| self.ours / value);
        self
    }

    fn target(mut self, target: &str, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    quick: bool,
    sizes: Sizes,
    started_unix: u64,
    seconds: f64,
    machine: Machine,
    rows: Vec<Row>,
    errors: Vec<String>,
}

/// What the run ran on.
#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    mem_total_kib: Option<u64>,
    os: String,
}

fn machine() -> Machine {
    let mem_total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    });
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        mem_total_kib,
        os: std::env::consts::OS.into(),
    }
}

/// Runs the benchmarks.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sizes = Sizes::for_run(args.quick);
    let started = std::time::Instant::now();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let want = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut record = |name: &str, result: anyhow::Result<Vec<Row>>| match result {
        Ok(r) => {
            for row in &r {
                eprintln!("  {} {}: {:.3} {}", row.figure, row.metric, row.ours, row.unit);
            }
            rows.extend(r);
        }
        Err(e) => {
            eprintln!("  {name} FAILED: {e:#}");
            errors.push(format!("{name}: {e:#}"));
        }
    };

    // Figure 1 first: its limit is figure 3's baseline.
    let mut limit = None;
    if want(1) || want(3) {
        eprintln!("figure 1: bundle verification");
        let r = verify::run(&sizes);
        if let Ok(r) = &r {
            limit = Some(r.limit);
        }
        record("1 verify", r.map(|r| if want(1) { r.rows } else { Vec::new() }));
    }
    let mut staffpass_p50 = None;
    if want(2) || want(3) || want(4) {
        eprintln!("figures 2-3: exchange latency and throughput");
        let r = rt.block_on(exchange::run(&sizes, limit, want(3)));
        if let Ok(r) = &r {
            staffpass_p50 = Some(r.p50_ms);
        }
        record("2-3 exchange", r.map(|r| r.rows));
    }
    if want(4) {
        eprintln!("figure 4: central-gateway comparison");
        record("4 gateway", rt.block_on(gateway::run(&sizes, staffpass_p50)));
    }
    if want(5) {
        eprintln!("figure 5: roster propagation");
        record("5 propagation", rt.block_on(propagation::run(&sizes)));
    }
    if want(6) || want(7) || want(8) {
        eprintln!("figures 6-8: import, memory, disk (a real staffpass-node process)");
        record("6-8 process", rt.block_on(process::run(&sizes, args.node_bin.clone())));
    }
    if want(9) {
        eprintln!("figure 9: roster entry cost, short and long chain");
        record("9 roster cost", roster_cost::run(&sizes));
    }
    if want(10) {
        eprintln!("figure 10: move latency during a roster flood");
        record("10 flood", rt.block_on(flood::run(&sizes)));
    }
    if want(11) {
        eprintln!("figure 11: a real staffpass-node in a {}-member agreement", sizes.national_members);
        record("11 national", rt.block_on(national::run(&sizes, args.node_bin.clone())));
    }
    rt.shutdown_timeout(Duration::from_secs(5));

    let seconds = started.elapsed().as_secs_f64();
    let failed = errors.len();
    println!("{}", table(&rows, args.quick));
    for e in &errors {
        println!("FAILED {e}");
    }
    println!("({:.0} s{})", seconds, if args.quick { ", --quick: smoke sizes, not the figures" } else { "" });
    if let Some(path) = &args.json {
        let report = Report { quick: args.quick, sizes, started_unix, seconds, machine: machine(), rows, errors };
        let text = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of the figures did not run to the end (see FAILED above)");
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The Markdown table of `rows`.
pub fn table(rows: &[Row], quick: bool) -> String {
    let mut s = String::new();
    if quick {
        s.push_str("(--quick run: small sizes; not the figures)\n");
    }
    s.push_str("| figure | metric | ours | baseline (same run) | ratio | target | met? |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in rows {
        let baseline = match r.baseline {
            Some(b) => format!("{} {} ({})", fmt_num(b), r.unit, r.baseline_what),
            None => "—".into(),
        };
        let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into());
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let target = if r.target.is_empty() { "—" } else { &r.target };
        s.push_str(&format!(
            "| {} | {} | {} {} | {} | {} | {} | {} |\n",
            r.figure,
            r.metric,
            fmt_num(r.ours),
            r.unit,
            baseline,
            ratio,
            target,
            met
        ));
    }
    s
}

/// Percentile `p` (0..=100) of sorted `v`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Sorted copy of durations in milliseconds.
pub fn sorted_ms(v: &[Duration]) -> Vec<f64> {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    ms
}
