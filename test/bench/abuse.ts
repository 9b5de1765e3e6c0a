// The noisy neighbour (issue 32): a user, a robot or an anonymous scraper may
// use everything the rules allow at its limits, and the other robots' frames
// are still stored and acked in time. On United alone, against one process:
//
//   abuse-baseline           --robots robots stream at --stream-hz (QoS 1, every ack timed), alone
//   abuse-history-aggregate  the same, while --abuse-users users each run HISTORY_CONCURRENCY
//                            aggregates at once, back to back, over a robot with
//                            --history-frames frames: bucket=59 (read from the raw frames) over
//                            the newest frames up to AGGREGATE_MAX_ROWS, bucket=60 and 3600 over
//                            the whole history (from the rollups), in turn
//   abuse-history-export     … while the same users export the whole history, as many at once,
//                            read as fast as the worker can
//   abuse-metrics            … while 4 anonymous scrapers read /metrics back to back, with
//                            --abuse-commands finished commands in the table
//   abuse-command-queue      … while a user queues COMMAND_QUEUE_LIMIT commands (and one more)
//                            for an offline robot that then connects and takes them, robot
//                            after robot
//   abuse-slow-exports       … while 100 readers from 50 users open exports and read them at
//                            2 KiB/s
//   abuse-login-flood        … while 20 attacker addresses (127.0.1.1-20) each keep 5 bad
//                            log-ins in flight at /users/obtain_token/ (a new unknown username
//                            each) and an MQTT CONNECT with made-up credentials; meanwhile a
//                            user logs in from 127.0.2.1 and a robot with a typed (scrypt)
//                            secret obtains a token from 127.0.2.2, once a second each
//
// Each case lasts --duration seconds; the fleet stays connected across all of
// them. The target, for every case: fleet ack p99 ≤ 50 ms and no ack lost
// (every frame sent acked ok by the end); login-flood's also: every log-in
// of the user and the robot succeeds. The abusers run in a worker thread
// (abusers.ts); what they got (requests, statuses, codes) is on each line.
// The legitimate user and robot of login-flood run on the runner's main
// thread, 2 requests a second beside the fleet: in the worker, the
// attackers' thousands of answers a second would delay their timestamps.
//
// The history and the commands are loaded with SQL while United is stopped
// (history.ts' loadRobot): through the wire they would take minutes and
// measure nothing this is about. United then runs with JWT_ACCESS_TTL=3600,
// so that the users' log-ins (one scrypt each) happen once, before the
// measurements, instead of every 5 minutes in the middle of one. Only the
// cases asked for are set up: the history for history-aggregate,
// history-export and slow-exports, the users for those and command-queue.
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { Worker } from 'node:worker_threads'
import { ABUSE_CASES, type AbuseCase, type AbuseJob, type Fields } from './abusers.js'
import { loadRobot, openSql, type Meter, type RunnerTools, type Sql } from './history.js'
import { mapLimit, now, paced, percentiles, Recorder, round, type Robot } from './load.js'
import { CommandCpuMeter, cpuSeconds, rssMiB, sleep } from './proc.js'
import type { United } from './targets.js'

export { ABUSE_CASES, type AbuseCase }

/** Robots after the fleet's that stay offline until their commands are queued (command-queue takes them in turn). */
export const ABUSE_OFFLINE_ROBOTS = 8

/**
 * The limits United runs with: its settings, read from the same environment
 * the runner passes on to it (United inherits the runner's), with the
 * defaults of src/config.ts.
 */
