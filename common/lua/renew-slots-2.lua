--[[
  Renews the slots an API replica keeps on one instance between requests: when
  the instance is still routable, their leases are extended and the replica
  may go on reusing them; when it is not (drained, crashed, stopped), nothing
  changes and the replica gives them back with release-slot.

  KEYS[1] ready instances, score = requests in flight (berth:tenant:<t>:fn:<n>:ready)
  KEYS[2] slot leases `<instance>/<nonce>`, score = expiry (…:leases)
  ARGV[1] instance id
  ARGV[2] the leases' new expiry, ms
  ARGV[3..] the leases, `<instance>/<nonce>`

  Returns
    1  the instance is routable; every lease still held is extended
    0  the instance is out of routing
]]
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[i])
end
return 1
