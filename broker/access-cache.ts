// The in-memory access view of every connected user (docs/protocol.md §3,
// §13): their direct grants and group grants, each with its role and end,
// and one shared copy of each group's robots. authorizeForward runs per
// message and synchronously, so it reads this and never the database.
//
// Events keep it exact on every node (the cluster relays them): a grant
// made, changed or revoked, a robot entering or leaving a group (one event
// for the group, whatever the number of its users), a group deleted. An
// expiry needs no event: every check compares the grant's end with the
// clock, so a grant stops at its `expires_at` to the millisecond, with no
// one acting and no timer.
import type { FastifyBaseLogger } from 'fastify'
import { higher, type Role } from '../src/contract/roles.js'
import type { EventBus } from '../src/events.js'
import type { AccessService } from '../src/services/access.js'
import type { UserPrincipal } from './principal.js'

interface Grant { role: Role, until: number }

/** One group's robots, shared by the connected users holding it. */
interface GroupCopy {
  robots: Set<string>
  holders: number
  /** changes that arrive while the robots load, replayed on the loaded set */
  pending: Array<(robots: Set<string>) => void> | null
  loaded: Promise<void>
}

interface Entry {
  principal: UserPrincipal
  direct: Map<string, Grant>
  groups: Map<number, { grant: Grant, copy: GroupCopy }>
  connections: number
  /** set while the grants load: changes that arrive meanwhile, replayed after */
  pending: Array<() => void> | null
  loaded: Promise<void>
}

const until = (expiresAt: string | null): number => expiresAt === null ? Infinity : Date.parse(expiresAt)

export interface AccessCacheDeps {
  events: EventBus
  load: Pick<AccessService, 'viewOf' | 'groupRobotUuids'>
  log?: FastifyBaseLogger
}

