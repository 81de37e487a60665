//! Crash torture: the london-mou trusts under continuous load (grants,
//! updates, withdrawals, revocations in flight) while a random node is
//! killed with SIGKILL (docker: `docker kill`) at random moments and
//! restarted, N times. Then the network is left to settle and the
//! invariants are checked from what the nodes themselves hold:
//!
//! - every node restarts after every kill;
//! - nothing is lost: no consent is left pending and every outbox empties;
//! - every delivered consent is held by its receiver exactly once, with
//!   the credential the home last sent, revoked at the receiver if and
//!   only if it is revoked at the home;
//! - every withdrawal ends in an erasure at the receiver, confirmed at
//!   the home;
//! - nothing is done twice: no audit log holds the same receipt, erasure
//!   or revocation of one message twice;
//! - every audit log verifies.
//!
//! The load and the kills come from one seed (`--seed`), so a failing run
//! can be repeated; the time each kill lands relative to the nodes' own
//! work is not (that is the point).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde::Serialize;
use staffpass_api::Client;
use staffpass_api::audit::AuditQuery;
use staffpass_api::consents::{ConsentRequest, ConsentState};
use staffpass_api::credentials::RevokeRequest;
use staffpass_protocol::claims::{Claim, CstfSubject, Training};
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::{ConsentId, StaffRef};
use tokio::sync::Mutex;

use crate::hr::Person;
use crate::net::STEP;
use crate::report::Report;
use crate::scenarios::{self, Options, World};

/// The trusts the load runs between (london-mou's members).
pub(crate) const MEMBERS: &[&str] = &["RJZ", "RJ1", "RV5", "RJ2", "RPG"];

/// How long the network may take to settle after the last kill.
const SETTLE: Duration = Duration::from_secs(300);

/// A torture run's outcome (`--json`).
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// The seed of the load and the kills.
    pub seed: u64,
    /// Docker containers instead of local processes.
    pub docker: bool,
    /// Kills done (each followed by a restart).
    pub kills: usize,
    /// Restarts that failed (a node that refused to start).
    pub failed_restarts: usize,
    /// Operations the load completed, by kind.
    pub operations: BTreeMap<String, u64>,
    /// Operations that failed because their node was down or was killed
    /// while answering (their effect, if any, is judged like any other).
    pub interrupted: u64,
    /// Consents at the end, by state.
    pub consents: BTreeMap<String, u64>,
    /// Consents lost (left pending with nothing in the outbox, or never
    /// settled).
    pub lost: usize,
    /// Receipts, erasures or revocations recorded twice for one message.
    pub duplicated: usize,
    /// Delivered consents the receiver does not hold as the home says
    /// (missing, another credential, revoked at one end only).
    pub mismatched: usize,
    /// Withdrawals not erased at the receiver or not confirmed.
    pub not_erased: usize,
    /// Audit logs that do not verify.
    pub broken_audits: usize,
    /// Seconds from the last restart until every outbox was empty.
    pub settle_secs: f64,
    /// Seconds the whole run took.
    pub total_secs: f64,
    /// The first few violations, in words (ids only).
    pub violations: Vec<String>,
}

impl Outcome {
    fn violation(&mut self, text: String) {
        if self.violations.len() < 20 {
            self.violations.push(text);
        }
    }

    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.failed_restarts == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.mismatched == 0
            && self.not_erased == 0
            && self.broken_audits == 0
    }
}

impl Outcome {
    /// The end-state checks [`check`] judged, and the first violations,
    /// as report lines (the torture and the soak both end with them).
    pub(crate) fn report_end_state(&self, r: &mut Report) {
        r.check("every delivered consent held once at its receiver, as the home says", self.mismatched == 0);
        r.check("every withdrawal erased at the receiver and confirmed", self.not_erased == 0);
        r.check("no receipt, erasure or revocation recorded twice", self.duplicated == 0);
        r.check("every audit log verifies", self.broken_audits == 0);
        for v in &self.violations {
            r.line(format!("  {v}"));
        }
    }
}

