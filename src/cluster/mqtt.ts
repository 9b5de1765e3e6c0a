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
import { topicMatches } from '../contract/topics.js'

const require = createRequire(import.meta.url)
// CommonJS packages: the prefixing emitter is a property of the module.
const { MQEmitterRedisPrefix } = require('mqemitter-redis') as { MQEmitterRedisPrefix: new (prefix: string, opts: object) => MQEmitter & { close: (cb: () => void) => void, state: NodeJS.EventEmitter } }
// The package's main export: the async persistence behind the adapter Aedes
// 1.x calls (promises, and Node streams for retained messages, queues and wills).
const redisPersistence = require('aedes-persistence-redis') as (opts: object) => RedisPersistence

interface RetainedPacket { topic: string, payload: Buffer }

interface RedisPersistence {
  setup: (broker: unknown) => Promise<void>
  streamWill: (brokers: Record<string, number>) => Readable
  storeRetained: (packet: RetainedPacket) => Promise<void>
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

/** Aedes' own default is unbounded for an emitter it did not build. */
export const EMITTER_CONCURRENCY = 1000

export interface MqttCluster {
  mq: MQEmitter
  persistence: RedisPersistence
  /** Writes the retained messages still held back (shutdown). */
  flushRetained: () => Promise<void>
}

/**
 * A retained message reaches Redis at most this long after it was published;
 * of several on one topic meanwhile, only the last. Statistics are retained
 * and change with every stored batch of a robot's frames.
 */
export const RETAINED_FLUSH_MS = 500

/** How long a subscription waits for Redis before the client gets its SUBACK anyway. */
export const SUBSCRIBE_WAIT_MS = 1000

interface DegradablePersistence extends RedisPersistence {
  putWill: (client: unknown, packet: unknown) => Promise<void>
  delWill: (client: unknown) => Promise<unknown>
  cleanSubscriptions: (client: unknown) => Promise<void>
  cleanIncoming: (client: unknown) => Promise<void>
  outgoingStream: (client: unknown) => Readable
}

/**
 * `pub` and `sub` carry the emitter's messages (channels under
 * `<prefix>mqtt:`); `db` holds the persistence's keys (its keyPrefix is
 * `<prefix>mqtt:`). Sessions that ask to persist (clean = false) are bounded:
 * a queued message lives an hour, and at most 100 are delivered when the
 * session comes back, so sessions that never return cannot grow Redis
 * without bound.
 *
 * While Redis is down (`isUp`), a node keeps logging in and serving clean
 * sessions (CONTRACT §10): the steps of a CONNECT that only clear a previous
 * session's leftovers in Redis are skipped, and a SUBSCRIBE is answered
 * after SUBSCRIBE_WAIT_MS at most (the emitter subscribes in Redis when it
 * is back; local delivery works at once).
 */
export function createMqttCluster ({ prefix, pub, sub, db, isUp }: { prefix: string, pub: Redis, sub: Redis, db: Redis, isUp: () => boolean }): MqttCluster {
  const mq = new MQEmitterRedisPrefix(`${prefix}mqtt:`, { pubConn: pub, subConn: sub, concurrency: EMITTER_CONCURRENCY, matchEmptyLevels: true })
  // The emitter re-emits its connections' errors on `state`, where nobody
  // listens: an unhandled 'error' that would end the process when Redis
  // goes away. The connections' own listeners log them (redis.ts).
  mq.state.on('error', () => {})
  const on = mq.on.bind(mq)
  const removeListener = mq.removeListener.bind(mq)
  const soon = (done?: () => void): (() => void) => {
    let called = false
    const finish = (): void => { if (!called) { called = true; done?.() } }
    setTimeout(finish, SUBSCRIBE_WAIT_MS).unref()
    return finish
  }
  mq.on = ((topic: string, listener: never, done?: () => void) => on(topic, listener, soon(done))) as typeof mq.on
  mq.removeListener = ((topic: string, listener: never, done?: () => void) => removeListener(topic, listener, soon(done))) as typeof mq.removeListener

  const persistence = redisPersistence({ conn: db, maxSessionDelivery: 100, packetTTL: () => 3600 }) as DegradablePersistence
  // Wills live in the connection (client.will) and fire from there. The copy
  // Aedes keeps in the persistence is for other brokers to fire a crashed
  // broker's wills, which United does not do: presence comes from node
  // heartbeats (the reaper), and a will of a connection that was taken over
  // must never fire. So no will is written to Redis, and none is read back.
  persistence.putWill = async () => {}
  persistence.delWill = async () => null
  persistence.streamWill = () => Readable.from([])
  const cleanSubscriptions = persistence.cleanSubscriptions.bind(persistence)
  const cleanIncoming = persistence.cleanIncoming.bind(persistence)
  const outgoingStream = persistence.outgoingStream.bind(persistence)
  persistence.cleanSubscriptions = async (client) => { if (isUp()) await cleanSubscriptions(client) }
  persistence.cleanIncoming = async (client) => { if (isUp()) await cleanIncoming(client) }
  persistence.outgoingStream = (client) => isUp() ? outgoingStream(client) : Readable.from([])
  const flushRetained = holdRetained(persistence, isUp)
  return { mq, persistence, flushRetained }
}

/**
 * Retained messages are written to Redis (an HSET, or HDEL for an empty one)
 * at most every RETAINED_FLUSH_MS, the last one per topic, instead of once per
 * message: a robot's statistics are retained and published after every
 * stored batch of its frames, and that write was half of the Redis commands
 * (and of the node's socket writes) that streaming cost in cluster mode.
 * Live delivery does not wait for it. This node's own subscribers see the
 * messages it holds back at once (they are merged over what Redis returns);
 * another node's new subscriber may get the previous retained message for
 * up to RETAINED_FLUSH_MS, then the live one. While Redis is down they wait
 * here, one per topic, and are written when it is back.
 */
function holdRetained (persistence: RedisPersistence, isUp: () => boolean): () => Promise<void> {
  const storeRetained = persistence.storeRetained.bind(persistence)
  const streamRetained = persistence.createRetainedStreamCombi.bind(persistence)
  let held = new Map<string, RetainedPacket>()
  let writing = new Map<string, RetainedPacket>()
  let timer: NodeJS.Timeout | null = null
  let flushing: Promise<void> | null = null

  const schedule = (): void => {
    if (timer !== null) return
    timer = setTimeout(() => { timer = null; void flush() }, RETAINED_FLUSH_MS)
    timer.unref()
  }

  async function write (): Promise<void> {
    if (!isUp()) { schedule(); return }
    writing = held
    held = new Map()
    const packets = [...writing.values()]
    const results = await Promise.allSettled(packets.map(async (p) => { await storeRetained(p) }))
    results.forEach((r, i) => {
      const p = packets[i] as RetainedPacket
      if (r.status === 'rejected' && !held.has(p.topic)) held.set(p.topic, p) // written later, unless a newer one came
    })
    writing = new Map()
    if (held.size > 0) schedule()
  }

  async function flush (): Promise<void> {
    if (flushing !== null) { schedule(); return }
    flushing = write().finally(() => { flushing = null })
    await flushing
  }

  persistence.storeRetained = async (packet) => {
    held.set(packet.topic, packet)
    schedule()
  }
  persistence.createRetainedStreamCombi = (patterns) => {
    if (held.size === 0 && writing.size === 0) return streamRetained(patterns)
    const local = new Map([...writing, ...held]) // held is newer
    const mine = [...local.values()].filter((p) => patterns.some((pattern) => topicMatches(pattern, p.topic)))
    if (mine.length === 0) return streamRetained(patterns)
    return Readable.from((async function * () {
      for await (const p of streamRetained(patterns) as AsyncIterable<RetainedPacket>) if (!local.has(p.topic)) yield p
      for (const p of mine) if (p.payload.length > 0) yield p
    })(), { objectMode: true })
  }
  return async () => {
    if (timer !== null) { clearTimeout(timer); timer = null }
    await flushing
    if (held.size > 0) await write()
  }
}
