// Cluster mode (docs/operations.md §4): with REDIS_URL, every United process that
// shares the PostgreSQL database, the Redis and REDIS_PREFIX is a node of one
// broker and one control plane. This module owns the Redis connections and
// what lives there: robot tokens, log-in counters, the events that cross
// nodes, presence per node, node heartbeats, who holds each client id,
// connections per identity, persistent sessions' expiry, and the broker's
// emitter and persistence. Without REDIS_URL none of it is built.
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import type { EventBus } from '../events.js'
import type { AttemptStore } from '../services/login-limits.js'
import type { TokenStore } from '../services/token-store.js'
import { createRedisAttemptStore } from './attempts.js'
import { createClusterCounter, type ClusterCounter } from './connections.js'
import { relayEvents } from './events.js'
import { createMqttCluster, type MqttCluster } from './mqtt.js'
import { createNodeRegistry, type NodeInfo, type NodeRegistry } from './nodes.js'
import { createOwnerRegistry, OWNER_TTL, type OwnerRegistry } from './owners.js'
import { createClusterPresence, type ClusterPresence } from './presence.js'
import { channel, closeRedis, connectRedis, type RedisSettings } from './redis.js'
import { createSessionRegistry, type SessionRegistry } from './sessions.js'
import { createRedisTokenStore } from './tokens.js'

export type { ClusterPresence, ClusterPresenceState } from './presence.js'
export type { NodeInfo } from './nodes.js'

/** How long a starting node waits for Redis before it gives up (exit 1, with the reason). */
export const STARTUP_WAIT_MS = 15_000

export interface NodeHooks {
  /** this node's connected robots and users, for its heartbeat */
  counts: () => { robots: number, users: number }
  /** a node is dead (or this node restarted under the same NODE_ID): its robots' presence must be recomputed */
  release: (node: string, robots: string[]) => Promise<void>
  /** the client ids of this node's open connections (their ownership records are renewed) */
  clientIds: () => Iterable<string>
}

export interface Cluster {
  nodeId: string
  /** this process's Aedes id: unique at every start, or the other nodes drop its packets as duplicates (aedes#775) */
  brokerId: string
  startedAt: Date
  /** the connection for small commands (keys under REDIS_PREFIX) */
  redis: Redis
  tokenStore: TokenStore
  attemptStore: AttemptStore
  presence: ClusterPresence
  nodes: NodeRegistry
  mqtt: MqttCluster
  /** who holds each client id (broker/takeover.ts) */
  owners: OwnerRegistry
  /** open connections per identity over the live nodes */
  connections: ClusterCounter
  /** persistent sessions' expiry and per-identity cap */
  sessions: SessionRegistry
  /** a bus whose cross-node events reach the other nodes */
  relay: (bus: EventBus) => EventBus
  /** 'ok' while the command connection is up */
  redisStatus: () => 'ok' | 'down'
  /** called when Redis answers again after an outage (or came back empty) */
  onReconnect: (listener: () => void) => void
  /** starts beating and watching the other nodes */
  start: (hooks: NodeHooks) => Promise<void>
  close: () => Promise<void>
}

async function waitReady (connections: Redis[], ms: number): Promise<void> {
  await Promise.race([
    Promise.all(connections.map(async (r) => {
      if (r.status === 'ready') return
      await new Promise<void>((resolve) => { r.once('ready', () => { resolve() }) })
    })),
    new Promise<never>((_resolve, reject) => { setTimeout(() => { reject(new Error(`Redis at REDIS_URL did not answer within ${ms / 1000} s`)) }, ms).unref() })
  ])
}

