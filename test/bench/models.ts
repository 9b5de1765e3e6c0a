// models: robot models (docs/protocol.md §14) against the fixed frame types, on
// United alone (the bare broker has no models), each pair in the same run:
//
//   models-ingest     closed loop (--window frames in flight per robot) of type-4
//                     frames of a 20-field model (16 number and integer fields, 2
//                     booleans, 2 strings, ~450 bytes), each checked by the model's
//                     compiled validator, against the same robots' type-1 frames
//                     (~150 bytes): --rounds alternating rounds of --duration/rounds s
//                     each, after --warmup s of each. Target: type 4 ≥ 0.9× type 1's
//                     frames/s.
//   models-aggregate  GET …/frames/aggregate over the 24 h of one robot holding
//                     --history-frames type-4 frames of that model (bucket=60) and of
//                     another holding as many type-1 frames, 15 requests of each,
//                     alternating, after one of each reported apart. The frames are
//                     loaded with SQL while United is stopped (as history-aggregate's),
//                     the rollups forgotten, and United's job given the time to roll
//                     both robots up (rollup_s). Target: history-aggregate's, p50 ≤ 300 ms
//                     on PostgreSQL, ≤ 1.5 s on SQLite, for each type.
//
// The ingest's robots are the fleet's first --robots, given the model for the
// scenario and none again after it (type-1 frames need no model; a robot
// with one sends them unchanged).
import { afterLoad, forgetRollups, getJson, insertFrames, openSql, rolledUp, type Fields, type FrameShape, type RunnerTools, type Sql } from './history.js'
import { closedLoop, now, percentiles, positionFrame, Recorder, round, type Robot } from './load.js'
import type { United } from './targets.js'

export const MODELS_SCENARIOS = ['models'] as const

export interface ModelsContext extends RunnerTools {
  united: United
  databaseUrl: string | undefined
  runId: string
  robots: number
  window: number
  durationS: number
  rounds: number
  warmupS: number
  /** --history-frames: frames of each aggregated robot */
  frames: number
  sumMarks: (marks: Fields[], wallS: number) => Fields
}

const DAY_MS = 86_400_000
const BUCKET_S = 60
const AGGREGATE_RUNS = 15
const GOALS = { ingestRatio: 0.9, aggregateP50Ms: { postgres: 300, sqlite: 1500 } }

type FieldKind = 'number' | 'integer' | 'boolean' | 'string'
interface BenchField { name: string, type: FieldKind, lo?: number, hi?: number, values?: string[] }

/** The model's 20 telemetry fields, in declaration order. */
const FIELDS: BenchField[] = [
  { name: 'battery_v', type: 'number', lo: 20, hi: 30 },
  { name: 'current_a', type: 'number', lo: 0, hi: 10 },
  { name: 'motor_temp_l', type: 'number', lo: 20, hi: 80 },
  { name: 'motor_temp_r', type: 'number', lo: 20, hi: 80 },
  { name: 'brush_rpm', type: 'integer', lo: 0, hi: 3000 },
  { name: 'suction_pa', type: 'number', lo: 0, hi: 2000 },
  { name: 'water_level', type: 'number', lo: 0, hi: 100 },
  { name: 'dust_level', type: 'number', lo: 0, hi: 100 },
  { name: 'speed', type: 'number', lo: 0, hi: 1.5 },
  { name: 'heading', type: 'number', lo: -3.2, hi: 3.2 },
  { name: 'odometer', type: 'number', lo: 0, hi: 1_000_000 },
  { name: 'cpu_load', type: 'number', lo: 0, hi: 100 },
  { name: 'error_code', type: 'integer', lo: 0, hi: 255 },
  { name: 'cycles', type: 'integer', lo: 0, hi: 100_000 },
  { name: 'wifi_rssi', type: 'integer', lo: -100, hi: 0 },
  { name: 'satellites', type: 'integer', lo: 0, hi: 30 },
  { name: 'mopping', type: 'boolean' },
  { name: 'docked', type: 'boolean' },
  { name: 'zone', type: 'string' },
  { name: 'mode', type: 'string', values: ['eco', 'normal', 'deep'] }
]
const NUMERIC = FIELDS.filter((f) => f.type === 'number' || f.type === 'integer').map((f) => f.name)

