// Domain events that cross nodes (docs/operations.md §4): disabling, deleting or
// rotating a robot, revoking a grant, changing, deactivating or deleting a
// user must close connections and stop deliveries on every node within a
// second, and each node's listeners hold that state (open connections,
// access caches, revocation marks). These events are published on one Redis
// channel and emitted again on the other nodes; commandIssued is not (a
// command travels to its robot through the MQTT emitter), and neither is
// robotStateChanged (the robot's own node publishes the new state).
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { EventBus, FleetEventName, FleetEvents } from '../events.js'

export const RELAYED: ReadonlySet<FleetEventName> = new Set(['robotRevoked', 'accessChanged', 'groupGrantChanged', 'groupRobotsChanged', 'groupDeleted', 'apiKeyRevoked', 'userChanged', 'userRevoked', 'passwordChanged', 'robotModelChanged'])

interface Envelope { from: string, event: FleetEventName, args: unknown[] }

function envelope (text: string): Envelope | null {
  try {
    const e = JSON.parse(text) as Partial<Envelope>
    if (typeof e.from !== 'string' || typeof e.event !== 'string' || !RELAYED.has(e.event) || !Array.isArray(e.args)) return null
    return e as Envelope
  } catch {
    return null
  }
}

/**
 * A bus that emits locally as before and, for the relayed events, publishes
 * them to the other nodes; what they publish is emitted here. `sub` is a
 * connection of its own (a subscribed connection runs no other command).
 */
export function relayEvents ({ bus, pub, sub, channel, nodeId, log }: { bus: EventBus, pub: Redis, sub: Redis, channel: string, nodeId: string, log: FastifyBaseLogger }): EventBus & { ready: Promise<void> } {
  sub.on('message', (from: string, text: string) => {
    if (from !== channel) return
    const e = envelope(text)
    if (e === null || e.from === nodeId) return
    bus.emit(e.event, ...(e.args as FleetEvents[typeof e.event]))
  })
  const ready = sub.subscribe(channel).then(() => {}, (err: unknown) => { log.warn({ err: (err as Error).message }, 'cluster events: not subscribed yet, retried on reconnect') })
  // ioredis subscribes again by itself after a reconnection (autoResubscribe).
  return {
    ready,
    emit (event, ...args) {
      bus.emit(event, ...args)
      if (!RELAYED.has(event)) return
      pub.publish(channel, JSON.stringify({ from: nodeId, event, args })).catch((err: unknown) => {
        log.warn({ event, err: (err as Error).message }, 'cluster event not sent: other nodes learn it when Redis is back only through their own checks')
      })
    },
    on: bus.on
  }
}
