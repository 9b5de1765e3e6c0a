// Every MQTT topic of docs/protocol.md §3, built and parsed here and nowhere else.
import { isUuid } from './uuid.js'

export const CHANNELS = ['data', 'ack', 'commands', 'commands/ack', 'stats', 'presence'] as const
export type Channel = typeof CHANNELS[number]

export const SYS_PREFIX = '$SYS/'
const ROOT = 'robots/'

export function robotTopic (uuid: string, channel: Channel): string {
  return `${ROOT}${uuid}/${channel}`
}

export interface ParsedTopic {
  /** a robot uuid, or '+' in a subscription filter */
  uuid: string
  channel: Channel
}

/**
 * `robots/{uuid}/{channel}` → `{uuid, channel}`; anything else → null. With
 * `filter`, the robot position may be the `+` wildcard (docs/protocol.md §3); no
 * other wildcard is recognised, so `robots/#` is not a robot topic.
 */
export function parseTopic (topic: string, filter = false): ParsedTopic | null {
  if (!topic.startsWith(ROOT)) return null
  const slash = topic.indexOf('/', ROOT.length)
  if (slash === -1) return null
  const uuid = topic.slice(ROOT.length, slash)
  const channel = topic.slice(slash + 1)
  if (!(CHANNELS as readonly string[]).includes(channel)) return null
  if (uuid === '+' ? !filter : !isUuid(uuid)) return null
  return { uuid, channel: channel as Channel }
}

/**
 * The channel of `topic` when it is one of robot `uuid`'s own topics, else
 * null. For the per-message path after authorizePublish: string comparisons
 * only, no UUID pattern.
 */
export function ownChannel (topic: string, uuid: string): Channel | null {
  const slash = ROOT.length + uuid.length
  if (!topic.startsWith(ROOT) || !topic.startsWith(uuid, ROOT.length) || topic.charCodeAt(slash) !== 47) return null
  const channel = topic.slice(slash + 1)
  return (CHANNELS as readonly string[]).includes(channel) ? channel as Channel : null
}

export function isSysTopic (topic: string): boolean {
  return topic.startsWith(SYS_PREFIX)
}

export const hasWildcard = (pattern: string): boolean => pattern.includes('+') || pattern.includes('#')

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
