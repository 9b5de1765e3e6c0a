// The in-memory access snapshot of every connected user (docs/protocol.md §3): the
// robots they were granted and their staff flag. authorizeForward runs per
// message and synchronously, so it reads this and never the database. Events
// from the Management API keep it exact: a revoked grant stops delivery at
// once, without a reconnect.
import type { EventBus } from '../src/events.js'
import type { UserPrincipal } from './principal.js'

interface Entry {
  principal: UserPrincipal
  robots: Set<string>
  connections: number
  /** set while the grants load: changes that arrive meanwhile, replayed on the loaded set */
  pending: Array<[string, boolean]> | null
  loaded: Promise<void>
}

export function createAccessCache ({ events, loadRobots }: { events: EventBus, loadRobots: (userId: number) => Promise<string[]> }) {
  const users = new Map<number, Entry>()

  const off = [
    events.on('accessChanged', ({ userId, robotUuid, granted }) => {
      const entry = users.get(userId)
      if (entry === undefined) return
      entry.pending?.push([robotUuid, granted])
      if (granted) entry.robots.add(robotUuid)
      else entry.robots.delete(robotUuid)
    }),
    events.on('userChanged', ({ userId, isStaff }) => {
      const entry = users.get(userId)
      if (entry !== undefined) entry.principal.isStaff = isStaff
    }),
    events.on('robotRevoked', ({ robotUuid, reason }) => {
      if (reason !== 'deleted') return
      for (const entry of users.values()) {
        entry.pending?.push([robotUuid, false])
        entry.robots.delete(robotUuid)
      }
    })
  ]

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
          robots: new Set(),
          connections: 0,
          pending: [],
          loaded: Promise.resolve()
        }
        fresh.loaded = loadRobots(user.id).then((uuids) => {
          const robots = new Set(uuids)
          for (const [uuid, granted] of fresh.pending ?? []) {
            if (granted) robots.add(uuid)
            else robots.delete(uuid)
          }
          fresh.robots = robots
          fresh.pending = null
        })
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
      if (entry !== undefined && --entry.connections <= 0) users.delete(userId)
    },

    /** Connected users, for metrics. */
    get size (): number {
      return users.size
    },

    canAccess (userId: number, robotUuid: string): boolean {
      return users.get(userId)?.robots.has(robotUuid) ?? false
    },

    close (): void {
      for (const stop of off) stop()
      users.clear()
    }
  }
}

export type AccessCache = ReturnType<typeof createAccessCache>
