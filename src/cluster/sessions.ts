// Persistent sessions (clean = false) in Redis, bounded. aedes-persistence-redis
// keeps a session's subscriptions and queue with no expiry, and every node
// loads them all at start: a client that connected once with a fresh client
// id left them for ever. Here each session has an expiry, MQTT_SESSION_TTL
// after its last connection ended (an MQTT 3.1.1 server may discard a
// session), and each identity keeps at most MQTT_SESSIONS_PER_IDENTITY of
// them: a new one drops the identity's least recently used (a client's new
// session is never refused).
//
//   sessions              zset: client id → when the session expires (ms)
//   sessions-of:<identity> zset: client id → when it was last used (ms)
//
// A connected session's expiry is moved forward every REFRESH_MS by its node;
// a crashed node's sessions therefore expire MQTT_SESSION_TTL after its last
// refresh. Every node sweeps expired sessions; ZREM decides which node drops
// each one (everything it left in Redis, and its subscriptions on every node).
// A lone node applies the same bounds to the sessions Aedes keeps in memory
// (createLocalSessionRegistry).
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

const REGISTER_LUA = `
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local cap = tonumber(ARGV[4])
local n = redis.call('ZCARD', KEYS[2])
local dropped = {}
if cap > 0 and n > cap then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - cap)) do
    if id ~= ARGV[1] and #dropped < n - cap then
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[1], id)
      table.insert(dropped, id)
    end
  end
end
return dropped
`

type SessionRedis = Redis & { unitedSession: (sessions: string, mine: string, id: string, now: number, expires: number, cap: number, keepMs: number) => Promise<string[]> }

/** The identity a scoped client id belongs to (`robot:<uuid>` or `user:<id>`, see broker/principal.ts). */
export function identityOfClientId (clientId: string): string {
  const [kind, id] = clientId.split(':')
  return id === undefined ? 'unscoped' : `${kind ?? ''}:${id}`
}

export interface SessionRegistry {
  /** A persistent session's connection was registered on this node. */
  connected: (clientId: string) => void
  /** That connection ended: the session expires MQTT_SESSION_TTL from now. */
  disconnected: (clientId: string) => void
  /** Starts refreshing and sweeping; sessions stored before expiries existed get one. */
  start: () => void
  /** One sweep (also run on a timer). */
  sweep: () => Promise<number>
  close: () => void
}

export function createSessionRegistry ({ redis, drop, stored, ttlSeconds, cap, log }: {
  redis: Redis
  /** Removes what a session left (src/cluster/mqtt.ts dropSession). */
  drop: (clientId: string) => Promise<void>
  /** The client ids of the sessions stored in Redis. */
  stored: () => Promise<string[]>
  ttlSeconds: number
  cap: number
  log: FastifyBaseLogger
}): SessionRegistry {
  redis.defineCommand('unitedSession', { numberOfKeys: 2, lua: REGISTER_LUA })
  const r = redis as SessionRedis
  const ttlMs = ttlSeconds * 1000
  const refreshMs = Math.min(60_000, Math.max(1000, Math.floor(ttlMs / 4)))
  /** Persistent sessions connected here (by client id: a takeover on this node keeps one entry). */
  const local = new Map<string, number>()
  const timers: NodeJS.Timeout[] = []
  let closed = false

  const dropQuietly = async (ids: string[], why: string): Promise<void> => {
    for (const id of ids) {
      try {
        await drop(id)
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'a session could not be dropped: the sweep tries again')
        // Back in the sweep's list: dropped later.
        await redis.zadd('sessions', 0, id).catch(() => {})
      }
    }
    if (ids.length > 0) log.debug({ sessions: ids.length, why }, 'persistent sessions dropped')
  }

  async function refresh (): Promise<void> {
    if (local.size === 0) return
    const now = Date.now()
    const pipeline = redis.pipeline()
    for (const id of local.keys()) {
      pipeline.zadd('sessions', now + ttlMs, id)
      pipeline.zadd(`sessions-of:${identityOfClientId(id)}`, 'XX', now, id)
      pipeline.pexpire(`sessions-of:${identityOfClientId(id)}`, ttlMs * 2)
    }
    await pipeline.exec()
  }

  async function sweep (): Promise<number> {
    let dropped = 0
    for (;;) {
      const due = await redis.zrangebyscore('sessions', '-inf', Date.now(), 'LIMIT', 0, 200)
      if (due.length === 0) return dropped
      const mine: string[] = []
      for (const id of due) {
        if (local.has(id)) {
          // Connected here (its refresh was late): not expired.
          await redis.zadd('sessions', Date.now() + ttlMs, id)
          continue
        }
        if (await redis.zrem('sessions', id) === 1) {
          await redis.zrem(`sessions-of:${identityOfClientId(id)}`, id)
          mine.push(id)
        }
      }
      await dropQuietly(mine, 'expired')
      dropped += mine.length
      if (due.length < 200) return dropped
    }
  }

  return {
    connected (clientId) {
      local.set(clientId, (local.get(clientId) ?? 0) + 1)
      const now = Date.now()
      r.unitedSession('sessions', `sessions-of:${identityOfClientId(clientId)}`, clientId, now, now + ttlMs, cap, ttlMs * 2).then(
        async (victims) => { await dropQuietly(victims, 'over MQTT_SESSIONS_PER_IDENTITY') },
        (err: unknown) => { log.debug({ err: (err as Error).message }, 'persistent session not recorded (Redis unreachable): recorded by the next refresh') }
      )
    },
    disconnected (clientId) {
      const n = (local.get(clientId) ?? 0) - 1
      if (n > 0) { local.set(clientId, n); return }
      local.delete(clientId)
      const now = Date.now()
      redis.multi()
        .zadd('sessions', now + ttlMs, clientId)
        .zadd(`sessions-of:${identityOfClientId(clientId)}`, now, clientId)
        .pexpire(`sessions-of:${identityOfClientId(clientId)}`, ttlMs * 2)
        .exec()
        .catch(() => {})
    },
    start () {
      // Sessions stored before this version, or while the expiry could not be
      // written: they expire a TTL from now unless they are used.
      stored().then(async (ids) => {
        const now = Date.now()
        for (let i = 0; i < ids.length; i += 500) {
          const pipeline = redis.pipeline()
          for (const id of ids.slice(i, i + 500)) pipeline.zadd('sessions', 'NX', now + ttlMs, id)
          await pipeline.exec()
        }
      }).catch(() => {})
      const every = (ms: number, task: () => Promise<unknown>): void => {
        let running = false
        const timer = setInterval(() => {
          if (running || closed) return
          running = true
          task().catch((err: unknown) => { log.debug({ err: (err as Error).message }, 'persistent sessions: Redis unreachable, tried again later') }).finally(() => { running = false })
        }, ms)
        timer.unref()
        timers.push(timer)
      }
      every(refreshMs, refresh)
      every(refreshMs, sweep)
    },
    sweep,
    close () {
      closed = true
      for (const timer of timers) clearInterval(timer)
    }
  }
}

