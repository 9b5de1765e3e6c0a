// The log-in limits' counters in Redis (CONTRACT §13, §10): every node counts
// an address's failed log-ins in the same window, `attempts:<key>`, a counter
// that expires with its window (INCR, then PEXPIRE NX: the first failure
// opens the window, later ones do not stretch it). While Redis is
// unreachable each node counts in its own memory, so that a brute force
// aimed at a node during an outage still meets a limit there.
import type { Redis } from 'ioredis'
import { createMemoryAttemptStore, type AttemptStore } from '../services/login-limits.js'

export function createRedisAttemptStore ({ redis, isUp }: { redis: Redis, isUp: () => boolean }): AttemptStore {
  const local = createMemoryAttemptStore()
  return {
    async get (key) {
      if (!isUp()) return await local.get(key)
      try {
        const [[, count], [, ttl]] = await redis.multi().get(`attempts:${key}`).pttl(`attempts:${key}`).exec() as [[unknown, string | null], [unknown, number]]
        if (count === null || ttl <= 0) return null
        return { count: Number(count), resetMs: ttl }
      } catch {
        return await local.get(key)
      }
    },
    async increment (key, windowMs) {
      if (!isUp()) return await local.increment(key, windowMs)
      try {
        const [[, count], , [, ttl]] = await redis.multi().incr(`attempts:${key}`).pexpire(`attempts:${key}`, windowMs, 'NX').pttl(`attempts:${key}`).exec() as [[unknown, number], unknown, [unknown, number]]
        return { count, resetMs: ttl > 0 ? ttl : windowMs }
      } catch {
        return await local.increment(key, windowMs)
      }
    },
    async close () {
      await local.close()
    }
  }
}