/// Starts [`drive_load`] over `w`'s members; returns its counters, its
/// stop flag and its task.
pub(crate) fn start_load(
    w: &World,
    seed: u64,
    pace: Option<Duration>,
) -> Result<(Arc<Load>, Arc<AtomicBool>, tokio::task::JoinHandle<()>)> {
    let clients: BTreeMap<&'static str, Client> =
        MEMBERS.iter().map(|o| Ok((*o, w.net.node(o)?.client.clone()))).collect::<Result<_>>()?;
    let people: BTreeMap<&'static str, Vec<Person>> =
        MEMBERS.iter().map(|o| Ok((*o, w.people(o)?.to_vec()))).collect::<Result<_>>()?;
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(drive_load(clients, people, seed, load.clone(), stop.clone(), pace));
    Ok((load, stop, worker))
}

/// The shared counters of the load task.
#[derive(Default)]
pub(crate) struct Load {
    pub(crate) ops: Mutex<BTreeMap<String, u64>>,
    pub(crate) interrupted: AtomicU64,
    /// Failed operations by the node's error code (`transport` when no
    /// answer came).
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    /// Each completed operation's time, in milliseconds, since the sampler
    /// last took them.
    pub(crate) latencies: Mutex<Vec<f64>>,
}

impl Load {
    async fn done(&self, kind: &str, ms: f64) {
        *self.ops.lock().await.entry(kind.to_string()).or_default() += 1;
        self.latencies.lock().await.push(ms);
    }

    async fn failed(&self, code: &str) {
        self.interrupted.fetch_add(1, Ordering::SeqCst);
        *self.errors.lock().await.entry(code.to_string()).or_default() += 1;
    }
}

/// Runs the torture; prints the report and returns the outcome.
pub async fn run(opts: &Options, kills: usize, seed: u64, json: Option<PathBuf>) -> Result<Outcome> {
    let started = Instant::now();
    let mode = if opts.docker { "docker" } else { "local" };
    let mut r = Report::new(&format!("torture: {kills} kills ({mode}), seed {seed}"), opts.live);
    let mut w = scenarios::bring_up(opts, &mut r).await?;
    let mut out = Outcome { seed, docker: opts.docker, ..Outcome::default() };

    let (load, stop, worker) = start_load(&w, seed, None)?;

    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        let org = MEMBERS[rng.random_range(0..MEMBERS.len())];
        w.net.kill(org).await.with_context(|| format!("kill {k}: {org}"))?;
        out.kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
        if let Err(e) = w.net.start(org).await {
            out.failed_restarts += 1;
            out.violation(format!("kill {k}: {org} did not restart: {e:#}"));
            break;
        }
        if (k + 1) % 10 == 0 {
            r.line(format!("{} kills so far", k + 1));
        }
    }
    stop.store(true, Ordering::SeqCst);
    worker.await.context("the load task failed")?;
    out.operations = load.ops.lock().await.clone();
    out.interrupted = load.interrupted.load(Ordering::SeqCst);

    let settle_started = Instant::now();
    settle(&w).await?;
    out.settle_secs = settle_started.elapsed().as_secs_f64();
    check(&w, &mut out).await?;
    out.total_secs = started.elapsed().as_secs_f64();

    r.line(format!(
        "load: {} operations done ({}), {} interrupted by a kill",
        out.operations.values().sum::<u64>(),
        out.operations.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        out.interrupted
    ));
    r.line(format!(
        "consents: {}",
        out.consents.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    ));
    r.check(format!("every node restarted after each of {} kills", out.kills), out.failed_restarts == 0);
    r.check(format!("settled in {:.1} s: every outbox empty, no consent pending", out.settle_secs), out.lost == 0);
    out.report_end_state(&mut r);
    if !opts.docker {
        scenarios::scan_personal_data(&w, false, &mut r)?;
    }
    r.print();
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !r.passed() && out.passed() {
        out.violation("the personal-data scan failed".into());
        out.broken_audits += usize::from(out.broken_audits == 0);
    }
    Ok(out)
}

/// A consent the load granted, as far as it knows.
struct Granted {
    home: &'static str,
    id: ConsentId,
    staff: StaffRef,
    withdrawn: bool,
}

