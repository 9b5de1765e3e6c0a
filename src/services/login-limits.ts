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
// being checked, and does not count. An attempt is reserved before it is
// checked: each counter holds its failures and the attempts being checked,
// and while the two together reach a limit a new attempt waits for those to
// end before it is checked (they may succeed). So concurrent attempts cannot
// get past a limit while their hashes are computed: 40 wrong passwords sent
// at once are 10 checks, not 40; and 100 valid log-ins of one identity sent
// at once all succeed, 10 at a time.
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
import { setTimeout as pause } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { Errors, withRetryAfter } from '../errors.js'
import type { AuditService } from './audit.js'
import { hashingFor } from './secrets.js'

/** A counter and the most failures it may hold. */
export interface Counter { key: string, limit: number }

/**
 * What reserve() answers: reserved (with where, for the store's own use when
 * it settles); or blocked, with how long the blocking counter's window still
 * runs; or full, when the failures and the attempts being checked together
 * reach a limit (wait for those to end, then ask again).
 */
export type Reservation = { reserved: true, where?: string } | { blockedMs: number } | { full: true }

/**
 * Each counter holds, for its open window, the failures counted and the
 * attempts being checked (pending).
 */
export interface AttemptStore {
  /**
   * Atomically: when one of `counters` holds its limit of failures, reserves
   * nothing and answers how long its window still runs; when failures and
   * pending attempts together reach a limit, reserves nothing and answers
   * full; otherwise counts one pending attempt in each (opening a window of
   * `windowMs` where none is open).
   */
  reserve: (counters: Counter[], windowMs: number) => Promise<Reservation>
  /**
   * Ends a reserved attempt: one pending attempt less in each of `keys`, one
   * failure more in each of `failedKeys` (a subset), whose failure counts it
   * answers in that order. `where` is what reserve() answered.
   */
  settle: (keys: string[], failedKeys: string[], windowMs: number, where?: string) => Promise<number[]>
  /** Milliseconds until the first of `counters` at its limit of failures is free again, or null: reads, counts nothing. */
  blocked: (counters: Counter[]) => Promise<number | null>
  close: () => Promise<void>
}

interface Window { failures: number, pending: number, resetAt: number }

/**
 * Counters in this process. At most `maxKeys` keys are remembered: beyond
 * that the windows that opened first are forgotten first, so that a flood of
 * addresses or names costs bounded memory.
 */
