// docs/protocol.md §6.4: GET /robots/{uuid}/frames/aggregate. The database groups the
// frames by time bucket; the test stores frames at chosen received_at times
// and computes every bucket's count, min, max and average itself.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { createStaff, createUser, ownedRobot, robotIdOf } from '../factory.js'
import { bearer, build } from '../helper.js'
import { aggregate, expectedBuckets, prng, storeAll, type Bucket, type Stored } from '../history.js'
import { eventually } from '../mqtt.js'

const FIELDS: Record<number, string[]> = {
  1: ['speed', 'position_x', 'position_y', 'angle_theta'],
  2: ['latitude', 'longitude', 'altitude', 'accuracy'],
  3: ['battery', 'temperature', 'cpu', 'memory']
}

const T0 = Date.parse('2026-12-01T10:00:00.000Z')

/** 1,200 frames of the three types over two hours from T0 (some fields missing), and two at a bucket's edge. */
function randomFrames (random: () => number, count = 1200, at = (): number => T0 + Math.floor(random() * 2 * 3600 * 1000)): Stored[] {
  const frames: Stored[] = []
  for (let i = 0; i < count; i++) {
    const type = 1 + Math.floor(random() * 3)
    const receivedAt = new Date(at())
    const n = (): number => Math.round((random() * 200 - 100) * 1000) / 1000
    const data: Record<string, unknown> = type === 1
      ? { speed: n(), position_x: n(), position_y: n(), angle_theta: n(), datetime: '2026-12-01 10:00:00' }
      : type === 2
        ? { latitude: n() * 0.9, longitude: n(), ...(random() < 0.5 ? { altitude: n() } : {}), datetime: '2026-12-01 10:00:00' }
        : { datetime: '2026-12-01 10:00:00', ...(random() < 0.7 ? { battery: Math.abs(n()) } : { cpu: Math.abs(n()) }), ...(random() < 0.3 ? { temperature: n() } : {}) }
    frames.push({ type, data, receivedAt })
  }
  return frames
}

type Case = { type: number, from: Date, to: Date, bucket: number }
const CASES: Case[] = [
  { type: 1, from: new Date(T0), to: new Date(T0 + 2 * 3600 * 1000), bucket: 60 },
  { type: 2, from: new Date(T0), to: new Date(T0 + 2 * 3600 * 1000), bucket: 300 },
  { type: 3, from: new Date(T0), to: new Date(T0 + 2 * 3600 * 1000), bucket: 600 },
  { type: 1, from: new Date(T0 + 1234), to: new Date(T0 + 3600 * 1000 + 777), bucket: 7 },
  { type: 3, from: new Date(T0 - 86400 * 1000), to: new Date(T0 + 86400 * 1000), bucket: 86400 },
  { type: 2, from: new Date(T0 + 30 * 60 * 1000), to: new Date(T0 + 31 * 60 * 1000), bucket: 1 },
  // whole minutes in the middle, parts of minutes at both ends; two minutes a bucket
  { type: 1, from: new Date(T0 + 30_500), to: new Date(T0 + 5400_250), bucket: 60 },
  { type: 3, from: new Date(T0 + 61_001), to: new Date(T0 + 7000_000), bucket: 120 }
]

/** Every case's answer against the one computed here from `frames`. */
async function checkCases (t: Test, app: FastifyInstance, jwt: string, uuid: string, frames: Stored[], cases = CASES): Promise<void> {
  for (const c of cases) {
    const res = await aggregate(app, jwt, uuid, { type: c.type, from: c.from.toISOString(), to: c.to.toISOString(), bucket: c.bucket })
    t.equal(res.statusCode, 200)
    const body = res.json() as { type: number, bucket: number, from: string, to: string, items: Bucket[] }
    const label = `type ${c.type}, ${c.bucket} s buckets from ${c.from.toISOString()}`
    t.match(body, { type: c.type, bucket: c.bucket, from: c.from.toISOString(), to: c.to.toISOString() }, `${label}: echoed`)
    const want = expectedBuckets(frames, c.type, FIELDS[c.type] as string[], c.from, c.to, c.bucket)
    t.ok(want.length > 0, `${label}: ${want.length} buckets expected`)
    t.same(body.items.map((b) => [b.start, b.count, b.min, b.max]), want.map((b) => [b.start, b.count, b.min, b.max]), `${label}: starts, counts, min, max`)
    const avgOff = body.items.flatMap((b, i) => Object.entries(b.avg).filter(([f, v]) => Math.abs(v - (want[i]?.avg[f] ?? NaN)) > 1e-9 * Math.max(1, Math.abs(v))).map(([f]) => `${b.start} ${f}`))
    t.same(avgOff, [], `${label}: averages`)
    t.same(body.items.map((b) => Object.keys(b.avg).sort()), want.map((b) => Object.keys(b.avg).sort()), `${label}: a field no frame of the bucket has is left out`)
  }
}

