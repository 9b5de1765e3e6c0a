// History at scale (docs/protocol.md §6), on United alone: the bare broker stores
// nothing, so there is nothing to compare these with.
//
//   history-aggregate  GET /robots/{uuid}/frames/aggregate?type=1&from&to&bucket=60
//                      over the 24 h of one robot that holds --history-frames frames
//   history-export     GET /robots/{uuid}/frames/export (NDJSON) of all of them
//   history-retention  FRAME_RETENTION_DAYS removing --history-frames expired frames
//                      of another robot while --robots robots stream at --stream-hz
//
// The frames are set up with SQL, one INSERT … SELECT per robot while United
// is stopped: through MQTT a million frames would take minutes to store and
// measure nothing these scenarios are about. What is measured goes through
// United's own paths only: its HTTP endpoints, and the retention sweep that
// runs in its process.
import { get as httpGet } from 'node:http'
import pg from 'pg'
import sqlite3 from 'sqlite3'
import { now, paced, percentiles, Recorder, round, type Robot } from './load.js'
import { CommandCpuMeter, hostCpuSeconds, ProcMeter, rssMiB, sleep } from './proc.js'
import type { United } from './targets.js'

export const HISTORY_SCENARIOS = ['history-aggregate', 'history-export', 'history-retention'] as const

export type Fields = Record<string, unknown>

/** The runner's measurement of United's (and the database's) CPU and RSS over a workload: bench.ts' Mark. */
export interface Meter {
  start: () => Promise<void>
  stop: () => void
  result: Fields | undefined
}

/** What the runner (bench.ts) lends a scenario module: its output, meters and fleet. */
export interface RunnerTools {
  say: (s: string) => void
  emit: (lines: Fields[]) => void
  mark: () => Meter
  openFleet: (indexes: number[], rec: Recorder) => Promise<Robot[]>
  closeFleet: (fleet: Robot[]) => Promise<void>
  nextTag: () => string
  errorFields: (rec: Recorder) => Fields
}

export interface HistoryContext extends RunnerTools {
  united: United
  databaseUrl: string | undefined
  /** the name of the local PostgreSQL server's processes, when it runs on this machine */
  dbProcess: string | undefined
  scenarios: ReadonlySet<string>
  /** --history-frames: frames of the history robot, and expired frames of the retention robot */
  frames: number
  robots: number
  streamHz: number
}

const DAY_MS = 86_400_000
const BUCKET_S = 60
/** Measured aggregate requests, after one that is reported apart (`first_ms`): enough for a p50, and the p99 of so few is their maximum. */
const AGGREGATE_RUNS = 15
/**
 * Retention keeps this many days. The retention robot's frames were received
 * RETENTION_DAYS + 1 to + 2 days ago; the history robot's, the last 24 h
 * before the setup, stay out of its reach even when the run lasts an hour
 * (with 1 day, the oldest of them would expire while the bench runs).
 */
const RETENTION_DAYS = 2
/**
 * How long the robots keep streaming after the removal ended: the same
 * robots on the same process, no longer fresh, without the removal (the
 * seconds before it, on a process just started, are few and slow).
 */
const RETENTION_AFTER_MS = 10_000
const RETENTION_TIMEOUT_MS = 20 * 60_000
/** How often the runner looks whether the removal began (the oldest frame gone) or ended (/metrics). */
const POLL_MS = 100
// a whole line (pino writes msg last): a line cut between two reads of the pipe does not match yet
const RETENTION_LOG = /^\{.*"retention removed old frames".*\}$/m

const GOALS = {
  aggregateP50Ms: { postgres: 300, sqlite: 1500 },
  exportFramesPerS: 100_000,
  exportRssGrowthMiB: 64,
  retentionAckP99Ms: 25 // on PostgreSQL
}

// ---- the database, from the runner --------------------------------------------

export interface Sql {
  readonly dialect: 'postgres' | 'sqlite'
  /** The rows of one statement; parameters are $1, $2… on both dialects. */
  query: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>
  close: () => Promise<void>
}

