--[[
  Gives back a slot taken with acquire-slot, whatever happened to the request
  (answered, failed, timed out, client gone), or one whose lease expired
  (reap-slots): exactly once per lease. An instance removed meanwhile (crashed,
  stopped) is left removed. Wakes the requests waiting for a slot, if any.

  KEYS[1] ready instances, score = requests in flight (berth:tenant:<t>:fn:<n>:ready)
  KEYS[2] in-flight counts by instance                   (…:inflight)
  KEYS[3] last use by instance, `_fn` for the function   (…:lastused)
  KEYS[4] waiting requests, score = deadline              (…:waiters)
  KEYS[5] slot leases `<instance>/<nonce>`, score = expiry (…:leases)
  ARGV[1] the lease, `<instance>/<nonce>`
  ARGV[2] now, ms
  ARGV[3] pub/sub channel to tell waiting requests (berth:fn-events)
  ARGV[4] the message: `<tenant>/<name>`

  Returns
    n >= 0  requests still in flight on the instance
   -1       the instance is no longer tracked (nothing else changed)
   -2       the lease was given back already (reaped): nothing changed
]]
if redis.call('ZREM', KEYS[5], ARGV[1]) == 0 then return -2 end
local id = string.match(ARGV[1], '^(.*)/[^/]*$')
local current = redis.call('HGET', KEYS[2], id)
if not current then return -1 end
local left = tonumber(current) - 1
if left < 0 then left = 0 end
redis.call('HSET', KEYS[2], id, left)
local score = redis.call('ZSCORE', KEYS[1], id)
if score then
  local s = tonumber(score) - 1
  if s < 0 then s = 0 end
  redis.call('ZADD', KEYS[1], s, id)
end
redis.call('HSET', KEYS[3], id, ARGV[2], '_fn', ARGV[2])
if redis.call('ZCARD', KEYS[4]) > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return left
