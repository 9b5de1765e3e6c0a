// docs/protocol.md §14 and §6: the history of telemetry frames (type 4). The
// list takes them as any type; aggregates give min, max and avg of the
// number and integer fields of the robot's current model, from the frames and
// from the per-field rollups alike; the CSV export has a column per telemetry
// field of the current model, in declaration order. Frames stored under an
// older model version keep their data as stored.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import type { ModelRef } from '../../src/contract/models.js'
import { CLEANER_MODEL, createModel, createRobot, createStaff, createUser, grantRole, robotIdOf, setModel, type TestRobot } from '../factory.js'
import { bearer, build } from '../helper.js'
import { aggregate, expectedBuckets, parseCsv, prng, storeAll, type Bucket, type Stored } from '../history.js'
import { eventually } from '../mqtt.js'


const T0 = Date.parse('2026-12-01T10:00:00.000Z')
const DATETIME = '2026-12-01 10:00:00'

const pick = <T>(random: () => number, values: T[]): T => values[Math.floor(random() * values.length)] as T

/** A model of its own per test (names are per database, versions per name). */
let models = 0
function cleaner (): typeof CLEANER_MODEL {
  return { ...CLEANER_MODEL, name: `cleaner_h${++models}` }
}

/** Version 2 of a cleaner: a new number field first, water_level now a string, mode now an integer, no more enum. */
function cleanerV2 (name: string): { name: string } & Record<string, unknown> {
  return {
    name,
    telemetry: {
      suction: { type: 'number', minimum: 0, maximum: 100 },
      brush_rpm: { type: 'integer', minimum: 0, maximum: 3000 },
      mopping: { type: 'boolean' },
      water_level: { type: 'string', max_length: 16 },
      zone: { type: 'string', max_length: 32 },
      mode: { type: 'integer', minimum: 0, maximum: 9 }
    },
    commands: {}
  }
}

/** A version-1 cleaner frame's data; each field may be missing. */
function v1Data (random: () => number): Record<string, unknown> {
  const data: Record<string, unknown> = { datetime: DATETIME }
  if (random() < 0.9) data.brush_rpm = Math.floor(random() * 3000)
  if (random() < 0.7) data.water_level = Math.round(random() * 100_000) / 1000
  if (random() < 0.5) data.mopping = random() < 0.5
  if (random() < 0.5) data.zone = pick(random, ['kitchen', 'hall, east', '=HYPERLINK("x")', "'quoted"])
  if (random() < 0.5) data.mode = pick(random, ['eco', 'normal', 'deep'])
  return data
}

function v2Data (random: () => number): Record<string, unknown> {
  const data: Record<string, unknown> = { datetime: DATETIME }
  if (random() < 0.8) data.suction = Math.round(random() * 100_000) / 1000
  if (random() < 0.9) data.brush_rpm = Math.floor(random() * 3000)
  if (random() < 0.5) data.mopping = random() < 0.5
  if (random() < 0.5) data.water_level = pick(random, ['full', 'low', '-1'])
  if (random() < 0.6) data.mode = Math.floor(random() * 10)
  return data
}

/** `count` frames over two hours from T0: telemetry made by `data`, and a position frame now and then. */
function framesOf (random: () => number, count: number, data: (random: () => number) => Record<string, unknown>, span = 2 * 3600_000): Stored[] {
  return Array.from({ length: count }, () => {
    const receivedAt = new Date(T0 + Math.floor(random() * span))
    return random() < 0.15
      ? { type: 1, data: { speed: random(), position_x: 1, position_y: 2, angle_theta: 0, datetime: DATETIME }, receivedAt }
      : { type: 4, data: data(random), receivedAt }
  })
}

type Case = { from: Date, to: Date, bucket: number }
const CASES: Case[] = [
  { from: new Date(T0), to: new Date(T0 + 2 * 3600_000), bucket: 60 },
  { from: new Date(T0), to: new Date(T0 + 2 * 3600_000), bucket: 600 },
  // parts of minutes at both ends, whole minutes between
  { from: new Date(T0 + 30_500), to: new Date(T0 + 5400_250), bucket: 120 },
  { from: new Date(T0 + 1234), to: new Date(T0 + 3600_000 + 777), bucket: 7 }
]

