// History reads that cannot stop the fleet: at most HISTORY_CONCURRENCY
// aggregates and exports at once per user and HISTORY_NODE_CONCURRENCY per
// node, one more answers 429 UNITED_BUSY with Retry-After; places come back
// when an export ends, when its client goes away and when it stalls; the
// admin robot page's charts count as the staff user's reads. Each limit at
// the limit and one over. Reads are held in flight by holding their
// statements (a gate before the database), or, for exports, by a client
// that does not read a body larger than the sockets' buffers.
import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { HISTORY_RETRY_AFTER } from '../../src/services/history-limiter.js'
import { createStaff, createUser, grant, ownedRobot, robotIdOf, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { eventually } from '../mqtt.js'
import { staffBrowser } from '../admin/browser.js'

const T0 = Date.parse('2026-12-01T10:00:00.000Z')
const RANGE = `from=${new Date(T0).toISOString()}&to=${new Date(T0 + 600_000).toISOString()}`

/** An export's statement (the history list's reads `data` first). */
const isExport = (sql: string): boolean => sql.includes('SELECT frame_id, type, ') && !sql.includes('SELECT frame_id, type, data, ')

/** Holds every history read's statements until opened: an aggregate's estimate, an export's pieces. */
function gate (t: Test, app: FastifyInstance): { open: () => void } {
  const sequelize = app.db.sequelize
  const original = sequelize.query.bind(sequelize)
  let release!: () => void
  const opened = new Promise<void>((resolve) => { release = resolve })
  let closed = true
  const held = (sql: unknown): boolean => typeof sql === 'string' && (sql.includes('SELECT 1 AS one FROM frames') || isExport(sql))
  sequelize.query = (async (...args: Parameters<typeof original>) => {
    if (closed && held(args[0])) await opened
    return await original(...args)
  }) as typeof original
  t.teardown(() => { sequelize.query = original; release() })
  return { open: () => { closed = false; release() } }
}

async function aggregate (app: FastifyInstance, user: TestUser, uuid: string) {
  return await app.inject({ method: 'GET', url: `/robots/${uuid}/frames/aggregate?type=1&bucket=30&${RANGE}`, headers: bearer(user.jwt) })
}

async function exportOf (app: FastifyInstance, user: TestUser, uuid: string) {
  return await app.inject({ method: 'GET', url: `/robots/${uuid}/frames/export?type=1&${RANGE}`, headers: bearer(user.jwt) })
}

type Reply = Awaited<ReturnType<typeof aggregate>>

function busy (t: Test, res: Reply, what: string): void {
  t.equal(res.statusCode, 429, `${what}: 429`)
  t.equal(res.json().code, 'UNITED_BUSY', `${what}: UNITED_BUSY`)
  t.equal(res.headers['retry-after'], String(HISTORY_RETRY_AFTER), `${what}: Retry-After`)
}

/** A robot with a few frames, granted to each user. */
async function robotFor (app: FastifyInstance, ...users: TestUser[]): Promise<string> {
  const { robot } = await ownedRobot(app)
  for (const u of users) await grant(app, u, robot)
  const id = await robotIdOf(app, robot.uuid)
  await app.services.frames.store(id, Array.from({ length: 30 }, (_, i) => ({ frameId: `f${i}`, type: 1, data: { speed: i }, recordedAt: null, receivedAt: new Date(T0 + i * 1000) })))
  return robot.uuid
}

t.test('per user: HISTORY_CONCURRENCY aggregates and exports at once, one more is 429 UNITED_BUSY with Retry-After; another user is not held back', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '2', HISTORY_NODE_CONCURRENCY: '8' })
  const alice = await createUser(app, { username: 'alice' })
  const bob = await createUser(app, { username: 'bob' })
  const uuid = await robotFor(app, alice, bob)
  const { frames } = app.services
  const held = gate(t, app)

  const running = [exportOf(app, alice, uuid), aggregate(app, alice, uuid)]
  await eventually(async () => frames.historyReads(alice.id), (n) => n === 2)
  t.equal(frames.historyReads(alice.id), 2, 'alice at her limit: an export and an aggregate run')
  busy(t, await exportOf(app, alice, uuid), "alice's third read (an export)")
  busy(t, await aggregate(app, alice, uuid), "alice's third read (an aggregate)")
  running.push(aggregate(app, bob, uuid))
  await eventually(async () => frames.historyReads(bob.id), (n) => n === 1)
  t.equal(frames.historyReads(), 3, "bob's read runs beside alice's two")
  t.equal((await app.inject({ method: 'GET', url: `/robots/${uuid}/frames?limit=5`, headers: bearer(alice.jwt) })).statusCode, 200, 'the history list is not limited')

  held.open()
  const done = await Promise.all(running)
  t.same(done.map((r) => r.statusCode), [200, 200, 200], 'the held reads finish')
  t.equal(done[0]?.body.split('\n').filter((l) => l !== '').length, 30, 'the export is whole')
  t.equal(frames.historyReads(), 0, 'every place is given back')
  t.equal((await aggregate(app, alice, uuid)).statusCode, 200, 'alice reads again')
})

