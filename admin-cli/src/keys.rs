//! `key gen` and `key show`, and reading keys given as files or as public
//! key text. Secret keys are only ever written to new 0600 files; nothing
//! here prints one.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use staffpass_protocol::keys;
use staffpass_protocol::{
    IssuerPublicKey, IssuerSecretKey, StaffPublicKey, StaffSecretKey, StewardPublicKey, StewardSecretKey,
};

use crate::error::{Error, Result};
use crate::files;
use crate::output::{self, Fields, Format};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new key and write it to a new file (mode 0600).
    ///
    /// The file is created, never replaced: if it exists, nothing is
    /// written. Prints the public half, to give to whoever needs it (for a
    /// steward key: the other stewards, who name it in `agreement init` or
    /// `roster propose set-stewards`).
    Gen {
        /// What the key is for.
        #[arg(long, value_enum)]
        kind: KeyKind,
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show the public half of a key file, as type-prefixed hex.
    ///
    /// Never prints the secret.
    Show {
        /// The key file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// The kinds of key `key gen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// An agreement steward's key: signs roster changes, kept offline.
    Steward,
    /// An organisation's issuer key: signs passports (normally made by
    /// `staffpass-node init`).
    Issuer,
    /// A staff member's own key: co-signs their consents.
    Staff,
}

impl KeyKind {
    fn from_prefix(prefix: &str) -> Option<(KeyKind, bool)> {
        Some(match prefix {
            "steward-sk" => (KeyKind::Steward, true),
            "steward-pk" => (KeyKind::Steward, false),
            "issuer-sk" => (KeyKind::Issuer, true),
            "issuer-pk" => (KeyKind::Issuer, false),
            "staff-sk" => (KeyKind::Staff, true),
            "staff-pk" => (KeyKind::Staff, false),
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::Steward => "steward",
            KeyKind::Issuer => "issuer",
            KeyKind::Staff => "staff",
        }
    }
}

#[derive(Serialize)]
struct KeyInfo<'a> {
    kind: KeyKind,
    public_key: String,
    file: &'a Path,
    secret: bool,
}

/// Runs a key command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Gen { kind, out } => {
            let mut rng = rand::rng();
            let (text, public) = match kind {
                KeyKind::Steward => {
                    let k = StewardSecretKey::generate(&mut rng);
                    (k.to_secret_text(), k.public().to_string())
                }
                KeyKind::Issuer => {
                    let k = IssuerSecretKey::generate(&mut rng);
                    (k.to_secret_text(), k.public().to_string())
                }
                KeyKind::Staff => {
                    let k = StaffSecretKey::generate(&mut rng);
                    (k.to_secret_text(), k.public().to_string())
                }
            };
            files::create_secret(&out, text.as_bytes())?;
            let info = KeyInfo { kind, public_key: public, file: &out, secret: true };
            if format.is_json() {
                return output::json(&info);
            }
            output::line(format!("Wrote a new {} key to {} (mode 0600).", kind.name(), out.display()))?;
            output::line(format!("Public key: {}", info.public_key))?;
            if kind == KeyKind::Steward {
                output::line("Keep the file offline; give the public key to the other stewards.")?;
            }
            Ok(())
        }
        Command::Show { file } => {
            let text = files::read_secret(&file)?;
            let not_a_key = || Error::BadValue {
                what: "key file",
                input: file.display().to_string(),
                reason: "does not hold a staffpass key (a line like steward-sk:<64 hex digits>)".into(),
            };
            let prefix = text.trim().split_once(':').map(|(p, _)| p).ok_or_else(not_a_key)?;
            let (kind, secret) = KeyKind::from_prefix(prefix).ok_or_else(not_a_key)?;
            let origin = file.display().to_string();
            let public = match (kind, secret) {
                (KeyKind::Steward, true) => Steward::public_of(&Steward::secret(&text, &origin)?),
                (KeyKind::Issuer, true) => Issuer::public_of(&Issuer::secret(&text, &origin)?),
                (KeyKind::Staff, true) => Staff::public_of(&Staff::secret(&text, &origin)?),
                (KeyKind::Steward, false) => Steward::public(&text, &origin)?.to_string(),
                (KeyKind::Issuer, false) => Issuer::public(&text, &origin)?.to_string(),
                (KeyKind::Staff, false) => Staff::public(&text, &origin)?.to_string(),
            };
            if secret && files::too_open(&file) {
                output::note(format!(
                    "warning: {} can be read by other users; run `chmod 600 {}`",
                    file.display(),
                    file.display()
                ));
            }
            let info = KeyInfo { kind, public_key: public, file: &file, secret };
            if format.is_json() {
                return output::json(&info);
            }
            Fields::new()
                .add("kind", kind.name())
                .add("holds", if secret { "secret key (not shown)" } else { "public key only" })
                .add("public key", &info.public_key)
                .print()
        }
    }
}

