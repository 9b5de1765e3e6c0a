// docs/protocol.md §6.5: GET /robots/{uuid}/frames/export streams every stored frame
// of a range, oldest first, as NDJSON (one docs/protocol.md §6.3 item per line) or CSV. Checked
// line by line against what the test stored, with frame ids that need CSV
// quoting, across the export's batch boundaries, and with a reader that stops
// reading: the server then stops querying.
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { EXPORT_BATCH } from '../../src/services/frames.js'
import { createStaff, createUser, ownedRobot, robotIdOf } from '../factory.js'
import { bearer, build } from '../helper.js'
import { parseCsv } from '../history.js'

interface Stored { frameId: string, type: number, data: Record<string, unknown>, recordedAt: Date | null, receivedAt: Date }

const T0 = Date.parse('2026-12-01T10:00:00.000Z')

/** Frames of the three types, several per millisecond (as a batch stores them), with ids that CSV must quote. */
function fleetHistory (count: number): Stored[] {
  const odd = ['with,comma', 'with "quotes"', 'line\nbreak', 'cr\rlf', '=HYPERLINK("x")', '-minus', '@at', '+plus', 'plain']
  const frames: Stored[] = []
  for (let i = 0; i < count; i++) {
    const type = 1 + (i % 3)
    const receivedAt = new Date(T0 + Math.floor(i / 3) * 10) // three frames share each instant
    const frameId = i < odd.length ? `${odd[i] as string}-${i}` : `f-${String(i).padStart(6, '0')}`
    const data: Record<string, unknown> = type === 1
      ? { speed: i / 7, position_x: -i, position_y: i * 2, angle_theta: 0.25, datetime: '2026-12-01 10:00:00' }
      : type === 2
        ? { latitude: 45.5, longitude: -(i % 180), ...(i % 2 === 0 ? { altitude: i } : {}), datetime: '2026-12-01 10:00:00' }
        : { datetime: '2026-12-01 10:00:00', battery: i % 100, ...(i % 4 === 0 ? { cpu: 12.5 } : {}) }
    frames.push({ frameId, type, data, recordedAt: i % 5 === 0 ? null : new Date(receivedAt.getTime() - 1000), receivedAt })
  }
  return frames
}

async function store (app: FastifyInstance, robotUuid: string, frames: Stored[]): Promise<void> {
  const robotId = await robotIdOf(app, robotUuid)
  for (let i = 0; i < frames.length; i += 2000) await app.services.frames.store(robotId, frames.slice(i, i + 2000))
}

/** Oldest first, as the export orders them: by received_at, then frame id (in the database's byte order). */
function ordered (frames: Stored[]): Stored[] {
  return [...frames].sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime() || (Buffer.compare(Buffer.from(a.frameId), Buffer.from(b.frameId))))
}

const item = (f: Stored): Record<string, unknown> => ({ frame_id: f.frameId, type: f.type, data: f.data, recorded_at: f.recordedAt?.toISOString() ?? null, received_at: f.receivedAt.toISOString() })

t.test('NDJSON: every frame, oldest first, one §6 item per line, across batch boundaries', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const frames = fleetHistory(EXPORT_BATCH * 2 + 501) // three pieces, the boundaries inside groups of equal received_at
  await store(app, robot.uuid, frames)

  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export`, headers: bearer(user.jwt) })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/x-ndjson; charset=utf-8')
  t.equal(res.headers['content-disposition'], `attachment; filename="robot-${robot.uuid}-frames.ndjson"`)
  const lines = res.body.split('\n')
  t.equal(lines.pop(), '', 'every line ends with a newline')
  t.equal(lines.length, frames.length, `${frames.length} lines`)
  const want = ordered(frames).map(item)
  const wrong = lines.map((l, i) => [i, JSON.parse(l)] as const).filter(([i, got]) => JSON.stringify(got) !== JSON.stringify(want[i]) && !sameItem(got, want[i]))
  t.same(wrong.slice(0, 3), [], 'each line is the stored frame, in order')

  const list = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=1`, headers: bearer(user.jwt) })
  t.same(JSON.parse(lines[lines.length - 1] as string), list.json().items[0], 'the same item as the history endpoint gives')
})

/** Equal as JSON values (PostgreSQL's jsonb orders keys its own way). */
function sameItem (a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameItem((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

t.test('type, from and to select, inclusively; an empty range is an empty file', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const frames = fleetHistory(900)
  await store(app, robot.uuid, frames)
  const from = new Date(T0 + 500)
  const to = new Date(T0 + 1500)
  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?type=2&from=${from.toISOString()}&to=${to.toISOString()}`, headers: bearer(user.jwt) })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-disposition'], `attachment; filename="robot-${robot.uuid}-frames-type2.ndjson"`)
  const got = res.body.trim().split('\n').map((l) => (JSON.parse(l) as { frame_id: string }).frame_id)
  const want = ordered(frames).filter((f) => f.type === 2 && f.receivedAt >= from && f.receivedAt <= to).map((f) => f.frameId)
  t.ok(want.length > 10)
  t.same(got, want, 'exactly the geo frames of the range, the bounds included')
  const empty = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z`, headers: bearer(user.jwt) })
  t.equal(empty.statusCode, 200)
  t.equal(empty.body, '')
})

