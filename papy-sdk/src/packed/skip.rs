//! Stepping over packed values without building them: a worker passes
//! values on as bytes, checked as [`decode_values`](super::decode_values)
//! would read them.

use super::{Reader, MAX_DEPTH};

/// The length in bytes of the first packed value of `buf`, checked as
/// [`decode_values`](super::decode_values) would read it (markers, lengths, UTF-8, depth) but
/// without building it: a worker can pass values on as bytes.
///
/// ```
/// use papy_sdk::packed::{encode_values, value_len};
/// use papy_sdk::Value;
/// let mut buf = Vec::new();
/// encode_values([Value::list([Value::from("ab")]), Value::Int(7)].iter(), &mut buf);
/// assert_eq!(value_len(&buf), Ok(4));
/// assert_eq!(value_len(&buf[4..]), Ok(1));
/// assert!(value_len(&buf[..3]).is_err());
/// ```
///
/// # Errors
/// A message saying what is malformed and where.
pub fn value_len(buf: &[u8]) -> Result<usize, String> {
    let mut r = Reader::new(buf);
    r.skip(0)?;
    Ok(r.pos)
}

impl Reader<'_> {
    /// Steps over one value, checking it as [`value`](Self::value) reads
    /// it (markers, lengths, UTF-8, depth) without building it.
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let m = self.byte()?;
        let (bytes, elements) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xa0..=0xbf | 0xd9..=0xdb => {
                let n = match m {
                    0xd9 => self.len(1)?,
                    0xda => self.len(2)?,
                    0xdb => self.len(4)?,
                    _ => usize::from(m & 0x1f),
                };
                std::str::from_utf8(self.take(n)?).map_err(|e| format!("string: {e}"))?;
                return Ok(());
            }
            0xc4..=0xc6 => (self.len(1 << (m - 0xc4))?, 0),
            0x90..=0x9f => (0, usize::from(m & 0x0f)),
            0xdc => (0, self.len(2)?),
            0xdd => (0, self.len(4)?),
            0x80..=0x8f => (0, 2 * usize::from(m & 0x0f)),
            0xde => (0, 2 * self.len(2)?),
            0xdf => (0, 2 * self.len(4)?),
            other => {
                return Err(format!(
                    "unsupported MessagePack marker {other:#04x} at byte {}",
                    self.pos - 1
                ))
            }
        };
        self.take(bytes)?;
        // Every element takes at least a byte: a false count ends at the
        // end of the input.
        for _ in 0..elements {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}
