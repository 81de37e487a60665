//! The HTTPS accept loop of the local API.
//!
//! [`serve`] accepts TCP connections, runs the TLS handshake (rustls,
//! client certificate required) under a timeout, reads the [`Caller`](super::Caller) from
//! the verified client certificate, and serves the axum router over
//! HTTP/1.1 or HTTP/2 with that caller in every request's extensions.
//! Shutdown stops accepting at once and lets in-flight requests finish
//! within a grace period.
//!
//! Against clients that hold connections without using them (slowloris):
//! connections are capped in total and per IP address, and when a cap is
//! reached a new connection takes the place of the oldest one still in its
//! TLS handshake (an honest client finishes its handshake in milliseconds,
//! so it is the stalled ones that go). When every connection is past its
//! handshake, a new client waits in the listen backlog for a free place
//! (total cap) or is refused (per-IP cap). The handshake has a short
//! timeout, a served connection with no request in flight is closed after
//! an idle timeout, and HTTP/2 clients are pinged (keep-alive). Every
//! refusal is counted in `staffpass_api_connections_refused_total{reason}`
//! and its log line is rate-limited.
//!
//! The router gets the API's standard layers here: the default body limit
//! ([`DEFAULT_BODY_LIMIT`], raise it per route with
//! `axum::extract::DefaultBodyLimit::max`) and [`json_errors`], so every
//! error has the JSON shape of [`super::error`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::Instrument;

use super::auth::caller_from_certs;
use super::error::json_errors;
use crate::limits::LogLimiter;
use crate::metrics::ReasonLabel;