function modelBody (name: string): Record<string, unknown> {
  return {
    name,
    description: 'npm run bench: 20 telemetry fields',
    telemetry: Object.fromEntries(FIELDS.map((f) => [f.name, {
      type: f.type,
      ...(f.lo === undefined ? {} : { minimum: f.lo, maximum: f.hi }),
      ...(f.type === 'string' ? (f.values === undefined ? { max_length: 32 } : { enum: f.values }) : {})
    }])),
    commands: {}
  }
}

// A telemetry frame as a robot sends it: every field, plausible values, the
// odometer moving with x (frames differ, as the position frames' x does).
const FIXED = FIELDS.filter((f) => f.name !== 'odometer').map((f) => {
  const value = f.type === 'boolean' ? 'false' : f.type === 'string' ? JSON.stringify(f.values?.[1] ?? 'kitchen-east') : f.type === 'integer' ? String(Math.round((f.lo as number) + ((f.hi as number) - (f.lo as number)) / 3)) : ((f.lo as number) + ((f.hi as number) - (f.lo as number)) / 3 + 0.123456).toFixed(6)
  return `"${f.name}":${value}`
}).join(',')
export function telemetryFrame (id: string, x: number): string {
  return `{"id":"${id}","type":4,"data":{${FIXED},"odometer":${x},"datetime":"2024-05-01 12:00:00"}}`
}

/** One field's random value, as SQL of `dialect` (`i`: the frame's number). */
function randomValue (dialect: Sql['dialect'], f: BenchField): string {
  const lo = f.lo ?? 0
  const span = (f.hi ?? 1) - lo
  if (dialect === 'postgres') {
    if (f.type === 'number') return `round((${lo} + random() * ${span})::numeric, 4)`
    if (f.type === 'integer') return `(${lo} + floor(random() * ${span + 1}))::int`
    if (f.type === 'boolean') return 'random() < 0.5'
    return f.values === undefined ? "'zone-' || (i % 12)" : `(ARRAY[${f.values.map((v) => `'${v}'`).join(', ')}])[1 + i % ${f.values.length}]`
  }
  if (f.type === 'number') return `round(${lo} + abs(random() % 1000001) / 1e6 * ${span}, 4)`
  if (f.type === 'integer') return `${lo} + abs(random() % ${span + 1})`
  if (f.type === 'boolean') return "json(CASE WHEN random() % 2 = 0 THEN 'true' ELSE 'false' END)"
  return f.values === undefined ? "'zone-' || (i % 12)" : `CASE i % ${f.values.length} ${f.values.map((v, k) => `WHEN ${k} THEN '${v}'`).join(' ')} END`
}

/**
 * Inserts `count` type-4 frames of the model into one robot, received evenly
 * from `fromMs` over `spanMs`, as the frame writer stores them (jsonb, or
 * the JSON text and sqliteDate times on SQLite). One statement.
 */
/** The model's frames for insertFrames: every field, random values within its declaration. */
const TELEMETRY: FrameShape = { type: 4, pairs: (dialect) => FIELDS.map((f) => `'${f.name}', ${randomValue(dialect, f)}`).join(', ') }

