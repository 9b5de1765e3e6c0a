// Log-in limits (CONTRACT §13): from one client address, more than `limit`
// failed log-ins within a window block that address's log-ins (both token
// endpoints and MQTT CONNECT) for the rest of the window: `limit` wrong
// attempts are checked and refused as usual, and every attempt after them,
// the (limit + 1)th included, is refused without being checked. The counters sit
// behind AttemptStore, a small interface: one process keeps them in memory,
// cluster mode counts them in Redis so that every node sees the same numbers.
//
// Only a refusal of the credentials themselves is a failed log-in. A log-in
// that could not be checked (the database or the token store did not answer:
// 503 UNITED_DATABASE_UNAVAILABLE, CONNACK 3) is never passed to failed(), so
// that a database under stress cannot block the addresses of a fleet that
// keeps retrying; callers count only their refusal errors (plugins/login-limits.ts
// in the HTTP layer, broker/authenticate.ts).
//
// Failed log-ins are audited coalesced per address and window: the first
// failure of a window and the moment the address is blocked, not every
// attempt, so that a brute force cannot turn the audit log into the next
// amplifier.
import { isIPv6 } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { AuditService } from './audit.js'

/** The failures counted for one address in its open window. */
export interface AttemptWindow { count: number, resetMs: number }

export interface AttemptStore {
  /** The open window of `key`, or null when none is open. */
  get: (key: string) => Promise<AttemptWindow | null>
  /** Counts one failure for `key`; opens a window of `windowMs` when none is open. */
  increment: (key: string, windowMs: number) => Promise<AttemptWindow>
  close: () => Promise<void>
}

/**
 * Counters in this process. At most `maxKeys` addresses are remembered:
 * beyond that the windows that opened first are forgotten first, so that a
 * flood of addresses costs bounded memory.
 */
export function createMemoryAttemptStore ({ maxKeys = 100_000 }: { maxKeys?: number } = {}): AttemptStore {
  // Insertion order is the order windows opened (a new window re-inserts its key).
  const windows = new Map<string, { count: number, resetAt: number }>()
  const sweep = (now: number): void => {
    for (const [key, w] of windows) {
      if (w.resetAt <= now) windows.delete(key)
    }
  }
  const sweeper = setInterval(() => { sweep(Date.now()) }, 60_000)
  sweeper.unref()

  return {
    async get (key) {
      const w = windows.get(key)
      const now = Date.now()
      if (w === undefined || w.resetAt <= now) return null
      return { count: w.count, resetMs: w.resetAt - now }
    },
    async increment (key, windowMs) {
      const now = Date.now()
      let w = windows.get(key)
      if (w === undefined || w.resetAt <= now) {
        windows.delete(key)
        if (windows.size >= maxKeys) sweep(now)
        while (windows.size >= maxKeys) windows.delete(windows.keys().next().value as string)
        w = { count: 0, resetAt: now + windowMs }
        windows.set(key, w)
      }
      w.count++
      return { count: w.count, resetMs: w.resetAt - now }
    },
    async close () {
      clearInterval(sweeper)
      windows.clear()
    }
  }
}

/**
 * The key of a client address: IPv4-mapped IPv6 addresses count as their
 * IPv4 address (the HTTP server and the MQTT listener may report either), and
 * an IPv6 address counts as its /64, which one client usually holds whole.
 */
export function addressKey (address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1] as string
  if (!isIPv6(address)) return address
  const [head = '', tail = ''] = address.toLowerCase().split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::') ? [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
}

/** Which log-in failed: a user (JWT log-in) or a robot, through the REST API or an MQTT CONNECT. */
export interface FailedLogin {
  via: 'api' | 'mqtt'
  kind: 'user' | 'robot'
  /** the username or serial that was tried (cut short), when there was one */
  name?: string
}

export interface LoginLimiterDeps {
  store: AttemptStore
  /** failures allowed per window; 0 turns the limit off */
  limit: number
  windowSeconds: number
  audit: AuditService
  log: FastifyBaseLogger
}

export function createLoginLimiter ({ store, limit, windowSeconds, audit, log }: LoginLimiterDeps) {
  const windowMs = windowSeconds * 1000
  const key = (address: string): string => `auth-fail:${address}`
  const auditQuietly = (ip: string, action: 'user.login_failed' | 'robot.login_failed' | 'auth.login_blocked', details: Record<string, unknown>): void => {
    audit.record({ actor: null, ip }, { action, details }).catch((err: unknown) => { log.warn({ err }, 'could not audit a failed log-in') })
  }

  return {
    get enabled (): boolean {
      return limit > 0
    },

    /**
     * Seconds until `address` may log in again, or null when it may now. A
     * store that cannot answer lets the attempt through (logged): an outage
     * of the counters must not lock every robot out.
     */
    async blocked (address: string): Promise<number | null> {
      if (limit <= 0) return null
      try {
        const w = await store.get(key(addressKey(address)))
        return w !== null && w.count >= limit ? Math.max(1, Math.ceil(w.resetMs / 1000)) : null
      } catch (err) {
        log.warn({ err }, 'log-in limits unavailable: attempt allowed')
        return null
      }
    },

    /** Counts a failed log-in from `address`, and audits it coalesced. */
    async failed (address: string, attempt: FailedLogin): Promise<void> {
      if (limit <= 0) return
      const ip = addressKey(address)
      let w: AttemptWindow
      try {
        w = await store.increment(key(ip), windowMs)
      } catch (err) {
        log.warn({ err }, 'log-in limits unavailable: failure not counted')
        return
      }
      if (w.count === 1) {
        auditQuietly(ip, attempt.kind === 'user' ? 'user.login_failed' : 'robot.login_failed', {
          via: attempt.via,
          ...(attempt.name === undefined ? {} : { [attempt.kind === 'user' ? 'username' : 'serial']: attempt.name.slice(0, 150) }),
          window_seconds: windowSeconds,
          note: 'the first failure from this address in its window; later ones are counted, not recorded one by one'
        })
      }
      if (w.count === limit) {
        log.warn({ ip, failures: w.count, windowSeconds }, 'log-ins blocked for an address')
        auditQuietly(ip, 'auth.login_blocked', { via: attempt.via, failures: w.count, window_seconds: windowSeconds, blocked_seconds: Math.ceil(w.resetMs / 1000) })
      }
    }
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>
