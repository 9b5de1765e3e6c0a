// The log-in limits' counters in Redis: every node counts in the same
// windows, `attempts:<key>`, counters that expire with their window (the
// first attempt opens it, later ones do not stretch it). A reservation is one
// Lua script, so that the check "is any counter at its limit" and the
// increments are atomic across nodes: concurrent log-ins on several nodes
// cannot get past a limit either. While Redis is unreachable each node
// counts in its own memory, so that a brute force aimed at a node during an
// outage still meets a limit there.
import type { Redis } from 'ioredis'
import { createMemoryAttemptStore, type AttemptStore } from '../services/login-limits.js'

// KEYS: the counters; ARGV: the window in ms, then each counter's limit.
// Answers {-1, ms} when a counter is at its limit (nothing counted), else the counts.
const RESERVE = `
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then return {-1, ttl} end
  end
end
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return counts`

// Takes one back from each counter still open, never below zero (a window
// that ended meanwhile is not brought back).
const RELEASE = `
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 0 and redis.call('PTTL', key) > 0 then redis.call('DECR', key) end
end
return 0`

// KEYS: the counters; ARGV: their limits. The ms left of the first at its limit, or -1.
const BLOCKED = `
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i]) then
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
      try {
        const answer = await redis.eval(RESERVE, counters.length, ...counters.map((c) => key(c.key)), windowMs, ...counters.map((c) => c.limit)) as number[]
        return answer[0] === -1 ? { blockedMs: answer[1] as number } : { counts: answer }
      } catch {
        return await local.reserve(counters, windowMs)
      }
    },
    async release (keys) {
      await local.release(keys)
      if (!isUp()) return
      await redis.eval(RELEASE, keys.length, ...keys.map(key))
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
