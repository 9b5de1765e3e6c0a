// Frames from every robot, written in batches (docs/protocol.md §4.2: "ok only after
// the frame is committed"). One statement per batch, one batch at a time;
// while a batch commits, the next one gathers, so batches grow with the load
// and a lone frame is written at once (with `lingerMs`, a batch that would not
// be full waits until that long after the previous one started). Each frame's
// promise settles only after its batch committed. The hot path builds no
// model instance: on PostgreSQL one `INSERT … SELECT FROM unnest(…)` of
// the frames' own texts, prepared once per connection; on SQLite one
// multi-row `INSERT OR IGNORE`. PostgreSQL takes a frame's id, type and data
// out of the robot's own JSON text (jsonb, which keeps the last of a
// repeated key at every level, as JSON.parse does: what is stored is what was
// validated) instead of serializing it again; SQLite stores the validated
// data serialized again, since its JSON functions keep the first of a
// repeated key. A frame id already stored for its robot is
// skipped (idempotent resends); a frame of a robot deleted meanwhile is
// dropped instead of failing the batch of every other robot.
// The statements run on the writer's own connection (db.sqliteIngest,
// db.pgIngest), which no request ever uses, so no number of slow reads
// can delay a batch (src/db/README.md, "Connections").
import type { FastifyBaseLogger } from 'fastify'
import { sqliteDate, type Database } from '../db/index.js'

export interface QueuedFrame {
  robotId: number
  frameId: string
  type: number
  data: Record<string, unknown>
  recordedAt: Date | null
  receivedAt: Date
  /** The frame's JSON text (`{"id","type","data"}`) that frameId, type and data were read from (validateFrame's `text`). */
  text?: string
}

/** Called once per frame: `ok` after its batch committed, or not with the batch's error. */
export type FrameDone = (ok: boolean, err?: unknown) => void

interface Pending { row: QueuedFrame, done: FrameDone }

export interface FrameWriterOptions {
  db: Database
  log: FastifyBaseLogger
  /** rows per statement */
  maxBatch?: number
  /** frames queued at most; more wait in `room()` (the broker then stops reading from their robots) */
  queueLimit?: number
  /**
   * Milliseconds at least between the starts of two batches smaller than
   * `maxBatch` (0: none). A frame that finds the writer idle for longer is
   * still written at once; under a steady trickle, frames gather for up to
   * this long instead of costing the database one commit each.
   */
  lingerMs?: number
  /** PostgreSQL: after a batch met a frame id already stored, milliseconds during which batches skip the attempt without `ON CONFLICT` */
  conflictWindowMs?: number
  /** Called with each batch's rows after it committed (the rollups look for late frames there); must not throw. */
  afterCommit?: (rows: readonly QueuedFrame[]) => void
}

export type BatchObserver = (rows: number, seconds: number, ok: boolean) => void

