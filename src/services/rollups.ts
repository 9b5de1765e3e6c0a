// Per-minute rollups of stored frames, so that an aggregate over a day reads
// 1,440 rows a type instead of 864,000 frames (docs/protocol.md §6.4; src/db/README.md,
// "Rollups"). Kept beside the frames by a background job, never in the frame
// writer's INSERT: frames are acked as fast as without them.
//
// The rules that keep them exact:
// - `received_at` is the server's clock, so a minute that has closed gets no
//   new frame, except one that waited between its receipt and its commit.
// - The job rolls a minute only ROLLUP_LAG_MS after it closed, one upsert per
//   chunk of minutes for every robot, and moves `rolled_until` on.
// - A frame committed more than LATE_MS after it was received (a database
//   outage, the writer's retries, a frame stored with an old received_at) is
//   "late": after its commit, the minutes of its robot that it falls in are
//   rolled again. LAG - LATE = 60 s is what the nodes' clocks may differ by.
// - Rolls take turns: a PostgreSQL advisory lock held for the transaction (all
//   nodes of a cluster run the job; only one rolls at a time), SQLite's single
//   writer queue. A roll's statement therefore sees every commit before it.
// - Retention moves `rolled_from` past its cutoff first, then deletes.
// - An aggregate reads rollups only for whole minutes inside
//   [rolled_from, rolled_until), and frames for the rest of its range.
//
// Telemetry frames (type 4, docs/protocol.md §14) have a model's fields, not
// fixed slots: their minute's frame count goes to frame_rollups (type 4, its
// slots empty), and every field whose stored value is a JSON number to
// frame_field_rollups (robot, minute, field), whatever model it was stored
// under. An aggregate picks the rows of its robot's current model's numeric
// fields, so that a change of model never leaves a rollup wrong: the raw
// frames are read with the same rule (telemetryValue).
import type { FastifyBaseLogger } from 'fastify'
import { QueryTypes, type Transaction } from 'sequelize'
import { NUMERIC_FIELDS } from '../contract/frames.js'
import { FIELD_NAME_PATTERN } from '../contract/models.js'
import { FRAME_TYPES } from '../contract/payloads.js'
import { dateParam, rawDate, type Database } from '../db/index.js'
import { SLOTS } from '../db/migrations/009-frame-rollups.js'

/** A minute is rolled this long after it closed. */
export const ROLLUP_LAG_MS = 120_000
/** A frame committed this long after it was received makes its minute be rolled again. */
export const LATE_MS = 60_000
/** Minutes rolled by one statement of the job at most (catching up after a stop, or over history on upgrade). */
export const ROLLUP_CHUNK_MINUTES = 60
/** A step whose longest statement took longer than this halves the next one's minutes; a quarter of it doubles them. */
const STATEMENT_TARGET_MS = { postgres: 1000, sqlite: 50 } as const
/** Seconds between two runs of the job. */
export const ROLLUP_INTERVAL = 10

const LOCK = 738_512_002 // PostgreSQL advisory lock of the rolls (MIGRATION_LOCK is 738_512_001)
const MINUTE = 60_000

/** The minutes (epoch seconds / 60) the rollups answer for: [from, until). */
export interface RollupWindow { from: number, until: number }

export interface LateFrame { robotId: number, receivedAt: Date }

/**
 * The numeric field `field` of a frame's stored JSON, as SQL (`table` names
 * the frames table): a float8 on PostgreSQL (`->>` then a cast; `text`: the
 * JSON's own text, uncast), a number on SQLite.
 */
export function fieldValue (dialect: Database['dialect'], field: string, table = 'f', text = false): string {
  if (dialect === 'sqlite') return `json_extract(${table}.data, '$.${field}')`
  return text ? `${table}.data->>'${field}'` : `(${table}.data->>'${field}')::float8`
}

const FIELD_NAME = new RegExp(FIELD_NAME_PATTERN)

