--[[
  A request found no free slot: decides whether it should start one more
  instance (a cold start) so that no two gateways start one for the same
  waiting request, and never beyond the function's maximum.
  One more instance is started while the instances still starting cannot take
  every waiting request.

  KEYS[1] wanted instances, starting or ready (berth:tenant:<t>:fn:<n>:live)
  KEYS[2] ready instances                      (…:ready)
  KEYS[3] waiting requests, score = deadline   (…:waiters)
  ARGV[1] max instances
  ARGV[2] concurrency per instance
  ARGV[3] the new instance's id
  ARGV[4] now, ms (expired waiters are dropped)

  Returns
    1  the id is now a wanted instance: create its task
    0  a ready instance has a free slot, enough instances are starting, or the maximum is reached
]]
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
-- An instance became ready (or freed a slot) since the caller looked: take that slot instead.
local best = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #best > 0 and tonumber(best[2]) < tonumber(ARGV[2]) then return 0 end
local live = redis.call('SCARD', KEYS[1])
if live >= tonumber(ARGV[1]) then return 0 end
local ready = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('SISMEMBER', KEYS[1], id) == 1 then ready = ready + 1 end
end
local starting = live - ready
local waiting = redis.call('ZCARD', KEYS[3])
if starting * tonumber(ARGV[2]) >= waiting then return 0 end
redis.call('SADD', KEYS[1], ARGV[3])
return 1
