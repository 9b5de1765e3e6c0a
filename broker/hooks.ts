// The Aedes authorization hooks: thin adapters around src/contract/acl.ts.
import type { AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import { canForward, canPublish, canSubscribe, type AccessView } from '../src/contract/acl.js'
import { isRevoked, principalOf, short } from './principal.js'

/**
 * A user whose socket holds this much unsent data is a slow consumer: live
 * statistics are dropped for them until they catch up, so that a frozen
 * browser tab never holds delivery slots that robots' acks need. It is also
 * the connections' write high-water mark (index.ts, websocket.ts): Aedes holds
 * a delivery slot for every write past the high-water mark until the socket
 * drains, so deliveries must stop there, not after it.
 */
export const SLOW_CONSUMER_BYTES = 256 * 1024

export function createAuthorizers ({ access, log }: { access: AccessView, log: FastifyBaseLogger }) {
  return {
    /** Refused publishes close the connection (MQTT 3.1.1 has no PUBACK error) and are logged. */
    authorizePublish (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
      const who = principalOf(client)
      if (who === undefined) {
        done(new Error('not authenticated'))
        return
      }
      // A connection being closed for a revocation: its will included, it may send nothing more.
      if (isRevoked(client)) {
        done(new Error('publish refused: credentials revoked'))
        return
      }
      const decision = canPublish(who, packet.topic)
      if (decision.allow) {
        done(null)
        return
      }
      log.warn({ clientId: short(client?.id, 200), principal: who.kind === 'robot' ? who.uuid : who.username, topic: short(packet.topic, 200), reason: decision.reason }, 'MQTT publish refused')
      done(new Error(`publish refused: ${decision.reason}`))
    },

    /** Refused subscriptions get SUBACK 0x80; the connection stays. */
    authorizeSubscribe (client: Client, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
      const who = principalOf(client)
      const decision = who === undefined || isRevoked(client) ? { allow: false as const, reason: 'not authenticated' } : canSubscribe(who, sub.topic, access)
      if (!decision.allow) log.info({ clientId: short(client.id, 200), topic: short(sub.topic, 200), reason: decision.reason }, 'MQTT subscription refused')
      done(null, decision.allow ? sub : null)
    },

    /** Per message, synchronous, from memory. */
    authorizeForward (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
      const who = principalOf(client)
      if (who === undefined || isRevoked(client) || !canForward(who, packet.topic, access)) return null
      if (who.kind === 'user' && (client.conn.writableNeedDrain || client.conn.writableLength >= SLOW_CONSUMER_BYTES)) return null
      return packet
    }
  }
}
