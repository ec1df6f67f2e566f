//! The one retry policy for every store request (backup, restore, maintenance, DR).
//!
//! - What is retried: an outage ([`StorageError::is_outage`]): no connection, a timeout, a reset
//!   or a truncated body, a 5xx, and throttling (`503 SlowDown`, `429`). An answer about the data
//!   (403, 404, a lock refusal, content that does not match its address) fails at once.
//! - How: exponential backoff (100 ms doubling to 10 s) with full jitter, for as long as the
//!   patience lasts (10 minutes by default; `K10_STORE_PATIENCE`, e.g. `30s`, `15m`, `1h`),
//!   counted per request from its first attempt.
//! - Under throttling the client backs off as a whole: the number of requests in flight is cut in
//!   half (at most once a second) and grows back by one per window of successes (AIMD), so a busy
//!   store sees fewer requests, not the same number retried.
//!
//! Every store request counts in [`Retry::stats`], which reports how many attempts were retried.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::storage::Result;

/// The environment variable that sets the patience.
pub const ENV_PATIENCE: &str = "K10_STORE_PATIENCE";
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(600);
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Requests in flight at most; throttling lowers the bound, successes raise it back.
const MAX_IN_FLIGHT: usize = 32;

/// Counts for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Attempts sent (each retry is one more).
    pub attempts: u64,
    /// Attempts that failed with an outage and were tried again.
    pub retries: u64,
    /// Of those, the store's throttling answers.
    pub throttled: u64,
    /// The current bound on requests in flight.
    pub in_flight_limit: usize,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} store requests, {} retried", self.attempts, self.retries)?;
        if self.throttled > 0 {
            write!(f, " ({} throttled)", self.throttled)?;
        }
        Ok(())
    }
}

/// Every retry policy of this process together (for a command's closing note).
static PROCESS: Counters = Counters::new();

#[derive(Debug)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }
}

/// What every store of this process sent and retried so far.
pub fn process_stats() -> Stats {
    Stats {
        attempts: PROCESS.attempts.load(Ordering::Relaxed),
        retries: PROCESS.retries.load(Ordering::Relaxed),
        throttled: PROCESS.throttled.load(Ordering::Relaxed),
        in_flight_limit: 0,
    }
}

#[derive(Debug)]
pub struct Retry {
    patience: Duration,
    slots: Semaphore,
    window: Mutex<Window>,
    attempts: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

#[derive(Debug)]
struct Window {
    limit: usize,
    /// Permits to take out of circulation as they come back (after a cut).
    deficit: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry::new(patience_from_env())
    }
}

