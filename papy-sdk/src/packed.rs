//! Packed sequences: how a frame carries its values and indices.
//!
//! A batch of values is one MessagePack `bin` whose bytes are the values
//! themselves, one MessagePack value after the other; indices are one `bin`
//! of little-endian `u64`s. The values are still plain MessagePack, but
//! writing and reading them here, by hand, skips serde's per-value dispatch,
//! which was most of a worker's time for cheap functions (the hot path of
//! every process and remote pool).

use std::sync::Arc;

use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serializer};

use crate::value::{Map, Value};

pub use skip::value_len;

/// Deepest nesting of lists and maps accepted from a peer: deep enough
/// that the values pipelines build on threads cross to a process as they
/// are, shallow enough that decoding one stays well within a thread's
/// stack (2 MiB), unoptimised builds included.
pub const MAX_DEPTH: usize = 256;

/// Appends the MessagePack encodings of `values`, one after the other
/// (packed values). Integers, the commonest values of cheap pipelines, are
/// written inline, without a call per value.
pub fn encode_values<'a>(values: impl ExactSizeIterator<Item = &'a Value>, out: &mut Vec<u8>) {
    // Most batches are small numbers or short strings: a guess that avoids
    // growing the buffer several times without reserving much too much.
    out.reserve(values.len() * 3);
    for v in values {
        match v {
            Value::Int(i) => encode_int(*i, out),
            other => encode_value(other, out),
        }
    }
}

/// Appends the MessagePack encoding of `v` to `out` (the most compact
/// form of each number and length, as every MessagePack writer does).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => encode_int(*i, out),
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => {
            header(s.len(), Some(0xa0), 32, [0xd9, 0xda, 0xdb], out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            header(b.len(), None, 0, [0xc4, 0xc5, 0xc6], out);
            out.extend_from_slice(b);
        }
        Value::List(l) => {
            header(l.len(), Some(0x90), 16, [0, 0xdc, 0xdd], out);
            for x in l.iter() {
                encode_value(x, out);
            }
        }
        Value::Map(m) => {
            header(m.len(), Some(0x80), 16, [0, 0xde, 0xdf], out);
            for (k, x) in m.iter() {
                encode_value(k, out);
                encode_value(x, out);
            }
        }
    }
}

