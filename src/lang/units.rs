//! Canonical text of durations and sizes (`90s`, `2m`, `64KB`).

use std::time::Duration;

/// A duration in the largest unit that divides it exactly: `1500ms`, `90s`, `2m`, `7d`.
pub(crate) fn display_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, len) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms.is_multiple_of(len) {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

/// A size in the largest 1024-based unit that divides it exactly: `512B`, `64KB`.
pub(crate) fn display_size(b: u64) -> String {
    for (unit, len) in [("GB", 1u64 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
        if b != 0 && b.is_multiple_of(len) {
            return format!("{}{unit}", b / len);
        }
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_use_the_largest_exact_unit() {
        assert_eq!(display_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(display_duration(Duration::from_secs(90)), "90s");
        assert_eq!(display_duration(Duration::from_secs(120)), "2m");
        assert_eq!(display_duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(display_duration(Duration::ZERO), "0ms");
        assert_eq!(display_size(512), "512B");
        assert_eq!(display_size(64 * 1024), "64KB");
        assert_eq!(display_size(3 << 30), "3GB");
    }
}
