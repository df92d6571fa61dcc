--[[
  Marks a node DRAINING so no new task is placed on it; its tasks go on.
  A LOST node stays LOST (it comes back ACTIVE or DRAINING when it registers).

  KEYS[1] node hash   (berth:node:<id>)

  Returns
    1  the node is DRAINING (now or already)
    0  the node is LOST: unchanged
   -1  no such node
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'LOST' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'DRAINING')
return 1
