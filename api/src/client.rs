//! A client for a node's local API, for `staffpass-admin`, the testnet and
//! the tests: one typed method per route.
//!
//! It speaks HTTPS with the node CA as its only trust anchor and presents a
//! client certificate issued by that CA; the certificate's role decides what
//! the node lets it do. Errors say what went wrong and what to do, and a
//! refusal by the node comes back as [`ClientError::Status`] with the API's
//! error code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::agreements::{AgreementView, EntriesQuery, OverrideRequest, Submission, Submitted};
use crate::audit::{self, AuditQuery, Verification};
use crate::consents::{ConsentRequest, ConsentView, StaffSignature};
use crate::credentials::{CredentialView, RevokeRequest};
use crate::data_dir::ClientFiles;
use crate::error::{ErrorBody, default_code};
use crate::outbox::OutboxItemView;
use crate::received::ReceivedView;
use crate::route::{self, path};
use crate::staff::{ImportFormat, ImportQuery, ImportReport, PageQuery, StaffInput, StaffRecord, StaffSummary};
use crate::status::{AgreementSummary, Peer, Status};
use crate::tls;
use staffpass_protocol::claims::Claim;
use staffpass_protocol::roster::Entry;
use staffpass_protocol::{AgreementId, ConsentId, CredentialId, Signature, StaffRef};

/// Default time allowed for one request, including its body.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to open the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a non-JSON error body quoted in [`ClientError::Status`].
const MAX_QUOTED_ERROR: usize = 300;

