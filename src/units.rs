//! Units stored as SQLite integers: durations as milliseconds.

use std::time::Duration;

/// A duration in whole milliseconds, as stored (saturating at `i64::MAX`).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored millisecond count as a duration (negative reads as 0).
pub(crate) fn dur(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
