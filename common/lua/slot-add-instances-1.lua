--[[
  The autoscaler adds instances, never beyond a cap, checked against the same
  set the gateway's slot-request-instance-3.lua checks: the two never start
  more than the maximum between them. The cap is the function's maximum, plus
  the old-version instances during a rolling update (they leave once the new
  ones are ready).

  KEYS[1] wanted instances, starting or ready (berth:tenant:<t>:fn:<n>:live)
  ARGV[1] the cap
  ARGV[2..] ids of the instances to add

  Returns the ids added (the first ones, as long as the cap allows).
]]
local cap = tonumber(ARGV[1])
local added = {}
for i = 2, #ARGV do
  if redis.call('SCARD', KEYS[1]) >= cap then break end
  redis.call('SADD', KEYS[1], ARGV[i])
  added[#added + 1] = ARGV[i]
end
return added
