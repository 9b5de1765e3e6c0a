// MQTT log-in (docs/protocol.md §2.3): robots with their cached access token, users
// with an access JWT; on a WebSocket upgrade the `x-token` (robots) and
// `authentication` (users) headers may stand in for the password.
//
// A log-in that could not be checked — the database, or in cluster mode the
// Redis holding robot tokens, did not answer — gets CONNACK 3 (server
// unavailable), is logged as a warning, and counts toward no log-in limit:
// only a refusal of the credentials themselves (CONNACK 4 or 5) is a failed
// log-in. MQTT 5, whose reason code 0x88 would say the same, is not spoken
// here (Aedes 1.x answers it CONNACK 1).
import type { AuthenticateError, Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import { extractJwt } from '../src/contract/credentials.js'
import type { CompiledModel } from '../src/contract/models.js'
import { isError } from '../src/errors.js'
import { isApiKey } from '../src/services/api-keys.js'
import type { Services } from '../src/services/index.js'
import { holdRefusal, type Outcome } from '../src/services/login-limits.js'
import { checking, reasonOf } from '../src/services/unavailable.js'
import type { AccessCache } from './access-cache.js'
import { setApiKey } from './api-keys.js'
import { identityKey, revocationMark, revokedSince, scopedClientId, setPrincipal, short, type BrokerPrincipal } from './principal.js'
import type { RobotModels } from './robot-models.js'

/** CONNACK return codes of MQTT 3.1.1 that docs/protocol.md §2.3 uses. */
export const CONNACK = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5 } as const

/**
 * A refused CONNECT. `counted` is false for a credential that cannot be a
 * guess (a revoked one, a JWT this server signed): it counts toward no log-in
 * limit.
 */
export class ConnectRefused extends Error {
  constructor (readonly returnCode: number, message: string, readonly counted = true) { super(message) }
}

/** A CONNECT from an address whose log-ins are blocked: logged once by the limiter, not per attempt. */
class ConnectBlocked extends ConnectRefused {}

const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/

