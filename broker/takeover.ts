// A will is published only by a connection that still holds its client id
// (CONTRACT §10, §13): when a client connects with a client id that its
// identity already holds, the old connection is closed and must not fire its
// will, or a robot taken over by its own reconnection would announce its own
// death. On one node Aedes closes the old connection inside registerClient;
// across nodes the old node closes it when the new node's
// `$SYS/<broker>/new/clients` reaches it through the emitter, after the new
// node has registered the client. Here:
//   - registerClient marks a local connection it replaces as superseded;
//   - in cluster mode every registered connection records itself as the
//     owner of its client id (`owner:<client id>` = this broker's id), and a
//     closing connection whose client id is owned by another broker is
//     superseded too.
// A superseded connection's will is refused at authorizePublish, like a
// revoked one's.
import type { Aedes, Client, PublishPacket } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster } from '../src/cluster/index.js'

type Authorize = (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void

/** Seconds an ownership record outlives its connection's log-in at most (a client id unused for a day is free). */
const OWNER_TTL = 86_400

export function createTakeover ({ cluster, log }: { cluster: Cluster | null, log: FastifyBaseLogger }) {
  const superseded = new WeakSet<Client>()
  const ownerKey = (clientId: string): string => `owner:${clientId}`

  async function isSuperseded (client: Client): Promise<boolean> {
    if (superseded.has(client)) return true
    if (cluster === null) return false
    try {
      const owner = await cluster.redis.get(ownerKey(client.id))
      return owner !== null && owner !== cluster.brokerId
    } catch {
      return false // Redis down: as a lone node would
    }
  }

  return {
    /** Wraps registerClient: a local connection replaced by a new one with its client id is superseded. */
    attach (aedes: Aedes): void {
      const broker = aedes as unknown as { clients: Record<string, Client | undefined>, registerClient: (client: Client) => void }
      const register = broker.registerClient.bind(aedes)
      broker.registerClient = (client) => {
        const old = broker.clients[client.id]
        if (old !== undefined && old !== client) superseded.add(old)
        register(client)
      }
    },

    /** A connection was registered: in cluster mode it now owns its client id. */
    connected (client: Client): void {
      if (cluster === null) return
      cluster.redis.set(ownerKey(client.id), cluster.brokerId, 'EX', OWNER_TTL).catch((err: unknown) => {
        log.debug({ err: (err as Error).message }, 'client id ownership not recorded (Redis unreachable)')
      })
    },

    /** authorizePublish, with the wills of superseded connections refused. */
    authorizePublish (authorize: Authorize): Authorize {
      return (client, packet, done) => {
        // A closed connection publishes only its will.
        if (client === null || client.closed !== true) {
          authorize(client, packet, done)
          return
        }
        isSuperseded(client).then((yes) => {
          if (yes) done(new Error('will refused: the client id was taken over'))
          else authorize(client, packet, done)
        }, () => { authorize(client, packet, done) })
      }
    }
  }
}
