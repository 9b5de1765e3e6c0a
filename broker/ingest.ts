// Data frames (CONTRACT §4), as a pipeline of small steps: size → parse →
// validate → store (batched, idempotent) → ack → stats. Cheap checks come
// before side effects; the `ok` ack goes out only after the commit. A robot's
// mistake costs it an error ack and nothing else.
import type { FastifyBaseLogger } from 'fastify'
import { validateFrame } from '../src/contract/frames.js'
import { robotTopic } from '../src/contract/topics.js'
import type { Services } from '../src/services/index.js'
import type { RobotPrincipal } from './principal.js'

export type Ack =
  | { id: string, status: 'ok' }
  | { id: string | null, status: 'error', errors: string[], retry?: true }

export interface IngestDeps {
  services: Services
  publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void
  onStored: (robot: RobotPrincipal, data: Record<string, unknown>) => void
  maxFrameBytes: number
  log: FastifyBaseLogger
}

export function createIngest ({ services, publish, onStored, maxFrameBytes, log }: IngestDeps) {
  const ack = (robot: RobotPrincipal, body: Ack): void => { publish(robotTopic(robot.uuid, 'ack'), body, { retain: false, qos: 1 }) }
  let inFlight = 0

  return {
    frame (robot: RobotPrincipal, payload: Buffer): void {
      const result = validateFrame(payload, maxFrameBytes)
      if (!result.ok) {
        ack(robot, { id: result.id, status: 'error', errors: result.errors })
        return
      }
      const { frame } = result
      inFlight++
      services.frameWriter.write({
        robotId: robot.id,
        frameId: frame.id,
        type: frame.type,
        data: frame.data,
        recordedAt: frame.recordedAt,
        receivedAt: new Date()
      }).then(() => {
        ack(robot, { id: frame.id, status: 'ok' })
        onStored(robot, frame.data)
      }, (err: unknown) => {
        log.warn({ err, robot: robot.uuid, frame: frame.id }, 'frame not stored; the robot may resend it')
        ack(robot, { id: frame.id, status: 'error', errors: ['the frame could not be stored; resend it'], retry: true })
      }).finally(() => { inFlight-- })
    },

    /** Frames received but not yet acknowledged. */
    get inFlight (): number {
      return inFlight
    }
  }
}

export type Ingest = ReturnType<typeof createIngest>