/**
 * A telemetry field (type 4) of a frame as a number, as SQL: its value when
 * the stored JSON value is a number, else NULL (a field of the same name
 * that an older model version declared as a string or a boolean). What the
 * job rolls into frame_field_rollups, read from one frame. `field` comes from
 * a model (FIELD_NAME_PATTERN, checked again here: it is written into SQL).
 */
export function telemetryValue (dialect: Database['dialect'], field: string, table = 'f'): string {
  if (!FIELD_NAME.test(field)) throw new Error(`not a telemetry field name: ${JSON.stringify(field)}`)
  if (dialect === 'sqlite') return `CASE WHEN json_type(${table}.data, '$.${field}') IN ('integer', 'real') THEN CAST(json_extract(${table}.data, '$.${field}') AS REAL) END`
  return `CASE WHEN jsonb_typeof(${table}.data->'${field}') = 'number' THEN (${table}.data->>'${field}')::float8 END`
}

/**
 * Beyond this magnitude a value counts as ±SUM_BOUND in sums and averages.
 * PostgreSQL's float8 sum fails its whole statement on overflow ("value out
 * of range"), and its avg already past ~1.3e154 (it sums the squares too):
 * one robot's glitching sensor (1.7e308 twice in a minute, valid JSON
 * numbers) made every aggregate of that robot answer 500 and would have
 * failed the rollup job, which rolls every robot in one statement, at each
 * retry. SQLite's sum gives Infinity instead, which JSON cannot carry.
 * Bounded at 1e290, a sum of 10^17 values still fits a double. min and max
 * keep the values as they are.
 */
export const SUM_BOUND = '1e290'

/** `v` (a column or alias, evaluated three times) bounded by ±SUM_BOUND, for sum(). */
export function summable (v: string): string {
  return `CASE WHEN ${v} > ${SUM_BOUND} THEN ${SUM_BOUND} WHEN ${v} < -${SUM_BOUND} THEN -${SUM_BOUND} ELSE ${v} END`
}

/**
 * Keeps a subquery from being flattened into its outer query, so that each of
 * its columns is computed once per row (a JSON field extraction, read by
 * several aggregates and by summable's three comparisons).
 */
export function unflattened (dialect: Database['dialect']): string {
  return dialect === 'postgres' ? 'OFFSET 0' : 'LIMIT -1 OFFSET 0'
}

/** The epoch seconds of f.received_at, as SQL: numeric on PostgreSQL, an integer on SQLite. */
export function epochOf (dialect: Database['dialect']): string {
  return dialect === 'postgres'
    ? 'extract(epoch FROM f.received_at)'
    : "CAST(strftime('%s', substr(f.received_at, 1, 19)) AS INTEGER)"
}

/** The minute (epoch seconds / 60) of f.received_at, as SQL. */
function minuteOf (dialect: Database['dialect']): string {
  return dialect === 'postgres' ? `floor(${epochOf(dialect)} / 60)::bigint` : `${epochOf(dialect)} / 60`
}

/** Slot i's value of a frame: the i-th numeric field of its type (field names come from NUMERIC_FIELDS, never from a request). */
function slotValue (dialect: Database['dialect'], i: number): string {
  const cases = Object.entries(NUMERIC_FIELDS).flatMap(([type, fields]) => fields[i] === undefined ? [] : [`WHEN ${Number(type)} THEN ${fieldValue(dialect, fields[i] as string)}`])
  return `CASE f.type ${cases.join(' ')} END`
}

const SLOT_INDEXES = Array.from({ length: SLOTS }, (_, i) => i)
/** The types rolled into frame_rollups: those with slots, and telemetry (its count only). */
export const ROLLED_TYPES: readonly number[] = [...Object.keys(NUMERIC_FIELDS).map(Number), FRAME_TYPES.telemetry]
const TYPES = ROLLED_TYPES.join(', ')

/**
 * The upsert that rolls the frames received in [$1, $2): of every robot
 * (a range of the (robot_id, type, received_at) index per robot and type),
 * or of robot $3.
 * A minute already rolled is replaced: frames are only ever added to a
 * minute, so the new row holds at least what the old one did.
 */
