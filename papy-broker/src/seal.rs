//! Authenticated stream entries.
//!
//! Whoever can write to a run's task stream could otherwise make every
//! worker run any function, so each entry's payload carries an HMAC-SHA256
//! tag under a key the host and its workers share: the host seals the task
//! frames it writes, a worker seals its results, and each side opens what it
//! reads. A task entry that does not open is dead-lettered and never run; a
//! result or dead letter that does not open is counted and ignored.
//!
//! The key is a string of at least [`MIN_KEY_LEN`] bytes, taken from
//! [`KEY_ENV`] or a file (`key_file` in the pipeline, `papy worker
//! --key-file`), never from the URL. A host without one makes a random key
//! for the run and hands it to the workers it starts; workers elsewhere then
//! cannot join, and say so. The run's settings carry a check value, so a
//! worker with another key stops at once instead of dead-lettering every
//! entry.

use std::path::Path;

use hmac::Mac as _;

use crate::error::{BrokerError, Result};

/// The environment variable holding the shared key.
pub const KEY_ENV: &str = "PAPY_BROKER_KEY";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Bytes of the tag after each payload.
const TAG: usize = 32;

/// What a sealed payload is: part of what its tag covers, so a payload
/// sealed as one cannot be passed off as another (a task copied into the
/// result stream, a result of another session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A task entry the host wrote.
    Task,
    /// A result a worker wrote.
    Result,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Task => b"task",
            Role::Result => b"result",
        }
    }
}

type Hmac = hmac::Hmac<sha2::Sha256>;

/// Seals and opens the payloads of one run's entries.
#[derive(Clone)]
pub struct Sealer {
    key: String,
    run: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key", &"<redacted>")
            .field("run", &self.run)
            .finish()
    }
}

impl Sealer {
    /// A sealer for run `run` under `key`.
    ///
    /// # Errors
    /// A key shorter than [`MIN_KEY_LEN`] bytes.
    pub fn new(key: &str, run: &str) -> Result<Sealer> {
        let key = key.trim();
        if key.len() < MIN_KEY_LEN {
            return Err(BrokerError::Config(format!(
                "the broker key is {} bytes; at least {MIN_KEY_LEN} are needed",
                key.len()
            )));
        }
        Ok(Sealer {
            key: key.to_string(),
            run: run.to_string(),
        })
    }

    /// The key from `key_file` if given, else from [`KEY_ENV`]; `None`
    /// when neither is set.
    ///
    /// # Errors
    /// The file cannot be read, or the key is too short.
    pub fn key_from(key_file: Option<&Path>) -> Result<Option<String>> {
        let key = match key_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                BrokerError::Config(format!(
                    "reading the broker key file {}: {e}",
                    path.display()
                ))
            })?),
            None => std::env::var(KEY_ENV).ok(),
        };
        match key {
            Some(k) if k.trim().len() < MIN_KEY_LEN => Err(BrokerError::Config(format!(
                "the broker key ({}) is {} bytes; at least {MIN_KEY_LEN} are needed",
                key_file.map_or_else(|| KEY_ENV.to_string(), |p| p.display().to_string()),
                k.trim().len()
            ))),
            other => Ok(other.map(|k| k.trim().to_string())),
        }
    }

    /// The key, to hand to a local worker through [`KEY_ENV`].
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn mac(&self, what: &[u8], session: &str, data: &[u8]) -> Hmac {
        let mut m = <Hmac as hmac::Mac>::new_from_slice(self.key.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [what, self.run.as_bytes(), session.as_bytes()] {
            m.update(&(part.len() as u64).to_le_bytes());
            m.update(part);
        }
        m.update(data);
        m
    }

    /// `payload` followed by its tag, which covers the run, the host's
    /// `session` and the payload's `role`.
    pub fn seal(&self, role: Role, session: &str, mut payload: Vec<u8>) -> Vec<u8> {
        let tag = self
            .mac(role.label(), session, &payload)
            .finalize()
            .into_bytes();
        payload.extend_from_slice(&tag);
        payload
    }

    /// The payload of an entry sealed as `role` for `session`, if its tag
    /// is right (checked in constant time).
    ///
    /// # Errors
    /// A message saying the entry is not authentic.
    pub fn open<'a>(
        &self,
        role: Role,
        session: &str,
        sealed: &'a [u8],
    ) -> std::result::Result<&'a [u8], String> {
        let Some(split) = sealed.len().checked_sub(TAG) else {
            return Err("unauthenticated entry: too short to carry a tag".into());
        };
        let (payload, tag) = sealed.split_at(split);
        self.mac(role.label(), session, payload)
            .verify_slice(tag)
            .map(|()| payload)
            .map_err(|_| {
                "unauthenticated entry: its tag does not match this run's key, session and role (forged, altered, replayed, or written with another key)".to_string()
            })
    }

    /// The check value the host writes into the run's settings.
    pub fn check_value(&self) -> String {
        self.mac(b"key check", "", b"")
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payloads_open_and_altered_ones_do_not() {
        let s = Sealer::new("0123456789abcdef-secret", "run1").unwrap();
        let sealed = s.seal(Role::Task, "s1", b"frame".to_vec());
        assert_eq!(s.open(Role::Task, "s1", &sealed).unwrap(), b"frame");
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert!(s.open(Role::Task, "s1", &altered).is_err());
        assert!(s.open(Role::Task, "s1", b"short").is_err());
        assert!(s.open(Role::Task, "s1", b"frame").is_err());
        assert!(
            s.open(Role::Result, "s1", &sealed).is_err(),
            "bound to its role"
        );
        assert!(
            s.open(Role::Task, "s2", &sealed).is_err(),
            "bound to its session"
        );
        let other_run = Sealer::new("0123456789abcdef-secret", "run2").unwrap();
        assert!(
            other_run.open(Role::Task, "s1", &sealed).is_err(),
            "bound to its run"
        );
        let other_key = Sealer::new("another-key-of-16+bytes", "run1").unwrap();
        assert!(other_key.open(Role::Task, "s1", &sealed).is_err());
        assert_ne!(s.check_value(), other_key.check_value());
        assert!(Sealer::new("short", "r").is_err());
        assert!(!format!("{s:?}").contains("secret"));
    }
}
