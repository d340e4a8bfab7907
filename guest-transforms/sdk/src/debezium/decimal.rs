//! Exact decimal text from Kafka Connect's `Decimal` encoding: the unscaled
//! value as big-endian two's-complement bytes, and a scale.
//!
//! No floating point anywhere: the bytes are converted base 256 → base 10^9
//! by long division.

/// Decimal128 holds at most 34 significant digits.
pub const DECIMAL128_DIGITS: usize = 34;

/// The decimal digits of the unsigned big-endian magnitude `bytes`.
fn magnitude_digits(mut bytes: Vec<u8>) -> String {
    // Strip leading zero bytes.
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.drain(..start);
    if bytes.is_empty() {
        return "0".to_owned();
    }
    // Big-endian base-2^32 limbs, most significant first.
    let mut limbs: Vec<u32> = Vec::with_capacity(bytes.len() / 4 + 1);
    let head = bytes.len() % 4;
    if head > 0 {
        limbs.push(
            bytes[..head]
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | b as u32),
        );
    }
    for chunk in bytes[head..].chunks_exact(4) {
        limbs.push(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    // Repeated division by 10^9, collecting base-10^9 chunks least significant first.
    const BASE: u64 = 1_000_000_000;
    let mut chunks: Vec<u32> = Vec::new();
    let mut first = 0;
    while first < limbs.len() {
        let mut rem: u64 = 0;
        for limb in &mut limbs[first..] {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / BASE) as u32;
            rem = cur % BASE;
        }
        chunks.push(rem as u32);
        while first < limbs.len() && limbs[first] == 0 {
            first += 1;
        }
    }
    let mut out = String::with_capacity(chunks.len() * 9);
    let mut iter = chunks.iter().rev();
    if let Some(top) = iter.next() {
        out.push_str(&top.to_string());
    }
    for c in iter {
        out.push_str(&format!("{c:09}"));
    }
    out
}

/// Splits two's-complement big-endian bytes into (negative, magnitude bytes).
fn sign_magnitude(bytes: &[u8]) -> (bool, Vec<u8>) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    if !negative {
        return (false, bytes.to_vec());
    }
    // Magnitude = !bytes + 1.
    let mut mag: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in mag.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    // Two's complement of 0x80 00.. is itself: the magnitude needs one more bit.
    if mag.first().is_some_and(|b| b & 0x80 != 0) {
        mag.insert(0, 0);
    }
    (true, mag)
}

/// Places the decimal point: `digits` × 10^-scale, with `scale` digits after
/// the point (trailing zeros kept). A negative scale gives an exponent
/// (`123E+2`).
pub fn format_scaled(negative: bool, digits: &str, scale: i32) -> String {
    let mut out = String::with_capacity(digits.len() + 4);
    if negative && digits != "0" {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if scale < 0 {
            out.push_str(&format!("E+{}", -(scale as i64)));
        }
        return out;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    }
    out
}

/// The exact decimal text of a Connect `Decimal`: `bytes` are the unscaled
/// value (big-endian two's complement), `scale` the digits after the point.
/// Returns the text and its number of significant digits.
pub fn decimal_from_unscaled(bytes: &[u8], scale: i32) -> (String, usize) {
    let (negative, mag) = sign_magnitude(bytes);
    let digits = magnitude_digits(mag);
    let significant = if digits == "0" { 1 } else { digits.len() };
    (format_scaled(negative, &digits, scale), significant)
}

/// [`decimal_from_unscaled`] for a Decimal128: values of up to 34 significant
/// digits exactly, longer ones rounded (half to even) to 34 digits, so that a
/// column is a Decimal128 whatever its values (`1.234…E+40`).
pub fn decimal128_from_unscaled(bytes: &[u8], scale: i32) -> String {
    let (negative, mag) = sign_magnitude(bytes);
    let digits = magnitude_digits(mag);
    if digits.len() <= DECIMAL128_DIGITS {
        return format_scaled(negative, &digits, scale);
    }
    let (rounded, dropped) = round_half_even(&digits, DECIMAL128_DIGITS);
    let scale = i64::from(scale) - dropped as i64;
    // Decimal128 exponents reach ±6000: out of i32 only for absurd input.
    let scale = i32::try_from(scale).unwrap_or(if scale < 0 { i32::MIN } else { i32::MAX });
    format_scaled(negative, &rounded, scale)
}

