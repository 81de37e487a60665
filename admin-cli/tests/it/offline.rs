//! The steward's offline work, end to end through the real binary: keys,
//! a new agreement signed by 2 of 3 stewards, changes proposed, signed,
//! verified and appended, and every way of getting it wrong refused with
//! one line and the documented exit code.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{admin, listing, read};
use staffpass_protocol::roster::{self, Chain, Entry};

/// Makes steward keys a, b, c and an issuer key i in `dir`.
fn keys(dir: &Path) {
    for k in ["a", "b", "c"] {
        admin(dir, &["key", "gen", "--kind", "steward", "--out", &format!("{k}.key")]).ok();
    }
    admin(dir, &["key", "gen", "--kind", "issuer", "--out", "i.key"]).ok();
}

fn init(dir: &Path, id: &str, out: &str) {
    admin(
        dir,
        &[
            "agreement",
            "init",
            "--id",
            id,
            "--title",
            "London MOU",
            "--steward",
            "a.key",
            "--steward",
            "b.key",
            "--steward",
            "c.key",
            "--threshold",
            "2",
            "--moves",
            "rotation,secondment",
            "--accepts",
            "all",
            "--lawful-basis",
            "UK GDPR 6(1)(b) and 9(2)(h)",
            "--valid-for",
            "90d",
            "--out",
            out,
        ],
    )
    .ok();
}

/// Keys, and a genesis signed by a and b saved as chain.json.
fn agreement(dir: &Path) {
    keys(dir);
    init(dir, "london-mou", "chain.json");
    admin(dir, &["roster", "sign", "chain.json", "--key", "a.key", "--yes"]).ok();
    admin(dir, &["roster", "sign", "chain.json", "--key", "b.key", "--yes"]).ok();
}

fn public(dir: &Path, key: &str) -> String {
    admin(dir, &["key", "show", "--json", key]).json()["public_key"].as_str().unwrap().to_owned()
}

const PEER: &str = "12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e";

fn propose_add(dir: &Path, out: &str) {
    let issuer = public(dir, "i.key");
    admin(
        dir,
        &[
            "roster",
            "propose",
            "add-member",
            "--chain",
            "chain.json",
            "--out",
            out,
            "--org",
            "RJZ",
            "--name",
            "King's College Hospital NHS FT",
            "--issuer-key",
            &issuer,
            "--node",
            PEER,
            "--address",
            "/ip4/127.0.0.1/tcp/7400",
        ],
    )
    .ok();
}

fn entries(p: impl AsRef<Path>) -> Vec<Entry> {
    let bytes = read(p);
    match serde_json::from_slice::<Vec<Entry>>(&bytes) {
        Ok(v) => v,
        Err(_) => vec![serde_json::from_slice::<Entry>(&bytes).unwrap()],
    }
}

#[test]
fn key_gen_writes_0600_refuses_to_overwrite_and_never_prints_the_secret() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let run = admin(dir, &["key", "gen", "--kind", "steward", "--out", "s.key"]);
    run.ok();
    let file = String::from_utf8(read(dir.join("s.key"))).unwrap();
    let secret_hex = file.trim().strip_prefix("steward-sk:").unwrap();
    assert_eq!(std::fs::metadata(dir.join("s.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!run.stdout.contains(secret_hex) && !run.stderr.contains(secret_hex));
    assert!(run.stdout.contains("steward-pk:"), "{}", run.stdout);

    let again = admin(dir, &["key", "gen", "--kind", "issuer", "--out", "s.key"]);
    assert!(again.fails(1).contains("already exists"));
    assert_eq!(String::from_utf8(read(dir.join("s.key"))).unwrap(), file);

    for args in [&["key", "show", "s.key"][..], &["key", "show", "--json", "s.key"][..]] {
        let show = admin(dir, args);
        show.ok();
        assert!(!show.stdout.contains(secret_hex), "{}", show.stdout);
        assert!(show.stdout.contains("steward-pk:"));
    }
    let info = admin(dir, &["key", "show", "--json", "s.key"]).json();
    assert_eq!(info["kind"], "steward");

    std::fs::write(dir.join("junk.key"), "hello").unwrap();
    admin(dir, &["key", "show", "junk.key"]).fails(2);
}

#[test]
fn two_of_three_stewards_make_a_valid_agreement() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keys(dir);
    init(dir, "london-mou", "genesis.json");
    // Unsigned and half-signed, it does not verify.
    admin(dir, &["roster", "verify", "genesis.json"]).fails(3);
    admin(dir, &["roster", "sign", "genesis.json", "--key", "a.key", "--yes"]).ok();
    let half = admin(dir, &["roster", "verify", "genesis.json"]);
    assert!(half.fails(3).contains("1 valid steward signatures, 2 needed"), "{}", half.stderr);
    assert_eq!(admin(dir, &["roster", "verify", "--json", "genesis.json"]).json()["valid"], false);
    let signed = admin(dir, &["roster", "sign", "--json", "genesis.json", "--key", "c.key", "--yes"]).json();
    assert_eq!((signed["signatures"].as_u64(), signed["needed"].as_u64()), (Some(2), Some(2)), "{signed}");
    assert_eq!(signed["complete"], true);
    admin(dir, &["roster", "verify", "genesis.json"]).ok();
    let v = admin(dir, &["roster", "verify", "--json", "genesis.json"]).json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["agreement"], "london-mou");
    // The protocol agrees.
    let chain = Chain::from_entries(entries(dir.join("genesis.json"))).unwrap();
    assert_eq!(chain.state().threshold, 2);
    assert_eq!(chain.state().stewards.len(), 3);
}