export function createMemoryAttemptStore ({ maxKeys = 100_000 }: { maxKeys?: number } = {}): AttemptStore {
  // Insertion order is the order windows opened (a new window re-inserts its key).
  const windows = new Map<string, Window>()
  const sweep = (now: number): void => {
    for (const [key, w] of windows) {
      if (w.resetAt <= now) windows.delete(key)
    }
  }
  const sweeper = setInterval(() => { sweep(Date.now()) }, 60_000)
  sweeper.unref()
  const open = (key: string, now: number): Window | undefined => {
    const w = windows.get(key)
    return w === undefined || w.resetAt <= now ? undefined : w
  }
  const blockedMs = (counters: Counter[], now: number): number | null => {
    for (const { key, limit } of counters) {
      const w = open(key, now)
      if (w !== undefined && w.failures >= limit) return w.resetAt - now
    }
    return null
  }

  return {
    async reserve (counters, windowMs) {
      const now = Date.now()
      const ms = blockedMs(counters, now)
      if (ms !== null) return { blockedMs: ms }
      if (counters.some(({ key, limit }) => { const w = open(key, now); return w !== undefined && w.failures + w.pending >= limit })) return { full: true }
      for (const { key } of counters) {
        let w = open(key, now)
        if (w === undefined) {
          windows.delete(key)
          if (windows.size >= maxKeys) sweep(now)
          while (windows.size >= maxKeys) windows.delete(windows.keys().next().value as string)
          w = { failures: 0, pending: 0, resetAt: now + windowMs }
          windows.set(key, w)
        }
        w.pending++
      }
      return { reserved: true }
    },
    async settle (keys, failedKeys, windowMs) {
      const now = Date.now()
      for (const key of keys) {
        const w = open(key, now)
        if (w !== undefined && w.pending > 0) w.pending--
      }
      // A window that ended while the attempt was checked: the failure opens the next one.
      return failedKeys.map((key) => {
        let w = open(key, now)
        if (w === undefined) {
          windows.delete(key)
          windows.set(key, w = { failures: 0, pending: 0, resetAt: now + windowMs })
        }
        return ++w.failures
      })
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
/** How long an attempt waits, at most, for the attempts being checked that fill a limit; then 503 BUSY. */
const FULL_WAIT_MS = 10_000
/**
 * A waiting attempt asks again as soon as an attempt of its address settles
 * on this node (one waiter per settled attempt, in order of arrival), and at
 * the latest after this long (an attempt settled on another node, a window
 * that ended). Asking every 20 ms instead, 900 robots of one site waiting
 * behind its address's limit of attempts in flight made 45,000 asks a second.
 */
const FULL_RETRY_MS = 250

/**
 * How long a refusal of a blocked or busy log-in is held before it is sent
 * (429, 503 BUSY, CONNACK 5). Many clients ask again at once, whatever
 * Retry-After says: answered at once, twenty blocked addresses made about
 * 10,000 refusals a second in the abuse bench, each a request parsed and an
 * answer sent, CPU the fleet's acks needed. Held, a refusal costs a timer and
 * an idle socket.
 */
export const REFUSAL_HOLD_MS = 1000

/** Waits REFUSAL_HOLD_MS (see there). */
export async function holdRefusal (): Promise<void> {
  await pause(REFUSAL_HOLD_MS)
}

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
  /** Attempts waiting for a place, per address, in order of arrival. */
  const waiting = new Map<string, Array<() => void>>()
  const waitForPlace = async (ip: string): Promise<void> => {
    await new Promise<void>((resolve) => {
      const line = waiting.get(ip) ?? []
      const go = (): void => { clearTimeout(timer); resolve() }
      const timer = setTimeout(() => {
        const i = line.indexOf(go)
        if (i >= 0) line.splice(i, 1)
        if (line.length === 0 && waiting.get(ip) === line) waiting.delete(ip)
        resolve()
      }, FULL_RETRY_MS)
      line.push(go)
      waiting.set(ip, line)
    })
  }
  const wakeOne = (ip: string): void => {
    const line = waiting.get(ip)
    if (line === undefined) return
    const next = line.shift()
    if (line.length === 0) waiting.delete(ip)
    next?.()
  }

  /** Audits counted failures: the first of an address's window, and the one that blocks. */
  function audited (ip: string, attempt: LoginAttempt, identityFailures: number | null, addressFailures: number): void {
    if (identityFailures !== null && addressFailures === 1) {
      auditQuietly(ip, attempt.kind === 'user' ? 'user.login_failed' : 'robot.login_failed', {
        via: attempt.via,
        ...named(attempt),
        window_seconds: windowSeconds,
        note: 'the first failure from this address in its window; later ones are counted, not recorded one by one'
      })
    }
    if (limit > 0 && identityFailures === limit) {
      log.warn({ ip, failures: identityFailures, windowSeconds }, 'log-ins blocked for an identity at an address')
      auditQuietly(ip, 'auth.login_blocked', { via: attempt.via, scope: 'identity', ...named(attempt), failures: identityFailures, window_seconds: windowSeconds })
    }
    if (addressLimit > 0 && addressFailures === addressLimit) {
      log.warn({ ip, failures: addressFailures, windowSeconds }, 'log-ins blocked for an address')
      auditQuietly(ip, 'auth.login_blocked', { via: attempt.via, scope: 'address', failures: addressFailures, window_seconds: windowSeconds })
    }
  }

  /**
   * Reserves an attempt: false when the store cannot answer (logged: an
   * outage of the counters must not lock every robot out). While attempts
   * being checked fill a limit, waits for them to end (they may succeed);
   * past FULL_WAIT_MS, BUSY.
   */
  async function reserve (ip: string, counters: Counter[]): Promise<{ reserved: true, where?: string } | false> {
    const giveUpAt = Date.now() + FULL_WAIT_MS
    for (;;) {
      let reservation: Reservation
      try {
        reservation = await store.reserve(counters, windowMs)
      } catch (err) {
        log.warn({ err }, 'log-in limits unavailable: attempt allowed, not counted')
        return false
      }
      if ('blockedMs' in reservation) throw tooMany(reservation.blockedMs)
      if ('reserved' in reservation) return reservation
      if (Date.now() >= giveUpAt) throw withRetryAfter(new Errors.BUSY(), 1)
      await waitForPlace(ip)
    }
  }

  return {
    get enabled (): boolean {
      return enabled
    },

    /**
     * Seconds until `address` may log in again when the whole address is
     * blocked, or null: a cheap check before a request's body is read. A
     * store that cannot answer lets the attempt through (logged).
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
     * identity or the address is blocked; otherwise reserves it before it
     * runs, and counts it as a failure when `outcome` says so. The check runs
     * with the address known to the password hashing queue, which shares its
     * places fairly among addresses.
     */
    async attempt<T> (address: string, attempt: LoginAttempt, check: () => Promise<T>, outcome: (err: unknown) => Outcome): Promise<T> {
      const ip = addressKey(address)
      if (!enabled) return await hashingFor(ip, check)
      const [identity, whole] = [identityCounter(ip, attempt.name ?? ''), addressCounter(ip)]
      const reserved = await reserve(ip, [identity, whole])
      const settle = async (failed: string[]): Promise<void> => {
        if (reserved === false) return
        try {
          const failures = await store.settle([identity.key, whole.key], failed, windowMs, reserved.where)
          if (failed.length === 2) audited(ip, attempt, failures[0] as number, failures[1] as number)
          else if (failed.length === 1) audited(ip, attempt, null, failures[0] as number)
        } catch (err) {
          log.warn({ err }, 'log-in limits unavailable: an attempt was not settled')
        } finally {
          wakeOne(ip)
        }
      }
      let result: T
      try {
        result = await hashingFor(ip, check)
      } catch (err) {
        const how = outcome(err)
        await settle(how === 'failed' ? [identity.key, whole.key] : how === 'busy' ? [whole.key] : [])
        throw err
      }
      void settle([])
      return result
    }
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>