async function checkCases (t: Test, app: FastifyInstance, jwt: string, uuid: string, frames: Stored[], fields: string[], label: string): Promise<void> {
  for (const c of CASES) {
    const res = await aggregate(app, jwt, uuid, { type: 4, from: c.from.toISOString(), to: c.to.toISOString(), bucket: c.bucket })
    t.equal(res.statusCode, 200, res.body.slice(0, 200))
    const body = res.json() as { type: number, items: Bucket[] }
    const want = expectedBuckets(frames, 4, fields, c.from, c.to, c.bucket)
    const at = `${label}, ${c.bucket} s buckets from ${c.from.toISOString()}`
    t.equal(body.type, 4)
    t.ok(want.length > 0, `${at}: ${want.length} buckets expected`)
    t.same(body.items.map((b) => [b.start, b.count, b.min, b.max]), want.map((b) => [b.start, b.count, b.min, b.max]), `${at}: starts, counts, min, max`)
    const avgOff = body.items.flatMap((b, i) => Object.entries(b.avg).filter(([f, v]) => Math.abs(v - (want[i]?.avg[f] ?? NaN)) > 1e-9 * Math.max(1, Math.abs(v))).map(([f]) => `${b.start} ${f}`))
    t.same(avgOff, [], `${at}: averages`)
    t.same(body.items.map((b) => Object.keys(b.avg).sort()), want.map((b) => Object.keys(b.avg).sort()), `${at}: only the numeric fields of the current model that the bucket has`)
  }
}

/** The job has rolled every closed minute: its ticks find nothing to do until the next minute closes. */
async function caughtUp (app: FastifyInstance): Promise<void> {
  await eventually(async () => await app.services.rollups.window(), (w) => w !== null && w.until >= Math.floor((Date.now() - 120_000) / 60_000), 60_000)
}

/**
 * The aggregates answered from the frames alone: the rollups forgotten while
 * the job has nothing to do (forgotten during one of its steps, they would
 * start again where that step did), asked again if the job rolled meanwhile.
 */
async function checkRaw (t: Test, app: FastifyInstance, jwt: string, uuid: string, frames: Stored[], fields: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await caughtUp(app)
    await app.services.rollups.rebuild()
    if (await app.services.rollups.window() !== null) continue
    await checkCases(t, app, jwt, uuid, frames, fields, 'from the frames')
    // the job runs every 10 s: had it rolled meanwhile, the answers were the rollups'; ask again
    if (await app.services.rollups.window() === null || attempt >= 3) break
  }
  await caughtUp(app)
}

async function fieldRollups (app: FastifyInstance, robotId: number, where = ''): Promise<number> {
  const [rows] = await app.db.sequelize.query(`SELECT count(*) AS n FROM frame_field_rollups WHERE robot_id = $1 ${where}`, { bind: [robotId] }) as [Array<{ n: unknown }>, unknown]
  return Number(rows[0]?.n)
}



/** A robot with `model`, a viewer of it, and its row id. */
async function viewedRobot (app: FastifyInstance, model?: ModelRef): Promise<{ robot: TestRobot, robotId: number, jwt: string }> {
  const robot = await createRobot(app, { model })
  const viewer = await createUser(app)
  await grantRole(app, viewer, robot, 'viewer')
  return { robot, robotId: await robotIdOf(app, robot.uuid), jwt: viewer.jwt }
}