#[inline]
fn encode_int(i: i64, out: &mut Vec<u8>) {
    match i {
        0..=127 => out.push(i as u8),
        -32..=-1 => out.push(i as i8 as u8),
        128..=0xff => out.extend_from_slice(&[0xcc, i as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(i as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(i as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
        -128..=-33 => out.extend_from_slice(&[0xd0, i as i8 as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(i as i16).to_be_bytes());
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(i as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

/// A length header: a fix form below `fix_limit` (when the type has one),
/// else the 8-, 16- or 32-bit form (`wide[0] == 0`: no 8-bit form).
fn header(n: usize, fix: Option<u8>, fix_limit: usize, wide: [u8; 3], out: &mut Vec<u8>) {
    match fix {
        Some(f) if n < fix_limit => out.push(f | n as u8),
        _ if n < 0x100 && wide[0] != 0 => out.extend_from_slice(&[wide[0], n as u8]),
        _ if n < 0x1_0000 => {
            out.push(wide[1]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(wide[2]);
            // Frames are limited far below 4 G elements.
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        }
    }
}

/// Decoded values may take at most this many times the bytes they were
/// read from, plus [`DECODE_SLACK`]: a peer cannot make the host allocate
/// far more than it sent (a frame of 16 M empty lists would otherwise
/// take 80 times its size). Honest data stays well under it (small
/// integers take 24 times their byte, lists and strings less).
pub const DECODE_FACTOR: usize = 48;

/// The size of one decoded value.
const VALUE_SIZE: usize = std::mem::size_of::<Value>();

/// Bytes any input may decode into regardless of its size.
pub const DECODE_SLACK: usize = 1 << 20;

/// The most bytes one input decodes into, whatever its size, once
/// [`DECODE_FACTOR`] times it would be more: a 64 MiB frame decodes into at
/// most 256 MiB, so the host holds the frame and its values in about 5
/// times its size (a larger input may take [`DECODE_FLOOR`] times its size).
pub const DECODE_CAP: usize = 256 << 20;

/// The share of [`DECODE_FACTOR`] any input keeps past [`DECODE_CAP`].
pub const DECODE_FLOOR: usize = 4;

/// The bytes `len` bytes of packed values may decode into: `len` times
/// [`DECODE_FACTOR`] plus [`DECODE_SLACK`], but no more than
/// [`DECODE_CAP`] or [`DECODE_FLOOR`] times `len`, whichever is larger.
///
/// ```
/// use papy_sdk::packed::{decode_budget, DECODE_CAP};
/// assert_eq!(decode_budget(1000), 1000 * 48 + (1 << 20));
/// assert_eq!(decode_budget(64 << 20), DECODE_CAP);
/// assert_eq!(decode_budget(256 << 20), 4 * (256 << 20));
/// ```
pub fn decode_budget(len: usize) -> usize {
    len.saturating_mul(DECODE_FACTOR)
        .saturating_add(DECODE_SLACK)
        .min(DECODE_CAP.max(len.saturating_mul(DECODE_FLOOR)))
}

/// Reads MessagePack values from a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of decoded values still allowed (see [`DECODE_FACTOR`]).
    budget: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            budget: decode_budget(buf.len()),
        }
    }

    /// Accounts for `bytes` of decoded memory.
    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        self.budget = self.budget.checked_sub(bytes).ok_or_else(|| {
            format!(
                "decoded values would take more than {} bytes, from {} bytes (the bound is {DECODE_FACTOR} times the input, at most {} MiB)",
                decode_budget(self.buf.len()),
                self.buf.len(),
                DECODE_CAP >> 20
            )
        })?;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| format!("truncated value at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len(&mut self, bytes: usize) -> Result<usize, String> {
        Ok(match bytes {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    fn str(&mut self, n: usize) -> Result<Value, String> {
        self.charge(32 + n)?;
        let s = std::str::from_utf8(self.take(n)?).map_err(|e| format!("string: {e}"))?;
        Ok(Value::Str(Arc::from(s)))
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<Value, String> {
        // Every element takes at least one byte: never allocate past the input.
        let cap = n.min(self.buf.len() - self.pos);
        self.charge(48 + cap.saturating_mul(VALUE_SIZE))?;
        let mut out = Vec::with_capacity(cap);
        for _ in 0..n {
            out.push(self.value(depth + 1)?);
        }
        Ok(Value::List(Arc::new(out)))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, String> {
        self.charge(48 + n.saturating_mul(2 * VALUE_SIZE + 16))?;
        let mut out = Map::new();
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            out.insert(k, v);
        }
        Ok(Value::Map(Arc::new(out)))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => Value::Int(i64::from(m)),
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xcc => Value::Int(i64::from(self.byte()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Value::from(u64::from_be_bytes(self.array()?)),
            0xd0 => Value::Int(i64::from(self.byte()? as i8)),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.array()?)),
            0xa0..=0xbf => self.str(usize::from(m & 0x1f))?,
            0xd9 => {
                let n = self.len(1)?;
                self.str(n)?
            }
            0xda => {
                let n = self.len(2)?;
                self.str(n)?
            }
            0xdb => {
                let n = self.len(4)?;
                self.str(n)?
            }
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                self.charge(32 + n)?;
                Value::Bytes(Arc::from(self.take(n)?))
            }
            0x90..=0x9f => self.list(usize::from(m & 0x0f), depth)?,
            0xdc => {
                let n = self.len(2)?;
                self.list(n, depth)?
            }
            0xdd => {
                let n = self.len(4)?;
                self.list(n, depth)?
            }
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0xde => {
                let n = self.len(2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len(4)?;
                self.map(n, depth)?
            }
            other => {
                return Err(format!(
                    "unsupported MessagePack marker {other:#04x} at byte {}",
                    self.pos - 1
                ))
            }
        })
    }
}

/// Decodes every value of `buf`, one after the other.
///
/// # Errors
/// A message saying what is malformed and where.
pub fn decode_values(buf: &[u8]) -> Result<Vec<Value>, String> {
    // Values take 1 to 9 bytes when they are numbers: start at a quarter of
    // the bytes (grown if needed; never more than the input could hold).
    let mut out = Vec::with_capacity(buf.len() / 4 + 1);
    let mut pos = 0;
    let mut budget = Reader::new(buf).budget;
    while pos < buf.len() {
        budget = budget.checked_sub(VALUE_SIZE).ok_or_else(|| {
            format!(
                "decoded values would take more than {} bytes, from {} bytes (the bound is {DECODE_FACTOR} times the input, at most {} MiB)",
                decode_budget(buf.len()),
                buf.len(),
                DECODE_CAP >> 20
            )
        })?;
        // Small integers are pushed as they are read: no intermediate
        // result is built and copied for the commonest values.
        if let Some((v, len)) = small_int(buf, pos) {
            out.push(Value::Int(v));
            pos += len;
        } else {
            let mut r = Reader { buf, pos, budget };
            out.push(r.value(0)?);
            pos = r.pos;
            budget = r.budget;
        }
    }
    Ok(out)
}

/// Decodes packed values one at a time, so a worker can call its function
/// on each value as it is read, without first building the whole batch.
///
/// ```
/// use papy_sdk::packed::{encode_values, Unpacker};
/// use papy_sdk::Value;
/// let mut buf = Vec::new();
/// encode_values([Value::Int(1), Value::from("two")].iter(), &mut buf);
/// let mut u = Unpacker::new(&buf);
/// assert_eq!(u.next_value(), Some(Ok(Value::Int(1))));
/// assert_eq!(u.next_value(), Some(Ok(Value::from("two"))));
/// assert_eq!(u.next_value(), None);
/// ```
pub struct Unpacker<'a> {
    r: Reader<'a>,
}

impl std::fmt::Debug for Unpacker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker").finish_non_exhaustive()
    }
}

impl<'a> Unpacker<'a> {
    /// Reads the packed values of `buf`.
    pub fn new(buf: &'a [u8]) -> Unpacker<'a> {
        Unpacker {
            r: Reader::new(buf),
        }
    }

    /// The next value, `None` at the end of the bytes, or what is malformed
    /// (after which every call returns `None`).
    #[inline]
    pub fn next_value(&mut self) -> Option<Result<Value, String>> {
        let (buf, pos) = (self.r.buf, self.r.pos);
        if pos >= buf.len() {
            return None;
        }
        // Small integers (the commonest values of cheap pipelines) are
        // decoded here, without a call per value.
        if let Some((v, len)) = small_int(buf, pos) {
            self.r.pos += len;
            return Some(Ok(Value::Int(v)));
        }
        match self.r.value(0) {
            Ok(v) => Some(Ok(v)),
            Err(e) => {
                self.r.pos = buf.len();
                Some(Err(e))
            }
        }
    }
}

/// The small non-negative integer at `buf[pos]` (positive fixint, uint16
/// or uint32) and its encoded length; `None` for any other value.
#[inline(always)]
fn small_int(buf: &[u8], pos: usize) -> Option<(i64, usize)> {
    match *buf.get(pos)? {
        m @ 0x00..=0x7f => Some((i64::from(m), 1)),
        0xcd => {
            let b: [u8; 2] = buf.get(pos + 1..pos + 3)?.try_into().ok()?;
            Some((i64::from(u16::from_be_bytes(b)), 3))
        }
        0xce => {
            let b: [u8; 4] = buf.get(pos + 1..pos + 5)?.try_into().ok()?;
            Some((i64::from(u32::from_be_bytes(b)), 5))
        }
        _ => None,
    }
}

/// Decodes exactly one value filling `buf`.
///
/// # Errors
/// Malformed input, or bytes left after the value.
pub fn decode_value(buf: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(buf);
    let v = r.value(0)?;
    if r.pos != buf.len() {
        return Err(format!("{} bytes after the value", buf.len() - r.pos));
    }
    Ok(v)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("packed bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

struct ValuesVisitor;

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("packed values")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<Value>, E> {
        decode_values(v).map_err(E::custom)
    }
}

/// `#[serde(with = "packed::values")]`: a `Vec<Value>` as one packed `bin`.
pub mod values {
    use super::*;

    /// Serializes.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &[Value], s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::new();
        encode_values(v.iter(), &mut out);
        s.serialize_bytes(&out)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// Malformed packed values.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_bytes(ValuesVisitor)
    }
}

/// Appends one packed index (a little-endian `u64`).
#[inline]
pub fn pack_index(i: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&i.to_le_bytes());
}

/// Packed index `i` of `bytes` (little-endian `u64`s), if there is one.
#[inline]
pub fn unpack_index(bytes: &[u8], i: usize) -> Option<u64> {
    let start = i.checked_mul(8)?;
    let b: [u8; 8] = bytes.get(start..start.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Every packed index of `bytes` (a trailing partial index is ignored).
pub fn unpack_indices(bytes: &[u8]) -> Vec<u64> {
    (0..bytes.len() / 8)
        .filter_map(|i| unpack_index(bytes, i))
        .collect()
}

/// `#[serde(serialize_with = "packed::bytes::serialize")]`: bytes already
/// packed, as one `bin`.
pub mod bytes {
    use super::*;

    /// Serializes.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

/// `#[serde(with = "packed::indices")]`: a `Vec<u64>` as one `bin` of
/// little-endian `u64`s.
pub mod indices {
    use super::*;

    /// Serializes.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|i| i.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    /// Deserializes.
    ///
    /// # Errors
    /// A length that is not a multiple of 8.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let bytes = d.deserialize_bytes(BytesVisitor)?;
        if bytes.len() % 8 != 0 {
            return Err(D::Error::custom(format!(
                "packed indices of {} bytes (not a multiple of 8)",
                bytes.len()
            )));
        }
        Ok(unpack_indices(&bytes))
    }
}

mod skip;
#[cfg(test)]
mod tests;