function setting (name: string, fallback: number, min = 1): number {
  const n = Number(process.env[name])
  return process.env[name] !== undefined && process.env[name] !== '' && Number.isInteger(n) && n >= min ? n : fallback
}
const LIMITS = {
  historyConcurrency: setting('HISTORY_CONCURRENCY', 2),
  historyNodeConcurrency: setting('HISTORY_NODE_CONCURRENCY', 8),
  aggregateMaxRows: setting('AGGREGATE_MAX_ROWS', 1_000_000),
  commandQueueLimit: setting('COMMAND_QUEUE_LIMIT', 100),
  // login-flood is meant for the defaults (10, 100, 60): its line says which ran
  authFailLimit: setting('AUTH_FAIL_LIMIT', 10, 0),
  authFailAddressLimit: setting('AUTH_FAIL_ADDRESS_LIMIT', 100, 0),
  authFailWindow: setting('AUTH_FAIL_WINDOW', 60)
}

const GOAL_ACK_P99_MS = 50
const DAY_MS = 86_400_000
const SCRAPERS = 4
const SLOW_READERS = 100
const SLOW_USERS = 50
/** "a few KB/s": what a reader on a bad link, or one that means harm, takes */
const SLOW_BYTES_PER_S = 2048
/** the longest ttl the rules allow: the queued commands wait as long as they may */
const COMMAND_TTL_S = 604_800
/**
 * bucket=59 reads raw frames: its range holds at most this share of
 * AGGREGATE_MAX_ROWS, so that the server's estimate (whole minutes of
 * rollups' counts, the edges rounded up) stays under the limit.
 */
const RAW_RANGE_SHARE = 0.99
/** United's (and the database's) CPU is sampled this long before and after each case */
const AROUND_MS = 2000
const SESSION_TTL_S = 3600
/** login-flood: the attackers' addresses (the whole of 127/8 is the loopback), and what each keeps in flight */
const FLOOD_ADDRESSES = Array.from({ length: 20 }, (_, k) => `127.0.1.${k + 1}`)
const FLOOD_LOGINS = 5
const FLOOD_CONNECTS = 1
/** login-flood: the legitimate user's and robot's addresses, and how often each logs in */
const LEGIT_USER_ADDRESS = '127.0.2.1'
const LEGIT_ROBOT_ADDRESS = '127.0.2.2'
const LEGIT_EVERY_MS = 1000
/** the cases that read the history robot */
const HISTORY_CASES: readonly AbuseCase[] = ['history-aggregate', 'history-export', 'slow-exports']

export interface AbuseContext extends RunnerTools {
  united: United
  databaseUrl: string | undefined
  /** the name of the local PostgreSQL server's processes, when it runs on this machine */
  dbProcess: string | undefined
  cases: ReadonlySet<AbuseCase>
  /** the fleet: robots 0..robots-1, each at streamHz */
  robots: number
  streamHz: number
  /** the first of the ABUSE_OFFLINE_ROBOTS provisioned robots after the fleet */
  offlineFrom: number
  durationS: number
  historyFrames: number
  /** finished commands inserted before the run (metrics) */
  commandRows: number
  /** users of the history cases, each at HISTORY_CONCURRENCY */
  users: number
  retry: 'now' | 'after'
}

// ---- setup ----------------------------------------------------------------------------

/**
 * Inserts `count` finished commands of one robot, created evenly over
 * `spanMs` from `fromMs` (inside COMMAND_RETENTION_DAYS: retention must not
 * delete them during the run): 70 % done, 10 % each failed, expired and
 * cancelled, as a table that was never pruned holds them. Ids are UUIDs made
 * of the robot's id and the row's number.
 */
