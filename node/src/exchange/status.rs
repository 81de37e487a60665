//! This trust's Token Status List: an entry for every credential exported
//! in standard form (an SD-JWT VC names it in `status`), marked when the
//! credential is revoked, superseded by a re-issue or erased, published as
//! a `statuslist+jwt` signed by the issuer key (`protocol::statuslist`).
//!
//! Kept in the credentials tree beside the credentials, in clear (an index
//! and a random credential id say nothing about a person):
//! `si/<credential id>` its index, `sb/<index, 8 bytes big-endian>` a
//! marked entry, `sn` the next index. An entry is allocated, and marked, under the home lock, in
//! the commit of the export, revocation, re-issue or erasure that needs
//! it, so a marking never misses an index being handed out.

use staffpass_protocol::CredentialId;
use staffpass_protocol::sdjwt::StatusRef;
use staffpass_protocol::statuslist::{self, ListToken, StatusList};

use super::{Error, Exchange, decode};
use crate::store::{Batch, Tree};
use staffpass_protocol::encoding;

const INDEX: &[u8] = b"si/";
const MARKED: &[u8] = b"sb/";
const NEXT: &[u8] = b"sn";

/// The fewest entries a published list has, so that a short list does not
/// tell how few credentials there are (each is one bit: 1 KiB).
pub const MIN_ENTRIES: u64 = 8192;
/// How long a verifier may cache the list, in seconds (`ttl`).
pub const TTL_SECS: u64 = 300;
/// How long a list token is valid, in seconds (`exp` - `iat`).
pub const VALID_SECS: i64 = 24 * 3600;

fn index_key(id: &CredentialId) -> Vec<u8> {
    let mut k = INDEX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn marked_key(idx: u64) -> Vec<u8> {
    let mut k = MARKED.to_vec();
    k.extend_from_slice(&idx.to_be_bytes());
    k
}

fn read_u64(v: &[u8], what: &'static str) -> Result<u64, Error> {
    decode(v, what)
}

impl Exchange {
    /// The URL of this trust's status list (`sub` of the list, `uri` in
    /// every credential's `status`).
    pub fn status_list_uri(&self) -> String {
        format!("{}/statuslists/1", self.issuer_url())
    }

    /// The status entry of credential `id`, if it has one.
    pub(super) fn status_index(&self, id: &CredentialId) -> Result<Option<u64>, Error> {
        self.0.store.get(Tree::Credentials, &index_key(id))?.map(|v| read_u64(&v, "status list index")).transpose()
    }

    /// The status entry of credential `id`, allocated into `batch` if it
    /// has none. Call with the home lock held, and commit before letting
    /// it go.
    pub(super) fn status_entry_into(&self, id: &CredentialId, batch: &mut Batch) -> Result<StatusRef, Error> {
        let uri = self.status_list_uri();
        if let Some(idx) = self.status_index(id)? {
            return Ok(StatusRef { idx, uri });
        }
        let idx = match self.0.store.get(Tree::Credentials, NEXT)? {
            Some(v) => read_u64(&v, "status list next index")?,
            None => 0,
        };
        if idx >= statuslist::MAX_ENTRIES {
            return Err(Error::Conflict("the status list is full".into()));
        }
        batch.put(Tree::Credentials, NEXT.to_vec(), encoding::to_bytes(&(idx + 1)));
        batch.put(Tree::Credentials, index_key(id), encoding::to_bytes(&idx));
        Ok(StatusRef { idx, uri })
    }

    /// Marks the entries of `ids` (those that have one) into `batch`; with
    /// `forget`, their index keys go too (the credential is deleted).
    /// Call with the home lock held.
    pub(super) fn status_mark_into<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a CredentialId>,
        forget: bool,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        for id in ids {
            if let Some(idx) = self.status_index(id)? {
                batch.put(Tree::Credentials, marked_key(idx), Vec::new());
                if forget {
                    batch.delete(Tree::Credentials, index_key(id));
                }
            }
        }
        Ok(())
    }

    /// The status list as it stands.
    pub fn status_list(&self) -> Result<StatusList, Error> {
        let next = match self.0.store.get(Tree::Credentials, NEXT)? {
            Some(v) => read_u64(&v, "status list next index")?,
            None => 0,
        };
        let mut list = StatusList::new(next.max(MIN_ENTRIES));
        for (k, _) in self.0.store.scan_prefix(Tree::Credentials, MARKED)? {
            match <[u8; 8]>::try_from(&k[MARKED.len()..]) {
                Ok(b) => list.set(u64::from_be_bytes(b)),
                // Only written by `status_mark_into`: a key of another length is damage.
                Err(_) => tracing::warn!(len = k.len(), "a status list entry key is not 8 bytes; skipped"),
            }
        }
        Ok(list)
    }

    /// The status list as a `statuslist+jwt` signed with the issuer key,
    /// valid for a day.
    pub fn status_list_token(&self) -> Result<String, Error> {
        let list = self.status_list()?;
        let now = self.now();
        let uri = self.status_list_uri();
        Ok(statuslist::issue(
            &self.0.issuer,
            &ListToken { uri: &uri, iat: now, exp: now.plus_secs(VALID_SECS), ttl: TTL_SECS, list: &list },
        ))
    }
}
