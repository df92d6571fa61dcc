--[[
  Places a PROVISIONING task on a node: reserves its CPU and memory on the node
  and records the node on the task, atomically, or changes nothing.

  KEYS[1] node hash          (berth:node:<id>)
  KEYS[2] task hash          (berth:task:<id>)
  KEYS[3] node's task set    (berth:node:<id>:tasks)
  KEYS[4] the task group's node counts (berth:tenant:<t>:group:<g>:nodes)
  ARGV[1] node id
  ARGV[2] cpu units to reserve
  ARGV[3] memory MiB to reserve
  ARGV[4] task id
  ARGV[5] '1' when the group must not have another task on the node (distinctInstance)

  Returns
    1  reserved; the task is PENDING on the node
   -1  the task is gone, no longer PROVISIONING, or no longer wanted
   -2  the node is missing or not ACTIVE
   -3  not enough CPU left on the node
   -4  not enough memory left on the node
   -5  the node already runs a task of the group and distinctInstance forbids another
]]
local task = redis.call('HMGET', KEYS[2], 'lastStatus', 'desiredStatus')
if task[1] ~= 'PROVISIONING' or task[2] ~= 'RUNNING' then return -1 end

local node = redis.call('HMGET', KEYS[1], 'status', 'cpuTotal', 'cpuReserved', 'memoryTotal', 'memoryReserved')
if node[1] ~= 'ACTIVE' then return -2 end

local cpu = tonumber(ARGV[2])
local memory = tonumber(ARGV[3])
if tonumber(node[3]) + cpu > tonumber(node[2]) then return -3 end
if tonumber(node[5]) + memory > tonumber(node[4]) then return -4 end
if ARGV[5] == '1' and tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0') > 0 then return -5 end

redis.call('HINCRBY', KEYS[1], 'cpuReserved', cpu)
redis.call('HINCRBY', KEYS[1], 'memoryReserved', memory)
redis.call('HSET', KEYS[2], 'lastStatus', 'PENDING', 'nodeId', ARGV[1],
  'reservedCpu', cpu, 'reservedMemory', memory, 'reserved', '1', 'groupKey', KEYS[4])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
return 1
