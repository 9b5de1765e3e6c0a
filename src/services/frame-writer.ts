// Frames from every robot, written in batches: one INSERT per batch, one
// batch at a time, each frame's promise settled only after its batch commits
// (CONTRACT §4: "ok only after the frame is committed"). A frame id already
// stored for that robot is skipped by the database (idempotent resends).
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/index.js'

export interface QueuedFrame {
  robotId: number
  frameId: string
  type: number
  data: Record<string, unknown>
  recordedAt: Date | null
  receivedAt: Date
}

interface Pending { row: QueuedFrame, resolve: () => void, reject: (err: unknown) => void }

export function createFrameWriter ({ db, log, maxBatch = 500 }: { db: Database, log: FastifyBaseLogger, maxBatch?: number }) {
  const { Frame } = db.models
  let queue: Pending[] = []
  let running: Promise<void> | null = null
  let scheduled = false

  async function writeBatch (batch: Pending[]): Promise<void> {
    try {
      await Frame.bulkCreate(batch.map((p) => p.row), { ignoreDuplicates: true, returning: false, validate: false, hooks: false })
    } catch (err) {
      log.warn({ err, frames: batch.length }, 'frame batch failed')
      for (const p of batch) p.reject(err)
      return
    }
    for (const p of batch) p.resolve()
  }

  async function drain (): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch)
      queue = queue.slice(batch.length)
      await writeBatch(batch)
    }
  }

  function kick (): void {
    if (running !== null || scheduled) return
    scheduled = true
    // Let the frames of this tick join the batch before writing.
    setImmediate(() => {
      scheduled = false
      running = drain().finally(() => { running = null; if (queue.length > 0) kick() })
    })
  }

  return {
    /** Resolves once the frame is committed; rejects when its batch failed (the robot may resend). */
    write (row: QueuedFrame): Promise<void> {
      return new Promise((resolve, reject) => {
        queue.push({ row, resolve, reject })
        kick()
      })
    },

    get depth (): number {
      return queue.length
    },

    /** Writes everything queued so far. */
    async flush (): Promise<void> {
      while (queue.length > 0 || running !== null || scheduled) {
        if (running !== null) await running
        else await drain()
      }
    }
  }
}

export type FrameWriter = ReturnType<typeof createFrameWriter>
