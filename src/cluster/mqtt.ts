// The broker's shared parts in cluster mode (docs/operations.md §4): mqemitter-redis
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
import { hasWildcard, topicMatches } from '../contract/topics.js'

const require = createRequire(import.meta.url)
// CommonJS packages: the prefixing emitter is a property of the module.
const { MQEmitterRedisPrefix } = require('mqemitter-redis') as { MQEmitterRedisPrefix: new (prefix: string, opts: object) => MQEmitter & { close: (cb: () => void) => void, state: NodeJS.EventEmitter } }
// The package's main export: the async persistence behind the adapter Aedes
// 1.x calls (promises, and Node streams for retained messages, queues and wills).
const redisPersistence = require('aedes-persistence-redis') as (opts: object) => RedisPersistence

interface RetainedPacket { topic: string, payload: Buffer }

interface SessionClient { id: string }

interface RedisPersistence {
  setup: (broker: unknown) => Promise<void>
  streamWill: (brokers: Record<string, number>) => Readable
  storeRetained: (packet: RetainedPacket) => Promise<void>
  createRetainedStreamCombi: (patterns: string[]) => Readable
  addSubscriptions: (client: SessionClient, subs: unknown[]) => Promise<unknown>
  removeSubscriptions: (client: SessionClient, topics: string[]) => Promise<unknown>
  cleanSubscriptions: (client: SessionClient) => Promise<unknown>
}

/** What the broker's own publish takes (Aedes' publish, with its callback). */
type Publish = (packet: { cmd: 'publish', topic: string, payload: Buffer, qos: 0, retain: boolean, dup: false }, done: (err?: Error | null) => void) => void

/** Aedes' own default is unbounded for an emitter it did not build. */
export const EMITTER_CONCURRENCY = 1000

export interface MqttCluster {
  mq: MQEmitter
  persistence: RedisPersistence
  /** Writes the retained messages still held back (shutdown). */
  flushRetained: () => Promise<void>
  /**
   * Writes a retained message to Redis now, before it is published (presence):
   * the publish that follows does not write it again. While Redis cannot take
   * it, it is held like the others and written when Redis is back.
   */
  storeRetainedNow: (packet: RetainedPacket) => Promise<void>
  /** Everything a persistent session left in Redis, gone, on every node (an expired or dropped session). */
  dropSession: (clientId: string) => Promise<void>
  /** The client ids of the persistent sessions stored in Redis. */
  storedSessions: () => Promise<string[]>
}

/**
 * A retained message reaches Redis at most this long after it was published;
 * of several on one topic meanwhile, only the last. Statistics are retained
 * and change with every stored batch of a robot's frames.
 */
export const RETAINED_FLUSH_MS = 500

/** How long a subscription waits for Redis before the client gets its SUBACK anyway. */
export const SUBSCRIBE_WAIT_MS = 1000

/**
 * How long a node remembers the retained messages it stored, to give them
 * again to a subscriber of another node who may have missed them (see
 * holdRetained): the hold, plus room for the subscriber's notice to arrive.
 */
export const RECENT_RETAINED_MS = RETAINED_FLUSH_MS * 4

interface DegradablePersistence extends RedisPersistence {
  putWill: (client: unknown, packet: unknown) => Promise<void>
  delWill: (client: unknown) => Promise<unknown>
  cleanIncoming: (client: SessionClient) => Promise<void>
  outgoingStream: (client: SessionClient) => Readable
}

/**
 * `pub` and `sub` carry the emitter's messages (channels under
 * `<prefix>mqtt:`); `db` holds the persistence's keys (its keyPrefix is
 * `<prefix>mqtt:`). Sessions that ask to persist (clean = false) are bounded:
 * a queued message lives an hour, at most 100 are delivered when the
 * session comes back, and a session expires and is capped per identity
 * (sessions.ts, through dropSession), so sessions that never return cannot
 * grow Redis without bound.
 *
 * While Redis is down (`isUp`), a node keeps logging in and serving clean
 * sessions (docs/operations.md §4): the steps of a CONNECT that only clear a previous
 * session's leftovers in Redis are skipped, and a SUBSCRIBE is answered
 * after SUBSCRIBE_WAIT_MS at most (the emitter subscribes in Redis when it
 * is back; local delivery works at once).
 */
