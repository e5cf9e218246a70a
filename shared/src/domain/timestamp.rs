//! RFC 3339 UTC timestamps with a fixed width, so that they also sort as strings.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| unreachable!("a UTC date in years 0..=9999 always formats"))
}

pub fn parse(text: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(text, FORMAT)
        .ok()
        .map(|t| t.assume_utc())
}

/// Now, truncated to the microseconds that [`format`] keeps, so a value survives a round trip.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_as_text() {
        let a = now();
        let b = a + time::Duration::milliseconds(1);
        assert_eq!(parse(&format(a)), Some(a));
        assert!(format(a) < format(b));
        assert_eq!(format(a).len(), "2026-11-21T21:52:30.123456Z".len());
    }
}
