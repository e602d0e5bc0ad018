-- Extends a held semaphore lease to Redis time now + leaseMs. A lease
-- that expired (or vanished with lost Redis data) is not renewed: its
-- slot may already belong to another holder.
--
-- KEYS[1]  sorted set  leases: member = lease id, score = lease expiry,
--                      Redis time in milliseconds
--
-- ARGV[1]  string      lease id
-- ARGV[2]  integer     lease length, milliseconds (>= 1)
--
-- Returns {code, expiryMs, nowMs}:
--   code 1  renewed: the lease now expires at expiryMs (Redis ms)
--   code 0  lost: the lease is gone; expiryMs is 0
-- nowMs is the Redis time of the call in milliseconds.

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local leaseMs = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {0, 0, nowMs}
end

local expiryMs = nowMs + leaseMs
redis.call('ZADD', KEYS[1], 'XX', expiryMs, ARGV[1])
if redis.call('PTTL', KEYS[1]) < leaseMs + 1000 then
  redis.call('PEXPIRE', KEYS[1], leaseMs + 1000)
end
return {1, expiryMs, nowMs}
