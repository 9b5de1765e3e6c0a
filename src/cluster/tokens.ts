// Robot access tokens in Redis (docs/protocol.md §2.2, §11): a token obtained from any
// node works at any node's CONNECT until it expires or is voided. Tokens are
// kept by their SHA-256 (tokenKey), never in the clear: `token:<sha>` holds
// the robot uuid with the token's TTL, `robot-tokens:<uuid>` the robot's
// token hashes, so that voiding a robot's tokens deletes them all.
//
// Each node also keeps the tokens it issued in memory. While Redis is
// unreachable, a CONNECT to this node is checked there: a robot keeps
// logging in where it obtained its token (docs/operations.md §4, "When Redis dies or
// freezes"); a token this node does not know cannot be checked
// until Redis is back, and get() says so by throwing: the CONNECT gets
// CONNACK 3 (server unavailable), not 4, and counts toward no log-in limit,
// so that a Redis outage cannot block the addresses of a fleet reconnecting
// to another node. Redis' answer wins whenever there is one, so a token
// voided anywhere is refused everywhere.
//
// A voided token is remembered as `voided-token:<sha>` for ROBOT_TOKEN_TTL
// after the voiding (EX), so that every node answers it as a revoked
// credential (CONNACK 5, counted toward no limit) rather than as a guess.
// Each of these keys expires on its own: at most one per token issued in the
// last two ROBOT_TOKEN_TTL.
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { createMemoryTokenStore, tokenKey, type TokenStore, type TokenStoreOptions } from '../services/token-store.js'

/** Redis cannot answer and this node does not know the token: it could not be checked. */
export class TokenStoreUnavailableError extends Error {
  override name = 'TokenStoreUnavailableError'
  constructor () { super('robot tokens unavailable: Redis cannot answer') }
}

export function createRedisTokenStore ({ redis, isUp, log, ...options }: { redis: Redis, isUp: () => boolean, log: FastifyBaseLogger } & TokenStoreOptions): TokenStore {
  const local = createMemoryTokenStore(options)
  return {
    async put (token, robotUuid, ttlSeconds) {
      await local.put(token, robotUuid, ttlSeconds)
      const key = tokenKey(token)
      try {
        await redis.multi()
          .set(`token:${key}`, robotUuid, 'EX', ttlSeconds)
          .sadd(`robot-tokens:${robotUuid}`, key)
          .expire(`robot-tokens:${robotUuid}`, ttlSeconds, 'GT')
          .expire(`robot-tokens:${robotUuid}`, ttlSeconds, 'NX')
          .exec()
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'robot token not shared: it works on this node until Redis is back')
      }
    },
    async get (token) {
      if (isUp()) {
        const key = tokenKey(token)
        try {
          const [robotUuid, voided] = await redis.mget(`token:${key}`, `voided-token:${key}`)
          if (robotUuid !== null && robotUuid !== undefined) return { robotUuid }
          return voided !== null && voided !== undefined ? { voided: true } : null
        } catch {}
      }
      // What this node knows: the tokens it issued, and those it voided.
      const known = await local.get(token)
      if (known !== null) return known
      throw new TokenStoreUnavailableError()
    },
    async revokeRobot (robotUuid) {
      await local.revokeRobot(robotUuid)
      const keys = await redis.smembers(`robot-tokens:${robotUuid}`)
      if (keys.length === 0) return
      // Only the tokens still live are remembered as voided: the set may
      // still name some that have expired.
      const live = await redis.mget(...keys.map((k) => `token:${k}`))
      const voiding = redis.multi().del(`robot-tokens:${robotUuid}`, ...keys.map((k) => `token:${k}`))
      keys.forEach((k, i) => { if (live[i] !== null) voiding.set(`voided-token:${k}`, '1', 'EX', options.voidedTtlSeconds) })
      await voiding.exec()
    },
    async close () {
      await local.close()
    }
  }
}
