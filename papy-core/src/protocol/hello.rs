//! The handshake: the greeting a worker writes first, then the [`Hello`]
//! each side sends (versions, functions, plugins, signatures, init).

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::error::ProtocolError;
use super::wire::Call;

/// Incompatible protocol changes bump this.
pub const MAJOR: u16 = 2;
/// Compatible protocol changes (new optional fields) bump this.
pub const MINOR: u16 = 1;
/// What a worker writes before its first frame. The host skips anything
/// before it (a test harness banner, a login message over ssh) and refuses a
/// peer that never sends it.
pub const GREETING: &[u8] = b"\0papy-worker\0";

/// Reads and discards bytes up to and including [`GREETING`], looking at
/// most `limit` bytes.
///
/// # Errors
/// [`ProtocolError::Closed`] if the stream ends first, `Malformed` past the limit.
pub fn skip_to_greeting(r: &mut impl Read, limit: usize) -> Result<(), ProtocolError> {
    let mut matched = 0;
    let mut seen = 0usize;
    let mut byte = [0u8; 1];
    while matched < GREETING.len() {
        if r.read(&mut byte)? == 0 {
            return Err(if seen == 0 {
                ProtocolError::Closed
            } else {
                ProtocolError::Malformed(format!(
                    "the peer wrote {seen} bytes but no papy worker greeting"
                ))
            });
        }
        seen += 1;
        if seen > limit {
            return Err(ProtocolError::Malformed(format!(
                "no papy worker greeting in the first {limit} bytes"
            )));
        }
        matched = if byte[0] == GREETING[matched] {
            matched + 1
        } else if byte[0] == GREETING[0] {
            1
        } else {
            0
        };
    }
    Ok(())
}

/// The handshake, sent by both sides first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol major version.
    pub major: u16,
    /// Protocol minor version.
    pub minor: u16,
    /// Codec of the following frames (`"msgpack"`).
    pub codec: String,
    /// papy version of the sender.
    pub papy_version: String,
    /// Worker side: the functions it can run. Host side (since 2.1): the
    /// functions its pipeline will send; when the list is not empty, the
    /// worker refuses tasks naming any other.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Worker side: loaded plugins as (name, sha256).
    #[serde(default)]
    pub plugins: Vec<(String, String)>,
    /// Worker side (since 2.1): the parameters of its functions, so a host
    /// can check the arguments of functions it does not hold itself
    /// (`papy check --probe`). Optional: may be empty or partial.
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// Host side (since 2.1): a function the worker runs once, on a null
    /// input, before any task; its result is the worker's state
    /// ([`worker_state`](crate::worker_state)). The worker answers with a
    /// `Result` of id [`INIT_ID`]: one value, or one error (the worker
    /// then exits, and its start fails with that error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Call>,
}

/// The id of the `Result` that answers a host `Hello`'s `init`.
pub const INIT_ID: u64 = u64::MAX;

/// A function's parameters as a worker announces them (protocol 2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The function's registered name.
    pub name: String,
    /// The parameters after the inbox, in order; `None` when the function
    /// takes any arguments as given.
    #[serde(default)]
    pub params: Option<Vec<SignatureParam>>,
    /// The inbox elements it takes, when fixed.
    #[serde(default)]
    pub inputs: Option<u32>,
    /// Its documentation.
    #[serde(default)]
    pub doc: String,
}

/// One parameter of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureParam {
    /// Its name (for keyword arguments).
    pub name: String,
    /// It may be left out.
    #[serde(default)]
    pub optional: bool,
    /// Its type as the worker's language writes it (informational).
    #[serde(default)]
    pub ty: String,
}

impl Signature {
    /// The signatures of this process's registered functions.
    pub fn of_registry() -> Vec<Signature> {
        crate::registry::functions()
            .iter()
            .map(|f| Signature {
                name: f.name.clone(),
                params: f.params.as_ref().map(|ps| {
                    ps.iter()
                        .map(|p| SignatureParam {
                            name: p.name.to_string(),
                            optional: p.optional,
                            ty: p.ty.to_string(),
                        })
                        .collect()
                }),
                inputs: f.inputs.and_then(|n| u32::try_from(n).ok()),
                doc: f.doc.clone(),
            })
            .collect()
    }
}

impl Hello {
    /// This process's hello.
    pub fn here(functions: Vec<String>, plugins: Vec<(String, String)>) -> Hello {
        Hello {
            major: MAJOR,
            minor: MINOR,
            codec: "msgpack".into(),
            papy_version: env!("CARGO_PKG_VERSION").into(),
            functions,
            plugins,
            signatures: Vec::new(),
            init: None,
        }
    }

    /// Checks that the peer speaks this protocol.
    ///
    /// # Errors
    /// A message naming both versions.
    pub fn check(&self) -> Result<(), String> {
        if self.major != MAJOR {
            return Err(format!(
                "protocol version mismatch: peer speaks {}.{} (papy {}), this side speaks {MAJOR}.{MINOR} (papy {})",
                self.major,
                self.minor,
                self.papy_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if self.codec != "msgpack" {
            return Err(format!("unsupported codec `{}`", self.codec));
        }
        Ok(())
    }
}
