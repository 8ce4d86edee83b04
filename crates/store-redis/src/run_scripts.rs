//! The run contract's scripts. A job's runs live in the hash `<prefix>runs:<job id>`
//! (fields `v` its version, `f` the job's last fence, `x` 1 while the job waits for
//! its last live run to be removed, and `r:<run id>` each run as JSON), in the job's
//! partition (same hash tag); `<prefix>run_expiry` (sorted set) holds each job with a
//! live run, scored by the earliest end of its live runs' leases (server
//! microseconds), and `<prefix>run_jobs` (set) every job with a runs hash.
//!
//! A step reads a partition's jobs (`RUN_READ`), decides in process with core's
//! `RunTable`, and writes (`RUN_WRITE`) only if no job's version moved meanwhile (and
//! the caller still holds the claims it releases): an optimistic compare-and-set of
//! each job's whole run group, in one script on one slot. A write that finds a
//! version moved writes nothing, and the step reads and decides again.
//!
//! Each script takes the job scripts' six keys (see [`crate::scripts`]), then
//! `KEYS[7]` run_expiry and `KEYS[8]` run_jobs.

use std::sync::LazyLock;

use redis::Script;

use crate::scripts::script;

/// ARGV = holder, then job ids. Returns `{ now, { version, fence, finishing, exists,
/// lease holder or '', state or '', { run JSON... } } per job }`; the state only of the
/// jobs the holder has claimed (a release may keep one, paused).
const RUN_READ: &str = r"
local holder = ARGV[1]
local out = { server_us() }
for i = 2, #ARGV do
  local id = ARGV[i]
  local meta = redis.call('HMGET', base .. 'runs:' .. id, 'v', 'f', 'x')
  local exists = redis.call('HEXISTS', jobs, id)
  local _, _, h = lease_of(id)
  local state = ''
  if h == holder and exists == 1 then state = redis.call('HGET', jobs, id) end
  local rows = {}
  local all = redis.call('HGETALL', base .. 'runs:' .. id)
  for k = 1, #all, 2 do
    if string.sub(all[k], 1, 2) == 'r:' then rows[#rows + 1] = all[k + 1] end
  end
  out[#out + 1] = { meta[1] or '0', meta[2] or '0', meta[3] or '0', exists, h or '', state, rows }
end
return out
";

/// ARGV = holder, then per job: id, the version read, guard (`'-'`, `'exists'`:
/// the job must exist, `'held'`: the caller must hold its claim), fence, finishing,
/// earliest live lease end (`''`: no live run), job op (`'-'` none, `'u'` store
/// `state` with run time `run` and end the claim, `'d'` remove the job), state, run,
/// `n`, then `n` pairs of run id and run JSON. Returns 1, or 0 (nothing written) when
/// a version moved or a guard failed.
const RUN_WRITE: &str = r"
local holder = ARGV[1]
local expiry_key, run_jobs = KEYS[7], KEYS[8]
local entries = {}
local i = 2
while i <= #ARGV do
  local e = { id = ARGV[i], version = ARGV[i + 1], guard = ARGV[i + 2], fence = ARGV[i + 3],
    finishing = ARGV[i + 4], expiry = ARGV[i + 5], op = ARGV[i + 6], state = ARGV[i + 7],
    run = ARGV[i + 8], first = i + 10 }
  i = e.first + 2 * tonumber(ARGV[i + 9])
  e.last = i - 1
  entries[#entries + 1] = e
  local v = redis.call('HGET', base .. 'runs:' .. e.id, 'v') or '0'
  if v ~= e.version then return 0 end
  if e.guard ~= '-' and redis.call('HEXISTS', jobs, e.id) == 0 then return 0 end
  if e.guard == 'held' then
    local expiry, _, h = lease_of(e.id)
    if not expiry or h ~= holder then return 0 end
  end
end
for _, e in ipairs(entries) do
  local runs = base .. 'runs:' .. e.id
  redis.call('HSET', runs, 'v', tostring(tonumber(e.version) + 1), 'f', e.fence, 'x', e.finishing)
  for k = e.first, e.last, 2 do
    redis.call('HSET', runs, 'r:' .. ARGV[k], ARGV[k + 1])
  end
  redis.call('SADD', run_jobs, e.id)
  if e.expiry == '' then
    redis.call('ZREM', expiry_key, e.id)
  else
    redis.call('ZADD', expiry_key, e.expiry, e.id)
  end
  if e.op ~= '-' then
    redis.call('ZREM', run_times, e.id)
    redis.call('ZREM', claimed, e.id)
    drop_lease(e.id)
    redis.call('HDEL', corrupt, e.id)
    if e.op == 'd' then
      redis.call('HDEL', jobs, e.id)
    else
      redis.call('HSET', jobs, e.id, e.state)
      if e.run ~= '' then redis.call('ZADD', run_times, e.run, e.id) end
    end
  end
end
return 1
";

/// ARGV = limit. The jobs with a live run whose lease ended on the server's clock,
/// earliest first.
const RUN_EXPIRED: &str = r"
return redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', server_us(), 'LIMIT', 0, tonumber(ARGV[1]))
";

/// The compiled run scripts.
pub(crate) struct RunScripts {
    pub(crate) read: Script,
    pub(crate) write: Script,
    pub(crate) expired: Script,
}

pub(crate) static RUN_SCRIPTS: LazyLock<RunScripts> = LazyLock::new(|| RunScripts {
    read: script(RUN_READ),
    write: script(RUN_WRITE),
    expired: script(RUN_EXPIRED),
});
