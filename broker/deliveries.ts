// Which command a robot's PUBACK acknowledges (docs/protocol.md §5.2: pending →
// delivered on the PUBACK). Aedes 1.x keeps in-flight QoS 1 packets only for
// persistent sessions: for a clean session (what robots use) its 'ack' event
// carries no packet, so the PUBACK could not be matched to a command. We give
// each QoS 1 command delivery to a clean session its packet identifier from
// the client's own counter (as Aedes would), remember it, and hand the packet
// back when the PUBACK with that identifier clears it.
import type { AedesPublishPacket, Client } from 'aedes'
import { parseTopic } from '../src/contract/topics.js'
import { principalOf } from './principal.js'

interface AedesClientInternals { clean: boolean, _nextId: number, subscriptions: Record<string, { qos: number } | undefined> }
interface Sent { topic: string, payload: AedesPublishPacket['payload'] }
interface Persistence { outgoingClearMessageId: (client: Client, packet: { messageId?: number }) => Promise<unknown> }

export function createDeliveryTracker () {
  const inflight = new WeakMap<Client, Map<number, Sent>>()

  return {
    /** Wraps authorizeForward's answer: a command to a clean-session robot gets a tracked packet identifier. */
    outgoing (client: Client, packet: AedesPublishPacket | null): AedesPublishPacket | null {
      if (packet === null || packet.qos === 0 || principalOf(client)?.kind !== 'robot' || parseTopic(packet.topic)?.channel !== 'commands') return packet
      const c = client as unknown as AedesClientInternals
      // Aedes tracks persistent sessions itself; a QoS 0 subscription gets no PUBACK.
      if (!c.clean || (c.subscriptions[packet.topic]?.qos ?? 0) === 0) return packet
      const messageId = c._nextId
      c._nextId = messageId >= 65535 ? 1 : messageId + 1
      let sent = inflight.get(client)
      if (sent === undefined) inflight.set(client, sent = new Map())
      sent.set(messageId, { topic: packet.topic, payload: packet.payload })
      return Object.assign(Object.create(Object.getPrototypeOf(packet) as object) as AedesPublishPacket, packet, { messageId })
    },

    /**
     * Makes the persistence's answer to a PUBACK fall back on the tracked
     * packet, for the 'ack' event. A clean session's outgoing packets are
     * never stored (Aedes stores them only for persistent sessions), so its
     * PUBACKs (a robot's, one per frame ack) do not ask the persistence at
     * all: in cluster mode that was a Redis round trip per frame.
     */
    wrap (persistence: Persistence): void {
      const clear = persistence.outgoingClearMessageId.bind(persistence)
      persistence.outgoingClearMessageId = async (client, packet) => {
        const stored = (client as unknown as AedesClientInternals).clean ? undefined : await clear(client, packet)
        if (stored !== undefined && stored !== null) return stored
        const sent = packet.messageId === undefined ? undefined : inflight.get(client)
        const found = sent?.get(packet.messageId as number)
        if (found !== undefined) sent?.delete(packet.messageId as number)
        return found
      }
    }
  }
}