export function createMqttCluster ({ prefix, brokerId, pub, sub, db, isUp }: { prefix: string, brokerId: string, pub: Redis, sub: Redis, db: Redis, isUp: () => boolean }): MqttCluster {
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
  const inTurn = oneAtATime()
  persistence.cleanSubscriptions = async (client) => { if (isUp()) await inTurn(client.id, async () => await cleanSubscriptions(client)) }
  persistence.cleanIncoming = async (client) => { if (isUp()) await cleanIncoming(client) }
  persistence.outgoingStream = (client) => isUp() ? outgoingStream(client) : Readable.from([])
  storeSessionsInTurn(persistence, inTurn)

  let broker: { publish: Publish, closed?: boolean } | undefined
  const setup = persistence.setup.bind(persistence)
  persistence.setup = async (aedes) => {
    broker = aedes as { publish: Publish, closed?: boolean }
    await setup(aedes)
  }
  const retained = holdRetained(persistence, isUp, (p) => {
    if (broker === undefined || broker.closed === true) return
    broker.publish({ cmd: 'publish', topic: p.topic, payload: p.payload, qos: 0, retain: false, dup: false }, () => {})
  })
  // Every SUBSCRIBE of the cluster is announced on `$SYS/<broker id>/new/subscribes`
  // (by Aedes, through the emitter): another node's subscriber is given again
  // what this node stored lately and it may have missed.
  mq.on('$SYS/+/new/subscribes', (packet, cb) => {
    cb()
    if (!retained.anyRecent() || packet.topic === `$SYS/${brokerId}/new/subscribes`) return // this node's own subscribers merge what it holds
    let filters: string[]
    try {
      const subs = (JSON.parse(String(packet.payload)) as { subs?: Array<{ topic?: unknown, qos?: unknown }> }).subs ?? []
      filters = subs.filter((s) => typeof s.topic === 'string' && s.qos !== 128).map((s) => s.topic as string)
    } catch {
      return
    }
    retained.again(retained.recent(filters))
  })

  const encode = (clientId: string): string => encodeURIComponent(clientId)
  return {
    mq,
    persistence,
    flushRetained: retained.flush,
    storeRetainedNow: retained.storeNow,
    async dropSession (clientId) {
      await persistence.cleanSubscriptions({ id: clientId })
      await db.multi().srem('clients', clientId).del(`client:${encode(clientId)}`, `outgoing:${encode(clientId)}`, `incoming:${encode(clientId)}`).exec()
    },
    storedSessions: async () => await db.smembers('clients')
  }
}

/** Runs each client's tasks one after the other (by client id); other clients' run alongside. */
function oneAtATime (): <T>(clientId: string, task: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>()
  return async (clientId, task) => {
    const previous = tails.get(clientId) ?? Promise.resolve()
    const next = previous.then(task, task)
    tails.set(clientId, next)
    try {
      return await next
    } finally {
      if (tails.get(clientId) === next) tails.delete(clientId)
    }
  }
}

/**
 * A persistent session's subscriptions are stored one change at a time per
 * client, and a SUBSCRIBE's are stored once. Aedes stores them once per
 * filter of a SUBSCRIBE, the whole list each time, all at once; and
 * aedes-persistence-redis, after writing them, waits for its broadcast to
 * come back under a key made of the client id and the list's first filter.
 * Two stores of one SUBSCRIBE (or two SUBSCRIBEs in flight with the same
 * first filter) shared that key: the first broadcast answered the second
 * waiter, the first waited for ever, and the client never got its SUBACK.
 */
function storeSessionsInTurn (persistence: RedisPersistence, inTurn: ReturnType<typeof oneAtATime>): void {
  const add = persistence.addSubscriptions.bind(persistence)
  const remove = persistence.removeSubscriptions.bind(persistence)
  const storing = new WeakMap<unknown[], Promise<unknown>>()
  persistence.addSubscriptions = async (client, subs) => {
    let stored = storing.get(subs)
    if (stored === undefined) {
      stored = inTurn(client.id, async () => await add(client, subs))
      storing.set(subs, stored)
    }
    return await stored
  }
  persistence.removeSubscriptions = async (client, topics) => await inTurn(client.id, async () => await remove(client, topics))
}

