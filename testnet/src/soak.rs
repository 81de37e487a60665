//! Soak: the london-mou trusts under a steady load (grants, updates,
//! withdrawals and revocations at a fixed rate) for a set time, with each
//! node's resident memory, open file descriptors and disk use, and the
//! load's latency, sampled every few seconds. Writes the samples as CSV and
//! a PNG plot, then judges them:
//!
//! - **no error**: every operation of the load succeeded (no node is
//!   killed here, so a failure is a failure);
//! - **RSS flat**: each node's median RSS over the last quarter of the run
//!   is within 1.25 × (+ 16 MiB) of its median over the quarter after the
//!   warm-up (the first tenth);
//! - **fds flat**: each node's most open descriptors over the last quarter
//!   is within 8 of its most over that early quarter;
//! - **disk bounded**: each node's disk growth over the second half is at
//!   most twice (+ 4 MiB) its growth over the first half, i.e. it grows
//!   with the data and does not accelerate;
//! - at the end, the torture's invariants (settled, delivered once, every
//!   withdrawal erased, audits verify) and the personal-data scan.
//!
//! Local processes only: the samples read `/proc` of each node's process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::report::Report;
use crate::scenarios::{self, Options, World};
use crate::torture::{self, MEMBERS};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How long the load runs, in minutes.
    pub minutes: f64,
    /// Operations per second across the network.
    pub rate: f64,
    /// Seconds between samples.
    pub sample_secs: u64,
    /// Where the CSV, the plot and the JSON outcome go.
    pub out: PathBuf,
    /// The load's seed.
    pub seed: u64,
}

/// One sample of one node.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NodeSample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Bytes under its data directory.
    pub disk_bytes: u64,
}

/// One sample of the network.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    /// Each node, by org.
    pub nodes: BTreeMap<&'static str, NodeSample>,
    /// Operations completed since the previous sample.
    pub ops: u64,
    /// Operations failed since the previous sample.
    pub errors: u64,
    /// Median operation time in the window, ms (0 when none).
    pub p50_ms: f64,
    /// 99th percentile operation time in the window, ms.
    pub p99_ms: f64,
}

/// A node's judgement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeVerdict {
    /// Median RSS over the early window, MiB.
    pub rss_early_mib: f64,
    /// Median RSS over the last quarter, MiB.
    pub rss_late_mib: f64,
    /// Most open descriptors over the early window.
    pub fds_early: u64,
    /// Most open descriptors over the last quarter.
    pub fds_late: u64,
    /// Disk growth over the first half, MiB.
    pub disk_growth_first_mib: f64,
    /// Disk growth over the second half, MiB.
    pub disk_growth_second_mib: f64,
    /// Disk use at the end, MiB.
    pub disk_end_mib: f64,
}

impl NodeVerdict {
    /// Last-quarter median RSS within 1.25 × (+ 16 MiB) of the early one.
    pub fn rss_flat(&self) -> bool {
        self.rss_late_mib <= self.rss_early_mib * 1.25 + 16.0
    }
    /// Last-quarter most open descriptors within 8 of the early most.
    pub fn fds_flat(&self) -> bool {
        self.fds_late <= self.fds_early + 8
    }
    /// Second-half disk growth at most twice (+ 4 MiB) the first half's.
    pub fn disk_bounded(&self) -> bool {
        self.disk_growth_second_mib <= self.disk_growth_first_mib * 2.0 + 4.0
    }
}

/// A soak's outcome (`<out>/soak.json`).
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Minutes of load.
    pub minutes: f64,
    /// Target operations per second.
    pub rate: f64,
    /// Operations done, by kind.
    pub operations: BTreeMap<String, u64>,
    /// Failed operations, by the node's error code.
    pub errors: BTreeMap<String, u64>,
    /// Median and 99th percentile operation time over the whole run, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Each node's judgement.
    pub nodes: BTreeMap<&'static str, NodeVerdict>,
    /// Consents at the end, by state.
    pub consents: BTreeMap<String, u64>,
    /// The checks that failed, in words.
    pub missed: Vec<String>,
}