export function createAccessCache ({ events, load, log }: AccessCacheDeps) {
  const users = new Map<number, Entry>()
  const groups = new Map<number, GroupCopy>()

  function acquireGroup (groupId: number): GroupCopy {
    let copy = groups.get(groupId)
    if (copy === undefined) {
      const fresh: GroupCopy = { robots: new Set(), holders: 0, pending: [], loaded: Promise.resolve() }
      fresh.loaded = load.groupRobotUuids(groupId).then((uuids) => {
        const robots = new Set(uuids)
        for (const change of fresh.pending ?? []) change(robots)
        fresh.robots = robots
        fresh.pending = null
      }, (err: unknown) => {
        // Fails closed: the group's robots stay hidden; the next holder loads it again.
        fresh.pending = null
        if (groups.get(groupId) === fresh) groups.delete(groupId)
        throw err
      })
      fresh.loaded.catch(() => {})
      groups.set(groupId, fresh)
      copy = fresh
    }
    copy.holders++
    return copy
  }

  function releaseGroup (groupId: number, copy: GroupCopy): void {
    if (--copy.holders <= 0 && groups.get(groupId) === copy) groups.delete(groupId)
  }

  /** Runs `change` on a user's entry now, and again once its grants have loaded. */
  function onUser (userId: number, change: (entry: Entry) => void): void {
    const entry = users.get(userId)
    if (entry === undefined) return
    entry.pending?.push(() => { change(entry) })
    change(entry)
  }

  function setGroupGrant (entry: Entry, groupId: number, role: Role | null, expiresAt: string | null): void {
    const held = entry.groups.get(groupId)
    if (role === null) {
      if (held === undefined) return
      entry.groups.delete(groupId)
      releaseGroup(groupId, held.copy)
      return
    }
    const grant = { role, until: until(expiresAt) }
    if (held !== undefined) held.grant = grant
    else {
      const copy = acquireGroup(groupId)
      copy.loaded.catch((err: unknown) => { log?.warn({ err, group: groupId, user: entry.principal.id }, 'could not load a group granted to a connected user; its robots stay hidden from them until they reconnect') })
      entry.groups.set(groupId, { grant, copy })
    }
  }

  function forget (entry: Entry): void {
    for (const [groupId, { copy }] of entry.groups) releaseGroup(groupId, copy)
    entry.groups.clear()
  }

  const off = [
    events.on('accessChanged', ({ userId, robotUuid, role, expiresAt }) => {
      onUser(userId, (entry) => {
        if (role === null) entry.direct.delete(robotUuid)
        else entry.direct.set(robotUuid, { role, until: until(expiresAt) })
      })
    }),
    events.on('groupGrantChanged', ({ groupId, userId, role, expiresAt }) => {
      onUser(userId, (entry) => { setGroupGrant(entry, groupId, role, expiresAt) })
    }),
    events.on('groupRobotsChanged', ({ groupId, robotUuids, added }) => {
      const copy = groups.get(groupId)
      if (copy === undefined) return
      const change = (robots: Set<string>): void => {
        for (const uuid of robotUuids) {
          if (added) robots.add(uuid)
          else robots.delete(uuid)
        }
      }
      copy.pending?.push(change)
      change(copy.robots)
    }),
    events.on('groupDeleted', ({ groupId }) => {
      for (const entry of users.values()) {
        entry.pending?.push(() => { setGroupGrant(entry, groupId, null, null) })
        setGroupGrant(entry, groupId, null, null)
      }
      groups.delete(groupId)
    }),
    events.on('userChanged', ({ userId, isStaff }) => {
      const entry = users.get(userId)
      if (entry !== undefined) entry.principal.isStaff = isStaff
    }),
    events.on('robotRevoked', ({ robotUuid, reason }) => {
      if (reason !== 'deleted') return
      for (const entry of users.values()) {
        entry.pending?.push(() => { entry.direct.delete(robotUuid) })
        entry.direct.delete(robotUuid)
      }
      for (const copy of groups.values()) {
        copy.pending?.push((robots) => { robots.delete(robotUuid) })
        copy.robots.delete(robotUuid)
      }
    })
  ]

  async function loadEntry (entry: Entry): Promise<void> {
    const view = await load.viewOf(entry.principal.id)
    const pending = entry.pending ?? []
    entry.pending = null
    for (const g of view.direct) entry.direct.set(g.robotUuid, { role: g.role, until: until(g.expiresAt) })
    for (const g of view.groups) setGroupGrant(entry, g.groupId, g.role, g.expiresAt)
    // changes announced while the view was read win over it
    for (const change of pending) change()
    await Promise.all([...entry.groups.values()].map(async ({ copy }) => { await copy.loaded }))
  }

  /** The user's effective role on the robot now (null: none): map lookups and a clock read. */
  function roleOf (userId: number, robotUuid: string, now = Date.now()): Role | null {
    const entry = users.get(userId)
    if (entry === undefined) return null
    const direct = entry.direct.get(robotUuid)
    let role: Role | null = direct !== undefined && direct.until > now ? direct.role : null
    if (role === 'manager') return role
    for (const { grant, copy } of entry.groups.values()) {
      if (grant.until > now && copy.robots.has(robotUuid)) role = higher(role, grant.role)
    }
    return role
  }

  return {
    /**
     * Registers one more connection of this user and returns the principal
     * shared by all of them. Loads the grants on the first connection.
     */
    async acquire (user: { id: number, username: string, isStaff: boolean }): Promise<UserPrincipal> {
      let entry = users.get(user.id)
      if (entry === undefined) {
        const fresh: Entry = {
          principal: { kind: 'user', id: user.id, username: user.username, isStaff: user.isStaff },
          direct: new Map(),
          groups: new Map(),
          connections: 0,
          pending: [],
          loaded: Promise.resolve()
        }
        fresh.loaded = loadEntry(fresh)
        fresh.loaded.catch(() => {})
        users.set(user.id, fresh)
        entry = fresh
      }
      entry.connections++
      try {
        await entry.loaded
      } catch (err) {
        this.release(user.id)
        throw err
      }
      entry.principal.isStaff = user.isStaff
      return entry.principal
    },

    release (userId: number): void {
      const entry = users.get(userId)
      if (entry !== undefined && --entry.connections <= 0) {
        users.delete(userId)
        forget(entry)
      }
    },

    /** Connected users, for metrics. */
    get size (): number {
      return users.size
    },

    /** Groups held in memory, for metrics and tests. */
    get groupCount (): number {
      return groups.size
    },

    roleOf,

    /** Whether the user holds any role on the robot now (the per-message check of stats and presence). */
    canAccess (userId: number, robotUuid: string): boolean {
      const entry = users.get(userId)
      if (entry === undefined) return false
      const now = Date.now()
      const direct = entry.direct.get(robotUuid)
      if (direct !== undefined && direct.until > now) return true
      for (const { grant, copy } of entry.groups.values()) {
        if (grant.until > now && copy.robots.has(robotUuid)) return true
      }
      return false
    },

    close (): void {
      for (const stop of off) stop()
      users.clear()
      groups.clear()
    }
  }
}

export type AccessCache = ReturnType<typeof createAccessCache>