/// A role's key types, for reading keys given as files or text.
pub trait Role {
    /// The public key.
    type Public: std::str::FromStr<Err = keys::Error> + std::fmt::Display;
    /// The secret key.
    type Secret;
    /// The role's name.
    const NAME: &'static str;
    /// What to do when another kind of key is given.
    const HINT: &'static str;
    /// The secret key from its text.
    fn parse_secret(text: &str) -> Result<Self::Secret, keys::Error>;
    /// The public half.
    fn public_key(s: &Self::Secret) -> Self::Public;

    /// Reads a secret key from its text, naming `origin` on error.
    fn secret(text: &str, origin: &str) -> Result<Self::Secret> {
        Self::parse_secret(text).map_err(|source| Error::Key { origin: origin.into(), source, hint: Self::HINT })
    }

    /// Reads a public key from its text, naming `origin` on error.
    fn public(text: &str, origin: &str) -> Result<Self::Public> {
        text.trim().parse().map_err(|source| Error::Key { origin: origin.into(), source, hint: Self::HINT })
    }

    /// The public half, as text.
    fn public_of(s: &Self::Secret) -> String {
        Self::public_key(s).to_string()
    }

    /// Reads a secret key file.
    fn load_secret(path: &Path) -> Result<Self::Secret> {
        let text = files::read_secret(path)?;
        Self::secret(&text, &path.display().to_string())
    }

    /// A public key given as `<kind>-pk:<hex>` text, or as a file holding
    /// the public or the secret key.
    fn public_arg(arg: &str) -> Result<Self::Public> {
        let looks_like_key = arg.split_once(':').is_some_and(|(p, _)| p.ends_with("-pk") || p.ends_with("-sk"));
        if looks_like_key && !Path::new(arg).exists() {
            if arg.split_once(':').is_some_and(|(p, _)| p.ends_with("-sk")) {
                return Err(Error::BadValue {
                    what: "key",
                    input: format!("{}-sk:…", arg.split('-').next().unwrap_or("")),
                    reason: "never put a secret key on the command line; give its file instead".into(),
                });
            }
            return Self::public(arg, "key argument");
        }
        let path = Path::new(arg);
        let text = files::read_secret(path)?;
        let is_secret = text.trim().split_once(':').is_some_and(|(p, _)| p.ends_with("-sk"));
        if is_secret { Ok(Self::public_key(&Self::secret(&text, arg)?)) } else { Self::public(&text, arg) }
    }
}

/// Steward keys.
pub struct Steward;
/// Issuer keys.
pub struct Issuer;
/// Staff keys.
pub struct Staff;

impl Role for Steward {
    type Public = StewardPublicKey;
    type Secret = StewardSecretKey;
    const NAME: &'static str = "steward";
    const HINT: &'static str = " (use a steward key made with `staffpass-admin key gen --kind steward`)";
    fn parse_secret(text: &str) -> Result<Self::Secret, keys::Error> {
        StewardSecretKey::from_secret_text(text)
    }
    fn public_key(s: &Self::Secret) -> Self::Public {
        s.public()
    }
}

impl Role for Issuer {
    type Public = IssuerPublicKey;
    type Secret = IssuerSecretKey;
    const NAME: &'static str = "issuer";
    const HINT: &'static str = " (an organisation's issuer key: `staffpass-admin node status` shows its node's)";
    fn parse_secret(text: &str) -> Result<Self::Secret, keys::Error> {
        IssuerSecretKey::from_secret_text(text)
    }
    fn public_key(s: &Self::Secret) -> Self::Public {
        s.public()
    }
}

impl Role for Staff {
    type Public = StaffPublicKey;
    type Secret = StaffSecretKey;
    const NAME: &'static str = "staff";
    const HINT: &'static str = " (use the staff member's key, made with `staffpass-admin key gen --kind staff`)";
    fn parse_secret(text: &str) -> Result<Self::Secret, keys::Error> {
        StaffSecretKey::from_secret_text(text)
    }
    fn public_key(s: &Self::Secret) -> Self::Public {
        s.public()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_args_from_text_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let sk = StewardSecretKey::generate(&mut rand::rng());
        let p = dir.path().join("s.key");
        files::create_secret(&p, sk.to_secret_text().as_bytes()).unwrap();
        let from_file = Steward::public_arg(p.to_str().unwrap()).unwrap();
        assert_eq!(from_file, sk.public());
        assert_eq!(Steward::public_arg(&sk.public().to_string()).unwrap(), sk.public());
        let wrong = Issuer::public_arg(&sk.public().to_string()).unwrap_err();
        assert!(matches!(wrong, Error::Key { source: keys::Error::WrongKind { .. }, .. }), "{wrong}");
        let secret_text = sk.to_secret_text();
        let e = Steward::public_arg(secret_text.trim()).unwrap_err().to_string();
        assert!(!e.contains(&secret_text.trim()[12..]), "{e}");
    }
}
