// Robot log-in (CONTRACT §2): serial + secret → a short-lived access token,
// cached with a TTL and checked at MQTT CONNECT.
import type { RobotService } from './robots.js'
import { randomToken } from './secrets.js'
import type { TokenStore } from './token-store.js'
import { checking } from './unavailable.js'
import { Errors } from '../errors.js'

export interface RobotAccessToken { access_token: string, expires_in: number, robot_uuid: string }

export function createRobotTokenService ({ robots, store, ttlSeconds }: { robots: RobotService, store: TokenStore, ttlSeconds: number }) {
  return {
    /**
     * Wrong serial, wrong secret and disabled robot all answer the same 401;
     * a database that cannot check them, DATABASE_UNAVAILABLE (not a refusal).
     */
    async obtain (serial: string, secret: string): Promise<RobotAccessToken> {
      const robot = await checking(async () => await robots.verifySecret(serial, secret))
      if (robot === null || !robot.enabled) throw new Errors.ROBOT_AUTH_FAILED()
      const token = randomToken(32)
      await store.put(token, robot.uuid, ttlSeconds)
      return { access_token: token, expires_in: ttlSeconds, robot_uuid: robot.uuid }
    },

    /**
     * The robot a token belongs to, or null (unknown, expired or voided);
     * DATABASE_UNAVAILABLE when the store cannot say (cluster mode: Redis
     * cannot answer and this node did not issue the token).
     */
    async resolve (token: string): Promise<string | null> {
      if (token.length === 0 || token.length > 256) return null
      return await checking(async () => await store.get(token))
    }
  }
}

export type RobotTokenService = ReturnType<typeof createRobotTokenService>