#[test]
fn a_change_with_one_of_two_signatures_does_not_verify() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "add.json");
    admin(dir, &["roster", "sign", "add.json", "--key", "c.key", "--chain", "chain.json", "--yes"]).ok();

    let before = read(dir.join("chain.json"));
    let append = admin(dir, &["roster", "append", "chain.json", "add.json"]);
    assert!(append.fails(3).contains("1 valid steward signatures, 2 needed"), "{}", append.stderr);
    assert_eq!(read(dir.join("chain.json")), before, "a refused append must not change the chain");

    // Glued on by hand, the chain does not verify, and the protocol refuses it too.
    let mut all = entries(dir.join("chain.json"));
    let change = entries(dir.join("add.json")).remove(0);
    let state = Chain::from_entries(all.clone()).unwrap().state().clone();
    assert!(matches!(roster::apply(Some(&state), &change), Err(roster::Error::BelowThreshold { have: 1, need: 2 })));
    all.push(change);
    std::fs::write(dir.join("glued.json"), serde_json::to_vec(&all).unwrap()).unwrap();
    let verify = admin(dir, &["roster", "verify", "glued.json"]);
    assert!(verify.fails(3).contains("entry 1"), "{}", verify.stderr);

    // With the second signature it appends and verifies.
    admin(dir, &["roster", "sign", "add.json", "--key", "a.key", "--chain", "chain.json", "--yes"]).ok();
    admin(dir, &["roster", "append", "chain.json", "add.json"]).ok();
    let v = admin(dir, &["roster", "verify", "--json", "chain.json"]).json();
    assert_eq!(v["seq"], 1);
    assert_eq!(v["members"], 1);
    // Appending it again changes nothing.
    admin(dir, &["roster", "append", "chain.json", "add.json"]).ok();
    assert_eq!(entries(dir.join("chain.json")).len(), 2);
}

#[test]
fn a_key_that_is_not_a_steward_cannot_sign_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    admin(dir, &["key", "gen", "--kind", "steward", "--out", "stranger.key"]).ok();
    propose_add(dir, "add.json");
    let before = read(dir.join("add.json"));
    let files = listing(dir);

    let run = admin(dir, &["roster", "sign", "add.json", "--key", "stranger.key", "--chain", "chain.json", "--yes"]);
    assert!(run.fails(3).contains("is not a steward of london-mou"), "{}", run.stderr);
    let run = admin(
        dir,
        &["roster", "sign", "add.json", "--key", "stranger.key", "--chain", "chain.json", "--out", "o.json", "--yes"],
    );
    run.fails(3);
    assert_eq!(read(dir.join("add.json")), before);
    assert_eq!(listing(dir), files, "no file may be written or left behind");

    // Nor can it sign a genesis that does not name it.
    init(dir, "other-mou", "g2.json");
    let before = read(dir.join("g2.json"));
    admin(dir, &["roster", "sign", "g2.json", "--key", "stranger.key", "--yes"]).fails(3);
    assert_eq!(read(dir.join("g2.json")), before);
}

