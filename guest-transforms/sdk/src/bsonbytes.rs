//! The BSON encoding primitives shared by the SDK's encoder and by
//! transforms that write a document's bytes themselves (the default
//! transform's fast path): element type bytes, a document's length frame,
//! a string. `None` means the value does not fit BSON's `i32` lengths.

pub const DOUBLE: u8 = 0x01;
pub const STRING: u8 = 0x02;
pub const DOCUMENT: u8 = 0x03;
pub const ARRAY: u8 = 0x04;
pub const OBJECT_ID: u8 = 0x07;
pub const BOOLEAN: u8 = 0x08;
pub const DATE_TIME: u8 = 0x09;
pub const NULL: u8 = 0x0A;
pub const INT32: u8 = 0x10;
pub const INT64: u8 = 0x12;

/// Reserves a document's length; [`end`] writes it.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Closes the document [`begin`] opened at `start`.
pub fn end(out: &mut Vec<u8>, start: usize) -> Option<()> {
    out.push(0);
    let len = i32::try_from(out.len() - start).ok()?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
}

/// A string value: its length with the terminator, its bytes, the terminator.
pub fn string(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let len = i32::try_from(s.len() + 1).ok()?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Some(())
}