/// Runs the soak; prints the report and returns whether every check held.
pub async fn run(opts: &Options, plan: &Plan) -> Result<bool> {
    if opts.docker {
        return Err(anyhow!("the soak samples /proc of local node processes; it has no docker mode"));
    }
    if !(plan.minutes > 0.0 && plan.rate > 0.0 && plan.sample_secs > 0) {
        return Err(anyhow!("--minutes, --rate and --sample-secs must be positive"));
    }
    std::fs::create_dir_all(&plan.out).with_context(|| format!("cannot create {}", plan.out.display()))?;
    let mut r = Report::new(
        &format!("soak: {} min at {} operations/s, sampled every {} s", plan.minutes, plan.rate, plan.sample_secs),
        opts.live,
    );
    let w = scenarios::bring_up(opts, &mut r).await?;

    let pace = Duration::from_secs_f64(1.0 / plan.rate);
    let (load, stop, worker) = torture::start_load(&w, plan.seed, Some(pace))?;

    let started = Instant::now();
    let length = Duration::from_secs_f64(plan.minutes * 60.0);
    let mut every = tokio::time::interval(Duration::from_secs(plan.sample_secs));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: Vec<Sample> = Vec::new();
    let mut all_latencies: Vec<f64> = Vec::new();
    let (mut ops_before, mut errors_before) = (0, 0);
    loop {
        every.tick().await;
        let mut s = Sample { t: started.elapsed().as_secs_f64(), ..Sample::default() };
        for org in MEMBERS {
            s.nodes.insert(org, sample_node(&w, org)?);
        }
        let mut window = std::mem::take(&mut *load.latencies.lock().await);
        window.sort_by(f64::total_cmp);
        s.p50_ms = percentile(&window, 0.50);
        s.p99_ms = percentile(&window, 0.99);
        all_latencies.extend(window);
        let ops: u64 = load.ops.lock().await.values().sum();
        let errors: u64 = load.errors.lock().await.values().sum();
        (s.ops, s.errors) = (ops - ops_before, errors - errors_before);
        (ops_before, errors_before) = (ops, errors);
        samples.push(s);
        if samples.len().is_multiple_of(60) {
            r.line(format!("{:.0} s: {ops} operations, {errors} errors", started.elapsed().as_secs_f64()));
        }
        if started.elapsed() >= length {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    worker.await.context("the load task failed")?;

    let mut out = Outcome {
        minutes: plan.minutes,
        rate: plan.rate,
        operations: load.ops.lock().await.clone(),
        errors: load.errors.lock().await.clone(),
        ..Outcome::default()
    };
    all_latencies.sort_by(f64::total_cmp);
    out.p50_ms = percentile(&all_latencies, 0.50);
    out.p99_ms = percentile(&all_latencies, 0.99);

    let csv_path = plan.out.join("soak.csv");
    std::fs::write(&csv_path, to_csv(&samples)).with_context(|| format!("cannot write {}", csv_path.display()))?;
    let png_path = plan.out.join("soak.png");
    let plotted = plot(&samples, &png_path, &format!("staffpass soak: {} min at {} op/s", plan.minutes, plan.rate));

    let done: u64 = out.operations.values().sum();
    r.line(format!(
        "load: {done} operations ({}); operation time p50 {:.1} ms, p99 {:.1} ms",
        out.operations.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        out.p50_ms,
        out.p99_ms
    ));
    let errors: u64 = out.errors.values().sum();
    r.check(
        format!(
            "no operation failed ({errors}{})",
            if errors == 0 {
                String::new()
            } else {
                format!(": {}", out.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            }
        ),
        errors == 0,
    );
    let expected = plan.rate * started.elapsed().as_secs_f64();
    r.check(
        format!("the load kept its rate ({done} operations of about {expected:.0})"),
        done as f64 >= expected * 0.8,
    );
    for org in MEMBERS {
        let v = judge(&samples, org);
        let (rss_ok, fds_ok, disk_ok) = (v.rss_flat(), v.fds_flat(), v.disk_bounded());
        r.check(format!("{org}: RSS flat ({:.1} → {:.1} MiB)", v.rss_early_mib, v.rss_late_mib), rss_ok);
        r.check(format!("{org}: open files flat ({} → {})", v.fds_early, v.fds_late), fds_ok);
        r.check(
            format!(
                "{org}: disk bounded (grew {:.2} MiB, then {:.2} MiB; {:.1} MiB at the end)",
                v.disk_growth_first_mib, v.disk_growth_second_mib, v.disk_end_mib
            ),
            disk_ok,
        );
        out.nodes.insert(org, v);
    }
    let settle_started = Instant::now();
    torture::settle(&w).await?;
    let mut end = torture::Outcome::default();
    torture::check(&w, &mut end).await?;
    out.consents = end.consents.clone();
    r.check(format!("settled in {:.1} s; nothing lost", settle_started.elapsed().as_secs_f64()), end.lost == 0);
    end.report_end_state(&mut r);
    scenarios::scan_personal_data(&w, false, &mut r)?;
    r.line(format!("samples: {} ({} per node)", csv_path.display(), samples.len()));
    match plotted {
        Ok(()) => r.line(format!("plot: {}", png_path.display())),
        Err(e) => {
            r.check(format!("plot written ({e:#})"), false);
        }
    }
    out.missed = r.missed().into_iter().map(str::to_string).collect();
    let json_path = plan.out.join("soak.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&out)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    r.print();
    Ok(r.passed())
}

/// One node's RSS, open descriptors and disk use.
fn sample_node(w: &World, org: &str) -> Result<NodeSample> {
    let node = w.net.node(org)?;
    let pid = node.pid().ok_or_else(|| anyhow!("{org} has no running process"))?;
    let rss_kib = status_kib(pid, "VmRSS:").with_context(|| format!("{org}'s RSS"))?;
    let fds =
        std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("{org}: cannot list /proc fds"))?.count();
    Ok(NodeSample { rss_kib, fds: fds as u64, disk_bytes: disk_use(&node.data_dir) })
}

/// A KiB field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, ...).
pub(crate) fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{field} missing from /proc/{pid}/status"))
}

/// Bytes in the files under `dir` (a file that vanishes while counted is skipped).
fn disk_use(dir: &Path) -> u64 {
    let mut files = Vec::new();
    crate::scan::walk(dir, &mut files);
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

/// The `q` quantile of sorted values (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The windows the judgement compares: early (after the first tenth, up to
/// 35 %), late (the last quarter), and the halves.
fn judge(samples: &[Sample], org: &str) -> NodeVerdict {
    let n = samples.len();
    let node = |s: &Sample| s.nodes.get(org).copied().unwrap_or_default();
    let range = |from: f64, to: f64| {
        let a = ((n as f64 * from) as usize).min(n.saturating_sub(1));
        let b = ((n as f64 * to).ceil() as usize).clamp(a + 1, n.max(a + 1));
        &samples[a..b.min(n)]
    };
    let median_rss = |w: &[Sample]| {
        let mut v: Vec<f64> = w.iter().map(|s| node(s).rss_kib as f64 / 1024.0).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let max_fds = |w: &[Sample]| w.iter().map(|s| node(s).fds).max().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let disk = |i: usize| samples.get(i).map_or(0, |s| node(s).disk_bytes);
    let (early, late) = (range(0.10, 0.35), range(0.75, 1.0));
    let (first, mid, last) = (disk(0), disk(n / 2), disk(n.saturating_sub(1)));
    NodeVerdict {
        rss_early_mib: median_rss(early),
        rss_late_mib: median_rss(late),
        fds_early: max_fds(early),
        fds_late: max_fds(late),
        disk_growth_first_mib: mib(mid.saturating_sub(first)),
        disk_growth_second_mib: mib(last.saturating_sub(mid)),
        disk_end_mib: mib(last),
    }
}

/// The samples as CSV: one row per sample, the network's columns then
/// each node's.
fn to_csv(samples: &[Sample]) -> String {
    let mut s = String::from("t_secs,ops,errors,p50_ms,p99_ms");
    for org in MEMBERS {
        let _ = write!(s, ",{org}_rss_kib,{org}_fds,{org}_disk_bytes");
    }
    s.push('\n');
    for x in samples {
        let _ = write!(s, "{:.1},{},{},{:.2},{:.2}", x.t, x.ops, x.errors, x.p50_ms, x.p99_ms);
        for org in MEMBERS {
            let n = x.nodes.get(org).copied().unwrap_or_default();
            let _ = write!(s, ",{},{},{}", n.rss_kib, n.fds, n.disk_bytes);
        }
        s.push('\n');
    }
    s
}

/// One plotted value of a node's sample.
type Metric = fn(&NodeSample) -> f64;

/// Where a sans-serif font for the plot's text may be (Debian's DejaVu).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Four panels, one line per node: RSS (MiB), open descriptors, disk
/// (MiB), and the load's p50/p99 operation time (ms).
fn plot(samples: &[Sample], path: &Path, title: &str) -> Result<()> {
    use plotters::prelude::*;
    let font = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| anyhow!("no DejaVuSans.ttf in {FONTS:?} (Debian: fonts-dejavu-core)"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| anyhow!("the font could not be read"))?;

    let root = BitMapBackend::new(path, (1200, 1400)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 28))?;
    let panels = root.split_evenly((4, 1));
    let t_max = samples.last().map_or(1.0, |s| s.t).max(1.0) / 60.0;
    let colours = [RED, BLUE, GREEN, MAGENTA, BLACK];
    let per_node: [(&str, Metric); 3] = [
        ("RSS (MiB)", |n| n.rss_kib as f64 / 1024.0),
        ("open file descriptors", |n| n.fds as f64),
        ("disk (MiB)", |n| n.disk_bytes as f64 / (1024.0 * 1024.0)),
    ];
    for (panel, (label, value)) in panels.iter().zip(per_node) {
        let y_max = samples.iter().flat_map(|s| s.nodes.values().map(value)).fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .caption(label, ("sans-serif", 20))
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
        chart.configure_mesh().x_desc("minutes").draw()?;
        for (org, colour) in MEMBERS.iter().zip(colours) {
            chart
                .draw_series(LineSeries::new(
                    samples.iter().map(|s| (s.t / 60.0, s.nodes.get(org).map_or(0.0, value))),
                    colour.stroke_width(2),
                ))?
                .label(*org)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    let y_max = samples.iter().map(|s| s.p99_ms).fold(0.0_f64, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(&panels[3])
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .caption("operation time (ms)", ("sans-serif", 20))
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc("minutes").draw()?;
    for (name, colour, pick) in
        [("p50", BLUE, (|s: &Sample| s.p50_ms) as fn(&Sample) -> f64), ("p99", RED, |s: &Sample| s.p99_ms)]
    {
        chart
            .draw_series(LineSeries::new(samples.iter().map(|s| (s.t / 60.0, pick(s))), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, rss_mib: u64, fds: u64, disk_mib: u64) -> Sample {
        let n = NodeSample { rss_kib: rss_mib * 1024, fds, disk_bytes: disk_mib * 1024 * 1024 };
        Sample { t, nodes: MEMBERS.iter().map(|o| (*o, n)).collect(), ..Sample::default() }
    }

    #[test]
    fn a_flat_run_passes_and_a_leak_is_seen() {
        let flat: Vec<Sample> = (0..40u32).map(|i| at(f64::from(i) * 5.0, 60, 40, 10 + u64::from(i) / 4)).collect();
        let v = judge(&flat, "RJZ");
        assert!((v.rss_early_mib - 60.0).abs() < 0.01 && (v.rss_late_mib - 60.0).abs() < 0.01, "{v:?}");
        assert_eq!((v.fds_early, v.fds_late), (40, 40));
        assert!(v.rss_flat() && v.fds_flat() && v.disk_bounded(), "{v:?}");

        let leaking: Vec<Sample> =
            (0..40u32).map(|i| at(f64::from(i) * 5.0, 60 + 4 * u64::from(i), 40 + u64::from(i), 10)).collect();
        let v = judge(&leaking, "RJZ");
        assert!(!v.rss_flat() && !v.fds_flat() && v.disk_bounded(), "{v:?}");

        let accelerating: Vec<Sample> = (0..40u32).map(|i| at(f64::from(i) * 5.0, 60, 40, u64::from(i * i))).collect();
        let v = judge(&accelerating, "RJZ");
        assert!(v.rss_flat() && v.fds_flat() && !v.disk_bounded(), "{v:?}");
    }

    #[test]
    fn percentiles_and_csv() {
        assert!(percentile(&[], 0.5).abs() < f64::EPSILON);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 0.5) - 51.0).abs() < 1.0 && (percentile(&v, 0.99) - 99.0).abs() < 1.01);
        let csv = to_csv(&[at(0.0, 1, 2, 3)]);
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().starts_with("t_secs,ops,errors,p50_ms,p99_ms,RJZ_rss_kib,RJZ_fds"));
        assert!(lines.next().unwrap().starts_with("0.0,0,0,0.00,0.00,1024,2,3145728"));
    }

    #[test]
    fn the_plot_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let samples: Vec<Sample> = (0..10u32).map(|i| at(f64::from(i) * 5.0, 60, 40, 10)).collect();
        match plot(&samples, &path, "test") {
            Ok(()) => assert_eq!(&std::fs::read(&path).unwrap()[..8], b"\x89PNG\r\n\x1a\n"),
            // A machine without the font: the error says which file is missing.
            Err(e) if FONTS.iter().all(|p| !Path::new(p).exists()) => assert!(e.to_string().contains("DejaVu")),
            Err(e) => panic!("{e:#}"),
        }
    }
}