/// The load: grants (most), updates, withdrawals and revocations at
/// random trusts, until `stop`: back to back, or one every `pace`. A
/// request to a node that is down or is killed while answering counts as
/// interrupted.
async fn drive_load(
    clients: BTreeMap<&'static str, Client>,
    people: BTreeMap<&'static str, Vec<Person>>,
    seed: u64,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
    pace: Option<Duration>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut granted: Vec<Granted> = Vec::new();
    let mut ticks = pace.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while !stop.load(Ordering::SeqCst) {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        let began = Instant::now();
        let roll = rng.random_range(0..100);
        let result = if roll < 50 || granted.is_empty() {
            let home = MEMBERS[rng.random_range(0..MEMBERS.len())];
            let others: Vec<&str> = MEMBERS.iter().copied().filter(|o| *o != home).collect();
            let to = others[rng.random_range(0..others.len())];
            let list = &people[home];
            let person = &list[rng.random_range(0..list.len())];
            let Ok(staff) = person.staff_ref.parse::<StaffRef>() else { continue };
            let request = ConsentRequest {
                staff: staff.clone(),
                receiver: to.parse().expect("member org"),
                agreement: "london-mou".parse().expect("agreement id"),
                move_kind: staffpass_protocol::roster::MoveKind::Rotation,
                claims: [staffpass_protocol::ClaimKind::Identity].into_iter().collect(),
                not_before: None,
                not_after: staffpass_node::node::now().plus_days(30),
                staff_key: None,
            };
            clients[home].grant_consent(&request).await.map(|v| {
                granted.push(Granted { home, id: v.consent.id, staff, withdrawn: false });
                "grant"
            })
        } else if roll < 70 {
            let g = &granted[rng.random_range(0..granted.len())];
            let claim = Claim::Training(
                CstfSubject::FireSafety,
                Training {
                    level: 1,
                    completed_on: staffpass_node::node::now().date(),
                    refresher_months: rng.random_range(12..36),
                },
            );
            clients[g.home].record_claim(&g.staff, &claim).await.map(|_| "update")
        } else if roll < 88 {
            let i = rng.random_range(0..granted.len());
            if granted[i].withdrawn {
                continue;
            }
            let (home, id) = (granted[i].home, granted[i].id);
            clients[home].withdraw_consent(&id).await.map(|_| {
                granted[i].withdrawn = true;
                "withdraw"
            })
        } else {
            let g = &granted[rng.random_range(0..granted.len())];
            let why = RevokeRequest { reason: RevocationReason::LeavingOrganisation };
            clients[g.home].revoke_staff(&g.staff, &why).await.map(|_| "revoke")
        };
        match result {
            Ok(kind) => load.done(kind, began.elapsed().as_secs_f64() * 1000.0).await,
            Err(e) => {
                load.failed(e.code().unwrap_or("transport")).await;
                // The node is down: give the killer a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until every member's outbox is empty and no consent is pending.
pub(crate) async fn settle(w: &World) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut busy = Vec::new();
        for org in MEMBERS {
            let c = &w.net.node(org)?.client;
            let outbox = c.outbox().await.map(|o| o.len()).unwrap_or(usize::MAX);
            let pending = c
                .consents()
                .await
                .map(|l| l.iter().filter(|v| matches!(v.state, ConsentState::Pending)).count())
                .unwrap_or(usize::MAX);
            if outbox > 0 || pending > 0 {
                busy.push(format!("{org}: outbox {outbox}, pending {pending}"));
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("not settled after {} s: {}{}", SETTLE.as_secs(), busy.join("; "), stuck(w).await));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why the outboxes did not drain, for the error: per member, its waiting
/// messages grouped by receiver, kind and last error, with their attempts.
async fn stuck(w: &World) -> String {
    let mut out = String::new();
    for org in MEMBERS {
        let Ok(node) = w.net.node(org) else { continue };
        let Ok(items) = node.client.outbox().await else { continue };
        let mut groups: BTreeMap<(String, String, String), (usize, u32)> = BTreeMap::new();
        for i in items {
            let key = (i.to.to_string(), i.kind.to_string(), i.last_error.unwrap_or_else(|| "none yet".into()));
            let g = groups.entry(key).or_default();
            g.0 += 1;
            g.1 = g.1.max(i.attempts);
        }
        for ((to, kind, error), (n, attempts)) in groups {
            out.push_str(&format!("\n  {org} -> {to}: {n} {kind}, up to {attempts} attempts, last error: {error}"));
        }
    }
    out
}

/// Checks the invariants from what the nodes hold.
pub(crate) async fn check(w: &World, out: &mut Outcome) -> Result<()> {
    let node = |org: &str| w.net.node(org).map(|n| &n.client);
    for home in MEMBERS {
        let c = node(home)?;
        let consents = c.consents().await.with_context(|| format!("{home}: consents"))?;
        let outbox = c.outbox().await.with_context(|| format!("{home}: outbox"))?;
        for v in consents {
            *out.consents.entry(v.state.name().to_string()).or_default() += 1;
            let id = v.consent.id;
            let receiver = node(&v.consent.receiver.to_string())?;
            match &v.state {
                ConsentState::Pending => {
                    out.lost += 1;
                    let queued = outbox.iter().any(|o| o.consent == id);
                    out.violation(format!("{home}: consent {id} still pending (in the outbox: {queued})"));
                }
                ConsentState::Delivered { .. } => {
                    let held = receiver.received_one(&id).await;
                    let cred = c.credential(&v.credential).await.with_context(|| format!("{home}: credential"))?;
                    let want = if cred.revoked.is_some() { "revoked" } else { "active" };
                    match held {
                        Ok(h) if h.credential == v.credential && h.status == want => {}
                        Ok(h) => {
                            out.mismatched += 1;
                            out.violation(format!(
                                "{}: consent {id} held with {} ({}); the home sent {} ({want})",
                                v.consent.receiver, h.credential, h.status, v.credential
                            ));
                        }
                        Err(e) => {
                            out.mismatched += 1;
                            out.violation(format!("{}: delivered consent {id} not held: {e}", v.consent.receiver));
                        }
                    }
                }
                ConsentState::Withdrawn { erased, .. } => {
                    let at_receiver = receiver.received_one(&id).await.map(|h| h.status);
                    let ok = match &at_receiver {
                        Ok(s) => s == "erased",
                        // Withdrawn before it was ever delivered: nothing to erase.
                        Err(e) => e.code() == Some("not-found"),
                    };
                    if erased.is_none() || !ok {
                        out.not_erased += 1;
                        out.violation(format!(
                            "{home}: withdrawn consent {id}: erasure confirmed {}, at the receiver {:?}",
                            erased.is_some(),
                            at_receiver.map_err(|e| e.to_string())
                        ));
                    }
                }
                ConsentState::Rejected { reason, .. } => {
                    *out.consents.entry(format!("rejected:{reason}")).or_default() += 1;
                    if let Ok(h) = receiver.received_one(&id).await
                        && h.status == "active"
                    {
                        out.mismatched += 1;
                        out.violation(format!("{home}: consent {id} rejected ({reason}) but active at the receiver"));
                    }
                }
                ConsentState::AwaitingStaffSignature => {}
            }
        }
    }
    for org in MEMBERS {
        let c = node(org)?;
        let entries =
            c.audit(AuditQuery { since: 0, limit: 1_000_000 }).await.with_context(|| format!("{org}: audit"))?;
        let mut seen = BTreeSet::new();
        for e in entries {
            let once = matches!(e.event.action.as_str(), "receipt" | "erasure" | "revocation");
            let Some(object) = e.event.object.clone() else { continue };
            if once
                && !seen.insert((e.event.action.clone(), e.event.actor.clone(), object.clone(), e.event.reason.clone()))
            {
                out.duplicated += 1;
                out.violation(format!("{org}: audit holds {} {object} twice", e.event.action));
            }
        }
        if !w.net.node(org)?.audit_ok().await? {
            out.broken_audits += 1;
            out.violation(format!("{org}: the audit log does not verify"));
        }
    }
    let _ = STEP;
    Ok(())
}