async function insertCommands (sql: Sql, robotId: number, count: number, fromMs: number, spanMs: number, issuer: string): Promise<void> {
  const params = [robotId, count, fromMs, spanMs / count, issuer]
  if (sql.dialect === 'postgres') {
    await sql.query(`INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, delivered_at, acked_at, sent_at, created_at, updated_at)
SELECT (lpad(to_hex($1::int), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1::int,
  (ARRAY['auto', 'idle', 'manual'])[1 + i % 3],
  (ARRAY['done', 'done', 'done', 'done', 'done', 'done', 'done', 'failed', 'expired', 'cancelled'])[1 + i % 10],
  $5::text, NULL, CASE WHEN i % 10 < 8 THEN t END, CASE WHEN i % 10 < 8 THEN t END, t, t, t
FROM generate_series(0, $2::int - 1) AS i, LATERAL (SELECT to_timestamp(floor($3::float8 + i * $4::float8) / 1000)) AS x(t)`, params)
    await sql.query('VACUUM ANALYZE commands')
    return
  }
  await sql.query(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $2 - 1),
  x AS (SELECT i, CAST($3 + i * $4 AS INTEGER) AS ms FROM s),
  y AS (SELECT i, strftime('%Y-%m-%d %H:%M:%S', ms / 1000, 'unixepoch') || printf('.%03d +00:00', ms % 1000) AS t FROM x)
INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, delivered_at, acked_at, sent_at, created_at, updated_at)
SELECT printf('%08x-0000-4000-8000-%012x', $1, i), $1,
  CASE i % 3 WHEN 0 THEN 'auto' WHEN 1 THEN 'idle' ELSE 'manual' END,
  CASE i % 10 WHEN 7 THEN 'failed' WHEN 8 THEN 'expired' WHEN 9 THEN 'cancelled' ELSE 'done' END,
  $5, NULL, CASE WHEN i % 10 < 8 THEN t END, CASE WHEN i % 10 < 8 THEN t END, t, t, t
