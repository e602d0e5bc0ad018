-- Reads how long the job's pause still lasts, on the Redis clock.
--
-- KEYS[1]  string  pause: Redis time in milliseconds until which no
--                  request may start; may be missing
--
-- Returns {remainingMs, nowMs}:
--   remainingMs  0 when no pause is active, else milliseconds until the
--                pause ends
--   nowMs        Redis time of the call, milliseconds

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local untilMs = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs <= nowMs then
  return {0, nowMs}
end
return {untilMs - nowMs, nowMs}