async function api (united: United, method: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(united.httpUrl + path, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${await united.staffToken()}` }, body: JSON.stringify(body) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text) as Record<string, unknown>
}

async function setModel (united: United, uuid: string, model: { name: string, version: number } | null): Promise<void> {
  await api(united, 'PATCH', `/admin/api/robots/${uuid}`, { model })
}

const VARIANTS = [{ name: 'type-1', type: 1, frame: positionFrame }, { name: 'type-4', type: 4, frame: telemetryFrame }] as const

async function ingest (ctx: ModelsContext, model: { name: string, version: number }): Promise<Fields[]> {
  const { united } = ctx
  const indexes = Array.from({ length: ctx.robots }, (_, i) => i)
  await united.prepareRobots(ctx.robots)
  for (const i of indexes) await setModel(united, united.robotUuid(i), model)
  const sides = VARIANTS.map((v) => ({ ...v, rec: new Recorder(), elapsed: 0, marks: [] as Fields[] }))
  let fleet: Robot[] = []
  try {
    fleet = await ctx.openFleet(indexes, sides[0]?.rec as Recorder)
    const use = (frame: (id: string, x: number) => string): void => { for (const r of fleet) r.frame = frame }
    if (ctx.warmupS > 0) {
      for (const side of sides) {
        const warm = new Recorder()
        use(side.frame)
        await closedLoop(fleet, warm, { window: ctx.window, durationS: ctx.warmupS, tag: ctx.nextTag() })
        side.rec.addErrors(warm)
      }
    }
    for (let r = 0; r < ctx.rounds; r++) {
      for (const side of sides) {
        use(side.frame)
        const mark = ctx.mark()
        await mark.start()
        side.elapsed += await closedLoop(fleet, side.rec, { window: ctx.window, durationS: ctx.durationS / ctx.rounds, tag: ctx.nextTag() })
        mark.stop()
        side.marks.push(mark.result ?? {})
      }
    }
  } finally {
    for (const r of fleet) r.frame = null
    await ctx.closeFleet(fleet)
    for (const i of indexes) await setModel(united, united.robotUuid(i), null).catch(() => {})
  }
  const lines: Fields[] = sides.map((side) => {
    const marks = ctx.sumMarks(side.marks, side.elapsed)
    const cpu = typeof marks.server_cpu_s === 'number' ? marks.server_cpu_s : NaN
    return {
      scenario: 'models-ingest',
      target: 'united',
      variant: side.name,
      robots: fleet.length,
      window: ctx.window,
      rounds: ctx.rounds,
      warmup_s: ctx.warmupS,
      frame_bytes: Buffer.byteLength(side.frame('f-0', 10.123456)),
      frames: side.rec.ok,
      duration_s: round(side.elapsed),
      frames_per_s: round(side.rec.ok / side.elapsed, 0),
      ...side.rec.latency(),
      ...ctx.errorFields(side.rec),
      ...marks,
      server_cpu_us_per_frame: round((cpu * 1e6) / Math.max(1, side.rec.ok), 1)
    }
  })
  const [t1, t4] = lines as [Fields, Fields]
  const ratio = typeof t1.frames_per_s === 'number' && typeof t4.frames_per_s === 'number' && t1.frames_per_s > 0 ? round(t4.frames_per_s / t1.frames_per_s, 3) : null
  Object.assign(t4, {
    ratio,
    ratio_of: 'frames_per_s (type 4 / type 1)',
    cpu_per_frame_ratio: typeof t1.server_cpu_us_per_frame === 'number' && typeof t4.server_cpu_us_per_frame === 'number' ? round(t4.server_cpu_us_per_frame / t1.server_cpu_us_per_frame, 3) : null,
    goal: `frames_per_s ≥ ${GOALS.ingestRatio}× type 1's`,
    goal_met: ratio !== null && ratio >= GOALS.ingestRatio,
    note: `closed loop, ${ctx.rounds} alternating rounds of type-1 and type-4 frames from the same robots; type 4: a ${FIELDS.length}-field model, every field in every frame`
  })
  return lines
}