t.test('buckets: counts, min, max and avg of every numeric field, checked against values computed here', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const frames = randomFrames(prng(42))
  // exact bucket edges: the last millisecond of one, the first of the next
  frames.push({ type: 1, data: { speed: 7, position_x: 0, position_y: 0, angle_theta: 0, datetime: '2026-12-01 10:00:00' }, receivedAt: new Date(T0 + 59_999) })
  frames.push({ type: 1, data: { speed: 9, position_x: 0, position_y: 0, angle_theta: 0, datetime: '2026-12-01 10:00:00' }, receivedAt: new Date(T0 + 60_000) })
  await storeAll(app, robotId, frames, 'f')
  await checkCases(t, app, user.jwt, robot.uuid, frames)

  const edges = (await aggregate(app, user.jwt, robot.uuid, { type: 1, from: new Date(T0 + 59_999).toISOString(), to: new Date(T0 + 60_000).toISOString(), bucket: 60 })).json()
  t.match(edges.items, [{ start: new Date(T0).toISOString(), min: { speed: 7 } }, { start: new Date(T0 + 60_000).toISOString(), min: { speed: 9 } }], 'from and to are inclusive, the last millisecond stays in its bucket')
  const before = (await aggregate(app, user.jwt, robot.uuid, { type: 1, from: new Date(T0 - 3600_000).toISOString(), to: new Date(T0 - 1).toISOString(), bucket: 60 })).json()
  t.same(before.items, [], 'a range without frames: no buckets')
})

t.test('the rollups (whole minutes) and the frames (the rest) give the same answers, also after late frames and retention', async (t) => {
  const app = await build(t)
  const { rollups, frames: frameService, frameWriter } = app.services
  const { user, robot } = await ownedRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const random = prng(7)
  const frames = randomFrames(random)
  await storeAll(app, robotId, frames, 'r')
  // two rolls at once: they take turns (PostgreSQL's advisory lock, SQLite's writer queue)
  await rollups.rebuild()
  await Promise.all([rollups.catchUp(), rollups.catchUp()])
  const window = await rollups.window()
  t.ok(window !== null && window.from <= T0 / 60_000 && window.until >= T0 / 60_000 + 120, 'the rollups answer for the two hours')
  const [rows] = await app.db.sequelize.query('SELECT count(*) AS n FROM frame_rollups WHERE robot_id = $1', { bind: [robotId] }) as [Array<{ n: unknown }>, unknown]
  t.ok(Number(rows[0]?.n) > 300, `${Number(rows[0]?.n)} minute rows rolled`)
  await checkCases(t, app, user.jwt, robot.uuid, frames)
  // the answer does come from the rollups: a row changed behind United's back shows
  const probe = frames.find((f) => f.type === 1 && f.receivedAt.getTime() > T0 + 600_000) as Stored
  const minute = Math.floor(probe.receivedAt.getTime() / 60_000)
  const counted = async (): Promise<number | undefined> => ((await aggregate(app, user.jwt, robot.uuid, { type: 1, from: new Date(T0).toISOString(), to: new Date(T0 + 7200_000).toISOString(), bucket: 60 })).json().items as Bucket[])
    .find((b) => b.start === new Date(minute * 60_000).toISOString())?.count
  const before = await counted()
  const bump = async (by: number): Promise<void> => { await app.db.sequelize.query(`UPDATE frame_rollups SET n = n + ${by} WHERE robot_id = $1 AND minute = $2 AND type = 1`, { bind: [robotId, minute] }) }
  await bump(1000)
  t.equal(await counted(), (before ?? 0) + 1000, 'a whole minute is read from its rollup')
  await bump(-1000)

  // frames received long ago and stored now: their minutes are rolled again
  const late = randomFrames(random, 150)
  await storeAll(app, robotId, late, 'late')
  frames.push(...late)
  await checkCases(t, app, user.jwt, robot.uuid, frames, CASES.slice(0, 3))
  // the same through the frame writer, whose rolls follow its commits
  const written = randomFrames(random, 40)
  await Promise.all(written.map(async (f, i) => { await frameWriter.write({ robotId, frameId: `w-${i}`, type: f.type, data: f.data, recordedAt: null, receivedAt: f.receivedAt }) }))
  frames.push(...written)
  const total = (): Promise<number> => aggregate(app, user.jwt, robot.uuid, { type: 1, from: new Date(T0).toISOString(), to: new Date(T0 + 7200_000).toISOString(), bucket: 3600 })
    .then((res) => (res.json().items as Bucket[]).reduce((n, b) => n + b.count, 0))
  const want = frames.filter((f) => f.type === 1 && f.receivedAt.getTime() <= T0 + 7200_000).length
  await eventually(total, (n) => n === want)
  await checkCases(t, app, user.jwt, robot.uuid, frames, CASES.slice(0, 3))

  // retention: the rollups stop at the first whole minute after the cutoff
  const cutoff = new Date(T0 + 45 * 60_000 + 30_000)
  await frameService.removeOlderThan(cutoff)
  const after = await rollups.window()
  t.equal(after?.from, Math.ceil(cutoff.getTime() / 60_000), 'the rollups answer from the first whole minute after the cutoff')
  const [old] = await app.db.sequelize.query('SELECT count(*) AS n FROM frame_rollups WHERE robot_id = $1 AND minute < $2', { bind: [robotId, after?.from] }) as [Array<{ n: unknown }>, unknown]
  t.equal(Number(old[0]?.n), 0, 'the rollups of the removed minutes are gone')
  const kept = frames.filter((f) => f.receivedAt >= cutoff)
  await checkCases(t, app, user.jwt, robot.uuid, kept, [CASES[0], CASES[1], CASES[6], { type: 2, from: new Date(T0 + 40 * 60_000), to: new Date(T0 + 50 * 60_000 + 5), bucket: 60 }] as Case[])

  // a robot deleted: its rollups go with its frames
  await app.services.robots.remove(robot.uuid, { actor: null })
  const [gone] = await app.db.sequelize.query('SELECT count(*) AS n FROM frame_rollups WHERE robot_id = $1', { bind: [robotId] }) as [Array<{ n: unknown }>, unknown]
  t.equal(Number(gone[0]?.n), 0, 'a deleted robot leaves no rollups')
})

