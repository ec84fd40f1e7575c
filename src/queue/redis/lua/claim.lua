-- Lease due deliveries of one target. ARGV: 2 target, 3 now, 4 lease
-- expiry, 5 most expired leases to take back, 6.. one token per claim.
-- Expired leases first go back to waiting (their holder died; the cut-off
-- attempt is not counted), keeping their due time and place.
local t, now, untl = ARGV[2], ARGV[3], ARGV[4]
-- A replica is changing the target's ordering: nothing is handed out.
if redis.call('EXISTS', tkey(t, 'rebuilding')) == 1 then return reply({0, {}}) end
local lease, due = tkey(t, 'lease'), tkey(t, 'due')
local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, ARGV[5])
for _, m in ipairs(expired) do unlease(t, member_id(m)) end
local out = {}
local limit = #ARGV - 5
if limit > 0 then
  local ms = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
  for i, m in ipairs(ms) do
    local id = member_id(m)
    local h = dkey(t, id)
    local f = redis.call('HMGET', h, 'st', 'seq')
    redis.call('ZREM', due, m)
    redis.call('ZADD', lease, untl, m)
    redis.call('HSET', h, 'st', 'in_flight', 'tok', ARGV[5 + i], 'lu', untl, 'u', now)
    move(t, id, f[2], f[1], 'in_flight')
    out[i] = redis.call('HMGET', h, 'id', 'ev', 'r', 'n', 'b', 'src', 'rat', 'body')
  end
end
-- Reclaimed work that this claim did not take is due for others.
if #expired > #out then wake(t) end
return reply({#expired, out})
