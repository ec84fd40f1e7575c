-- Store one event and its deliveries, or answer duplicate / full.
-- ARGV: 2 event id, 3 source, 4 received_at, 5 body, 6 dedupe key hex or '',
-- 7 dedupe expiry, 8 max deliveries or '', 9 max bytes, 10 dedupe backstop
-- ttl ms, 11 record format, then (delivery id, target, route, ordering
-- path, key) quintuples; path and key are '' for a target ingress did not
-- order. A target the store orders by another path is answered 'rekey'
-- (with the target and the store's path), before anything is written:
-- the caller reads the key at that path and asks again.
-- Everything is checked before the first write: a script is atomic, but a
-- write made before an error would stay.
local eid, src, at, body = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local evkey = gkey('ev:' .. eid)
if redis.call('EXISTS', evkey) == 1 then
  return redis.error_reply('HOOKGATE this event id is already stored')
end
local ds, seen = {}, {}
for i = 12, #ARGV, 5 do
  local id, t = ARGV[i], ARGV[i + 1]
  if seen[t] then
    return redis.error_reply('HOOKGATE an event has one delivery per target')
  end
  if redis.call('HEXISTS', gkey('where'), id) == 1 then
    return redis.error_reply('HOOKGATE this delivery id is already stored')
  end
  seen[t] = true
  -- Keyed only while the target is ordered and not being rebuilt (the
  -- rebuild walks every delivery stored meanwhile).
  local key = nil
  local path = redis.call('GET', tkey(t, 'ordering'))
  if path and redis.call('EXISTS', tkey(t, 'rebuilding')) == 0 then
    if ARGV[i + 3] ~= path then return reply({'rekey', t, path}) end
    key = ARGV[i + 4]
  end
  ds[#ds + 1] = {id, t, ARGV[i + 2], key}
end
local ddkey = gkey('dd:' .. ARGV[6])
if ARGV[6] ~= '' then
  local prev = redis.call('HMGET', ddkey, 'e', 'x')
  if prev[1] and tonumber(prev[2]) > tonumber(at) then
    return reply({'duplicate', prev[1]})
  end
end
-- After the dedupe key: a duplicate is recognised even when full.
if ARGV[8] ~= '' then
  local b = redis.call('HMGET', gkey('backlog'), 'deliveries', 'bytes')
  if (tonumber(b[1]) or 0) >= tonumber(ARGV[8]) or (tonumber(b[2]) or 0) >= tonumber(ARGV[9]) then
    return reply({'full'})
  end
end
if ARGV[6] ~= '' then
  -- The window is judged by the times handed in; the TTL only collects
  -- keys that prune missed.
  redis.call('HSET', ddkey, 'e', eid, 'x', ARGV[7])
  redis.call('PEXPIRE', ddkey, ARGV[10])
  redis.call('ZADD', gkey('dd'), ARGV[7], ARGV[6])
end
if #ds == 0 then
  redis.call('HSET', evkey, 'src', src, 'at', at, 'body', body)
  return reply({'stored'})
end
local last = redis.call('INCRBY', gkey('seq'), #ds)
for i, d in ipairs(ds) do
  local id, t, route, key = d[1], d[2], d[3], d[4]
  local seq = last - #ds + i
  local m = string.format('%016d', seq) .. ':' .. id
  redis.call('HSET', dkey(t, id), 'id', id, 'ev', eid, 't', t, 'r', route, 'st', 'pending',
    'n', 0, 'b', 0, 'c', at, 'u', at, 'seq', seq, 'm', m,
    'src', src, 'rat', at, 'body', body, 'len', #body, 'fmt', ARGV[11])
  local head = key and redis.call('HGET', tkey(t, 'lanes'), key)
  if head then
    lane_hold(t, id, key, head)
  else
    if key then
      redis.call('HSET', tkey(t, 'lanes'), key, id)
      redis.call('HSET', dkey(t, id), 'ok', key)
    end
    redis.call('HSET', dkey(t, id), 'next', at)
    redis.call('ZADD', tkey(t, 'due'), at, m)
  end
  redis.call('ZADD', tkey(t, 'all'), seq, id)
  move(t, id, seq, nil, 'pending')
  redis.call('HSET', gkey('where'), id, t)
  redis.call('HSET', evkey, 't:' .. t, id)
  redis.call('SADD', gkey('targets'), t)
  wake(t)
end
backlog_add(#ds, #ds * #body)
return reply({'stored'})
