// Log-in limits that a fleet behind one address survives. Two counts of
// failed log-ins per window (both token endpoints and MQTT CONNECT):
//
// - per identity and address: more than `limit` failures of one identity (a
//   username, a serial at obtain_token, an MQTT username) from one address
//   block that identity there for the rest of the window; the other
//   identities at that address go on logging in. A decommissioned robot that
//   retries its dead credentials forever blocks only itself.
// - per address: more than `addressLimit` failures from one address, all
//   identities together, block the whole address (someone is trying names).
//
// `limit` wrong attempts of an identity are checked and refused as usual;
// every attempt after them, the (limit + 1)th included, is refused without
// being checked, and does not count. An attempt is counted before it is
// checked (reserved), and the reservation is taken back when it turns out
// not to be a failure, so that concurrent attempts cannot get past the limit
// while their hashes are computed: 40 wrong passwords sent at once are 10
// checks, not 40.
//
// What counts (the caller says, through `outcome`):
// - a refusal of the credentials themselves: counted toward both limits;
// - a refusal because too many password checks wait (503 UNITED_BUSY): counted
//   toward the address only, so that an address flooding the hashing queue
//   ends up blocked like one guessing passwords;
// - anything else (a credential that was once valid and has been revoked, a
//   JWT this server signed, a log-in the database could not check): nothing.
//
// The counters sit behind AttemptStore: one process keeps them in memory,
// cluster mode in Redis (src/cluster/attempts.ts), so that every node sees
// the same numbers.
//
// Failed log-ins are audited coalesced: the first failure from an address in
// its window, and the moment an identity or an address is blocked, not every
// attempt, so that a brute force cannot turn the audit log into the next
// amplifier.
import { isIPv6 } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { Errors, withRetryAfter } from '../errors.js'
import type { AuditService } from './audit.js'
import { hashingFor } from './secrets.js'

/** A counter and the most it may hold; a reservation is refused when one of them is at its limit. */
export interface Counter { key: string, limit: number }

/** What reserve() answers: the counts after the reservation, or how long the blocking counter's window still runs. */
export type Reservation = { counts: number[] } | { blockedMs: number }

export interface AttemptStore {
  /**
   * Atomically: when one of `counters` holds its limit or more, reserves
   * nothing and answers the milliseconds its window still runs; otherwise
   * counts one attempt in each (opening a window of `windowMs` where none
   * is open) and answers the counts.
   */
  reserve: (counters: Counter[], windowMs: number) => Promise<Reservation>
  /** Takes back one reserved attempt from each key (never below zero). */
  release: (keys: string[]) => Promise<void>
  /** Milliseconds until the first of `counters` at its limit is free again, or null: reads, counts nothing. */
  blocked: (counters: Counter[]) => Promise<number | null>
  close: () => Promise<void>
}

/**
 * Counters in this process. At most `maxKeys` keys are remembered: beyond
 * that the windows that opened first are forgotten first, so that a flood of
 * addresses or names costs bounded memory.
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
  const open = (key: string, now: number): { count: number, resetAt: number } | undefined => {
    const w = windows.get(key)
    return w === undefined || w.resetAt <= now ? undefined : w
  }
  const blockedMs = (counters: Counter[], now: number): number | null => {
    for (const { key, limit } of counters) {
      const w = open(key, now)
      if (w !== undefined && w.count >= limit) return w.resetAt - now
    }
    return null
  }

  return {
    async reserve (counters, windowMs) {
      const now = Date.now()
      const ms = blockedMs(counters, now)
      if (ms !== null) return { blockedMs: ms }
      const counts = counters.map(({ key }) => {
        let w = open(key, now)
        if (w === undefined) {
          windows.delete(key)
          if (windows.size >= maxKeys) sweep(now)
          while (windows.size >= maxKeys) windows.delete(windows.keys().next().value as string)
          w = { count: 0, resetAt: now + windowMs }
          windows.set(key, w)
        }
        return ++w.count
      })
      return { counts }
    },
    async release (keys) {
      const now = Date.now()
      for (const key of keys) {
        const w = open(key, now)
        if (w !== undefined && w.count > 0) w.count--
      }
    },
    async blocked (counters) {
      return blockedMs(counters, Date.now())
    },
    async close () {
      clearInterval(sweeper)
      windows.clear()
    }
  }
}

/**
 * The address as a client sent it, without what a proxy may add around it:
 * a port (`192.0.2.9:51234`, which some balancers write into
 * X-Forwarded-For), brackets (`[2001:db8::5]`, `[2001:db8::5]:443`) and an
 * IPv6 zone (`fe80::1%eth0`).
 */
