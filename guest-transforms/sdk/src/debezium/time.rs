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
    let (days, r) = split_date(s.as_bytes())?;
    // THH:MM:SS
    if r.first().is_none_or(|c| !matches!(c, b'T' | b't' | b' ')) {
        return None;
    }
    let (second_of_day, nanos, r) = split_time(&r[1..])?;
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
    let secs = days.checked_mul(86_400)? + second_of_day - offset_min * 60;
    Some((secs, nanos))
}

/// `[±]YYYY-MM-DD` (at least 4 year digits) at the start of `b`: days since
/// 1970-01-01 and the rest of the text.
fn split_date(b: &[u8]) -> Option<(i64, &[u8])> {
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
    if r.len() < 5 || r[2] != b'-' {
        return None;
    }
    let month = digits(&r[0..2])?;
    let day = digits(&r[3..5])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((days_from_civil(year, month, day), &r[5..]))
}

/// `HH:MM:SS[.fraction]` (hours 0–23) at the start of `b`: the second of the
/// day, the nanoseconds (digits beyond the ninth dropped) and the rest.
fn split_time(b: &[u8]) -> Option<(i64, u32, &[u8])> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let hour = digits(&b[0..2])?;
    let minute = digits(&b[3..5])?;
    let second = digits(&b[6..8])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut r = &b[8..];
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
    let sod = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some((sod, nanos, r))
}

/// Debezium's `IsoDate` text (`time.precision.mode=isostring`: the date in
/// UTC, `2024-03-04Z`): days since 1970-01-01. `None` for any other text.
pub fn parse_iso_date(s: &str) -> Option<i64> {
    match split_date(s.as_bytes())? {
        (days, b"Z" | b"z" | b"") => Some(days),
        _ => None,
    }
}

/// Debezium's `IsoTime` text (`time.precision.mode=isostring`: a time of
/// day in UTC, `12:34:56.1Z`, the fraction without trailing zeros):
/// microseconds since midnight, digits beyond the sixth dropped. `None` for
/// any other text, or an offset other than UTC.
pub fn parse_iso_time_micros(s: &str) -> Option<i64> {
    match split_time(s.as_bytes())? {
        (sod, nanos, b"Z" | b"z" | b"+00:00" | b"") => {
            Some(sod * 1_000_000 + i64::from(nanos / 1000))
        }
        _ => None,
    }
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
    fn iso_dates_and_times() {
        assert_eq!(parse_iso_date("2024-03-04Z"), Some(19786));
        assert_eq!(parse_iso_date("1969-12-31Z"), Some(-1));
        assert_eq!(parse_iso_date("1000-01-01Z"), Some(-354285));
        assert_eq!(parse_iso_date("9999-12-31Z"), Some(2932896));
        assert_eq!(parse_iso_date("+10000-01-01Z"), Some(2932897));
        assert_eq!(parse_iso_date("2024-03-04"), Some(19786));
        for bad in [
            "2024-02-30Z",
            "2024-03-04+02:00",
            "2024-03-04T00:00:00Z",
            "24-03-04Z",
            "",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
        assert_eq!(parse_iso_time_micros("00:00:00Z"), Some(0));
        assert_eq!(parse_iso_time_micros("12:34:56.1Z"), Some(45_296_100_000));
        assert_eq!(
            parse_iso_time_micros("12:34:56.123456Z"),
            Some(45_296_123_456)
        );
        assert_eq!(
            parse_iso_time_micros("23:59:59.9999999Z"),
            Some(86_399_999_999)
        );
        assert_eq!(parse_iso_time_micros("00:00:00.000001+00:00"), Some(1));
        for bad in [
            "24:00:00Z",
            "12:34Z",
            "12:34:56+02:00",
            "12:34:56.Z",
            "-00:00:01Z",
        ] {
            assert_eq!(parse_iso_time_micros(bad), None, "{bad}");
        }
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
