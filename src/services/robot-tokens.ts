// Robot log-in (docs/protocol.md §2.2): serial + secret → a short-lived access token,
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
     * A wrong serial or secret answers ROBOT_AUTH_FAILED, whether the robot
     * is enabled or not. A secret that was valid and has been revoked — the
     * right secret of a disabled robot, or one rotated out less than 7 days
     * ago — answers CREDENTIAL_REVOKED: only its holder can learn that. A
     * database that cannot check them, DATABASE_UNAVAILABLE (not a refusal).
     */
    async obtain (serial: string, secret: string): Promise<RobotAccessToken> {
      const match = await checking(async () => await robots.matchSecret(serial, secret))
      if (match === null) throw new Errors.ROBOT_AUTH_FAILED()
      const { robot } = match
      if (match.secret === 'rotated-out' || !robot.enabled) throw new Errors.CREDENTIAL_REVOKED()
      const token = randomToken(32)
      await store.put(token, robot.uuid, ttlSeconds)
      return { access_token: token, expires_in: ttlSeconds, robot_uuid: robot.uuid }
    },

    /**
     * The robot a token belongs to, or null (unknown or expired).
     * CREDENTIAL_REVOKED for a token voided (robot disabled, deleted or
     * rotated) less than ROBOT_TOKEN_TTL ago; DATABASE_UNAVAILABLE when the
     * store cannot say (cluster mode: Redis cannot answer and this node
     * neither issued nor voided the token).
     */
    async resolve (token: string): Promise<string | null> {
      if (token.length === 0 || token.length > 256) return null
      const found = await checking(async () => await store.get(token))
      if (found === null) return null
      if ('voided' in found) throw new Errors.CREDENTIAL_REVOKED()
      return found.robotUuid
    }
  }
}

export type RobotTokenService = ReturnType<typeof createRobotTokenService>
