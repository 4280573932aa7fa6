"""The queue's Lua scripts: every transition that touches more than one key is one script.

Every key a script touches is in the manager's key group (`runtime.manager.keys`), so each runs
on one cluster slot.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ASSIGN",
    "ASSIGN_MANY",
    "COMPLETE",
    "DISCARD",
    "FINISH",
    "FINISH_COMPLETE",
    "PROMOTE",
    "REQUEUE",
    "START",
    "START_MANY",
    "SUBMIT",
]

SUBMIT: Final = """
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {'existing', existing} end
end
local queued = tonumber(redis.call('GET', KEYS[4]) or '0')
if queued >= tonumber(ARGV[2]) then return {'full', tostring(queued)} end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1], 'rt', ARGV[5], 'cx', ARGV[6])
redis.call('INCR', KEYS[4])
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) end
return {'created', ARGV[1]}
"""

# Every script that moves a task also keeps the agent's load (tasks it holds) and appends an
# event the managers turn into metrics; an agent hash that is gone (deregistered) is left alone.

# One assignment: ready, inbox, task and agent keys; group, entry, task id, agent id, now.
_ASSIGN_FN: Final = """
local function assign(ready, inbox, task, agent, group, entry, task_id, agent_id, now)
  if redis.call('HGET', agent, 'draining') ~= '0' then return -1 end
  if redis.call('XACK', ready, group, entry) == 0 then return 0 end
  redis.call('XDEL', ready, entry)
  -- The type travels with the entry: the agent needs no lookup to start it.
  redis.call('XADD', inbox, '*', 'task', task_id, 'type', redis.call('HGET', task, 'agent_type'))
  redis.call('HSET', task, 'status', 'assigned', 'agent', agent_id, 'assigned_at', now)
  redis.call('HINCRBY', agent, 'load', 1)
  return 1
end
"""

# KEYS: ready, inbox, task, agent   ARGV: group, entry, task id, agent id, now
ASSIGN: Final = (
    _ASSIGN_FN + "return assign(KEYS[1], KEYS[2], KEYS[3], KEYS[4], "
    "ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])"
)

# A batch in one script: its entries land in each inbox together, so an agent blocked on its
# inbox wakes once for all of them, not for the first alone.
# KEYS: ready, inbox, task, agent per assignment
# ARGV: group, now, then entry, task id, agent id per assignment → the outcomes, in order
ASSIGN_MANY: Final = (
    _ASSIGN_FN
    + """
local outcomes = {}
for i = 0, #KEYS / 4 - 1 do
  local k, a = i * 4, 2 + i * 3
  outcomes[i + 1] = assign(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[1],
                           ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[2])
end
return outcomes
"""
)

# One start: the task's hash, or 0 when it is no longer this agent's.
_START_FN: Final = """
local function start(task, queued, events, agent_id, now, cap)
  if redis.call('HGET', task, 'status') ~= 'assigned' then return 0 end
  if redis.call('HGET', task, 'agent') ~= agent_id then return 0 end
  redis.call('HSET', task, 'status', 'running', 'started_at', now)
  -- An attempt that finished (its outcome is stored) and lost only its acknowledgement is
  -- finished by this delivery, not run again: no new attempt.
  if redis.call('HEXISTS', task, 'outcome') == 0 then
    redis.call('HINCRBY', task, 'attempts', 1)
  end
  redis.call('DECR', queued)
  local submitted = tonumber(redis.call('HGET', task, 'submitted_at'))
  redis.call('XADD', events, 'MAXLEN', '~', cap, '*', 'kind', 'started',
             'type', redis.call('HGET', task, 'agent_type'),
             'wait', tostring(tonumber(now) - submitted))
  return redis.call('HGETALL', task)
end
"""

# KEYS: task, queued, events   ARGV: agent id, now, events cap → the task's hash, or 0
START: Final = _START_FN + "return start(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])"

# KEYS: events, then task and queued per entry   ARGV: agent id, now, events cap → per entry,
# in order, what START answers
START_MANY: Final = (
    _START_FN
    + """
