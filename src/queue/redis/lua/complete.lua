-- Record one attempt under a lease. ARGV: 2 delivery id, 3 lease token,
-- 4 next state, 5 retry due time or '', 6 dead reason or '', 7 'e'..error
-- or '' (none), 8 updated_at, 9 the attempt (JSON).
local id = ARGV[2]
local t = target_of(id)
if not t then return reply({'stale'}) end
local h = dkey(t, id)
local f = redis.call('HMGET', h, 'st', 'tok', 'seq', 'm', 'len')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[3] then return reply({'stale'}) end
local to = ARGV[4]
redis.call('HINCRBY', h, 'n', 1)
redis.call('HINCRBY', h, 'b', 1)
redis.call('HSET', h, 'st', to, 'u', ARGV[8])
redis.call('HDEL', h, 'tok', 'lu', 'dr')
redis.call('ZREM', tkey(t, 'lease'), f[4])
if to == 'retrying' then
  redis.call('HSET', h, 'next', ARGV[5])
  redis.call('ZADD', tkey(t, 'due'), ARGV[5], f[4])
else
  redis.call('HDEL', h, 'next')
end
if to == 'dead' then redis.call('HSET', h, 'dr', ARGV[6]) end
-- A delivered attempt keeps the previous failure's text.
if to ~= 'delivered' then
  if ARGV[7] ~= '' then
    redis.call('HSET', h, 'err', string.sub(ARGV[7], 2))
  else
    redis.call('HDEL', h, 'err')
  end
end
redis.call('RPUSH', akey(t, id), ARGV[9])
move(t, id, f[3], 'in_flight', to)
if to == 'delivered' then redis.call('ZADD', tkey(t, 'done'), ARGV[8], id) end
if to == 'retrying' then wake(t) else backlog_add(-1, -tonumber(f[5])) end
-- A head that ended hands its key to the next delivery behind it.
if to ~= 'retrying' then
  local k, nxt = lane_finish(t, id)
  if k then return reply({'recorded', t, k, nxt}) end
end
return reply({'recorded', t})
