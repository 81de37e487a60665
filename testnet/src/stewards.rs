//! The agreement stewards, working offline with `staffpass-admin`: each
//! steward has a key file; genesis and every change are written to files,
//! signed one steward at a time (`roster sign --key`), appended to the
//! stewards' copy of the chain, and submitted to member nodes (`roster
//! submit`). Exactly the flow of the admin CLI's README.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::net::{Node, Testnet};
use crate::topology::{AGREEMENTS, Agreement};

/// Runs `staffpass-admin`.
#[derive(Debug, Clone)]
pub struct Admin {
    bin: PathBuf,
}

/// What a finished admin command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Admin {
    /// The admin CLI at `bin`.
    pub fn new(bin: &Path) -> Self {
        Admin { bin: bin.to_path_buf() }
    }

    /// Runs it with `args`, whatever the exit code.
    pub async fn output(&self, args: &[String]) -> Result<Output> {
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs it with `args`; an error unless it exits 0.
    pub async fn run(&self, args: &[String]) -> Result<String> {
        let out = self.output(args).await?;
        if out.code != 0 {
            bail!(
                "staffpass-admin {} failed (exit {}): {}",
                args.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
                out.code,
                out.stderr.trim()
            );
        }
        Ok(out.stdout)
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn p(v: &Path) -> String {
    v.display().to_string()
}

/// One agreement's stewards and their copy of the chain.
#[derive(Debug, Clone)]
pub struct Stewardship {
    /// The agreement.
    pub agreement: &'static Agreement,
    /// Steward key files.
    pub keys: Vec<PathBuf>,
    /// The stewards' copy of the chain.
    pub chain: PathBuf,
    /// Where change files go.
    pub dir: PathBuf,
    /// Changes made so far (for file names).
    pub changes: usize,
}

/// Every agreement's stewards.
#[derive(Debug)]
pub struct Stewards {
    /// The admin CLI.
    pub admin: Admin,
    /// By agreement id.
    pub by_agreement: BTreeMap<&'static str, Stewardship>,
}

impl Stewards {
    /// Creates steward keys and a signed genesis for each agreement in `root/stewards`.
    pub async fn create(admin: Admin, root: &Path) -> Result<Self> {
        let mut by_agreement = BTreeMap::new();
        for a in AGREEMENTS {
            let st = Stewardship::create(&admin, a, &root.join("stewards").join(a.id)).await?;
            by_agreement.insert(a.id, st);
        }
        Ok(Stewards { admin, by_agreement })
    }

    /// The stewardship of `agreement`.
    pub fn of(&mut self, agreement: &str) -> Result<&mut Stewardship> {
        self.by_agreement.get_mut(agreement).ok_or_else(|| anyhow!("no stewards for {agreement}"))
    }

    /// Proposes `change` (the `roster propose` subcommand and its flags) for
    /// `agreement`, has `signers` stewards sign it (default: the threshold),
    /// and returns the change file. Does not append it to the chain.
    pub async fn propose(&mut self, agreement: &str, change: &[String], signers: Option<usize>) -> Result<PathBuf> {
        let admin = self.admin.clone();
        self.of(agreement)?.propose(&admin, change, signers).await
    }

    /// Appends a fully signed change to the stewards' copy of the chain.
    pub async fn append(&mut self, agreement: &str, change: &Path) -> Result<()> {
        let admin = self.admin.clone();
        let chain = self.of(agreement)?.chain.clone();
        admin.run(&[s("roster"), s("append"), p(&chain), p(change)]).await?;
        Ok(())
    }

    /// Proposes, signs, appends and submits a change to `via` in one go.
    pub async fn change(&mut self, agreement: &str, change: &[String], via: &Node) -> Result<PathBuf> {
        let file = self.propose(agreement, change, None).await?;
        self.append(agreement, &file).await?;
        submit(&self.admin, &file, via).await?;
        Ok(file)
    }

    /// Adds every member of every agreement (as one steward proposal each,
    /// signed by the threshold), then each trust's admin submits each
    /// chain to their own node.
    pub async fn enrol_members(&mut self, net: &Testnet) -> Result<()> {
        for a in AGREEMENTS {
            for org in a.members {
                let n = net.node(org)?;
                let change = vec![
                    s("add-member"),
                    s("--org"),
                    s(org),
                    s("--name"),
                    s(n.trust.name),
                    s("--issuer-key"),
                    n.issuer_key.clone(),
                    s("--node"),
                    n.peer_id.clone(),
                    s("--address"),
                    n.p2p.clone(),
                ];
                let file = self.propose(a.id, &change, None).await?;
                self.append(a.id, &file).await?;
            }
            let chain = self.of(a.id)?.chain.clone();
            self.admin.run(&[s("roster"), s("verify"), p(&chain)]).await?;
            for org in a.members {
                submit(&self.admin, &chain, net.node(org)?).await?;
            }
        }
        Ok(())
    }
}

/// `roster submit FILE` to `node`.
pub async fn submit(admin: &Admin, file: &Path, node: &Node) -> Result<String> {
    let mut args = vec![s("roster"), s("submit"), p(file)];
    args.extend(node.admin_args());
    admin.run(&args).await.with_context(|| format!("submitting {} to {}", file.display(), node.org()))
}

impl Stewardship {
    async fn create(admin: &Admin, a: &'static Agreement, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut keys = Vec::new();
        for i in 1..=a.stewards {
            let key = dir.join(format!("steward-{i}.key"));
            admin.run(&[s("key"), s("gen"), s("--kind"), s("steward"), s("--out"), p(&key)]).await?;
            keys.push(key);
        }
        let chain = dir.join("chain.json");
        let mut args = vec![
            s("agreement"),
            s("init"),
            s("--id"),
            s(a.id),
            s("--title"),
            s(a.title),
            s("--threshold"),
            a.threshold.to_string(),
            s("--moves"),
            s(a.moves),
            s("--accepts"),
            s(a.accepts),
            s("--lawful-basis"),
            s("UK GDPR Art. 6(1)(b) and 9(2)(b); staff-movement agreement"),
            s("--valid-for"),
            s("90d"),
            s("--out"),
            p(&chain),
        ];
        for k in &keys {
            args.push(s("--steward"));
            args.push(p(k));
        }
        admin.run(&args).await?;
        for k in keys.iter().take(a.threshold) {
            admin.run(&[s("roster"), s("sign"), p(&chain), s("--key"), p(k), s("--yes")]).await?;
        }
        Ok(Stewardship { agreement: a, keys, chain, dir: dir.to_path_buf(), changes: 0 })
    }

    async fn propose(&mut self, admin: &Admin, change: &[String], signers: Option<usize>) -> Result<PathBuf> {
        self.changes += 1;
        let kind = change.first().cloned().unwrap_or_default();
        let file = self.dir.join(format!("change-{:03}-{kind}.json", self.changes));
        let mut args = vec![s("roster"), s("propose")];
        args.extend(change.iter().take(1).cloned());
        args.extend([s("--chain"), p(&self.chain), s("--out"), p(&file)]);
        args.extend(change.iter().skip(1).cloned());
        admin.run(&args).await?;
        // Different stewards sign different changes: rotate who signs first.
        let n = self.keys.len();
        let want = signers.unwrap_or(self.agreement.threshold);
        for i in 0..want {
            let key = &self.keys[(self.changes + i) % n];
            admin
                .run(&[s("roster"), s("sign"), p(&file), s("--key"), p(key), s("--chain"), p(&self.chain), s("--yes")])
                .await?;
        }
        Ok(file)
    }
}
