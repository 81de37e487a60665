//! The HTTPS accept loop of the local API.
//!
//! [`serve`] accepts TCP connections, runs the TLS handshake (rustls,
//! client certificate required) under a timeout, reads the [`Caller`](super::Caller) from
//! the verified client certificate, and serves the axum router over
//! HTTP/1.1 or HTTP/2 with that caller in every request's extensions.
//! Connections are bounded by a semaphore; shutdown stops accepting at once
//! and lets in-flight requests finish within a grace period.
//!
//! The router gets the API's standard layers here: the default body limit
//! ([`DEFAULT_BODY_LIMIT`], raise it per route with
//! `axum::extract::DefaultBodyLimit::max`) and [`json_errors`], so every
//! error has the JSON shape of [`super::error`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::Instrument;

use super::auth::caller_from_certs;
use super::error::json_errors;

/// Longest to spend closing a refused connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Default largest request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Tunables of [`serve_with`]. [`Default`] gives the values in the field docs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Longest a TLS handshake may take. Default 10 s.
    pub handshake_timeout: Duration,
    /// Most connections served at once; further clients wait in the listen
    /// backlog. Default 256.
    pub max_connections: usize,
    /// Largest request body for routes that do not set their own
    /// `DefaultBodyLimit`. Default [`DEFAULT_BODY_LIMIT`].
    pub body_limit: usize,
    /// Longest to wait for in-flight requests after shutdown is asked for;
    /// connections still open then are cut. Default 10 s.
    pub shutdown_grace: Duration,
    /// Longest an HTTP/1 client may take to send request headers. Default 30 s.
    pub header_read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            body_limit: DEFAULT_BODY_LIMIT,
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's address could not be read.
    #[error("cannot read the API listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// `max_connections` is zero.
    #[error("max_connections must be at least 1")]
    NoConnections,
}

/// Serves `router` over HTTPS on `listener` with [`Options::default`] until
/// `shutdown` completes. See [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_with(listener, tls, router, shutdown, Options::default()).await
}

/// Serves `router` over HTTPS on `listener` until `shutdown` completes.
///
/// `tls` must require client certificates (see [`crate::tls::server_config`]);
/// a connection whose certificate does not name a valid role is closed
/// after the handshake. Returns once the listener is closed and every
/// connection has finished or the grace period has passed.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: Options,
) -> Result<(), Error> {
    if options.max_connections == 0 {
        return Err(Error::NoConnections);
    }
    let local = listener.local_addr().map_err(Error::LocalAddr)?;
    let router = router.layer(axum::middleware::from_fn(json_errors)).layer(DefaultBodyLimit::max(options.body_limit));
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let options = Arc::new(options);
    tracing::info!(addr = %local, "API listening");

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a permit before accepting, so a full server leaves new
        // clients in the backlog instead of accepting and dropping them.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed; nothing left to serve with
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            acceptor.clone(),
            tcp,
            peer,
            router.clone(),
            options.clone(),
            stop_rx.clone(),
            permit,
        ));
    }

    drop(listener);
    tracing::info!(addr = %local, open = connections.len(), "API shutting down");
    // No receiver left just means no connection is open.
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.shutdown_grace, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace = ?options.shutdown_grace,
            "API connections still open after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    tracing::info!(addr = %local, "API stopped");
    Ok(())
}

/// Errors from `accept` are about one connection (reset before accept) or
/// about the process (out of file descriptors); back off briefly on the
/// latter so the loop does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        tracing::debug!(error = %e, "API accept failed");
    } else {
        tracing::warn!(error = %e, "API accept failed; retrying in 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: Arc<Options>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let handshake = tokio::select! {
        h = tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)) => h,
        () = stopped(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "API TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, timeout = ?options.handshake_timeout, "API TLS handshake timed out");
            return;
        }
    };
    let caller = match caller_from_certs(stream.get_ref().1.peer_certificates()) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "API client certificate refused; closing the connection");
            // Close the TLS session cleanly (close_notify), briefly: the
            // client then sees the connection closed, not a reset.
            let mut stream = stream;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
            return;
        }
    };

    let span = tracing::info_span!("api_connection", %peer, caller = %caller.name, role = %caller.role);
    async move {
        tracing::debug!("API connection open");
        let service = router.map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(caller.clone());
            request
        });
        let service = TowerToHyperService::new(service);
        let mut builder = auto::Builder::new(SpanExecutor(tracing::Span::current()));
        builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        match result {
            Ok(()) => tracing::debug!("API connection closed"),
            Err(e) => tracing::debug!(error = %e, "API connection ended with an error"),
        }
    }
    .instrument(span)
    .await;
}

/// Completes when shutdown is asked for (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is gone too.
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs hyper's HTTP/2 stream tasks inside the connection's span.
#[derive(Clone)]
struct SpanExecutor(tracing::Span);

impl<F> hyper::rt::Executor<F> for SpanExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future.instrument(self.0.clone()));
    }
}
