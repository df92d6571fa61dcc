--[[
  Records a running task's health as its node's checks last found it. Only a
  RUNNING task takes it, so a late report never lands on a stopped task.

  KEYS[1] task hash (berth:task:<id>)
  ARGV[1] UNKNOWN | HEALTHY | UNHEALTHY

  Returns 1 when recorded, 0 when the task is not (or no longer) running.
]]
if redis.call('HGET', KEYS[1], 'lastStatus') ~= 'RUNNING' then return 0 end
redis.call('HSET', KEYS[1], 'healthStatus', ARGV[1])
return 1
