//! `--help` of every command, snapshotted so any change to the interface
//! shows up in review (update with `INSTA_UPDATE=always cargo test -p
//! staffpass-admin --test it help::`, then read the diff).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use crate::common::admin;

/// Every command path, from the top.
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut p = prefix.clone();
        p.push(sub.get_name().to_owned());
        paths(sub, p, out);
    }
}

#[test]
fn help_of_every_command_is_as_reviewed() {
    let mut all = Vec::new();
    paths(&staffpass_admin::cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 40, "only {} commands found", all.len());
    let dir = tempfile::tempdir().unwrap();
    for p in &all {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("--help");
        let run = admin(dir.path(), &args);
        let name = if p.is_empty() { "staffpass-admin".to_owned() } else { p.join("-") };
        assert_eq!(run.code, 0, "{name} --help failed: {}", run.stderr);
        insta::assert_snapshot!(name, run.stdout);
    }
}

#[test]
fn short_help_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = admin(dir.path(), &["-h"]);
    assert!(run.ok().contains("roster"));
    let run = admin(dir.path(), &["roster", "sign"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = admin(dir.path(), &["roster", "frobnicate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = admin(dir.path(), &["agreement", "init", "--id", "Bad Id"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("agreement id"), "{}", run.stderr);
}