/** A connection of the runner's own to United's database: PostgreSQL at DATABASE_URL, or United's SQLite file. */
export async function openSql (united: United, databaseUrl: string | undefined): Promise<Sql> {
  const file = united.sqliteFile()
  if (file === undefined) {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    return {
      dialect: 'postgres',
      query: async (sql, params = []) => (await client.query(sql, params)).rows as Array<Record<string, unknown>>,
      close: async () => { await client.end() }
    }
  }
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const handle = new sqlite3.Database(file, (err) => { if (err === null) resolve(handle); else reject(err) })
  })
  db.configure('busyTimeout', 10_000)
  return {
    dialect: 'sqlite',
    // ?NNN binds by number: `$1` would be a named parameter to SQLite
    query: async (sql, params = []) => await new Promise((resolve, reject) => {
      db.all(sql.replace(/\$(\d+)/g, '?$1'), params, (err: Error | null, rows: Array<Record<string, unknown>>) => { if (err === null) resolve(rows); else reject(err) })
    }),
    close: async () => { await new Promise<void>((resolve) => { db.close(() => { resolve() }) }) }
  }
}

/** Frame i's id: the prefix and i zero-padded, so that ids sort as the frames were received. */
function frameId (prefix: string, i: number, count: number): string {
  return prefix + String(i).padStart(idWidth(count), '0')
}

function idWidth (count: number): number {
  return Math.max(7, String(Math.max(0, count - 1)).length)
}

/** A frame type and, per dialect, the SQL of its data's key/value pairs (random, plausible values). */
export interface FrameShape { type: number, pairs: (dialect: Sql['dialect']) => string }

const POSITION: FrameShape = {
  type: 1,
  pairs: (dialect) => dialect === 'postgres'
    ? `'speed', round((random() * 3)::numeric, 6), 'position_x', round((random() * 200 - 100)::numeric, 6),
    'position_y', round((random() * 200 - 100)::numeric, 6), 'angle_theta', round((random() * 6.283185 - 3.141593)::numeric, 6)`
    : `'speed', round(abs(random() % 3000001) / 1e6, 6), 'position_x', round(abs(random() % 200000001) / 1e6 - 100, 6),
    'position_y', round(abs(random() % 200000001) / 1e6 - 100, 6), 'angle_theta', round(abs(random() % 6283186) / 1e6 - 3.141593, 6)`
}

/**
 * Inserts `count` frames (position frames unless `frames` says otherwise) of one robot, received evenly from
 * `fromMs` over `spanMs` (whole milliseconds, as United stores them), with
 * random but plausible values of the four fields and `datetime` the second
 * received, as the frame writer would have stored them from a robot: jsonb
 * on PostgreSQL, the data's JSON text on SQLite with its dates in
 * sqliteDate's text. One statement, one transaction.
 */
