// Redis connections of a cluster node (docs/operations.md §4). Every key carries
// REDIS_PREFIX (ioredis' keyPrefix); pub/sub channels are not keys, so their
// names are prefixed by hand (channel()). A Redis that is down or frozen
// must never stall a node: commands fail at once while the connection is
// down (no offline queue that would grow without bound) and after
// COMMAND_TIMEOUT_MS when Redis stops answering, and each caller decides what
// a failure means (a local fallback, a log line), never a crash.
import { Redis, type RedisOptions } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'

/** How long a command may wait for a Redis that stopped answering (SIGSTOP, a network partition). */
export const COMMAND_TIMEOUT_MS = 1000

export interface RedisSettings { url: string, prefix: string }

/**
 * One connection. `role` names it in the logs; errors are logged once per
 * outage (ioredis reports every failed reconnection).
 */
export function connectRedis (settings: RedisSettings, role: string, log: FastifyBaseLogger, options: RedisOptions = {}): Redis {
  const redis = new Redis(settings.url, {
    keyPrefix: settings.prefix,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    // reconnect every 0.2 s at first, then at most every 2 s, forever
    retryStrategy: (times) => Math.min(times * 200, 2000),
    connectionName: `united-${role}`,
    ...options
  })
  let down = false
  redis.on('error', (err: Error) => {
    if (down) return
    down = true
    log.warn({ role, err: err.message }, 'Redis unreachable: cross-node features wait for it')
  })
  redis.on('ready', () => {
    if (down) log.info({ role }, 'Redis reachable again')
    down = false
  })
  return redis
}

/** A pub/sub channel name under the prefix. */
export function channel (settings: RedisSettings, name: string): string {
  return `${settings.prefix}${name}`
}

/** Closes a connection: QUIT when it is up, at once when it is not. */
export async function closeRedis (redis: Redis): Promise<void> {
  if (redis.status === 'end') return
  try {
    if (redis.status === 'ready') await redis.quit()
    else redis.disconnect()
  } catch {
    redis.disconnect()
  }
}
