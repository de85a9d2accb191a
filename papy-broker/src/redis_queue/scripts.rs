//! The Lua scripts the queue runs on the server (each atomic there).

/// Heartbeat: for each id (ARGV[3..]) still pending with consumer ARGV[2],
/// resets its idle time (`XCLAIM ... JUSTID` counts no delivery); entries
/// another consumer has taken over (or acknowledged) are left alone, and
/// returned.
pub(super) const TOUCH_SCRIPT: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
";

/// Claims a job for a task entry (see [`Queue::claim_job`]). KEYS: the
/// run's settings, its jobs hash, its task stream; ARGV: the entry's
/// session, the job, the entry's id, the group, the lease in seconds (0:
/// none). Returns 0 (the entry holds the job), 1 (a replay: acknowledged,
/// deleted and counted) or 2 (the run is gone: nothing written).
pub(super) const CLAIM_SCRIPT: &str = r"
local s = redis.call('HGET', KEYS[1], 'session')
if not s then return 2 end
local lease = tonumber(ARGV[5])
local field = ARGV[1] .. ':' .. ARGV[2]
if s == ARGV[1] then
  local holder = redis.call('HGET', KEYS[2], field)
  if not holder then
    redis.call('HSET', KEYS[2], field, ARGV[3])
    if lease > 0 then redis.call('EXPIRE', KEYS[2], lease) end
    return 0
  end
  if holder == ARGV[3] then return 0 end
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'replays', 1)
if lease > 0 then redis.call('EXPIRE', KEYS[2], lease) end
return 1
";

/// Reclaims entries idle for long (see [`Queue::reclaim`]) with their
/// delivery counts, in one round trip: `XAUTOCLAIM` (acknowledging the ids
/// it reports deleted, which cannot run), then `XPENDING` for each entry
/// taken (an error of `XAUTOCLAIM`, such as `NOGROUP`, is returned as
/// it is). KEYS: the task stream; ARGV: the group, the consumer, the minimum
/// idle time in ms, the start id, the count. Returns the next start id,
/// the entries (as `XAUTOCLAIM` gives them) and their delivery counts.
pub(super) const RECLAIM_SCRIPT: &str = r"
local r = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
if r.err then return r end
if r[3] and #r[3] > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(r[3])) end
local taken, counts = {}, {}
for _, e in ipairs(r[2]) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    taken[#taken + 1] = e
    counts[#counts + 1] = (p[1] and p[1][4]) or 1
  end
end
return {r[1], taken, counts}
";

/// Drops the results the host has read (see `read_outcomes`), only while
/// the run is still the host's session: a host another one replaced keeps
/// reading until it stops, and must not drop the new host's results.
/// KEYS: the run's settings, its result stream; ARGV: the session, the
/// last result id read (kept, with every later one).
pub(super) const TRIM_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'session') == ARGV[1] then
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])
end
return 0
";
