//! Pure parsing and formatting of the protocols' timeout headers.

use std::time::Duration;

/// The server's default maximum timeout: 24 hours. `grpc-timeout` can say up to 99,999,999
/// hours (11,000 years); a deadline that far out is meaningless and overflows some clocks, so
/// longer timeouts are cut to a day, long enough for any call that means to end.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// `timeout`, cut to `max` when there is one.
pub fn clamp(timeout: Duration, max: Option<Duration>) -> Duration {
    match max {
        Some(max) => timeout.min(max),
        None => timeout,
    }
}

/// Parses `grpc-timeout`: at most 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a `grpc-timeout`, choosing the finest unit that fits in 8 digits.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        // Round up so a peer never sees more time than we have.
        let value = nanos.div_ceil(per);
        if value <= MAX {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Parses `connect-timeout-ms`: 1 to 10 ASCII digits of milliseconds.
pub fn parse_connect_timeout(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    Some(Duration::from_millis(n))
}

/// Formats `connect-timeout-ms`, rounding up to a whole millisecond (capped at 10 digits).
pub fn format_connect_timeout(timeout: Duration) -> String {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(9_999_999_999);
    ms.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grpc_examples() {
        assert_eq!(parse_grpc_timeout(b"1S"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"123456789S"), None);
        assert_eq!(parse_grpc_timeout(b"S"), None);
        assert_eq!(parse_grpc_timeout(b"1x"), None);
        assert_eq!(parse_grpc_timeout(b"-1S"), None);
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
    }

    #[test]
    fn clamps_to_the_maximum() {
        let huge = parse_grpc_timeout(b"99999999H").unwrap();
        assert_eq!(clamp(huge, Some(DEFAULT_MAX_TIMEOUT)), DEFAULT_MAX_TIMEOUT);
        assert_eq!(clamp(huge, None), huge);
        assert_eq!(
            clamp(Duration::from_secs(1), Some(DEFAULT_MAX_TIMEOUT)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn connect_examples() {
        assert_eq!(
            parse_connect_timeout(b"1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_connect_timeout(b"12345678901"), None);
        assert_eq!(parse_connect_timeout(b""), None);
        assert_eq!(parse_connect_timeout(b"1.5"), None);
        assert_eq!(format_connect_timeout(Duration::from_micros(1)), "1");
    }

    proptest! {
        #[test]
        fn grpc_round_trip_never_shrinks(nanos in 0u64..u64::MAX / 4) {
            let d = Duration::from_nanos(nanos);
            let s = format_grpc_timeout(d);
            let back = parse_grpc_timeout(s.as_bytes()).unwrap();
            prop_assert!(back >= d);
        }

        #[test]
        fn connect_round_trip(ms in 0u64..9_999_999_999) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_connect_timeout(format_connect_timeout(d).as_bytes()), Some(d));
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse_grpc_timeout(&bytes);
            let _ = parse_connect_timeout(&bytes);
        }
    }
}