t.test('per node: HISTORY_NODE_CONCURRENCY reads at once, one more is 429 whoever asks', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '2', HISTORY_NODE_CONCURRENCY: '3' })
  const [alice, bob, carol] = [await createUser(app, { username: 'alice' }), await createUser(app, { username: 'bob' }), await createUser(app, { username: 'carol' })] as [TestUser, TestUser, TestUser]
  const uuid = await robotFor(app, alice, bob, carol)
  const { frames } = app.services
  const held = gate(t, app)

  const running = [exportOf(app, alice, uuid), aggregate(app, alice, uuid), exportOf(app, bob, uuid)]
  await eventually(async () => frames.historyReads(), (n) => n === 3)
  t.equal(frames.historyReads(), 3, 'the node at its limit: three reads of two users run')
  busy(t, await aggregate(app, carol, uuid), "carol's first read")
  busy(t, await exportOf(app, bob, uuid), "bob's second read (under his own limit)")

  held.open()
  t.same((await Promise.all(running)).map((r) => r.statusCode), [200, 200, 200], 'the held reads finish')
  t.equal(frames.historyReads(), 0, 'every place is given back')
  t.equal((await aggregate(app, carol, uuid)).statusCode, 200, 'carol reads')
})

t.test('a refusal is answered when a retry could succeed: Retry-After seconds after the request, not at once', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1' })
  const alice = await createUser(app, { username: 'alice' })
  const uuid = await robotFor(app, alice)
  const held = gate(t, app)
  const running = aggregate(app, alice, uuid)
  await eventually(async () => app.services.frames.historyReads(alice.id), (n) => n === 1)
  const asked = performance.now()
  busy(t, await aggregate(app, alice, uuid), 'the second read')
  t.ok(performance.now() - asked >= HISTORY_RETRY_AFTER * 1000 - 5, 'answered no sooner than Retry-After')
  held.open()
  t.equal((await running).statusCode, 200)
})

