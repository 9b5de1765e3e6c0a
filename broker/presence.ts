// Which robots are connected and how (docs/protocol.md §3.3): data-connected while it
// has an open connection, command-connected while one of them subscribes to
// its commands topic. Every change is republished, retained, on
// robots/{uuid}/presence and written to the robot's row.
//
// In cluster mode (docs/protocol.md §11) this node's connections are one part of the
// robot's presence: each change is reported to the cluster
// (src/cluster/presence.ts), and what is published and written is the sum
// over every node. A robot's reports leave one after the other, in the order
// of its changes. Two nodes may publish their sums in the other order than
// Redis computed them, so a node looks again RECHECK_MS after its last
// report and publishes the sum once more if it moved. While Redis cannot be
// reached the node publishes what it sees itself, and reports everything
// again when Redis is back.
import type { Client } from 'aedes'
import type { FastifyBaseLogger } from 'fastify'
import { robotTopic } from '../src/contract/topics.js'
import type { ClusterPresenceState } from '../src/cluster/index.js'
import type { Services } from '../src/services/index.js'
import type { RobotPrincipal } from './principal.js'

const NONE: ReadonlySet<Client> = new Set()

/** After a node's last report of a robot, how long until it looks at the cluster's sum again. */
export const RECHECK_MS = 500

/** The cluster's presence, seen from this node. */
export interface ClusterPresencePort {
  nodeId: string
  report: (node: string, uuid: string, counts: { data: number, command: number }) => Promise<ClusterPresenceState>
  get: (uuid: string) => Promise<ClusterPresenceState>
}

interface Live { clients: Set<Client>, command: Set<Client>, online: boolean, since: Date }

export interface PresenceDeps {
  services: Services
  publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void
  onChange: (uuid: string, flags: { data_connected: boolean, command_connected: boolean }) => void
  /** The robot has just become command-connected (its first connection subscribed to its commands). */
  onCommandConnected: (uuid: string) => void
  log: FastifyBaseLogger
  cluster?: ClusterPresencePort
}

export function createPresenceTracker ({ services, publish, onChange, onCommandConnected, log, cluster }: PresenceDeps) {
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

  /** Publishes a robot's presence (retained), tells the statistics, and queues the row's update. */
  function announce (uuid: string, data: boolean, command: boolean, since: string): void {
    publish(robotTopic(uuid, 'presence'), { robot_uuid: uuid, online: data, data_connected: data, command_connected: command, since }, { retain: true, qos: 0 })
    onChange(uuid, { data_connected: data, command_connected: command })
    changes.set(uuid, { dataConnected: data, commandConnected: command })
    writing ??= writeChanges()
  }

  function changed (uuid: string, entry: Live): void {
    const data = entry.clients.size > 0
    const command = entry.command.size > 0
    if (data !== entry.online) {
      entry.online = data
      entry.since = new Date()
    }
    services.presence.set(uuid, { data: entry.clients.size, command: entry.command.size })
    if (cluster === undefined) announce(uuid, data, command, entry.since.toISOString())
    else report(uuid, entry)
    if (!data) robots.delete(uuid)
  }

  // ---- cluster mode ----
  /** Per robot: the report in flight (reports of one robot go in order), and what this node last announced. */
  const reporting = new Map<string, Promise<void>>()
  const announced = new Map<string, string>()
  const rechecks = new Map<string, NodeJS.Timeout>()
  let stopped = false
  const stateKey = (s: { data: boolean, command: boolean }): string => `${s.data ? 1 : 0}${s.command ? 1 : 0}`

  function announceSum (uuid: string, sum: ClusterPresenceState): void {
    const state = { data: sum.data > 0, command: sum.command > 0 }
    announced.set(uuid, stateKey(state))
    announce(uuid, state.data, state.command, sum.since)
  }

  /**
   * Reports this node's connections of a robot, as they are now, and
   * announces the cluster's sum; without Redis, what this node sees.
   */
  function report (uuid: string, entry: Live): void {
    const port = cluster as ClusterPresencePort
    const counts = { data: entry.clients.size, command: entry.command.size }
    const fallback = { data: counts.data > 0, command: counts.command > 0, since: entry.since.toISOString() }
    const previous = reporting.get(uuid) ?? Promise.resolve()
    const next: Promise<void> = previous
      .then(async () => { announceSum(uuid, await port.report(port.nodeId, uuid, counts)) })
      .catch((err: unknown) => {
        log.debug({ err: (err as Error).message, robot: uuid }, 'presence not shared: Redis unreachable')
        // What this node sees; everything is reported again when Redis is back.
        announce(uuid, fallback.data, fallback.command, fallback.since)
      })
      .finally(() => {
        if (reporting.get(uuid) === next) reporting.delete(uuid)
        scheduleRecheck(uuid)
      })
    reporting.set(uuid, next)
  }

  function scheduleRecheck (uuid: string): void {
    if (stopped) return
    clearTimeout(rechecks.get(uuid))
    const timer = setTimeout(() => {
      rechecks.delete(uuid)
      ;(cluster as ClusterPresencePort).get(uuid).then((sum) => {
        const key = stateKey({ data: sum.data > 0, command: sum.command > 0 })
        if (announced.get(uuid) !== key) announceSum(uuid, sum)
        if (sum.data === 0 && !robots.has(uuid)) announced.delete(uuid)
      }, () => {})
    }, RECHECK_MS)
    timer.unref()
    rechecks.set(uuid, timer)
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
    /** The robots this node holds connections of. */
    robotUuids (): string[] {
      return [...robots.keys()]
    },
    /** The open connections of a robot (to close them on revocation). */
    clientsOf (uuid: string): Client[] {
      return [...(robots.get(uuid)?.clients ?? [])]
    },
    /** The same, without a copy (the hot path; do not close them while iterating). */
    connections (uuid: string): Iterable<Client> {
      return robots.get(uuid)?.clients ?? NONE
    },
    /**
     * Cluster mode: a node is gone (or this node's previous process, under
     * the same NODE_ID): what it held of these robots is dropped, and each
     * robot's sum is announced again.
     */
    async release (node: string, uuids: string[]): Promise<void> {
      // Another node's counts (or this node's previous process'): nothing of
      // this node's own reports to keep in order with. A failure propagates,
      // so the reaper tries again rather than forget a node half released.
      const port = cluster as ClusterPresencePort
      for (const uuid of uuids) announceSum(uuid, await port.report(node, uuid, { data: 0, command: 0 }))
    },
    /** Cluster mode: Redis is back (perhaps empty): every robot this node holds is reported again. */
    reassert (): void {
      for (const [uuid, entry] of robots) report(uuid, entry)
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
      // No re-check may run after this: Redis closes right after the broker.
      stopped = true
      for (const timer of rechecks.values()) clearTimeout(timer)
      rechecks.clear()
      touch()
      await Promise.all([...reporting.values()])
      await Promise.all([writing, touching])
    }
  }
}

export type PresenceTracker = ReturnType<typeof createPresenceTracker>
