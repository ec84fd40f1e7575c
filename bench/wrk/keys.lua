-- bench/wrk/keys.lua: POST the harness's 1 KB OutRival event with a
-- different `companionId` on every request, drawn from KEYS keys
-- (`cmp_0` .. `cmp_<KEYS-1>`), so an ordered target sees many keys; the
-- harness's own post.lua replays one body, which is one key.
--
-- Unsigned: use it against a source with `verify: { scheme: none }`
-- (bench/hookgate-keys.yaml); signing each body would need HMAC in Lua.
--
-- env: BODY_FILE (default ../shared/bench/payloads/event-1k.json), KEYS
-- (default 100000). done() prints the BENCH_RESULT line run-peers.sh parses.

local path = os.getenv("BODY_FILE") or "../shared/bench/payloads/event-1k.json"
local keys = tonumber(os.getenv("KEYS") or "100000")

local f = assert(io.open(path, "rb"), "keys.lua: cannot open " .. path)
local body = f:read("*a")
f:close()
local before, after = body:match('^(.-"companionId":")[^"]*(".*)$')
assert(before, "keys.lua: the body has no companionId")

local headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  local k = math.random(0, keys - 1)
  return wrk.format("POST", nil, headers, before .. "cmp_" .. k .. after)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d" ..
    " bad_status=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