function header (client: Client, name: string): string | undefined {
  const value = client.req?.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** Client ids longer than this get CONNACK 2 (docs/protocol.md §2.3). */
export const MAX_CLIENT_ID_LENGTH = 128

export interface AuthenticateDeps {
  services: Services
  /** The client's address for the log-in limits (the proxy's X-Forwarded-For on a WebSocket with TRUST_PROXY). */
  addressOf: (client: Client) => string | undefined
  access: AccessCache
  log: FastifyBaseLogger
  /** Each robot's compiled model on this node: loaded here, at CONNECT. */
  models: RobotModels
  /** A robot's credentials were accepted; `state` and `model` are as just read (the statistics start from them). */
  robotAccepted?: (uuid: string, state: string, model: CompiledModel | null) => void
}

export function createAuthenticate ({ services, addressOf, access, log, models, robotAccepted }: AuthenticateDeps) {
  /** The password, or on a WebSocket the `x-token` or `authentication` header standing in for it. */
  function credentialOf (client: Client, password: Buffer | undefined): string | undefined {
    const given = password !== undefined && password.length > 0 ? password.toString('utf8') : undefined
    return given ?? header(client, 'x-token') ?? extractJwt({ authentication: header(client, 'authentication') }) ?? undefined
  }

  async function identify (client: Client, username: string | undefined, secret: string | undefined): Promise<BrokerPrincipal> {
    if (secret === undefined) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'no credentials')
    const name = username === undefined || username === '' ? undefined : username

    if (JWT_SHAPE.test(secret)) {
      let user
      try {
        user = await services.auth.authenticateAccess(secret)
      } catch (err) {
        // A JWT this server signed is never a guess: refused, but counted
        // toward no log-in limit. Only a bad signature or a malformed token counts.
        if (isError(err, 'USER_INACTIVE')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'user is not active', false)
        if (isError(err, 'CREDENTIAL_REVOKED')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'credential revoked', false)
        if (isError(err, 'TOKEN_INVALID')) {
          // marked `signed` by services/auth.ts: expired, or a refresh token
          const signed = (err as { signed?: unknown }).signed === true
          throw signed ? new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'JWT expired or not an access token', false) : new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'invalid JWT')
        }
        throw err
      }
      // Usernames match without regard to case, as at log-in; the principal
      // (and with it every access rule) is the JWT's user whatever the case.
      if (name !== undefined && name.toLowerCase() !== user.username.toLowerCase()) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'username does not match the JWT')
      return await checking(async () => await access.acquire(user))
    }

    if (isApiKey(secret)) {
      // docs/protocol.md §13.4: the username and an API key. A key that ended
      // (deleted, expired, its user's password changed) is not a guess.
      let verified
      try {
        verified = await services.apiKeys.verify(secret)
      } catch (err) {
        if (isError(err, 'USER_INACTIVE')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'user is not active', false)
        if (isError(err, 'CREDENTIAL_REVOKED')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'credential revoked', false)
        if (isError(err, 'TOKEN_INVALID')) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'invalid API key')
        throw err
      }
      const { principal: user, expiresAt } = verified
      if (name !== undefined && name.toLowerCase() !== user.username.toLowerCase()) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'username does not match the API key')
      setApiKey(client, { keyId: user.apiKeyId, userId: user.id, expiresAt: expiresAt?.getTime() ?? null })
      return await checking(async () => await access.acquire(user))
    }

    let uuid
    try {
      uuid = await services.robotTokens.resolve(secret)
    } catch (err) {
      // voided (robot disabled, deleted or rotated) less than ROBOT_TOKEN_TTL ago: not a guess
      if (isError(err, 'CREDENTIAL_REVOKED')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'credential revoked', false)
      throw err
    }
    if (uuid === null) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'invalid or expired robot token')
    if (name !== undefined && name !== uuid) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'username does not match the token')
    // Taken before the row is read: a model change that lands meanwhile is read again (robot-models.ts).
    const mark = models.mark()
    const robot = await checking(async () => await services.robots.ref(uuid))
    // A live token of a robot disabled or deleted a moment ago (its voiding is on its way): revoked too.
    if (robot === null || !robot.enabled) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'credential revoked', false)
    // The compiled model travels with the robot from here on: frames never read it from the database.
    const model = await checking(async () => await models.admit(uuid, robot.model, mark, async () => {
      const again = await services.robots.ref(uuid)
      return again === null ? undefined : again.model
    }))
    robotAccepted?.(uuid, robot.state, model)
    return { kind: 'robot', uuid, id: robot.id }
  }

  const { loginLimits } = services
  /** Only a refusal of the credentials counts as a failed log-in (see ConnectRefused). */
  const counted = (err: unknown): Outcome => err instanceof ConnectRefused && err.counted ? 'failed' : 'uncounted'
  const refuse = (done: (error: AuthenticateError | null, success: boolean | null) => void, returnCode: number, message: string): void => {
    const error = new Error(message) as AuthenticateError
    error.returnCode = returnCode as AuthenticateError['returnCode']
    done(error, false)
  }

  /** The Aedes `authenticate` hook: never throws, never leaves a promise unhandled. */
  return function authenticate (client: Client, username: string | undefined, password: Buffer | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void): void {
    // Checked before anything else, so that a huge client id costs neither a
    // credential check nor a long log line.
    if (client.id.length > MAX_CLIENT_ID_LENGTH) {
      log.info({ clientId: short(client.id), returnCode: CONNACK.IDENTIFIER_REJECTED }, 'MQTT connection refused: client id too long')
      refuse(done, CONNACK.IDENTIFIER_REJECTED, `client id longer than ${MAX_CLIENT_ID_LENGTH} characters`)
      return
    }
    const address = addressOf(client) ?? 'unknown'
    const mark = revocationMark()
    let principal: BrokerPrincipal | undefined
    const secret = credentialOf(client, password)
    const check = async (): Promise<BrokerPrincipal> => {
      principal = await identify(client, username, secret)
      // Revoked while its credentials were being checked: too late to pass.
      if (revokedSince(identityKey(principal), mark)) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'credentials revoked during log-in', false)
      return principal
    }
    const attempt = async (): Promise<BrokerPrincipal> => {
      try {
        return await loginLimits.attempt(address, { via: 'mqtt', kind: JWT_SHAPE.test(secret ?? '') || isApiKey(secret) ? 'user' : 'robot', name: username }, check, counted)
      } catch (err) {
        // Held before they are sent, for clients that reconnect at once (holdRefusal).
        if (isError(err, 'TOO_MANY_ATTEMPTS')) { await holdRefusal(); throw new ConnectBlocked(CONNACK.NOT_AUTHORIZED, 'too many failed log-ins') }
        // Too many log-ins of this identity being checked at once for too long.
        if (isError(err, 'BUSY')) { await holdRefusal(); throw new ConnectRefused(CONNACK.SERVER_UNAVAILABLE, 'too many log-ins being checked', false) }
        throw err
      }
    }
    attempt().then((who) => {
      // Client ids are scoped to their identity (docs/protocol.md §3.3): the same
      // identity reconnecting takes its own session over (MQTT-3.1.4-2), and
      // nobody can block or close a connection of another identity.
      client.id = scopedClientId(who, client.id)
      setPrincipal(client, who, mark)
      done(null, true)
    }).catch((err: unknown) => {
      if (principal?.kind === 'user') access.release(principal.id)
      const refused = err instanceof ConnectRefused ? err : new ConnectRefused(CONNACK.SERVER_UNAVAILABLE, 'authentication unavailable')
      if (isError(err, 'DATABASE_UNAVAILABLE')) log.warn({ clientId: short(client.id), returnCode: refused.returnCode, cause: reasonOf(err) }, 'MQTT log-in could not be checked: the database or the token store did not answer')
      else if (!(err instanceof ConnectRefused)) log.error({ err, clientId: short(client.id) }, 'MQTT authentication failed')
      else if (err instanceof ConnectBlocked) log.debug({ returnCode: refused.returnCode }, 'MQTT connection refused: log-ins blocked')
      else log.info({ clientId: short(client.id), username: short(username), returnCode: refused.returnCode, reason: refused.message }, 'MQTT connection refused')
      refuse(done, refused.returnCode, refused.message)
    })
  }
}
