-- Pauses every poller of a job until Redis time now + pauseMs, but only
-- ever extends an existing pause, never shortens it.
--
-- KEYS[1]  string   pause: Redis time in milliseconds until which no
--                   request may start; expires when the pause ends
--
-- ARGV[1]  integer  pause length from now, milliseconds (>= 1)
--
-- Returns {code, untilMs, nowMs}:
--   code 1  extended: the pause now ends at untilMs
--   code 0  kept: an existing pause already ends at untilMs, later than
--           the one requested
-- untilMs and nowMs are Redis time in milliseconds.

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local pauseMs = tonumber(ARGV[1])
local untilMs = nowMs + pauseMs

local currentMs = tonumber(redis.call('GET', KEYS[1]) or '0')
if currentMs >= untilMs then
  return {0, currentMs, nowMs}
end

redis.call('SET', KEYS[1], string.format('%.0f', untilMs), 'PX', pauseMs)
return {1, untilMs, nowMs}