/**
 * The same bounds on a lone node, whose sessions Aedes keeps in memory: a
 * session expires MQTT_SESSION_TTL after its last connection ended, and an
 * identity keeps at most MQTT_SESSIONS_PER_IDENTITY, the least recently used
 * dropped first.
 */
export function createLocalSessionRegistry ({ drop, ttlSeconds, cap, log }: {
  drop: (clientId: string) => Promise<void>
  ttlSeconds: number
  cap: number
  log: FastifyBaseLogger
}): SessionRegistry {
  const ttlMs = ttlSeconds * 1000
  interface Entry { connections: number, expiresAt: number }
  const sessions = new Map<string, Entry>()
  /** Per identity, its sessions' client ids, least recently used first. */
  const byIdentity = new Map<string, Set<string>>()
  let timer: NodeJS.Timeout | undefined

  const forget = (clientId: string, why: string): void => {
    sessions.delete(clientId)
    const identity = identityOfClientId(clientId)
    const ids = byIdentity.get(identity)
    ids?.delete(clientId)
    if (ids?.size === 0) byIdentity.delete(identity)
    drop(clientId).catch((err: unknown) => { log.debug({ err: (err as Error).message, why }, 'a persistent session could not be dropped') })
  }
  const use = (clientId: string): void => {
    const identity = identityOfClientId(clientId)
    let ids = byIdentity.get(identity)
    if (ids === undefined) byIdentity.set(identity, ids = new Set())
    ids.delete(clientId)
    ids.add(clientId) // last: the most recently used
    if (cap <= 0) return
    for (const id of ids) {
      if (ids.size <= cap) break
      // A connected session stays (the connection caps bound those).
      if (id !== clientId && (sessions.get(id)?.connections ?? 0) === 0) forget(id, 'over MQTT_SESSIONS_PER_IDENTITY')
    }
  }
  async function sweep (): Promise<number> {
    const now = Date.now()
    let dropped = 0
    for (const [id, entry] of sessions) {
      if (entry.connections === 0 && entry.expiresAt <= now) { forget(id, 'expired'); dropped++ }
    }
    return dropped
  }
  return {
    connected (clientId) {
      const entry = sessions.get(clientId) ?? { connections: 0, expiresAt: Infinity }
      entry.connections++
      entry.expiresAt = Infinity
      sessions.set(clientId, entry)
      use(clientId)
    },
    disconnected (clientId) {
      const entry = sessions.get(clientId)
      if (entry === undefined) return
      entry.connections = Math.max(0, entry.connections - 1)
      if (entry.connections === 0) entry.expiresAt = Date.now() + ttlMs
      use(clientId)
    },
    start () {
      timer = setInterval(() => { void sweep() }, Math.min(60_000, Math.max(1000, Math.floor(ttlMs / 4))))
      timer.unref()
    },
    sweep,
    close () {
      clearInterval(timer)
    }
  }
}
