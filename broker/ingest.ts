// Data frames (docs/protocol.md §4), as a pipeline of small steps: size → parse →
// validate → store (batched, idempotent) → ack → stats. Cheap checks come
// before side effects; the `ok` ack goes out only after the commit. A robot's
// mistake costs it an error ack and nothing else.
import type { FastifyBaseLogger } from 'fastify'
import { validateFrame } from '../src/contract/frames.js'
import type { CompiledModel } from '../src/contract/models.js'
import { FRAME_TYPES } from '../src/contract/payloads.js'
import type { Metrics } from '../src/metrics.js'
import type { Services } from '../src/services/index.js'
import type { RobotPrincipal } from './principal.js'

export type Ack =
  | { id: string, status: 'ok' }
  | { id: string | null, status: 'error', errors: string[], retry?: true }

export interface IngestDeps {
  services: Services
  /** publishes a serialized ack on robots/{uuid}/ack (QoS 1) */
  sendAck: (uuid: string, payload: Buffer) => void
  /** `model`: what a type-4 frame was checked with (undefined for types 1–3). */
  onStored: (robot: RobotPrincipal, data: Record<string, unknown>, model?: CompiledModel) => void
  /** The robot's compiled model on this node (broker/robot-models.ts): no database read per frame. */
  modelOf: (uuid: string) => CompiledModel | null
  maxFrameBytes: number
  metrics: Metrics
  log: FastifyBaseLogger
}

export function createIngest ({ services, sendAck, onStored, modelOf, maxFrameBytes, metrics, log }: IngestDeps) {
  const ack = (robot: RobotPrincipal, body: Ack): void => { sendAck(robot.uuid, Buffer.from(JSON.stringify(body))) }
  // The ok ack, the one sent for nearly every frame: `{"id":…,"status":"ok"}`, as JSON.stringify writes it.
  const okAck = (robot: RobotPrincipal, id: string): void => { sendAck(robot.uuid, Buffer.from(`{"id":${JSON.stringify(id)},"status":"ok"}`)) }

  return {
    /**
     * Validates and queues one frame. Returns a promise when the storage queue
     * is full: the caller waits for it before reading more from that robot.
     */
    frame (robot: RobotPrincipal, payload: Buffer): Promise<void> | undefined {
      const received = performance.now()
      metrics.framesReceived.inc()
      const model = modelOf(robot.uuid)
      const result = validateFrame(payload, maxFrameBytes, model)
      if (!result.ok) {
        metrics.framesRejected.inc({ reason: 'invalid' })
        ack(robot, { id: result.id, status: 'error', errors: result.errors })
        return undefined
      }
      const { frame } = result
      const store = (admitted: boolean): void => {
        services.frameWriter.enqueue({
          robotId: robot.id,
          frameId: frame.id,
          type: frame.type,
          data: frame.data,
          recordedAt: frame.recordedAt,
          receivedAt: new Date(),
          text: frame.text
        }, admitted, (ok) => {
          if (ok) {
            okAck(robot, frame.id)
            metrics.framesStored.inc()
            metrics.ackSeconds.observe((performance.now() - received) / 1e3)
            onStored(robot, frame.data, frame.type === FRAME_TYPES.telemetry && model !== null ? model : undefined)
            return
          }
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
