//! Compact JSON text of a `serde_json::Value`: byte for byte what
//! `serde_json::to_string` writes, with the strings copied in runs.
//!
//! `serde_json` looks at a string one byte at a time to find what needs an
//! escape; in Wasm every turn of that loop also pays an interruption check.
//! Here eight bytes are looked at per turn and the runs between escapes are
//! copied whole. Numbers are still written by `serde_json`.

use serde_json::Value;

/// `serde_json::to_string(value)`, faster.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    // SAFETY: strings are copied whole or split before ASCII bytes, and
    // everything else written is ASCII: the text is UTF-8.
    unsafe { String::from_utf8_unchecked(out) }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to a Vec"),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `w` is a control character, `"` or `\`.
#[inline]
fn needs_escape(w: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (control | has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64))) != 0
}

/// The escape of each byte, as `serde_json` writes it: `b'u'` for `\u00XX`,
/// another letter for `\<letter>`, 0 for none.
static ESCAPE: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape = if b < 0x80 { ESCAPE[b as usize] } else { 0 };
        i += 1;
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i - 1]);
        run = i;
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xF) as usize]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(v: &Value) {
        assert_eq!(to_string(v), serde_json::to_string(v).unwrap(), "{v:?}");
    }

    #[test]
    fn every_ascii_byte_and_some_others_alone_and_in_runs() {
        for c in (0u32..0x80).chain([0x80, 0xA0, 0xE9, 0x2028, 0xFFFD, 0x1F600]) {
            let c = char::from_u32(c).unwrap();
            same(&json!(c.to_string()));
            // At every position of an 8-byte word, and between two words.
            for at in 0..17 {
                let s: String = "abcdefghijklmnopq"
                    .chars()
                    .enumerate()
                    .map(|(i, x)| if i == at { c } else { x })
                    .collect();
                same(&json!(s));
                same(&json!({ s.clone(): s }));
            }
        }
    }

    #[test]
    fn random_strings_numbers_and_nesting() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: Vec<char> = "ab \"\\/\n\t\r\u{0}\u{1f}\u{7f}é€😀x".chars().collect();
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            same(&json!(s));
        }
        same(&json!({
            "null": null, "t": true, "f": false, "i": -5, "big": u64::MAX, "small": i64::MIN,
            "floats": [0.0, -0.0, 1.0, 2.75, 1e300, -2.5e-308, 123456789.125],
            "nested": {"a": [[], {}, [1, {"b": "c\"d"}]], "": ""},
            "decimal": {"$numberDecimal": "1234.50"}, "date": {"$date": {"$numberLong": "-1"}}
        }));
        same(&json!([]));
        same(&json!({}));
        same(&json!("x".repeat(1000)));
    }
}