t.test('the job rolls in the background, from the oldest frame on', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const frames = randomFrames(prng(9), 300)
  await storeAll(app, await robotIdOf(app, robot.uuid), frames, 'b')
  await app.services.rollups.rebuild()
  const window = await eventually(async () => await app.services.rollups.window(), (w) => w !== null && w.from <= T0 / 60_000 && w.until >= Math.floor((Date.now() - 180_000) / 60_000), 20_000)
  t.ok(window !== null, `rolled from ${new Date((window?.from ?? 0) * 60_000).toISOString()} to ${new Date((window?.until ?? 0) * 60_000).toISOString()}`)
  await checkCases(t, app, user.jwt, robot.uuid, frames, CASES.slice(0, 3))
})

t.test('the parameters are required and checked; more than 10,000 buckets is 400', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const good = { type: 1, from: '2026-12-01T00:00:00Z', to: '2026-12-01T01:00:00Z', bucket: 60 }
  const bad: Array<Record<string, string | number>> = [
    { ...good, type: 0 }, { ...good, type: 5 }, { ...good, type: 'x' },
    { ...good, bucket: 0 }, { ...good, bucket: 86401 }, { ...good, bucket: 1.5 }, { ...good, bucket: 'minute' },
    { ...good, from: 'yesterday' }, { ...good, to: '2026-13-01T00:00:00Z' },
    { ...good, from: '2026-12-01T02:00:00Z' },
    { ...good, bucket: 1, to: '2026-12-01T02:46:40Z' }, // 10,001 buckets
    { ...good, extra: 1 }
  ]
  for (const key of ['type', 'from', 'to', 'bucket']) {
    const without: Record<string, string | number> = { ...good }
    delete without[key]
    bad.push(without)
  }
  for (const query of bad) {
    const res = await aggregate(app, user.jwt, robot.uuid, query)
    t.equal(res.statusCode, 400, JSON.stringify(query))
  }
  const tooMany = await aggregate(app, user.jwt, robot.uuid, { ...good, bucket: 1, to: '2026-12-01T02:46:40Z' })
  t.match(tooMany.json().message, /10001 buckets/)
  const exactly = await aggregate(app, user.jwt, robot.uuid, { ...good, bucket: 1, to: '2026-12-01T02:46:39Z' })
  t.equal(exactly.statusCode, 200, '10,000 buckets are allowed')
  t.same(exactly.json().items, [], 'no frames: no buckets')
})