#[test]
fn an_issuer_key_used_as_a_steward_key_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "add.json");
    let before = read(dir.join("add.json"));
    let run = admin(dir, &["roster", "sign", "add.json", "--key", "i.key", "--chain", "chain.json", "--yes"]);
    let err = run.fails(2);
    assert!(err.contains("issuer") && err.contains("steward"), "{err}");
    assert_eq!(read(dir.join("add.json")), before);
    // As a steward named in an agreement, too.
    let run = admin(
        dir,
        &[
            "agreement",
            "init",
            "--id",
            "x-mou",
            "--title",
            "X",
            "--steward",
            "i.key",
            "--threshold",
            "1",
            "--moves",
            "rotation",
            "--accepts",
            "dbs",
            "--lawful-basis",
            "b",
            "--out",
            "x.json",
        ],
    );
    run.fails(2);
    assert!(!dir.join("x.json").exists());
}

#[test]
fn a_truncated_change_file_is_a_one_line_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "add.json");
    let full = read(dir.join("add.json"));
    std::fs::write(dir.join("cut.json"), &full[..full.len() / 2]).unwrap();
    for args in [
        &["roster", "sign", "cut.json", "--key", "a.key", "--chain", "chain.json", "--yes"][..],
        &["roster", "show", "cut.json"][..],
        &["roster", "append", "chain.json", "cut.json"][..],
        &["roster", "verify", "cut.json"][..],
    ] {
        let run = admin(dir, args);
        assert!(run.fails(2).contains("truncated"), "{args:?}: {}", run.stderr);
    }
    // A chain file that is not a chain at all.
    std::fs::write(dir.join("nonsense.json"), "{\"hello\": 1}").unwrap();
    admin(dir, &["roster", "verify", "nonsense.json"]).fails(2);
}

#[test]
fn a_change_for_another_agreement_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    // Another agreement with the same stewards, and a change proposed on it.
    init(dir, "other-mou", "other.json");
    admin(dir, &["roster", "sign", "other.json", "--key", "a.key", "--yes"]).ok();
    admin(dir, &["roster", "sign", "other.json", "--key", "b.key", "--yes"]).ok();
    admin(dir, &["roster", "propose", "remove", "--chain", "other.json", "--out", "x.json", "--org", "RJZ"]).fails(3);
    let issuer = public(dir, "i.key");
    admin(
        dir,
        &[
            "roster",
            "propose",
            "add-member",
            "--chain",
            "other.json",
            "--out",
            "x.json",
            "--org",
            "RJZ",
            "--name",
            "King's",
            "--issuer-key",
            &issuer,
        ],
    )
    .ok();
    let before = read(dir.join("x.json"));
    let run = admin(dir, &["roster", "sign", "x.json", "--key", "a.key", "--chain", "chain.json", "--yes"]);
    let err = run.fails(3);
    assert!(err.contains("another agreement") && err.contains("other-mou"), "{err}");
    assert_eq!(read(dir.join("x.json")), before);
    admin(dir, &["roster", "sign", "x.json", "--key", "b.key", "--chain", "other.json", "--yes"]).ok();
    admin(dir, &["roster", "sign", "x.json", "--key", "c.key", "--chain", "other.json", "--yes"]).ok();
    let run = admin(dir, &["roster", "append", "chain.json", "x.json"]);
    assert!(run.fails(3).contains("another agreement"), "{}", run.stderr);
}

#[test]
fn a_change_that_no_longer_extends_the_head_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "first.json");
    propose_add(dir, "second.json");
    for k in ["a.key", "b.key"] {
        admin(dir, &["roster", "sign", "first.json", "--key", k, "--chain", "chain.json", "--yes"]).ok();
    }
    admin(dir, &["roster", "append", "chain.json", "first.json"]).ok();
    let before = read(dir.join("second.json"));
    let run = admin(dir, &["roster", "sign", "second.json", "--key", "a.key", "--chain", "chain.json", "--yes"]);
    assert!(run.fails(3).contains("does not extend the chain"), "{}", run.stderr);
    assert_eq!(read(dir.join("second.json")), before);
    // Without a chain, only a genesis can be signed.
    let run = admin(dir, &["roster", "sign", "second.json", "--key", "a.key", "--yes"]);
    assert!(run.fails(2).contains("--chain"), "{}", run.stderr);
}