local started = {}
for i = 1, (#KEYS - 1) / 2 do
  started[i] = start(KEYS[2 * i], KEYS[2 * i + 1], KEYS[1], ARGV[1], ARGV[2], ARGV[3])
end
return started
"""
)

# The attempt is still this agent's: the task runs here under that attempt (the scripts that
# end an attempt set `task`, `agent` and `attempt` first).
_OWNS_ATTEMPT: Final = """
if redis.call('HGET', task, 'status') ~= 'running' then return 0 end
if redis.call('HGET', task, 'agent') ~= agent then return 0 end
if redis.call('HGET', task, 'attempts') ~= attempt then return 0 end
"""

# KEYS: task   ARGV: agent id, attempt, status, result, error, usage (JSON)
# The attempt's outcome (result and usage together) becomes durable before anything is charged
# or acknowledged: whatever happens next, this attempt is never run again.
FINISH: Final = (
    "local task, agent, attempt = KEYS[1], ARGV[1], ARGV[2]"
    + _OWNS_ATTEMPT
    + """
if redis.call('HEXISTS', KEYS[1], 'outcome') == 1 then return 1 end
redis.call('HSET', KEYS[1], 'outcome', ARGV[3], 'outcome_attempt', ARGV[2], 'result', ARGV[4],
           'error', ARGV[5], 'usage', ARGV[6])
return 1
"""
)

# KEYS: inbox, task, agent, events
# ARGV: group, entry, agent id, status, result, error, now, events cap, alpha, usage (JSON),
#       retention (s) of tasks accepted without one
COMPLETE: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'agent') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], 'status', ARGV[4], 'result', ARGV[5], 'error', ARGV[6],
           'finished_at', ARGV[7], 'usage', ARGV[10])
redis.call('EXPIRE', KEYS[2], tonumber(redis.call('HGET', KEYS[2], 'retention_s') or ARGV[11]))
local now = tonumber(ARGV[7])
local submitted = tonumber(redis.call('HGET', KEYS[2], 'submitted_at'))
local started = tonumber(redis.call('HGET', KEYS[2], 'started_at') or ARGV[7])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'load', -1)
  -- Exponentially weighted: recent behaviour counts most, one outlier does not dominate.
  local alpha = tonumber(ARGV[9])
  local ok = 0
  if ARGV[4] == 'succeeded' then ok = 1 end
  local rate = tonumber(redis.call('HGET', KEYS[3], 'success_rate') or '1')
  local avg = tonumber(redis.call('HGET', KEYS[3], 'avg_response_s') or '0')
  redis.call('HSET', KEYS[3], 'success_rate', tostring((1 - alpha) * rate + alpha * ok),
             'avg_response_s', tostring((1 - alpha) * avg + alpha * (now - started)))
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'finished',
           'type', redis.call('HGET', KEYS[2], 'agent_type'), 'status', ARGV[4],
           'agent', ARGV[3], 'duration', tostring(now - submitted),
           'exec', tostring(now - started), 'usage', ARGV[10])
return 1
"""

# KEYS and ARGV as COMPLETE's, then the attempt (ARGV[12]): FINISH and COMPLETE in one step, for
# an attempt with nothing to charge in between (no cost gate). 0 when the attempt is no longer
# this agent's; its outcome is stored as FINISH stores it.
FINISH_COMPLETE: Final = (
    "local task, agent, attempt = KEYS[2], ARGV[3], ARGV[12]"
    + _OWNS_ATTEMPT
    + """
redis.call('HSET', KEYS[2], 'outcome', ARGV[4], 'outcome_attempt', ARGV[12])
"""
    + COMPLETE
)

# KEYS: inbox, task, delayed, dead, queued, agent, events
# ARGV: group, entry, task id, now, first backoff (s), max attempts, reason, events cap,
#       agent id, backoff cap (s), deferral ('' a retry that spends the attempt | seconds to
#       wait exactly | 'backoff': a dependency outage, waits with backoff and spends nothing),
#       '1' when the entry was reclaimed from a silent or gone agent, retention (s), dead cap
# The task's own policy (max_attempts, retention_s, dead_cap, recorded at submit) wins over the
# caller's: every path honours what the task was accepted under.
REQUEUE: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 'gone' end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('HINCRBY', KEYS[6], 'load', -1) end
local status = redis.call('HGET', KEYS[2], 'status')
local finished = redis.call('HEXISTS', KEYS[2], 'outcome') == 1
local mode = ARGV[11]
local deferred = mode ~= '' or finished
local abandoned = '0'
if finished then
  -- Its attempt finished; only the usage record or the acknowledgement is missing: the next
  -- delivery completes it from the stored outcome, spending nothing.
elseif deferred and status == 'running' then
  -- Deferred (a limit or an outage said "later"): the attempt it started is given back.
  redis.call('HINCRBY', KEYS[2], 'attempts', -1)
elseif status == 'assigned' and not deferred then
  -- delivered but never started: the delivery counts as an attempt
  redis.call('HINCRBY', KEYS[2], 'attempts', 1)
elseif status == 'running' and ARGV[12] == '1' then
  -- reclaimed mid-work: the work may have run (and been paid for) without its outcome
  abandoned = '1'
end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
local max_attempts = tonumber(redis.call('HGET', KEYS[2], 'max_attempts') or ARGV[6])
local agent_type = redis.call('HGET', KEYS[2], 'agent_type')
if not deferred and attempts >= max_attempts then
  if status == 'assigned' then redis.call('DECR', KEYS[5]) end
  local cap = tonumber(redis.call('HGET', KEYS[2], 'dead_cap') or ARGV[14])
  redis.call('XADD', KEYS[4], 'MAXLEN', cap, '*', 'task', ARGV[3], 'reason', ARGV[7])
  redis.call('HSET', KEYS[2], 'status', 'dead_lettered', 'error', ARGV[7], 'finished_at', ARGV[4])
  redis.call('EXPIRE', KEYS[2], tonumber(redis.call('HGET', KEYS[2], 'retention_s') or ARGV[13]))
  local submitted = tonumber(redis.call('HGET', KEYS[2], 'submitted_at'))
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'finished', 'type', agent_type,
             'status', 'dead_lettered', 'agent', ARGV[9],
             'duration', tostring(tonumber(ARGV[4]) - submitted), 'abandoned', abandoned,
             'task', ARGV[3])
  return 'dead'
