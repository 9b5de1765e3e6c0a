// docs/protocol.md §14.2 over the real broker: type-4 (telemetry) frames
// checked against the robot's model, which the broker keeps with the
// connection (loaded at CONNECT, swapped when the model changes), the
// model's fields in the live statistics, and frames of types 1–3 as before.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { createRobotModels } from '../../broker/robot-models.js'
import { compileModel, type CompiledModel, type ModelDefinition, type ModelRef } from '../../src/contract/models.js'
import { CLEANER_MODEL, createModel, createRobot, createUser, grant, robotIdOf, setModel, type TestRobot, type TestUser } from '../factory.js'
import { build } from '../helper.js'
import { connectRobot, connectUser, eventually, messageWhere, nextMessage, positionFrame, subscribe, TRANSPORTS, type Transport } from '../mqtt.js'

interface Ack { id: string | null, status: 'ok' | 'error', errors?: string[], retry?: boolean }

const DT = '2026-12-07T10:15:30Z'
const dataTopic = (uuid: string): string => `robots/${uuid}/data`
const ackTopic = (uuid: string): string => `robots/${uuid}/ack`
const statsTopic = (uuid: string): string => `robots/${uuid}/stats`
const telemetry = (id: string, data: Record<string, unknown>): string => JSON.stringify({ id, type: 4, data })

/** Cleaner v2: brush_rpm narrower, water_level an integer now, a new field; mopping, zone and mode gone. */
const CLEANER_V2 = {
  name: 'cleaner',
  telemetry: {
    brush_rpm: { type: 'integer', minimum: 0, maximum: 2000 },
    water_level: { type: 'integer', minimum: 0, maximum: 100 },
    suction: { type: 'integer', minimum: 0, maximum: 5 }
  },
  commands: {}
}

async function send (client: MqttClient, uuid: string, payload: string): Promise<Ack> {
  const id = (JSON.parse(payload) as { id: string }).id
  const [ack] = await Promise.all([
    messageWhere<Ack>(client, ackTopic(uuid), (a) => a.id === id),
    client.publishAsync(dataTopic(uuid), payload, { qos: 1 })
  ])
  return ack
}

async function storedIds (app: FastifyInstance, uuid: string): Promise<string[]> {
  const rows = await app.db.sequelize.query<{ frame_id: string }>('SELECT frame_id FROM frames WHERE robot_id = ? ORDER BY frame_id', { replacements: [await robotIdOf(app, uuid)], type: QueryTypes.SELECT })
  return rows.map((r) => r.frame_id)
}

/** A robot of `model` (or none) granted to a fresh user, connected and subscribed to its acks. */
async function session (t: Test, app: FastifyInstance, model: ModelRef | null, transport: Transport = 'tcp'): Promise<{ user: TestUser, robot: TestRobot, client: MqttClient }> {
  const user = await createUser(app)
  const robot = await createRobot(app, model === null ? {} : { model })
  await grant(app, user, robot)
  const client = await connectRobot(t, app, robot, { transport })
  t.same(await subscribe(client, ackTopic(robot.uuid)), [1])
  return { user, robot, client }
}

