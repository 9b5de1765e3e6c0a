// Stored data frames (CONTRACT §4, §6): idempotent storage per (robot, frame
// id) and the keyset-paginated history.
import { Op } from 'sequelize'
import type { Database } from '../db/index.js'
import type { Frame } from '../db/models/index.js'
import type { AccessService, UserPrincipal } from './access.js'
import { decodeCursor, olderThan, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'

export interface NewFrame {
  frameId: string
  type: number
  data: Record<string, unknown>
  recordedAt: Date | null
  receivedAt?: Date
}

export interface FrameView {
  frame_id: string
  type: number
  data: Record<string, unknown>
  recorded_at: string | null
  received_at: string
}

export interface FrameQuery extends PageRequest { type?: number, from?: Date, to?: Date }

function view (row: Frame): FrameView {
  return {
    frame_id: row.frameId,
    type: row.type,
    data: row.data,
    recorded_at: row.recordedAt === null ? null : row.recordedAt.toISOString(),
    received_at: row.receivedAt.toISOString()
  }
}

export function createFrameService ({ db, access }: { db: Database, access: AccessService }) {
  const { Frame } = db.models

  return {
    /** Stores frames of one robot; a frame id already stored is skipped (ON CONFLICT DO NOTHING). */
    async store (robotId: number, frames: NewFrame[]): Promise<void> {
      if (frames.length === 0) return
      const now = new Date()
      await Frame.bulkCreate(frames.map((f) => ({
        robotId,
        frameId: f.frameId,
        type: f.type,
        data: f.data,
        recordedAt: f.recordedAt,
        receivedAt: f.receivedAt ?? now
      })), { ignoreDuplicates: true, returning: false, validate: false })
    },

    /** Newest first by time received; `from`/`to` bound received_at (inclusive). */
    async list (principal: UserPrincipal, robotUuid: string, query: FrameQuery = {}): Promise<Page<FrameView>> {
      const robot = await access.robotFor(principal, robotUuid)
      const limit = pageLimit(query.limit)
      const where: Record<string | symbol, unknown>[] = [{ robotId: robot.id }]
      if (query.type !== undefined) where.push({ type: query.type })
      if (query.from !== undefined) where.push({ receivedAt: { [Op.gte]: query.from } })
      if (query.to !== undefined) where.push({ receivedAt: { [Op.lte]: query.to } })
      if (query.cursor !== undefined) {
        const [at, frameId] = decodeCursor(query.cursor, ['date', 'string']) as [string, string]
        where.push(...olderThan('receivedAt', new Date(at), 'frameId', frameId))
      }
      const rows = await Frame.findAll({ where: { [Op.and]: where }, order: [['receivedAt', 'DESC'], ['frameId', 'DESC']], limit: limit + 1 })
      return toPage(rows, limit, view, (row) => [row.receivedAt.toISOString(), row.frameId])
    }
  }
}

export type FrameService = ReturnType<typeof createFrameService>
