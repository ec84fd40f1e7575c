-- Replay one dead or delivered delivery. ARGV: 2 delivery id, 3 now.
local id = ARGV[2]
local t = target_of(id)
if not t then return reply({'not_found'}) end
local h = dkey(t, id)
local st = redis.call('HGET', h, 'st')
if st ~= 'dead' and st ~= 'delivered' then return reply({'not_replayable', st}) end
replay_one(t, id, ARGV[3], st)
wake(t)
return reply({'replayed', t, record(h)})
