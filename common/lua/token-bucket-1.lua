--[[
  One request against a token bucket: the bucket refills at ARGV[1] tokens per
  second up to ARGV[2] tokens; a request takes one. Uses the server's clock, so
  every API replica shares the same bucket fairly.

  KEYS[1] the bucket hash   (berth:ratelimit:<keyId>)
  ARGV[1] rate, tokens per second (> 0)
  ARGV[2] burst, the bucket's capacity (>= 1)

  Returns { allowed, retryAfterMs }
    allowed       1 when the request may go on, 0 when it is over the rate
    retryAfterMs  when 0: how long until a token is there
]]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end

local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, retry }
