--[[
  Takes an instance out of routing (scale-down, a rolling update, a timeout or
  a crash): no new slot goes to it; it is stopped once its in-flight requests
  end. With ARGV[2] = '1' only an idle instance is drained (scale-down never
  cuts a request short).

  KEYS[1] wanted instances (berth:tenant:<t>:fn:<n>:live)
  KEYS[2] ready instances, score = requests in flight (…:ready)
  KEYS[3] in-flight counts by instance (…:inflight)
  KEYS[4] draining instances (…:draining)
  ARGV[1] instance id
  ARGV[2] '1': only when it has no request in flight

  Returns
    n >= 0  drained; n requests are still in flight on it
   -1       not drained: it has requests in flight and ARGV[2] is '1'
]]
local inflight = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if ARGV[2] == '1' and inflight > 0 then return -1 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return inflight
