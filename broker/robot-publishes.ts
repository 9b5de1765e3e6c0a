// What robots publish (docs/protocol.md §4 data frames, §5 command acks) is for the
// server alone: nobody may subscribe to robots/{uuid}/data or
// robots/{uuid}/commands/ack (src/contract/acl.ts), so routing those messages
// through Aedes' publish pipeline only costs CPU: a Packet copy, a lookup of
// offline subscriptions, a match against every subscription in mqemitter and
// three promise-returning steps, per frame (about a sixth of the broker's CPU
// under a stream of frames). They go straight to their handler instead.
//
// Aedes' protocol handler calls `broker.publish(packet, client, done)` after
// authorizePublish allowed the message (and after it wrote the PUBACK of a
// QoS 1 publish); a robot's will comes the same way. `done` lets the client's
// next packets be read: a handler that defers it slows that robot down
// (backpressure). Everything else (the server's own messages, users, any topic
// the handler does not claim) keeps the broker's path.
import type { Aedes, Client, PublishPacket } from 'aedes'

type Done = (error?: Error | null) => void
type Publish = (packet: PublishPacket, client: Client | Done | null | undefined, done?: Done) => void

/**
 * Returns true when it took the message; then it calls `done` itself, at once
 * or when the robot may send more.
 */
export type RobotPublishHandler = (client: Client, packet: PublishPacket, done: Done) => boolean

export function interceptRobotPublishes (aedes: Aedes, handle: RobotPublishHandler): void {
  const broker = aedes as unknown as { publish: Publish }
  const route = broker.publish.bind(aedes) as Publish
  broker.publish = (packet, client, done) => {
    if (typeof client === 'object' && client !== null && handle(client, packet, done ?? noop)) return
    route(packet, client, done)
  }
}

function noop (): void {}
