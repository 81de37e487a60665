//! The scenarios: each brings up a fresh network (local processes or
//! docker), seeds it, does something to it, asserts the outcome, and
//! reports on one screen. The same code runs in both modes; only
//! [`Testnet`]'s stop/kill/cut/heal differ.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use staffpass_protocol::roster::MemberStatus;

use crate::bins::Bins;
use crate::docker;
use crate::hr::{self, Grant, Person};
use crate::net::{STEP, Testnet, wait_for};
use crate::report::Report;
use crate::stewards::{Admin, Stewards};
use crate::topology::{self, HOSPICE, OUTSIDER, TRUSTS};

/// The scenarios, in the order `all` runs them.
pub const NAMES: &[&str] = &["moves", "node-loss", "partition", "outsider", "equivocation", "standards"];

/// How to bring a network up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Docker instead of local processes.
    pub docker: bool,
    /// The directory to use (default: a new temp dir).
    pub dir: Option<PathBuf>,
    /// Keep the directory afterwards.
    pub keep: bool,
    /// Seed of the synthetic staff.
    pub seed: u64,
    /// Staff per trust.
    pub rows: usize,
    /// The binaries.
    pub bins: Bins,
    /// Do not build anything.
    pub no_build: bool,
    /// Print the story as it happens.
    pub live: bool,
    /// Leave the nodes running when this program exits (`up`).
    pub detached: bool,
}

/// A seeded network.
#[derive(Debug)]
pub struct World {
    /// The nodes.
    pub net: Testnet,
    /// The stewards of every agreement.
    pub stewards: Stewards,
    /// Each trust's staff.
    pub people: BTreeMap<&'static str, Vec<Person>>,
    /// Every synthetic person's name, NI and DBS number (for the scan).
    pub personal: Vec<String>,
}

impl World {
    /// The staff of `org`.
    pub fn people(&self, org: &str) -> Result<&[Person]> {
        self.people.get(org).map(Vec::as_slice).ok_or_else(|| anyhow!("no staff imported at {org}"))
    }
}

/// The network's directory, and whether to remove it afterwards: the one
/// given, or else a new temp dir (removed unless `opts.keep`).
pub(crate) fn root_dir(opts: &Options) -> Result<(PathBuf, bool)> {
    match &opts.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d).map(|mut e| e.next().is_some()).unwrap_or(false) {
                return Err(anyhow!("{} is not empty: give an empty or new directory", d.display()));
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            Ok((d.canonicalize().with_context(|| format!("cannot resolve {}", d.display()))?, false))
        }
        None => {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            let d = std::env::temp_dir().join(format!("staffpass-testnet-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            Ok((d, !opts.keep))
        }
    }
}

/// Brings up the seven nodes, has the stewards create the three agreements
/// offline and enrol the members, waits for the mesh, and imports staff.
pub async fn bring_up(opts: &Options, r: &mut Report) -> Result<World> {
    let (root, remove) = root_dir(opts)?;
    let mut net = if opts.docker {
        docker::create(&root, opts.bins.clone()).await?
    } else {
        Testnet::create_local(&root, opts.bins.clone())?
    };
    net.remove_on_drop = remove;
    net.detached = opts.detached;
    net.start_all().await?;
    let how = if opts.docker { "docker containers on 172.29.60.0/24" } else { "local processes on 127.0.0.1" };
    r.line(format!("network: {} nodes as {how}, in {}", net.nodes.len(), root.display()));

    let mut stewards = Stewards::create(Admin::new(&opts.bins.admin), &root).await?;
    stewards.enrol_members(&net).await?;
    for a in topology::AGREEMENTS {
        r.line(format!(
            "agreement {:<22} {} of {} stewards ({}) signed offline; members {}",
            a.id,
            a.threshold,
            a.stewards,
            a.steward_body,
            a.members.join(", ")
        ));
    }
    wait_mesh(&net).await?;
    r.line(format!("mesh: every member connected to every co-signatory; {OUTSIDER} is in no agreement"));

    let mut people = BTreeMap::new();
    let mut personal = Vec::new();
    for t in TRUSTS {
        let csv = crate::data::generate(&hr::export_for(t, opts.rows, opts.seed));
        personal.extend(crate::scan::personal_values(&csv)?);
        people.insert(t.org, hr::import(net.node(t.org)?, &csv).await?);
    }
    r.line(format!("staff: {} synthetic records imported at each node (seed {})", opts.rows, opts.seed));
    Ok(World { net, stewards, people, personal })
}

