//! Time, injectable so tests of leases, delays and retention need no sleeps.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::{Error, Result};

/// How far a wall clock (see [`Clock::is_wall_clock`]) may be from the
/// machine's kernel clock before mqlite refuses to write with it: 1 s.
/// Processes of one machine read one kernel clock, so a larger offset means
/// the process's time is faked (libfaketime, a patched `clock_gettime`).
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(1);

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in ms since the epoch.
    fn now_ms(&self) -> i64;

    /// True when this clock stands for the machine's wall clock, which other
    /// processes sharing the file also read: mqlite then checks it against
    /// the kernel's clock before every write (see [`MAX_CLOCK_OFFSET`]).
    /// False (the default) for clocks a program sets itself, such as
    /// [`ManualClock`]: those are trusted as given.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The kernel's wall clock in ms, read through rustix's own vDSO/system
/// call path rather than the C library, so an `LD_PRELOAD` time faker
/// cannot change it.
fn kernel_ms() -> i64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    ts.tv_sec.saturating_mul(1000) + i64::from(ts.tv_nsec as i32 / 1_000_000)
}

/// Now by `clock`, for a write: refused when a wall clock is more than
/// [`MAX_CLOCK_OFFSET`] from the kernel's, since leases, delays, dedup
/// windows and retention of every process sharing the file would follow it.
pub(crate) fn now_for_write(clock: &dyn Clock) -> Result<i64> {
    let now = clock.now_ms();
    if clock.is_wall_clock() {
        let offset = now.saturating_sub(kernel_ms());
        if offset.unsigned_abs() > MAX_CLOCK_OFFSET.as_millis() as u64 {
            return Err(Error::ClockSkew { offset_ms: offset });
        }
    }
    Ok(now)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `start_ms`.
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wall clock that is off by a fixed amount, as a faked process's is.
    #[derive(Debug)]
    struct Skewed(i64);

    impl Clock for Skewed {
        fn now_ms(&self) -> i64 {
            kernel_ms() + self.0
        }
        fn is_wall_clock(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_wall_clock_off_by_more_than_the_bound_is_refused_for_writes() {
        assert!(now_for_write(&SystemClock).is_ok());
        assert!(now_for_write(&Skewed(300)).is_ok());
        for off in [3_600_000, -3_600_000, 1_500] {
            match now_for_write(&Skewed(off)) {
                Err(Error::ClockSkew { offset_ms }) => assert!((offset_ms - off).abs() < 100),
                other => panic!("{off}: {other:?}"),
            }
        }
        // A clock the program set itself is trusted.
        assert_eq!(now_for_write(&ManualClock::new(5)).ok(), Some(5));
    }
}
