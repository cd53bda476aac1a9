//! Units stored as SQLite integers. SQLite stores signed 64-bit integers;
//! the API speaks `u64` offsets, ids and counts and `Duration`s. Each newtype
//! here converts in one place, both ways, and refuses what does not fit
//! (a negative stored value is a damaged file; a value over `i64::MAX`
//! cannot be stored) instead of clamping it silently.

use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Defines a `u64` stored as a non-negative SQLite integer.
macro_rules! stored_u64 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) struct $name(pub(crate) u64);

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let i = i64::column_result(v)?;
                u64::try_from(i).map($name).map_err(|_| FromSqlError::OutOfRange(i))
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                i64::try_from(self.0)
                    .map(ToSqlOutput::from)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            }
        }
    };
}

stored_u64!(
    /// An offset in a partition.
    Offset
);
stored_u64!(
    /// A delivery id.
    DeliveryId
);
stored_u64!(
    /// A count of messages or bytes, or a size.
    Count
);

/// A duration stored as whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Millis(pub(crate) Duration);

impl FromSql for Millis {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let i = i64::column_result(v)?;
        u64::try_from(i)
            .map(|ms| Millis(Duration::from_millis(ms)))
            .map_err(|_| FromSqlError::OutOfRange(i))
    }
}

impl ToSql for Millis {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0.as_millis())
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

/// A duration in whole milliseconds, for arithmetic on timestamps
/// (saturating at `i64::MAX`: a lease or delay that long never ends).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_milliseconds_saturating() {
        for (d, want) in [
            (Duration::ZERO, 0),
            (Duration::from_micros(1_999), 1),
            (Duration::from_secs(30), 30_000),
            (Duration::from_secs(7 * 24 * 3600), 604_800_000),
            (Duration::MAX, i64::MAX),
        ] {
            assert_eq!(ms(d), want, "{d:?}");
        }
    }
}