/// Searches every file of the network (stores, keys, logs) for every
/// synthetic person's name, NI and DBS number in clear; a check in the
/// report. Local mode only (docker keeps the node files in its volumes).
pub fn scan_personal_data(w: &World, docker: bool, r: &mut Report) -> Result<()> {
    if docker {
        r.line("personal-data scan: local mode only (the containers' files are in docker volumes)");
        return Ok(());
    }
    let (control, found) = crate::scan::scan_with_control(&w.net.root, &w.personal)?;
    r.check("personal-data scan: the search finds a value planted in clear (control)", control);
    // Where, never what: the report itself must not repeat the values.
    for (file, _) in found.hits.iter().take(5) {
        r.line(format!("  personal data in clear in {}", file.display()));
    }
    let what = format!(
        "{} synthetic names, NI and DBS numbers searched for in {} files ({:.1} MB: every node's store, keys and log)",
        w.personal.len(),
        found.files,
        found.bytes as f64 / 1e6
    );
    r.line(format!("personal data: {what}: {} in clear", if found.hits.is_empty() { "none" } else { "FOUND" }));
    r.check(format!("personal-data scan: {what}: none in clear"), found.hits.is_empty());
    Ok(())
}

/// Waits until every member is connected to every co-signatory.
pub async fn wait_mesh(net: &Testnet) -> Result<()> {
    for t in TRUSTS {
        let n = net.node(t.org)?;
        for partner in topology::partners_of(t.org) {
            let peer = net.node(partner)?.peer_id.clone();
            wait_for(&format!("{} to connect to {partner}", t.org), STEP, || async { n.connected_to(&peer).await })
                .await?;
        }
    }
    Ok(())
}

fn short(org: &str) -> &'static str {
    topology::trust(org).map(|t| t.short).unwrap_or("?")
}

/// One move: a consent from `home` to `host`, delivered and checked at the host.
struct Move<'a> {
    label: &'a str,
    home: &'static str,
    host: &'static str,
    agreement: &'a str,
    move_kind: &'a str,
    roles: &'a [&'a str],
    claims: Vec<String>,
}

/// What a move left behind.
struct Moved {
    consent: String,
    credential: String,
}

async fn do_move(w: &World, m: &Move<'_>, taken: &mut Vec<String>, r: &mut Report) -> Result<Moved> {
    let person = hr::pick(w.people(m.home)?, m.roles, taken)?.clone();
    let home = w.net.node(m.home)?;
    let host = w.net.node(m.host)?;
    let g = Grant {
        staff: &person.staff_ref,
        to: m.host,
        agreement: m.agreement,
        move_kind: m.move_kind,
        claims: m.claims.clone(),
        days: 90,
    };
    let id = hr::grant(home, &g).await?;
    let done = hr::wait_state(home, &id, "delivered").await?;
    let receipts = done["receipts"].as_array().cloned().unwrap_or_default();
    let signed_by_host = receipts.iter().any(|x| x["body"]["receiver"] == m.host);
    let got = hr::received(host, &id).await?;
    let mut want = m.claims.clone();
    want.sort();
    r.line(format!(
        "{:<18} {} {} -> {} {} ({}): {}, {} claims",
        m.label,
        m.home,
        short(m.home),
        m.host,
        short(m.host),
        m.agreement,
        person.label(),
        m.claims.len()
    ));
    let d = hr::dates(&got);
    r.line(format!(
        "{:<18} delivered; receipt signed by {}; host sees {} in date, {} expiring (<=60 d), {} expired",
        "", m.host, d.in_date, d.expiring, d.expired
    ));
    r.check(format!("{}: consent delivered with a receipt signed by {}", m.label, m.host), signed_by_host);
    r.check(format!("{}: the host holds exactly the consented claims", m.label), hr::claim_names(&got) == want);
    r.check(
        format!("{}: the host verified it as from {}", m.label, m.home),
        got["issuer"] == m.home && got["status"] == "active",
    );
    let credential = done["credential"].as_str().unwrap_or_default().to_string();
    Ok(Moved { consent: id, credential })
}

