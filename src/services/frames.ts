// Stored data frames (CONTRACT §4, §6, §11): idempotent storage per (robot,
// frame id), the keyset-paginated history and aggregates over time buckets.
import { Op, QueryTypes } from 'sequelize'
import { NUMERIC_FIELDS } from '../contract/frames.js'
import { sqliteDate, type Database } from '../db/index.js'
import { Errors } from '../errors.js'
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

export interface AggregateQuery { type: number, from: Date, to: Date, bucket: number }
export interface AggregateBucket { start: string, count: number, min: Record<string, number>, max: Record<string, number>, avg: Record<string, number> }
export interface AggregateView { type: number, bucket: number, from: string, to: string, items: AggregateBucket[] }

/** CONTRACT §11: at most this many buckets in one answer. */
export const MAX_BUCKETS = 10000

/**
 * One GROUP BY in the database, read through the (robot_id, received_at)
 * index: bucket numbers from epoch seconds (integer division, so buckets
 * start at multiples of `bucket` since the epoch), and min/max/avg of each
 * numeric field of the type. Field names come from NUMERIC_FIELDS, never from
 * the request. Frames are never loaded into Node.
 */
function aggregateSql (dialect: Database['dialect'], type: number): string {
  const fields = NUMERIC_FIELDS[type] as readonly string[]
  const value = (f: string): string => dialect === 'postgres' ? `(data->>'${f}')::float8` : `json_extract(data, '$.${f}')`
  const columns = fields.flatMap((f, i) => [`min(${value(f)}) AS min${i}`, `max(${value(f)}) AS max${i}`, `avg(${value(f)}) AS avg${i}`]).join(', ')
  const bucketOf = dialect === 'postgres'
    ? 'floor(extract(epoch FROM received_at) / $2)::bigint'
    : "CAST(strftime('%s', substr(received_at, 1, 19)) AS INTEGER) / $2"
  return `SELECT ${bucketOf} AS b, count(*) AS n, ${columns}
FROM frames WHERE robot_id = $1 AND received_at >= $3 AND received_at <= $4 AND type = $5
GROUP BY b ORDER BY b`
}

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
    },

    /** CONTRACT §11: buckets with frames, oldest first; `from`/`to` bound received_at (inclusive). */
    async aggregate (principal: UserPrincipal, robotUuid: string, query: AggregateQuery): Promise<AggregateView> {
      const { type, from, to, bucket } = query
      if (from.getTime() > to.getTime()) throw new Errors.BAD_REQUEST('from must not be after to')
      const seconds = bucket * 1000
      const buckets = Math.floor(to.getTime() / seconds) - Math.floor(from.getTime() / seconds) + 1
      if (buckets > MAX_BUCKETS) throw new Errors.BAD_REQUEST(`the range holds ${buckets} buckets of ${bucket} s, more than ${MAX_BUCKETS}: use a larger bucket or a shorter range`)
      const robot = await access.robotFor(principal, robotUuid)
      const pg = db.dialect === 'postgres'
      const rows = await db.sequelize.query(aggregateSql(db.dialect, type), {
        type: QueryTypes.SELECT,
        bind: [robot.id, bucket, pg ? from : sqliteDate(from), pg ? to : sqliteDate(to), type]
      }) as Array<Record<string, unknown>>
      const fields = NUMERIC_FIELDS[type] as readonly string[]
      const items = rows.map((row) => {
        const item: AggregateBucket = { start: new Date(Number(row.b) * seconds).toISOString(), count: Number(row.n), min: {}, max: {}, avg: {} }
        fields.forEach((f, i) => {
          for (const stat of ['min', 'max', 'avg'] as const) {
            const v = row[`${stat}${i}`]
            if (v !== null && v !== undefined) item[stat][f] = Number(v)
          }
        })
        return item
      })
      return { type, bucket, from: from.toISOString(), to: to.toISOString(), items }
    }
  }
}

export type FrameService = ReturnType<typeof createFrameService>