FROM y`, params)
  await sql.query('PRAGMA wal_checkpoint(TRUNCATE)')
}

async function api (united: United, method: string, path: string, body?: object): Promise<{ status: number, json: Record<string, unknown> | null, text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${await united.staffToken()}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(united.httpUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json: Record<string, unknown> | null = null
  try { json = text === '' ? null : JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, json, text }
}

interface Setup {
  /** the history robot (undefined when no case reads it) */
  history: { uuid: string, fromMs: number, toMs: number } | undefined
  /** the users' access JWTs; user 0 is also the one who queues commands */
  tokens: string[]
  offline: Array<{ uuid: string, password: string }>
  /** login-flood: a user who logs in, and a robot whose secret an admin typed (stored as scrypt) */
  legit: { username: string, password: string, serial: string, secret: string } | undefined
}

async function setup (ctx: AbuseContext): Promise<Setup> {
  const { united } = ctx
  const env = { JWT_ACCESS_TTL: String(SESSION_TTL_S) }
  const has = (c: AbuseCase): boolean => ctx.cases.has(c)
  const toMs = Date.now()
  const fromMs = toMs - DAY_MS
  let loaded: { uuid: string } | undefined
  if (HISTORY_CASES.some(has)) {
    ctx.say(`abuse: loading ${ctx.historyFrames} frames over 24 h into one robot (United stopped meanwhile)…`)
    loaded = await loadRobot(ctx, 'abuse-history', 'a', ctx.historyFrames, fromMs, DAY_MS, env, true)
  } else {
    await united.stop()
    await united.start(env)
  }
  if (has('metrics') && ctx.commandRows > 0) {
    const uuid = await united.extraRobot('abuse-commands')
    ctx.say(`abuse: inserting ${ctx.commandRows} finished commands of another robot (United stopped meanwhile)…`)
    await united.stop()
    const sql = await openSql(united, ctx.databaseUrl)
    try {
      const id = Number((await sql.query('SELECT id FROM robots WHERE uuid = $1', [uuid]))[0]?.id)
      const t0 = now()
      await insertCommands(sql, id, ctx.commandRows, toMs - DAY_MS, DAY_MS, `bench-abuse-${uuid.slice(0, 8)}`)
      ctx.say(`  inserted in ${((now() - t0) / 1000).toFixed(1)} s`)
    } finally {
      await sql.close()
      await united.start(env)
    }
  }
  // Users granted the history robot (and user 0 the offline robots): each
  // password costs United an scrypt, at its creation and at the log-in.
  const userCount = loaded !== undefined || has('command-queue') ? Math.max(ctx.users, has('slow-exports') ? SLOW_USERS : 0, 1) : 0
  const offline = has('command-queue')
    ? await mapLimit(Array.from({ length: ABUSE_OFFLINE_ROBOTS }, (_, k) => ctx.offlineFrom + k), 8, async (i) => {
      const creds = await united.robot(i)
      return { uuid: creds.uuid, password: creds.password }
    })
    : []
  if (userCount > 0) ctx.say(`abuse: creating ${userCount} users granted ${loaded !== undefined ? 'the history robot' : 'nothing'}${offline.length > 0 ? ` (the first also ${offline.length} offline robots)` : ''}, and logging them in…`)
  const tag = randomBytes(3).toString('hex')
  const tokens = await mapLimit(Array.from({ length: userCount }, (_, k) => k), 8, async (k) => {
    const username = `bench-abuse-${tag}-u${k}`
    const password = randomBytes(12).toString('hex')
    const created = await api(united, 'POST', '/admin/api/users', { username, password })
    if (created.status !== 201 || typeof created.json?.id !== 'number') throw new Error(`POST /admin/api/users: HTTP ${created.status} ${created.text.slice(0, 300)}`)
    const robots = [...(loaded !== undefined ? [loaded.uuid] : []), ...(k === 0 ? offline.map((r) => r.uuid) : [])]
    for (const uuid of robots) {
      const grant = await api(united, 'PUT', `/admin/api/robots/${uuid}/users/${created.json.id}`)
      if (grant.status !== 204) throw new Error(`grant: HTTP ${grant.status} ${grant.text.slice(0, 300)}`)
    }
    const res = await fetch(`${united.httpUrl}/users/obtain_token/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })
    const body = await res.json() as { access?: unknown }
    if (res.status !== 200 || typeof body.access !== 'string') throw new Error(`log-in ${username}: HTTP ${res.status}`)
    return body.access
  })
  let legit: Setup['legit']
  if (has('login-flood')) {
    ctx.say('abuse: creating the user and the robot with a typed secret who log in during login-flood…')
    legit = { username: `bench-abuse-${tag}-legit`, password: randomBytes(12).toString('hex'), serial: `bench-abuse-${tag}-typed`, secret: randomBytes(16).toString('hex') }
    const user = await api(united, 'POST', '/admin/api/users', { username: legit.username, password: legit.password })
    if (user.status !== 201) throw new Error(`POST /admin/api/users: HTTP ${user.status} ${user.text.slice(0, 300)}`)
    // a secret given (typed by an admin) is stored as scrypt; a generated one would be sha256
    const robot = await api(united, 'POST', '/admin/api/robots', { serial: legit.serial, token: legit.secret })
    if (robot.status !== 201) throw new Error(`POST /admin/api/robots: HTTP ${robot.status} ${robot.text.slice(0, 300)}`)
  }
  return { history: loaded === undefined ? undefined : { uuid: loaded.uuid, fromMs, toMs }, tokens, offline, legit }
}

// ---- the cases ----------------------------------------------------------------------

