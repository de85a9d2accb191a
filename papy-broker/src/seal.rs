//! Authenticated stream entries.
//!
//! Whoever can write to a run's task stream could otherwise make every
//! worker run any function, so each entry's payload carries an HMAC-SHA256
//! tag under a key the host and its workers share: the host seals the task
//! frames it writes, a worker seals its results, and each side opens what it
//! reads. A task entry that does not open is dead-lettered and never run; a
//! result that does not open is counted and ignored.
//!
//! A dead letter carries a tag of its own ([`Sealer::dead_letter`]), under a
//! purpose of its own ([`Role::Dead`]): it binds the session, the job the
//! letter gives up on (none when the task entry was not the run's), the
//! task entry's id, its delivery count and the reason. A task entry or a
//! result copied into the dead-letter stream therefore carries no valid
//! dead-letter tag, and a real dead letter cannot be given another reason or
//! job: the host ignores and counts any dead letter whose tag is wrong.
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
use papy_core::error::quote_peer;

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
    /// A dead letter a worker (or the host) wrote: see [`Sealer::dead_letter`].
    Dead,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Task => b"task",
            Role::Result => b"result",
            Role::Dead => b"dead letter",
        }
    }
}

/// The longest reason a dead letter may carry, in bytes: writers keep to
/// [`quote_peer`]'s 1 KiB (and its length note); the host refuses, as not
/// the run's, any dead letter with a longer one, before hashing it.
pub const MAX_REASON: usize = papy_core::protocol::MAX_PEER_MESSAGE;

/// What a dead letter says, as its tag covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The host's job number the letter gives up on: the id of the task
    /// frame the writer opened. `None` when the task entry was not the
    /// run's (no valid tag, or not a task): such a letter reports the entry
    /// and fails no job.
    pub job: Option<u64>,
    /// The task entry's id.
    pub entry: String,
    /// Its deliveries when it was given up on.
    pub deliveries: u64,
    /// Why (at most [`MAX_REASON`] bytes; see [`Sealer::dead_letter`]).
    pub reason: String,
    /// The tag, in hex.
    pub tag: String,
}

/// `bytes` in lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex text (`None` if it is not: an odd length leaves a
/// last digit without a pair).
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
        .collect()
}

type Hmac = hmac::Hmac<sha2::Sha256>;

/// A run's key: its `Debug` shows `"<redacted>"`.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        "<redacted>".fmt(f)
    }
}

/// Seals and opens the payloads of one run's entries.
#[derive(Debug, Clone)]
pub struct Sealer {
    /// The key (handed to local workers through [`KEY_ENV`]).
    pub(crate) key: Secret,
    /// The run this sealer seals for.
    pub(crate) run: String,
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
            key: Secret(key.to_string()),
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