end
if status == 'running' then redis.call('INCR', KEYS[5]) end
local delay
if mode == 'backoff' then
  local outages = redis.call('HINCRBY', KEYS[2], 'deferrals', 1)
  delay = math.min(tonumber(ARGV[10]), tonumber(ARGV[5]) * 2 ^ (outages - 1))
elseif mode ~= '' then
  delay = tonumber(mode)
elseif finished then
  delay = 0
else
  -- Exponential backoff from the attempts made so far, capped.
  delay = math.min(tonumber(ARGV[10]), tonumber(ARGV[5]) * 2 ^ math.max(0, attempts - 1))
end
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + delay, ARGV[3])
redis.call('HSET', KEYS[2], 'status', 'retrying', 'agent', '')
if not finished then redis.call('HSET', KEYS[2], 'error', ARGV[7]) end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'retry', 'type', agent_type,
           'agent', ARGV[9], 'abandoned', abandoned, 'task', ARGV[3])
return 'retry'
"""

# KEYS: delayed, task, ready   ARGV: task id
PROMOTE: Final = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local hints = redis.call('HMGET', KEYS[2], 'request_type', 'complexity')
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1], 'rt', hints[1] or '', 'cx', hints[2] or '0.5')
redis.call('HSET', KEYS[2], 'status', 'queued')
return 1
"""

# KEYS: inbox   ARGV: group, entry. Drops an entry whose task is no longer this agent's.
DISCARD: Final = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