/// The first `keep` digits of `digits` (no leading zeros, longer than
/// `keep`) rounded half to even, and how many digits were dropped (one more
/// when rounding up carries into a new digit).
fn round_half_even(digits: &str, keep: usize) -> (String, usize) {
    let b = digits.as_bytes();
    let (head, tail) = b.split_at(keep);
    let first = tail[0];
    let rest_zero = tail[1..].iter().all(|&d| d == b'0');
    let last_odd = (head[keep - 1] - b'0') % 2 == 1;
    let up = first > b'5' || (first == b'5' && (!rest_zero || last_odd));
    let mut out: Vec<u8> = head.to_vec();
    let mut dropped = tail.len();
    if up {
        let mut i = keep;
        loop {
            if i == 0 {
                // 999…9 + 1: one digit more; drop the last (a zero) instead.
                out.insert(0, b'1');
                out.pop();
                dropped += 1;
                break;
            }
            i -= 1;
            if out[i] == b'9' {
                out[i] = b'0';
            } else {
                out[i] += 1;
                break;
            }
        }
    }
    (String::from_utf8(out).unwrap_or_default(), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal128_rounds_beyond_34_digits() {
        assert_eq!(decimal128_from_unscaled(&be(123450), 2), "1234.50");
        // 10^37 + 5 at scale 2: 38 digits → 34, 4 dropped.
        let v: i128 = 10i128.pow(37) + 5;
        assert_eq!(
            decimal128_from_unscaled(&be(v), 2),
            format!("1{}E+2", "0".repeat(33))
        );
        // Half to even: …5 exactly rounds to the even neighbour.
        let d35 = format!("1{}5", "0".repeat(33)); // 35 digits, last 5
        assert_eq!(
            round_half_even(&d35, 34),
            (format!("1{}", "0".repeat(33)), 1)
        );
        let d35 = format!("1{}15", "0".repeat(32));
        assert_eq!(
            round_half_even(&d35, 34),
            (format!("1{}2", "0".repeat(32)), 1)
        );
        let nines = "9".repeat(36);
        assert_eq!(
            round_half_even(&nines, 34),
            (format!("1{}", "0".repeat(33)), 3)
        );
        assert_eq!(
            decimal128_from_unscaled(&be(-(10i128.pow(36) - 1)), 3),
            format!("-1{}", "0".repeat(33))
        );
    }

    fn dec(bytes: &[u8], scale: i32) -> String {
        decimal_from_unscaled(bytes, scale).0
    }

    /// Two's-complement big-endian bytes of `v`, minimal length like Java's BigInteger.
    fn be(v: i128) -> Vec<u8> {
        let all = v.to_be_bytes();
        let mut i = 0;
        while i < 15 {
            let b = all[i];
            let next_sign = all[i + 1] & 0x80 != 0;
            if (b == 0 && !next_sign) || (b == 0xff && next_sign) {
                i += 1;
            } else {
                break;
            }
        }
        all[i..].to_vec()
    }

    #[test]
    fn small_values() {
        assert_eq!(dec(&[0x01], 2), "0.01"); // "AQ==" from the Debezium notes
        assert_eq!(dec(&[0x05, 0x5f], 2), "13.75"); // "BV8="
        assert_eq!(dec(&be(123450), 2), "1234.50");
        assert_eq!(dec(&be(0), 2), "0.00");
        assert_eq!(dec(&[], 3), "0.000");
        assert_eq!(dec(&be(5), 0), "5");
        assert_eq!(dec(&be(5), 4), "0.0005");
        assert_eq!(dec(&be(12), -2), "12E+2");
    }

    #[test]
    fn negative_values() {
        assert_eq!(dec(&be(-1), 2), "-0.01");
        assert_eq!(dec(&be(-123450), 2), "-1234.50");
        assert_eq!(dec(&[0x80], 0), "-128");
        assert_eq!(dec(&[0x80, 0x00], 1), "-3276.8");
        assert_eq!(dec(&[0xff, 0x7f], 0), "-129");
        assert_eq!(dec(&be(-100), 2), "-1.00");
    }

    #[test]
    fn leading_zero_bytes_and_sign_padding() {
        assert_eq!(dec(&[0x00, 0x80], 0), "128");
        assert_eq!(dec(&[0x00, 0x00, 0x01], 1), "0.1");
    }

    #[test]
    fn round_trips_against_i128() {
        let samples: [i128; 12] = [
            1,
            -1,
            255,
            256,
            -256,
            999_999_999,
            1_000_000_000,
            -1_000_000_001,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            i128::MAX,
            i128::MIN + 1,
        ];
        for v in samples {
            let (s, digits) = decimal_from_unscaled(&be(v), 0);
            assert_eq!(s, v.to_string(), "{v}");
            assert_eq!(digits, v.unsigned_abs().to_string().len());
        }
        assert_eq!(dec(&be(i128::MIN), 0), i128::MIN.to_string());
    }

    #[test]
    fn beyond_128_bits() {
        // 10^40 = 0x1D6329F1C35CA4BFABB9F5610000000000
        let bytes = [
            0x1d, 0x63, 0x29, 0xf1, 0xc3, 0x5c, 0xa4, 0xbf, 0xab, 0xb9, 0xf5, 0x61, 0x00, 0x00,
            0x00, 0x00, 0x00,
        ];
        let (s, digits) = decimal_from_unscaled(&bytes, 2);
        assert_eq!(s, format!("1{}.00", "0".repeat(38)));
        assert_eq!(digits, 41);
    }
}
