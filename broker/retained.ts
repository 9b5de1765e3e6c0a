// Retained messages, found by topic. Every robot keeps two retained messages
// (presence and stats), and Aedes' in-memory persistence answers each
// SUBSCRIBE by testing the subscription against every retained message: a
// robot subscribing to its own topics cost O(fleet), and a fleet reconnecting
// at once O(fleet²) (5,000 robots connecting: 17 s of United's CPU, 7 s with
// this). Here a topic without wildcards is one map lookup; a wildcard
// subscription (a staff watcher's `robots/+/stats`) still scans, as before.
import { Readable } from 'node:stream'

interface RetainedPacket { topic: string, payload: Buffer | string }

interface RetainedPersistence {
  storeRetained: (packet: RetainedPacket) => Promise<void>
  createRetainedStream: (pattern: string) => Readable
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

const hasWildcard = (pattern: string): boolean => pattern.includes('+') || pattern.includes('#')

/** MQTT topic matching (MQTT-4.7): `+` is one level, a final `#` any rest; wildcards never match a leading `$`. */
export function topicMatches (pattern: string, topic: string): boolean {
  if (!hasWildcard(pattern)) return pattern === topic
  if (topic.startsWith('$') && (pattern.startsWith('+') || pattern.startsWith('#'))) return false
  const p = pattern.split('/')
  const t = topic.split('/')
  for (let i = 0; i < p.length; i++) {
    const level = p[i]
    if (level === '#') return true // `a/#` also matches `a` (MQTT-4.7.1-2)
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return p.length === t.length
}

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

  persistence.storeRetained = async (packet) => {
    // An empty payload deletes the retained message (MQTT-3.3.1-10).
    if (packet.payload.length === 0) retained.delete(packet.topic)
    else retained.set(packet.topic, { ...packet })
  }
  persistence.createRetainedStream = (pattern) => Readable.from(matching([pattern]))
  persistence.createRetainedStreamCombi = (patterns) => Readable.from(matching(patterns))
}
