// The broker's shared parts in cluster mode (CONTRACT §10): mqemitter-redis
// carries messages between the nodes' Aedes brokers, aedes-persistence-redis
// keeps what Aedes persists (retained messages, persistent sessions, wills).
// Both are needed: with only the emitter, retained messages and offline
// sessions stay on one node (aedes#531).
//
// mqemitter-redis delivers a message, even to a subscriber on the same node,
// only when it comes back from Redis: every message costs a round trip, and
// a Redis outage stops local delivery too. That is why frames and their acks
// never take this path (broker/robot-publishes.ts, broker/acks.ts): only
// statistics, presence and commands do.
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import type { MQEmitter } from 'mqemitter'

const require = createRequire(import.meta.url)
// CommonJS packages: the prefixing emitter is a property of the module.
const { MQEmitterRedisPrefix } = require('mqemitter-redis') as { MQEmitterRedisPrefix: new (prefix: string, opts: object) => MQEmitter & { close: (cb: () => void) => void } }
// The package's main export: the async persistence behind the adapter Aedes
// 1.x calls (promises, and Node streams for retained messages, queues and wills).
const redisPersistence = require('aedes-persistence-redis') as (opts: object) => RedisPersistence

interface RedisPersistence {
  setup: (broker: unknown) => Promise<void>
  streamWill: (brokers: Record<string, number>) => Readable
}

/** Aedes' own default is unbounded for an emitter it did not build. */
export const EMITTER_CONCURRENCY = 1000

export interface MqttCluster {
  mq: MQEmitter
  persistence: RedisPersistence
}

/**
 * `pub` and `sub` carry the emitter's messages (channels under
 * `<prefix>mqtt:`); `db` holds the persistence's keys (its keyPrefix is
 * `<prefix>mqtt:`). Sessions that ask to persist (clean = false) are bounded:
 * a queued message lives an hour, and at most 100 are delivered when the
 * session comes back, so sessions that never return cannot grow Redis
 * without bound.
 */
export function createMqttCluster ({ prefix, pub, sub, db }: { prefix: string, pub: Redis, sub: Redis, db: Redis }): MqttCluster {
  const mq = new MQEmitterRedisPrefix(`${prefix}mqtt:`, { pubConn: pub, subConn: sub, concurrency: EMITTER_CONCURRENCY, matchEmptyLevels: true })
  const persistence = redisPersistence({ conn: db, maxSessionDelivery: 100, packetTTL: () => 3600 })
  // A crashed node's wills are not published by the others: presence comes
  // from node heartbeats (reaper), and a will of a connection that was taken
  // over must never fire. The reaper deletes them (dropWillsOf).
  persistence.streamWill = () => Readable.from([])
  return { mq, persistence }
}

/** Deletes the wills a dead broker left in the persistence (keys `will:<broker>:<client>`, listed in `will`). */
export async function dropWillsOf (db: Redis, brokerId: string): Promise<number> {
  const keys = await db.lrange('will', 0, -1)
  const mine = keys.filter((k) => k.startsWith(`will:${brokerId}:`))
  if (mine.length === 0) return 0
  const tx = db.multi()
  for (const k of mine) tx.lrem('will', 0, k).del(k)
  await tx.exec()
  return mine.length
}
