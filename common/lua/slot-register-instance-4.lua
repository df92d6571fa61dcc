--[[
  An instance passed its readiness check: make it routable, unless it was
  scaled down or the function deleted while it started.

  KEYS[1] wanted instances (berth:tenant:<t>:fn:<n>:live)
  KEYS[2] ready instances, score = requests in flight (…:ready)
  KEYS[3] in-flight counts by instance (…:inflight)
  KEYS[4] routes by instance (…:instances)
  ARGV[1] instance id (its task id)
  ARGV[2] its route, JSON { nodeId, agent, ip, port, version, readyAt }
  ARGV[3] pub/sub channel to tell waiting requests (berth:fn-events)
  ARGV[4] the message: `<tenant>/<name>`

  Returns
    1  routable
    0  no longer wanted: the caller stops it
]]
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then redis.call('HSET', KEYS[3], ARGV[1], 0) end
redis.call('ZADD', KEYS[2], 'NX', redis.call('HGET', KEYS[3], ARGV[1]), ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