    /// The MAC of `what`, the run, `session` and `fields`, each with its
    /// length first, then `data`.
    fn mac(&self, what: &[u8], session: &str, fields: &[&[u8]], data: &[u8]) -> Hmac {
        let mut m = <Hmac as hmac::Mac>::new_from_slice(self.key.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [what, self.run.as_bytes(), session.as_bytes()]
            .iter()
            .chain(fields)
        {
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
            .mac(role.label(), session, &[], &payload)
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
        self.mac(role.label(), session, &[], payload)
            .verify_slice(tag)
            .map(|()| payload)
            .map_err(|_| {
                "unauthenticated entry: its tag does not match this run's key, session and role (forged, altered, copied from another session, run or role, or written with another key)".to_string()
            })
    }

    /// The check value the host writes into the run's settings.
    pub fn check_value(&self) -> String {
        hex(&self.mac(b"key check", "", &[], b"").finalize().into_bytes())
    }

    /// The MAC of a dead letter's fields (its tag aside).
    fn dead_mac(&self, session: &str, d: &DeadLetter) -> Hmac {
        let job = d.job.map(|j| j.to_string()).unwrap_or_default();
        let deliveries = d.deliveries.to_string();
        let fields = [
            job.as_bytes(),
            d.entry.as_bytes(),
            deliveries.as_bytes(),
            d.reason.as_bytes(),
        ];
        self.mac(Role::Dead.label(), session, &fields, b"")
    }

    /// A dead letter of session `session` giving up on `job` (the id of the
    /// task frame the writer opened; `None` when the entry was not the
    /// run's), task entry `entry` delivered `deliveries` times, because of
    /// `reason` (quoted with [`quote_peer`]: at most 1 KiB and a length
    /// note), with its tag.
    pub fn dead_letter(
        &self,
        session: &str,
        job: Option<u64>,
        entry: &str,
        deliveries: u64,
        reason: &str,
    ) -> DeadLetter {
        let mut letter = DeadLetter {
            job,
            entry: entry.to_string(),
            deliveries,
            reason: quote_peer(reason).into_owned(),
            tag: String::new(),
        };
        letter.tag = hex(&self.dead_mac(session, &letter).finalize().into_bytes());
        letter
    }

    /// Whether `letter` is a dead letter of this run's session `session`:
    /// its tag is right (checked in constant time) and its reason no longer
    /// than [`MAX_REASON`].
    ///
    /// # Errors
    /// A message saying the dead letter is not authentic.
    pub fn check_dead_letter(
        &self,
        session: &str,
        letter: &DeadLetter,
    ) -> std::result::Result<(), String> {
        if letter.reason.len() > MAX_REASON {
            return Err(format!(
                "unauthenticated dead letter: its reason is {} bytes, more than papy writes ({MAX_REASON})",
                letter.reason.len()
            ));
        }
        let tag = unhex(&letter.tag).ok_or_else(|| {
            "unauthenticated dead letter: no dead-letter tag (a task entry or result copied into the dead-letter stream, or forged)".to_string()
        })?;
        self.dead_mac(session, letter).verify_slice(&tag).map_err(|_| {
            "unauthenticated dead letter: its tag does not match this run's key, session, job, entry, deliveries and reason (forged, altered, copied, or written with another key)".to_string()
        })
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

    #[test]
    fn a_dead_letter_opens_only_as_written_and_only_as_a_dead_letter() {
        let s = Sealer::new("0123456789abcdef-secret", "run1").unwrap();
        let d = s.dead_letter("s1", Some(7), "1-0", 3, "it crashed");
        assert!(s.check_dead_letter("s1", &d).is_ok());
        assert_eq!(d.reason, "it crashed");
        let changed = |f: &dyn Fn(&mut DeadLetter)| {
            let mut x = d.clone();
            f(&mut x);
            s.check_dead_letter("s1", &x)
        };
        assert!(changed(&|x| x.job = Some(8)).is_err(), "bound to its job");
        assert!(changed(&|x| x.job = None).is_err());
        assert!(
            changed(&|x| x.entry = "2-0".into()).is_err(),
            "bound to its entry"
        );
        assert!(changed(&|x| x.deliveries = 4).is_err());
        assert!(
            changed(&|x| x.reason = "chosen text".into()).is_err(),
            "bound to its reason"
        );
        assert!(changed(&|x| x.tag.clear()).is_err());
        assert!(changed(&|x| x.tag = "zz".repeat(32)).is_err());
        assert!(
            s.check_dead_letter("s2", &d).is_err(),
            "bound to its session"
        );
        // A task's or a result's tag is no dead letter's tag.
        for role in [Role::Task, Role::Result] {
            let sealed = s.seal(role, "s1", Vec::new());
            assert!(changed(&|x| x.tag = hex(&sealed)).is_err(), "{role:?}");
        }
        let other = Sealer::new("another-key-of-16+bytes", "run1").unwrap();
        assert!(other.check_dead_letter("s1", &d).is_err());
        // Reasons are quoted, and longer ones are refused unhashed.
        let long = s.dead_letter("s1", None, "1-0", 1, &"x".repeat(1 << 20));
        assert!(long.reason.len() < 1100, "{}", long.reason.len());
        assert!(s.check_dead_letter("s1", &long).is_ok());
        let mut huge = d.clone();
        huge.reason = "x".repeat(MAX_REASON + 1);
        assert!(s
            .check_dead_letter("s1", &huge)
            .unwrap_err()
            .contains("more than papy writes"));
    }
}
