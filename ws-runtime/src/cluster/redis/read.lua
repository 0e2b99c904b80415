-- Reads a room's history after an offset: its epoch and last offset, and at most `limit`
-- messages after `after` that are not older than the TTL, oldest first (ADR 0003, "Storage").
-- Loaded with SCRIPT LOAD, called with EVALSHA.
--
-- KEYS[1] the room's stream, KEYS[2] its meta hash (e: epoch, o: last offset)
-- ARGV[1] after (exclusive), ARGV[2] limit, ARGV[3] the TTL (ms), ARGV[4] a fresh epoch,
-- ARGV[5] the meta's TTL (ms)
--
-- Returns {epoch, top, {id, kind, payload, id, kind, payload, ...}}.
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  -- As `append` does: a read and a later append agree on the new history.
  redis.call('DEL', stream)
  epoch = ARGV[4]
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
redis.call('PEXPIRE', meta, ARGV[5])
local top = redis.call('HGET', meta, 'o') or '0'
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local entries, count = {}, 0
-- Exclusive start (Redis 6.2+). Expired entries are the oldest: they are skipped, and the
-- next page read, so that `limit` counts only live ones.
local start = '(' .. ARGV[1] .. '-0'
while count < limit do
  local asked = limit - count
  local page = redis.call('XRANGE', stream, start, '+', 'COUNT', asked)
  for _, entry in ipairs(page) do
    local fields = {}
    for i = 1, #entry[2], 2 do
      fields[entry[2][i]] = entry[2][i + 1]
    end
    local at = tonumber(fields.t) or now
    if now - at <= ttl then
      entries[#entries + 1] = entry[1]
      entries[#entries + 1] = fields.k or ''
      entries[#entries + 1] = fields.m or ''
      count = count + 1
    end
    start = '(' .. entry[1]
  end
  if #page < asked then
    break
  end
end
return {epoch, top, entries}
