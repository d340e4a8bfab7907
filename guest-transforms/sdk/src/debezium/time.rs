//! Calendar arithmetic for Debezium's temporal types (UTC, proleptic Gregorian).

pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u32)
    })
}

/// Parses an ISO-8601 instant with an offset (`2024-03-04T12:00:00.123456Z`,
/// `2024-03-04T12:00:00+02:00`) as Debezium's `ZonedTimestamp` writes it, into
/// milliseconds since the epoch. `None` when the text is not such an instant
/// or when converting to milliseconds would lose sub-millisecond digits.
pub fn parse_zoned_timestamp_ms(s: &str) -> Option<i64> {
    match parse_zoned_timestamp(s)? {
        (ms, true) => Some(ms),
        (_, false) => None,
    }
}

/// [`parse_zoned_timestamp_ms`] that also accepts sub-millisecond digits:
/// the instant truncated to milliseconds, and whether that is exact.
pub fn parse_zoned_timestamp(s: &str) -> Option<(i64, bool)> {
    let (secs, nanos) = parse_zoned_instant(s)?;
    let ms = secs
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))?;
    Some((ms, nanos % 1_000_000 == 0))
}

/// Parses an ISO-8601 instant with an offset into seconds since the epoch
/// and nanoseconds (digits beyond the ninth are dropped).
pub fn parse_zoned_instant(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    // Year: optional sign, at least 4 digits, then '-'.
    let (neg, rest) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let dash = rest.iter().position(|&c| c == b'-')?;
    if dash < 4 {
        return None;
    }
    let year = digits(&rest[..dash])? as i64;
    let year = if neg { -year } else { year };
    let r = &rest[dash + 1..];
    // MM-DDTHH:MM:SS
    if r.len() < 14
        || r[2] != b'-'
        || (r[5] != b'T' && r[5] != b't' && r[5] != b' ')
        || r[8] != b':'
        || r[11] != b':'
    {
        return None;
    }
    let month = digits(&r[0..2])?;
    let day = digits(&r[3..5])?;
    let hour = digits(&r[6..8])?;
    let minute = digits(&r[9..11])?;
    let second = digits(&r[12..14])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut r = &r[14..];
    let mut nanos = 0u32;
    if let Some(b'.') | Some(b',') = r.first() {
        let n = r[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &r[1..1 + n];
        for i in 0..9 {
            nanos = nanos * 10 + frac.get(i).map_or(0, |d| (d - b'0') as u32);
        }
        r = &r[1 + n..];
    }
    let offset_min: i64 = match r {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])? as i64;
            let m = digits(&[*m1, *m2])? as i64;
            if h > 18 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days.checked_mul(86_400)? + hour as i64 * 3600 + minute as i64 * 60 + second as i64
        - offset_min * 60;
    Some((secs, nanos))
}

/// The civil date (year, month, day) of a day number since 1970-01-01
/// (Howard Hinnant's algorithm, the inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ISO-8601 text in UTC of `units` since the epoch, a unit being
/// 10^-`digits` seconds, with exactly `digits` fractional digits
/// (`2024-03-04T12:00:00.123456Z` for microseconds): every value of a column
/// has the same shape, and the text sorts like the instants (years 0–9999).
pub fn format_utc(units: i128, digits: u32) -> String {
    let per_sec = 10i128.pow(digits);
    let secs = units.div_euclid(per_sec);
    let frac = units.rem_euclid(per_sec);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as i64;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let mut out = if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{y:+07}-{m:02}-{d:02}")
    };
    out.push_str(&format!(
        "T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    ));
    if digits > 0 {
        out.push_str(&format!(".{:0width$}", frac, width = digits as usize));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_utc_text() {
        for days in [
            -800_000i64,
            -719_468,
            -1,
            0,
            1,
            11017,
            19724,
            20454,
            2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}: {y}-{m}-{d}");
        }
        assert_eq!(format_utc(0, 6), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(1_709_553_600_123_456, 6),
            "2024-03-04T12:00:00.123456Z"
        );
        assert_eq!(format_utc(-1, 3), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_utc(5_000_000_001, 9),
            "1970-01-01T00:00:05.000000001Z"
        );
        assert_eq!(
            parse_zoned_instant("2024-03-04T14:00:00.1234567+02:00"),
            Some((1_709_553_600, 123_456_700))
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 2), 19724); // from the Debezium notes
        assert_eq!(days_from_civil(2026, 1, 1), 20454);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1600, 2, 29), -135081);
    }

    #[test]
    fn zoned_timestamps() {
        assert_eq!(parse_zoned_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_zoned_timestamp_ms("1970-01-01T00:00:00.000000Z"),
            Some(0)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T12:00:00.123Z"),
            Some(1_709_553_600_123)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T12:00:00.123000Z"),
            Some(1_709_553_600_123)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T12:00:00.1Z"),
            Some(1_709_553_600_100)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T14:00:00+02:00"),
            Some(1_709_553_600_000)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T10:30:00-01:30"),
            Some(1_709_553_600_000)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("1969-12-31T23:59:59.999Z"),
            Some(-1)
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn lossy_or_invalid_timestamps() {
        assert_eq!(
            parse_zoned_timestamp_ms("2024-03-04T12:00:00.123456Z"),
            None
        );
        assert_eq!(
            parse_zoned_timestamp("2024-03-04T12:00:00.123456Z"),
            Some((1_709_553_600_123, false))
        );
        assert_eq!(
            parse_zoned_timestamp("1969-12-31T23:59:59.999999Z"),
            Some((-1, false))
        );
        assert_eq!(
            parse_zoned_timestamp_ms("2026-01-01T04:59:59.999999Z"),
            None
        );
        assert_eq!(parse_zoned_timestamp_ms("2024-03-04T12:00:00"), None);
        assert_eq!(parse_zoned_timestamp_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_zoned_timestamp_ms("infinity"), None);
        assert_eq!(parse_zoned_timestamp_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_zoned_timestamp_ms("2024-03-04T12:00:00.Z"), None);
        assert_eq!(parse_zoned_timestamp_ms(""), None);
    }
}