for (const transport of TRANSPORTS) {
  t.test(`${transport}: every kind of bad value is refused naming the field, nothing stored; valid frames stored once`, async (t) => {
    const app = await build(t)
    const model = await createModel(app)
    const { robot, client } = await session(t, app, model, transport)

    const bad: Array<[string, Record<string, unknown>, string]> = [
      ['a numeric string for an integer', { datetime: DT, brush_rpm: '1200' }, 'data.brush_rpm must be an integer'],
      ['a numeric string for a number', { datetime: DT, water_level: '71.5' }, 'data.water_level must be a number'],
      ['1.5 for an integer', { datetime: DT, brush_rpm: 1.5 }, 'data.brush_rpm must be an integer'],
      ['"true" for a boolean', { datetime: DT, mopping: 'true' }, 'data.mopping must be a boolean'],
      ['1 for a boolean', { datetime: DT, mopping: 1 }, 'data.mopping must be a boolean'],
      ['null for a number', { datetime: DT, water_level: null }, 'data.water_level must be a number'],
      ['above the maximum', { datetime: DT, water_level: 100.5 }, 'data.water_level must be <= 100'],
      ['below the minimum', { datetime: DT, brush_rpm: -1 }, 'data.brush_rpm must be >= 0'],
      ['not in the enum', { datetime: DT, mode: 'turbo' }, 'data.mode must be one of "eco", "normal", "deep"'],
      ['a string too long', { datetime: DT, zone: 'z'.repeat(33) }, 'data.zone'],
      ['an undeclared field', { datetime: DT, brush_rpm: 5, nozzle: 1 }, 'data.nozzle is not a field of model cleaner v1'],
      ['no field besides datetime', { datetime: DT }, 'data needs at least one field of model cleaner v1'],
      ['no datetime', { brush_rpm: 5 }, 'data.datetime is required'],
      ['a datetime that is not one', { datetime: 'yesterday', brush_rpm: 5 }, 'data.datetime must be an ISO 8601 date-time'],
      ['a NUL in a string', { datetime: DT, zone: 'a\u0000b' }, 'data.zone may not contain NUL characters']
    ]
    for (const [what, data, error] of bad) {
      const id = `bad-${bad.findIndex(([w]) => w === what)}`
      const ack = await send(client, robot.uuid, telemetry(id, data))
      t.equal(ack.status, 'error', `${what}: refused`)
      t.equal(ack.id, id, `${what}: the ack names the frame`)
      t.ok(ack.errors?.some((e) => e.startsWith(error)), `${what}: ${JSON.stringify(ack.errors)} names it (${error})`)
      t.notOk(ack.retry, `${what}: not a storage failure`)
    }
    const tooLong = await send(client, robot.uuid, telemetry('long', { datetime: DT, zone: 'z'.repeat(33) }))
    t.match(tooLong.errors?.join(), /data\.zone must NOT have more than 32 characters/)
    // one bad value among good ones is enough
    const mixed = await send(client, robot.uuid, telemetry('mixed', { datetime: DT, brush_rpm: 1200, water_level: 50, mode: 'ECO' }))
    t.same(mixed.errors, ['data.mode must be one of "eco", "normal", "deep"'], 'only the bad field is named')
    const several = await send(client, robot.uuid, telemetry('several', { datetime: DT, brush_rpm: 'x', mopping: 'no', extra: 1 }))
    t.equal(several.errors?.length, 3, `every bad field is named: ${JSON.stringify(several.errors)}`)
    t.same(await storedIds(app, robot.uuid), [], 'nothing stored for any refused frame')

    const valid: Array<Record<string, unknown>> = [
      { datetime: DT, brush_rpm: 1200, water_level: 71.5, mopping: true, zone: 'lobby', mode: 'eco' },
      { datetime: '2026-12-07 10:15:31', mopping: false },
      { datetime: DT, brush_rpm: 0, water_level: 100, zone: 'z'.repeat(32) },
      { datetime: DT, brush_rpm: 3000, water_level: 0, mode: 'deep', zone: '' },
      { datetime: DT, brush_rpm: 12e2, zone: 'робот 🤖' }
    ]
    for (const [i, data] of valid.entries()) {
      const ack = await send(client, robot.uuid, telemetry(`ok-${i}`, data))
      t.same(ack, { id: `ok-${i}`, status: 'ok' }, `valid frame ${JSON.stringify(data)} acked ok`)
    }
    t.same(await storedIds(app, robot.uuid), valid.map((_, i) => `ok-${i}`), 'each valid frame stored')
    const again = await send(client, robot.uuid, telemetry('ok-0', valid[0] as Record<string, unknown>))
    t.same(again, { id: 'ok-0', status: 'ok' }, 'a resent id is acked ok')
    const reused = await send(client, robot.uuid, telemetry('bad-0', valid[1] as Record<string, unknown>))
    t.same(reused, { id: 'bad-0', status: 'ok' }, 'the id of a refused frame is free')
    t.same(await storedIds(app, robot.uuid), ['bad-0', ...valid.map((_, i) => `ok-${i}`)], 'stored once')
    const [row] = await app.db.sequelize.query<{ type: number }>('SELECT type FROM frames WHERE robot_id = ? AND frame_id = ?', { replacements: [await robotIdOf(app, robot.uuid), 'ok-0'], type: QueryTypes.SELECT })
    t.equal(Number(row?.type), 4, 'stored as type 4')
  })
}

