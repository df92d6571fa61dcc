--[[
  Gives back a slot taken with acquire-slot, whatever happened to the request
  (answered, failed, timed out, client gone). An instance removed meanwhile
  (crashed, stopped) is left removed. Wakes the requests waiting for a slot, if any.

  KEYS[1] ready instances, score = requests in flight (berth:tenant:<t>:fn:<n>:ready)
  KEYS[2] in-flight counts by instance                   (…:inflight)
  KEYS[3] last use by instance, `_fn` for the function   (…:lastused)
  KEYS[4] waiting requests, score = deadline              (…:waiters)
  ARGV[1] instance id
  ARGV[2] now, ms
  ARGV[3] pub/sub channel to tell waiting requests (berth:fn-events)
  ARGV[4] the message: `<tenant>/<name>`

  Returns
    n >= 0  requests still in flight on the instance
   -1       the instance is no longer tracked (nothing changed)
]]
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return -1 end
local left = tonumber(current) - 1
if left < 0 then left = 0 end
redis.call('HSET', KEYS[2], ARGV[1], left)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  local s = tonumber(score) - 1
  if s < 0 then s = 0 end
  redis.call('ZADD', KEYS[1], s, ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2], '_fn', ARGV[2])
if redis.call('ZCARD', KEYS[4]) > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return left