export async function insertFrames (sql: Sql, robotId: number, prefix: string, count: number, fromMs: number, spanMs: number, frames: FrameShape = POSITION): Promise<void> {
  const params = [robotId, prefix, count, fromMs, spanMs / count, idWidth(count)]
  if (sql.dialect === 'postgres') {
    await sql.query(`INSERT INTO frames (robot_id, frame_id, type, data, recorded_at, received_at)
SELECT $1::int, $2::text || lpad(i::text, $6::int, '0'), ${frames.type},
  jsonb_build_object(${frames.pairs('postgres')},
    'datetime', to_char(date_trunc('second', t) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')),
  date_trunc('second', t), t
FROM generate_series(0, $3::int - 1) AS i, LATERAL (SELECT to_timestamp(floor($4::float8 + i * $5::float8) / 1000)) AS x(t)`, params)
    return
  }
  await sql.query(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $3 - 1),
  x AS (SELECT i, CAST($4 + i * $5 AS INTEGER) AS ms FROM s),
  y AS (SELECT i, ms, strftime('%Y-%m-%d %H:%M:%S', ms / 1000, 'unixepoch') AS second FROM x)
INSERT INTO frames (robot_id, frame_id, type, data, recorded_at, received_at)
SELECT $1, $2 || printf('%0' || $6 || 'd', i), ${frames.type},
  json_object(${frames.pairs('sqlite')},
    'datetime', second),
  second || '.000 +00:00', second || printf('.%03d +00:00', ms % 1000)
FROM y`, params)
}

/**
 * After a bulk load: on PostgreSQL, VACUUM ANALYZE, which autovacuum does on
 * its own after a million inserted rows (autovacuum_vacuum_insert_threshold
 * and the analyze threshold); this machine's PostgreSQL runs with autovacuum
 * off, and a planner without statistics of the new rows would plan for an
 * empty table. On SQLite, a checkpoint: the rows leave the WAL for the
 * database file, as SQLite's automatic checkpoints would have moved them.
 */
export async function afterLoad (sql: Sql): Promise<void> {
  if (sql.dialect === 'postgres') await sql.query('VACUUM ANALYZE frames')
  else await sql.query('PRAGMA wal_checkpoint(TRUNCATE)')
}

async function robotIdOf (sql: Sql, uuid: string): Promise<number> {
  const rows = await sql.query('SELECT id FROM robots WHERE uuid = $1', [uuid])
  if (rows[0] === undefined) throw new Error(`robot ${uuid} is not in the database`)
  return Number(rows[0].id)
}

/**
 * Stops United, loads `count` frames of a new robot with SQL, starts United
 * again (with `env` for this start). On SQLite a writer of another process
 * would hold United's writes for the whole load (and fail them after the
 * busy timeout); on PostgreSQL the measured process then has not served the
 * load either.
 */
export async function loadRobot (ctx: Pick<HistoryContext, 'united' | 'databaseUrl' | 'say'>, name: string, prefix: string, count: number, fromMs: number, spanMs: number, env: NodeJS.ProcessEnv = {}, rollups = false): Promise<{ uuid: string, id: number, rollupS?: number }> {
  const uuid = await ctx.united.extraRobot(name)
  await ctx.united.stop()
  const sql = await openSql(ctx.united, ctx.databaseUrl)
  let id: number
  try {
    id = await robotIdOf(sql, uuid)
    const t0 = now()
    await insertFrames(sql, id, prefix, count, fromMs, spanMs)
    const t1 = now()
    await afterLoad(sql)
    ctx.say(`  ${count} frames of robot ${name} inserted in ${((t1 - t0) / 1000).toFixed(1)} s, ${sql.dialect === 'postgres' ? 'VACUUM ANALYZE' : 'checkpoint'} ${((now() - t1) / 1000).toFixed(1)} s`)
    // Frames loaded behind United's back: its rollups start again from the
    // oldest frame (what services/rollups.ts' rebuild() does).
    if (rollups) await forgetRollups(sql)
  } finally {
    await sql.close()
    await ctx.united.start(env)
  }
  if (!rollups) return { uuid, id }
  return { uuid, id, rollupS: await rolledUp(ctx) }
}

/** What services/rollups.ts' rebuild() does, from the runner: the rollups start again from the oldest frame. */
export async function forgetRollups (sql: Sql): Promise<void> {
  await sql.query('DELETE FROM frame_rollups')
  await sql.query('DELETE FROM frame_field_rollups')
  await sql.query('UPDATE frame_rollup_state SET rolled_from = NULL, rolled_until = NULL WHERE id = 1')
}

/** Waits until United's own rollup job has rolled every closed minute; resolves with the seconds it took from now. */
export async function rolledUp (ctx: Pick<HistoryContext, 'united' | 'databaseUrl' | 'say'>): Promise<number> {
  const t0 = now()
  const sql = await openSql(ctx.united, ctx.databaseUrl)
  try {
    for (;;) {
      const [state] = await sql.query('SELECT rolled_from, rolled_until FROM frame_rollup_state WHERE id = 1')
      const until = state?.rolled_until
      if (until !== null && until !== undefined && Number(until) >= Math.floor((Date.now() - 120_000) / 60_000)) break
      if (now() - t0 > 600_000) throw new Error('the rollups did not catch up in 10 minutes')
      await sleep(200)
    }
  } finally {
    await sql.close()
  }
  const rollupS = (now() - t0) / 1000
  ctx.say(`  rolled up by United in ${rollupS.toFixed(1)} s`)
  return rollupS
}

// ---- HTTP ------------------------------------------------------------------------

export async function getJson (url: string, token: string): Promise<{ status: number, json: Record<string, unknown> | null }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.text()
  let json: Record<string, unknown> | null = null
  try { json = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, json }
}

interface Streamed { status: number, contentType: string, lines: number, bytes: number, first: string, last: string, firstByteMs: number }

/**
 * GET `url` and read the body as fast as the runner can, counting lines
 * (LF bytes) without decoding them: only the first and the last line are
 * kept, to be checked. node:http, not fetch: less of the runner's CPU per
 * byte, and the runner shares the cores with United.
 */
async function streamLines (url: string, token: string): Promise<Streamed> {
  const t0 = now()
  return await new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let lines = 0
      let bytes = 0
      let firstByteMs = NaN
      let head = ''
      let tail = Buffer.alloc(0)
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) firstByteMs = now() - t0
        bytes += chunk.length
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
        if (head.length < 8192 && !head.includes('\n')) head += chunk.toString('utf8', 0, Math.min(chunk.length, 8192))
        tail = Buffer.from(chunk.length >= 8192 ? chunk.subarray(chunk.length - 8192) : Buffer.concat([tail, chunk]).subarray(-8192))
      })
      res.on('end', () => {
        const ends = tail.toString('utf8').split('\n')
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), lines, bytes, first: head.split('\n')[0] ?? '', last: ends[ends.length - 2] ?? '', firstByteMs })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

/** The value of one metric on United's /metrics (0 when it is not there yet). */
async function metric (united: United, name: string): Promise<number> {
  const res = await fetch(`${united.httpUrl}/metrics`)
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await res.text())
  return m === null ? 0 : Number(m[1])
}

/** The highest RSS of a process, sampled every `everyMs` (ProcMeter's 200 ms could miss a short peak of the export). */
class RssPeak {
  peak: number
  private readonly timer: NodeJS.Timeout
  constructor (private readonly pid: number, everyMs = 20) {
    this.peak = rssMiB(pid)
    this.timer = setInterval(() => { this.sample() }, everyMs)
  }

  private sample (): void {
    try { this.peak = Math.max(this.peak, rssMiB(this.pid)) } catch { /* exited */ }
  }

  stop (): number {
    clearInterval(this.timer)
    this.sample()
    return this.peak
  }
}

function checked (failures: string[]): Fields {
  return failures.length === 0 ? { errors: 0 } : { errors: failures.length, error_detail: failures.slice(0, 5) }
}

// ---- the scenarios -----------------------------------------------------------------

interface HistoryRobot { uuid: string, from: Date, to: Date, rollupS?: number }

async function aggregate (ctx: HistoryContext, robot: HistoryRobot, dialect: Sql['dialect']): Promise<Fields> {
  const { united } = ctx
  const url = `${united.httpUrl}/robots/${robot.uuid}/frames/aggregate?type=1&from=${encodeURIComponent(robot.from.toISOString())}&to=${encodeURIComponent(robot.to.toISOString())}&bucket=${BUCKET_S}`
  const token = await united.staffToken()
  const failures: string[] = []
  let buckets = 0
  const once = async (): Promise<number> => {
    const t0 = now()
    const res = await getJson(url, token)
    const ms = now() - t0
    const items = res.json?.items
    if (res.status !== 200 || !Array.isArray(items)) {
      failures.push(`HTTP ${res.status}`)
      return ms
    }
    const counted = (items as Array<{ count: number }>).reduce((sum, b) => sum + b.count, 0)
    if (counted !== ctx.frames) failures.push(`the buckets count ${counted} frames, not ${ctx.frames}`)
    buckets = items.length
    return ms
  }
  // The first request after United's start is reported apart: it also
  // reads the frames from disk into the caches, and plans the statement
  // on a fresh connection.
  const first = await once()
  const mark = ctx.mark()
  await mark.start()
  const samples: number[] = []
  for (let k = 0; k < AGGREGATE_RUNS; k++) samples.push(await once())
  mark.stop()
  const lat = percentiles(samples)
  const goal = GOALS.aggregateP50Ms[dialect]
  return {
    scenario: 'history-aggregate',
    target: 'united',
    frames: ctx.frames,
    bucket_s: BUCKET_S,
    buckets,
    requests: samples.length,
    first_ms: round(first),
    ...lat,
    rollup_s: robot.rollupS === undefined ? undefined : round(robot.rollupS),
    ...checked(failures),
    goal: `p50_ms ≤ ${goal}`,
    goal_met: lat.p50_ms <= goal,
    ...(mark.result ?? {}),
    note: `p50/p99/max: ${AGGREGATE_RUNS} requests one after the other (the p99 of ${AGGREGATE_RUNS} is their max); first_ms: the request before them, not counted; rollup_s: United's rollup job catching up with the loaded frames from its start (whole minutes from rollups, the last minutes and the edges from frames)`
  }
}