/// `moves` (and the demo): rotation, honorary contract, secondments, a
/// withdrawal, a revocation, and two moves the agreements do not allow.
pub async fn moves(w: &mut World, r: &mut Report) -> Result<()> {
    let mut taken = Vec::new();
    let core = hr::claims(&["identity", "right-to-work", "professional-registration", "dbs", "occupational-health"]);
    let mut rotation_claims = core.clone();
    rotation_claims.extend(hr::all_training());
    let rotation = do_move(
        w,
        &Move {
            label: "rotation",
            home: "RJZ",
            host: "RJ1",
            agreement: "kings-health-partners",
            move_kind: "rotation",
            roles: &["Registrar", "Foundation Doctor"],
            claims: rotation_claims,
        },
        &mut taken,
        r,
    )
    .await?;
    let _ = rotation;
    let honorary = do_move(
        w,
        &Move {
            label: "honorary contract",
            home: "RV5",
            host: "RJZ",
            agreement: "kings-health-partners",
            move_kind: "honorary-contract",
            roles: &["Consultant", "Mental Health Nurse"],
            claims: hr::claims(&[
                "identity",
                "professional-registration",
                "dbs",
                "training:safeguarding-adults",
                "training:safeguarding-children",
                "training:conflict-resolution",
            ]),
        },
        &mut taken,
        r,
    )
    .await?;
    let hospice = do_move(
        w,
        &Move {
            label: "secondment",
            home: "RJZ",
            host: HOSPICE,
            agreement: "one-bromley",
            move_kind: "secondment",
            roles: &["Staff Nurse", "Ward Sister"],
            claims: hr::claims(&[
                "identity",
                "dbs",
                "occupational-health",
                "immunisation:hepatitis-b",
                "training:infection-prevention-control",
                "training:moving-handling",
                "training:safeguarding-adults",
            ]),
        },
        &mut taken,
        r,
    )
    .await?;
    let _ = hospice;
    let secondment = do_move(
        w,
        &Move {
            label: "secondment",
            home: "RJ2",
            host: "RPG",
            agreement: "london-mou",
            move_kind: "secondment",
            roles: &["Physiotherapist", "Paramedic"],
            claims: hr::claims(&["identity", "dbs", "training:moving-handling", "training:fire-safety"]),
        },
        &mut taken,
        r,
    )
    .await?;

    // The seconded member of staff withdraws: the host erases and says so, signed.
    let rj2 = w.net.node("RJ2")?;
    let rpg = w.net.node("RPG")?;
    hr::withdraw(rj2, &secondment.consent).await?;
    wait_for("the erasure receipt from RPG", STEP, || async {
        Ok(!hr::consent(rj2, &secondment.consent).await?["state"]["erased"].is_null())
    })
    .await?;
    let at_host = hr::received(rpg, &secondment.consent).await?;
    r.line(format!(
        "{:<18} staff at RJ2 withdraw their secondment consent: RPG erased it ({}), erasure receipt back at RJ2",
        "withdrawal", at_host["status"]
    ));
    r.check(
        "withdrawal: the host erased the passport",
        at_host["status"] == "erased" && hr::claim_names(&at_host).is_empty(),
    );

    // RV5 revokes the honorary contract's credential: the host marks it revoked.
    let rv5 = w.net.node("RV5")?;
    let rjz = w.net.node("RJZ")?;
    hr::revoke(rv5, &honorary.credential, "leaving-organisation").await?;
    wait_for("RJZ to mark the honorary contract's passport revoked", STEP, || async {
        Ok(hr::received(rjz, &honorary.consent).await?["status"] == "revoked")
    })
    .await?;
    let revoked = hr::received(rjz, &honorary.consent).await?;
    r.line(format!(
        "{:<18} RV5 revokes the honorary contract's credential (leaving-organisation): RJZ shows it {} ({})",
        "revocation", revoked["status"], revoked["reason"]
    ));
    r.check(
        "revocation: the host shows the passport revoked with its reason",
        revoked["reason"] == "leaving-organisation",
    );

    // What the agreements do not allow is refused at the home trust.
    let someone = hr::pick(w.people("RJ2")?, &[], &mut taken)?.staff_ref.clone();
    let code = hr::grant_refused(
        rj2,
        &Grant {
            staff: &someone,
            to: HOSPICE,
            agreement: "one-bromley",
            move_kind: "secondment",
            claims: hr::claims(&["identity"]),
            days: 30,
        },
    )
    .await?;
    r.line(format!("{:<18} RJ2 -> hospice under one-bromley: refused ({code}): RJ2 is not a signatory", "refused"));
    r.check("a move under an agreement the home has not signed is refused", !code.is_empty());
    let someone = hr::pick(w.people("RJZ")?, &[], &mut taken)?.staff_ref.clone();
    let code = hr::grant_refused(
        rjz,
        &Grant {
            staff: &someone,
            to: "RPG",
            agreement: "one-bromley",
            move_kind: "rotation",
            claims: hr::claims(&["identity"]),
            days: 30,
        },
    )
    .await?;
    r.line(format!(
        "{:<18} RJZ -> RPG rotation under one-bromley: refused ({code}): the terms cover no rotations",
        "refused"
    ));
    r.check("a move the agreement's terms do not cover is refused", !code.is_empty());

    let outsider = w.net.node(OUTSIDER)?.status().await?;
    r.check("the outsider has no connections", outsider.connected_peers == 0);
    audits(w, r).await
}

