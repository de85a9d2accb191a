//! What becomes of a task entry a worker (or the host, for a stale one)
//! has just taken: opened, its job claimed, and run, or settled without
//! running (dead-lettered, acknowledged as a replay) or left pending.

use papy_core::error::quote_peer;
use papy_core::protocol::{Call, Frame, WireInboxes};

use crate::codec::decode;
use crate::error::{BrokerError, Result};
use crate::queue::{Claim, Entry, Queue};
use crate::seal::{Role, Sealer};

/// Why an entry delivered `deliveries` times is given up on.
pub(crate) fn too_often(deliveries: u64, max_attempts: u32) -> String {
    format!(
        "delivered {deliveries} times (max_attempts = {max_attempts}): every worker that took it died or stalled"
    )
}

/// A task entry admitted to run: the parts of its `Task` frame.
pub(crate) struct Admitted {
    pub(crate) id: u64,
    pub(crate) chain: Vec<Call>,
    pub(crate) node: String,
    pub(crate) indices: Vec<u64>,
    pub(crate) inboxes: WireInboxes,
}

/// Dead-letters entry `e` with a sealed letter: giving up on `job` (the id
/// of its authenticated task frame; `None` when the entry is not the
/// run's), because of `reason` (quoted: at most 1 KiB).
pub(crate) fn give_up(
    q: &mut dyn Queue,
    sealer: &Sealer,
    e: &Entry,
    job: Option<u64>,
    reason: &str,
) -> Result<()> {
    let letter = sealer.dead_letter(&e.session, job, &e.id, e.deliveries, reason);
    tracing::warn!(
        "entry {}: {}; moved to the dead-letter stream",
        quote_peer(&e.id),
        letter.reason
    );
    q.dead_letter(e, &letter)
}

/// Opens entry `e`: its `Task` frame, if it carries the run's tag and
/// holds one; otherwise it is dead-lettered naming no job (whoever wrote it
/// has no key, so neither its job number nor its text is to be believed;
/// the worker's reason is fixed text) and `None`.
fn open(q: &mut dyn Queue, sealer: &Sealer, e: &Entry) -> Result<Option<Admitted>> {
    // Whoever can write to the stream is not trusted: an entry without
    // the run's tag is never run.
    let why = match sealer.open(Role::Task, &e.session, &e.payload) {
        Ok(payload) => match decode(&e.id, payload) {
            Ok(Frame::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            }) => {
                return Ok(Some(Admitted {
                    id,
                    chain,
                    node,
                    indices,
                    inboxes,
                }))
            }
            Ok(_) => BrokerError::Malformed {
                id: e.id.clone(),
                reason: "not a Task frame".into(),
            }
            .to_string(),
            Err(err) => err.to_string(),
        },
        Err(why) => {
            // A worker whose key is not the run's must not dead-letter the
            // run's real entries: it checks the key again and stops.
            if let Some(s) = q.settings()? {
                crate::options::check_key(&s, sealer)?;
            }
            why
        }
    };
    give_up(q, sealer, e, None, &why)?;
    Ok(None)
}

/// Decides what becomes of task entries just taken (read, reclaimed, or
/// claimed by the host as stale): those to run, in order; the others have
/// been settled (dead-lettered, acknowledged as replays) or left pending
/// (their run is gone). Their jobs are claimed together (one round trip).
///
/// - An entry without the run's tag, or whose payload is not a `Task`
///   frame, is dead-lettered naming no job ([`open`]).
/// - Of the entries that carry the same job (a sealed entry appended again,
///   by an attacker or by the host after a reconnection), only the first to
///   be claimed runs; the others are acknowledged and counted. The entry
///   holding the job runs again when it is redelivered (reclaimed from a
///   dead worker): at least once.
/// - An entry delivered more than `max_attempts` times is dead-lettered
///   naming its job.
pub(crate) fn admit_all(
    q: &mut dyn Queue,
    sealer: &Sealer,
    entries: Vec<Entry>,
    max_attempts: u32,
) -> Result<Vec<(Entry, Admitted)>> {
    let mut opened = Vec::with_capacity(entries.len());
    for e in entries {
        if let Some(task) = open(q, sealer, &e)? {
            opened.push((e, task));
        }
    }
    if opened.is_empty() {
        return Ok(opened);
    }
    let claims: Vec<(&Entry, u64)> = opened.iter().map(|(e, t)| (e, t.id)).collect();
    let claims = q.claim_jobs(&claims)?;
    let mut admitted = Vec::with_capacity(opened.len());
    for ((e, task), claim) in opened.into_iter().zip(claims) {
        match claim {
            Claim::Mine if e.deliveries > u64::from(max_attempts) => {
                let why = too_often(e.deliveries, max_attempts);
                give_up(q, sealer, &e, Some(task.id), &why)?;
            }
            Claim::Mine => admitted.push((e, task)),
            Claim::Replay => tracing::warn!(
                "entry {}: job {} of session {} is held by another entry (a replay), or its session is not the run's; acknowledged, not run",
                quote_peer(&e.id),
                task.id,
                quote_peer(&e.session)
            ),
            Claim::RunGone => {
                tracing::debug!("entry {}: the run is gone; left pending", quote_peer(&e.id));
            }
        }
    }
    Ok(admitted)
}