// The batch travels as three parameters written by concatenation, without
// escaping: $1 the frames' own JSON texts (frameText) joined by U+001E, the
// record separator, which JSON text never holds raw (a control character may
// appear in a JSON string only escaped, and between tokens only space, tab, CR
// and LF); $3, $4 and $5 array literals of the robot ids and the recorded_at
// and received_at times (ms since the epoch, or NULL). PostgreSQL splits $1
// (string_to_array), parses each frame once, as jsonb, and takes id, type and
// data out of it, so that no frame's data is serialized again in Node. The
// subquery's OFFSET 0 keeps the planner from copying `t::jsonb` into each of
// the three expressions that read it (three parses per frame).
// Measured with the pg client alone, batches of 300 position frames, 150,000
// rows, alternating: 9.1–9.3 µs of PostgreSQL backend CPU per row, against
// 12.1–12.3 µs when the batch was one jsonb array (jsonb_to_recordset, which
// parses the whole batch into one value and then copies each frame out of
// it), and 3.5–3.9 µs of Node CPU per row against 4.3–4.4; no difference for
// batches of two frames. (Six arrays escaped element by element by
// node-postgres, the first version, cost ~3 µs more per row in Node.)
//
// $2 holds the batch's distinct robot ids: the robots that still exist are
// looked up by primary key and locked (`FOR KEY SHARE`), once each. frames
// has no foreign key on PostgreSQL (migration 004, ~6 µs per row): this lock
// is the one the key's check took for every row, so a robot being deleted
// waits for the batch to commit and then deletes its frames, and a batch that
// comes after the deletion stores none of that robot's frames.
// `WHERE EXISTS (SELECT … robots …)` made the planner, which expects 100 rows
// from a set-returning function, hash the whole robots table for every batch:
// 1.2 ms for a batch of two frames among 5,000 robots, against 0.1 ms this
// way, and nothing saved on large batches.
//
// Resent frames are rare, and `ON CONFLICT DO NOTHING` costs every row a
// speculative insertion (an index probe before the insert, a confirmation
// after): ~5 of PostgreSQL's ~25 µs per row, measured. So a batch is first
// written without it; a frame id already stored fails that statement (it
// inserts nothing), and the batch is written again with it. For
// `conflictWindowMs` after such a conflict (robots resend after a reconnect,
// usually several frames and robots at once) batches go straight to the
// idempotent statement.
// Both statements run prepared (db.pgIngest): at fleet rates a batch holds
// one or two frames, and parsing and planning the statement anew was half of
// PostgreSQL's CPU for such a batch (measured with the pg client alone, 3,000
// batches of two rows: ~420 µs of backend CPU per batch unprepared, ~210
// prepared; no difference at 100 rows).
/** Between two frame texts in PG_INSERT's $1 (U+001E, the record separator). */
const RECORD_SEPARATOR = '\x1e'
const PG_INSERT = `INSERT INTO frames (robot_id, frame_id, type, data, recorded_at, received_at)
SELECT u.r, u.p->>'id', (u.p->>'type')::smallint, u.p->'data', to_timestamp(u.a / 1000.0), to_timestamp(u.b / 1000.0)
FROM (SELECT v.r, v.a, v.b, v.t::jsonb AS p
      FROM unnest($3::int[], $4::float8[], $5::float8[], string_to_array($1, chr(${RECORD_SEPARATOR.charCodeAt(0)}))) AS v(r, a, b, t)
      OFFSET 0) AS u
WHERE u.r IN (SELECT id FROM robots WHERE id = ANY($2::int[]) FOR KEY SHARE)`
const PG_INSERT_IDEMPOTENT = `${PG_INSERT}
ON CONFLICT (robot_id, frame_id) DO NOTHING`
const UNIQUE_VIOLATION = '23505' // SQLSTATE

// JSON.parse reads any number literal, but PostgreSQL's numeric refuses more
// than 16,383 digits after the point or 131,072 before it: JSON.parse reads
// 1e-20000 as 0, PostgreSQL fails the statement (the whole batch). A frame
// whose text could hold such a number (also a string that merely looks like
// one) is serialized again instead of stored verbatim: one with a three-digit
// exponent, or, in a text over 4,096 characters, a run of 100 digits. A
// shorter text holds no number long enough to matter, and testing it for
// digit runs cost ~0.6 µs per position frame (measured: 0.72 against 0.15 µs).
const LONG_EXPONENT = /[eE][+-]?\d{3}/
const DIGIT_RUN = /\d{100}/
const DIGIT_RUN_MIN_TEXT = 4096

/** The frame's JSON text: the robot's own, or serialized again when there is none or it is not safe to store as is. */
function frameText (r: QueuedFrame): string {
  const text = r.text
  const unsafe = text === undefined || LONG_EXPONENT.test(text) || (text.length > DIGIT_RUN_MIN_TEXT && DIGIT_RUN.test(text))
  return unsafe ? JSON.stringify({ id: r.frameId, type: r.type, data: r.data }) : text
}

