// The log-in limits' counters in Redis: every node counts in the same
// windows, which expire on their own (the first attempt opens a window, later
// ones do not stretch it). A reservation is one Lua script, so that the check
// "is any counter at its limit" and the increments are atomic across nodes:
// concurrent log-ins on several nodes cannot get past a limit either. While Redis is unreachable each node
// counts in its own memory, so that a brute force aimed at a node during an
// outage still meets a limit there.
import type { Redis } from 'ioredis'
import { createMemoryAttemptStore, type AttemptStore } from '../services/login-limits.js'

// Each counter is a hash `attempts:<key>` of failures (f) and attempts being
// checked (p), which expires with its window.

// KEYS: the counters; ARGV: the window in ms, then each counter's limit.
// Answers {1} when reserved, {0} when failures and pending fill a limit,
// {-1, ms} when the failures alone do (nothing reserved in either case).
const RESERVE = `
local full = false
for i, key in ipairs(KEYS) do
  local f = tonumber(redis.call('HGET', key, 'f') or '0')
  local p = tonumber(redis.call('HGET', key, 'p') or '0')
  local limit = tonumber(ARGV[i + 1])
  if f >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then return {-1, ttl} end
  end
  if f + p >= limit then full = true end
end
if full then return {0} end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'p', 1)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return {1}`

// KEYS: the reserved counters, then the failed ones; ARGV: how many
// reserved, the window in ms. Answers the failed ones' failure counts.
const SETTLE = `
local reserved = tonumber(ARGV[1])
for i = 1, reserved do
  if tonumber(redis.call('HGET', KEYS[i], 'p') or '0') > 0 then redis.call('HINCRBY', KEYS[i], 'p', -1) end
end
local failures = {}
for i = reserved + 1, #KEYS do
  failures[#failures + 1] = redis.call('HINCRBY', KEYS[i], 'f', 1)
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return failures`

// KEYS: the counters; ARGV: their limits. The ms left of the first whose failures reach its limit, or -1.
const BLOCKED = `
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('HGET', key, 'f') or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then return ttl end
  end
end
return -1`

export function createRedisAttemptStore ({ redis, isUp }: { redis: Redis, isUp: () => boolean }): AttemptStore {
  const local = createMemoryAttemptStore()
  const key = (k: string): string => `attempts:${k}`
  return {
    async reserve (counters, windowMs) {
      if (!isUp()) return await local.reserve(counters, windowMs)
      const keys = counters.map((c) => key(c.key))
      try {
        const answer = await redis.eval(RESERVE, counters.length, ...keys, windowMs, ...counters.map((c) => c.limit)) as number[]
        return answer[0] === 1 ? { reserved: true, where: 'redis' } : answer[0] === 0 ? { full: true } : { blockedMs: answer[1] as number }
      } catch {
        // No answer in time: Redis may still run the script when it wakes
        // (a frozen Redis runs what was sent, in order). Taking the attempt
        // back right behind it, on the same connection, leaves no attempt
        // pending there for ever.
        redis.eval(SETTLE, keys.length, ...keys, keys.length, windowMs).catch(() => {})
        return await local.reserve(counters, windowMs)
      }
    },
    async settle (keys, failedKeys, windowMs, where) {
      if (where !== 'redis') return await local.settle(keys, failedKeys, windowMs)
      // Reserved in Redis: settled there, whatever it is doing now (sent
      // while it is frozen, it runs when it wakes, after the reservation).
      return await redis.eval(SETTLE, keys.length + failedKeys.length, ...[...keys, ...failedKeys].map(key), keys.length, windowMs) as number[]
    },
    async blocked (counters) {
      if (!isUp()) return await local.blocked(counters)
      try {
        const ms = await redis.eval(BLOCKED, counters.length, ...counters.map((c) => key(c.key)), ...counters.map((c) => c.limit)) as number
        return ms < 0 ? null : ms
      } catch {
        return await local.blocked(counters)
      }
    },
    async close () {
      await local.close()
    }
  }
}