async fn audits(w: &World, r: &mut Report) -> Result<()> {
    let mut all = true;
    for n in w.net.nodes.values() {
        all &= r.check(format!("{}'s audit log verifies", n.org()), n.audit_ok().await?);
    }
    r.line(format!(
        "audit: the hash-chained audit log of every node {}",
        if all { "verifies" } else { "DOES NOT verify" }
    ));
    Ok(())
}

/// `node-loss`: kill -9 a receiving node with offers in flight; restart it;
/// every offer is delivered exactly once and both audit logs verify.
pub async fn node_loss(w: &mut World, r: &mut Report) -> Result<()> {
    const OFFERS: usize = 8;
    let people: Vec<Person> = w.people("RJZ")?.iter().take(OFFERS).cloned().collect();
    let mut ids = Vec::new();
    {
        let rjz = w.net.node("RJZ")?;
        for p in &people {
            let g = Grant {
                staff: &p.staff_ref,
                to: "RJ1",
                agreement: "kings-health-partners",
                move_kind: "rotation",
                claims: hr::claims(&["identity", "dbs", "training:resuscitation"]),
                days: 60,
            };
            ids.push(hr::grant(rjz, &g).await?);
        }
    }
    w.net.kill("RJ1").await?;
    let rjz = w.net.node("RJZ")?;
    let mut pending = 0;
    for id in &ids {
        if hr::consent(rjz, id).await?["state"]["state"] != "delivered" {
            pending += 1;
        }
    }
    r.line(format!(
        "RJZ granted {OFFERS} rotation consents to RJ1; RJ1 killed (SIGKILL) with {pending} still in flight"
    ));
    w.net.start("RJ1").await?;
    r.line("RJ1 restarted on the same data directory");
    let rjz = w.net.node("RJZ")?;
    let rj1 = w.net.node("RJ1")?;
    for id in &ids {
        hr::wait_state(rjz, id, "delivered").await?;
    }
    let received = hr::received_all(rj1).await?;
    let mut exactly_once = true;
    for id in &ids {
        let stored = received.iter().filter(|v| v["consent"] == id.as_str()).count();
        let receipts = hr::audit_count(rj1, "receipt", id).await?;
        exactly_once &= stored == 1 && receipts == 1;
    }
    let outbox = rjz.client.outbox().await?;
    r.line(format!(
        "all {OFFERS} delivered; RJ1 holds {} passports, one receipt each in its audit log; RJZ's outbox is {}",
        received.len(),
        if outbox.is_empty() { "empty" } else { "NOT empty" }
    ));
    r.check(format!("all {OFFERS} offers delivered exactly once"), exactly_once && received.len() == OFFERS);
    r.check("RJZ's outbox drained", outbox.is_empty());
    r.check("every passport at RJ1 is active with its claims", received.iter().all(|v| v["status"] == "active"));
    for n in [rjz, rj1] {
        r.check(format!("{}'s audit log verifies", n.org()), n.audit_ok().await?);
    }
    Ok(())
}

