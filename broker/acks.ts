// Frame acks (docs/protocol.md §4.3) go straight to the robot's own connections that
// subscribed to robots/{uuid}/ack, instead of through Aedes' publish pipeline
// (retained store, offline queue lookup, topic matching over every
// subscription, the `published` hook): an ack has exactly one possible
// audience, the robot itself (docs/protocol.md §3), and its connections are known.
// Aedes' Client#publish still does the delivery (packet id, QoS downgrade to
// the subscription's, write, drain), and authorizeForward still sees the ack.
//
// The acks of one committed batch are written while each socket is corked and
// uncorked together afterwards, so a robot with several frames in the batch
// gets them in one write instead of one system call per ack.
//
// A robot that ever connected with a persistent session (clean = false) keeps
// the broker's path: its ack may have to be queued for a session that is
// offline right now, which only Aedes' offline queue does. In cluster mode
// (`direct`) it does not: that path runs through Redis, and no ack may wait
// for Redis (docs/protocol.md §11); a robot that is gone before its ack resends the
// frame, which is stored once and acked again (docs/protocol.md §4.2).
import type { Client } from 'aedes'
import { robotTopic } from '../src/contract/topics.js'

interface AckClient { clean: boolean, closed: boolean, connected: boolean, subscriptions: Record<string, { qos: number } | undefined>, conn: NodeJS.WritableStream & { cork: () => void, uncork: () => void, destroyed?: boolean } }

export interface AckSenderDeps {
  /** every ack straight to the robot's connections on this node, persistent sessions included (cluster mode) */
  direct?: boolean
  /** the open connections of a robot */
  clientsOf: (uuid: string) => Iterable<Client>
  /** the general path: Aedes' publish */
  publish: (topic: string, payload: Buffer) => void
}

export function createAckSender ({ direct = false, clientsOf, publish }: AckSenderDeps) {
  const persistent = new Set<string>()
  const corked = new Set<AckClient['conn']>()
  let flushing = false

  const uncorkAll = (): void => {
    flushing = false
    for (const conn of corked) conn.uncork()
    corked.clear()
  }
  const noop = (): void => {}

  return {
    /** Every robot connection, at CONNECT: remembers robots with persistent sessions. */
    connected (client: Client, uuid: string): void {
      if (!direct && !(client as unknown as AckClient).clean) persistent.add(uuid)
    },

    /** Sends one ack (the payload, already serialized) to the robot. */
    send (uuid: string, payload: Buffer): void {
      const topic = robotTopic(uuid, 'ack')
      if (persistent.has(uuid)) {
        publish(topic, payload)
        return
      }
      for (const c of clientsOf(uuid)) {
        const client = c as unknown as AckClient
        if (client.subscriptions[topic] === undefined || client.closed || !client.connected || client.conn.destroyed === true) continue
        if (!corked.has(client.conn)) {
          client.conn.cork()
          corked.add(client.conn)
          if (!flushing) {
            flushing = true
            // Client#publish writes from a setImmediate of its own, one per
            // ack: those of every ack sent in this turn run in the coming
            // check phase; an immediate set from there runs after all of them.
            setImmediate(() => { setImmediate(uncorkAll) })
          }
        }
        c.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false } as Parameters<Client['publish']>[0], noop)
      }
    }
  }
}

export type AckSender = ReturnType<typeof createAckSender>
