// Stored data frames (docs/protocol.md §4, §6): idempotent storage per (robot,
// frame id), the keyset-paginated history, aggregates over time buckets and
// exports, with the bounds that keep one user's reads from stopping the
// fleet: a few aggregates and exports at once per user and per node, and an
// aggregate's cost estimated (and refused when too large) before it runs.
import { QueryTypes } from 'sequelize'
import { NUMERIC_FIELDS } from '../contract/frames.js'
import type { CompiledModel } from '../contract/models.js'
import { FRAME_TYPES } from '../contract/payloads.js'
import { dateParam, rawDate, type Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { AccessService, UserPrincipal } from './access.js'
import { csvNumber, csvText, csvTelemetry } from './csv.js'
import { createHistoryLimiter } from './history-limiter.js'
import { decodeCursor, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'
import type { ModelService } from './models.js'
import { epochOf, fieldValue, summable, telemetryValue, unflattened, type RollupService, type RollupWindow } from './rollups.js'

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

/**
 * An export whose response has taken no piece for this long is ended, and
 * its place among the history reads given back: a client that stops
 * reading would otherwise hold the place, the socket and the buffered
 * piece for as long as it keeps the connection open. 30 s is far longer
 * than any pause of a reader that is still reading (a piece is ~25 KB).
 */
export const EXPORT_STALL_MS = 30_000

/**
 * The frame types a stored frame can have (the broker stores no other). The
 * history index is (robot_id, type, received_at[, frame_id]) (migration
 * 010): a read of every type is one bounded range per type, merged.
 */
export const HISTORY_TYPES: readonly number[] = [...Object.keys(NUMERIC_FIELDS).map(Number), FRAME_TYPES.telemetry]

/** Defaults of HISTORY_CONCURRENCY, HISTORY_NODE_CONCURRENCY and AGGREGATE_MAX_ROWS. */
export const HISTORY_DEFAULTS = { perUser: 2, perNode: 8, maxRows: 1_000_000 } as const

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

/** Frames one retention DELETE removes at most: a short statement, so that the frame writer never waits long for it. */
export const RETENTION_PIECE = 2000

/** docs/protocol.md §6.4: at most this many buckets in one answer. */
export const MAX_BUCKETS = 10000

/**
 * One GROUP BY in the database, read through the (robot_id, type,
 * received_at) index: bucket numbers from epoch seconds (integer division, so buckets
 * start at multiples of `bucket` since the epoch), and min/max/avg of each
 * numeric field of the type (`fields`: NUMERIC_FIELDS' for types 1-3, the
 * robot's current model's number and integer fields for type 4, never names
 * from the request). Frames are never loaded into Node.
 *
 * With `rollups`, the whole minutes [$6, $7) (epoch minutes) come from the
 * per-minute rollups (services/rollups.ts) and only the frames before $8 and
 * from $9 on are read: each part gives per bucket the count, and per field
 * how many frames had it, min, max and sum, and the outer GROUP BY combines
 * them (avg = sum / count). Used only when buckets are whole minutes. For
 * type 4 this reads the edges' frames only (min, max, count and sum of each
 * field), and telemetryRollupsSql the whole minutes.
 */
function aggregateSql (dialect: Database['dialect'], type: number, fields: readonly string[], rollups: boolean): string {
  const telemetry = type === FRAME_TYPES.telemetry
  const valueOf = (f: string): string => telemetry ? telemetryValue(dialect, f) : fieldValue(dialect, f)
  const bucketOf = dialect === 'postgres' ? `floor(${epochOf(dialect)} / $2)::bigint` : `${epochOf(dialect)} / $2`
  const where = 'f.robot_id = $1 AND f.type = $5'
  const real = dialect === 'postgres' ? 'float8' : 'REAL'
  const each = (column: (f: string, i: number) => string): string => fields.map((f, i) => `, ${column(f, i)}`).join('')
  // Each field extracted once per frame (unflattened), then aggregated; sums
  // and averages over summable() values, which no sensor can overflow.
  const raw = (range: string): string => `SELECT ${bucketOf} AS b${each((f, i) => `${valueOf(f)} AS v${i}`)} FROM frames f WHERE ${where} AND ${range} ${unflattened(dialect)}`
  if (!rollups) {
    return `SELECT b, count(*) AS n${each((_, i) => `min(v${i}) AS min${i}, max(v${i}) AS max${i}, CAST(sum(${summable(`v${i}`)}) AS ${real}) / nullif(count(v${i}), 0) AS avg${i}`)}
FROM (${raw('f.received_at >= $3 AND f.received_at <= $4')}) x
GROUP BY b ORDER BY b`
  }
  const frames = (range: string): string => `SELECT b, count(*) AS n${each((_, i) => `count(v${i}) AS c${i}, min(v${i}) AS lo${i}, max(v${i}) AS hi${i}, sum(${summable(`v${i}`)}) AS s${i}`)} FROM (${raw(range)}) x GROUP BY 1`
  const rolledBucket = dialect === 'postgres' ? 'floor(r.minute * 60 / $2)::bigint' : '(r.minute * 60) / $2'
  const minutes = 'r.robot_id = $1 AND r.minute >= $6 AND r.minute < $7'
  // type 4 binds no minutes ($6, $7): its edges' instants are $6 and $7
  const [before, after] = telemetry ? ['$6', '$7'] : ['$8', '$9']
  const edges = `${frames(`f.received_at >= $3 AND f.received_at < ${before}`)}
  UNION ALL ${frames(`f.received_at >= ${after} AND f.received_at <= $4`)}`
  if (!telemetry) {
    return `SELECT b, sum(n) AS n${each((_, i) => `min(lo${i}) AS min${i}, max(hi${i}) AS max${i}, CAST(sum(s${i}) AS ${real}) / nullif(sum(c${i}), 0) AS avg${i}`)} FROM (
  ${edges}
  UNION ALL SELECT ${rolledBucket} AS b, sum(r.n) AS n${each((_, i) => `sum(r.c${i}) AS c${i}, min(r.lo${i}) AS lo${i}, max(r.hi${i}) AS hi${i}, sum(r.s${i}) AS s${i}`)}
  FROM frame_rollups r WHERE ${minutes} AND r.type = $5 GROUP BY 1
) parts GROUP BY b ORDER BY b`
  }
  // Type 4: the frames of the edges here; the rollups' counts and fields
  // from telemetryRollupsSql, added to them in Node (telemetryBuckets)
  return `SELECT b, sum(n) AS n${each((_, i) => `min(lo${i}) AS min${i}, max(hi${i}) AS max${i}, sum(c${i}) AS c${i}, sum(s${i}) AS s${i}`)} FROM (
  ${edges}
) parts GROUP BY b`
}

/**
 * Type 4's whole minutes [$4, $5) of robot $1 in buckets of $2 s: per bucket
 * the frame count (frame_rollups, type $3) and the rows of frame_field_rollups
 * of `fields` as one text, `field:c:lo:hi:s;…` (column j), short rows that
 * telemetryBuckets adds to the edges' frames. A column per field and stat,
 * pivoted in SQL with a CASE per field and row, took SQLite ~450 ms for a day
 * of 16 fields (the type-1 aggregate: ~35 ms), and the wide rows' GROUP BY
 * another ~150. The numbers are written exactly: PostgreSQL's float8 text
 * and SQLite's CAST AS TEXT round-trip (SQLite's JSON functions keep 15 digits).
 */
function telemetryRollupsSql (dialect: Database['dialect'], fields: readonly string[]): string {
  const bucketOf = dialect === 'postgres' ? 'floor(r.minute * 60 / $2)::bigint' : '(r.minute * 60) / $2'
  const minutes = 'r.robot_id = $1 AND r.minute >= $4 AND r.minute < $5'
  const text = dialect === 'postgres' ? 'CAST(NULL AS text)' : 'NULL'
  const parts = [`SELECT ${bucketOf} AS b, sum(r.n) AS n, ${text} AS j FROM frame_rollups r WHERE ${minutes} AND r.type = $3 GROUP BY 1`]
  if (fields.length > 0) {
    const cell = (column: string): string => dialect === 'postgres' ? `r.${column}::text` : `CAST(r.${column} AS TEXT)`
    const joined = `r.field || ':' || r.c || ':' || ${cell('lo')} || ':' || ${cell('hi')} || ':' || ${cell('s')}`
    // field names are a model's (FIELD_NAME_PATTERN), checked again: they are written into SQL
    const names = fields.map((f) => { telemetryValue(dialect, f); return `'${f}'` }).join(', ')
    parts.push(`SELECT ${bucketOf} AS b, 0 AS n, ${dialect === 'postgres' ? `string_agg(${joined}, ';')` : `group_concat(${joined}, ';')`} AS j
  FROM frame_field_rollups r WHERE ${minutes} AND r.field IN (${names}) GROUP BY 1`)
  }
  return `SELECT b, sum(n) AS n, max(j) AS j FROM (${parts.join(' UNION ALL ')}) parts GROUP BY b`
}

/**
 * Type 4's buckets from the rows of aggregateSql (the edges' frames: n and
 * min{i}, max{i}, c{i}, s{i} of field i) and of telemetryRollupsSql (n and
 * j), added up by bucket; oldest first.
 */
function telemetryBuckets (rows: Array<Record<string, unknown>>, fields: readonly string[], seconds: number): AggregateBucket[] {
  const index = new Map(fields.map((f, i) => [f, i]))
  const buckets = new Map<number, { n: number, c: number[], s: number[], lo: number[], hi: number[] }>()
  for (const row of rows) {
    const b = Number(row.b)
    let acc = buckets.get(b)
    if (acc === undefined) buckets.set(b, acc = { n: 0, c: fields.map(() => 0), s: fields.map(() => 0), lo: fields.map(() => Infinity), hi: fields.map(() => -Infinity) })
    const add = (i: number, count: number, min: number, max: number, sum: number): void => {
      if (!(count > 0)) return
      const a = acc as NonNullable<typeof acc>
      a.c[i] = (a.c[i] as number) + count
      a.s[i] = (a.s[i] as number) + sum
      a.lo[i] = Math.min(a.lo[i] as number, min)
      a.hi[i] = Math.max(a.hi[i] as number, max)
    }
    acc.n += Number(row.n ?? 0)
    if ('j' in row) {
      if (typeof row.j !== 'string' || row.j === '') continue
      for (const part of row.j.split(';')) {
        const [field, count, min, max, sum] = part.split(':')
        const i = index.get(field as string)
        if (i !== undefined) add(i, Number(count), Number(min), Number(max), Number(sum))
      }
    } else {
      fields.forEach((_, i) => { add(i, Number(row[`c${i}`] ?? 0), Number(row[`min${i}`]), Number(row[`max${i}`]), Number(row[`s${i}`] ?? 0)) })
    }
  }
  return [...buckets.entries()].sort(([a], [b]) => a - b).map(([b, acc]) => {
    const item: AggregateBucket = { start: new Date(b * seconds).toISOString(), count: acc.n, min: {}, max: {}, avg: {} }
    fields.forEach((f, i) => {
      const c = acc.c[i] as number
      if (c <= 0) return
      item.min[f] = acc.lo[i] as number
      item.max[f] = acc.hi[i] as number
      item.avg[f] = (acc.s[i] as number) / c
    })
    return item
  })
}

/** A history row as the database gives it (PostgreSQL: jsonb parsed, Dates; SQLite: text). */
interface FrameRow { frame_id: string, type: number | string, data: unknown, recorded_at: unknown, received_at: unknown }

function view (row: FrameRow): FrameView {
  return {
    frame_id: row.frame_id,
    type: Number(row.type),
    data: (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as Record<string, unknown>,
    recorded_at: row.recorded_at === null || row.recorded_at === undefined ? null : rawDate(row.recorded_at).toISOString(),
    received_at: rawDate(row.received_at).toISOString()
  }
}

/**
 * One ordered, limited read per frame type in `types`, merged: `part(type)`
 * is a SELECT with its own ORDER BY and LIMIT, an index range of (robot_id,
 * type, received_at). One type is its part alone; several are a UNION ALL
 * of them under the same ORDER BY and LIMIT (PostgreSQL: a Merge Append),
 * so the read costs at most the number of types times the rows it returns.
 * The outer ORDER BY names result columns, as SQLite's compound SELECT needs.
 */
function merged (types: readonly number[], part: (type: number) => string, order: string, limit: number): string {
  if (types.length === 1) return part(types[0] as number)
  return `${types.map((t) => `SELECT * FROM (${part(t)}) p${t}`).join(' UNION ALL ')} ORDER BY ${order} LIMIT ${limit}`
}

/** The types a read covers: the one asked for (none outside HISTORY_TYPES: it has no frames), or all. */
function typesOf (type: number | undefined): readonly number[] {
  if (type === undefined) return HISTORY_TYPES
  return HISTORY_TYPES.includes(type) ? [type] : []
}

export interface FrameServiceLimits {
  /** HISTORY_CONCURRENCY: aggregates and exports at once per user. */
  perUser: number
  /** HISTORY_NODE_CONCURRENCY: aggregates and exports at once on this node. */
  perNode: number
  /** AGGREGATE_MAX_ROWS: raw frames one aggregate may read. */
  maxRows: number
}

export function createFrameService ({ db, access, rollups, models, limits = HISTORY_DEFAULTS }: { db: Database, access: AccessService, rollups: RollupService, models: ModelService, limits?: FrameServiceLimits }) {
  const { Frame } = db.models
  const history = createHistoryLimiter(limits)
  const maxRows = limits.maxRows
  /** How long an export may wait for its reader (EXPORT_STALL_MS; tests shorten it). */
  const settings = { exportStallMs: EXPORT_STALL_MS }

  /**
   * docs/protocol.md §6.4, §10: refuses, before it runs, an aggregate that would read more
   * than `maxRows` raw frames. Its raw frames are every frame of the type in
   * [from, to] except, for a whole-minute bucket, the whole minutes that
   * the rollups answer for (`covered`). Counted from the rollups' per-minute
   * counts where they cover the range (one row per minute with frames, read
   * with a LIMIT: each counts one frame at least), and by a count of the
   * frames outside what they cover, stopped at the first frame over the
   * limit. Both are index ranges that end after `maxRows + 1` entries at
   * most, so the estimate costs a fraction of what it prevents.
   */
  async function checkCost (robotId: number, type: number, from: Date, to: Date, bucket: number, covered: { first: number, end: number } | null): Promise<void> {
    let rows = 0
    if (covered !== null && bucket % 60 !== 0) {
      const [sum] = await db.sequelize.query(`SELECT sum(n) AS n FROM (SELECT n FROM frame_rollups WHERE robot_id = $1 AND type = $2 AND minute >= $3 AND minute < $4 LIMIT ${maxRows + 1}) r`,
        { type: QueryTypes.SELECT, bind: [robotId, type, covered.first, covered.end] }) as Array<{ n: unknown }>
      rows = Number(sum?.n ?? 0)
    }
    if (rows <= maxRows) {
      const ranges: Array<[Date, Date, boolean]> = covered === null
        ? [[from, to, true]]
        : [[from, new Date(covered.first * 60_000), false], [new Date(covered.end * 60_000), to, true]]
      const bind: unknown[] = [robotId, type]
      const parts = ranges.filter(([lo, hi]) => lo.getTime() <= hi.getTime()).map(([lo, hi, inclusive]) => {
        bind.push(dateParam(db.dialect, lo), dateParam(db.dialect, hi))
        return `SELECT 1 AS one FROM frames WHERE robot_id = $1 AND type = $2 AND received_at >= $${bind.length - 1} AND received_at ${inclusive ? '<=' : '<'} $${bind.length}`
      })
      if (parts.length > 0) {
        const [count] = await db.sequelize.query(`SELECT count(*) AS n FROM (${parts.join(' UNION ALL ')} LIMIT ${maxRows - rows + 1}) f`, { type: QueryTypes.SELECT, bind }) as Array<{ n: unknown }>
        rows += Number(count?.n ?? 0)
      }
    }
    if (rows > maxRows) {
      throw new Errors.RANGE_TOO_LARGE(`the aggregate would read more than ${maxRows} stored frames (AGGREGATE_MAX_ROWS): use a shorter range, or a bucket that is a whole number of minutes (60, 120, 3600…), whose whole minutes are read from per-minute rollups`)
    }
  }

  /**
   * The robot's current model, compiled (docs/protocol.md §14): what type 4's
   * aggregates and CSV columns are made of. 404 UNITED_NO_MODEL without one.
   */
  async function currentModel (robotId: number): Promise<CompiledModel> {
    const [row] = await db.sequelize.query('SELECT model_name, model_version FROM robots WHERE id = $1', { type: QueryTypes.SELECT, bind: [robotId] }) as Array<{ model_name: string | null, model_version: number | string | null }>
    if (row === undefined || row.model_name === null || row.model_version === null) throw new Errors.NO_MODEL()
    return await models.compiled({ name: row.model_name, version: Number(row.model_version) })
  }

  /** The whole minutes of [from, to] that the rollups answer for, or null. */
  function coveredMinutes (from: Date, to: Date, window: RollupWindow | null): { first: number, end: number } | null {
    if (window === null) return null
    const first = Math.max(Math.ceil(from.getTime() / 60_000), window.from)
    const end = Math.min(Math.floor((to.getTime() + 1) / 60_000), window.until)
    return end > first ? { first, end } : null
  }

  /**
   * An export's pieces, holding its place among the history reads until
   * they end, fail, are returned (the client went away) or stall: when the
   * response has taken no piece for `exportStallMs`, the place is given
   * back and `onStall` ends the response (or, without it, the pieces end).
   * A piece being read from the database is not a stall.
   */
  function held (pieces: AsyncGenerator<string>, release: () => void, onStall?: () => void): AsyncIterableIterator<string> {
    const stallMs = settings.exportStallMs
    let idleSince: number | null = performance.now()
    let over = false
    let timer: NodeJS.Timeout | null = null
    const finish = (): void => {
      if (over) return
      over = true
      if (timer !== null) clearTimeout(timer)
      release()
    }
    const arm = (ms: number): void => {
      timer = setTimeout(check, ms)
      timer.unref()
    }
    function check (): void {
      if (over) return
      const idle = idleSince === null ? 0 : performance.now() - idleSince
      if (idle < stallMs) { arm(Math.max(1, stallMs - idle)); return }
      finish()
      if (onStall !== undefined) onStall()
      else void it.return(undefined)
    }
    arm(stallMs)
    const it: AsyncIterableIterator<string> & Required<Pick<AsyncIterator<string>, 'return' | 'throw'>> = {
      async next (): Promise<IteratorResult<string>> {
        idleSince = null
        try {
          const r = await pieces.next()
          if (r.done === true) finish()
          else idleSince = performance.now()
          return r
        } catch (err) {
          finish()
          throw err
        }
      },
      async return (value?: unknown): Promise<IteratorResult<string>> {
        try { return await pieces.return(value) } finally { finish() }
      },
      async throw (err?: unknown): Promise<IteratorResult<string>> {
        try { return await pieces.throw(err) } finally { finish() }
      },
      [Symbol.asyncIterator] () { return it }
    }
    return it
  }

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

    /**
     * Newest first by time received; `from`/`to` bound received_at
     * (inclusive). Each type's frames are one range of the history index,
     * bounded by the cursor (`received_at <=` the cursor's bounds the scan;
     * the OR skips the cursor's own instant up to its frame id: written as
     * one `a < x OR (a = x AND id < y)` it gave PostgreSQL no bound); a page
     * of every type merges one such range per type.
     */
    async list (principal: UserPrincipal, robotUuid: string, query: FrameQuery = {}): Promise<Page<FrameView>> {
      const robot = await access.robotFor(principal, robotUuid)
      const limit = pageLimit(query.limit)
      const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor, ['date', 'string']) as [string, string]
      const types = typesOf(query.type)
      if (types.length === 0) return { items: [], next_cursor: null }
      const bind: unknown[] = [robot.id]
      const bounds = ['robot_id = $1']
      if (query.from !== undefined) { bind.push(dateParam(db.dialect, query.from)); bounds.push(`received_at >= $${bind.length}`) }
      if (query.to !== undefined) { bind.push(dateParam(db.dialect, query.to)); bounds.push(`received_at <= $${bind.length}`) }
      if (cursor !== undefined) {
        bind.push(dateParam(db.dialect, new Date(cursor[0])), cursor[1])
        const at = `$${bind.length - 1}`
        bounds.push(`received_at <= ${at}`, `(received_at < ${at} OR frame_id < $${bind.length})`)
      }
      const order = 'received_at DESC, frame_id DESC'
      const part = (type: number): string => `SELECT frame_id, type, data, recorded_at, received_at FROM frames WHERE ${bounds.join(' AND ')} AND type = ${type} ORDER BY ${order} LIMIT ${limit + 1}`
      const rows = await db.sequelize.query(merged(types, part, order, limit + 1), { type: QueryTypes.SELECT, bind }) as FrameRow[]
      return toPage(rows, limit, view, (row) => [rawDate(row.received_at).toISOString(), row.frame_id])
    },

    /** docs/protocol.md §6.4: buckets with frames, oldest first; `from`/`to` bound received_at (inclusive). */
    async aggregate (principal: UserPrincipal, robotUuid: string, query: AggregateQuery): Promise<AggregateView> {
      const { type, from, to, bucket } = query
      if (from.getTime() > to.getTime()) throw new Errors.BAD_REQUEST('from must not be after to')
      const seconds = bucket * 1000
      const buckets = Math.floor(to.getTime() / seconds) - Math.floor(from.getTime() / seconds) + 1
      if (buckets > MAX_BUCKETS) throw new Errors.BAD_REQUEST(`the range holds ${buckets} buckets of ${bucket} s, more than ${MAX_BUCKETS}: use a larger bucket or a shorter range`)
      // The place first: a refusal then costs no database read (abusers ask
      // again at once, hundreds of times a second). A robot this user cannot
      // reach is still a 404, its place given back at once.
      const release = history.acquire(principal.id)
      let rows: Array<Record<string, unknown>>
      let fields: readonly string[] = NUMERIC_FIELDS[type] ?? []
      let telemetryRolled = false
      try {
        const robot = await access.robotFor(principal, robotUuid)
        // type 4: the number and integer fields of the robot's model as it is now
        if (type === FRAME_TYPES.telemetry) fields = (await currentModel(robot.id)).numericFields
        // The whole minutes of the range that the rollups answer for: read
        // from them when buckets are whole minutes, counted from them otherwise.
        const covered = coveredMinutes(from, to, await rollups.window())
        const rolled = covered !== null && bucket % 60 === 0
        telemetryRolled = rolled && type === FRAME_TYPES.telemetry
        const bind: unknown[] = [robot.id, bucket, dateParam(db.dialect, from), dateParam(db.dialect, to), type]
        if (rolled) {
          if (!telemetryRolled) bind.push(covered.first, covered.end)
          bind.push(dateParam(db.dialect, new Date(covered.first * 60_000)), dateParam(db.dialect, new Date(covered.end * 60_000)))
        }
        // On the history reads' own connection (SQLite) or share of the pool (PostgreSQL).
        rows = await db.historyReads(async () => {
          await checkCost(robot.id, type, from, to, bucket, covered)
          const found = await db.sequelize.query(aggregateSql(db.dialect, type, fields, rolled), { type: QueryTypes.SELECT, bind }) as Array<Record<string, unknown>>
          if (!telemetryRolled || covered === null) return found
          const minutes = await db.sequelize.query(telemetryRollupsSql(db.dialect, fields), { type: QueryTypes.SELECT, bind: [robot.id, bucket, type, covered.first, covered.end] }) as Array<Record<string, unknown>>
          return [...found, ...minutes]
        })
      } finally {
        release()
      }
      // type 4 with rollups: the edges' rows and the rollups' rows, added by bucket
      if (telemetryRolled) return { type, bucket, from: from.toISOString(), to: to.toISOString(), items: telemetryBuckets(rows, fields, seconds) }
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
     * docs/protocol.md §6.6, retention: deletes every frame received before `cutoff`,
     * robot by robot, in pieces of at most RETENTION_PIECE rows chosen through
     * the history index (one range per frame type, `type IN (…)`, in no
     * particular order: an ORDER BY across the types would read every old
     * frame to sort it) and deleted by primary key, each its
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
      const sql = `DELETE FROM frames WHERE robot_id = $1 AND frame_id IN (SELECT frame_id FROM frames WHERE robot_id = $1 AND type IN (${HISTORY_TYPES.join(', ')}) AND received_at < $2 LIMIT ${piece})`
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
     * docs/protocol.md §6.5: every frame in the range, oldest first, as NDJSON lines or
     * CSV rows, in queries of EXPORT_BATCH frames. Takes a place and checks
     * access first (so that a 429 or a 404 comes before any byte), then
     * returns the pieces to stream.
     *
     * Holds a place among the user's and the node's history reads (429
     * UNITED_BUSY when none is left) from this call until the pieces end,
     * fail, are returned, or stall (EXPORT_STALL_MS without the response
     * taking a piece: `onStall` then ends the response).
     *
     * Each piece is one keyset query on (robot_id, type, received_at,
     * frame_id) per type (every type: one per type, merged), not a cursor: a cursor holds its transaction, and on PostgreSQL its
     * snapshot, for as long as the slowest client reads (retention's deletes
     * could not be reclaimed meanwhile; on SQLite a WAL checkpoint could not
     * finish). Between pieces nothing is held, and a piece is read only when
     * the response has taken the previous one, so memory stays flat however
     * long the range. NDJSON takes the stored JSON text as it is (PostgreSQL's
     * `data::text`, SQLite's text), CSV the fields one by one: no frame's data
     * is parsed in Node.
     */
    async export (principal: UserPrincipal, robotUuid: string, query: ExportQuery, opts: { onStall?: () => void } = {}): Promise<AsyncIterableIterator<string>> {
      const release = history.acquire(principal.id) // first: a refusal costs no database read
      let robot: Awaited<ReturnType<AccessService['robotFor']>>
      const telemetry = query.format === 'csv' && query.type === FRAME_TYPES.telemetry
      let fields: readonly string[] = query.type === undefined ? [] : NUMERIC_FIELDS[query.type] ?? []
      try {
        robot = await access.robotFor(principal, robotUuid)
        // CSV of type 4: a column per telemetry field of the robot's current model, in declaration order
        if (telemetry) fields = (await currentModel(robot.id)).fields
      } catch (err) {
        release()
        throw err
      }
      const pg = db.dialect === 'postgres'
      // Type 4's cells are the stored JSON values' text (a string quoted, as
      // JSON writes it), so that each is written as its own type however the
      // model declared it when the frame was stored.
      const cellOf = (f: string): string => {
        if (!telemetry) return fieldValue(db.dialect, f, 'frames', true)
        telemetryValue(db.dialect, f) // a model's field name (FIELD_NAME_PATTERN), checked again: it is written into SQL
        return pg ? `(frames.data->'${f}')::text` : `frames.data -> '$.${f}'`
      }
      const fieldColumns = query.format === 'csv'
        ? fields.map((f, i) => `, ${cellOf(f)} AS f${i}`).join('')
        : pg ? ', data::text AS data' : ', data'
      // The instants as ISO 8601 text, made by the database on PostgreSQL
      // (no Date per row in Node: a third of the export's CPU went there).
      const times = pg ? `${PG_ISO('recorded_at')} AS recorded_at, ${PG_ISO('received_at')} AS received_at` : 'recorded_at, received_at'
      const bounds: string[] = ['robot_id = $1']
      const bind: unknown[] = [robot.id]
      if (query.from !== undefined) { bind.push(dateParam(db.dialect, query.from)); bounds.push(`received_at >= $${bind.length}`) }
      if (query.to !== undefined) { bind.push(dateParam(db.dialect, query.to)); bounds.push(`received_at <= $${bind.length}`) }
      const n = bind.length
      const after = pg ? `$${n + 1}::timestamptz` : `$${n + 1}`
      // One range of the history index per type (all types: merged, oldest first).
      const types = typesOf(query.type)
      const part = (cursor: boolean) => (type: number): string => `SELECT frame_id, type, ${times}${fieldColumns} FROM frames WHERE ${bounds.join(' AND ')} AND type = ${type}${cursor
        // after the last row (at, id): `at >=` bounds the index scan, the OR skips what was read
        ? ` AND frames.received_at >= ${after} AND (frames.received_at > ${after} OR frame_id > $${n + 2})`
        : ''} ORDER BY frames.received_at, frame_id LIMIT ${EXPORT_BATCH}`
      const first = types.length === 0 ? null : merged(types, part(false), 'received_at, frame_id', EXPORT_BATCH)
      const next = types.length === 0 ? null : merged(types, part(true), 'received_at, frame_id', EXPORT_BATCH)
      const iso = pg ? (v: unknown): string | null => v as string | null : sqliteIso
      const cell = telemetry ? csvTelemetry : csvNumber
      const line = query.format === 'csv'
        // The frame id is the robot's free text; type and the fields are
        // numbers (validated JSON), the instants ISO text of our own.
        ? (r: Record<string, unknown>): string => [csvText(String(r.frame_id)), csvNumber(r.type), csvText(iso(r.recorded_at) ?? ''), csvText(iso(r.received_at) ?? ''), ...fields.map((_, i) => cell(r[`f${i}`]))].join(',') + '\r\n'
        : (r: Record<string, unknown>): string => `{"frame_id":${JSON.stringify(r.frame_id)},"type":${Number(r.type)},"data":${String(r.data)},"recorded_at":${JSON.stringify(iso(r.recorded_at))},"received_at":${JSON.stringify(iso(r.received_at))}}\n`

      async function * pieces (): AsyncGenerator<string> {
        if (query.format === 'csv') yield ['frame_id', 'type', 'recorded_at', 'received_at', ...fields].map(csvText).join(',') + '\r\n'
        if (first === null || next === null) return
        let cursor: [unknown, unknown] | null = null
        for (;;) {
          const page = cursor === null ? bind : [...bind, ...cursor]
          const rows = await db.historyReads(async () => await db.sequelize.query(cursor === null ? first : next, { type: QueryTypes.SELECT, bind: page }) as Array<Record<string, unknown>>)
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
      return held(pieces(), release, opts.onStall)
    },

    /** History reads (aggregates and exports) running: on this node, or of one user. */
    historyReads (userId?: number): number {
      return history.inUse(userId)
    },

    /** How long an export may wait for its reader before it is ended (EXPORT_STALL_MS; tests shorten it). */
    settings
  }
}

export type FrameService = ReturnType<typeof createFrameService>