t.test('CSV: the contract header, one row per frame, ids with commas, quotes and line breaks escaped, formulas defused', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const frames = fleetHistory(EXPORT_BATCH + 300)
  await store(app, robot.uuid, frames)
  const fields: Record<number, string[]> = { 1: ['speed', 'position_x', 'position_y', 'angle_theta'], 2: ['latitude', 'longitude', 'altitude', 'accuracy'], 3: ['battery', 'temperature', 'cpu', 'memory'] }
  for (const type of [1, 2, 3]) {
    const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?format=csv&type=${type}`, headers: bearer(user.jwt) })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
    t.equal(res.headers['content-disposition'], `attachment; filename="robot-${robot.uuid}-frames-type${type}.csv"`)
    const rows = parseCsv(res.body)
    t.same(rows[0], ['frame_id', 'type', 'recorded_at', 'received_at', ...(fields[type] as string[])], `type ${type}: the header`)
    const want = ordered(frames).filter((f) => f.type === type)
    t.equal(rows.length - 1, want.length, `type ${type}: one row per frame`)
    const wrong: string[] = []
    want.forEach((f, i) => {
      const row = rows[i + 1] as string[]
      const id = /^[=+\-@]/.test(f.frameId) ? `'${f.frameId}` : f.frameId
      const cells = [id, String(type), f.recordedAt?.toISOString() ?? '', f.receivedAt.toISOString(), ...(fields[type] as string[]).map((k) => f.data[k] === undefined ? '' : String(f.data[k]))]
      const same = row.length === cells.length && row.every((c, j) => j >= 4 && c !== '' ? Number(c) === Number(cells[j]) : c === cells[j])
      if (!same) wrong.push(`${JSON.stringify(row)} != ${JSON.stringify(cells)}`)
    })
    t.same(wrong.slice(0, 3), [], `type ${type}: every row, in order`)
  }
  const ids = parseCsv((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?format=csv&type=1`, headers: bearer(user.jwt) })).body).map((r) => r[0])
  for (const id of ['with,comma-0', 'cr\rlf-3', "'@at-6"]) t.ok(ids.includes(id), `${JSON.stringify(id)} comes back whole`)
})

t.test('bad parameters are 400; the access rule is the history\'s', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  for (const qs of ['format=csv', 'format=xml', 'type=5', 'type=x', 'from=yesterday', 'to=2026-13-01T00:00:00Z', 'limit=5']) {
    const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?${qs}`, headers: bearer(user.jwt) })
    t.equal(res.statusCode, 400, qs)
    t.equal(res.headers['content-disposition'], undefined, `${qs}: no attachment`)
  }
  t.match((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export?format=csv`, headers: bearer(user.jwt) })).json().message, /needs a type/)
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export` })).statusCode, 401)
  const stranger = await createUser(app)
  const refused = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export`, headers: bearer(stranger.jwt) })
  t.equal(refused.statusCode, 404)
  t.equal(refused.json().code, 'UNITED_ROBOT_NOT_FOUND')
  const staff = await createStaff(app)
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/export`, headers: bearer(staff.jwt) })).statusCode, 200)
})

t.test('a reader that stops reading stops the queries; when it reads again, everything arrives', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const pieces = 100 // about 38 MB: more than the socket buffers between server and reader hold
  await store(app, robot.uuid, fleetHistory(EXPORT_BATCH * pieces))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const original = app.db.sequelize.query.bind(app.db.sequelize)
  let queries = 0
  app.db.sequelize.query = (async (...args: Parameters<typeof original>) => {
    if (typeof args[0] === 'string' && args[0].includes('SELECT frame_id, type, ')) queries++ // every type: one statement, a UNION ALL of one read per type
    return await original(...args)
  }) as typeof original
  t.teardown(() => { app.db.sequelize.query = original })

  const port = (app.server.address() as AddressInfo).port
  const req = httpRequest({ host: '127.0.0.1', port, path: `/robots/${robot.uuid}/frames/export`, headers: bearer(user.jwt) })
  req.end()
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  t.equal(res.statusCode, 200)
  res.pause()
  // Let the server fill every buffer between it and the paused reader.
  let before = -1
  while (queries !== before) {
    before = queries
    await new Promise((resolve) => { setTimeout(resolve, 300) })
  }
  t.ok(queries < pieces, `while the reader waits, the server stopped after ${queries} of ${pieces} pieces`)
  let lines = 0
  res.on('data', (chunk: Buffer) => { for (const b of chunk) if (b === 10) lines++ })
  res.resume()
  await once(res, 'end')
  t.equal(lines, EXPORT_BATCH * pieces, 'then every frame arrived')
  t.equal(queries, pieces + 1, 'one query per piece (and one that found the end)')
})