function rollSql (dialect: Database['dialect'], oneRobot: boolean): string {
  const columns = SLOT_INDEXES.map((i) => `c${i}, lo${i}, hi${i}, s${i}`).join(', ')
  const stats = SLOT_INDEXES.map((i) => `count(v${i}), min(v${i}), max(v${i}), sum(${summable(`v${i}`)})`).join(', ')
  const values = SLOT_INDEXES.map((i) => `${slotValue(dialect, i)} AS v${i}`).join(', ')
  const updates = ['n', ...SLOT_INDEXES.flatMap((i) => [`c${i}`, `lo${i}`, `hi${i}`, `s${i}`])].map((c) => `${c} = excluded.${c}`).join(', ')
  // CROSS JOIN: SQLite keeps robots as the outer loop (an index probe per robot); PostgreSQL plans it as any join
  const source = oneRobot
    ? 'frames f WHERE f.robot_id = $3 AND'
    : 'robots r CROSS JOIN frames f WHERE f.robot_id = r.id AND'
  return `INSERT INTO frame_rollups (robot_id, minute, type, n, ${columns})
SELECT robot_id, minute, type, count(*), ${stats}
FROM (SELECT f.robot_id, ${minuteOf(dialect)} AS minute, f.type, ${values}
  FROM ${source} f.received_at >= $1 AND f.received_at < $2 AND f.type IN (${TYPES}) ${unflattened(dialect)}) x
WHERE true GROUP BY robot_id, minute, type
ON CONFLICT (robot_id, minute, type) DO UPDATE SET ${updates}`
}

/**
 * The upsert that rolls the numeric fields of the telemetry frames (type 4)
 * received in [$1, $2), of every robot or of robot $3, into
 * frame_field_rollups: one row per robot, minute and field that a frame of
 * the minute holds as a JSON number (jsonb_each / json_each: the frame's
 * own keys, whatever model it was stored under). Replaces as rollSql does.
 */
function rollFieldsSql (dialect: Database['dialect'], oneRobot: boolean): string {
  const robots = oneRobot ? 'f.robot_id = $3' : 'f.robot_id = r.id'
  const from = dialect === 'postgres'
    ? `${oneRobot ? 'frames f' : 'robots r CROSS JOIN frames f'} CROSS JOIN LATERAL jsonb_each(f.data) e`
    : `${oneRobot ? 'frames f' : 'robots r CROSS JOIN frames f'}, json_each(f.data) e`
  const numeric = dialect === 'postgres' ? "jsonb_typeof(e.value) = 'number'" : "e.type IN ('integer', 'real')"
  // the same conversion as telemetryValue's: ->> text to float8, or REAL
  const value = dialect === 'postgres' ? "(e.value #>> '{}')::float8" : 'CAST(e.value AS REAL)'
  return `INSERT INTO frame_field_rollups (robot_id, minute, field, c, lo, hi, s)
SELECT robot_id, minute, field, count(v), min(v), max(v), sum(${summable('v')})
FROM (SELECT f.robot_id, ${minuteOf(dialect)} AS minute, e.key AS field, ${value} AS v
  FROM ${from} WHERE ${robots} AND f.received_at >= $1 AND f.received_at < $2 AND f.type = ${FRAME_TYPES.telemetry} AND ${numeric} ${unflattened(dialect)}) x
WHERE true GROUP BY robot_id, minute, field
ON CONFLICT (robot_id, minute, field) DO UPDATE SET c = excluded.c, lo = excluded.lo, hi = excluded.hi, s = excluded.s`
}

/**
 * The oldest received_at at or after $1 among every robot's frames: a probe
 * of the history index (robot_id, type, received_at) per robot and type
 * (without the type, each robot's probe would read all of its frames).
 */
const NEXT_FRAME = `SELECT min((SELECT min(f.received_at) FROM frames f WHERE f.robot_id = r.id AND f.type = t.type AND f.received_at >= $1)) AS at
FROM robots r CROSS JOIN (${ROLLED_TYPES.map((type, i) => `SELECT ${type}${i === 0 ? ' AS type' : ''}`).join(' UNION ALL ')}) t`

