// Commands (docs/protocol.md §5, §5.3, §14.3) on the broker side: publish what
// the REST endpoint stored or the robot's queue released (a model command
// with its params), mark it delivered on the robot's PUBACK, and done/failed
// on the robot's own acknowledgement (with a model command's result).
import type { FastifyBaseLogger } from 'fastify'
import { parseCommandAck } from '../src/contract/messages.js'
import { parseTopic, robotTopic } from '../src/contract/topics.js'
import type { CommandIssued } from '../src/events.js'
import type { Services } from '../src/services/index.js'
import type { RobotPrincipal } from './principal.js'

function commandId (payload: Buffer | string | undefined): string | null {
  try {
    const id = (JSON.parse(String(payload)) as { id?: unknown }).id
    return typeof id === 'string' ? id : null
  } catch {
    return null
  }
}

export interface CommandDeps {
  services: Services
  publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void
  log: FastifyBaseLogger
}

export function createCommandRelay ({ services, publish, log }: CommandDeps) {
  const pending = new Set<Promise<void>>()
  /** The last ack being recorded, per robot. */
  const lastAck = new Map<string, Promise<void>>()
  const off = services.events.on('commandIssued', (c: CommandIssued) => {
    // A model command carries its checked params (docs/protocol.md §14.3); a mode has none.
    const message: Record<string, unknown> = { id: c.id, command: c.command, issued_by: c.issuedBy, issued_at: c.issuedAt }
    if (c.params !== undefined) message.params = c.params
    publish(robotTopic(c.robotUuid, 'commands'), message, { retain: false, qos: 1 })
  })

  return {
    /** The robot PUBACKed a packet we sent it: a command is now delivered. */
    delivered (robot: RobotPrincipal, topic: string, payload: Buffer | string | undefined): void {
      const t = parseTopic(topic)
      if (t === null || t.channel !== 'commands' || t.uuid !== robot.uuid) return
      const id = commandId(payload)
      if (id === null) return
      services.commands.markDelivered(id, robot.uuid).catch((err: unknown) => { log.warn({ err, command: id }, 'could not mark command delivered') })
    },

    /** The robot published on its commands/ack topic. */
    acknowledged (robot: RobotPrincipal, payload: Buffer): void {
      const ack = parseCommandAck(payload)
      if (ack === null) {
        log.info({ robot: robot.uuid }, 'ignored a malformed command ack')
        return
      }
      // One robot's acks are recorded one after the other, in the order it
      // sent them: two acks in a row (a released queue) on two database
      // connections could commit the other way round, and the robot's state
      // would end as the older command.
      const previous = lastAck.get(robot.uuid) ?? Promise.resolve()
      const recording: Promise<void> = previous
        .then(async () => await services.commands.acknowledge(robot.uuid, ack.id, ack.status === 'ok', ack.message, { result: ack.result }))
        .then((status) => { if (status === null) log.info({ robot: robot.uuid, command: ack.id }, 'ignored an ack for no open command') })
        .catch((err: unknown) => { log.warn({ err, robot: robot.uuid, command: ack.id }, 'could not record command ack') })
        .finally(() => {
          pending.delete(recording)
          if (lastAck.get(robot.uuid) === recording) lastAck.delete(robot.uuid)
        })
      lastAck.set(robot.uuid, recording)
      pending.add(recording)
    },

    /** The robot became command-connected: publish its queued commands (docs/protocol.md §5.3). */
    release (robotUuid: string): void {
      const releasing = services.commands.releaseQueued(robotUuid)
        .then((n) => { if (n > 0) log.info({ robot: robotUuid, commands: n }, 'released queued commands') })
        .catch((err: unknown) => { log.warn({ err, robot: robotUuid }, 'could not release queued commands; they go out on its next subscription') })
        .finally(() => { pending.delete(releasing) })
      pending.add(releasing)
    },

    /** Waits for the command acks being recorded (at shutdown, before the database closes). */
    async settle (): Promise<void> {
      await Promise.all([...pending])
    },

    close (): void {
      off()
    }
  }
}
