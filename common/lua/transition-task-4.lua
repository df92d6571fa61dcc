--[[
  Moves a task forward in its lifecycle
  (PROVISIONING < PENDING < RUNNING < STOPPING < STOPPED) and sets fields with it.
  A move backwards or sideways changes nothing, so late or repeated reports are
  harmless. Reaching STOPPED releases the task's reservation on its node, which
  therefore happens exactly once whichever path stops the task.

  KEYS[1] task hash          (berth:task:<id>)
  KEYS[2] node hash          (berth:node:<nodeId>, or any key when there is no node)
  KEYS[3] node's task set    (berth:node:<nodeId>:tasks, likewise)
  KEYS[4] the task group's node counts (the task's groupKey field, or any key)
  ARGV[1] the node id the caller read from the task ('' for none)
  ARGV[2] the new status
  ARGV[3] task id
  ARGV[4..] field, value pairs to set with the move

  Returns
    1  moved
    0  not moved: the task is already at or past that status
   -1  no such task
   -2  the task's node is not ARGV[1]: read it again and retry
]]
local rank = { PROVISIONING = 0, PENDING = 1, RUNNING = 2, STOPPING = 3, STOPPED = 4 }

local current = redis.call('HMGET', KEYS[1], 'lastStatus', 'nodeId', 'reserved', 'reservedCpu', 'reservedMemory', 'groupKey')
if not current[1] then return -1 end
if (current[2] or '') ~= ARGV[1] or (current[6] or '') ~= KEYS[4] and current[6] then return -2 end

local target = ARGV[2]
if rank[target] == nil then return redis.error_reply('unknown status ' .. target) end
if rank[target] <= rank[current[1]] then return 0 end

redis.call('HSET', KEYS[1], 'lastStatus', target)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end

if target == 'STOPPED' then
  redis.call('HSET', KEYS[1], 'desiredStatus', 'STOPPED')
  if current[3] == '1' then
    redis.call('HINCRBY', KEYS[2], 'cpuReserved', -tonumber(current[4]))
    redis.call('HINCRBY', KEYS[2], 'memoryReserved', -tonumber(current[5]))
    redis.call('HSET', KEYS[1], 'reserved', '0')
    redis.call('SREM', KEYS[3], ARGV[3])
    if current[6] then redis.call('HINCRBY', KEYS[4], ARGV[1], -1) end
  end
end
return 1
