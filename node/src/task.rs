//! The one way blocking work leaves the async runtime.
//!
//! Every store commit waits for an fsync, which must not stall the
//! runtime's workers (the network, the API and, in benchmarks and tests,
//! other nodes in the same process share them); commits that arrive
//! together on the blocking pool share one group flush. The services are
//! synchronous; their async callers (API handlers, workers, the inbound
//! exchange handler, roster sync) reach them through [`blocking`].

/// The blocking task did not finish: it panicked, or the runtime is
/// shutting down. Nothing after it was acted on.
#[derive(Debug, thiserror::Error)]
#[error("the operation did not complete: {0}")]
pub struct Interrupted(pub String);

/// Runs `f` with `service` on the blocking pool.
pub async fn blocking<S, T, F>(service: &S, f: F) -> Result<T, Interrupted>
where
    S: Clone + Send + 'static,
    T: Send + 'static,
    F: FnOnce(&S) -> T + Send + 'static,
{
    let service = service.clone();
    run(move || f(&service)).await
}

/// Runs `f` on the blocking pool (work that needs no service, such as
/// parsing a large import).
pub async fn run<T, F>(f: F) -> Result<T, Interrupted>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| Interrupted(e.to_string()))
}

/// Runs `f` every `period` (the first time at once; a late tick delays the
/// next) until `stop` turns true or `f` returns `false`.
pub async fn every<F, Fut>(period: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !f().await {
            return;
        }
    }
}