impl Retry {
    pub fn new(patience: Duration) -> Retry {
        Retry {
            patience,
            slots: Semaphore::new(MAX_IN_FLIGHT),
            window: Mutex::new(Window {
                limit: MAX_IN_FLIGHT,
                deficit: 0,
                successes: 0,
                last_cut: None,
            }),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    pub fn patience(&self) -> Duration {
        self.patience
    }

    pub fn stats(&self) -> Stats {
        Stats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            in_flight_limit: self.window.lock().unwrap().limit,
        }
    }

    /// Runs `attempt` until it succeeds, fails with an answer about the data, or the patience
    /// runs out (then the last error says how long it was tried).
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut delay = FIRST_DELAY;
        let mut tries = 0u32;
        loop {
            let slot = self.slots.acquire().await.expect("the semaphore is never closed");
            self.attempts.fetch_add(1, Ordering::Relaxed);
            PROCESS.attempts.fetch_add(1, Ordering::Relaxed);
            tries += 1;
            let result = attempt().await;
            self.release(slot);
            let err = match result {
                Ok(value) => {
                    self.succeeded();
                    return Ok(value);
                }
                Err(e) if !e.is_outage() => return Err(e),
                Err(e) => e,
            };
            if err.is_throttled() {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                PROCESS.throttled.fetch_add(1, Ordering::Relaxed);
                self.cut();
            }
            let pause = jitter(delay);
            if start.elapsed() + pause > self.patience {
                return Err(err.gave_up(tries, start.elapsed()));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            PROCESS.retries.fetch_add(1, Ordering::Relaxed);
            // A blip is retried quietly; a store that keeps failing is worth a line each time.
            if tries >= 3 {
                tracing::warn!("store request failed {tries} times, trying again in {pause:?} (patience {:?}): {err}", self.patience);
            } else {
                tracing::debug!("retrying in {pause:?}: {err}");
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    fn release(&self, slot: SemaphorePermit<'_>) {
        let mut w = self.window.lock().unwrap();
        if w.deficit > 0 {
            w.deficit -= 1;
            slot.forget();
        }
    }

    /// Halves the requests in flight (once a second at most: one burst of throttling is one signal).
    fn cut(&self) {
        let mut w = self.window.lock().unwrap();
        if w.last_cut.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        let target = (w.limit / 2).max(1);
        w.deficit += w.limit - target;
        w.limit = target;
        w.successes = 0;
        w.last_cut = Some(Instant::now());
    }

    /// One more request in flight after a window of successes as large as the bound.
    fn succeeded(&self) {
        let mut w = self.window.lock().unwrap();
        if w.limit >= MAX_IN_FLIGHT {
            return;
        }
        w.successes += 1;
        if w.successes >= w.limit {
            w.successes = 0;
            w.limit += 1;
            if w.deficit > 0 {
                w.deficit -= 1;
            } else {
                self.slots.add_permits(1);
            }
        }
    }
}

/// A random pause in [delay/2, delay]: spreads the retries of many clients apart.
fn jitter(delay: Duration) -> Duration {
    let r = getrandom::u64().unwrap_or(0) % 1000;
    delay / 2 + delay.mul_f64(r as f64 / 2000.0)
}

/// The patience from `K10_STORE_PATIENCE` (`90s`, `15m`, `1h`, or plain seconds), else 10 minutes.
pub fn patience_from_env() -> Duration {
    std::env::var(ENV_PATIENCE)
        .ok()
        .and_then(|v| parse_duration(&v))
        .unwrap_or(DEFAULT_PATIENCE)
}

pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectstore::storage::StorageError;
    use std::sync::atomic::AtomicU32;

    fn outage(throttled: bool) -> StorageError {
        StorageError::Unavailable {
            op: "read",
            key: "k".into(),
            store: "s".into(),
            reason: "HTTP 503".into(),
            throttled,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outages_are_retried_until_they_heal() {
        let retry = Retry::new(Duration::from_secs(60));
        let calls = AtomicU32::new(0);
        let value = retry
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(outage(true)),
                    2 => Err(outage(false)),
                    _ => Ok(7),
                }
            })
            .await
            .unwrap();
        assert_eq!(value, 7);
        let stats = retry.stats();
        assert_eq!((stats.attempts, stats.retries, stats.throttled), (4, 3, 2));
        assert_eq!(stats.in_flight_limit, MAX_IN_FLIGHT / 2, "throttling halved the requests in flight once");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_about_the_data_fail_at_once() {
        let retry = Retry::new(Duration::from_secs(60));
        let calls = AtomicU32::new(0);
        let err = retry
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(StorageError::NotFound {
                    key: "k".into(),
                    store: "s".into(),
                })
            })
            .await
            .unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out_with_a_message_that_says_so() {
        let retry = Retry::new(Duration::from_secs(30));
        let start = tokio::time::Instant::now();
        let err = retry.run(|| async { Err::<(), _>(outage(false)) }).await.unwrap_err();
        let waited = start.elapsed();
        assert!(waited <= Duration::from_secs(30) && waited >= Duration::from_secs(10), "{waited:?}");
        let text = err.to_string();
        assert!(err.is_outage() && text.contains("gave up after") && text.contains("attempts"), "{text}");
    }

    #[test]
    fn the_bound_on_requests_in_flight_is_halved_and_grows_back() {
        let retry = Retry::new(Duration::from_secs(1));
        retry.cut();
        assert_eq!(retry.stats().in_flight_limit, 16);
        retry.cut();
        assert_eq!(retry.stats().in_flight_limit, 16, "one cut per second");
        for _ in 0..16 {
            retry.succeeded();
        }
        assert_eq!(retry.stats().in_flight_limit, 17);
    }

    #[test]
    fn patience_is_read_in_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
