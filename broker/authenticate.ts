// MQTT log-in (CONTRACT §2): robots with their cached access token, users
// with an access JWT; on a WebSocket upgrade the `x-token` (robots) and
// `authentication` (users) headers may stand in for the password.
import type { Aedes, AuthenticateError, Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import { isError } from '../src/errors.js'
import { extractJwt } from '../src/http/plugins/auth-guard.js'
import type { Services } from '../src/services/index.js'
import type { AccessCache } from './access-cache.js'
import { principalOf, samePrincipal, setPrincipal, type BrokerPrincipal } from './principal.js'

/** CONNACK return codes of MQTT 3.1.1 that CONTRACT §2 uses. */
export const CONNACK = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5 } as const

export class ConnectRefused extends Error {
  constructor (readonly returnCode: number, message: string) { super(message) }
}

const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/

function header (client: Client, name: string): string | undefined {
  const value = client.req?.headers[name]
  return Array.isArray(value) ? value[0] : value
}

export interface AuthenticateDeps {
  broker: () => Aedes
  services: Services
  access: AccessCache
  log: FastifyBaseLogger
  /** A robot's credentials were accepted; `state` is its state as just read (the statistics start from it). */
  robotAccepted?: (uuid: string, state: string) => void
}

export function createAuthenticate ({ broker, services, access, log, robotAccepted }: AuthenticateDeps) {
  async function identify (client: Client, username: string | undefined, password: Buffer | undefined): Promise<BrokerPrincipal> {
    const given = password !== undefined && password.length > 0 ? password.toString('utf8') : undefined
    const secret = given ?? header(client, 'x-token') ?? extractJwt({ authentication: header(client, 'authentication') }) ?? undefined
    if (secret === undefined) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'no credentials')
    const name = username === undefined || username === '' ? undefined : username

    if (JWT_SHAPE.test(secret)) {
      let user
      try {
        user = await services.auth.verifyAccess(secret)
      } catch (err) {
        if (isError(err, 'USER_INACTIVE')) throw new ConnectRefused(CONNACK.NOT_AUTHORIZED, 'user is not active')
        if (isError(err, 'TOKEN_INVALID')) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'invalid or expired JWT')
        throw err
      }
      if (name !== undefined && name !== user.username) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'username does not match the JWT')
      return await access.acquire(user)
    }

    const uuid = await services.robotTokens.resolve(secret)
    if (uuid === null) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'invalid, expired or voided robot token')
    if (name !== undefined && name !== uuid) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'username does not match the token')
    const robot = await services.robots.ref(uuid)
    if (robot === null || !robot.enabled) throw new ConnectRefused(CONNACK.BAD_CREDENTIALS, 'robot is disabled or deleted')
    robotAccepted?.(uuid, robot.state)
    return { kind: 'robot', uuid, id: robot.id }
  }

  /** The Aedes `authenticate` hook: never throws, never leaves a promise unhandled. */
  return function authenticate (client: Client, username: string | undefined, password: Buffer | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void): void {
    identify(client, username, password).then((principal) => {
      // A client id in use by someone else would take their session over
      // (MQTT-3.1.4-2): refuse it instead of disconnecting them.
      const holder = (broker() as unknown as { clients: Record<string, Client | undefined> }).clients[client.id]
      if (holder !== undefined && !samePrincipal(principalOf(holder), principal)) {
        if (principal.kind === 'user') access.release(principal.id)
        throw new ConnectRefused(CONNACK.IDENTIFIER_REJECTED, 'client id in use by another identity')
      }
      setPrincipal(client, principal)
      done(null, true)
    }).catch((err: unknown) => {
      const refused = err instanceof ConnectRefused ? err : new ConnectRefused(CONNACK.SERVER_UNAVAILABLE, 'authentication unavailable')
      if (!(err instanceof ConnectRefused)) log.error({ err, clientId: client.id }, 'MQTT authentication failed')
      else log.info({ clientId: client.id, returnCode: refused.returnCode, reason: refused.message }, 'MQTT connection refused')
      const error = new Error(refused.message) as AuthenticateError
      error.returnCode = refused.returnCode as AuthenticateError['returnCode']
      done(error, false)
    })
  }
}
