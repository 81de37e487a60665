//! Time, handed to the services that need it: the wall clock in
//! production ([`SystemClock`]), a clock a test moves by hand in the
//! testkit (`testkit::ManualClock`). No service reads the system time
//! itself.

use staffpass_protocol::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The current time as a protocol timestamp (whole seconds).
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.now_ms().div_euclid(1000)).unwrap_or_default()
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// The wall clock as a protocol timestamp, for the edges that have no
/// service to ask (the command line, start-up, the API's parsing of dates).
pub fn now() -> Timestamp {
    SystemClock.now()
}
