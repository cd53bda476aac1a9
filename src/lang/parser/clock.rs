//! The session's clock: SET CLOCK and ADVANCE (SHOW CLOCK is with SHOW).

use super::lex::{
    DURATION_EXPECTED, PResult, duration, end, expect, failure, keyword, skip_ws, timestamp,
};
use crate::lang::ast::{ClockSetting, Statement};

const END: &str = "expected ';' or end of input";

/// `SET CLOCK 'time' | SET CLOCK SYSTEM` (after SET).
pub(super) fn set(input: &str) -> PResult<'_, Statement> {
    let (i, _) = expect(
        keyword("CLOCK"),
        "expected CLOCK (SET CLOCK 'time' or SET CLOCK SYSTEM)",
    )(input)?;
    if let Ok((i, _)) = keyword("SYSTEM")(i) {
        return end(i, Statement::SetClock(ClockSetting::System), END);
    }
    let start = skip_ws(i);
    if !start.starts_with('\'') {
        return failure(
            start,
            "expected a time like '2026-01-01T00:00:00Z', '-1h' or SYSTEM",
        );
    }
    let (i, t) = timestamp(i)?;
    end(i, Statement::SetClock(ClockSetting::At(t)), END)
}

/// `ADVANCE duration` (after ADVANCE).
pub(super) fn advance(input: &str) -> PResult<'_, Statement> {
    let (i, d) = expect(duration, DURATION_EXPECTED)(input)?;
    end(i, Statement::Advance(d), END)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::lang::ast::{ClockSetting, Statement, TimeSpec};
    use crate::lang::parse_statement;

    #[test]
    fn set_clock_and_advance() {
        assert_eq!(
            parse_statement("SET CLOCK '2026-01-01T00:00:00Z'"),
            Ok(Statement::SetClock(ClockSetting::At(TimeSpec::Absolute(
                1_767_225_600_000
            ))))
        );
        assert_eq!(
            parse_statement("set clock system;"),
            Ok(Statement::SetClock(ClockSetting::System))
        );
        assert_eq!(
            parse_statement("SET CLOCK '-1h'"),
            Ok(Statement::SetClock(ClockSetting::At(TimeSpec::Ago(
                Duration::from_secs(3600)
            ))))
        );
        assert_eq!(
            parse_statement("ADVANCE 31s"),
            Ok(Statement::Advance(Duration::from_secs(31)))
        );
        for (bad, says) in [
            (
                "SET CLOCK",
                "expected a time like '2026-01-01T00:00:00Z', '-1h' or SYSTEM",
            ),
            ("SET CLOCK now", "or SYSTEM"),
            ("SET CLOCK 'soon'", "expected a timestamp"),
            ("SET TIME '2026-01-01T00:00:00Z'", "expected CLOCK"),
            ("ADVANCE", "expected a duration like 30s"),
            ("ADVANCE 5 minutes", "expected a duration like 30s"),
            ("SET CLOCK SYSTEM now", "expected ';'"),
        ] {
            let e = parse_statement(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}
