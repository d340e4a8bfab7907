//! The Confluent wire format: a `0x00` magic byte, the schema id as a 4-byte
//! big-endian integer, then the encoded data (for Protobuf, the message
//! indexes come first).

/// The magic byte of the Confluent wire format.
pub const MAGIC: u8 = 0;

/// The parts of a framed key or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema_id: u32,
    /// What follows the 5-byte header.
    pub data: &'a [u8],
}

/// Splits a framed key or value; the error says what is wrong with it.
pub fn split(bytes: &[u8]) -> Result<Framed<'_>, String> {
    match bytes.first() {
        None => return Err("empty: no Confluent wire-format header".into()),
        Some(&MAGIC) => {}
        Some(&b) => {
            return Err(format!(
                "wrong magic byte 0x{b:02x} (expected 0x00 of the Confluent wire format{})",
                if b == b'{' || b == b'[' {
                    "; this looks like plain JSON: is the route's format `json`?"
                } else {
                    ""
                }
            ))
        }
    }
    if bytes.len() < 5 {
        return Err(format!(
            "truncated Confluent wire-format header: {} bytes, expected at least 5",
            bytes.len()
        ));
    }
    Ok(Framed {
        schema_id: u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        data: &bytes[5..],
    })
}

/// The schema id of framed bytes, without checking the rest (`None` when the
/// header is not there).
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    split(bytes).ok().map(|f| f.schema_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_header() {
        let f = split(&[0, 0, 0, 1, 2, 8, 9]).unwrap();
        assert_eq!(f.schema_id, 258);
        assert_eq!(f.data, &[8, 9]);
        assert_eq!(split(&[0, 0, 0, 0, 7]).unwrap().data, &[] as &[u8]);
    }

    #[test]
    fn says_what_is_wrong() {
        assert!(split(&[]).unwrap_err().contains("empty"));
        let e = split(br#"{"a":1}"#).unwrap_err();
        assert!(
            e.contains("wrong magic byte 0x7b") && e.contains("plain JSON"),
            "{e}"
        );
        assert!(split(&[1, 0, 0, 0, 1]).unwrap_err().contains("0x01"));
        let e = split(&[0, 0, 1]).unwrap_err();
        assert!(e.contains("truncated") && e.contains("3 bytes"), "{e}");
    }
}