#[test]
fn without_a_terminal_signing_needs_yes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keys(dir);
    init(dir, "london-mou", "g.json");
    let before = read(dir.join("g.json"));
    let run = admin(dir, &["roster", "sign", "g.json", "--key", "a.key"]);
    assert!(run.fails(2).contains("--yes"), "{}", run.stderr);
    assert_eq!(read(dir.join("g.json")), before);
}

#[test]
fn a_tampered_signed_change_does_not_verify() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "add.json");
    for k in ["a.key", "b.key"] {
        admin(dir, &["roster", "sign", "add.json", "--key", k, "--chain", "chain.json", "--yes"]).ok();
    }
    let text = String::from_utf8(read(dir.join("add.json"))).unwrap();
    let tampered = text.replace("King's College Hospital NHS FT", "Someone Else");
    assert_ne!(text, tampered);
    std::fs::write(dir.join("add.json"), tampered).unwrap();
    let show = admin(dir, &["roster", "show", "add.json"]);
    assert!(show.ok().contains("DOES NOT VERIFY"), "{}", show.stdout);
    admin(dir, &["roster", "append", "chain.json", "add.json"]).fails(3);
    admin(dir, &["roster", "sign", "add.json", "--key", "c.key", "--chain", "chain.json", "--yes"]).fails(3);
}

#[test]
fn every_proposal_kind_is_checked_and_applies() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    admin(dir, &["key", "gen", "--kind", "issuer", "--out", "i2.key"]).ok();
    admin(dir, &["key", "gen", "--kind", "steward", "--out", "d.key"]).ok();
    let i1 = public(dir, "i.key");
    let i2 = public(dir, "i2.key");
    propose_add(dir, "p.json");
    let apply = |name: &str| {
        for k in ["a.key", "b.key"] {
            admin(dir, &["roster", "sign", name, "--key", k, "--chain", "chain.json", "--yes"]).ok();
        }
        admin(dir, &["roster", "append", "chain.json", name]).ok();
    };
    apply("p.json");
    let proposals: Vec<Vec<&str>> = vec![
        vec![
            "update-member",
            "--org",
            "RJZ",
            "--name",
            "King's College Hospital",
            "--address",
            "/ip4/10.0.0.1/tcp/7400",
        ],
        vec!["rotate-key", "--org", "RJZ", "--add", &i2, "--retire", &i1],
        vec!["suspend", "--org", "RJZ", "--reason", "audit overdue"],
        vec!["reinstate", "--org", "RJZ"],
        vec!["set-terms", "--moves", "rotation,emergency-deployment"],
        vec!["resign", "--valid-for", "120d"],
        vec!["set-stewards", "--steward", "a.key", "--steward", "b.key", "--steward", "d.key", "--threshold", "2"],
        vec!["revoke-key", "--org", "RJZ", "--key", &i1, "--since", "2026-01-01T00:00:00Z"],
        vec!["remove", "--org", "RJZ"],
    ];
    for (i, p) in proposals.iter().enumerate() {
        let name = format!("c{i}.json");
        let mut args = vec!["roster", "propose", p[0], "--chain", "chain.json", "--out", &name];
        args.extend(&p[1..]);
        let run = admin(dir, &args);
        run.ok();
        let shown = admin(dir, &["roster", "show", "--json", &name]).json();
        assert_eq!(shown["change"], p[0], "{shown}");
        apply(&name);
    }
    let chain = Chain::from_entries(entries(dir.join("chain.json"))).unwrap();
    assert_eq!(chain.seq(), 1 + proposals.len() as u64);
    let st = chain.state();
    assert_eq!(st.members.values().next().unwrap().status.to_string(), "removed");
    assert_eq!(st.members.values().next().unwrap().keys.len(), 2);
    // A proposal the rules refuse is not written.
    let run =
        admin(dir, &["roster", "propose", "reinstate", "--chain", "chain.json", "--out", "no.json", "--org", "RJZ"]);
    run.fails(3);
    assert!(!dir.join("no.json").exists());
}

