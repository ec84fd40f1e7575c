-- Give back a lease without an attempt. ARGV: 2 delivery id, 3 lease token.
local id = ARGV[2]
local t = target_of(id)
if not t then return reply({'stale'}) end
local f = redis.call('HMGET', dkey(t, id), 'st', 'tok')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[3] then return reply({'stale'}) end
unlease(t, id)
wake(t)
return reply({'released', t})