async function exportAll (ctx: HistoryContext, robot: HistoryRobot): Promise<Fields> {
  const { united } = ctx
  const token = await united.staffToken()
  const mark = ctx.mark()
  await mark.start()
  // RSS before: after a full GC, so that garbage of the aggregate requests
  // is not counted as room the export could grow into for free.
  await united.gc()
  await sleep(300)
  const before = rssMiB(united.proc.pid)
  const peak = new RssPeak(united.proc.pid)
  const t0 = now()
  const res = await streamLines(`${united.httpUrl}/robots/${robot.uuid}/frames/export`, token)
  const elapsed = (now() - t0) / 1000
  const top = peak.stop()
  mark.stop()
  const failures: string[] = []
  if (res.status !== 200) failures.push(`HTTP ${res.status}`)
  if (!res.contentType.startsWith('application/x-ndjson')) failures.push(`content-type ${res.contentType}`)
  if (res.lines !== ctx.frames) failures.push(`${res.lines} lines, not ${ctx.frames}`)
  // oldest first: the first line is frame 0, the last frame n-1
  for (const [line, i] of [[res.first, 0], [res.last, ctx.frames - 1]] as const) {
    let id: unknown
    try { id = (JSON.parse(line) as { frame_id?: unknown }).frame_id } catch { id = undefined }
    if (id !== frameId('h', i, ctx.frames)) failures.push(`line ${i === 0 ? 'first' : 'last'} is not frame ${frameId('h', i, ctx.frames)}: ${line.slice(0, 200)}`)
  }
  const framesPerS = round(res.lines / elapsed, 0)
  const growth = round(top - before, 1)
  return {
    scenario: 'history-export',
    target: 'united',
    frames: res.lines,
    expected_frames: ctx.frames,
    bytes: res.bytes,
    duration_s: round(elapsed),
    frames_per_s: framesPerS,
    mib_per_s: round(res.bytes / 1048576 / elapsed, 1),
    first_byte_ms: round(res.firstByteMs),
    rss_before_mib: round(before, 1),
    rss_peak_mib: round(top, 1),
    rss_growth_mib: growth,
    ...checked(failures),
    goal: `frames_per_s ≥ ${GOALS.exportFramesPerS}, rss_growth_mib ≤ ${GOALS.exportRssGrowthMiB}`,
    goal_met: framesPerS >= GOALS.exportFramesPerS && growth <= GOALS.exportRssGrowthMiB,
    ...(mark.result ?? {}),
    note: 'the whole export of the robot (NDJSON), read as fast as the runner can; rss_growth_mib: the peak of United\'s RSS (sampled every 20 ms) minus its RSS after a full GC before the request'
  }
}

