// Where robot access tokens live between obtain_token and CONNECT (docs/protocol.md
// §2.2): node-cache in one process; a Redis implementation joins it for
// cluster mode. Tokens are kept by their SHA-256, never in the clear.
//
// A token voided by disabling, deleting or rotating its robot is remembered
// (by its SHA-256 only) for ROBOT_TOKEN_TTL after the voiding: presented in
// that time it is a revoked credential, not a guess, and gets its own answer
// (CREDENTIAL_REVOKED, counted toward no log-in limit). After that it is an
// unknown token again.
import { createHash } from 'node:crypto'
import NodeCache from 'node-cache'

/** What a store knows of a token: the robot it belongs to, that it was voided, or nothing (null). */
export type TokenLookup = { robotUuid: string } | { voided: true } | null

export interface TokenStore {
  /** Remember `token` → `robotUuid` for `ttlSeconds`. */
  put: (token: string, robotUuid: string, ttlSeconds: number) => Promise<void>
  /**
   * The robot of a live token, `{ voided: true }` for a token voided less
   * than the remembering time ago, or null when unknown or expired. Throws
   * when the store cannot tell (cluster mode, Redis down): a token that
   * could not be checked is not a bad token.
   */
  get: (token: string) => Promise<TokenLookup>
  /** Void every token of a robot, and remember them as voided. */
  revokeRobot: (robotUuid: string) => Promise<void>
  close: () => Promise<void>
}

export interface TokenStoreOptions {
  /** How long a voided token is remembered as voided, in seconds (ROBOT_TOKEN_TTL). */
  voidedTtlSeconds: number
  /** The most voided tokens remembered at once; beyond it the oldest are forgotten first. */
  maxVoided?: number
}

/**
 * The default bound on voided tokens one node remembers: 100,000 hashes,
 * about 20 MB. A token forgotten early is only answered as unknown.
 */
export const MAX_VOIDED_TOKENS = 100_000

export function tokenKey (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/**
 * Token hashes remembered for a fixed time after they were added. Every
 * entry lives the same time, so the Map's insertion order is also the order
 * of expiry: expired entries are dropped from its front as new ones come,
 * and when it is full the oldest goes first. No timer.
 */
export function createVoidedSet (ttlSeconds: number, max = MAX_VOIDED_TOKENS) {
  const until = new Map<string, number>()
  const sweep = (now: number): void => {
    for (const [key, expires] of until) {
      if (expires > now && until.size <= max) break
      until.delete(key)
    }
  }
  return {
    add (keys: Iterable<string>): void {
      const now = Date.now()
      for (const key of keys) {
        until.delete(key) // re-added: it moves to the back, with its new time
        until.set(key, now + ttlSeconds * 1000)
      }
      sweep(now)
    },
    has (key: string): boolean {
      const expires = until.get(key)
      return expires !== undefined && expires > Date.now()
    },
    get size (): number { return until.size },
    clear (): void { until.clear() }
  }
}

export function createMemoryTokenStore ({ voidedTtlSeconds, maxVoided }: TokenStoreOptions): TokenStore {
  // checkperiod sweeps expired keys; get() also refuses them on its own.
  const tokens = new NodeCache({ useClones: false, checkperiod: 60 })
  const byRobot = new Map<string, Set<string>>()
  const voided = createVoidedSet(voidedTtlSeconds, maxVoided)
  tokens.on('expired', (key: string, uuid: string) => { byRobot.get(uuid)?.delete(key) })
  tokens.on('del', (key: string, uuid: string) => { byRobot.get(uuid)?.delete(key) })

  return {
    async put (token, robotUuid, ttlSeconds) {
      const key = tokenKey(token)
      tokens.set(key, robotUuid, ttlSeconds)
      let keys = byRobot.get(robotUuid)
      if (keys === undefined) byRobot.set(robotUuid, keys = new Set())
      keys.add(key)
    },
    async get (token) {
      const key = tokenKey(token)
      const robotUuid = tokens.get<string>(key)
      if (robotUuid !== undefined) return { robotUuid }
      return voided.has(key) ? { voided: true } : null
    },
    async revokeRobot (robotUuid) {
      const keys = byRobot.get(robotUuid)
      byRobot.delete(robotUuid)
      if (keys === undefined) return
      // Only the tokens still live are remembered: an expired one stays unknown.
      const live = [...keys].filter((key) => tokens.has(key))
      tokens.del([...keys])
      voided.add(live)
    },
    async close () {
      tokens.flushAll()
      tokens.close()
      byRobot.clear()
      voided.clear()
    }
  }
}
