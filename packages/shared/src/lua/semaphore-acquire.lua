-- Takes one slot of a counting semaphore as a lease that expires on the
-- Redis clock, so a holder that dies cannot keep its slot.
--
-- KEYS[1]  sorted set  leases: member = lease id, score = lease expiry,
--                      Redis time in milliseconds
--
-- ARGV[1]  string      lease id, unique per acquire
-- ARGV[2]  integer     slots (>= 1)
-- ARGV[3]  integer     lease length, milliseconds (>= 1)
--
-- Returns {code, value, nowMs}:
--   code 1  granted: value is the lease expiry (Redis ms); a lease id
--           that is already held is renewed and granted again
--   code 0  full: value is the milliseconds until the earliest lease
--           expires; a release may free a slot sooner
-- nowMs is the Redis time of the call in milliseconds.

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local slots = tonumber(ARGV[2])
local leaseMs = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)

local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held or redis.call('ZCARD', KEYS[1]) < slots then
  local expiryMs = nowMs + leaseMs
  redis.call('ZADD', KEYS[1], expiryMs, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < leaseMs + 1000 then
    redis.call('PEXPIRE', KEYS[1], leaseMs + 1000)
  end
  return {1, expiryMs, nowMs}
end

local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(earliest[2]) - nowMs), nowMs}
