// Retained messages, found by topic. Every robot keeps two retained messages
// (presence and stats), and Aedes' in-memory persistence answers each
// SUBSCRIBE by testing the subscription against every retained message: a
// robot subscribing to its own topics cost O(fleet), and a fleet reconnecting
// at once O(fleet²) (5,000 robots connecting: 17 s of United's CPU, 7 s with
// this). Here a topic without wildcards is one map lookup; a wildcard
// subscription (a staff watcher's `robots/+/stats`) still scans, as before.
import { Readable } from 'node:stream'
import { hasWildcard, topicMatches } from '../src/contract/topics.js'

interface RetainedPacket { topic: string, payload: Buffer | string }

interface RetainedPersistence {
  storeRetained: (packet: RetainedPacket) => Promise<void>
  createRetainedStream: (pattern: string) => Readable
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

/**
 * A settled promise-like whose callbacks run at once. Aedes numbers every
 * packet as it is created (brokerCounter) and each client drops a packet
 * whose number is not above the last one it received (its duplicate check).
 * A retained message waits for storeRetained before it is emitted, a plain
 * one does not: a `$SYS/…/new/clients` created after a presence update
 * overtook it when storing took a turn of the event loop, and the presence
 * update was then dropped as a duplicate for every staff user subscribed to
 * both (none of 6 arrived). Storing in memory is synchronous, so it answers
 * synchronously, and packets are emitted in the order they were numbered.
 */
const STORED = { then (onStored?: () => unknown): unknown { onStored?.(); return STORED } } as unknown as Promise<void>

/** Replaces the persistence's retained-message store with one indexed by topic. */
export function indexRetained (persistence: RetainedPersistence): void {
  const retained = new Map<string, RetainedPacket>()

  function * matching (patterns: string[]): Generator<RetainedPacket> {
    for (const pattern of patterns) {
      if (!hasWildcard(pattern)) {
        const packet = retained.get(pattern)
        if (packet !== undefined) yield packet
        continue
      }
      for (const [topic, packet] of retained) {
        if (topicMatches(pattern, topic)) yield packet
      }
    }
  }

  persistence.storeRetained = (packet) => {
    // An empty payload deletes the retained message (MQTT-3.3.1-10).
    if (packet.payload.length === 0) retained.delete(packet.topic)
    else retained.set(packet.topic, { ...packet })
    return STORED
  }
  persistence.createRetainedStream = (pattern) => Readable.from(matching([pattern]))
  persistence.createRetainedStreamCombi = (patterns) => Readable.from(matching(patterns))
}

type PublishBuffer = (topic: string, payload: Buffer, opts: { retain: boolean, qos: 0 | 1 }) => void

/**
 * Cluster mode: retained messages that must never be seen old from another
 * node (presence) are written to Redis first and published after
 * (src/cluster/mqtt.ts storeRetainedNow), one after the other per topic. A
 * subscriber on any node then either reads the message from Redis or
 * receives it live: it cannot arrive between the two. The packet is made
 * (and numbered by Aedes) only once written, so it never goes out after
 * packets made later, which clients would drop as duplicates.
 */
export function writeFirst (store: (packet: { topic: string, payload: Buffer }) => Promise<void>, publish: PublishBuffer) {
  const chains = new Map<string, Promise<void>>()
  return {
    publish (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }): void {
      const buffer = Buffer.from(JSON.stringify(payload))
      const send = (): void => { publish(topic, buffer, opts) }
      const next = (chains.get(topic) ?? Promise.resolve()).then(async () => { if (opts.retain) await store({ topic, payload: buffer }) }).then(send, send)
      chains.set(topic, next)
      void next.finally(() => { if (chains.get(topic) === next) chains.delete(topic) })
    },
    /** Resolves when every message handed over is published. */
    async settle (): Promise<void> {
      await Promise.all(chains.values())
    }
  }
}
