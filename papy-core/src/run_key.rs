//! The run key: a secret this process makes, or inherits from the host
//! that started it, and hands on to every worker process it starts.
//!
//! What one process of a run makes and another must trust (an item
//! locator: "read this file, then delete it") carries a MAC under this key,
//! so data that merely *looks* like a locator (an input line, a worker's
//! reply) cannot name a file to read or delete. Workers on other machines
//! (commands run through ssh) do not receive it: their locators are
//! honoured only inside an item directory the pipeline declares
//! (docs/security.md).

use std::sync::OnceLock;

/// The environment variable that carries the key (64 hex digits) to a
/// worker process.
pub const RUN_KEY_ENV: &str = "PAPY_RUN_KEY";

/// This run's key: the one in [`RUN_KEY_ENV`] when this process was
/// started with one, else a fresh random one.
pub fn run_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        std::env::var(RUN_KEY_ENV)
            .ok()
            .and_then(|hex| parse_hex(&hex))
            .unwrap_or_else(fresh)
    })
}

/// The key as [`RUN_KEY_ENV`] carries it.
pub fn run_key_hex() -> String {
    run_key().iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// 32 random bytes from the operating system.
fn fresh() -> [u8; 32] {
    random()
}

/// `N` random bytes from the operating system (`/dev/urandom`), for keys
/// and tokens that must not be guessed.
///
/// ```
/// let a: [u8; 16] = papy_core::run_key::random();
/// let b: [u8; 16] = papy_core::run_key::random();
/// assert_ne!(a, b);
/// ```
pub fn random<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut key = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if read.is_err() {
        // No /dev/urandom (not a Unix system): std's per-process random
        // hash keys, mixed with the time and the process id.
        use std::hash::{BuildHasher, Hasher};
        for chunk in key.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_u32(std::process::id());
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_round_trips_through_its_hex_form() {
        let hex = run_key_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_hex(&hex).as_ref(), Some(run_key()));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
        assert_ne!(fresh(), fresh());
        assert_ne!(random::<8>(), random::<8>());
    }
}
