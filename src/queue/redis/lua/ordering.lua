-- Change the ordering of one target (see RedisStore::set_ordering), in
-- steps, under a lock ('rebuilding', holding the caller's token) that
-- keeps claims off the target, other replicas out, and enqueues from
-- keying (what is stored meanwhile is walked like the rest). ARGV: 2 step,
-- 3 target, 4 token, then the step's own:
--   begin (5 wanted path or '', 6 lock ms): 'unchanged' | 'busy' | 'begun'
--   release (5 batch, 6 lock ms): lets up to a batch of held deliveries go
--     (due at their acceptance time); the count
--   clear: forgets the old lanes and path
--   page (5 after seq, 6 limit, 7 lock ms): the unfinished deliveries after
--     a seq, in seq order, as (id, seq, body length) triples
--   rebuild (5 lock ms, then (id, key) pairs in seq order): the first of a
--     key heads its lane, later ones never attempted wait behind it;
--     (held, heads)
--   finish (5 wanted path or '', 6 walked up to seq): 'more' while
--     unfinished deliveries past that seq remain, else 'done' and the lock
--     is let go
local step, t, token = ARGV[2], ARGV[3], ARGV[4]
local lock = tkey(t, 'rebuilding')
if step == 'begin' then
  local holder = redis.call('GET', lock)
  if holder and holder ~= token then return reply({'busy'}) end
  local cur = redis.call('GET', tkey(t, 'ordering')) or ''
  if cur == ARGV[5] and not holder then return reply({'unchanged'}) end
  redis.call('SET', lock, token, 'PX', ARGV[6])
  return reply({'begun', cur})
end
if redis.call('GET', lock) ~= token then return reply({'lost'}) end
if step == 'release' then
  redis.call('PEXPIRE', lock, ARGV[6])
  local batch, n = tonumber(ARGV[5]), 0
  local blocked = tkey(t, 'blocked')
  while n < batch do
    local k = redis.call('ZRANGE', blocked, 0, 0)[1]
    if not k then break end
    local ids = redis.call('LPOP', held_key(t, k), batch - n) or {}
    for _, id in ipairs(ids) do
      local f = redis.call('HMGET', dkey(t, id), 'c', 'm')
      redis.call('HSET', dkey(t, id), 'next', f[1])
      redis.call('ZADD', tkey(t, 'due'), f[1], f[2])
    end
    n = n + #ids
    if redis.call('LLEN', held_key(t, k)) == 0 then redis.call('ZREM', blocked, k) end
  end
  if n > 0 then wake(t) end
  return reply({n})
elseif step == 'clear' then
  redis.call('DEL', tkey(t, 'ordering'), tkey(t, 'lanes'), tkey(t, 'blocked'))
  return reply({'cleared'})
elseif step == 'page' then
  redis.call('PEXPIRE', lock, ARGV[7])
  local out = {}
  for _, s in ipairs({'pending', 'in_flight', 'retrying'}) do
    local got = redis.call('ZRANGEBYSCORE', tkey(t, 's:' .. s), '(' .. ARGV[5], '+inf',
      'WITHSCORES', 'LIMIT', 0, ARGV[6])
    for i = 1, #got, 2 do out[#out + 1] = {got[i], tonumber(got[i + 1])} end
  end
  table.sort(out, function(a, b) return a[2] < b[2] end)
  local flat = {}
  for i = 1, math.min(#out, tonumber(ARGV[6])) do
    flat[#flat + 1] = out[i][1]
    flat[#flat + 1] = string.format('%d', out[i][2])
    flat[#flat + 1] = redis.call('HGET', dkey(t, out[i][1]), 'len') or '0'
  end
  return reply(flat)
elseif step == 'rebuild' then
  redis.call('PEXPIRE', lock, ARGV[5])
  local lanes, held, heads = tkey(t, 'lanes'), 0, 0
  for i = 6, #ARGV, 2 do
    local id, k = ARGV[i], ARGV[i + 1]
    local f = redis.call('HMGET', dkey(t, id), 'st', 'n', 'next', 'ok', 'm')
    local st = f[1]
    local unfinished = st == 'pending' or st == 'in_flight' or st == 'retrying'
    -- Already in a lane (a step of an earlier, interrupted rebuild).
    local placed = (f[4] and redis.call('HGET', lanes, f[4]) == id)
      or (st == 'pending' and not f[3])
    if unfinished and not placed then
      local head = redis.call('HGET', lanes, k)
      if not head then
        redis.call('HSET', lanes, k, id)
        redis.call('HSET', dkey(t, id), 'ok', k)
        heads = heads + 1
      elseif st == 'pending' and tonumber(f[2]) == 0 then
        redis.call('ZREM', tkey(t, 'due'), f[5])
        redis.call('HDEL', dkey(t, id), 'next')
        lane_hold(t, id, k, head)
        held = held + 1
      else
        -- Attempted before the target was ordered: it finishes as it is.
        redis.call('HSET', dkey(t, id), 'ok', k)
      end
    end
  end
  return reply({held, heads})
elseif step == 'finish' then
  if ARGV[5] ~= '' then
    for _, s in ipairs({'pending', 'in_flight', 'retrying'}) do
      local later = redis.call('ZRANGEBYSCORE', tkey(t, 's:' .. s), '(' .. ARGV[6], '+inf',
        'LIMIT', 0, 1)
      if #later > 0 then return reply({'more'}) end
    end
    redis.call('SET', tkey(t, 'ordering'), ARGV[5])
  end
  redis.call('DEL', lock)
  wake(t)
  return reply({'done', redis.call('HLEN', tkey(t, 'lanes'))})
end
return redis.error_reply('HOOKGATE unknown ordering step')