#[test]
fn stewards_propose_and_sign_a_resolution_of_an_equivocation() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    // Two different re-signs at seq 1, each signed by a and b.
    for (name, span) in [("x.json", "100d"), ("y.json", "110d")] {
        admin(dir, &["roster", "propose", "resign", "--chain", "chain.json", "--out", name, "--valid-for", span]).ok();
        for k in ["a.key", "b.key"] {
            admin(dir, &["roster", "sign", name, "--key", k, "--chain", "chain.json", "--yes"]).ok();
        }
    }
    let (x, y) = (entries(dir.join("x.json")).remove(0), entries(dir.join("y.json")).remove(0));
    admin(dir, &["roster", "append", "chain.json", "x.json"]).ok();
    // The evidence as a halted node reports it; the stewards choose y.
    let eq = roster::Equivocation { seq: 1, existing: x.clone(), conflicting: y.clone() };
    std::fs::write(dir.join("evidence.json"), serde_json::to_vec(&eq).unwrap()).unwrap();
    let chosen = y.hash().to_string();
    let args = ["roster", "propose", "resolve", "--chain", "chain.json", "--evidence", "evidence.json"];
    let mut wrong = args.to_vec();
    let other = staffpass_protocol::Hash::of(b"neither").to_string();
    wrong.extend(["--chosen", &other, "--out", "bad.json"]);
    admin(dir, &wrong).fails(2);
    assert!(!dir.join("bad.json").exists());
    let mut ok = args.to_vec();
    ok.extend(["--chosen", &chosen, "--out", "r.json"]);
    admin(dir, &ok).ok();
    for k in ["a.key", "c.key"] {
        let sign = ["roster", "sign", "r.json", "--key", k, "--chain", "chain.json", "--evidence", "evidence.json"];
        admin(dir, &[&sign[..], &["--yes"]].concat()).ok();
    }
    let r = entries(dir.join("r.json")).remove(0);
    // A node halted by x and y applies it and keeps y.
    let mut chain = Chain::from_entries(entries(dir.join("chain.json"))).unwrap();
    assert!(chain.append(y.clone()).is_err());
    assert!(chain.halted().is_some());
    assert_eq!(chain.append(r), Ok(roster::Appended::Applied));
    assert!(chain.halted().is_none());
    assert_eq!(chain.hash_at(1), Some(y.hash()));
}

#[test]
fn read_commands_print_json() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir);
    propose_add(dir, "add.json");
    let chain = admin(dir, &["roster", "show", "--json", "chain.json"]).json();
    assert_eq!(chain["kind"], "chain");
    assert_eq!(chain["verified"], true);
    assert_eq!(chain["state"]["agreement"], "london-mou");
    let change = admin(dir, &["roster", "show", "--json", "add.json"]).json();
    assert_eq!(change["kind"], "change");
    assert_eq!(change["seq"], 1);
    // The entry in the JSON round-trips to the file's entry.
    let e: Entry = serde_json::from_value(change["entry"].clone()).unwrap();
    assert_eq!(e, entries(dir.join("add.json"))[0]);
    assert_eq!(admin(dir, &["roster", "verify", "--json", "chain.json"]).json()["valid"], true);
    assert_eq!(admin(dir, &["key", "show", "--json", "a.key"]).json()["kind"], "steward");
    // Human output says the same things.
    let text = admin(dir, &["roster", "show", "chain.json"]);
    assert!(text.ok().contains("london-mou") && text.stdout.contains("Verified"), "{}", text.stdout);
}

#[test]
fn completions_and_man_page_render() {
    let d = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let run = admin(d.path(), &["completions", shell]);
        assert!(run.ok().contains("roster"), "{shell}");
    }
    assert!(admin(d.path(), &["man"]).ok().contains(".TH"));
    admin(d.path(), &["man", "--out-dir", "man"]).ok();
    assert!(d.path().join("man/staffpass-admin-roster-sign.1").exists());
}

/// Runs `staffpass-admin args` on a pseudo-terminal (via util-linux
/// `script`), typing `input`; `None` if `script` is not installed.
fn on_terminal(dir: &Path, args: &str, input: &str) -> Option<(i32, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("script")
        .args(["-qec", &format!("{} {args}", crate::common::BIN), "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[test]
fn on_a_terminal_signing_shows_the_change_and_asks() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keys(dir);
    init(dir, "london-mou", "g.json");
    let before = read(dir.join("g.json"));
    let Some((code, screen)) = on_terminal(dir, "roster sign g.json --key a.key", "n\n") else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("create agreement \"London MOU\"") && screen.contains("[y/N]"), "{screen}");
    assert_eq!(read(dir.join("g.json")), before, "declined: nothing written");
    let (code, screen) = on_terminal(dir, "roster sign g.json --key a.key", "y\n").unwrap();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("1 of 2 needed"), "{screen}");
    assert_eq!(entries(dir.join("g.json"))[0].signatures.len(), 1);
}
