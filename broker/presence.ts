// Which robots are connected and how (CONTRACT §3): data-connected while it
// has an open connection, command-connected while one of them subscribes to
// its commands topic. Every change is republished, retained, on
// robots/{uuid}/presence and written to the robot's row.
import type { Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import { robotTopic } from '../src/contract/topics.js'
import type { Services } from '../src/services/index.js'
import type { RobotPrincipal } from './principal.js'

const NONE: ReadonlySet<Client> = new Set()

interface Live { clients: Set<Client>, command: Set<Client>, online: boolean, since: Date }

export interface PresenceDeps {
  services: Services
  publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void
  onChange: (uuid: string, flags: { data_connected: boolean, command_connected: boolean }) => void
  /** The robot has just become command-connected (its first connection subscribed to its commands). */
  onCommandConnected: (uuid: string) => void
  log: FastifyBaseLogger
}

export function createPresenceTracker ({ services, publish, onChange, onCommandConnected, log }: PresenceDeps) {
  const robots = new Map<string, Live>()
  // Robots that sent a stored frame since the last tick: last_seen_at moves at
  // most once per robot per second, in one UPDATE for all of them.
  let seen = new Set<string>()
  let touching: Promise<void> = Promise.resolve()
  const touch = (): void => {
    if (seen.size === 0) return
    const uuids = [...seen]
    seen = new Set()
    touching = touching
      .then(() => services.robots.touch(uuids, new Date()))
      .catch((err: unknown) => { log.warn({ err, robots: uuids.length }, 'could not record last_seen_at') })
  }
  const ticker = setInterval(touch, 1000)
  ticker.unref()
  // The rows follow the latest flags of each robot that changed. One write
  // at a time, so rapid connect/disconnect cannot land out of order; changes
  // that arrive meanwhile gather for the next one, so a robot that connects
  // and subscribes is usually written once, and a fleet reconnecting at once
  // costs a few UPDATEs instead of two per robot.
  let changes = new Map<string, { dataConnected: boolean, commandConnected: boolean }>()
  let writing: Promise<void> | null = null
  async function writeChanges (): Promise<void> {
    await new Promise<void>((resolve) => { setImmediate(resolve) }) // this turn's changes join
    while (changes.size > 0) {
      const batch = changes
      changes = new Map()
      try {
        await services.robots.setConnections([...batch].map(([uuid, flags]) => ({ uuid, ...flags })), new Date())
      } catch (err) {
        log.warn({ err, robots: batch.size }, 'could not record robot presence')
      }
    }
    writing = null
  }

  function live (uuid: string): Live {
    let entry = robots.get(uuid)
    if (entry === undefined) robots.set(uuid, entry = { clients: new Set(), command: new Set(), online: false, since: new Date() })
    return entry
  }

  function changed (uuid: string, entry: Live): void {
    const data = entry.clients.size > 0
    const command = entry.command.size > 0
    if (data !== entry.online) {
      entry.online = data
      entry.since = new Date()
    }
    services.presence.set(uuid, { data: entry.clients.size, command: entry.command.size })
    publish(robotTopic(uuid, 'presence'), {
      robot_uuid: uuid,
      online: data,
      data_connected: data,
      command_connected: command,
      since: entry.since.toISOString()
    }, { retain: true, qos: 0 })
    onChange(uuid, { data_connected: data, command_connected: command })
    changes.set(uuid, { dataConnected: data, commandConnected: command })
    writing ??= writeChanges()
    if (!data) robots.delete(uuid)
  }

  const isCommandTopic = (robot: RobotPrincipal, topic: string): boolean => topic === robotTopic(robot.uuid, 'commands')

  return {
    connected (client: Client, robot: RobotPrincipal): void {
      const entry = live(robot.uuid)
      entry.clients.add(client)
      changed(robot.uuid, entry)
    },
    disconnected (client: Client, robot: RobotPrincipal): void {
      const entry = robots.get(robot.uuid)
      if (entry === undefined || !entry.clients.delete(client)) return
      entry.command.delete(client)
      changed(robot.uuid, entry)
    },
    subscribed (client: Client, robot: RobotPrincipal, topics: string[]): void {
      const entry = robots.get(robot.uuid)
      if (entry === undefined || !entry.clients.has(client) || !topics.some((t) => isCommandTopic(robot, t)) || entry.command.has(client)) return
      const first = entry.command.size === 0
      entry.command.add(client)
      changed(robot.uuid, entry)
      if (first) onCommandConnected(robot.uuid)
    },
    unsubscribed (client: Client, robot: RobotPrincipal, topics: string[]): void {
      const entry = robots.get(robot.uuid)
      if (entry === undefined || !topics.some((t) => isCommandTopic(robot, t)) || !entry.command.delete(client)) return
      changed(robot.uuid, entry)
    },
    /** The open connections of a robot (to close them on revocation). */
    clientsOf (uuid: string): Client[] {
      return [...(robots.get(uuid)?.clients ?? [])]
    },
    /** The same, without a copy (the hot path; do not close them while iterating). */
    connections (uuid: string): Iterable<Client> {
      return robots.get(uuid)?.clients ?? NONE
    },
    /** The robot sent a stored frame. */
    seen (uuid: string): void {
      seen.add(uuid)
    },
    get onlineCount (): number {
      return robots.size
    },
    /** Writes what is pending and stops the ticker (shutdown). */
    async settle (): Promise<void> {
      clearInterval(ticker)
      touch()
      await Promise.all([writing, touching])
    }
  }
}

export type PresenceTracker = ReturnType<typeof createPresenceTracker>