t.test('the same access rule as the history: 401 without a JWT, 404 without access, staff see every robot', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  const query = `type=1&from=2026-12-01T00:00:00Z&to=2026-12-01T01:00:00Z&bucket=60`
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/aggregate?${query}` })).statusCode, 401)
  const stranger = await createUser(app)
  const refused = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/aggregate?${query}`, headers: bearer(stranger.jwt) })
  t.equal(refused.statusCode, 404)
  t.equal(refused.json().code, 'UNITED_ROBOT_NOT_FOUND')
  const unknown = await app.inject({ method: 'GET', url: `/robots/00000000-0000-4000-8000-000000000000/frames/aggregate?${query}`, headers: bearer(stranger.jwt) })
  t.same(unknown.json(), refused.json(), 'the same answer as a robot that does not exist')
  const staff = await createStaff(app)
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/aggregate?${query}`, headers: bearer(staff.jwt) })).statusCode, 200)
})

t.test('AGGREGATE_MAX_ROWS: estimated before the aggregate runs, from the rollups where they cover the range and a bounded count of the rest', async (t) => {
  const app = await build(t, { AGGREGATE_MAX_ROWS: '100' })
  const { rollups } = app.services
  const { user, robot } = await ownedRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  // 100 position frames over ten whole minutes (ten a minute), and hardware frames beside them, which do not count.
  const frames: Stored[] = []
  for (let i = 0; i < 100; i++) frames.push({ type: 1, data: { speed: i }, receivedAt: new Date(T0 + Math.floor(i / 10) * 60_000 + (i % 10) * 5000) })
  for (let i = 0; i < 50; i++) frames.push({ type: 3, data: { battery: i }, receivedAt: new Date(T0 + i * 6000) })
  await storeAll(app, robotId, frames, 'm')
  await rollups.rebuild()
  await rollups.catchUp()
  const range = { type: 1, from: new Date(T0).toISOString(), to: new Date(T0 + 600_000 - 1).toISOString() }
  const total = (res: Awaited<ReturnType<typeof aggregate>>): number => (res.json().items as Bucket[]).reduce((n, b) => n + b.count, 0)

  const atLimit = await aggregate(app, user.jwt, robot.uuid, { ...range, bucket: 59 })
  t.equal(atLimit.statusCode, 200, 'bucket=59 over exactly AGGREGATE_MAX_ROWS frames')
  t.equal(total(atLimit), 100)

  // one more frame in the range (received long ago: its minute is rolled again as it is stored)
  const extra: Stored = { type: 1, data: { speed: 1000 }, receivedAt: new Date(T0 + 5 * 60_000 + 30_500) }
  await storeAll(app, robotId, [extra], 'extra')
  frames.push(extra)
  const over = await aggregate(app, user.jwt, robot.uuid, { ...range, bucket: 59 })
  t.equal(over.statusCode, 400, 'one frame over: 400')
  t.equal(over.json().code, 'UNITED_RANGE_TOO_LARGE')
  t.match(over.json().message, /more than 100 stored frames/)

  // Whole-minute buckets read those minutes from the rollups: they do not count.
  for (const bucket of [60, 120, 3600]) {
    const res = await aggregate(app, user.jwt, robot.uuid, { ...range, bucket })
    t.equal(res.statusCode, 200, `bucket=${bucket}: served from the rollups`)
    t.same(res.json().items, expectedBuckets(frames, 1, FIELDS[1] as string[], new Date(range.from), new Date(range.to), bucket), `bucket=${bucket}: the right buckets`)
  }
  // ...and do read them: a rollup row changed behind United's back shows in 120 s and 3600 s buckets
  const minute = Math.floor((T0 + 3 * 60_000) / 60_000)
  await app.db.sequelize.query('UPDATE frame_rollups SET n = n + 1000 WHERE robot_id = $1 AND minute = $2 AND type = 1', { bind: [robotId, minute] })
  for (const bucket of [120, 3600]) {
    t.equal(total(await aggregate(app, user.jwt, robot.uuid, { ...range, bucket })), 1101, `bucket=${bucket} reads the minutes' rollups`)
  }
  // ...and the estimate of other buckets comes from the rollups' counts, not from reading the frames
  const shorter = { type: 1, from: new Date(T0 + 3 * 60_000).toISOString(), to: new Date(T0 + 4 * 60_000 - 1).toISOString() }
  t.equal((await aggregate(app, user.jwt, robot.uuid, { ...shorter, bucket: 30 })).json().code, 'UNITED_RANGE_TOO_LARGE', 'one minute of 10 frames whose rollup counts 1,010: refused')
  await app.db.sequelize.query('UPDATE frame_rollups SET n = n - 1000 WHERE robot_id = $1 AND minute = $2 AND type = 1', { bind: [robotId, minute] })
  t.equal((await aggregate(app, user.jwt, robot.uuid, { ...shorter, bucket: 30 })).statusCode, 200, 'and answered once it counts 10')
})

