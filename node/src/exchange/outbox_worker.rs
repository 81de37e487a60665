//! The outbox worker: the async half of the outbox. It asks the exchange
//! service what is due, sends each message over a [`Transport`] to the
//! receiver's nodes, and hands the response back to the service. Every
//! store read and commit runs through [`crate::task::blocking`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use staffpass_protocol::MessageId;
use tokio::sync::{Semaphore, watch};
use tracing::warn;

use super::outbox::Due;
use super::{Exchange, Transport};
use crate::task::blocking;

/// Most deliveries in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Longest wait between two looks at the outbox.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Runs the outbox until `stop`.
pub async fn run<T: Transport>(ex: Exchange, transport: T, mut stop: watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<HashSet<MessageId>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut owed = Vec::new();
    loop {
        let mut next_wake = MAX_WAIT;
        match blocking(&ex, |ex| ex.outbox_pending()).await {
            Ok(Ok(pending)) => {
                // Before anything is sent: the gate lets the owed in.
                if pending.owed != owed {
                    owed = pending.owed.clone();
                    transport.owe(pending.owed).await;
                }
                if let Some(next) = pending.next_ms {
                    let wait = u64::try_from(next - ex.now_ms()).unwrap_or_default();
                    next_wake = next_wake.min(Duration::from_millis(wait));
                }
                for due in pending.due {
                    {
                        let mut f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                        if !f.insert(due.item.id) {
                            continue;
                        }
                    }
                    let Ok(permit) = permits.clone().acquire_owned().await else { return };
                    let (ex, transport, in_flight) = (ex.clone(), transport.clone(), in_flight.clone());
                    tokio::spawn(async move {
                        let id = due.item.id;
                        deliver(&ex, &transport, due).await;
                        in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        drop(permit);
                        ex.wake_outbox();
                    });
                }
            }
            Ok(Err(e)) => warn!(error = %e, "cannot read the outbox"),
            Err(e) => warn!(error = %e, "cannot read the outbox"),
        }
        tokio::select! {
            _ = ex.outbox_changed() => {}
            _ = tokio::time::sleep(next_wake) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Delivers one message: to each of the receiver's nodes in turn until
/// one answers with a receipt the service accepts; otherwise schedules a
/// retry.
pub async fn deliver<T: Transport>(ex: &Exchange, transport: &T, due: Due) {
    let Ok(Some(delivery)) = blocking(ex, move |ex| ex.prepare(due)).await else { return };
    let mut last_error = Exchange::no_node_error(&delivery.due.item);
    for node in &delivery.nodes {
        match transport.exchange(node, delivery.request.clone()).await {
            Ok(resp) => {
                let due = delivery.due.clone();
                match blocking(ex, move |ex| ex.accept_receipt(&due, resp)).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(e) => last_error = format!("receipt handler failed: {e}"),
                }
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let due = delivery.due;
    if let Err(e) = blocking(ex, move |ex| ex.retry_later(&due, &last_error)).await {
        warn!(error = %e, "cannot record the retry");
    }
}
