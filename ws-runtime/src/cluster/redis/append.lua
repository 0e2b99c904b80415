-- Records one message in a room's history and publishes its envelope, as one atomic step
-- (ADR 0003, "Storage"). Loaded with SCRIPT LOAD, called with EVALSHA.
--
-- KEYS[1] the room's stream, KEYS[2] its meta hash (e: epoch, o: last offset)
-- ARGV[1] the room's channel, ARGV[2] the envelope before the position, ARGV[3] after it,
-- ARGV[4] the message's kind (t or b), ARGV[5] its payload, ARGV[6] how many to keep,
-- ARGV[7] the stream's TTL (ms), ARGV[8] the meta's TTL (ms), ARGV[9] a fresh epoch
--
-- Returns {offset, epoch}.
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  -- A new history: an old stream's higher ids would make every XADD below fail.
  redis.call('DEL', stream)
  epoch = ARGV[9]
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
-- Offsets are Lua numbers (doubles): exact below 2^53, refused from there, before any write.
local top = tonumber(redis.call('HGET', meta, 'o') or '0')
if top == nil or top >= 9007199254740991 then
  return redis.error_reply('ERR the room offset would reach 2^53')
end
local offset = redis.call('HINCRBY', meta, 'o', 1)
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- '%.0f': tostring would write large numbers with an exponent.
redis.call('XADD', stream, 'MAXLEN', ARGV[6], string.format('%.0f', offset) .. '-0',
  'k', ARGV[4], 't', string.format('%.0f', ms), 'm', ARGV[5])
redis.call('PEXPIRE', stream, ARGV[7])
redis.call('PEXPIRE', meta, ARGV[8])
-- The position as the envelope carries it: the offset as LEB128, the epoch's length, the epoch.
local varint, n = {}, offset
while n >= 128 do
  varint[#varint + 1] = string.char(n % 128 + 128)
  n = math.floor(n / 128)
end
varint[#varint + 1] = string.char(n)
redis.call('PUBLISH', ARGV[1],
  ARGV[2] .. table.concat(varint) .. string.char(#epoch) .. epoch .. ARGV[3])
return {offset, epoch}