export async function createCluster ({ config, log: parentLog }: { config: Config, log: FastifyBaseLogger }): Promise<Cluster> {
  const log = parentLog.child({ module: 'cluster', node: config.nodeId })
  const settings: RedisSettings = { url: config.REDIS_URL as string, prefix: config.REDIS_PREFIX }
  const nodeId = config.nodeId
  const brokerId = `${nodeId}.${randomUUID().slice(0, 8)}`
  const startedAt = new Date()

  const cmd = connectRedis(settings, 'commands', log)
  // Subscribed connections run nothing else; they queue their (re)subscriptions while down.
  const eventsSub = connectRedis(settings, 'events', log, { enableOfflineQueue: true, commandTimeout: undefined })
  // The broker's two busy connections send what one turn of the event loop
  // gives them as one write (auto-pipelining): a statistics message is a
  // PUBLISH and an HSET, and one write per command cost ~9 µs of a node's CPU
  // per frame in the closed loop (npm run bench -- --cluster).
  const mqPub = connectRedis(settings, 'mqtt-pub', log, { keyPrefix: undefined, enableAutoPipelining: true })
  const mqSub = connectRedis(settings, 'mqtt-sub', log, { keyPrefix: undefined, enableOfflineQueue: true, commandTimeout: undefined })
  const mqDb = connectRedis({ ...settings, prefix: `${settings.prefix}mqtt:` }, 'mqtt-db', log, { enableAutoPipelining: true })
  const connections = [cmd, eventsSub, mqPub, mqSub, mqDb]
  try {
    await waitReady(connections, STARTUP_WAIT_MS)
  } catch (err) {
    for (const r of connections) r.disconnect()
    throw err
  }

  // Up while the command connection is ready and answers PING: a frozen
  // Redis (SIGSTOP, a partition) keeps its TCP connection but answers nothing.
  let up = true
  const reconnectListeners: Array<() => void> = []
  const setUp = (now: boolean): void => {
    const back = now && !up
    up = now
    if (back) for (const listener of reconnectListeners) listener()
  }
  const pinger = setInterval(() => { cmd.ping().then(() => { setUp(true) }, () => { setUp(false) }) }, 1000)
  pinger.unref()
  cmd.on('close', () => { setUp(false) })
  const isUp = (): boolean => up && cmd.status === 'ready'

  const presence = createClusterPresence({ redis: cmd })
  const nodes = createNodeRegistry({ redis: cmd, nodeId, timeoutSeconds: config.CLUSTER_NODE_TIMEOUT })
  const mqtt = createMqttCluster({ prefix: settings.prefix, brokerId, pub: mqPub, sub: mqSub, db: mqDb, isUp })
  const owners = createOwnerRegistry({ redis: cmd, prefix: settings.prefix, nodeId, brokerId })
  const counter = createClusterCounter({ redis: cmd, prefix: settings.prefix, nodeId, ttlMs: nodes.aliveMs, isUp })
  const sessions = createSessionRegistry({ redis: cmd, drop: mqtt.dropSession, stored: mqtt.storedSessions, ttlSeconds: config.MQTT_SESSION_TTL, cap: config.MQTT_SESSIONS_PER_IDENTITY, log })
  const tokenStore = createRedisTokenStore({ redis: cmd, isUp, log, voidedTtlSeconds: config.ROBOT_TOKEN_TTL })
  const attemptStore = createRedisAttemptStore({ redis: cmd, isUp })

  cmd.on('ready', () => { setUp(true) })

  let timer: NodeJS.Timeout | undefined
  let beating: Promise<void> = Promise.resolve()
  let closed = false

  /**
   * One beat: this node's line, then a look for dead nodes to reap. A line
   * that had gone (Redis emptied, or this node taken for dead after a long
   * pause or a partition, and its robots released) means the cluster has
   * forgotten this node's connections: they are reported again.
   */
  let beats = 0
  let ownersRenewedAt = Date.now()
  async function beat (hooks: NodeHooks): Promise<void> {
    const counts = hooks.counts()
    const forgotten = await nodes.beat({ started_at: startedAt.toISOString(), robots: counts.robots, users: counts.users })
    if (forgotten && beats > 0) {
      log.warn('this node was missing from the cluster: its connections are reported again')
      for (const listener of reconnectListeners) listener()
    }
    await counter.beat(forgotten)
    if (forgotten && beats > 0) {
      ownersRenewedAt = Date.now()
      await owners.claimAll(hooks.clientIds())
    } else if (Date.now() - ownersRenewedAt > OWNER_TTL * 1000 / 3) {
      ownersRenewedAt = Date.now()
      await owners.renew(hooks.clientIds())
    }
    beats++
    for (const node of await nodes.all()) {
      if (node.alive || node.node_id === nodeId) continue
      if (!await nodes.claim(node.node_id)) continue
      await reap(node, hooks)
    }
  }

  async function reap (node: NodeInfo, hooks: NodeHooks): Promise<void> {
    const robots = await presence.robotsOf(node.node_id)
    log.warn({ dead: node.node_id, robots: robots.length, lastSeen: node.last_seen_at }, 'a node stopped beating: its robots are offline unless connected elsewhere')
    await hooks.release(node.node_id, robots)
    await owners.forgetNode(node.node_id)
    await nodes.forget(node.node_id)
  }

  return {
    nodeId,
    brokerId,
    startedAt,
    redis: cmd,
    tokenStore,
    attemptStore,
    presence,
    nodes,
    mqtt,
    owners,
    connections: counter,
    sessions,
    relay: (bus) => relayEvents({ bus, pub: cmd, sub: eventsSub, channel: channel(settings, 'events'), nodeId, log }),
    redisStatus: () => isUp() ? 'ok' : 'down',
    onReconnect: (listener) => { reconnectListeners.push(listener) },
    async start (hooks) {
      // A node restarted under the same NODE_ID: what its previous process held is gone.
      const stale = await presence.robotsOf(nodeId)
      if (stale.length > 0) await hooks.release(nodeId, stale)
      await owners.forgetNode(nodeId)
      await beat(hooks)
      sessions.start()
      timer = setInterval(() => {
        beating = beating.then(async () => { if (!closed) await beat(hooks) }).catch((err: unknown) => {
          log.debug({ err: (err as Error).message }, 'cluster heartbeat failed')
        })
      }, nodes.beatEveryMs)
      timer.unref()
    },
    async close () {
      closed = true
      sessions.close()
      clearInterval(pinger)
      if (timer !== undefined) clearInterval(timer)
      await beating
      await nodes.leave().catch(() => {})
      await mqtt.flushRetained().catch(() => {})
      await tokenStore.close()
      await attemptStore.close()
      await Promise.all([cmd, eventsSub, mqDb].map(closeRedis))
      // mqPub and mqSub are closed by the emitter (broker.close() closes it).
    }
  }
}