function jobOf (ctx: AbuseContext, s: Setup, which: AbuseCase): AbuseJob {
  const { united } = ctx
  const iso = (ms: number): string => encodeURIComponent(new Date(ms).toISOString())
  const history = s.history ?? { uuid: '', fromMs: 0, toMs: 0 }
  const whole = `from=${iso(history.fromMs)}&to=${iso(history.toMs)}`
  // bucket=59 over the newest frames, as many as AGGREGATE_MAX_ROWS allows
  const rawFrames = Math.min(ctx.historyFrames, Math.floor(LIMITS.aggregateMaxRows * RAW_RANGE_SHARE))
  const rawFromMs = rawFrames === ctx.historyFrames ? history.fromMs : history.toMs - Math.ceil((rawFrames * DAY_MS) / ctx.historyFrames)
  return {
    case: which,
    httpUrl: united.httpUrl,
    mqttUrl: united.mqttUrl,
    durationMs: ctx.durationS * 1000,
    retry: ctx.retry,
    tokens: which === 'slow-exports' ? s.tokens.slice(0, SLOW_USERS) : which === 'command-queue' ? s.tokens.slice(0, 1) : s.tokens.slice(0, ctx.users),
    perUser: LIMITS.historyConcurrency,
    historyRobot: history.uuid,
    historyFrames: ctx.historyFrames,
    aggregates: [
      { label: `bucket=59 over ${rawFrames} raw frames`, query: `type=1&from=${iso(rawFromMs)}&to=${iso(history.toMs)}&bucket=59`, frames: rawFrames === ctx.historyFrames ? rawFrames : undefined },
      { label: 'bucket=60 over the whole history', query: `type=1&${whole}&bucket=60`, frames: ctx.historyFrames },
      { label: 'bucket=3600 over the whole history', query: `type=1&${whole}&bucket=3600`, frames: ctx.historyFrames }
    ],
    scrapers: SCRAPERS,
    readers: SLOW_READERS,
    slowBytesPerS: SLOW_BYTES_PER_S,
    queueLimit: LIMITS.commandQueueLimit,
    commandTtl: COMMAND_TTL_S,
    offline: s.offline,
    floodAddresses: FLOOD_ADDRESSES,
    floodLogins: FLOOD_LOGINS,
    floodConnects: FLOOD_CONNECTS
  }
}

/** A worker with its job loaded, waiting for go(); its result is what the abusers saw; `onEvent` hears what it tells meanwhile (login-flood: 'all-blocked'). */
async function startWorker (job: AbuseJob, onEvent: (event: string) => void = () => {}): Promise<{ go: () => Promise<Fields>, stop: () => Promise<void> }> {
  const worker = new Worker(new URL('./abusers.js', import.meta.url), { workerData: job })
  let settle: { resolve: (f: Fields) => void, reject: (e: Error) => void } | undefined
  const result = new Promise<Fields>((resolve, reject) => { settle = { resolve, reject } })
  result.catch(() => {}) // looked at after the fleet's run
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (m: { ready?: boolean, ok?: boolean, fields?: Fields, error?: string, event?: string }) => {
      if (m.ready === true) resolve()
      else if (m.event !== undefined) onEvent(m.event)
      else if (m.ok === true) settle?.resolve(m.fields ?? {})
      else settle?.reject(new Error(`the abusers failed: ${m.error ?? 'no reason'}`))
    })
    const fail = (err: Error): void => { reject(err); settle?.reject(err) }
    worker.on('error', fail)
    worker.on('exit', (code) => { fail(new Error(`the abusers' worker exited (${code})`)) })
  })
  return {
    go: async () => { worker.postMessage('go'); return await result },
    stop: async () => { await worker.terminate() }
  }
}

/** A JSON POST on a connection of its own from `localAddress`: the status (0: no answer) and the time to the whole answer. */
async function postFrom (url: string, body: object, localAddress: string): Promise<{ status: number, ms: number }> {
  const text = JSON.stringify(body)
  const t0 = now()
  return await new Promise((resolve) => {
    let settled = false
    const done = (status: number): void => { if (!settled) { settled = true; resolve({ status, ms: now() - t0 }) } }
    const req = request(url, { method: 'POST', agent: false, localAddress, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } }, (res) => {
      res.resume()
      res.on('end', () => { done(res.statusCode ?? 0) })
      res.on('error', () => { done(0) })
    })
    req.setTimeout(30_000, () => { req.destroy() })
    req.on('error', () => { done(0) })
    req.end(text)
  })
}

/**
 * Someone who logs in from `from` every LEGIT_EVERY_MS (one at a time: a
 * log-in slower than that is followed by the next at once) until `stop()`;
 * `expected` is the status of a success.
 */
