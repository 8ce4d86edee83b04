//! The Lua scripts: every change that touches more than one key runs as one script, so
//! Redis applies it atomically (no other command runs in between).
//!
//! Every job script takes the same six keys, in this order (the release also takes
//! the waiters, `KEYS[7]`):
//! `KEYS[1]` jobs (hash), `KEYS[2]` run_times (sorted set), `KEYS[3]` claimed (sorted
//! set), `KEYS[4]` leases (hash), `KEYS[5]` corrupt (hash), `KEYS[6]` held_indexed
//! (string). The per-holder sets `held:<holder>` are named from the jobs key (same
//! prefix, so on a cluster the same hash tag and slot).
//!
//! Scores and run times travel as decimal strings of UTC microseconds; `''` stands for
//! "paused" (no run time). A lease is the string `<expiry_us>|<run_us>|<holder>`, where
//! `run_us` is the claimed job's run time (`''` when it was paused while claimed), kept
//! so that an expired lease can put the job back into `run_times`.
//!
//! Every lease with a run time is also in its holder's `held:<holder>` sorted set,
//! scored by that run time, so a claim finds its caller's stranded claims by a range
//! read of one set. The sets may hold stale members (written by an earlier version
//! that did not keep them): every reader checks a member against its lease.
//!
//! The run history scripts ([`HistoryScripts`]) take the key prefix as `ARGV[1]` and
//! name their keys from it (a record's keys depend on its job, outcome and node, some
//! of them only known once the stored record is read): see the layout in
//! [`RedisRunHistory`](crate::RedisRunHistory).

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the scripts.
const PRELUDE: &str = r"
local jobs, run_times, claimed, leases, corrupt, indexed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- The keys' common prefix (the jobs key is `<prefix>jobs`).
local base = string.sub(jobs, 1, #jobs - 4)

-- The lease on a job: expiry, run time ('' = paused) and holder; nil when none.
local function lease_of(id)
  local lease = redis.call('HGET', leases, id)
  if not lease then return nil end
  local expiry, run, holder = string.match(lease, '^([^|]*)|([^|]*)|(.*)$')
  if not expiry or not tonumber(expiry) then return nil end
  return expiry, run, holder
end

-- The sorted set of the claims `holder` holds on scheduled jobs, by run time.
local function held(holder) return base .. 'held:' .. holder end

-- Records that `holder` holds a lease on `id` for run time `run` ('' = paused: not
-- indexed, a paused job is never due).
local function hold(holder, id, run)
  if run ~= '' then
    redis.call('ZADD', held(holder), run, id)
  else
    redis.call('ZREM', held(holder), id)
  end
end

-- Ends `id`'s lease (whoever holds it) with its index entry.
local function drop_lease(id)
  local e, _, h = lease_of(id)
  if e then redis.call('ZREM', held(h), id) end
  redis.call('HDEL', leases, id)
end

-- A store written before the `held:` sets: index every lease once (then the marker
-- says it is done; every script keeps the sets up to date from then on).
local function ensure_index()
  if redis.call('EXISTS', indexed) == 1 then return end
  local all = redis.call('HGETALL', leases)
  for i = 1, #all, 2 do
    local expiry, run, holder = string.match(all[i + 1], '^([^|]*)|([^|]*)|(.*)$')
    if expiry and tonumber(expiry) and tonumber(run) then
      redis.call('ZADD', held(holder), run, all[i])
    end
  end
  redis.call('SET', indexed, '1')
end

-- `cmd key ...args`, in chunks: Lua's unpack takes a few thousand values at most. Chunks
-- of 1000 keep (score, member) and (field, value) pairs whole.
local function batched(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- The server's time in microseconds (a decimal string): leases are timed by it, so
-- that node clock skew cannot let two nodes hold one. Redis 7 replicates a script's
-- effects, so TIME may precede writes; Redis 5 and 6 must be told to.
local function server_us()
  if redis.replicate_commands then pcall(redis.replicate_commands) end
  local t = redis.call('TIME')
  return string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end

-- The later of two scores (decimal strings).
local function later(a, b)
  if tonumber(a) >= tonumber(b) then return a end
  return b
end

-- Stores a job's state and indexes it by its run time ('' = paused). A lease on an
-- existing job is kept: the job stays with the scheduler that claimed it, and becomes
-- claimable again at the later of its run time and the lease's expiry.
local function put(id, state, run)
  local existed = redis.call('HSET', jobs, id, state) == 0
  redis.call('HDEL', corrupt, id)
  redis.call('ZREM', run_times, id)
  redis.call('ZREM', claimed, id)
  local expiry, holder = nil, nil
  if existed then
    local e, _, h = lease_of(id)
    expiry, holder = e, h
  end
  if expiry then
    redis.call('HSET', leases, id, expiry .. '|' .. run .. '|' .. holder)
    hold(holder, id, run)
    if run ~= '' then redis.call('ZADD', claimed, later(run, expiry), id) end
  else
    drop_lease(id)
    if run ~= '' then redis.call('ZADD', run_times, run, id) end
  end
end
";

/// `add_jobs`: ARGV = replace ('1'/'0'), then (id, state, run) triples. Without
/// replace, returns the first id that conflicts (with a stored job or an earlier job
/// of the batch) and changes nothing; otherwise stores every job and returns nil.
const ADD: &str = r"
local replace = ARGV[1] == '1'
local n = (#ARGV - 1) / 3
if not replace then
  local seen = {}
  for i = 0, n - 1 do
    local id = ARGV[2 + 3 * i]
    if seen[id] or redis.call('HEXISTS', jobs, id) == 1 then return id end
    seen[id] = true
  end
end
for i = 0, n - 1 do
  put(ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i])
end
return false
";

/// `update_job`: ARGV = id, state, run. Returns 0 when the job does not exist
/// (nothing is created), 1 when it was replaced (its lease, if any, kept).
const UPDATE: &str = r"
if redis.call('HEXISTS', jobs, ARGV[1]) == 0 then return 0 end
put(ARGV[1], ARGV[2], ARGV[3])
return 1
";

/// `acquire_due_jobs`: ARGV = now_us, lease_us, limit, holder, max_state_bytes. `now`
/// (the caller's clock) says which jobs are due; leases run from the server's `TIME`
/// (`expiry` = server time + lease) and expire by it.
///
/// 1. Leases that have expired (by the server's time) on jobs whose score in `claimed`
///    has passed (by the later of both clocks) are dropped and their jobs go back to
///    `run_times` at their run time.
///    Leases the caller holds on due jobs end the same way (stranded claims): the
///    members of its `held:` set scored at or before now, each checked against its
///    lease. A store without the `held:` sets is indexed first, once.
/// 2. Up to `limit` jobs due by now are taken from `run_times` in (score, id) order;
///    each gets the lease `expiry|run|holder` and moves to `claimed` at the later of
///    its run time and the expiry. A state larger than max_state_bytes is not sent:
///    the job is set aside in `corrupt` at once. An index entry without a job is
///    dropped.
///
/// Returns `{ {id, state, id, state, ...}, {id, error, ...} }`.
const CLAIM: &str = r"
local now, lease, limit, holder, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local server = server_us()
local expiry = string.format('%.0f', tonumber(server) + lease)
ensure_index()
for _, id in ipairs(redis.call('ZRANGEBYSCORE', claimed, '-inf', later(now, server))) do
  local e, run = lease_of(id)
  if not e or tonumber(e) <= tonumber(server) then
    redis.call('ZREM', claimed, id)
    drop_lease(id)
    if run and run ~= '' and redis.call('HEXISTS', jobs, id) == 1 then
      redis.call('ZADD', run_times, run, id)
    end
  end
end
-- Leases the caller itself holds on due jobs were stranded (a claim whose reply was
-- lost): a scheduler holds no claim between its passes, so they end too, and the jobs
-- are claimed again below. Only the caller's own index is read.
local mine = held(holder)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', mine, '-inf', now)) do
  local e, run, h = lease_of(id)
  if e and h == holder and run ~= '' and tonumber(run) <= tonumber(now) then
    redis.call('ZREM', claimed, id)
    redis.call('HDEL', leases, id)
    redis.call('ZREM', mine, id)
    if redis.call('HEXISTS', jobs, id) == 1 then
      redis.call('ZADD', run_times, run, id)
    end
  elseif e and h == holder and run ~= '' then
    redis.call('ZADD', mine, run, id)
  else
    redis.call('ZREM', mine, id)
  end
end
local taken, bad = {}, {}
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', run_times, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local ids = {}
  for i = 1, #due, 2 do ids[#ids + 1] = due[i] end
  batched('ZREM', run_times, ids)
  -- The writes go in a few calls of many members each, not a call per job.
  local leased, runs, scores = {}, {}, {}
  for n = 1, #ids, 1000 do
    local states = redis.call('HMGET', jobs, unpack(ids, n, math.min(n + 999, #ids)))
    for k = 1, #states do
      local j = n + k - 1
      local id, run, state = ids[j], due[2 * j], states[k]
      if not state then
        drop_lease(id)
      elseif #state > cap then
        local err = 'the stored state is ' .. #state .. ' bytes, more than the limit of ' .. cap .. ' bytes'
        redis.call('HSET', corrupt, id, err)
        drop_lease(id)
        bad[#bad + 1] = id
        bad[#bad + 1] = err
      else
        leased[#leased + 1] = id
        leased[#leased + 1] = expiry .. '|' .. run .. '|' .. holder
        runs[#runs + 1] = run
        runs[#runs + 1] = id
        scores[#scores + 1] = later(run, expiry)
        scores[#scores + 1] = id
        taken[#taken + 1] = id
        taken[#taken + 1] = state
      end
    end
  end
  batched('HSET', leases, leased)
  batched('ZADD', mine, runs)
  batched('ZADD', claimed, scores)
end
return { taken, bad }
";

/// On a cluster, before claiming: what a claim (`CLAIM`) on this partition would take
/// first, without taking it. ARGV = now_us, limit, holder. Returns a flat list of
/// `id, run_us`: up to `limit` due members of `run_times`, the due jobs whose leases
/// have expired (by the server's time), and the due jobs the holder's own live leases
/// hold (stranded claims: its `held:` set, or every lease in a store not yet indexed);
/// an id may come twice. It writes nothing.
const PEEK: &str = r"
local now, limit, holder = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local server = server_us()
local found = {}
local function due(id, run)
  if run and run ~= '' and tonumber(run) <= tonumber(now) and redis.call('HEXISTS', jobs, id) == 1 then
    found[#found + 1] = id
    found[#found + 1] = run
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', claimed, '-inf', later(now, server))) do
  local e, run = lease_of(id)
  if e and tonumber(e) <= tonumber(server) then due(id, run) end
end
local own
if redis.call('EXISTS', indexed) == 1 then
  own = redis.call('ZRANGEBYSCORE', held(holder), '-inf', now)
else
  own = redis.call('HKEYS', leases)
end
for _, id in ipairs(own) do
  local e, run, h = lease_of(id)
  if e and h == holder and tonumber(e) > tonumber(server) then due(id, run) end
end
local heads = redis.call('ZRANGEBYSCORE', run_times, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #heads, 2 do
  found[#found + 1] = heads[i]
  found[#found + 1] = heads[i + 1]
end
return found
";

/// `release_jobs`: ARGV = holder, change channel, token, `n`, then `n` keys that must
/// exist (the `running` records written just before in the same pipeline: when one is
/// missing, nothing is released and `false` is returned), then entries `'u', id, state,
/// run` (store the new state and end the lease) or `'r', id` (remove the job). An entry
/// is applied only while the holder holds the job's lease (expired or not). Returns
/// `{ lost, due, claimed }`: the ids of the entries not applied (gone, or leased to
/// another holder, or to nobody), and the first scores of `run_times` and `claimed`
/// after the release (`get_next_run_time`'s reads; `''` when empty). When any entry
/// applied and some scheduler waits for a release (`KEYS[7]`, the waiters, holds an
/// instant ahead of the server's time), publishes the token on the channel (that
/// scheduler looks again). A release wakes nobody else: it moves its job's next run
/// time later, never earlier than what a scheduler that saw the job unleased planned.
const RELEASE: &str = r"
local holder, channel, token = ARGV[1], ARGV[2], ARGV[3]
local now = server_us()
local required = tonumber(ARGV[4])
for k = 5, 4 + required do
  if redis.call('EXISTS', ARGV[k]) == 0 then return false end
end
local lost, applied = {}, 0
local i = 5 + required
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  local expiry, _, h = lease_of(id)
  if redis.call('HEXISTS', jobs, id) == 0 or not expiry or h ~= holder then
    lost[#lost + 1] = id
  else
    applied = applied + 1
    redis.call('ZREM', run_times, id)
    redis.call('ZREM', claimed, id)
    redis.call('HDEL', leases, id)
    redis.call('ZREM', held(holder), id)
    redis.call('HDEL', corrupt, id)
    if op == 'r' then
      redis.call('HDEL', jobs, id)
    else
      redis.call('HSET', jobs, id, ARGV[i + 2])
      if ARGV[i + 3] ~= '' then redis.call('ZADD', run_times, ARGV[i + 3], id) end
    end
  end
  if op == 'r' then i = i + 2 else i = i + 4 end
end
if applied > 0 and redis.call('ZRANGEBYSCORE', KEYS[7], now, '+inf', 'LIMIT', 0, 1)[1] then
  redis.call('PUBLISH', channel, token)
end
local function first(key)
  local top = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if top[2] then return top[2] end
  return ''
end
return { lost, first(run_times), first(claimed) }
";

/// `extend_leases`: ARGV = holder, lease_us, then ids. Extends every lease the holder
/// still holds (live at the server's `TIME`, on an existing job) to the server's time
/// plus the lease and returns the ids of the others.
const EXTEND: &str = r"
local holder, lease = ARGV[1], tonumber(ARGV[2])
local server = server_us()
local now, expiry = tonumber(server), string.format('%.0f', tonumber(server) + lease)
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local e, run, h = lease_of(id)
  if e and h == holder and tonumber(e) > now and redis.call('HEXISTS', jobs, id) == 1 then
    redis.call('HSET', leases, id, expiry .. '|' .. run .. '|' .. holder)
    hold(holder, id, run)
    if run ~= '' then redis.call('ZADD', claimed, later(run, expiry), id) end
  else
    lost[#lost + 1] = id
  end
end
return lost
";

/// Sets aside jobs that were claimed but could not be decoded: ARGV = holder, then
/// (id, state as claimed, error) triples. While the holder still holds the lease, the
/// lease ends and, when the state is still the one that was claimed, the job is marked
/// in `corrupt` (and stays out of both indexes); a state replaced meanwhile is put
/// back into `run_times` instead. Jobs stay in `jobs`.
const QUARANTINE: &str = r"
local holder = ARGV[1]
for i = 2, #ARGV, 3 do
  local id, seen, err = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local expiry, run, h = lease_of(id)
  if expiry and h == holder then
    redis.call('HDEL', leases, id)
    redis.call('ZREM', held(holder), id)
    redis.call('ZREM', claimed, id)
    if redis.call('HGET', jobs, id) == seen then
      redis.call('HSET', corrupt, id, err)
    elseif run ~= '' and redis.call('HEXISTS', jobs, id) == 1 then
      redis.call('ZADD', run_times, run, id)
    end
  end
end
return 0
";

/// `remove_job`: ARGV = id. Removes the job from every key (its lease with its index
/// entry); returns 1 when the job existed, else 0.
const REMOVE: &str = r"
local id = ARGV[1]
drop_lease(id)
redis.call('ZREM', run_times, id)
redis.call('ZREM', claimed, id)
redis.call('HDEL', corrupt, id)
return redis.call('HDEL', jobs, id)
";

/// `remove_all_jobs`: deletes every key of the partition, the `held:` sets of every
/// holder of a lease included.
const CLEAR: &str = r"
local seen = {}
for _, lease in ipairs(redis.call('HVALS', leases)) do
  local holder = string.match(lease, '^[^|]*|[^|]*|(.*)$')
  if holder and not seen[holder] then
    seen[holder] = true
    redis.call('DEL', held(holder))
  end
end
redis.call('DEL', jobs, run_times, claimed, leases, corrupt, indexed)
return 0
";

pub(crate) fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// The compiled scripts (their SHA1 is computed once).
pub(crate) struct Scripts {
    pub(crate) add: Script,
    pub(crate) update: Script,
    pub(crate) claim: Script,
    pub(crate) peek: Script,
    pub(crate) release: Script,
    pub(crate) extend: Script,
    pub(crate) quarantine: Script,
    pub(crate) remove: Script,
    pub(crate) clear: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    add: script(ADD),
    update: script(UPDATE),
    claim: script(CLAIM),
    peek: script(PEEK),
    release: script(RELEASE),
    extend: script(EXTEND),
    quarantine: script(QUARANTINE),
    remove: script(REMOVE),
    clear: script(CLEAR),
});

/// Helpers shared by the run history scripts: key names from the prefix (`ARGV[1]`),
/// and `drop`, which deletes a record with its index entries.
const HISTORY_PRELUDE: &str = r"
local prefix = ARGV[1]
local all = prefix .. 'runs'
local function run_key(id) return prefix .. 'run:' .. id end
local function job_set(job) return prefix .. 'runs:job:' .. job end
local function outcome_set(outcome) return prefix .. 'runs:outcome:' .. outcome end
local function node_set(node) return prefix .. 'runs:node:' .. node end

-- Deletes a run record and its entries in every index; returns 1 when it existed.
local function drop(id)
  local key = run_key(id)
  local old = redis.call('HMGET', key, 'job_id', 'outcome', 'node')
  redis.call('ZREM', all, id)
  if old[1] then redis.call('ZREM', job_set(old[1]), id) end
  if old[2] then redis.call('ZREM', outcome_set(old[2]), id) end
  if old[3] then redis.call('ZREM', node_set(old[3]), id) end
  return redis.call('DEL', key)
end

-- Records come in ARGV from index 2 on, each as `id, score, job, outcome, node, n` and
-- `n` field/value pairs (the whole hash). The index of the record after the one at `i`.
local function after(i) return i + 6 + 2 * tonumber(ARGV[i + 5]) end

-- Writes the record at `i` whole, in place of any stored one: it leaves the job, outcome
-- and node sets it no longer belongs to, and fields the stored one had but it lacks are
-- gone. Returns the index of the next record.
local function write_run(i)
  local id, score, job, outcome, node = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = run_key(id)
  local old = redis.call('HMGET', key, 'job_id', 'outcome', 'node')
  if old[1] and old[1] ~= job then redis.call('ZREM', job_set(old[1]), id) end
  if old[2] and old[2] ~= outcome then redis.call('ZREM', outcome_set(old[2]), id) end
  if old[3] and old[3] ~= node then redis.call('ZREM', node_set(old[3]), id) end
  redis.call('DEL', key)
  local fields = {}
  for j = 1, 2 * tonumber(ARGV[i + 5]) do fields[j] = ARGV[i + 5 + j] end
  redis.call('HSET', key, unpack(fields))
  redis.call('ZADD', all, score, id)
  redis.call('ZADD', job_set(job), score, id)
  redis.call('ZADD', outcome_set(outcome), score, id)
  redis.call('ZADD', node_set(node), score, id)
  return after(i)
end
";

/// `record_runs`: ARGV = prefix, then per record `id, score, job, outcome, node, n` and
/// `n` field/value pairs (the whole hash). A stored record with the same id is
/// replaced whole: it leaves the job, outcome and node sets it no longer belongs to,
/// and fields it had but the new one lacks are gone. Returns how many were written.
const RECORD_RUNS: &str = r"
local i, count = 2, 0
while i <= #ARGV do
  i = write_run(i)
  count = count + 1
end
return count
";

/// `interrupt_running`: ARGV as [`RECORD_RUNS`], the records rewritten `interrupted`;
/// each is written only while the stored one is still `running` on the node being
/// interrupted (the record's `node`), all in one atomic step, so of callers
/// interrupting the same runs at once each run goes to one, and a caller whose read
/// came before another's takeover (the record `running` again, on the new node) leaves
/// it alone. Each
/// keeps the stored `started_at` (a start written since the caller read the record
/// stays: the run started). Returns the ids written, each followed by that start
/// (`''` for none).
const INTERRUPT_RUNS: &str = r"
local i, written = 2, {}
while i <= #ARGV do
  local key = run_key(ARGV[i])
  local stored = redis.call('HMGET', key, 'outcome', 'node')
  if stored[1] == 'running' and stored[2] == ARGV[i + 4] then
    local started = redis.call('HGET', key, 'started_at')
    written[#written + 1] = ARGV[i]
    written[#written + 1] = started or ''
    i = write_run(i)
    if started then
      redis.call('HSET', key, 'started_at', started)
    else
      redis.call('HDEL', key, 'started_at')
    end
  else
    i = after(i)
  end
end
return written
";

/// `record_starts`: ARGV as [`RECORD_RUNS`], `running` records with their
/// `started_at`; all in one atomic step. A record with no stored one is written whole;
/// a stored one still `running` gets the `started_at` only if it has none; others are
/// left alone. Returns the ids whose stored record is `running` (their runs may start).
const START_RUNS: &str = r"
local i, started = 2, {}
while i <= #ARGV do
  local key = run_key(ARGV[i])
  local outcome = redis.call('HGET', key, 'outcome')
  if not outcome then
    started[#started + 1] = ARGV[i]
    i = write_run(i)
  else
    if outcome == 'running' then
      started[#started + 1] = ARGV[i]
      if redis.call('HEXISTS', key, 'started_at') == 0 then
        for j = i + 6, after(i) - 1, 2 do
          if ARGV[j] == 'started_at' then redis.call('HSET', key, 'started_at', ARGV[j + 1]) end
        end
      end
    end
    i = after(i)
  end
end
return started
";

/// `prune_job_runs`, one batch: ARGV = prefix, job, offset, batch, keep. Walks the
/// job's runs newest first from rank `offset`; running runs stay, the first `keep`
/// ended ones stay, the other ended ones are deleted (an index entry without a record
/// is dropped). Returns `{ removed, examined, stayed, keep left }`: the next batch
/// starts at `offset + stayed`.
const PRUNE_JOB: &str = r"
local job, offset, batch, keep = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local set = job_set(job)
local ids = redis.call('ZREVRANGE', set, offset, offset + batch - 1)
local removed, stayed = 0, 0
for _, id in ipairs(ids) do
  local outcome = redis.call('HGET', run_key(id), 'outcome')
  if not outcome then
    redis.call('ZREM', set, id)
    redis.call('ZREM', all, id)
  elseif outcome == 'running' then
    stayed = stayed + 1
  elseif keep > 0 then
    keep = keep - 1
    stayed = stayed + 1
  else
    removed = removed + drop(id)
    redis.call('ZREM', set, id)
  end
end
return { removed, #ids, stayed, keep }
";

/// `prune_runs_before`, one batch: ARGV = prefix, cut (microseconds, exclusive),
/// offset, batch. Takes the runs scheduled before the cut, oldest first from rank
/// `offset`, and deletes the ended ones (an index entry without a record is dropped).
/// Returns `{ removed, examined, stayed }`: the next batch starts at `offset + stayed`.
const PRUNE_BEFORE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', all, '-inf', '(' .. ARGV[2], 'LIMIT', tonumber(ARGV[3]), tonumber(ARGV[4]))
local removed, stayed = 0, 0
for _, id in ipairs(ids) do
  local outcome = redis.call('HGET', run_key(id), 'outcome')
  if not outcome then
    redis.call('ZREM', all, id)
  elseif outcome == 'running' then
    stayed = stayed + 1
  else
    removed = removed + drop(id)
  end
end
return { removed, #ids, stayed }
";

fn history_script(body: &str) -> Script {
    Script::new(&format!("{HISTORY_PRELUDE}{body}"))
}

/// The run history's compiled scripts.
pub(crate) struct HistoryScripts {
    pub(crate) record: Script,
    pub(crate) interrupt: Script,
    pub(crate) start: Script,
    pub(crate) prune_job: Script,
    pub(crate) prune_before: Script,
}

pub(crate) static HISTORY_SCRIPTS: LazyLock<HistoryScripts> = LazyLock::new(|| HistoryScripts {
    record: history_script(RECORD_RUNS),
    interrupt: history_script(INTERRUPT_RUNS),
    start: history_script(START_RUNS),
    prune_job: history_script(PRUNE_JOB),
    prune_before: history_script(PRUNE_BEFORE),
});