/** A time as PG_INSERT reads it: milliseconds since the epoch, or NULL. */
function ms (d: Date | null): string {
  const t = d === null ? NaN : d.getTime()
  return Number.isFinite(t) ? String(t) : 'NULL'
}

/** PG_INSERT's parameters for `rows`: frame texts, distinct robot ids, and array literals of robot ids, recorded_at and received_at. */
function pgBatch (rows: QueuedFrame[]): [string, number[], string, string, string] {
  let texts = ''
  let robotIds = '{'
  let recorded = '{'
  let received = '{'
  const robots = new Set<number>()
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as QueuedFrame
    robots.add(r.robotId)
    const comma = i === 0 ? '' : ','
    texts += (i === 0 ? '' : RECORD_SEPARATOR) + frameText(r)
    robotIds += comma + String(r.robotId)
    recorded += comma + ms(r.recordedAt)
    received += comma + ms(r.receivedAt)
  }
  return [texts, [...robots], `${robotIds}}`, `${recorded}}`, `${received}}`]
}

const sqliteStatements = new Map<number, string>()
/** The SQLite statement for `n` rows (positional parameters; the texts of the last sizes are kept). */
function sqliteInsert (n: number): string {
  let sql = sqliteStatements.get(n)
  if (sql === undefined) {
    if (sqliteStatements.size >= 64) sqliteStatements.clear()
    sql = `INSERT OR IGNORE INTO frames (robot_id, frame_id, type, data, recorded_at, received_at)
       SELECT column1, column2, column3, column4, column5, column6 FROM (VALUES ${new Array<string>(n).fill('(?,?,?,?,?,?)').join(',')}) AS v
       WHERE EXISTS (SELECT 1 FROM robots r WHERE r.id = v.column1)`
    sqliteStatements.set(n, sql)
  }
  return sql
}