export function bareAddress (address: string): string {
  const a = address.trim()
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(a)
  const inner = bracketed !== null ? bracketed[1] as string : /^(\d{1,3}(?:\.\d{1,3}){3}):\d*$/.exec(a)?.[1] ?? a
  const zone = inner.indexOf('%')
  return zone >= 0 && inner.includes(':') ? inner.slice(0, zone) : inner
}

/**
 * The key of a client address: without port or brackets (bareAddress);
 * IPv4-mapped IPv6 addresses count as their IPv4 address (the HTTP server and
 * the MQTT listener may report either), and an IPv6 address counts as its
 * /64, which one client usually holds whole.
 */
export function addressKey (address: string | undefined): string {
  const bare = address === undefined ? '' : bareAddress(address)
  if (bare === '') return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)
  if (mapped !== null) return mapped[1] as string
  if (!isIPv6(bare)) return bare.slice(0, 64)
  const [head = '', tail = ''] = bare.toLowerCase().split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = bare.includes('::') ? [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
}

/** Who tried to log in: a user (JWT log-in) or a robot, through the REST API or an MQTT CONNECT. */
export interface LoginAttempt {
  via: 'api' | 'mqtt'
  kind: 'user' | 'robot'
  /** the username, serial or MQTT username that was tried, when there was one */
  name?: string
}

/** How a checked log-in ended when it did not succeed (see the file's head). */
export type Outcome = 'failed' | 'busy' | 'uncounted'

export interface LoginLimiterDeps {
  store: AttemptStore
  /** failures allowed per identity, address and window; 0 turns this limit off */
  limit: number
  /** failures allowed per address and window, all identities together; 0 turns this limit off */
  addressLimit: number
  windowSeconds: number
  audit: AuditService
  log: FastifyBaseLogger
}

/** Names longer than this are cut for the counter's key and the audit log. */
const NAME_MAX = 150