export function createRollupService ({ db, log }: { db: Database, log: FastifyBaseLogger }) {
  const rollAll = rollSql(db.dialect, false)
  const rollOne = rollSql(db.dialect, true)
  const rollFieldsAll = rollFieldsSql(db.dialect, false)
  const rollFieldsOne = rollFieldsSql(db.dialect, true)
  const at = (minute: number): Date | string => dateParam(db.dialect, new Date(minute * MINUTE))

  async function run (sql: string, bind: unknown[], transaction?: Transaction): Promise<Array<Record<string, unknown>>> {
    return await db.sequelize.query(sql, { type: QueryTypes.SELECT, bind, transaction }) as Array<Record<string, unknown>>
  }

  /** A transaction that holds the rolls' turn. */
  async function turn<T> (work: (t: Transaction) => Promise<T>): Promise<T> {
    return await db.transaction(async (t) => {
      if (db.dialect === 'postgres') await run(`SELECT pg_advisory_xact_lock(${LOCK})`, [], t)
      return await work(t)
    })
  }

  async function state (t?: Transaction): Promise<{ from: number | null, until: number | null }> {
    const [row] = await run('SELECT rolled_from, rolled_until FROM frame_rollup_state WHERE id = 1', [], t)
    const num = (v: unknown): number | null => v === null || v === undefined ? null : Number(v)
    return { from: num(row?.rolled_from), until: num(row?.rolled_until) }
  }

  async function setState (t: Transaction | undefined, from: number, until: number): Promise<void> {
    await db.sequelize.query('UPDATE frame_rollup_state SET rolled_from = $1, rolled_until = $2 WHERE id = 1', { bind: [from, until], transaction: t })
  }

  /** The minute of the oldest frame received at or after `minute`'s start, or null. */
  async function nextFrameMinute (minute: number | null, t?: Transaction): Promise<number | null> {
    const [row] = await run(NEXT_FRAME, [minute === null ? dateParam(db.dialect, new Date(0)) : at(minute)], t)
    return row?.at === null || row?.at === undefined ? null : Math.floor(rawDate(row.at).getTime() / MINUTE)
  }

  /** The minutes the next step rolls, or null when every closed minute is rolled. */
  async function plan (target: number, t?: Transaction): Promise<{ start: number, end: number } | null> {
    const { until } = await state(t)
    if (until !== null && until >= target) return null
    const next = await nextFrameMinute(until, t)
    const start = next === null ? target : Math.min(Math.max(next, until ?? next), target)
    return { start, end: Math.min(start + chunk, target) }
  }

  /** Records that the minutes up to `end` are rolled; never moves backwards. */
  async function advance (start: number, end: number, t?: Transaction): Promise<void> {
    await db.sequelize.query('UPDATE frame_rollup_state SET rolled_from = COALESCE(rolled_from, $1), rolled_until = $2 WHERE id = 1 AND (rolled_until IS NULL OR rolled_until < $2)', { bind: [start, end], transaction: t })
  }

  // Minutes per step: adapts so that the longest statement of a step stays
  // near STATEMENT_TARGET_MS (PostgreSQL: the one statement of all robots,
  // in a transaction that holds the rolls' turn; SQLite: each robot's, which
  // the frame writer waits behind on SQLite's single connection).
  let chunk = ROLLUP_CHUNK_MINUTES
  /** Starts and ends of rebuild() calls so far (SQLite: a step that met one stops) */
  let rebuilds = 0
  const statementTarget = STATEMENT_TARGET_MS[db.dialect]

  /**
   * One step of the job: rolls up to ROLLUP_CHUNK_MINUTES closed minutes
   * (fewer while its statements take long: a busy fleet's hour of frames is
   * one statement too many), skipping at once a stretch without frames. The
   * first step starts at the oldest stored frame. On PostgreSQL one
   * statement for every robot, under the rolls' lock; on SQLite one per
   * robot, each in the writer queue, so that frame batches go in between
   * (a statement on SQLite sees every commit before it: no lock needed).
   * Resolves with whether minutes are left to roll.
   */
  async function step (now = Date.now()): Promise<boolean> {
    const target = Math.floor((now - ROLLUP_LAG_MS) / MINUTE)
    let longest = 0
    const timed = async (work: () => Promise<unknown>): Promise<void> => {
      const started = performance.now()
      await work()
      longest = Math.max(longest, performance.now() - started)
    }
    let more: boolean
    if (db.dialect === 'postgres') {
      more = await turn(async (t) => {
        const next = await plan(target, t)
        if (next === null) return false
        if (next.end > next.start) {
          const bind = [at(next.start), at(next.end)]
          await timed(async () => {
            await db.sequelize.query(rollAll, { bind, transaction: t })
            await db.sequelize.query(rollFieldsAll, { bind, transaction: t })
          })
        }
        await advance(next.start, next.end, t)
        return next.end < target
      })
    } else {
      // SQLite's steps hold no lock from plan to advance: a rebuild() in
      // between would have this step's advance set rolled_from to its start,
      // and the minutes before it would never be rolled. Such a step stops.
      const generation = rebuilds
      const next = await plan(target)
      if (next === null) return false
      if (next.end > next.start) {
        const robots = await run('SELECT id FROM robots ORDER BY id', [])
        for (const { id } of robots) {
          if (closing) return true // rolled again at the next start: upserts
          // both tables in one turn of the writer queue: no frame commits between them
          await timed(async () => await db.serialized(async () => {
            const bind = [at(next.start), at(next.end), id]
            await db.sequelize.query(rollOne, { bind })
            await db.sequelize.query(rollFieldsOne, { bind })
          }))
          await new Promise<void>((resolve) => { setImmediate(resolve) })
        }
      }
      // Checked in the writer queue, where rebuild()'s transaction also runs:
      // a rebuild called after this check but queued before the advance
      // would otherwise be followed by this step's stale advance (the window
      // set to a plan made before the rebuild, its older minutes never rolled).
      const advanced = await db.serialized(async () => {
        if (generation !== rebuilds) return false
        await advance(next.start, next.end)
        return true
      })
      if (!advanced) return true
      more = next.end < target
    }
    if (longest > statementTarget) chunk = Math.max(1, Math.floor(chunk / 2))
    else if (longest < statementTarget / 4) chunk = Math.min(ROLLUP_CHUNK_MINUTES, chunk * 2)
    return more
  }

  /** Rolls robot `robotId`'s minutes [from, to) again from its frames. */
  async function reroll (robotId: number, from: number, to: number): Promise<void> {
    await turn(async (t) => {
      for (const table of ['frame_rollups', 'frame_field_rollups']) {
        await db.sequelize.query(`DELETE FROM ${table} WHERE robot_id = $1 AND minute >= $2 AND minute < $3`, { bind: [robotId, from, to], transaction: t })
      }
      await db.sequelize.query(rollOne, { bind: [at(from), at(to), robotId], transaction: t })
      await db.sequelize.query(rollFieldsOne, { bind: [at(from), at(to), robotId], transaction: t })
    })
  }

  // Late frames' minutes, per robot, waiting to be rolled again; drained one
  // robot at a time, retried by the job while the database is away.
  const pending = new Map<number, { lo: number, hi: number }>()
  let draining: Promise<void> = Promise.resolve()

  async function drainLate (): Promise<void> {
    for (const [robotId, span] of [...pending]) {
      pending.delete(robotId)
      try {
        await reroll(robotId, span.lo, span.hi + 1)
      } catch (err) {
        const again = pending.get(robotId)
        pending.set(robotId, again === undefined ? span : { lo: Math.min(again.lo, span.lo), hi: Math.max(again.hi, span.hi) })
        log.warn({ err }, 'rolling late frames failed; the rollup job tries again')
        return
      }
    }
  }

  /** Queues a drain after those queued; never rejects. */
  function drain (): Promise<void> {
    draining = draining.then(drainLate)
    return draining
  }

  let timer: NodeJS.Timeout | null = null
  let ticking: Promise<void> | null = null
  let closing = false

  /** The job's run: the late frames' minutes, then steps until caught up. */
  async function tick (): Promise<void> {
    if (pending.size > 0) await drain()
    while (!closing && await step()) await new Promise<void>((resolve) => { setImmediate(resolve) })
  }

  function schedule (): void {
    if (ticking !== null || closing) return
    ticking = tick()
      .catch((err: unknown) => { log.warn({ err }, 'frame rollup failed; it runs again next time') })
      .finally(() => { ticking = null })
  }

  return {
    step,
    reroll,

    /** Rolls until every closed minute is (tests, the bench, `rebuild`). */
    async catchUp (now = Date.now()): Promise<void> {
      while (await step(now));
    },

    /** The minutes the rollups answer for, or null while they answer for none. */
    async window (): Promise<RollupWindow | null> {
      const { from, until } = await state()
      return from === null || until === null || until <= from ? null : { from, until }
    },

    /**
     * After frames were committed: rolls again the minutes of those that are
     * late (received more than LATE_MS ago). Resolves once they are rolled
     * (or, if the database failed, queued for the job); never rejects.
     */
    afterCommit (frames: readonly LateFrame[]): Promise<void> {
      // not async: on the frame writer's path, a batch without late frames costs one loop, no promise
      const limit = Date.now() - LATE_MS
      let any = false
      for (const f of frames) {
        const ms = f.receivedAt.getTime()
        if (ms >= limit) continue
        const minute = Math.floor(ms / MINUTE)
        const span = pending.get(f.robotId)
        pending.set(f.robotId, span === undefined ? { lo: minute, hi: minute } : { lo: Math.min(span.lo, minute), hi: Math.max(span.hi, minute) })
        any = true
      }
      return any ? drain() : Promise.resolve()
    },

    /**
     * Retention, before its frames go: the rollups stop answering for
     * minutes that start before `cutoff`. Then deletes their rows, robot by
     * robot. The minute that holds the cutoff is answered from its frames.
     */
    async trim (cutoff: Date, robotIds: readonly number[]): Promise<void> {
      const first = Math.ceil(cutoff.getTime() / MINUTE)
      await turn(async (t) => {
        const { from, until } = await state(t)
        if (from !== null && until !== null && from < first) await setState(t, first, Math.max(until, first))
      })
      for (const robotId of robotIds) {
        await db.sequelize.query('DELETE FROM frame_rollups WHERE robot_id = $1 AND minute < $2', { bind: [robotId, first] })
        await db.sequelize.query('DELETE FROM frame_field_rollups WHERE robot_id = $1 AND minute < $2', { bind: [robotId, first] })
      }
    },

    /** Forgets every rollup; the job rolls again from the oldest frame (after frames were loaded or restored behind United's back). */
    async rebuild (): Promise<void> {
      // counted at the start and at the end: a step that planned in between may have read the state of before
      rebuilds++
      try {
        await turn(async (t) => {
          await db.sequelize.query('DELETE FROM frame_rollups', { transaction: t })
          await db.sequelize.query('DELETE FROM frame_field_rollups', { transaction: t })
          await db.sequelize.query('UPDATE frame_rollup_state SET rolled_from = NULL, rolled_until = NULL WHERE id = 1', { transaction: t })
        })
      } finally {
        rebuilds++
      }
    },

    /** Starts the job: soon, then every ROLLUP_INTERVAL seconds. */
    start (): void {
      if (timer !== null) return
      const first = setTimeout(schedule, 1000)
      first.unref()
      timer = setInterval(schedule, ROLLUP_INTERVAL * 1000)
      timer.unref()
    },

    async close (): Promise<void> {
      closing = true
      if (timer !== null) clearInterval(timer)
      await ticking
      await draining
    }
  }
}

export type RollupService = ReturnType<typeof createRollupService>