/// `partition`: cut RV5 off; meanwhile suspend and reinstate RPG and grant
/// consents to RV5; heal; RV5 catches up by anti-entropy and the outbox delivers.
pub async fn partition(w: &mut World, r: &mut Report) -> Result<()> {
    let how = w.net.cut_how();
    w.net.cut("RV5").await?;
    r.line(format!("RV5 cut off ({how})"));
    let rjz = w.net.node("RJZ")?;
    for change in [
        vec!["suspend".to_string(), "--org".into(), "RPG".into(), "--reason".into(), "annual audit overdue".into()],
        vec!["reinstate".to_string(), "--org".into(), "RPG".into()],
    ] {
        w.stewards.change("london-mou", &change, rjz).await?;
    }
    let head = w.net.node("RJZ")?.roster_seq("london-mou").await?.unwrap_or_default();
    r.line(format!("meanwhile the london-mou stewards suspend and reinstate RPG (head now entry {head})"));
    let rjz = w.net.node("RJZ")?;
    let mut ids = Vec::new();
    for p in w.people("RJZ")?.iter().take(3) {
        let g = Grant {
            staff: &p.staff_ref,
            to: "RV5",
            agreement: "london-mou",
            move_kind: "honorary-contract",
            claims: hr::claims(&["identity", "dbs"]),
            days: 60,
        };
        ids.push(hr::grant(rjz, &g).await?);
    }
    let mut waiting = 0;
    for id in &ids {
        if hr::consent(rjz, id).await?["state"]["state"] == "pending" {
            waiting += 1;
        }
    }
    r.line(format!("and RJZ grants 3 consents to RV5: {waiting} waiting in RJZ's outbox"));
    r.check("offers wait while the receiver is cut off", waiting == ids.len());
    w.net.heal("RV5").await?;
    r.line("RV5 back on the network");
    let rv5 = w.net.node("RV5")?;
    wait_for("RV5 to catch up with london-mou", STEP, || async {
        Ok(rv5.roster_seq("london-mou").await? == Some(head))
    })
    .await?;
    let a = rv5.client.agreement(&"london-mou".parse()?).await?;
    let rpg_active = a.state.status(&"RPG".parse()?) == Some(MemberStatus::Active);
    r.line(format!("RV5 caught up by anti-entropy: london-mou at entry {head}, RPG active again"));
    r.check("RV5 caught up with the roster changes made while it was away", true);
    r.check("RV5 sees RPG reinstated", rpg_active);
    let rjz = w.net.node("RJZ")?;
    for id in &ids {
        hr::wait_state(rjz, id, "delivered").await?;
    }
    let received = hr::received_all(rv5).await?;
    r.line(format!("RJZ's outbox delivered all 3; RV5 holds {} passports", received.len()));
    r.check("the outbox delivered every offer after the heal", received.len() == ids.len());
    for n in [rjz, rv5] {
        r.check(format!("{}'s audit log verifies", n.org()), n.audit_ok().await?);
    }
    Ok(())
}

