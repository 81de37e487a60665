//! The one error type of `staffpass-admin`, and the exit code each error
//! gives. Every message is one line that says what was wrong and what to do.

use std::path::PathBuf;
use std::process::ExitCode;

use staffpass_api::ClientError;
use staffpass_protocol::roster;
use staffpass_protocol::{AgreementId, StewardPublicKey};

/// Exit codes, as documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: an error (a file could not be read or written, the node could
    /// not be reached, ...).
    Error = 1,
    /// 2: usage: the command line, or an input file or key file, is not
    /// what the command takes.
    Usage = 2,
    /// 3: a check failed or was refused: a roster that does not verify, a
    /// change that does not extend the chain, a key that is not a steward,
    /// a request the node refused.
    Refused = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// What a roster file is being read as, for messages.
pub type What = &'static str;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An output file exists and the command does not overwrite.
    #[error("{} already exists: choose another --out file, or move the old one away first", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file is too large to be what the command expects.
    #[error("{} is {len} bytes, more than the {max} a {what} can be", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
        /// What it should be.
        what: What,
    },
    /// A JSON file is not the expected shape (or is truncated).
    #[error("{} is not a readable {what}: {source}{hint}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: What,
        /// Why.
        source: serde_json::Error,
        /// What to do.
        hint: &'static str,
    },
    /// A key file or key text is not the right kind of key.
    #[error("{origin}: {source}{hint}")]
    Key {
        /// The file or argument.
        origin: String,
        /// Why.
        source: staffpass_protocol::keys::Error,
        /// What to do.
        hint: &'static str,
    },
    /// A value given on the command line is not usable.
    #[error("{what} {input:?}: {reason}")]
    BadValue {
        /// Which value.
        what: &'static str,
        /// What was given.
        input: String,
        /// Why, and what to give instead.
        reason: String,
    },
    /// A change cannot be checked without the chain it extends.
    #[error(
        "this change is entry {seq} of {agreement}: pass --chain with the roster it extends \
         (e.g. from `staffpass-admin roster fetch --agreement {agreement} --out CHAIN`)"
    )]
    NeedChain {
        /// The agreement.
        agreement: AgreementId,
        /// The change's seq.
        seq: u64,
    },
    /// A roster chain does not verify.
    #[error("{} does not verify at entry {seq}: {source}", path.display())]
    InvalidChain {
        /// The file.
        path: PathBuf,
        /// The first entry refused.
        seq: u64,
        /// Why.
        source: roster::Error,
    },
    /// A change is refused by the roster rules.
    #[error("{context}: {}", reason(source))]
    Roster {
        /// What was being done.
        context: String,
        /// Why.
        source: roster::Error,
    },
    /// A change does not extend the head of the chain.
    #[error(
        "the change does not extend the chain: it is entry {seq} after {prev}, but the chain's head is entry {head_seq} \
         ({head}); fetch the current roster and propose the change again"
    )]
    NotExtending {
        /// The change's seq.
        seq: u64,
        /// The change's prev hash (short).
        prev: String,
        /// The chain's head seq.
        head_seq: u64,
        /// The chain's head hash (short).
        head: String,
    },
    /// The signing key is not one of the agreement's stewards.
    #[error(
        "{steward} is not a steward of {agreement} (its stewards: {stewards}); nothing was signed. \
         Use your own steward key for this agreement"
    )]
    NotSteward {
        /// The key.
        steward: StewardPublicKey,
        /// The agreement.
        agreement: AgreementId,
        /// The stewards, short.
        stewards: String,
    },
    /// A fetched roster does not continue the local copy.
    #[error(
        "the node's roster for {agreement} does not continue your copy in {} (they differ at entry {seq}); \
         {} was left unchanged. Compare with another node before trusting either",
        path.display(), path.display()
    )]
    Fork {
        /// The agreement.
        agreement: AgreementId,
        /// The local file.
        path: PathBuf,
        /// The first differing seq.
        seq: u64,
    },
    /// The node's roster is shorter than the local copy.
    #[error(
        "the node holds {agreement} only up to entry {node_seq}, but {} has entry {local_seq}; it was left \
         unchanged. Fetch from an up-to-date node, or give this node your copy with `roster submit`",
        path.display()
    )]
    Behind {
        /// The agreement.
        agreement: AgreementId,
        /// The local file.
        path: PathBuf,
        /// The node's head seq.
        node_seq: u64,
        /// The local head seq.
        local_seq: u64,
    },
    /// Signing needs a confirmation that cannot be asked for.
    #[error("not signing: there is no terminal to confirm on. {check}, then sign with --yes")]
    NeedConfirmation {
        /// How to check what would be signed.
        check: String,
    },
    /// The user declined.
    #[error("not signed: nothing was written")]
    Declined,
    /// No node to talk to.
    #[error(
        "no client certificate for the node API: give --data-dir of your node (it holds tls/ca.pem, tls/admin.pem \
         and tls/admin.key), or --ca, --cert and --key (or STAFFPASS_CA, STAFFPASS_CERT, STAFFPASS_KEY), or --config"
    )]
    NoCredentials,
    /// The admin config file is not valid.
    #[error("config file {}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The node API client failed.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The node refused an import because rows were rejected.
    #[error("{message}")]
    ImportRejected {
        /// The node's message.
        message: String,
    },
    /// The node's audit log does not verify.
    #[error("the node's audit log is broken at entry {seq}: {why}")]
    AuditBroken {
        /// Where.
        seq: String,
        /// Why.
        why: String,
    },
    /// The node's answer could not be used.
    #[error("unexpected answer from the node: {0} (are staffpass-admin and staffpass-node the same version?)")]
    Answer(String),
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The client key pair or signing request could not be made.
    #[error("could not make the client key or certificate signing request: {0}")]
    CertRequest(#[source] rcgen::Error),
}

impl Error {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Json { .. }
            | Error::Key { .. }
            | Error::BadValue { .. }
            | Error::NeedChain { .. }
            | Error::NeedConfirmation { .. }
            | Error::NoCredentials
            | Error::Config { .. }
            | Error::TooLarge { .. } => Exit::Usage,
            Error::InvalidChain { .. }
            | Error::Roster { .. }
            | Error::NotExtending { .. }
            | Error::NotSteward { .. }
            | Error::Fork { .. }
            | Error::Behind { .. }
            | Error::ImportRejected { .. }
            | Error::AuditBroken { .. } => Exit::Refused,
            Error::Client(ClientError::Status { status, .. }) if status.is_client_error() && status.as_u16() != 404 => {
                Exit::Refused
            }
            Error::Client(ClientError::InvalidUrl { .. }) => Exit::Usage,
            Error::Read { .. }
            | Error::Write { .. }
            | Error::Exists { .. }
            | Error::Declined
            | Error::Client(_)
            | Error::Answer(_)
            | Error::Runtime(_)
            | Error::CertRequest(_)
            | Error::Output(_) => Exit::Error,
        }
    }

    /// The message as one line (no embedded newlines, whatever a source said).
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// A roster error with what was being done.
    pub fn roster(context: impl Into<String>, source: roster::Error) -> Self {
        Error::Roster { context: context.into(), source }
    }
}

/// A roster refusal without the "change refused:" prefix when a context
/// already says so.
fn reason(e: &roster::Error) -> String {
    match e {
        roster::Error::Invalid(c) => c.to_string(),
        other => other.to_string(),
    }
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::BadValue { what: "duration", input: "x\ny".into(), reason: "use e.g.\n90d".into() };
        assert!(!e.one_line().contains('\n'));
        assert_eq!(e.exit(), Exit::Usage);
    }
}