t.test('a robot without a model gets an error ack for any type-4 frame; its other frames are as before', async (t) => {
  const app = await build(t)
  await createModel(app) // models exist; this robot has none
  const { robot, client } = await session(t, app, null)
  for (const data of [{ datetime: DT, brush_rpm: 5 }, { datetime: DT }, {}]) {
    const ack = await send(client, robot.uuid, telemetry('t4', data))
    t.same(ack, { id: 't4', status: 'error', errors: ['this robot has no model: type 4 (telemetry) frames need one'] }, JSON.stringify(data))
  }
  t.same(await send(client, robot.uuid, positionFrame('p1')), { id: 'p1', status: 'ok' })
  t.same(await storedIds(app, robot.uuid), ['p1'], 'only the position frame stored')
})

t.test('frames of types 1–3 of a robot with a model are checked and stored as before', async (t) => {
  const app = await build(t)
  const { robot, client } = await session(t, app, await createModel(app), 'ws')
  t.same(await send(client, robot.uuid, positionFrame('p1')), { id: 'p1', status: 'ok' })
  t.same(await send(client, robot.uuid, JSON.stringify({ id: 'g1', type: 2, data: { latitude: 48.85, longitude: 2.35, datetime: DT } })), { id: 'g1', status: 'ok' })
  t.same(await send(client, robot.uuid, JSON.stringify({ id: 'h1', type: 3, data: { battery: 80, datetime: DT } })), { id: 'h1', status: 'ok' })
  const modelField = await send(client, robot.uuid, JSON.stringify({ id: 'h2', type: 3, data: { battery: 80, brush_rpm: 5, datetime: DT } }))
  t.same(modelField.errors, ['data.brush_rpm is not a field of a hardware frame'], 'a model field in a hardware frame is still an error')
  const position = await send(client, robot.uuid, positionFrame('p2', { speed: '1' }))
  t.same(position.errors, ['data.speed must be a number'])
  t.same(await storedIds(app, robot.uuid), ['g1', 'h1', 'p1'])
})

t.test('stats carry the last value of each model field as top-level keys', async (t) => {
  const app = await build(t)
  const { user, robot, client } = await session(t, app, await createModel(app))
  const watcher = await connectUser(t, app, user)
  t.same(await subscribe(watcher, statsTopic(robot.uuid), 0), [0])
  const base = { robot_uuid: robot.uuid, state: 'idle', speed: null, position_x: null, position_y: null, angle_theta: null, data_connected: true, command_connected: false }

  let stats = nextMessage(watcher, statsTopic(robot.uuid))
  await send(client, robot.uuid, telemetry('t1', { datetime: DT, brush_rpm: 1200, mode: 'eco' }))
  t.same(await stats, { ...base, datetime: DT, brush_rpm: 1200, mode: 'eco' }, 'the fields of the frame, beside the fixed ones')
  stats = nextMessage(watcher, statsTopic(robot.uuid))
  await send(client, robot.uuid, telemetry('t2', { datetime: '2026-12-07T10:15:31Z', water_level: 50.5, mopping: false, brush_rpm: 900 }))
  t.same(await stats, { ...base, datetime: '2026-12-07T10:15:31Z', brush_rpm: 900, mode: 'eco', water_level: 50.5, mopping: false }, 'the last value of each field')
  stats = nextMessage(watcher, statsTopic(robot.uuid))
  await send(client, robot.uuid, positionFrame('p1'))
  t.match(await stats, { speed: 1.5, brush_rpm: 900, mode: 'eco', water_level: 50.5, mopping: false }, 'a position frame keeps them')
  // a refused frame changes nothing: the next stats are those of the next stored frame
  await send(client, robot.uuid, telemetry('t3', { datetime: DT, brush_rpm: 5000 }))
  stats = nextMessage(watcher, statsTopic(robot.uuid))
  await send(client, robot.uuid, telemetry('t4', { datetime: DT, zone: 'hall' }))
  t.match(await stats, { brush_rpm: 900, zone: 'hall' })

  const late = await connectUser(t, app, user)
  const retained = nextMessage(late, statsTopic(robot.uuid))
  await subscribe(late, statsTopic(robot.uuid), 0)
  t.match(await retained, { brush_rpm: 900, mode: 'eco', water_level: 50.5, mopping: false, zone: 'hall' }, 'retained for a later subscriber')
})

