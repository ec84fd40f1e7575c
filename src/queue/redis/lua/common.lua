-- Prepended to every hookgate script: key names, state moves, counters.
-- ARGV[1] is the key prefix; each script's own arguments start at ARGV[2].
-- Numbers that are times arrive as strings and are stored as given (Lua's
-- doubles would print large ones in exponent form).
local P = ARGV[1]
local function tkey(t, s) return '{' .. P .. ':' .. t .. '}:' .. s end
local function gkey(s) return '{' .. P .. '}:' .. s end
local function dkey(t, id) return tkey(t, 'd:' .. id) end
local function akey(t, id) return tkey(t, 'a:' .. id) end
-- A due/lease member is '<16-digit seq>:<id>': equal scores sort by seq.
local function member_id(m) return string.sub(m, 18) end

-- A delivery changes state: the per-state listing sets and the depth hash.
local function move(t, id, seq, from, to)
  local depth = tkey(t, 'depth')
  if from then
    redis.call('ZREM', tkey(t, 's:' .. from), id)
    redis.call('HINCRBY', depth, from, -1)
  end
  if to then
    redis.call('ZADD', tkey(t, 's:' .. to), seq, id)
    redis.call('HINCRBY', depth, to, 1)
  end
end

-- The shared backlog counters; 'v' orders the copies processes cache.
local function backlog_add(n, bytes)
  local k = gkey('backlog')
  redis.call('HINCRBY', k, 'deliveries', n)
  redis.call('HINCRBY', k, 'bytes', bytes)
  redis.call('HINCRBY', k, 'v', 1)
end

-- Every reply starts with the backlog counters and their version.
local function reply(rest)
  local b = redis.call('HMGET', gkey('backlog'), 'deliveries', 'bytes', 'v')
  local out = {tonumber(b[1]) or 0, tonumber(b[2]) or 0, tonumber(b[3]) or 0}
  for _, v in ipairs(rest) do out[#out + 1] = v end
  return out
end

local function wake(t) redis.call('PUBLISH', gkey('wake'), t) end
local function target_of(id) return redis.call('HGET', gkey('where'), id) end

-- What the admin API shows of a delivery (order: codec.rs RECORD_FIELDS).
local function record(h)
  return redis.call('HMGET', h, 'id', 'ev', 't', 'r', 'st', 'dr', 'n', 'next', 'err', 'c', 'u')
end

-- In flight back to waiting, no attempt counted: pending before its first
-- attempt, else retrying; its due time (and so its place) kept.
local function unlease(t, id)
  local h = dkey(t, id)
  local f = redis.call('HMGET', h, 'seq', 'm', 'n', 'next')
  local to = 'retrying'
  if tonumber(f[3]) == 0 then to = 'pending' end
  redis.call('HSET', h, 'st', to)
  redis.call('HDEL', h, 'tok', 'lu')
  redis.call('ZREM', tkey(t, 'lease'), f[2])
  redis.call('ZADD', tkey(t, 'due'), f[4], f[2])
  move(t, id, f[1], 'in_flight', to)
end

-- Dead or delivered back to pending, due now, with a fresh budget.
local function replay_one(t, id, now, from)
  local h = dkey(t, id)
  local f = redis.call('HMGET', h, 'seq', 'm', 'len')
  redis.call('HSET', h, 'st', 'pending', 'next', now, 'u', now, 'b', 0)
  redis.call('HDEL', h, 'dr', 'tok', 'lu')
  redis.call('ZADD', tkey(t, 'due'), now, f[2])
  redis.call('ZREM', tkey(t, 'done'), id)
  move(t, id, f[1], from, 'pending')
  backlog_add(1, tonumber(f[3]))
end

-- Delete a finished delivery with its attempts; its event goes with its
-- last delivery (Redis drops the emptied hash).
local function forget(t, id, state)
  local h = dkey(t, id)
  local f = redis.call('HMGET', h, 'ev', 'm')
  redis.call('DEL', h, akey(t, id))
  redis.call('ZREM', tkey(t, 'all'), id)
  redis.call('ZREM', tkey(t, 'done'), id)
  move(t, id, 0, state, nil)
  redis.call('HDEL', gkey('where'), id)
  if f[1] then redis.call('HDEL', gkey('ev:' .. f[1]), 't:' .. t) end
end

-- Ordered targets (the model is sqlite/lanes.rs's): 'ordering' holds the
-- path a target is ordered by, 'lanes' maps a key with unfinished
-- deliveries to its head, 'held:<key>' lists the deliveries waiting behind
-- it (pending with no 'next': not in 'due'), and 'blocked' the keys with
-- something waiting, scored by their head's seq. A delivery's key is its
-- field 'ok'. While 'rebuilding' exists, one replica is changing the
-- target's ordering: nothing of the target is claimed meanwhile.
local function held_key(t, k) return tkey(t, 'held:' .. k) end

-- Delivery `id` ended (delivered or dead). When it headed its key's lane,
-- the next held delivery becomes the head, due at its acceptance time.
-- Returns the key and the new head ('' when the lane is gone), or nothing
-- when `id` headed no lane.
local function lane_finish(t, id)
  local k = redis.call('HGET', dkey(t, id), 'ok')
  if not k then return nil end
  local lanes = tkey(t, 'lanes')
  if redis.call('HGET', lanes, k) ~= id then return nil end
  local nxt = redis.call('LPOP', held_key(t, k))
  if not nxt then
    redis.call('HDEL', lanes, k)
    redis.call('ZREM', tkey(t, 'blocked'), k)
    return k, ''
  end
  local f = redis.call('HMGET', dkey(t, nxt), 'c', 'm', 'seq')
  redis.call('HSET', dkey(t, nxt), 'next', f[1])
  redis.call('ZADD', tkey(t, 'due'), f[1], f[2])
  redis.call('HSET', lanes, k, nxt)
  if redis.call('LLEN', held_key(t, k)) == 0 then
    redis.call('ZREM', tkey(t, 'blocked'), k)
  else
    redis.call('ZADD', tkey(t, 'blocked'), f[3], k)
  end
  wake(t)
  return k, nxt
end

-- Put delivery `id` (pending, never attempted) behind the head of key `k`.
local function lane_hold(t, id, k, head)
  redis.call('RPUSH', held_key(t, k), id)
  redis.call('HSET', dkey(t, id), 'ok', k)
  if redis.call('LLEN', held_key(t, k)) == 1 then
    redis.call('ZADD', tkey(t, 'blocked'), redis.call('HGET', dkey(t, head), 'seq'), k)
  end
end
