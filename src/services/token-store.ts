// Where robot access tokens live between obtain_token and CONNECT (CONTRACT
// §2): node-cache in one process; a Redis implementation joins it for
// cluster mode. Tokens are kept by their SHA-256, never in the clear.
import { createHash } from 'node:crypto'
import NodeCache from 'node-cache'

export interface TokenStore {
  /** Remember `token` → `robotUuid` for `ttlSeconds`. */
  put: (token: string, robotUuid: string, ttlSeconds: number) => Promise<void>
  /**
   * The robot uuid of a live token, or null when unknown or expired. Throws
   * when the store cannot tell (cluster mode, Redis down): a token that could
   * not be checked is not a bad token.
   */
  get: (token: string) => Promise<string | null>
  /** Void every token of a robot. */
  revokeRobot: (robotUuid: string) => Promise<void>
  close: () => Promise<void>
}

export function tokenKey (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export function createMemoryTokenStore (): TokenStore {
  // checkperiod sweeps expired keys; get() also refuses them on its own.
  const tokens = new NodeCache({ useClones: false, checkperiod: 60 })
  const byRobot = new Map<string, Set<string>>()
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
      return tokens.get<string>(tokenKey(token)) ?? null
    },
    async revokeRobot (robotUuid) {
      const keys = byRobot.get(robotUuid)
      byRobot.delete(robotUuid)
      if (keys !== undefined) tokens.del([...keys])
    },
    async close () {
      tokens.flushAll()
      tokens.close()
      byRobot.clear()
    }
  }
}