/**
 * The retention sweep removing --history-frames expired frames of one robot
 * while the fleet streams. United restarts with FRAME_RETENTION_DAYS set: its
 * first sweep runs min(60 s, FRAME_RETENTION_INTERVAL) after its services
 * start (src/services/index.ts); the interval, 3600 s, keeps a second sweep
 * out of the measurement. The robots stream from a second or two after the
 * start, before the sweep begins. The runner sees the removal begin when the
 * oldest frame is gone (its primary-key row, polled: the sweep deletes
 * oldest first) and end when `united_frames_expired_total` moves on /metrics
 * (it adds the sweep's count once the sweep is over); the acks are recorded
 * apart before, during and after. The removal's duration is United's own, from
 * its log line (`ms`; LOG_LEVEL=info for this start).
 */
async function retention (ctx: HistoryContext): Promise<Fields> {
  const { united } = ctx
  ctx.say(`  loading ${ctx.frames} frames received ${RETENTION_DAYS + 1}–${RETENTION_DAYS + 2} days ago into another robot; United restarts with FRAME_RETENTION_DAYS=${RETENTION_DAYS}`)
  const oldestMs = Date.now() - (RETENTION_DAYS + 2) * DAY_MS
  const robot = await loadRobot(ctx, 'retention', 'r', ctx.frames, oldestMs, DAY_MS, {
    FRAME_RETENTION_DAYS: String(RETENTION_DAYS),
    FRAME_RETENTION_INTERVAL: '3600',
    LOG_LEVEL: 'info'
  })
  const logged = united.proc.waitFor(RETENTION_LOG, RETENTION_TIMEOUT_MS)
  logged.catch(() => {}) // looked at only once the removal ended
  const sql = await openSql(united, ctx.databaseUrl)
  const recs = { before: new Recorder(), during: new Recorder(), after: new Recorder() }
  let fleet: Robot[] = []
  try {
    await united.prepareRobots(ctx.robots)
    fleet = await ctx.openFleet(Array.from({ length: ctx.robots }, (_, i) => i), recs.before)
    const firstId = frameId('r', 0, ctx.frames)
    let began: number | undefined
    let ended: number | undefined
    let removed = 0
    let polls = 0
    let beganBeforeStream = false
    let done = false
    let meter: { proc: ProcMeter, db: CommandCpuMeter | undefined, host: { busy: number, steal: number }, client: NodeJS.CpuUsage } | undefined
    let usage: { cpu_s: number, rss_mib: number, db_cpu_s: number | undefined, other_cpu_s: number, steal_cpu_s: number } | undefined
    const switchTo = (rec: Recorder): void => { for (const r of fleet) r.rec = rec }
    const watch = (async () => {
      const deadline = now() + RETENTION_TIMEOUT_MS
      while (ended === undefined && now() < deadline) {
        const expired = await metric(united, 'united_frames_expired_total')
        if (began === undefined && (expired > 0 || (await sql.query('SELECT 1 AS x FROM frames WHERE robot_id = $1 AND frame_id = $2', [robot.id, firstId])).length === 0)) {
          began = now()
          // gone at the first look: the sweep began while the robots were connecting
          beganBeforeStream = polls === 0
          meter = { proc: new ProcMeter(united.proc.pid), db: ctx.dbProcess === undefined ? undefined : new CommandCpuMeter(ctx.dbProcess), host: hostCpuSeconds(), client: process.cpuUsage() }
          switchTo(recs.during)
        }
        if (expired > 0) {
          ended = now()
          removed = expired
          const m = meter?.proc.stop()
          const db = meter?.db?.stop()
          const host = hostCpuSeconds()
          const client = process.cpuUsage(meter?.client)
          // as Mark reports it: CPU that anything else on the machine used during the removal
          const other = host.busy - (meter?.host.busy ?? host.busy) - (m?.cpu_s ?? 0) - (client.user + client.system) / 1e6 - (db ?? 0)
          usage = { cpu_s: m?.cpu_s ?? NaN, rss_mib: m?.rss_mib ?? NaN, db_cpu_s: db, other_cpu_s: Math.max(0, other), steal_cpu_s: host.steal - (meter?.host.steal ?? host.steal) }
          switchTo(recs.after)
          break
        }
        polls++
        await sleep(POLL_MS)
      }
      await sleep(RETENTION_AFTER_MS)
      done = true
    })()
    watch.catch(() => { done = true })
    const rate = ctx.robots * ctx.streamHz
    const t0 = now()
    await paced(fleet, recs.before, { totalRate: rate, durationS: RETENTION_TIMEOUT_MS / 1000, tag: ctx.nextTag(), stop: () => done })
    const streamS = (now() - t0) / 1000
    await watch
    if (began === undefined || ended === undefined) throw new Error(`the removal did not ${began === undefined ? 'begin' : 'end'} within ${RETENTION_TIMEOUT_MS / 60_000} minutes`)
    let log: { ms?: unknown, removed?: unknown } = {}
    try { log = JSON.parse((await Promise.race([logged, sleep(5000).then(() => null)]))?.[0] ?? '{}') as typeof log } catch { /* no line */ }
    const removalS = typeof log.ms === 'number' ? log.ms / 1000 : (ended - began) / 1000
    const all = new Recorder()
    for (const rec of Object.values(recs)) all.addErrors(rec)
    const failures: string[] = []
    if (removed !== ctx.frames) failures.push(`united_frames_expired_total is ${removed}, not ${ctx.frames}`)
    const left = await sql.query('SELECT count(*) AS n FROM frames WHERE robot_id = $1', [robot.id])
    if (Number(left[0]?.n) !== 0) failures.push(`${String(left[0]?.n)} frames of the retention robot are left`)
    const during = recs.during.latency()
    const quiet = recs.before.latency()
    const after = recs.after.latency()
    const goal = sql.dialect === 'postgres' ? GOALS.retentionAckP99Ms : undefined
    const errors = all.errors + failures.length
    return {
      scenario: 'history-retention',
      target: 'united',
      robots: fleet.length,
      rate_hz_per_robot: ctx.streamHz,
      frames_removed: removed,
      removal_s: round(removalS),
      removal_seen_s: round((ended - began) / 1000),
      removed_per_s: round(removed / removalS, 0),
      frames: recs.during.ok,
      frames_per_s: round(recs.during.ok / ((ended - began) / 1000), 0),
      ...during,
      before_frames: recs.before.ok,
      before_p50_ms: quiet.p50_ms,
      before_p99_ms: quiet.p99_ms,
      after_frames: recs.after.ok,
      after_p50_ms: after.p50_ms,
      after_p99_ms: after.p99_ms,
      stream_s: round(streamS),
      errors,
      ...(errors > 0 ? { error_detail: { ...(ctx.errorFields(all).error_detail as Fields | undefined), checks: failures } } : {}),
      ...(beganBeforeStream ? { warning: 'the removal began before the robots streamed' } : {}),
      ...(goal === undefined ? {} : { goal: `p99_ms ≤ ${goal} while the removal runs`, goal_met: during.p99_ms <= goal }),
      server_cpu_s: round(usage?.cpu_s ?? NaN),
      server_rss_mib: round(usage?.rss_mib ?? NaN, 1),
      ...(usage?.db_cpu_s === undefined ? {} : { db_cpu_s: round(usage.db_cpu_s) }),
      other_cpu_s: round(usage?.other_cpu_s ?? NaN),
      steal_cpu_s: round(usage?.steal_cpu_s ?? NaN),
      note: `p50/p99/max: frame-ack latency of the streaming robots while the removal ran (from the oldest frame gone to the counter on /metrics, polled every ${POLL_MS} ms); removal_s: United's own figure (its log line); before_*: the same robots in the seconds before it began, on the freshly started process; after_*: in the ${RETENTION_AFTER_MS / 1000} s after it ended; server_cpu_s, db_cpu_s, other_cpu_s: during the removal`
    }
  } finally {
    await ctx.closeFleet(fleet)
    await sql.close()
  }
}

