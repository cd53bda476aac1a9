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

/// The kernel's wall clock in ms, as the file system stamps a file it
/// touches: `path`'s times are set to now and read back, with system calls
/// made by rustix itself rather than through the C library, so an
/// `LD_PRELOAD` time faker (which also fakes `stat` results) does not reach
/// them. (Reading the clock through rustix's vDSO path would be one call
/// less, but valgrind cannot run a program that does.) None when the file
/// cannot be touched.
pub(crate) fn kernel_ms(path: &std::path::Path) -> Option<i64> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW};
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::empty()).ok()?;
    let st = rustix::fs::stat(path).ok()?;
    Some(st.st_mtime.saturating_mul(1000) + st.st_mtime_nsec as i64 / 1_000_000)
}

/// Now by `clock`, for a write: refused when a wall clock is more than
/// [`MAX_CLOCK_OFFSET`] from the kernel's (`kernel`, ms; None: unknown),
/// since leases, delays, dedup windows and retention of every process
/// sharing the file would follow it.
pub(crate) fn now_for_write(
    clock: &dyn Clock,
    kernel: impl FnOnce() -> Option<i64>,
) -> Result<i64> {
    let now = clock.now_ms();
    if clock.is_wall_clock()
        && let Some(k) = kernel()
    {
        let offset = now.saturating_sub(k);
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
            SystemClock.now_ms() + self.0
        }
        fn is_wall_clock(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_wall_clock_off_by_more_than_the_bound_is_refused_for_writes() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        let kernel = || kernel_ms(&probe);
        assert!(now_for_write(&SystemClock, kernel).is_ok());
        assert!(now_for_write(&Skewed(300), kernel).is_ok());
        for off in [3_600_000, -3_600_000, 1_500] {
            match now_for_write(&Skewed(off), kernel) {
                Err(Error::ClockSkew { offset_ms }) => assert!((offset_ms - off).abs() < 100),
                other => panic!("{off}: {other:?}"),
            }
        }
        // A clock the program set itself is trusted, and so is one that
        // cannot be compared.
        assert_eq!(now_for_write(&ManualClock::new(5), kernel).ok(), Some(5));
        assert!(now_for_write(&Skewed(3_600_000), || None).is_ok());
    }
}
