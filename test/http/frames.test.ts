// docs/protocol.md §6.3: GET /robots/{uuid}/frames — stored frames, newest first by
// time received, keyset-paginated, filtered by type and received_at.
// Frames are stored through the service, as the broker will store them.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import type { NewFrame } from '../../src/services/frames.js'
import { authentication, bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, ownedRobot } from '../factory.js'

const BASE = Date.parse('2024-05-01T12:00:00.000Z')
const at = (seconds: number): Date => new Date(BASE + seconds * 1000)

interface FrameItem { frame_id: string, type: number, data: Record<string, unknown>, recorded_at: string | null, received_at: string }

async function robotId (app: FastifyInstance, uuid: string): Promise<number> {
  return (await app.services.access.robotFor({ id: 0, username: 'x', isStaff: true }, uuid)).id
}

function frame (frameId: string, receivedAt: Date, type = 1): NewFrame {
  const data: Record<string, unknown> = type === 1
    ? { speed: 1.5, position_x: 10, position_y: -2.25, angle_theta: 0.5, datetime: '2024-05-01 12:00:00' }
    : type === 2
      ? { latitude: 48.85, longitude: 2.35, datetime: '2024-05-01T12:00:00Z' }
      : { battery: 80, datetime: '2024-05-01T12:00:00Z' }
  return { frameId, type, data, recordedAt: new Date(receivedAt.getTime() - 500), receivedAt }
}

async function get (app: FastifyInstance, jwt: string, uuid: string, query = '') {
  return await app.inject({ method: 'GET', url: `/robots/${uuid}/frames${query}`, headers: bearer(jwt) })
}

