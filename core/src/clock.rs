//! Time, injected so that key rotation can be tested without sleeping.

use std::fmt::Debug;
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Debug + Send + Sync {
    /// The current instant (UTC).
    fn now(&self) -> OffsetDateTime;

    /// The current instant as nanoseconds since the Unix epoch: what the hot
    /// path compares with the next refresh time, cheaper than [`Clock::now`].
    fn unix_nanos(&self) -> i128 {
        self.now().unix_timestamp_nanos()
    }

    /// Whether the current instant is at or after `deadline_unix_nanos`:
    /// what every `protect`/`unprotect` asks about the next refresh time.
    /// Implementations may answer from a cheaper source than
    /// [`Clock::unix_nanos`] as long as the answer is the same.
    fn has_reached(&self, deadline_unix_nanos: i128) -> bool {
        self.unix_nanos() >= deadline_unix_nanos
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn unix_nanos(&self) -> i128 {
        system_unix_nanos()
    }

    /// Reads the system clock only when a coarse reading says the deadline
    /// is less than `COARSE_MARGIN_NANOS` away: reading the clock is about
    /// 120 instructions, a tenth of the non-cryptographic cost of an
    /// `unprotect`, and the deadline is normally hours away.
    fn has_reached(&self, deadline_unix_nanos: i128) -> bool {
        let coarse = coarse_unix_nanos();
        if coarse != 0 && i128::from(coarse) + COARSE_MARGIN_NANOS < deadline_unix_nanos {
            return false;
        }
        system_unix_nanos() >= deadline_unix_nanos
    }
}

fn system_unix_nanos() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// How often the coarse clock is updated.
const COARSE_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// How far ahead of a deadline [`SystemClock::has_reached`] starts reading
/// the precise clock: ten ticks, so that a ticker delayed by a loaded
/// machine still never makes a refresh late.
const COARSE_MARGIN_NANOS: i128 = 1_000_000_000;

/// The system clock as Unix nanoseconds, at most [`COARSE_TICK`] old, kept by
/// one background thread per process; 0 until that thread has started (or
/// if it could not be started: callers then read the precise clock).
static COARSE_UNIX_NANOS: AtomicI64 = AtomicI64::new(0);
static COARSE_TICKER: Once = Once::new();

fn coarse_unix_nanos() -> i64 {
    let coarse = COARSE_UNIX_NANOS.load(Ordering::Relaxed);
    if coarse == 0 {
        start_coarse_ticker();
    }
    coarse
}

/// Starts the ticker thread, once per process. Written here rather than
/// taken from a crate (`coarsetime`, `quanta`) because it is twenty lines and
/// needs nothing platform-specific. A forked child inherits a stale reading
/// and no ticker; it would not refresh its ring anyway, since the Tokio
/// runtime that refreshes does not survive a fork either.
fn start_coarse_ticker() {
    COARSE_TICKER.call_once(|| {
        let update = || {
            let now = system_unix_nanos().clamp(1, i128::from(i64::MAX)) as i64;
            COARSE_UNIX_NANOS.store(now, Ordering::Relaxed);
        };
        let started = std::thread::Builder::new()
            .name("dataprotection-coarse-clock".into())
            .spawn(move || {
                loop {
                    update();
                    std::thread::sleep(COARSE_TICK);
                }
            });
        if let Err(e) = started {
            tracing::debug!(error = %e, "no coarse clock thread; reading the system clock on every call");
        }
    });
}

/// A clock that only moves when told to (for tests and simulations).
///
/// ```
/// use dataprotection::clock::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
/// let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
/// clock.advance(Duration::hours(1));
/// assert_eq!(clock.now(), datetime!(2030-01-01 1:00 UTC));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, ManualClock, SystemClock};
    use time::{Duration, macros::datetime};

    #[test]
    fn the_system_clock_has_reached_past_deadlines_and_not_future_ones() {
        let clock = SystemClock;
        let now = clock.unix_nanos();
        // Repeated, so that both the first call (before the coarse clock
        // runs) and later ones (from the coarse clock) are exercised.
        for _ in 0..3 {
            assert!(clock.has_reached(now - 1));
            assert!(clock.has_reached(i128::MIN));
            assert!(!clock.has_reached(now + 3_600_000_000_000));
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        // Within the coarse margin, the precise clock decides.
        assert!(clock.has_reached(clock.unix_nanos()));
        assert!(!clock.has_reached(clock.unix_nanos() + 60_000_000_000));
    }

    #[test]
    fn a_manual_clock_has_reached_exactly_its_time() {
        let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
        let t = clock.unix_nanos();
        assert!(clock.has_reached(t));
        assert!(!clock.has_reached(t + 1));
        clock.advance(Duration::nanoseconds(1));
        assert!(clock.has_reached(t + 1));
    }
}
