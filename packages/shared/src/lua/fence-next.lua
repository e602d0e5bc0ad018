-- Issues the next fencing token of a job: one more than the larger of
-- the stored token and the caller's floor. The floor lets a caller that
-- knows a newer token (the flusher's state after Redis lost its data)
-- keep tokens growing.
--
-- KEYS[1]  string   fence: integer, the newest token issued
--
-- ARGV[1]  integer  floor, decimal; "0" when the caller knows none
--
-- Returns the new token (integer >= 1).

local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
end
return redis.call('INCR', KEYS[1])
