// Stored data frames (CONTRACT §4, §6, §11): idempotent storage per (robot,
// frame id), the keyset-paginated history and aggregates over time buckets.
import { Op, QueryTypes } from 'sequelize'
import { NUMERIC_FIELDS } from '../contract/frames.js'
import { dateParam, rawDate, type Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { Frame } from '../db/models/index.js'
import type { AccessService, UserPrincipal } from './access.js'
import { decodeCursor, olderThan, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'
import { epochOf, fieldValue, type RollupService } from './rollups.js'

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

export interface ExportQuery { type?: number, from?: Date, to?: Date, format: 'ndjson' | 'csv' }

/**
 * Rows per query of an export. Fewer rows alive at a time keep V8's young
 * generation from growing to its 64 MiB (npm start's --max-semi-space-size):
 * on PostgreSQL, 1,000,000 frames at 2,000 rows a query grew United's RSS by
 * 71.5 MiB, at 1,000 by 45.5 MiB, at 500 by 23.2 MiB (243k, 240k and 220k
 * frames/s; npm run bench -- --scenarios history-export).
 */
export const EXPORT_BATCH = 1000
/** Lines per piece written to the response (~25 KB of text). */
export const EXPORT_PIECE = 100

/** A timestamptz column as ISO 8601 text with milliseconds, as Date#toISOString writes it. */
const PG_ISO = (column: string): string => `to_char(frames.${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * An instant as SQLite holds it (sqliteDate's `YYYY-MM-DD HH:MM:SS.SSS +00:00`)
 * in ISO 8601, by slicing when it has that form, else through a Date.
 */
function sqliteIso (v: unknown): string | null {
  if (v === null || v === undefined) return null
  const s = String(v)
  if (s.length === 30 && s.endsWith(' +00:00') && s[10] === ' ') return `${s.slice(0, 10)}T${s.slice(11, 23)}Z`
  return rawDate(s).toISOString()
}

/**
 * One CSV cell: quoted when it holds a comma, a quote or a line break (RFC
 * 4180, quotes doubled). A text cell that a spreadsheet would run as a
 * formula (=, +, -, @, tab, CR first) gets a leading apostrophe: frame ids
 * are the robot's free text.
 */
export function csvCell (value: string, text = false): string {
  const safe = text && /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}

/** Frames one retention DELETE removes at most: a short statement, so that the frame writer never waits long for it. */
export const RETENTION_PIECE = 2000

/** CONTRACT §11: at most this many buckets in one answer. */
export const MAX_BUCKETS = 10000

/**
 * One GROUP BY in the database, read through the (robot_id, received_at)
 * index: bucket numbers from epoch seconds (integer division, so buckets
 * start at multiples of `bucket` since the epoch), and min/max/avg of each
 * numeric field of the type. Field names come from NUMERIC_FIELDS, never from
 * the request. Frames are never loaded into Node.
 *
 * With `rollups`, the whole minutes [$6, $7) (epoch minutes) come from the
 * per-minute rollups (services/rollups.ts) and only the frames before $8 and
 * from $9 on are read: each part gives per bucket the count, and per field
 * how many frames had it, min, max and sum, and the outer GROUP BY combines
 * them (avg = sum / count). Used only when buckets are whole minutes.
 */
function aggregateSql (dialect: Database['dialect'], type: number, rollups: boolean): string {
  const fields = NUMERIC_FIELDS[type] as readonly string[]
  const bucketOf = dialect === 'postgres' ? `floor(${epochOf(dialect)} / $2)::bigint` : `${epochOf(dialect)} / $2`
  const where = 'f.robot_id = $1 AND f.type = $5'
  if (!rollups) {
    const columns = fields.flatMap((f, i) => [`min(${fieldValue(dialect, f)}) AS min${i}`, `max(${fieldValue(dialect, f)}) AS max${i}`, `avg(${fieldValue(dialect, f)}) AS avg${i}`]).join(', ')
    return `SELECT ${bucketOf} AS b, count(*) AS n, ${columns}
FROM frames f WHERE ${where} AND f.received_at >= $3 AND f.received_at <= $4
GROUP BY b ORDER BY b`
  }
  const partColumns = fields.map((f, i) => `count(${fieldValue(dialect, f)}) AS c${i}, min(${fieldValue(dialect, f)}) AS lo${i}, max(${fieldValue(dialect, f)}) AS hi${i}, sum(${fieldValue(dialect, f)}) AS s${i}`).join(', ')
  const frames = (range: string): string => `SELECT ${bucketOf} AS b, count(*) AS n, ${partColumns} FROM frames f WHERE ${where} AND ${range} GROUP BY 1`
  const rolledBucket = dialect === 'postgres' ? 'floor(r.minute * 60 / $2)::bigint' : '(r.minute * 60) / $2'
  const rolled = `SELECT ${rolledBucket} AS b, sum(r.n) AS n, ${fields.map((_, i) => `sum(r.c${i}) AS c${i}, min(r.lo${i}) AS lo${i}, max(r.hi${i}) AS hi${i}, sum(r.s${i}) AS s${i}`).join(', ')}
  FROM frame_rollups r WHERE r.robot_id = $1 AND r.type = $5 AND r.minute >= $6 AND r.minute < $7 GROUP BY 1`
  const real = dialect === 'postgres' ? 'float8' : 'REAL'
  const columns = fields.map((_, i) => `min(lo${i}) AS min${i}, max(hi${i}) AS max${i}, CAST(sum(s${i}) AS ${real}) / nullif(sum(c${i}), 0) AS avg${i}`).join(', ')
  return `SELECT b, sum(n) AS n, ${columns} FROM (
  ${frames('f.received_at >= $3 AND f.received_at < $8')}
  UNION ALL ${frames('f.received_at >= $9 AND f.received_at <= $4')}
  UNION ALL ${rolled}
) parts GROUP BY b ORDER BY b`
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

export function createFrameService ({ db, access, rollups }: { db: Database, access: AccessService, rollups: RollupService }) {
  const { Frame } = db.models

  return {
    /**
     * Stores frames of one robot; a frame id already stored is skipped (ON
     * CONFLICT DO NOTHING). Frames received long ago have their minutes
     * rolled up again before this resolves.
     */
    async store (robotId: number, frames: NewFrame[]): Promise<void> {
      if (frames.length === 0) return
      const now = new Date()
      const rows = frames.map((f) => ({
        robotId,
        frameId: f.frameId,
        type: f.type,
        data: f.data,
        recordedAt: f.recordedAt,
        receivedAt: f.receivedAt ?? now
      }))
      await Frame.bulkCreate(rows, { ignoreDuplicates: true, returning: false, validate: false })
      await rollups.afterCommit(rows)
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
      // Whole minutes of the range that the rollups answer for, when buckets are whole minutes.
      const window = bucket % 60 === 0 ? await rollups.window() : null
      const first = window === null ? 0 : Math.max(Math.ceil(from.getTime() / 60_000), window.from)
      const end = window === null ? 0 : Math.min(Math.floor((to.getTime() + 1) / 60_000), window.until)
      const rolled = window !== null && end > first
      const bind: unknown[] = [robot.id, bucket, dateParam(db.dialect, from), dateParam(db.dialect, to), type]
      if (rolled) bind.push(first, end, dateParam(db.dialect, new Date(first * 60_000)), dateParam(db.dialect, new Date(end * 60_000)))
      const rows = await db.sequelize.query(aggregateSql(db.dialect, type, rolled), { type: QueryTypes.SELECT, bind }) as Array<Record<string, unknown>>
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
    },

    /**
     * CONTRACT §11, retention: deletes every frame received before `cutoff`,
     * robot by robot, in pieces of at most RETENTION_PIECE rows chosen through
     * the (robot_id, received_at) index and deleted by primary key, each its
     * own short statement followed by a pause as long as it took. No long
     * lock, no long transaction, half of the database's time at most: the
     * frame writer's INSERTs interleave (on SQLite, whose writes take turns,
     * each waits for one piece at most).
     * Safe to run on several nodes at once. Resolves with how many it removed.
     */
    async removeOlderThan (cutoff: Date, opts: { piece?: number, stop?: () => boolean } = {}): Promise<number> {
      const piece = opts.piece ?? RETENTION_PIECE
      const before = dateParam(db.dialect, cutoff)
      // Robot by robot from the robots table: frames have no index on received_at alone (SELECT DISTINCT would read them all).
      const robots = await db.sequelize.query('SELECT id AS robot_id FROM robots ORDER BY id', { type: QueryTypes.SELECT }) as Array<{ robot_id: number }>
      const sql = `DELETE FROM frames WHERE robot_id = $1 AND frame_id IN (SELECT frame_id FROM frames WHERE robot_id = $1 AND received_at < $2 ORDER BY received_at LIMIT ${piece})`
      const robotIds = robots.map((r) => r.robot_id)
      await rollups.trim(cutoff, robotIds) // aggregates stop reading the rollups of what goes
      let removed = 0
      for (const { robot_id: robotId } of robots) {
        for (;;) {
          if (opts.stop?.() === true) return removed
          const started = performance.now()
          const n = Number(await db.sequelize.query(sql, { type: QueryTypes.BULKDELETE, bind: [robotId, before] }))
          removed += n
          // as long a pause as the piece took: the sweep takes half of the database's time at most
          const took = performance.now() - started
          await new Promise<void>((resolve) => { if (took >= 1) setTimeout(resolve, took); else setImmediate(resolve) })
          if (n < piece) break
        }
      }
      await rollups.trim(cutoff, robotIds) // and what a roll made meanwhile
      return removed
    },

    /**
     * CONTRACT §11: every frame in the range, oldest first, as NDJSON lines or
     * CSV rows, in queries of EXPORT_BATCH frames. Checks access first (so that
     * a 404 comes before any byte), then returns the pieces to stream.
     *
     * Each piece is one keyset query on (robot_id, received_at, frame_id), not
     * a cursor: a cursor holds its transaction, and on PostgreSQL its
     * snapshot, for as long as the slowest client reads (retention's deletes
     * could not be reclaimed meanwhile; on SQLite a WAL checkpoint could not
     * finish). Between pieces nothing is held, and a piece is read only when
     * the response has taken the previous one, so memory stays flat however
     * long the range. NDJSON takes the stored JSON text as it is (PostgreSQL's
     * `data::text`, SQLite's text), CSV the fields one by one: no frame's data
     * is parsed in Node.
     */
    async export (principal: UserPrincipal, robotUuid: string, query: ExportQuery): Promise<AsyncGenerator<string>> {
      const robot = await access.robotFor(principal, robotUuid)
      const pg = db.dialect === 'postgres'
      const fields = query.type === undefined ? [] : NUMERIC_FIELDS[query.type] as readonly string[]
      const fieldColumns = query.format === 'csv'
        ? fields.map((f, i) => `, ${fieldValue(db.dialect, f, 'frames', true)} AS f${i}`).join('')
        : pg ? ', data::text AS data' : ', data'
      // The instants as ISO 8601 text, made by the database on PostgreSQL
      // (no Date per row in Node: a third of the export's CPU went there).
      const times = pg ? `${PG_ISO('recorded_at')} AS recorded_at, ${PG_ISO('received_at')} AS received_at` : 'recorded_at, received_at'
      const bounds: string[] = ['robot_id = $1']
      const bind: unknown[] = [robot.id]
      if (query.type !== undefined) { bind.push(query.type); bounds.push(`type = $${bind.length}`) }
      if (query.from !== undefined) { bind.push(dateParam(db.dialect, query.from)); bounds.push(`received_at >= $${bind.length}`) }
      if (query.to !== undefined) { bind.push(dateParam(db.dialect, query.to)); bounds.push(`received_at <= $${bind.length}`) }
      const n = bind.length
      const after = pg ? `$${n + 1}::timestamptz` : `$${n + 1}`
      const first = `SELECT frame_id, type, ${times}${fieldColumns} FROM frames WHERE ${bounds.join(' AND ')} ORDER BY frames.received_at, frame_id LIMIT ${EXPORT_BATCH}`
      // after the last row (at, id): `at >=` bounds the index scan, the OR skips what was read
      const next = `SELECT frame_id, type, ${times}${fieldColumns} FROM frames WHERE ${bounds.join(' AND ')} AND frames.received_at >= ${after} AND (frames.received_at > ${after} OR frame_id > $${n + 2}) ORDER BY frames.received_at, frame_id LIMIT ${EXPORT_BATCH}`
      const iso = pg ? (v: unknown): string | null => v as string | null : sqliteIso
      const line = query.format === 'csv'
        ? (r: Record<string, unknown>): string => [csvCell(String(r.frame_id), true), String(r.type), iso(r.recorded_at) ?? '', iso(r.received_at) ?? '', ...fields.map((_, i) => { const v = r[`f${i}`]; return v === null || v === undefined ? '' : String(v) })].join(',') + '\r\n'
        : (r: Record<string, unknown>): string => `{"frame_id":${JSON.stringify(r.frame_id)},"type":${Number(r.type)},"data":${String(r.data)},"recorded_at":${JSON.stringify(iso(r.recorded_at))},"received_at":${JSON.stringify(iso(r.received_at))}}\n`

      async function * pieces (): AsyncGenerator<string> {
        if (query.format === 'csv') yield ['frame_id', 'type', 'recorded_at', 'received_at', ...fields].join(',') + '\r\n'
        let cursor: [unknown, unknown] | null = null
        for (;;) {
          const rows = await db.sequelize.query(cursor === null ? first : next, { type: QueryTypes.SELECT, bind: cursor === null ? bind : [...bind, ...cursor] }) as Array<Record<string, unknown>>
          if (rows.length === 0) return
          // Written EXPORT_PIECE lines at a time: short strings die young,
          // where a whole batch's half megabyte waited for a full collection.
          for (let i = 0; i < rows.length; i += EXPORT_PIECE) {
            let text = ''
            for (const r of rows.slice(i, i + EXPORT_PIECE)) text += line(r)
            yield text
          }
          if (rows.length < EXPORT_BATCH) return
          const last = rows[rows.length - 1] as Record<string, unknown>
          cursor = [last.received_at, last.frame_id]
        }
      }
      return pieces()
    }
  }
}

export type FrameService = ReturnType<typeof createFrameService>
