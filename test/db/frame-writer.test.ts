// The frame writer's batching on the real database: a frame that finds the
// writer idle is written at once; with a linger, frames that follow a batch
// gather until the linger is over or a batch is full; shutdown does not wait
// for the linger. Resent frame ids are stored once (on PostgreSQL a batch is
// written without ON CONFLICT first, and again with it when that fails).
import t from 'tap'
import { build, onFrameInsert } from '../helper.js'
import { createRobot, queuedFrame, robotIdOf } from '../factory.js'
import { createFrameWriter, type FrameWriter, type QueuedFrame } from '../../src/services/frame-writer.js'

t.test('with a linger, frames that follow a batch gather into one; a full batch and a flush do not wait', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  // An hour: any frame written before the test ends was not held by it.
  const writer = createFrameWriter({ db: app.db, log: app.log, maxBatch: 3, lingerMs: 3_600_000 })
  const batches: number[] = []
  writer.observe((rows, _seconds, ok) => { if (ok) batches.push(rows) })
  const frame = (id: string) => queuedFrame(robotId, id)

  await writer.write(frame('a'))
  t.same(batches, [1], 'a frame that finds the writer idle is written at once')

  const b = writer.write(frame('b'))
  await new Promise((resolve) => { setTimeout(resolve, 100) })
  t.equal(writer.depth, 1, 'the next frame waits for the linger')
  t.same(batches, [1])

  await Promise.all([b, writer.write(frame('c')), writer.write(frame('d'))])
  t.same(batches, [1, 3], 'a full batch is written without waiting for the linger')

  const e = writer.write(frame('e'))
  await writer.flush()
  await e
  t.same(batches, [1, 3, 1], 'flush writes what lingers at once')

  const stored = await app.db.models.Frame.findAll({ where: { robotId }, attributes: ['frameId'], order: [['frameId', 'ASC']] })
  t.same(stored.map((f) => f.frameId), ['a', 'b', 'c', 'd', 'e'], 'every frame stored once')
})

t.test('a batch that resends a stored frame id is written again idempotently: every frame stored once, every write ok', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const frame = (id: string) => queuedFrame(robotId, id)
  const statements: string[] = []
  onFrameInsert(t, app, async (run, sql) => {
    statements.push(/ON CONFLICT|OR IGNORE/.test(sql) ? 'idempotent' : 'plain')
    return await run()
  })
  // Frames written in one turn of the event loop share a batch.
  const batch = async (writer: FrameWriter, ids: string[]): Promise<void> => { await Promise.all(ids.map((id) => writer.write(frame(id)))) }
  const stored = async (): Promise<string[]> => (await app.db.models.Frame.findAll({ where: { robotId }, attributes: ['frameId'], order: [['frameId', 'ASC']] })).map((f) => f.frameId)

  const remembering = createFrameWriter({ db: app.db, log: app.log, conflictWindowMs: 3_600_000 })
  await batch(remembering, ['a', 'b'])
  await batch(remembering, ['b', 'c']) // b again
  await batch(remembering, ['d', 'd']) // twice in one batch
  t.same(await stored(), ['a', 'b', 'c', 'd'], 'each frame stored once')
  if (app.db.dialect === 'postgres') {
    t.same(statements, ['plain', 'plain', 'idempotent', 'idempotent'], 'without ON CONFLICT until a conflict, then with it for the window')
  } else {
    t.same(statements, ['idempotent', 'idempotent', 'idempotent'], 'SQLite: INSERT OR IGNORE, one statement per batch')
  }

  statements.length = 0
  const forgetting = createFrameWriter({ db: app.db, log: app.log, conflictWindowMs: 0 })
  await batch(forgetting, ['e', 'a']) // a again
  await batch(forgetting, ['f'])
  t.same(await stored(), ['a', 'b', 'c', 'd', 'e', 'f'], 'each frame stored once again')
  if (app.db.dialect === 'postgres') t.same(statements, ['plain', 'idempotent', 'plain'], 'after the window, batches try without ON CONFLICT again')
})

t.test("one batch of frames from several robots, each frame's own text however written: each row stored as its text reads", async (t) => {
  const app = await build(t)
  const [one, two] = await Promise.all([createRobot(app), createRobot(app)])
  const [oneId, twoId] = await Promise.all([robotIdOf(app, one.uuid), robotIdOf(app, two.uuid)])
  const position = { speed: 1, position_x: 2, position_y: 3, angle_theta: 4, datetime: '2024-05-01 12:00:00' }
  const recordedAt = new Date('2024-05-01T12:00:00Z')
  const receivedAt = new Date('2024-05-01T12:00:01.250Z')
  const frames: QueuedFrame[] = [
    // On PostgreSQL the batch's texts travel joined by U+001E: the character
    // may stand in a frame only escaped, and its escape is stored as a
    // string holding the character.
    { frameId: 'rs-\u001e-\u0001-\n', text: '{"id":"rs-\\u001e-\\u0001-\\n","type":1,"data":' + JSON.stringify(position) + '}' },
    { frameId: 'spaced', text: '\n{ "id" : "spaced" ,\t"type" : 1 ,\r\n "data" : ' + JSON.stringify(position, null, 2) + ' }\n' },
    { frameId: 'unicode-é🤖', text: '{"id":"unicode-\\u00e9🤖","type":1,"data":' + JSON.stringify(position) + '}' },
    // A frame without its text is serialized again.
    { frameId: 'no-text' },
    { frameId: 'no-recorded-at', robotId: twoId, recordedAt: null }
  ].map((f) => ({ robotId: oneId, type: 1, data: { ...position }, recordedAt, receivedAt, ...f }))
  const batches: number[] = []
  const writer = createFrameWriter({ db: app.db, log: app.log })
  writer.observe((rows, _seconds, ok) => { batches.push(ok ? rows : -rows) })
  await Promise.all(frames.map((f) => writer.write(f)))
  t.same(batches, [frames.length], 'one batch, committed')

  const rows = await app.db.models.Frame.findAll({ order: [['frameId', 'ASC']] })
  t.same(rows.map((r) => r.frameId), frames.map((f) => f.frameId).sort(), 'every frame stored once, its id unescaped')
  for (const f of frames) {
    const row = rows.find((r) => r.frameId === f.frameId)
    t.same(row?.data, position, `${JSON.stringify(f.frameId)}: data as its text reads`)
    t.equal(row?.robotId, f.robotId, `${JSON.stringify(f.frameId)}: its own robot`)
    t.equal(row?.recordedAt?.getTime() ?? null, f.recordedAt?.getTime() ?? null, `${JSON.stringify(f.frameId)}: recorded_at`)
    t.equal(row?.receivedAt.getTime(), receivedAt.getTime(), `${JSON.stringify(f.frameId)}: received_at to the millisecond`)
  }
})
