--[[
  Takes one concurrency slot on the least busy routable instance of a function.
  Ties go to the lowest instance id, so light traffic keeps reusing the same
  instance and the others go idle (and can be scaled down).
  A request that waited takes its slot and leaves the waiting set in the same
  step, so the autoscaler never counts it both in flight and waiting.
  The slot is recorded as a lease that expires when the request cannot be
  running any more (the function's timeout, plus a margin): should the API
  replica holding it die, reap-slots gives it back then.

  KEYS[1] ready instances, score = requests in flight (berth:tenant:<t>:fn:<n>:ready)
  KEYS[2] in-flight counts by instance                   (…:inflight)
  KEYS[3] last use by instance, `_fn` for the function   (…:lastused)
  KEYS[4] waiting requests, score = deadline              (…:waiters)
  KEYS[5] slot leases `<instance>/<nonce>`, score = expiry (…:leases)
  KEYS[6] routes by instance, JSON                       (…:instances)
  ARGV[1] concurrency: the most requests one instance takes at once
  ARGV[2] now, ms
  ARGV[3] the caller's id in the waiting set, or '' when it never waited
  ARGV[4] a nonce for the lease (unique per request)
  ARGV[5] the lease's expiry, ms

  Returns { code, lease, route }
    { 1, '<instance>/<nonce>', route }  a slot on the instance is now the caller's: give it back with
                                        release-slot; its route ('' if it has none), so the caller need not ask
    { 0, '', '' }   every ready instance is at its concurrency
    { -1, '', '' }  no instance is ready
]]
local best = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #best == 0 then return { -1, '', '' } end
if tonumber(best[2]) >= tonumber(ARGV[1]) then return { 0, '', '' } end
local id = best[1]
local lease = id .. '/' .. ARGV[4]
redis.call('ZINCRBY', KEYS[1], 1, id)
redis.call('HINCRBY', KEYS[2], id, 1)
redis.call('HSET', KEYS[3], id, ARGV[2], '_fn', ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], lease)
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[4], ARGV[3]) end
return { 1, lease, redis.call('HGET', KEYS[6], id) or '' }