/// `outsider`: RAX (in no agreement) tries to connect and to send; every
/// node refuses it. Then a member suspended mid-scenario is cut off.
pub async fn outsider(w: &mut World, r: &mut Report) -> Result<()> {
    // A rogue "agreement" of RAX's own that lists every member, so RAX dials them all.
    let rax = w.net.node(OUTSIDER)?;
    let dir = w.net.root.join("stewards").join("rogue-pact");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let admin = w.stewards.admin.clone();
    let key = dir.join("rogue.key");
    let chain = dir.join("chain.json");
    let sv = |x: &str| x.to_string();
    let pv = |x: &std::path::Path| x.display().to_string();
    admin.run(&[sv("key"), sv("gen"), sv("--kind"), sv("steward"), sv("--out"), pv(&key)]).await?;
    admin
        .run(&[
            sv("agreement"),
            sv("init"),
            sv("--id"),
            sv("rogue-pact"),
            sv("--title"),
            sv("Not a real agreement"),
            sv("--steward"),
            pv(&key),
            sv("--threshold"),
            sv("1"),
            sv("--moves"),
            sv("rotation"),
            sv("--accepts"),
            sv("all"),
            sv("--lawful-basis"),
            sv("none"),
            sv("--out"),
            pv(&chain),
        ])
        .await?;
    admin.run(&[sv("roster"), sv("sign"), pv(&chain), sv("--key"), pv(&key), sv("--yes")]).await?;
    for t in TRUSTS {
        let n = w.net.node(t.org)?;
        let change = dir.join(format!("add-{}.json", topology::dir_name(t.org)));
        admin
            .run(&[
                sv("roster"),
                sv("propose"),
                sv("add-member"),
                sv("--chain"),
                pv(&chain),
                sv("--out"),
                pv(&change),
                sv("--org"),
                sv(t.org),
                sv("--name"),
                sv(t.name),
                sv("--issuer-key"),
                n.issuer_key.clone(),
                sv("--node"),
                n.peer_id.clone(),
                sv("--address"),
                n.p2p.clone(),
            ])
            .await?;
        admin
            .run(&[
                sv("roster"),
                sv("sign"),
                pv(&change),
                sv("--key"),
                pv(&key),
                sv("--chain"),
                pv(&chain),
                sv("--yes"),
            ])
            .await?;
        admin.run(&[sv("roster"), sv("append"), pv(&chain), pv(&change)]).await?;
    }
    crate::stewards::submit(&admin, &chain, rax).await?;
    r.line(format!("{OUTSIDER} holds a self-made 'rogue-pact' listing all six members, and dials them"));

    let members: Vec<&'static str> = TRUSTS.iter().map(|t| t.org).filter(|o| *o != OUTSIDER).collect();
    for org in &members {
        let n = w.net.node(org)?;
        wait_for(&format!("{org} to deny {OUTSIDER}"), STEP, || async {
            Ok(n.metric("staffpass_denied_connections_total").await? > 0.0)
        })
        .await?;
    }
    let mut denied = Vec::new();
    for org in &members {
        let n = w.net.node(org)?;
        let count = n.metric("staffpass_denied_connections_total").await?;
        let connected = n.connected_to(&rax.peer_id).await?;
        r.check(format!("{org} denies {OUTSIDER}'s connections"), count > 0.0 && !connected);
        denied.push(format!("{org}:{count}"));
    }
    r.line(format!(
        "every member refused it at connection time (staffpass_denied_connections_total {})",
        denied.join(" ")
    ));

    // RAX tries to send a passport: it never leaves RAX.
    let someone = w.people(OUTSIDER)?.first().ok_or_else(|| anyhow!("no staff at {OUTSIDER}"))?.staff_ref.clone();
    let g = Grant {
        staff: &someone,
        to: "RJZ",
        agreement: "rogue-pact",
        move_kind: "rotation",
        claims: hr::claims(&["identity"]),
        days: 30,
    };
    let id = hr::grant(rax, &g).await.ok();
    if let Some(id) = &id {
        wait_for(&format!("{OUTSIDER}'s offer to fail at least once"), STEP, || async {
            let out = rax.client.outbox().await?;
            Ok(out.iter().any(|i| i.attempts >= 1) || hr::consent(rax, id).await?["state"]["state"] == "rejected")
        })
        .await?;
    }
    let rjz = w.net.node("RJZ")?;
    let from_rax = hr::received_all(rjz).await?.iter().filter(|v| v["issuer"] == OUTSIDER).count();
    r.line(format!(
        "{OUTSIDER} grants a consent to RJZ: {}; RJZ received {from_rax} passports from it",
        if id.is_some() { "the offer stays in RAX's outbox, undeliverable" } else { "refused at RAX's own API" }
    ));
    r.check(format!("nothing from {OUTSIDER} reached RJZ"), from_rax == 0);

    // A member suspended mid-scenario is cut off by everyone.
    let rj2_peer = w.net.node("RJ2")?.peer_id.clone();
    let change = vec![
        "suspend".to_string(),
        "--org".into(),
        "RJ2".into(),
        "--reason".into(),
        "information governance review".into(),
    ];
    w.stewards.change("london-mou", &change, w.net.node("RJZ")?).await?;
    for org in ["RJZ", "RJ1", "RV5", "RPG"] {
        let n = w.net.node(org)?;
        wait_for(&format!("{org} to drop suspended RJ2"), STEP, || async { Ok(!n.connected_to(&rj2_peer).await?) })
            .await?;
    }
    let st = w.net.node("RJ2")?.status().await?;
    r.line(format!(
        "the london-mou stewards suspend RJ2: every member drops it (RJ2 now has {} connections)",
        st.connected_peers
    ));
    r.check("members drop a suspended member's connections", true);
    let someone = w.people("RJZ")?.first().ok_or_else(|| anyhow!("no staff at RJZ"))?.staff_ref.clone();
    let code = hr::grant_refused(
        w.net.node("RJZ")?,
        &Grant {
            staff: &someone,
            to: "RJ2",
            agreement: "london-mou",
            move_kind: "rotation",
            claims: hr::claims(&["identity"]),
            days: 30,
        },
    )
    .await?;
    r.line(format!("a consent from RJZ to suspended RJ2 is refused ({code})"));
    r.check("no exchange with a suspended member", !code.is_empty());
    Ok(())
}

