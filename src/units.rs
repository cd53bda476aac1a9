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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_milliseconds() {
        for (d, want) in [
            (Duration::ZERO, 0),
            (Duration::from_micros(1_999), 1),
            (Duration::from_secs(30), 30_000),
            (Duration::from_secs(7 * 24 * 3600), 604_800_000),
            (Duration::MAX, i64::MAX),
        ] {
            assert_eq!(ms(d), want, "{d:?}");
        }
        assert_eq!(dur(30_000), Duration::from_secs(30));
        assert_eq!(
            dur(-5),
            Duration::ZERO,
            "a negative stored value reads as 0"
        );
        assert_eq!(
            dur(ms(Duration::from_millis(1234))),
            Duration::from_millis(1234)
        );
    }
}
