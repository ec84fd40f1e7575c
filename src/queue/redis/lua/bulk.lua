-- One batch of a bulk operation on one target. ARGV: 2 operation, 3
-- target, 4 batch size, then the operation's own: replay_dead (5 now),
-- purge_dead, dead_letter (5 reason, 6 now, 7 message), prune (5 delivered
-- before). Returns how many deliveries it changed.
local op, t, batch = ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = 0
if op == 'replay_dead' then
  local ids = redis.call('ZRANGE', tkey(t, 's:dead'), 0, batch - 1)
  for _, id in ipairs(ids) do replay_one(t, id, ARGV[5], 'dead') end
  n = #ids
  if n > 0 then wake(t) end
elseif op == 'purge_dead' then
  local ids = redis.call('ZRANGE', tkey(t, 's:dead'), 0, batch - 1)
  for _, id in ipairs(ids) do forget(t, id, 'dead') end
  n = #ids
elseif op == 'dead_letter' then
  -- The due set holds exactly the pending and retrying deliveries.
  local due = tkey(t, 'due')
  local ms = redis.call('ZRANGE', due, 0, batch - 1)
  for _, m in ipairs(ms) do
    local id = member_id(m)
    local h = dkey(t, id)
    local f = redis.call('HMGET', h, 'st', 'seq', 'len')
    redis.call('HSET', h, 'st', 'dead', 'dr', ARGV[5], 'err', ARGV[7], 'u', ARGV[6])
    redis.call('HDEL', h, 'next')
    redis.call('ZREM', due, m)
    move(t, id, f[2], f[1], 'dead')
    backlog_add(-1, -tonumber(f[3]))
  end
  n = #ms
elseif op == 'prune' then
  local ids = redis.call('ZRANGEBYSCORE', tkey(t, 'done'), '-inf', '(' .. ARGV[5], 'LIMIT', 0, batch)
  for _, id in ipairs(ids) do forget(t, id, 'delivered') end
  n = #ids
elseif op == 'prune_dedupe' then
  -- ARGV[3] is unused here (dedupe keys are global); 5 is now.
  local ks = redis.call('ZRANGEBYSCORE', gkey('dd'), '-inf', ARGV[5], 'LIMIT', 0, batch)
  for _, k in ipairs(ks) do
    local x = redis.call('HGET', gkey('dd:' .. k), 'x')
    if not x or tonumber(x) <= tonumber(ARGV[5]) then redis.call('DEL', gkey('dd:' .. k)) end
    redis.call('ZREM', gkey('dd'), k)
  end
  n = #ks
else
  return redis.error_reply('HOOKGATE unknown bulk operation')
end
return reply({n})
