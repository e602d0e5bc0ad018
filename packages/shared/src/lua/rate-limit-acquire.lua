-- Grants one rate-limit permit when the job is not paused and every
-- window has room, as one atomic step on the Redis clock (TIME).
--
-- KEYS[1]  sorted set  permit log: member = permit id, score = grant
--                      time in microseconds (Redis clock)
-- KEYS[2]  string      pause: Redis time in milliseconds until which no
--                      request may start; may be missing
-- KEYS[3]  hash        advertised limit: fields requests (integer) and
--                      windowMs (integer, milliseconds); may be missing
-- KEYS[4]  string      epoch marker: random id, never expires
--
-- ARGV[1]  string      permit id, unique per call
-- ARGV[2]  integer     margin added to every window, milliseconds
-- ARGV[3]  string      epoch the caller saw last, "" when none
-- ARGV[4]  string      epoch to write when the marker is missing
-- ARGV[5]  integer     configured requests per window (>= 1)
-- ARGV[6]  integer     configured window, milliseconds (>= 1)
-- ARGV[7]  integer     advertised requests known to the caller, 0 = none
-- ARGV[8]  integer     advertised window known to the caller,
--                      milliseconds, 0 = none
--
-- Returns {code, waitMs, nowUs, epoch}:
--   code 1  granted: the permit id was logged at nowUs; waitMs is 0
--   code 2  window full: retry after waitMs, when the permit that frees
--           a slot leaves its window
--   code 3  paused: retry after waitMs, when the pause ends
--   code 4  data loss: the epoch marker was missing or changed, so
--           permits granted before the loss are unknown; the log was
--           filled with the configured number of placeholders, which
--           blocks one configured window; retry after waitMs
-- nowUs is the Redis time of the call in microseconds; epoch is the
-- current marker, for the caller to remember.

local time = redis.call('TIME')
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
local nowMs = math.floor(nowUs / 1000)
local marginUs = tonumber(ARGV[2]) * 1000
local configuredRequests = tonumber(ARGV[5])

local epoch = redis.call('GET', KEYS[4])
local lost = false
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[4], epoch)
  lost = ARGV[3] ~= ''
elseif ARGV[3] ~= '' and ARGV[3] ~= epoch then
  lost = true
end

-- NX keeps the first filler's time: later callers that detect the same
-- loss do not extend the block.
if lost then
  for i = 1, configuredRequests do
    redis.call('ZADD', KEYS[1], 'NX', nowUs, 'recovery:' .. i)
  end
end

local pausedUntilMs = tonumber(redis.call('GET', KEYS[2]) or '0')
if pausedUntilMs > nowMs then
  return {3, pausedUntilMs - nowMs, nowUs, epoch}
end

local windows = {{configuredRequests, tonumber(ARGV[6])}}
local advertised = redis.call('HMGET', KEYS[3], 'requests', 'windowMs')
if advertised[1] and advertised[2] then
  table.insert(windows, {tonumber(advertised[1]), tonumber(advertised[2])})
end
if tonumber(ARGV[7]) > 0 and tonumber(ARGV[8]) > 0 then
  table.insert(windows, {tonumber(ARGV[7]), tonumber(ARGV[8])})
end

local maxWindowUs = 0
for _, window in ipairs(windows) do
  window[3] = window[2] * 1000 + marginUs
  if window[3] > maxWindowUs then maxWindowUs = window[3] end
end

-- Lua's tostring would print these microsecond values in exponent form,
-- so scores are formatted explicitly.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf',
  string.format('%.0f', nowUs - maxWindowUs))
local total = redis.call('ZCARD', KEYS[1])

-- A window holds the newest permits of the log. When it has `requests`
-- or more, a slot frees when the permit at rank total - requests (0 is
-- the oldest) leaves it.
local waitUs = 0
for _, window in ipairs(windows) do
  local requests, windowUs = window[1], window[3]
  local count = redis.call('ZCOUNT', KEYS[1],
    string.format('(%.0f', nowUs - windowUs), '+inf')
  if count >= requests then
    local rank = total - requests
    local entry = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
    local leaveUs = tonumber(entry[2]) + windowUs - nowUs
    if leaveUs > waitUs then waitUs = leaveUs end
  end
end

if waitUs > 0 then
  local code = 2
  if lost then code = 4 end
  return {code, math.max(1, math.ceil(waitUs / 1000)), nowUs, epoch}
end

redis.call('ZADD', KEYS[1], nowUs, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(maxWindowUs / 1000) + 1000)
return {1, 0, nowUs, epoch}