async function legitLogIns (url: string, body: object, from: string, expected: number, stop: () => boolean): Promise<Fields> {
  const statuses = new Map<string, number>()
  const ms: number[] = []
  let attempts = 0
  let ok = 0
  const t0 = now()
  for (let k = 0; ; k++) {
    const wait = t0 + k * LEGIT_EVERY_MS - now()
    if (wait > 0) await sleep(wait)
    if (stop()) break
    const a = await postFrom(url, body, from)
    attempts++
    if (a.status === expected) ok++
    statuses.set(String(a.status), (statuses.get(String(a.status)) ?? 0) + 1)
    ms.push(a.ms)
  }
  // each_ms: every answer time in order, to tell the log-ins that waited behind the attackers' hashes from those after their addresses were blocked
  return { from, attempts, ok, statuses: Object.fromEntries(statuses), ...percentiles(ms), each_ms: ms.map((x) => Math.round(x)) }
}

/** United's CPU (and the database's) over AROUND_MS, in % of one core. */
async function cpuWindow (pid: number, dbProcess: string | undefined): Promise<{ server: number, db?: number }> {
  const c0 = cpuSeconds(pid)
  const db = dbProcess === undefined ? undefined : new CommandCpuMeter(dbProcess)
  const t0 = now()
  await sleep(AROUND_MS)
  const s = (now() - t0) / 1000
  const server = round((100 * (cpuSeconds(pid) - c0)) / s, 0)
  return db === undefined ? { server } : { server, db: round((100 * db.stop()) / s, 0) }
}