export function createLoginLimiter ({ store, limit, addressLimit, windowSeconds, audit, log }: LoginLimiterDeps) {
  const windowMs = windowSeconds * 1000
  const enabled = limit > 0 || addressLimit > 0
  const addressCounter = (ip: string): Counter => ({ key: `auth-fail:${ip}`, limit: addressLimit > 0 ? addressLimit : Number.MAX_SAFE_INTEGER })
  // Usernames are matched without regard to case, so they are counted that way too.
  const identityCounter = (ip: string, name: string): Counter => ({ key: `auth-fail:${ip}|${name.slice(0, NAME_MAX).toLowerCase()}`, limit: limit > 0 ? limit : Number.MAX_SAFE_INTEGER })
  const auditQuietly = (ip: string, action: 'user.login_failed' | 'robot.login_failed' | 'auth.login_blocked', details: Record<string, unknown>): void => {
    audit.record({ actor: null, ip }, { action, details }).catch((err: unknown) => { log.warn({ err }, 'could not audit a failed log-in') })
  }
  const named = (attempt: LoginAttempt): Record<string, string> =>
    attempt.name === undefined ? {} : { [attempt.kind === 'user' ? 'username' : 'serial']: attempt.name.slice(0, NAME_MAX) }
  const tooMany = (ms: number): Error => withRetryAfter(new Errors.TOO_MANY_ATTEMPTS(), Math.max(1, Math.ceil(ms / 1000)))

  /** Audits a counted failure: the first of its address's window, and the one that blocks. */
  function failed (ip: string, attempt: LoginAttempt, [identityCount, addressCount]: number[]): void {
    if (addressCount === 1) {
      auditQuietly(ip, attempt.kind === 'user' ? 'user.login_failed' : 'robot.login_failed', {
        via: attempt.via,
        ...named(attempt),
        window_seconds: windowSeconds,
        note: 'the first failure from this address in its window; later ones are counted, not recorded one by one'
      })
    }
    if (limit > 0 && identityCount === limit) {
      log.warn({ ip, failures: identityCount, windowSeconds }, 'log-ins blocked for an identity at an address')
      auditQuietly(ip, 'auth.login_blocked', { via: attempt.via, scope: 'identity', ...named(attempt), failures: identityCount, window_seconds: windowSeconds })
    }
    if (addressLimit > 0 && addressCount === addressLimit) {
      log.warn({ ip, failures: addressCount, windowSeconds }, 'log-ins blocked for an address')
      auditQuietly(ip, 'auth.login_blocked', { via: attempt.via, scope: 'address', failures: addressCount, window_seconds: windowSeconds })
    }
  }

  return {
    get enabled (): boolean {
      return enabled
    },

    /**
     * Seconds until `address` may log in again when the whole address is
     * blocked, or null: a cheap check before a request's body is read. A
     * store that cannot answer lets the attempt through (logged): an outage
     * of the counters must not lock every robot out.
     */
    async addressBlocked (address: string): Promise<number | null> {
      if (addressLimit <= 0) return null
      try {
        const ms = await store.blocked([addressCounter(addressKey(address))])
        return ms === null ? null : Math.max(1, Math.ceil(ms / 1000))
      } catch (err) {
        log.warn({ err }, 'log-in limits unavailable: attempt allowed')
        return null
      }
    },

    /** Whether a failure is counted for `address` (or, with `name`, that identity there) in the open window. */
    async hasFailures (address: string, name?: string): Promise<boolean> {
      const ip = addressKey(address)
      const { key } = name === undefined ? addressCounter(ip) : identityCounter(ip, name)
      return await store.blocked([{ key, limit: 1 }]) !== null
    },

    /**
     * Runs the check of one log-in under the limits: throws
     * TOO_MANY_ATTEMPTS (with `retryAfter`) without running it when the
     * identity or the address is blocked; otherwise counts it before it runs
     * and takes the count back unless `outcome` calls its error a failure.
     * The check runs with the address known to the password hashing queue,
     * which shares its places fairly among addresses.
     */
    async attempt<T> (address: string, attempt: LoginAttempt, check: () => Promise<T>, outcome: (err: unknown) => Outcome): Promise<T> {
      const ip = addressKey(address)
      if (!enabled) return await hashingFor(ip, check)
      const counters = [identityCounter(ip, attempt.name ?? ''), addressCounter(ip)]
      const keys = counters.map((c) => c.key)
      let reservation: Reservation | null
      try {
        reservation = await store.reserve(counters, windowMs)
      } catch (err) {
        log.warn({ err }, 'log-in limits unavailable: attempt allowed, not counted')
        reservation = null
      }
      if (reservation !== null && 'blockedMs' in reservation) throw tooMany(reservation.blockedMs)
      const giveBack = (what: string[]): void => {
        if (reservation === null || what.length === 0) return
        store.release(what).catch((err: unknown) => { log.warn({ err }, 'log-in limits unavailable: a reserved attempt was not given back') })
      }
      let result: T
      try {
        result = await hashingFor(ip, check)
      } catch (err) {
        const how = outcome(err)
        if (how === 'failed' && reservation !== null) failed(ip, attempt, reservation.counts)
        giveBack(how === 'failed' ? [] : how === 'busy' ? keys.slice(0, 1) : keys)
        throw err
      }
      giveBack(keys)
      return result
    }
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>