/// `equivocation`: two conflicting, validly signed london-mou entries at one
/// seq, pushed to two different nodes at once; every member raises the
/// alarm and refuses both.
pub async fn equivocation(w: &mut World, r: &mut Report) -> Result<()> {
    let before = w.net.node("RJZ")?.roster_seq("london-mou").await?.unwrap_or_default();
    let x = w.stewards.propose("london-mou", &["resign".into(), "--valid-for".into(), "100d".into()], None).await?;
    let y = w.stewards.propose("london-mou", &["resign".into(), "--valid-for".into(), "120d".into()], None).await?;
    r.line(format!(
        "two london-mou stewards' quorums each sign a different entry {} (re-sign 100 d / 120 d)",
        before + 1
    ));
    let admin = w.stewards.admin.clone();
    let (a, b) = (w.net.node("RJZ")?, w.net.node("RPG")?);
    let (ra, rb) = tokio::join!(crate::stewards::submit(&admin, &x, a), crate::stewards::submit(&admin, &y, b));
    r.line(format!(
        "pushed at once: one to RJZ ({}), the other to RPG ({})",
        if ra.is_ok() { "accepted" } else { "refused" },
        if rb.is_ok() { "accepted" } else { "refused" }
    ));
    let members = topology::agreement("london-mou").map(|a| a.members).unwrap_or_default();
    for org in members {
        let n = w.net.node(org)?;
        wait_for(&format!("{org} to raise the equivocation alarm"), STEP, || async {
            let s = n.status().await?;
            Ok(!s.alarms.is_empty())
        })
        .await?;
    }
    let mut refused = true;
    for org in members {
        let n = w.net.node(org)?;
        let s = n.status().await?;
        let la = s.agreements.iter().find(|a| a.id.as_str() == "london-mou");
        let halted = la.is_some_and(|a| a.halted);
        let seq = la.map(|a| a.seq);
        refused &=
            r.check(format!("{org}: alarm raised, both entries refused, chain halted"), halted && seq == Some(before));
    }
    r.line(format!(
        "every london-mou member ({}) shows the alarm in /v1/status and {} both entries",
        members.join(", "),
        if refused { "refused" } else { "did NOT refuse" }
    ));
    // The other agreements are unaffected.
    let rjz = w.net.node("RJZ")?;
    let someone = w.people("RJZ")?.first().ok_or_else(|| anyhow!("no staff at RJZ"))?.staff_ref.clone();
    let g = Grant {
        staff: &someone,
        to: "RJ1",
        agreement: "kings-health-partners",
        move_kind: "rotation",
        claims: hr::claims(&["identity"]),
        days: 30,
    };
    let id = hr::grant(rjz, &g).await?;
    hr::wait_state(rjz, &id, "delivered").await?;
    r.line("kings-health-partners keeps working: a rotation RJZ -> RJ1 is delivered");
    r.check("other agreements are unaffected", true);
    Ok(())
}

