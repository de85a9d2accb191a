//! Reading the fields of stream entries (untrusted: whoever can write to
//! the streams wrote them).

use std::time::Duration;

use redis::streams::StreamId;

use crate::error::BrokerError;
use crate::queue::Entry;
use papy_core::error::quote_peer;

/// The entry's payload, or an empty one (logged) when it is unreadable: an
/// empty payload is not a frame, so whoever reads it fails just that entry.
pub(super) fn payload_of(e: &StreamId) -> Vec<u8> {
    let reason = match e.map.get("f").map(redis::from_redis_value::<Vec<u8>>) {
        Some(Ok(payload)) => return payload,
        Some(Err(err)) => format!("field `f`: {}", quote_peer(&err.to_string())),
        None => "no field `f`".to_string(),
    };
    let id = e.id.clone();
    tracing::warn!("{}", BrokerError::Malformed { id, reason });
    Vec::new()
}

pub(super) fn field_string(e: &StreamId, name: &str) -> String {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default()
}

pub(super) fn job_of(e: &StreamId) -> Option<u64> {
    field_string(e, "j").parse().ok()
}

/// The busy time a worker reported with a result (its `b` field, in
/// microseconds), if it is a number of at most 20 digits.
pub(super) fn busy_of(e: &StreamId) -> Option<Duration> {
    let text = field_string(e, "b");
    let micros = text.parse().ok().filter(|_| text.len() <= 20)?;
    Some(Duration::from_micros(micros))
}

pub(super) fn task_entry(e: &StreamId, deliveries: u64) -> Entry {
    Entry {
        id: e.id.clone(),
        session: field_string(e, "s"),
        job: job_of(e),
        payload: payload_of(e),
        deliveries,
    }
}