t.test('a model changed through services.robots.update takes effect on the open connection; stats drop what the new model does not take', async (t) => {
  const app = await build(t)
  const v1 = await createModel(app)
  const v2 = await createModel(app, CLEANER_V2)
  t.same(v2, { name: 'cleaner', version: 2 })
  const { user, robot, client } = await session(t, app, v1)
  const watcher = await connectUser(t, app, user)
  t.same(await subscribe(watcher, statsTopic(robot.uuid), 0), [0])
  let stats = nextMessage(watcher, statsTopic(robot.uuid))
  t.same(await send(client, robot.uuid, telemetry('a1', { datetime: DT, brush_rpm: 1200, water_level: 71.5, mopping: true, mode: 'eco' })), { id: 'a1', status: 'ok' })
  t.match(await stats, { brush_rpm: 1200, water_level: 71.5, mopping: true, mode: 'eco' })
  const refusedV1 = await send(client, robot.uuid, telemetry('a2', { datetime: DT, suction: 3 }))
  t.same(refusedV1.errors, ['data.suction is not a field of model cleaner v1'], 'suction is not v1\'s')

  const pruned = messageWhere<Record<string, unknown>>(watcher, statsTopic(robot.uuid), (s) => !('mode' in s))
  await setModel(app, robot, v2)
  // The swap is asynchronous (within a second): frames valid under v2 only, until one is accepted.
  let n = 0
  const accepted = await eventually(async () => await send(client, robot.uuid, telemetry(`b${n++}`, { datetime: DT, suction: 3 })), (ack) => ack.status === 'ok')
  t.equal(accepted.status, 'ok', 'a field of the new model is accepted on the open connection')
  const old = await send(client, robot.uuid, telemetry('c1', { datetime: DT, mode: 'eco' }))
  t.same(old.errors, ['data.mode is not a field of model cleaner v2'], 'a field of the old model only is refused')
  const narrower = await send(client, robot.uuid, telemetry('c2', { datetime: DT, water_level: 50.5 }))
  t.same(narrower.errors, ['data.water_level must be an integer'], 'a field both declare is checked with the new declaration')

  const afterChange = await pruned
  t.equal(afterChange.brush_rpm, 1200, 'a field the new model declares, with a value it takes, is kept')
  for (const gone of ['mode', 'mopping', 'water_level']) t.notOk(gone in afterChange, `${gone} is dropped (${gone === 'water_level' ? '71.5 is no integer' : 'not declared by v2'})`)
  t.match(afterChange, { robot_uuid: robot.uuid, speed: null, data_connected: true }, 'the fixed keys stay')

  stats = nextMessage(watcher, statsTopic(robot.uuid))
  t.same(await send(client, robot.uuid, telemetry('c3', { datetime: DT, water_level: 40 })), { id: 'c3', status: 'ok' })
  t.match(await stats, { brush_rpm: 1200, suction: 3, water_level: 40 })

  // No model at all: every type-4 frame refused, every model field dropped from the stats.
  const none = messageWhere<Record<string, unknown>>(watcher, statsTopic(robot.uuid), (s) => !('brush_rpm' in s))
  await setModel(app, robot, null)
  const refused = await eventually(async () => await send(client, robot.uuid, telemetry(`d${n++}`, { datetime: DT, suction: 1 })), (ack) => ack.status === 'error')
  t.same(refused.errors, ['this robot has no model: type 4 (telemetry) frames need one'])
  const bare = await none
  t.same(Object.keys(bare).filter((k) => ['brush_rpm', 'suction', 'water_level'].includes(k)), [], 'the model fields are gone from the stats')
  t.same(await send(client, robot.uuid, positionFrame('p1')), { id: 'p1', status: 'ok' }, 'a position frame still stored')

  // And a model again: a connection opened now starts with it.
  await setModel(app, robot, v1)
  const second = await connectRobot(t, app, robot, { clientId: 'second' })
  await subscribe(second, ackTopic(robot.uuid))
  t.same(await send(second, robot.uuid, telemetry('e1', { datetime: DT, mode: 'deep' })), { id: 'e1', status: 'ok' }, 'a new connection: v1 again')
})