/// Errors of the API client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `https://` URL.
    #[error("{url:?} is not a usable node API address: {reason} (expected e.g. https://127.0.0.1:7443)")]
    InvalidUrl { url: String, reason: String },

    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The CA, certificate or key are not usable.
    #[error("the API client credentials are not usable: {source}")]
    Credentials {
        #[source]
        source: tls::Error,
    },

    /// The HTTP client could not be built.
    #[error("cannot set up the API client: {source}")]
    Build {
        #[source]
        source: reqwest::Error,
    },

    /// Nothing answered at the URL.
    #[error("cannot connect to the node at {url}: is staffpass-node running, and is this its API address? ({source})")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The TLS handshake failed or the node refused the certificate.
    #[error("TLS with the node at {url} failed: {reason}. {hint}")]
    Tls { url: String, reason: String, hint: &'static str },

    /// The node closed the connection without answering.
    #[error(
        "the node at {url} closed the connection without answering: it may be shutting down, or it refused \
         the client certificate (see the node's log)"
    )]
    Closed { url: String },

    /// The node did not answer in time.
    #[error("the node at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },

    /// The node answered with an error.
    #[error("the node refused {path}: {} {code}: {message}", status.as_u16())]
    Status { path: String, status: StatusCode, code: String, message: String, details: Option<serde_json::Value> },

    /// The node's answer is not what was expected.
    #[error(
        "unexpected answer from the node at {url}: {reason} (are staffpass-admin and staffpass-node the same version?)"
    )]
    Decode { url: String, reason: String },

    /// Any other failure of the request.
    #[error("request to the node at {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The API error code, if the node answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error's details, if the node gave any (e.g. an import report).
    pub fn details(&self) -> Option<&serde_json::Value> {
        match self {
            ClientError::Status { details, .. } => details.as_ref(),
            _ => None,
        }
    }

    /// The HTTP status, if the node answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for one node's API.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client for the node at `base_url` (e.g. `https://127.0.0.1:7443`),
    /// trusting the node CA `ca_pem`, presenting `cert_pem` with `key_pem`.
    pub fn new(base_url: &str, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ClientError> {
        let base = parse_base(base_url)?;
        let config =
            tls::client_config(ca_pem, cert_pem, key_pem).map_err(|source| ClientError::Credentials { source })?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("staffpass/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Build { source })?;
        Ok(Client { base, http, timeout: DEFAULT_TIMEOUT })
    }

    /// Like [`Client::from_files`], with the three files of `files`.
    pub fn from_client_files(base_url: &str, files: &ClientFiles) -> Result<Self, ClientError> {
        Self::from_files(base_url, &files.ca, &files.cert, &files.key)
    }

    /// Like [`Client::new`], reading the PEM files at the given paths.
    pub fn from_files(
        base_url: &str,
        ca_path: impl AsRef<Path>,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, ClientError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|source| ClientError::File { path: path.to_path_buf(), source })
        };
        let ca = read(ca_path.as_ref())?;
        let cert = read(cert_path.as_ref())?;
        let key = read(key_path.as_ref())?;
        Self::new(base_url, &ca, &cert, &key)
    }

    /// Sets the time allowed for each request (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The node's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ------------------------------------------------------------ probes

    /// `GET /healthz`: `ok` while the process serves.
    pub async fn healthz(&self) -> Result<String, ClientError> {
        self.get_text(route::HEALTHZ).await
    }

    /// `GET /readyz`: true once the node has finished starting.
    pub async fn ready(&self) -> Result<bool, ClientError> {
        match self.get_text(route::READYZ).await {
            Ok(text) => Ok(text.trim() == "ready"),
            Err(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /metrics`: the node's metrics as OpenMetrics text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.get_text(route::METRICS).await
    }

    /// `GET /v1/openapi.json`: the node's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get_json(route::OPENAPI).await
    }

    // ------------------------------------------------- status and rosters

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get_json(route::STATUS).await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<Peer>, ClientError> {
        self.get_json(route::PEERS).await
    }

    /// `GET /v1/agreements`.
    pub async fn agreements(&self) -> Result<Vec<AgreementSummary>, ClientError> {
        self.get_json(route::AGREEMENTS).await
    }

    /// `GET /v1/agreements/{id}`.
    pub async fn agreement(&self, id: &AgreementId) -> Result<AgreementView, ClientError> {
        self.get_json(&path(route::AGREEMENT, id)).await
    }

    /// `GET /v1/agreements/{id}/entries?from=`.
    pub async fn entries(&self, id: &AgreementId, query: EntriesQuery) -> Result<Vec<Entry>, ClientError> {
        self.get_query(&path(route::AGREEMENT_ENTRIES, id), &query).await
    }

    /// `POST /v1/agreements`: submits a chain (or the start of one).
    pub async fn submit_chain(&self, entries: &[Entry]) -> Result<Submitted, ClientError> {
        self.post_json(route::AGREEMENTS, entries).await
    }

    /// `POST /v1/agreements/{id}/entries`: submits entries of a chain held.
    pub async fn submit_entries(&self, id: &AgreementId, entries: &Submission) -> Result<Submitted, ClientError> {
        self.post_json(&path(route::AGREEMENT_ENTRIES, id), entries).await
    }

    /// `POST /v1/agreements/{id}/override`: ends an equivocation halt on
    /// this node, keeping the entry `chosen`.
    pub async fn override_halt(
        &self,
        id: &AgreementId,
        chosen: &OverrideRequest,
    ) -> Result<AgreementView, ClientError> {
        self.post_json(&path(route::AGREEMENT_OVERRIDE, id), chosen).await
    }

    // -------------------------------------------------------------- staff

    /// `GET /v1/staff?after=&limit=`.
    pub async fn staff_list(&self, query: &PageQuery) -> Result<Vec<StaffSummary>, ClientError> {
        self.get_query(route::STAFF, query).await
    }

    /// `POST /v1/staff/import?partial=`: imports a CSV export or a JSON array.
    pub async fn import_staff(
        &self,
        format: ImportFormat,
        body: impl Into<reqwest::Body>,
        query: ImportQuery,
    ) -> Result<ImportReport, ClientError> {
        let body = body.into();
        let response = self
            .send(Method::POST, route::STAFF_IMPORT, |r| {
                r.query(&query).header(reqwest::header::CONTENT_TYPE, format.content_type()).body(body)
            })
            .await?;
        decode(response).await
    }

    /// `GET /v1/staff/{ref}`.
    pub async fn staff(&self, staff: &StaffRef) -> Result<StaffRecord, ClientError> {
        self.get_json(&path(route::STAFF_MEMBER, staff)).await
    }

    /// `PUT /v1/staff/{ref}`.
    pub async fn put_staff(&self, staff: &StaffRef, input: &StaffInput) -> Result<StaffRecord, ClientError> {
        self.put_json(&path(route::STAFF_MEMBER, staff), input).await
    }

    /// `DELETE /v1/staff/{ref}`.
    pub async fn delete_staff(&self, staff: &StaffRef) -> Result<(), ClientError> {
        self.delete(&path(route::STAFF_MEMBER, staff)).await
    }

    /// `POST /v1/staff/{ref}/key` (admin): replaces or removes the registered key.
    pub async fn set_staff_key(
        &self,
        staff: &StaffRef,
        request: &crate::staff::StaffKeyRequest,
    ) -> Result<StaffRecord, ClientError> {
        self.post_json(&path(route::STAFF_KEY, staff), request).await
    }

    /// `POST /v1/staff/{ref}/key-change`: the staff member's own signed
    /// change of their registered key.
    pub async fn change_staff_key(
        &self,
        staff: &StaffRef,
        request: &crate::staff::StaffKeyChangeRequest,
    ) -> Result<StaffRecord, ClientError> {
        self.post_json(&path(route::STAFF_KEY_CHANGE, staff), request).await
    }

    /// `POST /v1/staff/{ref}/export`: the staff member's current
    /// credential in a standard form.
    pub async fn export_credential(
        &self,
        staff: &StaffRef,
        request: &crate::credentials::ExportRequest,
    ) -> Result<crate::credentials::ExportView, ClientError> {
        self.post_json(&path(route::STAFF_EXPORT, staff), request).await
    }

    /// `GET /v1/node/issuer-metadata`: the trust's JWT VC issuer metadata.
    pub async fn issuer_metadata(&self) -> Result<serde_json::Value, ClientError> {
        self.get_json(route::ISSUER_METADATA).await
    }

    /// `GET /v1/node/status-list`: the trust's Token Status List.
    pub async fn status_list(&self) -> Result<crate::credentials::StatusListView, ClientError> {
        self.get_json(route::STATUS_LIST).await
    }

    /// `POST /v1/staff/{ref}/claims`: records (or renews) one claim.
    pub async fn record_claim(&self, staff: &StaffRef, claim: &Claim) -> Result<StaffRecord, ClientError> {
        self.post_json(&path(route::STAFF_CLAIMS, staff), claim).await
    }

    /// `POST /v1/staff/{ref}/credentials`: issues a credential.
    pub async fn issue_credential(&self, staff: &StaffRef) -> Result<CredentialView, ClientError> {
        self.post_json(&path(route::STAFF_CREDENTIALS, staff), &serde_json::json!({})).await
    }

    /// `GET /v1/staff/{ref}/activity`: the staff member's audit entries.
    pub async fn activity(&self, staff: &StaffRef) -> Result<Vec<audit::Entry>, ClientError> {
        self.get_json(&path(route::STAFF_ACTIVITY, staff)).await
    }

    // -------------------------------------------------------- credentials

    /// `GET /v1/credentials/{id}`.
    pub async fn credential(&self, id: &CredentialId) -> Result<CredentialView, ClientError> {
        self.get_json(&path(route::CREDENTIAL, id)).await
    }

    /// `POST /v1/credentials/{id}/revoke`.
    pub async fn revoke_credential(
        &self,
        id: &CredentialId,
        request: &RevokeRequest,
    ) -> Result<CredentialView, ClientError> {
        self.post_json(&path(route::CREDENTIAL_REVOKE, id), request).await
    }

    /// `POST /v1/staff/{ref}/revoke`.
    pub async fn revoke_staff(
        &self,
        r: &StaffRef,
        request: &RevokeRequest,
    ) -> Result<Vec<CredentialView>, ClientError> {
        self.post_json(&path(route::STAFF_REVOKE, r), request).await
    }

    // ----------------------------------------------------------- consents

    /// `GET /v1/consents`.
    pub async fn consents(&self) -> Result<Vec<ConsentView>, ClientError> {
        self.get_json(route::CONSENTS).await
    }

    /// `POST /v1/consents`: records a consent and queues the offer.
    pub async fn grant_consent(&self, request: &ConsentRequest) -> Result<ConsentView, ClientError> {
        self.post_json(route::CONSENTS, request).await
    }

    /// `GET /v1/consents/{id}`.
    pub async fn consent(&self, id: &ConsentId) -> Result<ConsentView, ClientError> {
        self.get_json(&path(route::CONSENT, id)).await
    }

    /// `DELETE /v1/consents/{id}`: withdraws it.
    pub async fn withdraw_consent(&self, id: &ConsentId) -> Result<ConsentView, ClientError> {
        self.delete_json(&path(route::CONSENT, id)).await
    }

    /// `POST /v1/consents/{id}/staff-signature`.
    pub async fn sign_consent(&self, id: &ConsentId, signature: Signature) -> Result<ConsentView, ClientError> {
        self.post_json(&path(route::CONSENT_STAFF_SIGNATURE, id), &StaffSignature { signature }).await
    }

    // ----------------------------------------------------------- received

    /// `GET /v1/received`.
    pub async fn received(&self) -> Result<Vec<ReceivedView>, ClientError> {
        self.get_json(route::RECEIVED).await
    }

    /// `GET /v1/received/{id}` (by consent id), with claim values.
    pub async fn received_one(&self, id: &ConsentId) -> Result<ReceivedView, ClientError> {
        self.get_json(&path(route::RECEIVED_ONE, id)).await
    }

    /// `POST /v1/received/{id}/export`: a received passport in a standard form.
    pub async fn export_received(
        &self,
        id: &ConsentId,
        request: &crate::credentials::ReceivedExportRequest,
    ) -> Result<crate::credentials::ExportView, ClientError> {
        self.post_json(&path(route::RECEIVED_EXPORT, id), request).await
    }

    // ------------------------------------------------------ outbox, audit

    /// `GET /v1/outbox`.
    pub async fn outbox(&self) -> Result<Vec<OutboxItemView>, ClientError> {
        self.get_json(route::OUTBOX).await
    }

    /// `GET /v1/audit?since=&limit=`.
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<audit::Entry>, ClientError> {
        self.get_query(route::AUDIT, &query).await
    }

    /// `GET /v1/audit/verify`: a broken chain (409) is an answer too, not an error.
    pub async fn verify_audit(&self) -> Result<Verification, ClientError> {
        let response = self.send_accepting(Method::GET, route::AUDIT_VERIFY, |r| r, Some(StatusCode::CONFLICT)).await?;
        decode(response).await
    }

    /// `GET /v1/backup` (admin): a data backup of the node, to read with
    /// [`Download::chunk`]. The snapshot is taken before this returns; the
    /// client's timeout covers the whole download (see [`Client::with_timeout`]).
    pub async fn backup(&self) -> Result<Download, ClientError> {
        let response = self.send(Method::GET, route::BACKUP, |r| r).await?;
        Ok(Download { url: response.url().to_string(), len: response.content_length(), response })
    }

    // ---------------------------------------------------------- untyped
    //
    // The typed methods above are built on these. They stay public for
    // requests outside this API's routes (the server's own tests) and for
    // probing how the node answers a malformed request.

    /// `GET path?query`, decoding a JSON answer.
    async fn get_query<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let response = self.send(Method::GET, path, |r| r.query(query)).await?;
        decode(response).await
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(Method::GET, path, |r| r).await?;
        decode(response).await
    }

    /// `GET path`, returning the answer as text (e.g. Prometheus metrics).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let response = self.send(Method::GET, path, |r| r).await?;
        let url = response.url().to_string();
        response.text().await.map_err(|e| body_error(url, e))
    }

    /// `POST path` with a JSON body, decoding a JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let response = self.send(Method::POST, path, |r| r.json(body)).await?;
        decode(response).await
    }

    /// `PUT path` with a JSON body, decoding a JSON answer.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let response = self.send(Method::PUT, path, |r| r.json(body)).await?;
        decode(response).await
    }

    /// `DELETE path`; any answer body is ignored.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, path, |r| r).await.map(drop)
    }

    /// `DELETE path`, decoding a JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(Method::DELETE, path, |r| r).await?;
        decode(response).await
    }

    /// `POST path` with a raw body of `content_type` (e.g. a CSV import),
    /// decoding a JSON answer.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<T, ClientError> {
        let body = body.into();
        let response =
            self.send(Method::POST, path, |r| r.header(reqwest::header::CONTENT_TYPE, content_type).body(body)).await?;
        decode(response).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends a request and turns transport failures and error statuses into
    /// [`ClientError`]s.
    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_accepting(method, path, build, None).await
    }

    /// Like [`Client::send`], also passing through an answer of status `also_ok`.
    async fn send_accepting(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        also_ok: Option<StatusCode>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path);
        let request = build(self.http.request(method, &url).timeout(self.timeout));
        let response = request.send().await.map_err(|e| self.transport_error(&url, e))?;
        let status = response.status();
        if status.is_success() || also_ok == Some(status) {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let (code, message, details) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => (body.error.code, body.error.message, body.error.details),
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.trim().chars().take(MAX_QUOTED_ERROR).collect();
                let message =
                    if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
                (default_code(status).to_owned(), message, None)
            }
        };
        Err(ClientError::Status { path: path.to_owned(), status, code, message, details })
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> ClientError {
        let url = url.to_owned();
        if let Some(tls) = find_rustls_error(&e) {
            let (reason, hint) = describe_tls(tls);
            return ClientError::Tls { url, reason, hint };
        }
        if e.is_timeout() {
            return ClientError::Timeout { url, timeout: self.timeout };
        }
        if e.is_connect() {
            return ClientError::Connect { url, source: e };
        }
        let closed_early = find_in_chain::<hyper::Error>(&e).is_some_and(|h| h.is_incomplete_message())
            || find_in_chain::<std::io::Error>(&e).is_some_and(|io| {
                use std::io::ErrorKind::*;
                matches!(io.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
            });
        if closed_early {
            return ClientError::Closed { url };
        }
        ClientError::Request { url, source: e }
    }
}

/// A binary answer being received (a backup).
#[derive(Debug)]
pub struct Download {
    url: String,
    len: Option<u64>,
    response: reqwest::Response,
}

impl Download {
    /// Its length, if the node said.
    pub fn content_length(&self) -> Option<u64> {
        self.len
    }

    /// The next piece, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        match self.response.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            Err(e) => Err(body_error(self.url.clone(), e)),
        }
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let url = response.url().to_string();
    let bytes = response.bytes().await.map_err(|e| body_error(url.clone(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, reason: e.to_string() })
}

fn body_error(url: String, e: reqwest::Error) -> ClientError {
    if e.is_timeout() {
        ClientError::Decode { url, reason: "the answer did not arrive in time".to_owned() }
    } else {
        ClientError::Decode { url, reason: format!("cannot read the answer: {e}") }
    }
}

fn parse_base(base_url: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl { url: base_url.to_owned(), reason: reason.to_owned() };
    let url = reqwest::Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("the node API only speaks https"));
    }
    if url.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("no query or fragment allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Finds an error of type `E` in `err`'s source chain, looking inside
/// `io::Error`s too (their `source()` skips the wrapped error).
fn find_in_chain<'a, E: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(found) = find_in_chain::<E>(inner) {
                return Some(found);
            }
        }
        next = current.source();
    }
    None
}

fn find_rustls_error(err: &reqwest::Error) -> Option<&rustls::Error> {
    find_in_chain::<rustls::Error>(err)
}

const HINT_SERVER_CERT: &str = "Check that the CA file is this node's ca.pem and that the URL's host is one the \
     node's API certificate was made for (the names given at staffpass-node init)";
const HINT_CLIENT_CERT: &str = "The node did not accept the client certificate: use one issued by this node's CA \
     (admin.pem from staffpass-node init, or one issued since), not by another node";

fn describe_tls(e: &rustls::Error) -> (String, &'static str) {
    use rustls::AlertDescription as A;
    let hint = match e {
        rustls::Error::InvalidCertificate(_) => HINT_SERVER_CERT,
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied
            | A::DecryptError,
        ) => HINT_CLIENT_CERT,
        _ => "Check that the URL points at a staffpass node's API",
    };
    (e.to_string(), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(parse_base("https://127.0.0.1:7443/").unwrap(), "https://127.0.0.1:7443");
        assert_eq!(parse_base("https://node.example:7443/api").unwrap(), "https://node.example:7443/api");
        assert!(matches!(parse_base("http://127.0.0.1:7443"), Err(ClientError::InvalidUrl { .. })));
        assert!(matches!(parse_base("127.0.0.1:7443"), Err(ClientError::InvalidUrl { .. })));
    }
}
