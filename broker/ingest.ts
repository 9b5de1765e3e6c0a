// Data frames (CONTRACT §4), as a pipeline of small steps: size → parse →
// validate → store (batched, idempotent) → ack → stats. Cheap checks come
// before side effects; the `ok` ack goes out only after the commit. A robot's
// mistake costs it an error ack and nothing else.
import type { FastifyBaseLogger } from 'fastify'
import { validateFrame } from '../src/contract/frames.js'
import { robotTopic } from '../src/contract/topics.js'
import type { Metrics } from '../src/metrics.js'
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
  metrics: Metrics
  log: FastifyBaseLogger
}

export function createIngest ({ services, publish, onStored, maxFrameBytes, metrics, log }: IngestDeps) {
  const ack = (robot: RobotPrincipal, body: Ack): void => { publish(robotTopic(robot.uuid, 'ack'), body, { retain: false, qos: 1 }) }

  return {
    /**
     * Validates and queues one frame. Returns a promise when the storage queue
     * is full: the caller waits for it before reading more from that robot.
     */
    frame (robot: RobotPrincipal, payload: Buffer): Promise<void> | undefined {
      const received = process.hrtime.bigint()
      metrics.framesReceived.inc()
      const result = validateFrame(payload, maxFrameBytes)
      if (!result.ok) {
        metrics.framesRejected.inc({ reason: 'invalid' })
        ack(robot, { id: result.id, status: 'error', errors: result.errors })
        return undefined
      }
      const { frame } = result
      const store = (admitted: boolean): void => {
        services.frameWriter.write({
          robotId: robot.id,
          frameId: frame.id,
          type: frame.type,
          data: frame.data,
          recordedAt: frame.recordedAt,
          receivedAt: new Date()
        }, admitted).then(() => {
          ack(robot, { id: frame.id, status: 'ok' })
          metrics.framesStored.inc()
          metrics.ackSeconds.observe(Number(process.hrtime.bigint() - received) / 1e9)
          onStored(robot, frame.data)
        }, () => {
          // The writer logged the failed batch once; each frame gets its retry ack.
          metrics.framesRejected.inc({ reason: 'storage' })
          ack(robot, { id: frame.id, status: 'error', errors: ['the frame could not be stored; resend it'], retry: true })
        })
      }
      if (services.frameWriter.hasRoom()) {
        store(false)
        return undefined
      }
      return services.frameWriter.room().then(() => { store(true) })
    }
  }
}

export type Ingest = ReturnType<typeof createIngest>