/**
 * Retained messages are written to Redis (an HSET, or HDEL for an empty one)
 * at most every RETAINED_FLUSH_MS, the last one per topic, instead of once per
 * message: a robot's statistics are retained and published after every
 * stored batch of its frames, and that write was half of the Redis commands
 * (and of the node's socket writes) that streaming cost in cluster mode.
 * Live delivery does not wait for it. This node's own subscribers see the
 * messages it holds back at once (they are merged over what Redis returns).
 * Another node's new subscriber may read the previous retained message from
 * Redis, after the live one went by: when its SUBSCRIBE is announced (every
 * node hears of every SUBSCRIBE), this node publishes again, live and
 * RETAINED_FLUSH_MS later, what it stored in the last RECENT_RETAINED_MS on
 * topics that match, unless newer ones went out meanwhile, so that the
 * subscriber ends with the newest within the hold. While Redis is down they wait here, one
 * per topic, and are written when it is back.
 *
 * Presence is not held (storeNow): it changes seldom, and a subscriber must
 * never be left with an old one. It is written before it is published, so a
 * subscriber either reads it from Redis or receives it live.
 */
function holdRetained (persistence: RedisPersistence, isUp: () => boolean, publish: (packet: RetainedPacket) => void) {
  const storeRetained = persistence.storeRetained.bind(persistence)
  const streamRetained = persistence.createRetainedStreamCombi.bind(persistence)
  let held = new Map<string, RetainedPacket>()
  let writing = new Map<string, RetainedPacket>()
  /** What was stored lately, per topic, and when. */
  const recent = new Map<string, { packet: RetainedPacket, at: number }>()
  /** Written by storeNow: the publish that follows is not written again. */
  const written = new Map<string, Buffer>()
  let timer: NodeJS.Timeout | null = null
  let flushing: Promise<void> | null = null
  /** To publish again, unless a newer one is stored meanwhile. */
  let again = new Map<string, RetainedPacket>()
  let againTimer: NodeJS.Timeout | null = null

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
    const old = Date.now() - RECENT_RETAINED_MS
    for (const [topic, r] of recent) if (r.at < old) recent.delete(topic)
    if (held.size > 0) schedule()
  }

  async function flush (): Promise<void> {
    if (flushing !== null) { schedule(); return }
    flushing = write().finally(() => { flushing = null })
    await flushing
  }

  persistence.storeRetained = async (packet) => {
    const now = written.get(packet.topic)
    if (now !== undefined) {
      written.delete(packet.topic)
      if (now.equals(packet.payload)) return
    }
    held.set(packet.topic, packet)
    recent.set(packet.topic, { packet, at: Date.now() })
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
  return {
    async flush (): Promise<void> {
      if (timer !== null) { clearTimeout(timer); timer = null }
      if (againTimer !== null) { clearTimeout(againTimer); againTimer = null }
      await flushing
      if (held.size > 0) await write()
    },
    async storeNow (packet: RetainedPacket): Promise<void> {
      // An older one held back (Redis was down) must not be written after it.
      held.delete(packet.topic)
      recent.delete(packet.topic)
      written.delete(packet.topic)
      if (isUp()) {
        try {
          await storeRetained(packet)
          written.set(packet.topic, packet.payload)
          return
        } catch {}
      }
      held.set(packet.topic, packet)
      schedule()
    },
    anyRecent: (): boolean => recent.size > 0,
    /**
     * Publishes these again, live, RETAINED_FLUSH_MS from now, each unless a
     * newer one was stored meanwhile (that one went out live to the new
     * subscriber). Not at once: the subscriber's node is still reading the
     * retained messages from Redis, and an older one read there would reach
     * the subscriber after the newest.
     */
    again (packets: RetainedPacket[]): void {
      for (const p of packets) again.set(p.topic, p)
      if (again.size === 0 || againTimer !== null) return
      againTimer = setTimeout(() => {
        againTimer = null
        const due = again
        again = new Map()
        for (const [topic, p] of due) {
          const r = recent.get(topic)
          if (r === undefined || r.packet === p) publish(p)
        }
      }, RETAINED_FLUSH_MS)
      againTimer.unref()
    },
    /** The non-empty retained messages stored in the last RECENT_RETAINED_MS on topics that match `filters`. */
    recent (filters: string[]): RetainedPacket[] {
      if (recent.size === 0 || filters.length === 0) return []
      const since = Date.now() - RECENT_RETAINED_MS
      const found = new Map<string, RetainedPacket>()
      const take = (r: { packet: RetainedPacket, at: number } | undefined): void => {
        if (r !== undefined && r.at >= since && r.packet.payload.length > 0) found.set(r.packet.topic, r.packet)
      }
      for (const filter of filters) {
        // A robot's own topics are one lookup each; only wildcards (staff watchers) look through them all.
        if (!hasWildcard(filter)) take(recent.get(filter))
        else for (const r of recent.values()) if (topicMatches(filter, r.packet.topic)) take(r)
      }
      return [...found.values()]
    }
  }
}