/** Walks every page with `query` (without cursor) and returns the items in order. */
async function walk (t: Test, app: FastifyInstance, jwt: string, uuid: string, query: string): Promise<{ items: FrameItem[], pages: number[] }> {
  const items: FrameItem[] = []
  const pages: number[] = []
  let cursor: string | null = null
  do {
    const q: string = `${query}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
    const res = await get(app, jwt, uuid, q)
    t.equal(res.statusCode, 200, `page ${pages.length + 1}`)
    const page = res.json()
    pages.push(page.items.length)
    items.push(...page.items)
    cursor = page.next_cursor
  } while (cursor !== null && pages.length < 100)
  return { items, pages }
}

/** Sorted newest first by received_at; a stable sort keeps ties in the order given. */
function newestFirst (items: FrameItem[]): FrameItem[] {
  return [...items].sort((a, b) => Date.parse(b.received_at) - Date.parse(a.received_at))
}

t.test('frames come newest first by received_at with exactly the contract fields', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  // Stored out of order, so that insertion order is not what is tested.
  await app.services.frames.store(id, [frame('b', at(2), 2), frame('c', at(3), 3), frame('a', at(1), 1)])
  await app.services.frames.store(id, [{ frameId: 'no-time', type: 3, data: { cpu: 12, datetime: '2024-05-01T12:00:00Z' }, recordedAt: null, receivedAt: at(0) }])

  const res = await get(app, user.jwt, robot.uuid)
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['items', 'next_cursor'])
  t.equal(body.next_cursor, null)
  t.same(body.items.map((f: FrameItem) => f.frame_id), ['c', 'b', 'a', 'no-time'])
  for (const item of body.items) {
    t.same(Object.keys(item).sort(), ['data', 'frame_id', 'received_at', 'recorded_at', 'type'], `fields of ${item.frame_id as string}`)
  }
  t.same(body.items[2], {
    frame_id: 'a',
    type: 1,
    data: { speed: 1.5, position_x: 10, position_y: -2.25, angle_theta: 0.5, datetime: '2024-05-01 12:00:00' },
    recorded_at: new Date(at(1).getTime() - 500).toISOString(),
    received_at: at(1).toISOString()
  })
  t.same(body.items[3], { frame_id: 'no-time', type: 3, data: { cpu: 12, datetime: '2024-05-01T12:00:00Z' }, recorded_at: null, received_at: at(0).toISOString() })

  const legacy = await app.inject({ method: 'GET', url: `/robots/${robot.uuid.toUpperCase()}/frames`, headers: authentication(user.jwt) })
  t.equal(legacy.statusCode, 200, 'authentication header and an upper-case uuid')
  t.same(legacy.json(), body)
})

t.test('a robot with no frames answers an empty page', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const res = await get(app, user.jwt, robot.uuid)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { items: [], next_cursor: null })
})

t.test('limit defaults to 50, accepts 1000 and refuses more', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  await app.services.frames.store(id, Array.from({ length: 60 }, (_, i) => frame(`f${i}`, at(i))))

  const byDefault = await get(app, user.jwt, robot.uuid)
  t.equal(byDefault.statusCode, 200)
  t.equal(byDefault.json().items.length, 50, 'default page size 50')
  t.type(byDefault.json().next_cursor, 'string', 'a next page follows')
  t.equal(byDefault.json().items[0].frame_id, 'f59')

  const max = await get(app, user.jwt, robot.uuid, '?limit=1000')
  t.equal(max.statusCode, 200)
  t.equal(max.json().items.length, 60)
  t.equal(max.json().next_cursor, null)

  const exact = await get(app, user.jwt, robot.uuid, '?limit=60')
  t.equal(exact.json().items.length, 60)
  t.equal(exact.json().next_cursor, null, 'no cursor when the page ends exactly at the last frame')

  for (const limit of ['1001', '0', '-1', 'ten', '1.5']) {
    const res = await get(app, user.jwt, robot.uuid, `?limit=${limit}`)
    t.equal(res.statusCode, 400, `limit=${limit}`)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request' })
  }
})

t.test('limit=7 pages through 50 frames, ties on received_at included, each exactly once', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  const stored: NewFrame[] = []
  // 40 frames a second apart, and 10 frames all received at the same instant
  // in the middle of them (so the tie spans page boundaries).
  for (let i = 0; i < 40; i++) stored.push(frame(`distinct-${i}`, at(i < 20 ? i : i + 1), 1 + (i % 3)))
  const tie = at(20)
  for (let i = 0; i < 10; i++) stored.push(frame(`tie-${i}`, tie, 1 + (i % 3)))
  // Stored in several batches, in a scrambled order.
  const scrambled = stored.map((f, i) => ({ f, k: (i * 17) % 50 })).sort((a, b) => a.k - b.k).map((x) => x.f)
  for (let i = 0; i < scrambled.length; i += 9) await app.services.frames.store(id, scrambled.slice(i, i + 9))

  const { items, pages } = await walk(t, app, user.jwt, robot.uuid, '?limit=7')
  t.same(pages, [7, 7, 7, 7, 7, 7, 7, 1])
  t.equal(items.length, 50)
  const ids = items.map((f) => f.frame_id)
  t.equal(new Set(ids).size, 50, 'no frame twice')
  t.same(new Set(ids), new Set(stored.map((f) => f.frameId)), 'every frame')
  t.same(items, newestFirst(items), 'newest first across pages')
  t.same(items.filter((f) => f.frame_id.startsWith('tie-')).map((f) => f.received_at), Array(10).fill(tie.toISOString()))

  const whole = await get(app, user.jwt, robot.uuid, '?limit=1000')
  t.same(items, whole.json().items, 'the pages concatenate to the one-page answer (same tie order)')
})

interface Plan { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, 'Actual Rows'?: number, 'Rows Removed by Filter'?: number, Plans?: Plan[] }

/** The history list's statement (text and bind parameters) run by `request`. */
async function capture (app: FastifyInstance, request: () => Promise<unknown>): Promise<{ sql: string, bind: unknown[] }> {
  const { sequelize } = app.db
  let seen: { sql: string, bind: unknown[] } | undefined
  sequelize.addHook('afterQuery', 'capture-frames-page', (options, query) => {
    const text = (query as unknown as { sql?: string }).sql
    if (text?.includes('FROM frames') === true && text.includes('ORDER BY')) seen = { sql: text, bind: (options as { bind?: unknown[] }).bind ?? [] }
  })
  try {
    await request()
  } finally {
    sequelize.removeHook('afterQuery', 'capture-frames-page')
  }
  if (seen === undefined) throw new Error('the page query was not seen')
  return seen
}

/** PostgreSQL: the scans of frames in the statement's executed plan. SQLite: the plan's steps. */
async function explain (app: FastifyInstance, { sql, bind }: { sql: string, bind: unknown[] }): Promise<{ scans: Plan[], steps: string[] }> {
  const { sequelize } = app.db
  const text = sql.replace(/;\s*$/, '')
  if (sequelize.getDialect() === 'postgres') {
    const [explained] = await sequelize.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, { bind, type: QueryTypes.SELECT }) as unknown as [{ 'QUERY PLAN': [{ Plan: Plan }] }]
    const scans: Plan[] = []
    const visit = (plan: Plan): void => { if (plan['Relation Name'] === 'frames') scans.push(plan); for (const p of plan.Plans ?? []) visit(p) }
    visit(explained['QUERY PLAN'][0].Plan)
    return { scans, steps: [] }
  }
  const plan = await sequelize.query(`EXPLAIN QUERY PLAN ${text}`, { bind, type: QueryTypes.SELECT }) as Array<{ detail: string }>
  return { scans: [], steps: plan.map((step) => step.detail) }
}

t.test('a deep page reads only its own frames: the cursor bounds the index scan of each type', async (t) => {
  // A robot streaming at 10 Hz stores 864,000 frames a day: a page far back
  // in its history must not read every newer frame to skip it. The history
  // index is (robot_id, type, received_at[, frame_id]): a page of every type
  // merges one bounded range per type.
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  const rows: NewFrame[] = []
  for (let i = 0; i < 3000; i++) rows.push(frame(`f-${String(i).padStart(5, '0')}`, at(Math.floor(i / 10)), 1 + (i % 3))) // ten frames per instant, every type
  for (let i = 0; i < rows.length; i += 500) await app.services.frames.store(id, rows.slice(i, i + 500))
  const { sequelize } = app.db
  const postgres = sequelize.getDialect() === 'postgres'
  await sequelize.query(postgres ? 'ANALYZE frames' : 'ANALYZE')

  const first = await get(app, user.jwt, robot.uuid, '?limit=1000')
  const cursor = first.json().next_cursor as string
  let page: Awaited<ReturnType<typeof get>> | undefined
  const statement = await capture(app, async () => { page = await get(app, user.jwt, robot.uuid, `?limit=50&cursor=${encodeURIComponent(cursor)}`) })
  t.equal(page?.statusCode, 200)
  t.same(page?.json().items.map((f: FrameItem) => f.frame_id), rows.slice(1950, 2000).map((f) => f.frameId).reverse(), 'the 1,001st to 1,050th newest')

  const { scans, steps } = await explain(app, statement)
  if (postgres) {
    t.same(scans.map((p) => p['Node Type']), ['Index Scan', 'Index Scan', 'Index Scan', 'Index Scan'], 'one index scan of frames per type (1-4)')
    t.ok(scans.every((p) => p['Index Name'] === 'frames_robot_type_received'), 'each through the history index')
    const read = scans.reduce((n, p) => n + (p['Actual Rows'] ?? 0) + (p['Rows Removed by Filter'] ?? 0), 0)
    t.ok(read <= 3 * 2 * 51, `the scans read ${read} frames for a page of 50, not the 1,000 newer ones`)
  } else {
    const searches = steps.filter((s) => s.includes('frames'))
    t.equal(searches.length, 4, `one search of frames per type (1-4): ${JSON.stringify(steps)}`)
    t.ok(searches.every((s) => /SEARCH frames USING INDEX frames_robot_type_received \(robot_id=\? AND type=\? AND received_at<\?\)/.test(s)), `each index search bounds received_at: ${JSON.stringify(steps)}`)
  }
})

t.test('a typed page of a type the robot has no frame of reads no frame (the type is in the history index)', async (t) => {
  // Before the type was in the index, `?type=2&limit=1` on a robot without
  // geo frames read every one of its frames to find none.
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  const rows: NewFrame[] = []
  for (let i = 0; i < 3000; i++) rows.push(frame(`f-${String(i).padStart(5, '0')}`, at(Math.floor(i / 10)), i % 2 === 0 ? 1 : 3))
  for (let i = 0; i < rows.length; i += 500) await app.services.frames.store(id, rows.slice(i, i + 500))
  const { sequelize } = app.db
  const postgres = sequelize.getDialect() === 'postgres'
  await sequelize.query(postgres ? 'ANALYZE frames' : 'ANALYZE')

  let page: Awaited<ReturnType<typeof get>> | undefined
  const statement = await capture(app, async () => { page = await get(app, user.jwt, robot.uuid, '?type=2&limit=1') })
  t.equal(page?.statusCode, 200)
  t.same(page?.json(), { items: [], next_cursor: null }, 'no geo frame')
  const hardware = await get(app, user.jwt, robot.uuid, '?type=3&limit=2')
  t.same(hardware.json().items.map((f: FrameItem) => f.frame_id), ['f-02999', 'f-02997'], 'the newest hardware frames')

  const { scans, steps } = await explain(app, statement)
  if (postgres) {
    t.same(scans.map((p) => p['Node Type']), ['Index Scan'], 'one index scan of frames')
    t.equal(scans[0]?.['Index Name'], 'frames_robot_type_received', 'through the history index')
    t.equal((scans[0]?.['Actual Rows'] ?? 0) + (scans[0]?.['Rows Removed by Filter'] ?? 0), 0, 'it read no frame')
  } else {
    t.same(steps.filter((s) => s.includes('frames')), ['SEARCH frames USING INDEX frames_robot_type_received (robot_id=? AND type=?)'], `one index search on robot and type: ${JSON.stringify(steps)}`)
  }
})

t.test('type filters the frames, with pagination', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  await app.services.frames.store(id, Array.from({ length: 30 }, (_, i) => frame(`f${i}`, at(i), 1 + (i % 3))))

  for (const type of [1, 2, 3]) {
    const { items } = await walk(t, app, user.jwt, robot.uuid, `?type=${type}&limit=4`)
    t.equal(items.length, 10, `type ${type}: 10 frames`)
    t.ok(items.every((f) => f.type === type), `type ${type} only`)
    t.same(items, newestFirst(items))
  }
  for (const type of ['0', '5', 'position']) {
    const res = await get(app, user.jwt, robot.uuid, `?type=${type}`)
    t.equal(res.statusCode, 400, `type=${type}`)
  }
})

t.test('from and to bound received_at inclusively', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  await app.services.frames.store(id, Array.from({ length: 10 }, (_, i) => frame(`f${i}`, at(i), 1 + (i % 3))))
  const ids = async (query: string): Promise<string[]> => {
    const res = await get(app, user.jwt, robot.uuid, query)
    t.equal(res.statusCode, 200, query)
    return res.json().items.map((f: FrameItem) => f.frame_id)
  }
  const q = (d: Date): string => encodeURIComponent(d.toISOString())

  t.same(await ids(`?from=${q(at(3))}&to=${q(at(6))}`), ['f6', 'f5', 'f4', 'f3'], 'both ends included')
  t.same(await ids(`?from=${q(at(7))}`), ['f9', 'f8', 'f7'], 'from alone')
  t.same(await ids(`?to=${q(at(2))}`), ['f2', 'f1', 'f0'], 'to alone')
  t.same(await ids(`?from=${q(at(4))}&to=${q(at(4))}`), ['f4'], 'from = to is one instant')
  t.same(await ids(`?from=${q(new Date(at(4).getTime() + 1))}&to=${q(new Date(at(6).getTime() - 1))}`), ['f5'], 'one millisecond past the ends excludes them')
  t.same(await ids(`?from=${q(at(6))}&to=${q(at(3))}`), [], 'from after to is empty')
  // Other ISO 8601 spellings of the same instants: an offset, no milliseconds.
  t.same(await ids(`?from=${encodeURIComponent('2024-05-01T14:00:03+02:00')}&to=2024-05-01T12:00:05Z`), ['f5', 'f4', 'f3'], 'offsets are honoured')
  t.same(await ids(`?type=1&from=${q(at(0))}&to=${q(at(9))}`), ['f9', 'f6', 'f3', 'f0'], 'combined with type')

  const { items } = await walk(t, app, user.jwt, robot.uuid, `?limit=2&from=${q(at(1))}&to=${q(at(8))}`)
  t.same(items.map((f) => f.frame_id), ['f8', 'f7', 'f6', 'f5', 'f4', 'f3', 'f2', 'f1'], 'paginated within the window')
})

t.test('malformed dates are 400', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  for (const query of ['?from=yesterday', '?to=not-a-date', '?from=2024-13-01T00:00:00Z', '?from=2024-05-01T25:00:00Z', '?to=1714564800000', '?from=']) {
    const res = await get(app, user.jwt, robot.uuid, query)
    t.equal(res.statusCode, 400, query)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, query)
  }
})

t.test('malformed cursors are 400 UNITED_BAD_CURSOR', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  await app.services.frames.store(id, [frame('a', at(1)), frame('b', at(2))])
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const cursors = [
    'garbage',
    b64([1]),
    b64(['not a date', 1]),
    b64([at(1).toISOString(), 1]),
    b64([at(1).toISOString(), 'x'.repeat(65)]),
    b64({ at: at(1).toISOString(), id: 1 }),
    b64([at(1).toISOString(), 1, 2])
  ]
  for (const cursor of cursors) {
    const res = await get(app, user.jwt, robot.uuid, `?cursor=${encodeURIComponent(cursor)}`)
    t.equal(res.statusCode, 400, cursor)
    t.same(res.json(), { statusCode: 400, error: 'Bad Request', message: 'malformed cursor', code: 'UNITED_BAD_CURSOR' }, cursor)
  }
  const empty = await get(app, user.jwt, robot.uuid, '?cursor=')
  t.equal(empty.statusCode, 400, 'an empty cursor')
  const unknown = await get(app, user.jwt, robot.uuid, '?page=2')
  t.equal(unknown.statusCode, 400, 'an unknown query parameter')
})

t.test('storing a frame id twice stores it once, per robot', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const id = await robotId(app, robot.uuid)
  const first = frame('dup', at(1))
  await app.services.frames.store(id, [first])
  // QoS 1 redelivery: the same id again, later, even with other content.
  await app.services.frames.store(id, [{ ...frame('dup', at(5), 3) }, frame('other', at(2))])
  // And twice in one batch.
  await app.services.frames.store(id, [frame('twin', at(3)), frame('twin', at(4))])

  const res = await get(app, user.jwt, robot.uuid)
  const items: FrameItem[] = res.json().items
  t.same(items.map((f) => f.frame_id), ['twin', 'other', 'dup'])
  const dup = items.find((f) => f.frame_id === 'dup')
  t.same(dup, { frame_id: 'dup', type: 1, data: first.data, recorded_at: (first.recordedAt as Date).toISOString(), received_at: at(1).toISOString() }, 'the first copy is kept')

  // Frame ids are unique per robot, not globally.
  const other = await ownedRobot(app)
  await app.services.frames.store(await robotId(app, other.robot.uuid), [frame('dup', at(9))])
  const theirs = await get(app, other.user.jwt, other.robot.uuid)
  t.same(theirs.json().items.map((f: FrameItem) => f.frame_id), ['dup'])
  t.equal((await get(app, user.jwt, robot.uuid)).json().items.length, 3, 'the first robot is unchanged')
})

t.test("another user's robot is 404, like a missing one; staff read any robot", async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  await app.services.frames.store(await robotId(app, robot.uuid), [frame('a', at(1))])
  const stranger = await createUser(app)
  const foreign = await get(app, stranger.jwt, robot.uuid)
  const missing = await get(app, stranger.jwt, randomUUID())
  t.equal(foreign.statusCode, 404)
  t.equal(missing.statusCode, 404)
  t.same(foreign.json(), missing.json(), 'identical answers')
  t.same(foreign.json(), { statusCode: 404, error: 'Not Found', message: 'robot not found', code: 'UNITED_ROBOT_NOT_FOUND' })

  const staff = await createStaff(app)
  const asStaff = await get(app, staff.jwt, robot.uuid)
  t.equal(asStaff.statusCode, 200)
  t.same(asStaff.json().items.map((f: FrameItem) => f.frame_id), ['a'])
  const ungranted = await createRobot(app)
  const empty = await get(app, staff.jwt, ungranted.uuid)
  t.same(empty.json(), { items: [], next_cursor: null }, 'staff read a robot nobody was granted')

  const anonymous = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames` })
  t.equal(anonymous.statusCode, 401)
  const notUuid = await get(app, staff.jwt, 'not-a-uuid')
  t.equal(notUuid.statusCode, 400, 'a path that is not a uuid')
})

t.test("frames of one robot never appear in another's history", async (t) => {
  const app = await build(t)
  const a = await ownedRobot(app)
  const b = await ownedRobot(app)
  await app.services.frames.store(await robotId(app, a.robot.uuid), [frame('a1', at(1)), frame('a2', at(3))])
  await app.services.frames.store(await robotId(app, b.robot.uuid), [frame('b1', at(2))])
  t.same((await get(app, a.user.jwt, a.robot.uuid)).json().items.map((f: FrameItem) => f.frame_id), ['a2', 'a1'])
  t.same((await get(app, b.user.jwt, b.robot.uuid)).json().items.map((f: FrameItem) => f.frame_id), ['b1'])
})