/// `standards`: a move, then the passport outside staffpass. The host
/// exports what it received as a FHIR Bundle; the home exports the staff
/// member's wallet copy (SD-JWT VC), verified with the key its issuer
/// metadata publishes, and its status-list bit read from the published
/// list; a revocation at the home flips that bit, and the host, told of it,
/// no longer exports the passport.
pub async fn standards(w: &mut World, r: &mut Report) -> Result<()> {
    use staffpass_api::credentials::{ExportFormat, ExportRequest, ReceivedExportFormat, ReceivedExportRequest};
    use staffpass_protocol::{sdjwt, statuslist};

    let mut taken = Vec::new();
    let moved = do_move(
        w,
        &Move {
            label: "rotation",
            home: "RJZ",
            host: "RJ1",
            agreement: "london-mou",
            move_kind: "rotation",
            roles: &["Registrar", "Foundation Doctor", "Staff Nurse", "Consultant"],
            claims: hr::claims(&["identity", "professional-registration", "dbs", "training:fire-safety"]),
        },
        &mut taken,
        r,
    )
    .await?;
    let (home, host) = (w.net.node("RJZ")?, w.net.node("RJ1")?);
    let consent: staffpass_protocol::ConsentId = moved.consent.parse()?;
    let fhir = ReceivedExportRequest { format: ReceivedExportFormat::Fhir };
    let out = host.client.export_received(&consent, &fhir).await.context("RJ1: FHIR export")?;
    let bundle: serde_json::Value = serde_json::from_str(&out.token).context("the FHIR export is not JSON")?;
    let kinds: Vec<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    r.line(format!("{:<18} RJ1 exports the received passport as FHIR: {}", "fhir", kinds.join(", ")));
    r.check(
        "the host's FHIR Bundle has both organisations, the practitioner, the host role and the provenance",
        bundle["type"] == "collection"
            && kinds.iter().filter(|k| **k == "Organization").count() == 2
            && ["Practitioner", "PractitionerRole", "Provenance"].iter().all(|k| kinds.contains(k)),
    );

    // The wallet copy, checked as a verifier outside staffpass would.
    let meta = home.client.issuer_metadata().await.context("RJZ: issuer metadata")?;
    let key = sdjwt::issuer_key_of_jwk(&meta["jwks"]["keys"][0])
        .ok_or_else(|| anyhow!("RJZ's issuer metadata has no Ed25519 key"))?;
    let received = hr::received(host, &moved.consent).await?;
    let staff: staffpass_protocol::StaffRef = received["subject"].as_str().unwrap_or_default().parse()?;
    let sd = ExportRequest { format: ExportFormat::SdJwtVc, claims: None };
    let wallet = home.client.export_credential(&staff, &sd).await.context("RJZ: SD-JWT VC export")?;
    let now = staffpass_node::node::now();
    let v = sdjwt::verify(&wallet.token, &key, now).map_err(|e| anyhow!("the wallet copy does not verify: {e}"))?;
    let (idx, uri) =
        statuslist::entry_of(&v.payload).ok_or_else(|| anyhow!("the wallet copy names no status entry"))?;
    let (idx, uri) = (idx, uri.to_string());
    let bit = |list: staffpass_api::credentials::StatusListView| -> Result<bool> {
        let l = statuslist::verify(&list.token, &key, &uri, now).map_err(|e| anyhow!("the status list: {e}"))?;
        Ok(l.get(idx))
    };
    let before = bit(home.client.status_list().await?)?;
    r.line(format!(
        "{:<18} RJZ exports the wallet copy: {} claims, verified with the published key; status bit {idx} = {}",
        "sd-jwt-vc",
        v.claims.len(),
        u8::from(before)
    ));
    r.check("the wallet copy verifies against the issuer metadata and its status bit is clear", !before);

    // The copy the home sent with the bundle, as the host's HR system gets it.
    let sdr = ReceivedExportRequest { format: ReceivedExportFormat::SdJwtVc };
    let copy = host.client.export_received(&consent, &sdr).await.context("RJ1: SD-JWT VC export")?;
    let hv = sdjwt::verify(&copy.token, &key, now).map_err(|e| anyhow!("the host's copy does not verify: {e}"))?;
    let shared: std::collections::BTreeSet<&str> =
        received["claims"].as_array().into_iter().flatten().filter_map(|c| c["claim"].as_str()).collect();
    let disclosed: std::collections::BTreeSet<&str> = hv.claims.keys().map(String::as_str).collect();
    r.line(format!(
        "{:<18} RJ1 exports the copy RJZ sent with the bundle: {} claims, verified with RJZ's published key",
        "sd-jwt-vc (host)",
        hv.claims.len()
    ));
    r.check(
        "the host's SD-JWT VC verifies against the home's metadata, discloses exactly the shared claims and names the credential's status entry",
        !shared.is_empty()
            && shared == disclosed
            && statuslist::entry_of(&hv.payload).is_some_and(|(i, u)| i == idx && u == uri),
    );

    hr::revoke(home, &wallet.credential.to_string(), "leaving-organisation").await?;
    let after = bit(home.client.status_list().await?)?;
    r.check("a revocation at the home sets the credential's status bit", after);
    wait_for("RJ1 to hear of the revocation", STEP, || async {
        Ok(hr::received(host, &moved.consent).await?["status"] == "revoked")
    })
    .await?;
    let refused = host.client.export_received(&consent, &fhir).await.is_err();
    r.line(format!("{:<18} RJZ revokes: status bit {idx} = 1; RJ1 no longer exports the passport", "revocation"));
    r.check("the host refuses to export a revoked passport", refused);
    Ok(())
}

/// Runs scenario `name` on `w`.
pub async fn run(name: &str, w: &mut World, r: &mut Report) -> Result<()> {
    match name {
        "moves" => moves(w, r).await,
        "node-loss" => node_loss(w, r).await,
        "partition" => partition(w, r).await,
        "outsider" => outsider(w, r).await,
        "equivocation" => equivocation(w, r).await,
        "standards" => standards(w, r).await,
        other => Err(anyhow!("no scenario {other:?}; the scenarios are {}", NAMES.join(", "))),
    }
}
