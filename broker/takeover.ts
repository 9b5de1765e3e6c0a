// A will is published only by a connection that still holds its client id
// (docs/protocol.md §11, §3.3): when a client connects with a client id that its
// identity already holds, the old connection is closed and must not fire its
// will, or a robot taken over by its own reconnection would announce its own
// death. On one node Aedes closes the old connection inside registerClient;
// across nodes the old node closes it when the new node's
// `$SYS/<broker>/new/clients` reaches it through the emitter, after the new
// node has registered the client. Here:
//   - registerClient marks a local connection it replaces as superseded;
//   - in cluster mode every registered connection records itself as the
//     owner of its client id (`owner:<client id>` = this broker's id, see
//     src/cluster/owners.ts: the record lives as long as the connection, and
//     a dead node's records go when it is reaped), and a closing connection
//     whose client id is owned by another broker is superseded too.
// A superseded connection's will is refused at authorizePublish, like a
// revoked one's.
import type { Aedes, Client, PublishPacket } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster } from '../src/cluster/index.js'

type Authorize = (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void

export function createTakeover ({ cluster, log }: { cluster: Cluster | null, log: FastifyBaseLogger }) {
  const superseded = new WeakSet<Client>()
  /** The registered connections of this node, by client id. */
  let clients: Record<string, Client | undefined> = {}

  async function isSuperseded (client: Client): Promise<boolean> {
    if (superseded.has(client)) return true
    if (cluster === null) return false
    try {
      const owner = await cluster.owners.owner(client.id)
      return owner !== null && owner !== cluster.brokerId
    } catch {
      return false // Redis down: as a lone node would
    }
  }

  return {
    /** Wraps registerClient: a local connection replaced by a new one with its client id is superseded. */
    attach (aedes: Aedes): void {
      const broker = aedes as unknown as { clients: Record<string, Client | undefined>, registerClient: (client: Client) => void }
      clients = broker.clients
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
      cluster.owners.claim(client.id).catch((err: unknown) => {
        log.debug({ err: (err as Error).message }, 'client id ownership not recorded (Redis unreachable)')
      })
    },

    /** A connection ended: its ownership record goes, unless a newer connection holds the id. */
    disconnected (client: Client): void {
      if (cluster === null || superseded.has(client)) return
      const now = clients[client.id]
      if (now !== undefined && now !== client) return
      cluster.owners.release(client.id).catch(() => {})
    },

    /**
     * True when a connection of this client id is open, here or (cluster
     * mode) on another node: a CONNECT with it takes that one over.
     */
    async held (clientId: string): Promise<boolean> {
      if (clients[clientId] !== undefined) return true
      if (cluster === null) return false
      try {
        return await cluster.owners.owner(clientId) !== null
      } catch {
        return false
      }
    },

    /** The client ids of this node's connections. */
    clientIds (): Iterable<string> {
      return Object.keys(clients)
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