t.test('AGGREGATE_MAX_ROWS: the frames the rollups do not cover count for whole-minute buckets too', async (t) => {
  const app = await build(t, { AGGREGATE_MAX_ROWS: '100' })
  const { user, robot } = await ownedRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  // The last minute: not rolled yet (minutes are rolled two minutes after they close).
  const now = Date.now()
  const recent: Stored[] = Array.from({ length: 100 }, (_, i) => ({ type: 1, data: { speed: i }, receivedAt: new Date(now - 30_000 + i * 10) }))
  await storeAll(app, robotId, recent, 'recent')
  const range = { type: 1, from: new Date(now - 60_000).toISOString(), to: new Date(now + 60_000).toISOString() }
  const atLimit = await aggregate(app, user.jwt, robot.uuid, { ...range, bucket: 60 })
  t.equal(atLimit.statusCode, 200, 'exactly AGGREGATE_MAX_ROWS frames outside the rollups')
  t.same(atLimit.json().items, expectedBuckets(recent, 1, FIELDS[1] as string[], new Date(range.from), new Date(range.to), 60))
  await storeAll(app, robotId, [{ type: 1, data: { speed: 1 }, receivedAt: new Date(now - 1000) }], 'one-more')
  const over = await aggregate(app, user.jwt, robot.uuid, { ...range, bucket: 60 })
  t.equal(over.statusCode, 400, 'one over: 400')
  t.equal(over.json().code, 'UNITED_RANGE_TOO_LARGE')
  t.equal((await aggregate(app, user.jwt, robot.uuid, { ...range, type: 3, bucket: 60 })).statusCode, 200, 'frames of another type do not count')
})

t.test("a sensor's extreme values cannot fail an aggregate or the rollup job: sums are bounded, min and max exact", async (t) => {
  const app = await build(t)
  const { rollups } = app.services
  const { user, robot } = await ownedRobot(app)
  const other = await ownedRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const at = (s: number): Date => new Date(T0 + s * 1000)
  // twice 1.7e308 in one minute: its float8 sum overflows; 1e200: its float8 avg (sum of squares) overflows on PostgreSQL
  const frames: Stored[] = [
    { type: 1, data: { speed: 1.7e308, position_x: 1e200, position_y: -1.7e308, angle_theta: 1 }, receivedAt: at(1) },
    { type: 1, data: { speed: 1.7e308, position_x: 2e200, position_y: -1.7e308, angle_theta: 3 }, receivedAt: at(2) },
    { type: 1, data: { speed: 1, position_x: 1, position_y: 1, angle_theta: 1 }, receivedAt: at(200) }
  ]
  await storeAll(app, robotId, frames, 'x')
  await storeAll(app, await robotIdOf(app, other.robot.uuid), [{ type: 1, data: { speed: 2 }, receivedAt: at(5) }], 'o')
  const check = (body: { items: Bucket[] }, label: string): void => {
    const first = body.items[0] as Bucket
    t.equal(first.count, 2, `${label}: both frames counted`)
    t.same([first.min.speed, first.max.speed, first.min.position_y], [1.7e308, 1.7e308, -1.7e308], `${label}: min and max exact`)
    t.equal(first.avg.angle_theta, 2, `${label}: ordinary fields unaffected`)
    for (const field of ['speed', 'position_x', 'position_y']) t.ok(Number.isFinite(first.avg[field]), `${label}: avg of ${field} is a finite number`)
    t.equal(first.avg.speed, 1e290, `${label}: values beyond ±1e290 count as ±1e290 in averages`)
  }
  const query = { type: 1, from: at(0).toISOString(), to: at(299).toISOString() }
  const raw = await aggregate(app, user.jwt, robot.uuid, { ...query, bucket: 59 })
  t.equal(raw.statusCode, 200, raw.body)
  check(raw.json(), 'from the frames')
  await rollups.rebuild()
  await rollups.catchUp()
  const window = await rollups.window()
  t.ok(window !== null && window.until > T0 / 60_000 + 4, 'the rollup job rolled past the extreme minute')
  const rolled = await aggregate(app, user.jwt, robot.uuid, { ...query, bucket: 60 })
  t.equal(rolled.statusCode, 200, rolled.body)
  check(rolled.json(), 'from the rollups')
  const others = await aggregate(app, other.user.jwt, other.robot.uuid, { ...query, bucket: 60 })
  t.match(others.json().items, [{ count: 1, min: { speed: 2 } }], "the other robots' minutes were rolled too")
})