t.test('type 4: listed as any type; aggregates of the model\'s number and integer fields, the same from the frames and from the rollups', async (t) => {
  const app = await build(t)
  const { rollups } = app.services
  const model = await createModel(app, cleaner())
  const { robot, robotId, jwt } = await viewedRobot(app, model)
  const random = prng(11)
  const frames = framesOf(random, 1200, v1Data)
  await storeAll(app, robotId, frames, 'c')
  const fields = ['brush_rpm', 'water_level']

  // a viewer reads the history (the roles rule of every history read)
  const listed = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?type=4&limit=1000`, headers: bearer(jwt) })
  t.equal(listed.statusCode, 200, listed.body.slice(0, 200))
  const items = listed.json().items as Array<{ frame_id: string, type: number, data: Record<string, unknown>, received_at: string }>
  const telemetry = frames.filter((f) => f.type === 4)
  t.equal(items.length, Math.min(1000, telemetry.length), 'a page of type-4 frames')
  t.ok(items.every((i) => i.type === 4), 'only type 4')
  const newest = [...telemetry].sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime())[0] as Stored
  t.same(items[0]?.data, newest.data, 'newest first, data as stored')
  const cursor = listed.json().next_cursor as string | null
  t.ok(cursor !== null || telemetry.length <= 1000, 'a cursor to the rest')

  await checkRaw(t, app, jwt, robot.uuid, frames, fields)
  await rollups.catchUp()
  const window = await rollups.window()
  t.ok(window !== null && window.from <= T0 / 60_000 && window.until >= T0 / 60_000 + 120, 'the rollups answer for the two hours')
  t.ok(await fieldRollups(app, robotId) > 100, 'field rollups were made')
  t.equal(await fieldRollups(app, robotId, "AND field NOT IN ('brush_rpm', 'water_level')"), 0, 'only fields whose values are numbers: no boolean, no string')
  await checkCases(t, app, jwt, robot.uuid, frames, fields, 'from the rollups')

  // the answer does come from the field rollups: a row changed behind United's back shows
  const probe = telemetry.find((f) => typeof f.data.brush_rpm === 'number' && f.receivedAt.getTime() > T0 + 600_000) as Stored
  const minute = Math.floor(probe.receivedAt.getTime() / 60_000)
  await app.db.sequelize.query("UPDATE frame_field_rollups SET hi = 99999 WHERE robot_id = $1 AND minute = $2 AND field = 'brush_rpm'", { bind: [robotId, minute] })
  const bumped = (await aggregate(app, jwt, robot.uuid, { type: 4, from: new Date(T0).toISOString(), to: new Date(T0 + 7200_000).toISOString(), bucket: 60 })).json().items as Bucket[]
  t.equal(bumped.find((b) => b.start === new Date(minute * 60_000).toISOString())?.max.brush_rpm, 99999, 'a whole minute is read from its field rollup')
  await rollups.reroll(robotId, minute, minute + 1)

  // frames received long ago and stored now: their minutes are rolled again, fields too
  const late = framesOf(random, 200, v1Data)
  await storeAll(app, robotId, late, 'late')
  frames.push(...late)
  await checkCases(t, app, jwt, robot.uuid, frames, fields, 'after late frames')

  // retention: the field rollups of the removed minutes go too
  const cutoff = new Date(T0 + 45 * 60_000 + 30_000)
  await app.services.frames.removeOlderThan(cutoff)
  t.equal(await fieldRollups(app, robotId, `AND minute < ${Math.ceil(cutoff.getTime() / 60_000)}`), 0, 'no field rollup of a removed minute is left')
  t.ok(await fieldRollups(app, robotId) > 0, 'the later ones stay')
  const kept = frames.filter((f) => f.receivedAt >= cutoff)
  const res = await aggregate(app, jwt, robot.uuid, { type: 4, from: new Date(T0).toISOString(), to: new Date(T0 + 7200_000).toISOString(), bucket: 3600 })
  t.same((res.json().items as Bucket[]).map((b) => [b.start, b.count, b.min, b.max]), expectedBuckets(kept, 4, fields, new Date(T0), new Date(T0 + 7200_000), 3600).map((b) => [b.start, b.count, b.min, b.max]), 'after retention')

  // a robot deleted: its field rollups go with its frames
  await app.services.robots.remove(robot.uuid, { actor: null })
  t.equal(await fieldRollups(app, robotId), 0, 'a deleted robot leaves no field rollups')
})

t.test('frames of an older model version: the current model\'s numeric fields are aggregated; the CSV has the current model\'s columns, the old data as stored', async (t) => {
  const app = await build(t)
  const { rollups } = app.services
  const v1def = cleaner()
  const v1 = await createModel(app, v1def)
  const v2 = await createModel(app, cleanerV2(v1def.name))
  t.equal(v2.version, v1.version + 1)
  const { robot, robotId, jwt } = await viewedRobot(app, v1)
  const random = prng(5)
  // the first hour under version 1, the second under version 2
  const old = framesOf(random, 500, v1Data, 3600_000)
  const recent = framesOf(random, 500, v2Data, 3600_000).map((f) => ({ ...f, receivedAt: new Date(f.receivedAt.getTime() + 3600_000) }))
  await storeAll(app, robotId, old, 'v1')
  await setModel(app, robot, v2)
  await storeAll(app, robotId, recent, 'v2')
  const frames = [...old, ...recent]
  // version 2's number and integer fields, in its order; water_level (a string now) is not one; mode's strings of version 1 are not numbers
  const fields = ['suction', 'brush_rpm', 'mode']
  await checkRaw(t, app, jwt, robot.uuid, frames, fields)
  await rollups.catchUp()
  await checkCases(t, app, jwt, robot.uuid, frames, fields, 'from the rollups, after a change of model')
  const all = (await aggregate(app, jwt, robot.uuid, { type: 4, from: new Date(T0).toISOString(), to: new Date(T0 + 7200_000).toISOString(), bucket: 7200 })).json().items as Bucket[]
  t.same(Object.keys(all[0]?.avg ?? {}), fields, 'the current model\'s numeric fields, in its order')

  // The CSV: the four fixed columns, then every telemetry field of version 2 in its order.
  const exported = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?format=csv&type=4`, headers: bearer(jwt) })
  t.equal(exported.statusCode, 200, exported.body.slice(0, 200))
  t.match(exported.headers['content-type'], /^text\/csv/)
  const rows = parseCsv(exported.body)
  t.same(rows[0], ['frame_id', 'type', 'recorded_at', 'received_at', 'suction', 'brush_rpm', 'mopping', 'water_level', 'zone', 'mode'], 'the header: the current model\'s fields in declaration order')
  const telemetry = frames.map((f, i) => ({ ...f, id: i < old.length ? `v1-${i}` : `v2-${i - old.length}` })).filter((f) => f.type === 4)
    .sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime() || (a.id < b.id ? -1 : 1))
  t.equal(rows.length - 1, telemetry.length, 'a row per type-4 frame')
  // a cell as a spreadsheet reader gets it back: text cells that start like a formula or with ' carry one more leading '
  const cellOf = (v: unknown): string => {
    if (v === undefined) return ''
    if (typeof v === 'string') return /^[=+\-@\t\r\n']/.test(v) ? `'${v}` : v
    return String(v)
  }
  const wrong: string[] = []
  telemetry.forEach((f, k) => {
    const row = rows[k + 1] ?? []
    const want = [f.id, '4', '', f.receivedAt.toISOString(), ...['suction', 'brush_rpm', 'mopping', 'water_level', 'zone', 'mode'].map((c) => cellOf(f.data[c]))]
    if (JSON.stringify(row) !== JSON.stringify(want)) wrong.push(`${JSON.stringify(row)} != ${JSON.stringify(want)}`)
  })
  t.same(wrong.slice(0, 3), [], 'every row, in order: numbers, true/false, text (neutralised when it starts like a formula), empty when missing; a version-1 frame as stored (its string mode, its number water_level)')
  t.ok(telemetry.some((f) => f.data.mode === 'eco') && telemetry.some((f) => typeof f.data.water_level === 'number'), 'the export held version-1 values of the changed fields')
  t.notOk(rows[0]?.includes('datetime'), 'datetime is no column of its own (recorded_at is)')
})

t.test('a robot without a model: aggregates and CSV of type 4 are 404 UNITED_NO_MODEL; the list and NDJSON answer; access comes first', async (t) => {
  const app = await build(t)
  const { robot, robotId, jwt } = await viewedRobot(app)
  // stored while it had a model, say: frames of type 4 without a model today
  await storeAll(app, robotId, [{ type: 4, data: { brush_rpm: 5, datetime: DATETIME }, receivedAt: new Date(T0) }], 'orphan')
  const range = { type: 4, from: new Date(T0 - 60_000).toISOString(), to: new Date(T0 + 60_000).toISOString(), bucket: 60 }
  const agg = await aggregate(app, jwt, robot.uuid, range)
  t.equal(agg.statusCode, 404)
  t.equal(agg.json().code, 'UNITED_NO_MODEL')
  const csv = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?format=csv&type=4`, headers: bearer(jwt) })
  t.equal(csv.statusCode, 404)
  t.equal(csv.json().code, 'UNITED_NO_MODEL')
  t.equal(csv.headers['content-disposition'], undefined, 'no attachment')
  const ndjson = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?type=4`, headers: bearer(jwt) })
  t.equal(ndjson.statusCode, 200)
  t.match(JSON.parse(ndjson.body.trim()), { frame_id: 'orphan-0', type: 4, data: { brush_rpm: 5 } }, 'NDJSON has the data as stored')
  const listed = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?type=4`, headers: bearer(jwt) })
  t.equal(listed.statusCode, 200)
  t.equal(listed.json().items.length, 1)
  t.equal((await aggregate(app, jwt, robot.uuid, { ...range, type: 1 })).statusCode, 200, 'other types need no model')

  const stranger = await createUser(app)
  const refused = await aggregate(app, stranger.jwt, robot.uuid, range)
  t.equal(refused.statusCode, 404)
  t.equal(refused.json().code, 'UNITED_ROBOT_NOT_FOUND', 'a robot one cannot see: not found, whether it has a model or not')
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?type=4`, headers: bearer(stranger.jwt) })).statusCode, 404)

  // given a model: answered
  const model = await createModel(app, cleaner())
  await setModel(app, robot, model)
  const staff = await createStaff(app)
  const answered = await aggregate(app, staff.jwt, robot.uuid, range)
  t.equal(answered.statusCode, 200)
  t.match(answered.json().items, [{ count: 1, min: { brush_rpm: 5 }, max: { brush_rpm: 5 }, avg: { brush_rpm: 5 } }])
  t.equal((await aggregate(app, jwt, robot.uuid, { ...range, type: 5 })).statusCode, 400, 'type 5 is no type')
})