async function aggregates (ctx: ModelsContext, model: { name: string, version: number }): Promise<Fields[]> {
  const { united } = ctx
  const to = new Date()
  const from = new Date(to.getTime() - DAY_MS)
  const uuids = { 1: await united.extraRobot('models-type1'), 4: await united.extraRobot('models-type4') }
  await setModel(united, uuids[4], model)
  ctx.say(`  loading ${ctx.frames} type-1 and ${ctx.frames} type-4 frames over 24 h into two robots (United stopped meanwhile)…`)
  await united.stop()
  let sql: Sql | undefined
  try {
    sql = await openSql(united, ctx.databaseUrl)
    // The ingest's frames go first: their minutes close during the requests,
    // and the rollup job rolling them (1.5 million frames on PostgreSQL)
    // would be measured with the aggregates (it made type 1's p50 20× the
    // history scenario's).
    await sql.query(sql.dialect === 'postgres' ? 'TRUNCATE frames' : 'DELETE FROM frames')
    const ids = { 1: 0, 4: 0 }
    for (const type of [1, 4] as const) {
      const [row] = await sql.query('SELECT id FROM robots WHERE uuid = $1', [uuids[type]])
      ids[type] = Number(row?.id)
    }
    const t0 = now()
    await insertFrames(sql, ids[1], 'p', ctx.frames, from.getTime(), DAY_MS)
    const t1 = now()
    await insertFrames(sql, ids[4], 't', ctx.frames, from.getTime(), DAY_MS, TELEMETRY)
    const t2 = now()
    await afterLoad(sql)
    await forgetRollups(sql)
    ctx.say(`  inserted: type 1 in ${((t1 - t0) / 1000).toFixed(1)} s, type 4 in ${((t2 - t1) / 1000).toFixed(1)} s; ${((now() - t2) / 1000).toFixed(1)} s after`)
  } finally {
    await sql?.close()
    await united.start()
  }
  const rollupS = await rolledUp(ctx)
  const token = await united.staffToken()
  const failures: Record<1 | 4, string[]> = { 1: [], 4: [] }
  const buckets: Record<1 | 4, number> = { 1: 0, 4: 0 }
  const once = async (type: 1 | 4): Promise<number> => {
    const url = `${united.httpUrl}/robots/${uuids[type]}/frames/aggregate?type=${type}&from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&bucket=${BUCKET_S}`
    const t0 = now()
    const res = await getJson(url, token)
    const ms = now() - t0
    const items = res.json?.items as Array<{ count: number, avg: Record<string, number> }> | undefined
    if (res.status !== 200 || !Array.isArray(items)) {
      failures[type].push(`HTTP ${res.status}`)
      return ms
    }
    const counted = items.reduce((sum, b) => sum + b.count, 0)
    if (counted !== ctx.frames) failures[type].push(`the buckets count ${counted} frames, not ${ctx.frames}`)
    if (type === 4 && items.length > 0 && Object.keys(items[0]?.avg ?? {}).join() !== NUMERIC.join()) failures[4].push(`the fields are ${Object.keys(items[0]?.avg ?? {}).join()}, not the model's ${NUMERIC.length} numeric ones`)
    buckets[type] = items.length
    return ms
  }
  // the first of each after the start: it also reads from disk and plans on a fresh connection
  const first = { 1: await once(1), 4: await once(4) }
  const samples: Record<1 | 4, number[]> = { 1: [], 4: [] }
  const mark = ctx.mark()
  await mark.start()
  for (let k = 0; k < AGGREGATE_RUNS; k++) for (const type of [1, 4] as const) samples[type].push(await once(type))
  mark.stop()
  const dialect = united.sqliteFile() === undefined ? 'postgres' : 'sqlite'
  const goal = GOALS.aggregateP50Ms[dialect]
  const lines = ([1, 4] as const).map((type) => {
    const lat = percentiles(samples[type])
    return {
      scenario: 'models-aggregate',
      target: 'united',
      variant: `type-${type}`,
      frames: ctx.frames,
      fields: type === 4 ? NUMERIC.length : 4,
      bucket_s: BUCKET_S,
      buckets: buckets[type],
      requests: samples[type].length,
      first_ms: round(first[type]),
      ...lat,
      rollup_s: round(rollupS),
      ...(failures[type].length === 0 ? { errors: 0 } : { errors: failures[type].length, error_detail: failures[type].slice(0, 5) }),
      goal: `p50_ms ≤ ${goal}`,
      goal_met: lat.p50_ms <= goal,
      ...(mark.result ?? {})
    } as Fields
  })
  const [t1, t4] = lines as [Fields, Fields]
  Object.assign(t4, {
    ratio: typeof t1.p50_ms === 'number' && typeof t4.p50_ms === 'number' && t1.p50_ms > 0 ? round(t4.p50_ms / t1.p50_ms, 3) : null,
    ratio_of: 'p50_ms (type 4 / type 1)',
    note: `${AGGREGATE_RUNS} requests of each type, alternating, one after the other (the p99 of ${AGGREGATE_RUNS} is their max); first_ms: the request of each before them; rollup_s: United's job rolling both robots up from its start; server CPU: both types' requests together`
  })
  return lines
}

/** The models scenario: ingest, then aggregates (which load frames and restart United). */
export async function runModels (ctx: ModelsContext): Promise<void> {
  const run = async (scenario: string, fn: () => Promise<Fields[]>): Promise<void> => {
    ctx.say(`${scenario} on united…`)
    let lines: Fields[]
    try {
      lines = await fn()
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      ctx.say(`${scenario} on united failed: ${message}`)
      lines = [{ scenario, target: 'united', error: message }]
    }
    if (ctx.united.proc.exited()) throw new Error(`united exited during ${scenario}; its last output:\n${ctx.united.proc.output().slice(-4000)}`)
    ctx.emit(lines)
  }
  let model: { name: string, version: number } | undefined
  try {
    const created = await api(ctx.united, 'POST', '/admin/api/models', modelBody(`bench-${ctx.runId}`))
    model = { name: created.name as string, version: created.version as number }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    ctx.emit([{ scenario: 'models-ingest', target: 'united', error: message }, { scenario: 'models-aggregate', target: 'united', error: message }])
    return
  }
  const ref = model
  await run('models-ingest', async () => await ingest(ctx, ref))
  await run('models-aggregate', async () => await aggregates(ctx, ref))
}