/**
 * Runs the history scenarios that were asked for, each line emitted as it
 * is done. Retention runs last: it deletes, and it leaves United running
 * with FRAME_RETENTION_DAYS set.
 */
export async function runHistory (ctx: HistoryContext): Promise<void> {
  const has = (s: typeof HISTORY_SCENARIOS[number]): boolean => ctx.scenarios.has(s)
  const run = async (scenario: string, fn: () => Promise<Fields>): Promise<void> => {
    ctx.say(`${scenario} on united…`)
    let line: Fields
    try {
      line = await fn()
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      ctx.say(`${scenario} on united failed: ${message}`)
      line = { scenario, target: 'united', error: message }
    }
    if (ctx.united.proc.exited()) throw new Error(`united exited during ${scenario}; its last output:\n${ctx.united.proc.output().slice(-4000)}`)
    ctx.emit([line])
  }
  if (has('history-aggregate') || has('history-export')) {
    // The history robot: --history-frames frames over the 24 h before now.
    const to = new Date()
    const from = new Date(to.getTime() - DAY_MS)
    ctx.say(`history: loading ${ctx.frames} frames over 24 h into one robot (United stopped meanwhile)…`)
    let robot: HistoryRobot | Error
    try {
      const loaded = await loadRobot(ctx, 'history', 'h', ctx.frames, from.getTime(), DAY_MS, {}, true)
      robot = { uuid: loaded.uuid, from, to, rollupS: loaded.rollupS }
    } catch (err) {
      robot = err instanceof Error ? err : new Error(String(err))
    }
    const loaded = robot
    const dialect = ctx.united.sqliteFile() === undefined ? 'postgres' : 'sqlite'
    // a failed setup fails both scenarios' lines, not the run
    const withRobot = async (fn: (r: HistoryRobot) => Promise<Fields>): Promise<Fields> => {
      if (loaded instanceof Error) throw new Error(`the setup failed: ${loaded.message}`)
      return await fn(loaded)
    }
    if (has('history-aggregate')) await run('history-aggregate', async () => await withRobot(async (r) => await aggregate(ctx, r, dialect)))
    if (has('history-export')) await run('history-export', async () => await withRobot(async (r) => await exportAll(ctx, r)))
  }
  if (has('history-retention')) await run('history-retention', async () => await retention(ctx))
}