t.test('robots that connect while their model changes end with the model of their row', async (t) => {
  const app = await build(t)
  const a = await createModel(app, { name: 'alpha', telemetry: { a: { type: 'integer' } }, commands: {} })
  const b = await createModel(app, { name: 'beta', telemetry: { b: { type: 'integer' } }, commands: {} })
  const robots = await Promise.all([1, 2, 3, 4].map(async () => await createRobot(app, { model: a })))
  // connections and changes interleaved: each robot changes model while it connects
  const clients = await Promise.all(robots.map(async (robot, i) => {
    const connecting = connectRobot(t, app, robot)
    for (let k = 0; k <= i; k++) await setModel(app, robot, k % 2 === 0 ? b : a)
    return await connecting
  }))
  for (const [i, robot] of robots.entries()) {
    const client = clients[i] as MqttClient
    await subscribe(client, ackTopic(robot.uuid))
    const [own, other] = i % 2 === 0 ? ['b', 'a'] : ['a', 'b']
    let n = 0
    const ok = await eventually(async () => await send(client, robot.uuid, telemetry(`f${n++}`, { datetime: DT, [own as string]: 1 })), (ack) => ack.status === 'ok')
    t.equal(ok.status, 'ok', `robot ${i}: its row's model (${own === 'b' ? 'beta' : 'alpha'}) is the one checked`)
    const wrong = await send(client, robot.uuid, telemetry('g1', { datetime: DT, [other as string]: 1 }))
    t.equal(wrong.status, 'error', `robot ${i}: the other model's field is refused`)
  }
})

// The ordering rules of broker/robot-models.ts, step by step, with loads that finish when the test says.
t.test('robot-models: a change during a CONNECT makes it read the row again; a slower, older load never wins', async (t) => {
  const def = (field: string): ModelDefinition => ({ name: field, telemetry: { [field]: { type: 'integer' } }, commands: {} })
  const compiled = new Map<string, CompiledModel>(['x', 'y', 'z'].map((f) => [f, compileModel({ name: f, version: 1 }, def(f))]))
  const gates = new Map<string, () => void>()
  const swaps: string[] = []
  const log = { warn: () => {} } as unknown as Parameters<typeof createRobotModels>[0]['log']
  const models = createRobotModels({
    // y loads only when the test opens its gate; x and z at once
    compile: async (ref) => {
      if (ref.name === 'y') await new Promise<void>((resolve) => { gates.set('y', resolve) })
      return compiled.get(ref.name) as CompiledModel
    },
    swapped: (uuid, model) => { swaps.push(`${uuid}:${model?.name ?? 'none'}`) },
    log
  })
  t.teardown(() => { models.close() })
  const tick = async (): Promise<void> => { await new Promise((resolve) => { setImmediate(resolve) }) }

  // 1. A CONNECT read x; z is given while it loads: it reads the row again.
  let rereads = 0
  const mark = models.mark()
  const admitting = models.admit('r1', { name: 'x', version: 1 }, mark, async () => { rereads++; return { name: 'z', version: 1 } })
  models.changed('r1', { name: 'z', version: 1 })
  t.equal((await admitting)?.name, 'z', 'the CONNECT ends with the model given while it connected')
  t.equal(rereads, 1)
  t.equal(models.of('r1')?.name, 'z')

  // 2. y (slow) then z (fast): z is newer and stays when y finally loads.
  models.changed('r1', { name: 'y', version: 1 })
  models.changed('r1', { name: 'z', version: 1 })
  await tick()
  t.equal(models.of('r1')?.name, 'z')
  gates.get('y')?.()
  await tick()
  await tick()
  t.equal(models.of('r1')?.name, 'z', 'the older change, loaded last, is not applied')

  // 3. To none, and a robot never admitted here is left alone.
  models.changed('r1', null)
  models.changed('r2', { name: 'x', version: 1 })
  await tick()
  t.equal(models.of('r1'), null)
  t.equal(models.of('r2'), null, 'no slot: its CONNECT will read its row')
  t.same(swaps, ['r1:z', 'r1:none'])

  // 4. A CONNECT that read before the change and finds no change since keeps what it read.
  const plain = await models.admit('r3', { name: 'x', version: 1 }, models.mark(), async () => { throw new Error('not read again') })
  t.equal(plain?.name, 'x')

  // 5. Redis back (cluster mode): the rows are read again; only a model that differs is swapped.
  swaps.length = 0
  const rows: Record<string, ModelRef | null | undefined> = { r1: null, r3: { name: 'z', version: 1 }, r9: { name: 'x', version: 1 } }
  await models.refresh(['r1', 'r3', 'r9'], async (uuid) => rows[uuid])
  await tick()
  t.equal(models.of('r3')?.name, 'z', 'a change missed while Redis was away is caught up')
  t.equal(models.of('r1'), null)
  t.same(swaps, ['r3:z'], 'nothing else swapped (r9 never connected here)')
})