t.test('a failed read gives its place back; refused reads take none', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1', AGGREGATE_MAX_ROWS: '10' })
  const alice = await createUser(app, { username: 'alice' })
  const uuid = await robotFor(app, alice)
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}/frames/aggregate?type=1&bucket=59&${RANGE}`, headers: bearer(alice.jwt) })
  t.equal(res.json().code, 'UNITED_RANGE_TOO_LARGE', '30 frames against a limit of 10')
  t.equal(app.services.frames.historyReads(), 0, 'no place kept')
  const other = await createUser(app, { username: 'mallory' })
  t.equal((await aggregate(app, other, uuid)).statusCode, 404, 'a robot the user may not see is 404')
  t.equal(app.services.frames.historyReads(), 0, 'and takes no place')
})

/** A robot whose export is ~24 MB: more than the socket buffers between the server and a reader hold. */
async function bigRobot (app: FastifyInstance, user: TestUser): Promise<string> {
  const { robot } = await ownedRobot(app)
  await grant(app, user, robot)
  const id = await robotIdOf(app, robot.uuid)
  const blob = 'x'.repeat(8000)
  for (let i = 0; i < 3000; i += 250) {
    await app.services.frames.store(id, Array.from({ length: 250 }, (_, j) => ({ frameId: `b${i + j}`, type: 1, data: { speed: j, note: blob }, recordedAt: null, receivedAt: new Date(T0 + (i + j) * 100) })))
  }
  return robot.uuid
}

/** An export over a real socket, paused at once: its reader reads nothing. */
async function pausedExport (app: FastifyInstance, user: TestUser, uuid: string): Promise<{ req: ReturnType<typeof httpRequest>, res: IncomingMessage }> {
  const port = (app.server.address() as AddressInfo).port
  const req = httpRequest({ host: '127.0.0.1', port, path: `/robots/${uuid}/frames/export`, headers: bearer(user.jwt) })
  req.on('error', () => {})
  req.end()
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.pause()
  res.on('error', () => {})
  return { req, res }
}

/** Waits until the export's queries stop: it filled every buffer and waits for its reader. */
async function blocked (app: FastifyInstance): Promise<void> {
  const sequelize = app.db.sequelize
  const original = sequelize.query.bind(sequelize)
  let queries = 0
  sequelize.query = (async (...args: Parameters<typeof original>) => {
    if (typeof args[0] === 'string' && isExport(args[0])) queries++
    return await original(...args)
  }) as typeof original
  try {
    let before = -1
    while (queries !== before) {
      before = queries
      await new Promise((resolve) => { setTimeout(resolve, 300) })
    }
  } finally {
    sequelize.query = original
  }
}

t.test('an export holds its place while its client does not read, and gives it back when the client goes away', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1' })
  const alice = await createUser(app, { username: 'alice' })
  const uuid = await bigRobot(app, alice)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { frames } = app.services

  const { req, res } = await pausedExport(app, alice, uuid)
  t.equal(res.statusCode, 200)
  await blocked(app)
  t.equal(frames.historyReads(alice.id), 1, 'the unread export holds its place')
  busy(t, await aggregate(app, alice, uuid), 'a second read while it waits')

  req.destroy()
  await eventually(async () => frames.historyReads(), (n) => n === 0)
  t.equal(frames.historyReads(), 0, 'the client went away: the place is given back')
  t.equal((await aggregate(app, alice, uuid)).statusCode, 200, 'alice reads again')
})

t.test('an export whose client stops reading is ended after the stall time, and its place given back', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1' })
  const alice = await createUser(app, { username: 'alice' })
  const uuid = await bigRobot(app, alice)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { frames } = app.services
  frames.settings.exportStallMs = 1000 // EXPORT_STALL_MS is 30 s

  const { res } = await pausedExport(app, alice, uuid)
  t.equal(res.statusCode, 200)
  const connections = async (): Promise<number> => await new Promise((resolve) => { app.server.getConnections((_err, n) => { resolve(n) }) })
  t.equal(await connections(), 1)
  await eventually(connections, (n) => n === 0, 10_000)
  t.equal(frames.historyReads(), 0, 'the server ended the response (its connection is gone) and gave the place back')
  // The client, reading again, finds the response cut short (the connection was reset).
  const closed = new Promise<void>((resolve) => { res.on('close', resolve) })
  res.resume()
  await closed
  t.notOk(res.complete, 'the response ended before its end')
  const next = await exportOf(app, alice, uuid)
  t.equal(next.statusCode, 200, 'alice exports again')
  t.equal(next.body.split('\n').filter((l) => l !== '').length, 3000, 'every frame')
})

t.test('an export read to its end gives its place back; a slow reader that keeps reading is not a stall', async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1' })
  const alice = await createUser(app, { username: 'alice' })
  const uuid = await robotFor(app, alice)
  const { frames } = app.services
  const whole = await exportOf(app, alice, uuid)
  t.equal(whole.statusCode, 200)
  t.equal(frames.historyReads(), 0, 'read to its end: the place is given back')

  // The service's pieces, taken one at a time with pauses shorter than the stall time.
  frames.settings.exportStallMs = 300
  const id = await robotIdOf(app, uuid)
  await frames.store(id, Array.from({ length: 2500 }, (_, i) => ({ frameId: `s${i}`, type: 3, data: { battery: i % 100 }, recordedAt: null, receivedAt: new Date(T0 + 60_000 + i) })))
  const pieces = await frames.export(alice, uuid, { type: 3, format: 'ndjson' })
  let lines = 0
  for await (const piece of pieces) {
    lines += piece.split('\n').length - 1
    await new Promise((resolve) => { setTimeout(resolve, 60) })
  }
  t.equal(lines, 2500, 'every frame, read slowly')
  t.equal(frames.historyReads(), 0, 'the place is given back at the end')

  // Pieces left unread: the place comes back after the stall time, and onStall is told.
  let stalled = false
  const left = await frames.export(alice, uuid, { type: 3, format: 'ndjson' }, { onStall: () => { stalled = true } })
  t.equal((await left.next()).done, false, 'a first piece')
  t.equal(frames.historyReads(alice.id), 1, 'its place is held')
  await eventually(async () => stalled, (s) => s, 5000)
  t.equal(frames.historyReads(), 0, 'stalled: the place is given back')
  await left.return?.(undefined)
  // Pieces never started and returned at once (a client gone before the first byte) give theirs back too.
  const never = await frames.export(alice, uuid, { type: 3, format: 'ndjson' })
  t.equal(frames.historyReads(), 1)
  await never.return?.(undefined)
  t.equal(frames.historyReads(), 0, 'returned before its first piece: given back')
})

t.test("the admin robot page's charts are the staff user's history reads", async (t) => {
  const app = await build(t, { HISTORY_CONCURRENCY: '1' })
  const staff = await createStaff(app, { username: 'root' })
  const browser = await staffBrowser(app, staff)
  const uuid = await robotFor(app)
  const id = await robotIdOf(app, uuid)
  await app.services.frames.store(id, Array.from({ length: 20 }, (_, i) => ({ frameId: `now${i}`, type: 1, data: { speed: i, position_x: i, position_y: 0, angle_theta: 0 }, recordedAt: null, receivedAt: new Date(Date.now() - i * 60_000) })))

  const page = await browser.get(`/admin/robots/${uuid}`)
  t.equal(page.statusCode, 200)
  t.match(page.body, 'id="chart-speed"', 'with a limit of 1, the page draws its charts (its two aggregates run one after the other)')
  t.notMatch(page.body, 'id="history-unavailable"')

  const held = gate(t, app)
  const running = exportOf(app, staff, uuid)
  await eventually(async () => app.services.frames.historyReads(staff.id), (n) => n === 1)
  const busyPage = await browser.get(`/admin/robots/${uuid}`)
  t.equal(busyPage.statusCode, 200, 'the page still shows while the staff user has no place left')
  t.match(busyPage.body, /id="history-unavailable">Too many history reads/, 'with a note instead of the charts')
  t.notMatch(busyPage.body, 'id="chart-speed"')
  t.match(busyPage.body, 'id="stats-table"', 'and the rest of the page')
  held.open()
  t.equal((await running).statusCode, 200)
  t.match((await browser.get(`/admin/robots/${uuid}`)).body, 'id="chart-speed"', 'the charts are back once the place is free')
})
