// Connections per identity (MAX_CONNECTIONS_PER_USER, MAX_CONNECTIONS_PER_ROBOT;
// 0: no cap): a CONNECT whose credentials are good but whose user or robot
// already holds that many open connections, on this node or, in cluster mode,
// on any live node, gets CONNACK 5. It is not a failed log-in (the
// credentials were right): it counts toward no log-in limit. A CONNECT with
// a client id its identity already holds takes that connection over and is
// never refused. Refusals are logged once per identity and REFUSAL_LOG_MS,
// with how many there were, not once per attempt.
import { finished } from 'node:stream'
import type { AuthenticateError, Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionCounter } from '../src/cluster/connections.js'
import { identityKey, principalOf, short } from './principal.js'

type Done = (error: AuthenticateError | null, success: boolean | null) => void
type Authenticate = (client: Client, username: string | undefined, password: Buffer | undefined, done: Done) => void

/** A refused identity is logged again at most this often. */
export const REFUSAL_LOG_MS = 10 * 60_000

export interface CapDeps {
  caps: { user: number, robot: number }
  counter: ConnectionCounter
  /** True when a connection of this (scoped) client id is open somewhere: a takeover. */
  held: (clientId: string) => Promise<boolean>
  /** Gives back what a successful log-in took (a user's access entry) when the cap refuses it. */
  refused: (client: Client) => void
  log: FastifyBaseLogger
}

export function capConnections (authenticate: Authenticate, { caps, counter, held, refused, log }: CapDeps): Authenticate {
  const logged = new Map<string, { at: number, since: number }>()

  function logRefusal (identity: string, cap: number, clientId: string): void {
    const now = Date.now()
    const last = logged.get(identity)
    if (last !== undefined && now - last.at < REFUSAL_LOG_MS) { last.since++; return }
    if (logged.size >= 10_000) {
      for (const [k, v] of logged) if (now - v.at >= REFUSAL_LOG_MS) logged.delete(k)
    }
    logged.delete(identity)
    logged.set(identity, { at: now, since: 0 })
    log.warn({ identity, cap, clientId: short(clientId), refusedSinceLastLine: last?.since ?? 0, returnCode: 5 }, 'MQTT connection refused: the identity holds its maximum of open connections (logged once per identity every 10 minutes)')
  }

  return function capped (client, username, password, done) {
    authenticate(client, username, password, (err, ok) => {
      const who = principalOf(client)
      if (err !== null || ok !== true || who === undefined) { done(err, ok); return }
      const identity = identityKey(who)
      const cap = who.kind === 'robot' ? caps.robot : caps.user
      const admit = async (): Promise<boolean> => {
        if (await counter.acquire(identity, cap)) return true
        // At the cap: a takeover of a connection the identity holds still passes (it replaces one).
        return await held(client.id) && await counter.acquire(identity, 0)
      }
      admit().catch(() => null).then((yes) => {
        if (yes === null) { done(null, true); return } // not counted (cannot happen: the counters fall back to this node's own count)
        if (!yes) {
          refused(client)
          logRefusal(identity, cap, client.id)
          const error = new Error('too many open connections of this identity') as AuthenticateError
          error.returnCode = 5 as AuthenticateError['returnCode']
          done(error, false)
          return
        }
        // Counted until the connection ends, however it ends (even before its CONNACK).
        let released = false
        const release = (): void => {
          if (released) return
          released = true
          counter.release(identity)
        }
        finished(client.conn, release)
        if (client.closed === true) release()
        done(null, true)
      }, () => {})
    })
  }
}