export function createFrameWriter ({ db, log, maxBatch = 1000, queueLimit = 20_000, lingerMs = 0, conflictWindowMs = 10_000, afterCommit }: FrameWriterOptions) {
  let queue: Pending[] = []
  let running: Promise<void> | null = null
  let scheduled: { cancel: () => void, lingering: boolean } | null = null
  let lastStart = -Infinity // performance.now() when the last batch started
  // Admission (backpressure): a frame enters the queue only while it holds
  // fewer than `queueLimit` frames; others wait their turn, first come first
  // served, and each admitted one holds a reserved place until it is written.
  const admissions: Array<() => void> = []
  let reserved = 0
  const observers: BatchObserver[] = []
  let conflictSeen = -Infinity // performance.now() when a batch last met a frame id already stored

  async function insert (rows: QueuedFrame[]): Promise<void> {
    if (db.dialect === 'postgres') {
      const params = pgBatch(rows)
      if (performance.now() - conflictSeen >= conflictWindowMs) {
        try {
          await db.pgIngest('united_frames_insert', PG_INSERT, params)
          return
        } catch (err) {
          if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err
          conflictSeen = performance.now()
        }
      }
      await db.pgIngest('united_frames_insert_idempotent', PG_INSERT_IDEMPOTENT, params)
      return
    }
    const values: unknown[] = new Array(rows.length * 6)
    let i = 0
    for (const r of rows) {
      values[i++] = r.robotId
      values[i++] = r.frameId
      values[i++] = r.type
      // The data as validated, serialized again: SQLite's JSON functions
      // take the FIRST of a repeated key where JSON.parse (and so the
      // validator) took the last, so the robot's own text could store, or
      // let json_extract read, a value nobody validated (docs/protocol.md §4.1).
      values[i++] = JSON.stringify(r.data)
      values[i++] = sqliteDate(r.recordedAt)
      values[i++] = sqliteDate(r.receivedAt)
    }
    await db.serialized(async () => { await db.sqliteIngest(sqliteInsert(rows.length), values) })
  }

  async function writeBatch (batch: Pending[]): Promise<void> {
    const started = process.hrtime.bigint()
    let ok = true
    let failure: unknown
    try {
      const rows = batch.map((p) => p.row)
      await insert(rows)
      afterCommit?.(rows)
    } catch (err) {
      ok = false
      failure = err
      log.warn({ err, frames: batch.length }, 'frame batch failed; its frames get retry acks')
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    for (const observe of observers) observe(batch.length, seconds, ok)
    // Every frame of the batch is settled in this one synchronous loop, so the
    // acks it triggers leave in as few socket writes as possible.
    for (const p of batch) {
      try {
        p.done(ok, failure)
      } catch (err) {
        log.error({ err }, 'frame callback failed')
      }
    }
  }

  function admit (): void {
    while (admissions.length > 0 && queue.length + reserved < queueLimit) {
      reserved++
      ;(admissions.shift() as () => void)()
    }
  }

  async function writeNext (): Promise<void> {
    lastStart = performance.now()
    const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch)
    queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch)
    await writeBatch(batch)
    admit()
  }

  function start (): void {
    scheduled = null
    running = writeNext().finally(() => { running = null; if (queue.length > 0) kick() })
  }

  function kick (): void {
    if (scheduled?.lingering === true && queue.length >= maxBatch) {
      scheduled.cancel() // a full batch does not wait
      scheduled = null
    }
    if (running !== null || scheduled !== null) return
    // Let the frames that arrive in this turn of the event loop join the
    // batch, or those of the rest of the linger when the last batch started
    // less than `lingerMs` ago and this one would not be full.
    const wait = queue.length >= maxBatch ? 0 : lastStart + lingerMs - performance.now()
    if (wait >= 1) {
      const timer = setTimeout(start, wait)
      scheduled = { cancel: () => { clearTimeout(timer) }, lingering: true }
    } else {
      const immediate = setImmediate(start)
      scheduled = { cancel: () => { clearImmediate(immediate) }, lingering: false }
    }
  }

  /**
   * write() without a promise per frame (the broker's hot path): `done` is
   * called once, after the commit or with the batch's error.
   */
  function enqueue (row: QueuedFrame, admitted: boolean, done: FrameDone): void {
    if (admitted) reserved--
    queue.push({ row, done })
    kick()
  }

  return {
    /**
     * Queues a frame. Resolves once it is committed; rejects when its batch
     * failed (the robot may resend). `admitted`: the caller waited for `room()`.
     */
    write (row: QueuedFrame, admitted = false): Promise<void> {
      return new Promise((resolve, reject) => {
        enqueue(row, admitted, (ok, err) => { if (ok) resolve(); else reject(err) })
      })
    },

    enqueue,

    /** True when a frame may be queued right away. */
    hasRoom (): boolean {
      return admissions.length === 0 && queue.length + reserved < queueLimit
    },

    /** Resolves when a place in the queue is reserved for one frame; pass `admitted` to write(). */
    async room (): Promise<void> {
      await new Promise<void>((resolve) => {
        admissions.push(resolve)
        admit()
      })
    },

    /** Frames waiting for a place in the queue. */
    get waiting (): number {
      return admissions.length
    },

    /** Frames waiting for a batch. */
    get depth (): number {
      return queue.length
    },

    observe (observer: BatchObserver): void {
      observers.push(observer)
    },

    /** Writes everything queued so far (shutdown). */
    async flush (): Promise<void> {
      while (queue.length > 0 || running !== null || scheduled !== null) {
        if (running !== null) {
          await running
        } else {
          // No linger at shutdown: write what is queued now.
          scheduled?.cancel()
          if (queue.length > 0) start(); else scheduled = null
        }
      }
    }
  }
}

export type FrameWriter = ReturnType<typeof createFrameWriter>