/** The fleet streams for --duration seconds, alone or while the abusers of `which` run; one line. */
async function measure (ctx: AbuseContext, fleet: Robot[], which: AbuseCase | 'baseline', s: Setup): Promise<Fields> {
  const { united } = ctx
  const pid = united.proc.pid
  const rec = new Recorder()
  // login-flood: how many acks had come when every attacker address was blocked, and when that was
  let split: { acks: number, at: number } | undefined
  let goAt = 0
  const worker = which === 'baseline' ? undefined : await startWorker(jobOf(ctx, s, which), (event) => {
    if (event === 'all-blocked') split ??= { acks: rec.samples.length, at: now() - goAt }
  })
  let abusers: Fields | undefined
  let abuseError: string | undefined
  try {
    const before = await cpuWindow(pid, ctx.dbProcess)
    const mark = ctx.mark()
    await mark.start()
    const rssBefore = rssMiB(pid)
    goAt = now()
    const result = worker?.go()
    // login-flood: the legitimate user and robot log in meanwhile, on this thread
    let over = false
    const legit = which === 'login-flood' && s.legit !== undefined
      ? Promise.all([
        legitLogIns(`${united.httpUrl}/users/obtain_token/`, { username: s.legit.username, password: s.legit.password }, LEGIT_USER_ADDRESS, 200, () => over),
        legitLogIns(`${united.httpUrl}/robots/robot/obtain_token`, { serial: s.legit.serial, token: s.legit.secret }, LEGIT_ROBOT_ADDRESS, 201, () => over)
      ])
      : undefined
    let elapsed: number
    try {
      elapsed = await paced(fleet, rec, { totalRate: fleet.length * ctx.streamHz, durationS: ctx.durationS, tag: ctx.nextTag() })
    } finally {
      over = true
    }
    const [legitUser, legitRobot] = (await legit) ?? []
    try {
      abusers = await result
    } catch (err) {
      abuseError = err instanceof Error ? err.message : String(err)
    }
    mark.stop()
    const rssAfter = rssMiB(pid)
    const after = await cpuWindow(pid, ctx.dbProcess)
    const lat = rec.latency()
    const errors = ctx.errorFields(rec)
    const legitOk = legitUser === undefined || [legitUser, legitRobot].every((l) => l !== undefined && Number(l.attempts) > 0 && l.ok === l.attempts)
    return {
      scenario: `abuse-${which}`,
      target: 'united',
      robots: fleet.length,
      rate_hz_per_robot: ctx.streamHz,
      duration_s: round(elapsed),
      frames_sent: rec.sent,
      frames: rec.ok,
      frames_per_s: round(rec.ok / elapsed, 0),
      ...lat,
      lost_acks: rec.missing,
      ...errors,
      goal: `p99_ms ≤ ${GOAL_ACK_P99_MS}, no ack lost${legitUser === undefined ? '' : '; every log-in of the user 200, every token of the robot 201'}`,
      goal_met: lat.p99_ms <= GOAL_ACK_P99_MS && rec.missing === 0 && errors.errors === 0 && legitOk,
      ...(abusers === undefined ? {} : { abusers }),
      ...(split === undefined ? {} : {
        all_blocked_after_ms: round(split.at, 0),
        fleet_until_all_blocked: { acks: split.acks, ...percentiles(rec.samples.slice(0, split.acks)) },
        fleet_after_all_blocked: { acks: rec.samples.length - split.acks, ...percentiles(rec.samples.slice(split.acks)) }
      }),
      ...(legitUser === undefined ? {} : { legit_user: legitUser, legit_robot: legitRobot, limits: { AUTH_FAIL_LIMIT: LIMITS.authFailLimit, AUTH_FAIL_ADDRESS_LIMIT: LIMITS.authFailAddressLimit, AUTH_FAIL_WINDOW: LIMITS.authFailWindow } }),
      ...(abuseError === undefined ? {} : { abusers_error: abuseError }),
      rss_before_mib: round(rssBefore, 1),
      rss_after_mib: round(rssAfter, 1),
      cpu_before_pct: before.server,
      cpu_after_pct: after.server,
      ...(before.db === undefined ? {} : { db_cpu_before_pct: before.db, db_cpu_after_pct: after.db }),
      ...(mark.result ?? {}),
      note: `p50/p99/max: frame-ack latency of ${fleet.length} robots at ${ctx.streamHz} Hz (QoS 1) for ${ctx.durationS} s${which === 'baseline' ? ', alone' : ` while the abusers of ${which} ran (abusers: what they got; 429/400 are the rules' answers, not errors)`}${legitUser === undefined ? '' : `; legit_user, legit_robot: a user's log-ins from ${LEGIT_USER_ADDRESS} and a typed-secret robot's obtain_token from ${LEGIT_ROBOT_ADDRESS}, one a second each (p50/p99/max: their answer times); abusers.hashed_401: attackers' passwords checked (an scrypt each), blocked_after_ms: when each attacker address got its first 429, refused_429: refusals without a hash, mqtt.connack: CONNACK codes (4 refused, 5 blocked); fleet_until/after_all_blocked: the fleet's acks received before and after the moment every attacker address had got a 429 (all_blocked_after_ms from the start)`}; lost_acks: frames without an ack ${15} s after the last was sent; rss_*: United's RSS just before and after; cpu_before/after_pct: United's CPU in the ${AROUND_MS / 1000} s before the case and after the fleet's last ack (work left behind)`
    }
  } finally {
    await worker?.stop()
  }
}

/** One line for the summary table (bench.ts): the abusers' answers and the fleet's losses. */
export function abuseExtra (r: Fields): string | undefined {
  if (typeof r.scenario !== 'string' || !r.scenario.startsWith('abuse-')) return undefined
  if (r.error !== undefined) return undefined
  const a = r.abusers as { requests?: number, statuses?: Record<string, number>, releases?: number, release_max_ms?: number } | undefined
  const parts = [`lost ${String(r.lost_acks)}`]
  if (a !== undefined) parts.push(`abusers ${String(a.requests)} requests ${JSON.stringify(a.statuses ?? {})}${a.releases !== undefined ? `, ${a.releases} releases (max ${String(a.release_max_ms)} ms)` : ''}`)
  const mqtt = (a as { mqtt?: { connack?: unknown } } | undefined)?.mqtt
  if (mqtt !== undefined) parts.push(`CONNACKs ${JSON.stringify(mqtt.connack ?? {})}`)
  if (r.all_blocked_after_ms !== undefined) {
    const [until, after] = [r.fleet_until_all_blocked, r.fleet_after_all_blocked] as Array<{ p99_ms?: number } | undefined>
    parts.push(`all attackers blocked after ${String(r.all_blocked_after_ms)} ms (fleet p99 until / after ${String(until?.p99_ms)} / ${String(after?.p99_ms)} ms)`)
  }
  for (const [who, l] of [['user', r.legit_user], ['robot', r.legit_robot]] as const) {
    const f = l as { attempts?: number, ok?: number, p50_ms?: number, p99_ms?: number } | undefined
    if (f !== undefined) parts.push(`${who} ${String(f.ok)}/${String(f.attempts)} ok (p50 ${String(f.p50_ms)}, p99 ${String(f.p99_ms)} ms)`)
  }
  if (r.abusers_error !== undefined) parts.push(`ABUSERS FAILED ${String(r.abusers_error)}`)
  parts.push(`RSS ${String(r.rss_before_mib)}→${String(r.rss_after_mib)} MiB`)
  return parts.join('; ')
}

/** Sets up the history, the commands and the users, then runs the baseline and each case asked for, each line emitted as it is done. */
export async function runAbuse (ctx: AbuseContext): Promise<void> {
  const cases = ABUSE_CASES.filter((c) => ctx.cases.has(c))
  ctx.say(`abuse: limits HISTORY_CONCURRENCY ${LIMITS.historyConcurrency}, HISTORY_NODE_CONCURRENCY ${LIMITS.historyNodeConcurrency}, AGGREGATE_MAX_ROWS ${LIMITS.aggregateMaxRows}, COMMAND_QUEUE_LIMIT ${LIMITS.commandQueueLimit}, AUTH_FAIL_LIMIT ${LIMITS.authFailLimit}, AUTH_FAIL_ADDRESS_LIMIT ${LIMITS.authFailAddressLimit}, AUTH_FAIL_WINDOW ${LIMITS.authFailWindow}; cases: baseline, ${cases.join(', ')}; abusers ${ctx.retry === 'now' ? 'ask again at once after a 429' : 'wait for Retry-After after a 429'}`)
  let s: Setup
  try {
    s = await setup(ctx)
  } catch (err) {
    const message = `the setup failed: ${err instanceof Error ? err.message : String(err)}`
    ctx.say(`abuse: ${message}`)
    ctx.emit(['baseline', ...cases].map((c) => ({ scenario: `abuse-${c}`, target: 'united', error: message })))
    return
  }
  const connectRec = new Recorder()
  await ctx.united.prepareRobots(ctx.robots)
  const fleet = await ctx.openFleet(Array.from({ length: ctx.robots }, (_, i) => i), connectRec)
  try {
    for (const which of ['baseline', ...cases] as const) {
      ctx.say(`abuse-${which} on united: ${fleet.length} robots at ${ctx.streamHz} Hz for ${ctx.durationS} s${which === 'baseline' ? ', alone' : ''}…`)
      let line: Fields
      try {
        line = await measure(ctx, fleet, which, s)
        if (connectRec.failures > 0) line.fleet_connect_failures = connectRec.failures
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err)
        ctx.say(`abuse-${which} on united failed: ${message}`)
        line = { scenario: `abuse-${which}`, target: 'united', error: message }
      }
      if (ctx.united.proc.exited()) throw new Error(`united exited during abuse-${which}; its last output:\n${ctx.united.proc.output().slice(-4000)}`)
      ctx.emit([line])
    }
  } finally {
    await ctx.closeFleet(fleet)
  }
}
