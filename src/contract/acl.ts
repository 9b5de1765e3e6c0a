// Who may publish and subscribe where (docs/protocol.md §3): one table and three
// pure functions. The broker hooks are thin adapters around these.
import { isSysTopic, ownChannel, parseTopic, type Channel } from './topics.js'

export type Principal =
  | { kind: 'robot', uuid: string }
  | { kind: 'user', id: number, username: string, isStaff: boolean }

/**
 * What a user may see right now: whether they hold any role on a robot (a
 * viewer may watch its stats and presence). Kept fresh by events, never read
 * from the database per message.
 */
export interface AccessView { canAccess: (userId: number, robotUuid: string) => boolean }

interface Rule {
  /** robots may publish to their own topic of this channel */
  robotPublishes: boolean
  /** robots may subscribe to their own topic of this channel */
  robotSubscribes: boolean
  /** users with access (and staff) may subscribe; `+` allowed in the robot position */
  usersSubscribe: boolean
}

export const ACL: Record<Channel, Rule> = {
  data: { robotPublishes: true, robotSubscribes: false, usersSubscribe: false },
  ack: { robotPublishes: false, robotSubscribes: true, usersSubscribe: false },
  commands: { robotPublishes: false, robotSubscribes: true, usersSubscribe: false },
  'commands/ack': { robotPublishes: true, robotSubscribes: false, usersSubscribe: false },
  stats: { robotPublishes: false, robotSubscribes: false, usersSubscribe: true },
  presence: { robotPublishes: false, robotSubscribes: false, usersSubscribe: true }
}

export type Decision = { allow: true } | { allow: false, reason: string }
const allow: Decision = { allow: true }
const deny = (reason: string): Decision => ({ allow: false, reason })

/** A user may publish nothing; a robot only its own data and commands/ack. */
export function canPublish (who: Principal, topic: string): Decision {
  if (who.kind === 'user') return deny('users may not publish')
  // Every frame comes this way: a robot's own topic is recognised by string
  // comparisons alone; only other topics are parsed, to say why they are refused.
  const own = ownChannel(topic, who.uuid)
  if (own !== null && ACL[own].robotPublishes) return allow
  if (isSysTopic(topic)) return deny('$SYS is reserved')
  const t = parseTopic(topic)
  if (t === null) return deny('not a robot topic')
  if (t.uuid !== who.uuid) return deny("another robot's topic")
  return ACL[t.channel].robotPublishes ? allow : deny(`robots may not publish to ${t.channel}`)
}

/**
 * Robots: their own ack and commands, no wildcards. Users: stats and presence
 * of robots they can access, `+` allowed in the robot position (filtered per
 * message by canForward). Staff: stats and presence of every robot, and $SYS.
 */
export function canSubscribe (who: Principal, filter: string, access: AccessView): Decision {
  if (isSysTopic(filter)) return who.kind === 'user' && who.isStaff ? allow : deny('$SYS is staff-only')
  if (who.kind === 'robot') {
    const t = parseTopic(filter)
    if (t === null) return deny('not an own robot topic (robots may not use wildcards)')
    if (t.uuid !== who.uuid) return deny("another robot's topic")
    return ACL[t.channel].robotSubscribes ? allow : deny(`robots may not subscribe to ${t.channel}`)
  }
  const t = parseTopic(filter, true)
  if (t === null) return deny('not a stats or presence topic')
  if (!ACL[t.channel].usersSubscribe) return deny(`users may not subscribe to ${t.channel}`)
  if (t.uuid === '+' || who.isStaff) return allow
  return access.canAccess(who.id, t.uuid) ? allow : deny('no access to this robot')
}

/**
 * Checked for every message before it is delivered, so that a wildcard
 * subscription delivers only the user's robots and a revoked grant stops
 * delivery at once.
 */
export function canForward (who: Principal, topic: string, access: AccessView): boolean {
  if (who.kind === 'robot') {
    const own = ownChannel(topic, who.uuid) // a robot's only messages: its own acks and commands
    return own !== null && ACL[own].robotSubscribes
  }
  if (isSysTopic(topic)) return who.isStaff
  const t = parseTopic(topic)
  if (t === null) return false
  if (!ACL[t.channel].usersSubscribe) return false
  return who.isStaff || access.canAccess(who.id, t.uuid)
}