/// At most one log line per kind of refused connection in this period.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Longest to spend closing a refused connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Default largest request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Tunables of [`serve_with`]. [`Default`] gives the values in the field docs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Longest a TLS handshake may take. Default 3 s.
    pub handshake_timeout: Duration,
    /// Most connections open at once, handshaking or served. When full, a
    /// new connection takes the place of the oldest one still in its
    /// handshake, or is refused if there is none. Default 256.
    pub max_connections: usize,
    /// Most connections open at once from one IP address, with the same
    /// rule. Default 32.
    pub max_connections_per_ip: usize,
    /// A served connection with no request in flight for this long is
    /// closed. Default 120 s.
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings, and how long to wait for the
    /// answer before closing. Default 30 s.
    pub http2_keep_alive: Duration,
    /// Where refused and evicted connections are counted, by reason
    /// (`per-ip`, `evicted`, `handshake-timeout`, `idle`).
    /// Default: a family registered nowhere.
    pub refused: Family<ReasonLabel, Counter>,
    /// Largest request body for routes that do not set their own
    /// `DefaultBodyLimit`. Default [`DEFAULT_BODY_LIMIT`].
    pub body_limit: usize,
    /// Longest to wait for in-flight requests after shutdown is asked for;
    /// connections still open then are cut. Default 10 s.
    pub shutdown_grace: Duration,
    /// Longest an HTTP/1 client may take to send request headers. Default 30 s.
    pub header_read_timeout: Duration,
    /// Serve anyone: no client certificate is read and requests carry no
    /// [`Caller`](super::Caller). Only for a router that needs none (the
    /// public listener, [`super::public`]), with a `tls` that asks for no
    /// client certificate. Default false.
    pub public: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            handshake_timeout: Duration::from_secs(3),
            max_connections: 256,
            max_connections_per_ip: 32,
            idle_timeout: Duration::from_secs(120),
            http2_keep_alive: Duration::from_secs(30),
            refused: Family::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            public: false,
        }
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's address could not be read.
    #[error("cannot read the API listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// `max_connections` or `max_connections_per_ip` is zero.
    #[error("max_connections and max_connections_per_ip must be at least 1")]
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
    if options.max_connections == 0 || options.max_connections_per_ip == 0 {
        return Err(Error::NoConnections);
    }
    let local = listener.local_addr().map_err(Error::LocalAddr)?;
    let router = router.layer(axum::middleware::from_fn(json_errors)).layer(DefaultBodyLimit::max(options.body_limit));
    let acceptor = TlsAcceptor::from(tls);
    let admission = Arc::new(Admission::new(options.max_connections, options.max_connections_per_ip));
    let log = Arc::new(LogLimiter::new(REFUSAL_LOG_EVERY));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let options = Arc::new(options);
    tracing::info!(addr = %local, "API listening");

    let mut shutdown = std::pin::pin!(shutdown);
    'accept: loop {
        // Full of served connections: leave new clients in the backlog
        // until one ends, instead of accepting and dropping them.
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = admission.room() => {}
        }
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
        let admitted = loop {
            match admission.admit(peer.ip()) {
                Ok(a) => break a,
                // The last handshake completed since the loop looked: this
                // client waits (unread) for a free place like the backlog.
                Err(Refusal::Full) => tokio::select! {
                    biased;
                    () = &mut shutdown => break 'accept,
                    () = admission.room() => {}
                },
                Err(Refusal::PerIp) => {
                    // Dropping the socket closes it at once.
                    drop(tcp);
                    refused(&options, &log, "per-ip", &peer);
                    continue 'accept;
                }
            }
        };
        for _ in 0..admitted.evicted {
            refused(&options, &log, "evicted", &peer);
        }
        connections.spawn(connection(
            acceptor.clone(),
            tcp,
            peer,
            router.clone(),
            options.clone(),
            stop_rx.clone(),
            admitted,
            log.clone(),
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

/// Counts a refused (or evicted) connection and logs it, rate-limited.
fn refused(options: &Options, log: &LogLimiter, reason: &'static str, peer: &SocketAddr) {
    options.refused.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    if let Some(suppressed) = log.should_log(reason) {
        tracing::warn!(%peer, reason, suppressed, "API connection refused or closed before serving");
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its IP address has `max_connections_per_ip` connections past their handshake.
    PerIp,
    /// The server has `max_connections` connections past their handshake
    /// (the client then waits for a free place).
    Full,
}

/// Counts the open connections, in total and per IP address, and knows
/// which are still in their TLS handshake (oldest first) so that one can
/// be evicted for a newcomer.
struct Admission {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<AdmissionState>,
    /// Woken whenever a connection is uncounted.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct AdmissionState {
    next_id: u64,
    /// Every counted connection, by id.
    open: HashMap<u64, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections still in their handshake, by id (ids only grow, so the
    /// first is the oldest), each with the means to stop it.
    handshaking: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
}

impl AdmissionState {
    fn release(&mut self, id: u64) {
        self.handshaking.remove(&id);
        if let Some(ip) = self.open.remove(&id)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Stops and uncounts the oldest handshake matching `which`.
    fn evict_oldest(&mut self, which: impl Fn(&IpAddr) -> bool) -> bool {
        let Some(id) = self.handshaking.iter().find(|(_, (ip, _))| which(ip)).map(|(id, _)| *id) else {
            return false;
        };
        if let Some((_, stop)) = self.handshaking.remove(&id) {
            // The connection may have ended meanwhile; nothing to stop then.
            let _ = stop.send(());
        }
        self.release(id);
        true
    }
}

/// A counted connection: uncounted when dropped.
struct Admitted {
    admission: Arc<Admission>,
    id: u64,
    /// Fires if the connection is evicted during its handshake.
    evict: oneshot::Receiver<()>,
    /// How many handshakes were evicted to make room for it.
    evicted: usize,
}

impl Admission {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Admission { max_total, max_per_ip, state: Mutex::new(AdmissionState::default()), freed: Default::default() }
    }

    /// Completes once a new connection can be counted: there is room, or a
    /// handshake to evict.
    async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            {
                let st = self.lock();
                if st.open.len() < self.max_total || !st.handshaking.is_empty() {
                    return;
                }
            }
            freed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip`, evicting the oldest handshake of
    /// that IP (then of anyone) if a cap is reached; refuses it if there is
    /// no handshake to evict.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let ip = ip.to_canonical();
        let mut st = self.lock();
        let mut evicted = 0;
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            if !st.evict_oldest(|i| *i == ip) {
                return Err(Refusal::PerIp);
            }
            evicted += 1;
        }
        if st.open.len() >= self.max_total {
            if !st.evict_oldest(|_| true) {
                return Err(Refusal::Full);
            }
            evicted += 1;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.open.insert(id, ip);
        *st.per_ip.entry(ip).or_default() += 1;
        let (tx, evict) = oneshot::channel();
        st.handshaking.insert(id, (ip, tx));
        Ok(Admitted { admission: self.clone(), id, evict, evicted })
    }
}

impl Admitted {
    /// The handshake is done: the connection can no longer be evicted.
    fn established(&self) {
        self.admission.lock().handshaking.remove(&self.id);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.lock().release(self.id);
        self.admission.freed.notify_waiters();
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<tokio::time::Instant>,
}

/// One request in flight; marks the connection active until dropped.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity { in_flight: AtomicUsize::new(0), last: Mutex::new(tokio::time::Instant::now()) })
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn last(&self) -> tokio::time::Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if no request is in flight and none ended within `idle`.
    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.last().elapsed() >= idle
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[allow(clippy::too_many_arguments)] // one accepted connection and everything it is served with
async fn connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: Arc<Options>,
    mut stop: watch::Receiver<bool>,
    mut admitted: Admitted,
    log: Arc<LogLimiter>,
) {
    let handshake = tokio::select! {
        h = tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)) => h,
        // Evicted for a newer connection (counted by the accept loop).
        Ok(()) = &mut admitted.evict => return,
        () = stopped(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            if log.should_log("handshake-refused").is_some() {
                tracing::info!(%peer, error = %e, "API TLS handshake refused");
            }
            return;
        }
        Err(_) => {
            refused(&options, &log, "handshake-timeout", &peer);
            return;
        }
    };
    admitted.established();
    let caller = if options.public {
        None
    } else {
        match caller_from_certs(stream.get_ref().1.peer_certificates()) {
            Ok(caller) => Some(caller),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "API client certificate refused; closing the connection");
                // Close the TLS session cleanly (close_notify), briefly: the
                // client then sees the connection closed, not a reset.
                let mut stream = stream;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
                return;
            }
        }
    };

    let span = match &caller {
        Some(c) => tracing::info_span!("api_connection", %peer, caller = %c.name, role = %c.role),
        None => tracing::info_span!("public_connection", %peer),
    };
    async move {
        tracing::debug!("API connection open");
        let activity = Activity::new();
        let in_flight = activity.clone();
        let service = router
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                if let Some(caller) = &caller {
                    request.extensions_mut().insert(caller.clone());
                }
                request
            })
            .map_future(move |response| {
                let guard = in_flight.start();
                async move {
                    let response = response.await;
                    drop(guard);
                    response
                }
            });
        let service = TowerToHyperService::new(service);
        let mut builder = auto::Builder::new(SpanExecutor(tracing::Span::current()));
        builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(options.http2_keep_alive)
            .keep_alive_timeout(options.http2_keep_alive);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let idle = options.idle_timeout;
        let result = loop {
            // While a request is in flight, look again an idle period later.
            let wake = if activity.in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::Instant::now() + idle
            } else {
                activity.last() + idle
            };
            tokio::select! {
                result = conn.as_mut() => break result,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    break conn.as_mut().await;
                }
                () = tokio::time::sleep_until(wake) => {
                    if activity.is_idle(idle) {
                        refused(&options, &log, "idle", &peer);
                        conn.as_mut().graceful_shutdown();
                        break conn.as_mut().await;
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_newcomer_evicts_the_oldest_handshake_of_its_ip() {
        let a = Arc::new(Admission::new(8, 2));
        let mut first = a.admit(ip(1)).unwrap();
        let _second = a.admit(ip(1)).unwrap();
        let third = a.admit(ip(1)).unwrap();
        assert_eq!(third.evicted, 1);
        assert_eq!(first.evict.try_recv(), Ok(()), "the oldest handshake was told to stop");
        let other = a.admit(ip(2)).unwrap();
        assert_eq!(other.evicted, 0, "another IP has places of its own");
        assert_eq!(a.lock().open.len(), 3);
        drop(first);
        assert_eq!(a.lock().open.len(), 3, "an evicted connection is uncounted once");
    }

    #[test]
    fn established_connections_are_never_evicted() {
        let a = Arc::new(Admission::new(8, 2));
        let x = a.admit(ip(1)).unwrap();
        let y = a.admit(ip(1)).unwrap();
        x.established();
        y.established();
        assert!(matches!(a.admit(ip(1)), Err(Refusal::PerIp)));
        drop(x);
        assert!(a.admit(ip(1)).is_ok(), "a place is free again");
    }

    #[test]
    fn when_full_the_oldest_handshake_of_anyone_goes() {
        let a = Arc::new(Admission::new(2, 2));
        let x = a.admit(ip(1)).unwrap();
        x.established();
        let mut y = a.admit(ip(2)).unwrap();
        let z = a.admit(ip(3)).unwrap();
        assert_eq!(z.evicted, 1);
        assert_eq!(y.evict.try_recv(), Ok(()));
        z.established();
        assert!(matches!(a.admit(ip(4)), Err(Refusal::Full)));
    }
}
