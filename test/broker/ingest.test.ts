// docs/protocol.md §4 and §6 over the real broker: data frames published by robots
// on robots/{uuid}/data, one ack per frame on robots/{uuid}/ack (ok only
// after the commit), the stored history, hostile input on both transports,
// and live statistics on robots/{uuid}/stats.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import mqtt, { type MqttClient } from 'mqtt'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { bearer, build, onFrameInsert } from '../helper.js'
import { ownedRobot, type TestRobot, type TestUser } from '../factory.js'
import { brokerUrl, connectRobot, connectUser, eventually, listen, messageWhere, nextMessage, positionFrame, robotToken, subscribe, TRANSPORTS, type Transport } from '../mqtt.js'

interface Ack { id: string | null, status: 'ok' | 'error', errors?: string[], retry?: boolean }
interface FrameItem { frame_id: string, type: number, data: Record<string, unknown>, recorded_at: string | null, received_at: string }

const dataTopic = (uuid: string): string => `robots/${uuid}/data`
const ackTopic = (uuid: string): string => `robots/${uuid}/ack`
const statsTopic = (uuid: string): string => `robots/${uuid}/stats`

/** A robot owned by a fresh user, connected and subscribed to its acks. */
async function robotSession (t: Test, app: FastifyInstance, transport: Transport): Promise<{ user: TestUser, robot: TestRobot, client: MqttClient }> {
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot, { transport })
  // A connection the broker closes may report ECONNRESET: never let it throw.
  client.on('error', () => {})
  t.same(await subscribe(client, ackTopic(robot.uuid)), [1])
  return { user, robot, client }
}

/** Publishes one payload on the robot's data topic (QoS 1) and resolves with its ack. */
async function send (client: MqttClient, uuid: string, payload: string | Buffer): Promise<Ack> {
  const [ack] = await Promise.all([
    nextMessage<Ack>(client, ackTopic(uuid)),
    client.publishAsync(dataTopic(uuid), payload, { qos: 1 })
  ])
  return ack
}

/** Every stored frame of a robot, through the REST endpoint with the owner's JWT. */
async function storedFrames (app: FastifyInstance, user: TestUser, uuid: string): Promise<FrameItem[]> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}/frames?limit=1000`, headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET frames: ${res.statusCode} ${res.body}`)
  return res.json().items as FrameItem[]
}

async function healthy (t: Test, app: FastifyInstance): Promise<void> {
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200, 'the process still answers')
}

const frame = (id: unknown, type: unknown, data: unknown): string => JSON.stringify({ id, type, data })

const POSITION = { speed: 1.5, position_x: 10, position_y: -2.25, angle_theta: 0.5, datetime: '2024-05-01 12:00:00' }
const GEO = { latitude: 48.8584, longitude: 2.2945, datetime: '2024-05-01T12:00:01Z' }
const HARDWARE = { battery: 80, datetime: '2024-05-01T14:00:02+02:00' }

const VALID: Array<{ name: string, type: number, data: Record<string, unknown>, recordedAt: string }> = [
  { name: 'position', type: 1, data: POSITION, recordedAt: '2024-05-01T12:00:00.000Z' },
  { name: 'position, ISO datetime, negative and zero numbers', type: 1, data: { speed: 0, position_x: -1e6, position_y: 3.25e-3, angle_theta: -3.14159, datetime: '2024-05-01T12:00:00.250Z' }, recordedAt: '2024-05-01T12:00:00.250Z' },
  { name: 'geo, required fields only', type: 2, data: GEO, recordedAt: '2024-05-01T12:00:01.000Z' },
  { name: 'geo with altitude and accuracy, at the bounds', type: 2, data: { latitude: -90, longitude: 180, altitude: -12.5, accuracy: 0, datetime: '2024-05-01 12:00:01' }, recordedAt: '2024-05-01T12:00:01.000Z' },
  { name: 'hardware, one metric', type: 3, data: HARDWARE, recordedAt: '2024-05-01T12:00:02.000Z' },
  { name: 'hardware, every metric', type: 3, data: { battery: 100, temperature: -20.5, cpu: 0, memory: 99.5, datetime: '2024-05-01 12:00:03' }, recordedAt: '2024-05-01T12:00:03.000Z' }
]

// Each invalid frame, the id its ack must carry, and what its errors must say (each names the field).
const INVALID: Array<{ name: string, payload: string, id: string | null, errors: RegExp[] }> = [
  // envelope
  { name: 'id missing', payload: JSON.stringify({ type: 1, data: POSITION }), id: null, errors: [/\bid\b.*required/] },
  { name: 'id not a string', payload: frame(42, 1, POSITION), id: null, errors: [/\bid\b.*string/] },
  { name: 'id empty', payload: frame('', 1, POSITION), id: null, errors: [/\bid\b.*1 to 64/] },
  { name: 'id of 65 characters', payload: frame('x'.repeat(65), 1, POSITION), id: null, errors: [/\bid\b.*1 to 64/] },
  { name: 'unknown type', payload: frame('bad-type', 4, POSITION), id: 'bad-type', errors: [/\btype\b/] },
  { name: 'type as a string', payload: frame('string-type', '1', POSITION), id: 'string-type', errors: [/\btype\b/] },
  { name: 'data missing', payload: JSON.stringify({ id: 'no-data', type: 1 }), id: 'no-data', errors: [/\bdata\b.*required/] },
  { name: 'data an array', payload: frame('array-data', 1, [1, 2]), id: 'array-data', errors: [/\bdata\b/] },
  { name: 'unknown top-level field', payload: JSON.stringify({ id: 'extra-top', type: 1, data: POSITION, robot: 'x' }), id: 'extra-top', errors: [/\brobot\b.*not a field/] },
  { name: 'not an object', payload: JSON.stringify(['pos', 1, POSITION]), id: null, errors: [/JSON object/] },
  { name: 'null', payload: 'null', id: null, errors: [/JSON object/] },
  // position
  { name: 'position without speed', payload: frame('p-missing', 1, { ...POSITION, speed: undefined }), id: 'p-missing', errors: [/data\.speed.*required/] },
  { name: 'position with a numeric string', payload: frame('p-string', 1, { ...POSITION, position_x: '10' }), id: 'p-string', errors: [/data\.position_x.*number/] },
  { name: 'position with an infinite number', payload: `{"id":"p-inf","type":1,"data":{"speed":1,"position_x":1e400,"position_y":0,"angle_theta":0,"datetime":"2024-05-01 12:00:00"}}`, id: 'p-inf', errors: [/data\.position_x/] },
  { name: 'position with a field of another type', payload: frame('p-extra', 1, { ...POSITION, battery: 50 }), id: 'p-extra', errors: [/data\.battery.*not a field of a position frame/] },
  { name: 'position with a bad datetime', payload: frame('p-date', 1, { ...POSITION, datetime: 'yesterday' }), id: 'p-date', errors: [/data\.datetime/] },
  { name: 'position with an impossible date', payload: frame('p-date2', 1, { ...POSITION, datetime: '2024-13-45 25:61:00' }), id: 'p-date2', errors: [/data\.datetime/] },
  { name: 'position with several errors', payload: frame('p-many', 1, { speed: null, position_x: 1, angle_theta: 'a', datetime: 5 }), id: 'p-many', errors: [/data\.speed/, /data\.position_y.*required/, /data\.angle_theta/, /data\.datetime/] },
  // geo
  { name: 'geo latitude over 90', payload: frame('g-lat', 2, { ...GEO, latitude: 90.5 }), id: 'g-lat', errors: [/data\.latitude/] },
  { name: 'geo longitude under -180', payload: frame('g-lon', 2, { ...GEO, longitude: -181 }), id: 'g-lon', errors: [/data\.longitude/] },
  { name: 'geo negative accuracy', payload: frame('g-acc', 2, { ...GEO, accuracy: -1 }), id: 'g-acc', errors: [/data\.accuracy/] },
  { name: 'geo altitude as a string', payload: frame('g-alt', 2, { ...GEO, altitude: '12' }), id: 'g-alt', errors: [/data\.altitude.*number/] },
  { name: 'geo without datetime', payload: frame('g-date', 2, { latitude: 1, longitude: 2 }), id: 'g-date', errors: [/data\.datetime.*required/] },
  { name: 'geo with a position field', payload: frame('g-extra', 2, { ...GEO, speed: 1 }), id: 'g-extra', errors: [/data\.speed.*not a field of a geo frame/] },
  // hardware
  { name: 'hardware battery over 100', payload: frame('h-bat', 3, { ...HARDWARE, battery: 101 }), id: 'h-bat', errors: [/data\.battery/] },
  { name: 'hardware negative cpu', payload: frame('h-cpu', 3, { ...HARDWARE, cpu: -1 }), id: 'h-cpu', errors: [/data\.cpu/] },
  { name: 'hardware memory as a string', payload: frame('h-mem', 3, { ...HARDWARE, memory: 'full' }), id: 'h-mem', errors: [/data\.memory.*number/] },
  { name: 'hardware without any metric', payload: frame('h-none', 3, { datetime: HARDWARE.datetime }), id: 'h-none', errors: [/battery, temperature, cpu, memory/] },
  { name: 'hardware without datetime', payload: frame('h-date', 3, { temperature: 40 }), id: 'h-date', errors: [/data\.datetime.*required/] },
  { name: 'hardware with a geo field', payload: frame('h-extra', 3, { ...HARDWARE, latitude: 1 }), id: 'h-extra', errors: [/data\.latitude.*not a field of a hardware frame/] }
]

for (const transport of TRANSPORTS) {
  t.test(`valid frames of every type over ${transport} are acked ok and stored`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    for (const [i, f] of VALID.entries()) {
      const id = `valid-${i}`
      const ack = await send(client, robot.uuid, frame(id, f.type, f.data))
      t.same(ack, { id, status: 'ok' }, `${f.name}: acked ok`)
      // The ack comes after the commit: the frame is visible at once.
      const stored = (await storedFrames(app, user, robot.uuid)).filter((s) => s.frame_id === id)
      t.equal(stored.length, 1, `${f.name}: stored when acked`)
      t.match(stored[0], { frame_id: id, type: f.type, data: f.data, recorded_at: f.recordedAt, received_at: /^\d{4}-\d{2}-\d{2}T/ }, `${f.name}: stored as sent`)
      t.same(stored[0]?.data, f.data, `${f.name}: data stored exactly`)
    }
    t.equal((await storedFrames(app, user, robot.uuid)).length, VALID.length)
  })

  t.test(`invalid frames over ${transport} get an error ack naming the field, and nothing is stored`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    for (const c of INVALID) {
      const ack = await send(client, robot.uuid, c.payload)
      t.match(ack, { id: c.id, status: 'error', errors: Array }, `${c.name}: error ack`)
      t.equal(ack.id, c.id, `${c.name}: ack id`)
      t.notOk('retry' in ack, `${c.name}: no retry for a frame the robot got wrong`)
      t.ok(ack.errors !== undefined && ack.errors.length > 0 && ack.errors.every((e) => typeof e === 'string' && e.length > 0), `${c.name}: readable errors`)
      for (const re of c.errors) t.ok(ack.errors?.some((e) => re.test(e)), `${c.name}: an error matches ${String(re)} (got ${JSON.stringify(ack.errors)})`)
    }
    // Frames are written in order: once this one is acked, a wrongly queued invalid frame would be stored too.
    t.same(await send(client, robot.uuid, positionFrame('sentinel')), { id: 'sentinel', status: 'ok' })
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['sentinel'], 'only the valid frame is stored')
  })

  t.test(`unparseable payloads over ${transport} are acked with id null`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    const payloads: Array<string | Buffer> = ['not json', '{"id":"cut","type":1,', '', Buffer.from([0xff, 0xfe, 0x00, 0x80]), "{'id':'single-quotes'}"]
    for (const payload of payloads) {
      const ack = await send(client, robot.uuid, payload)
      t.match(ack, { id: null, status: 'error', errors: [/JSON/] }, `${JSON.stringify(payload.toString())}: id null`)
    }
    t.same(await send(client, robot.uuid, positionFrame('after')), { id: 'after', status: 'ok' })
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['after'])
  })

  t.test(`a payload over MAX_FRAME_BYTES over ${transport} is acked with id null, unparsed, and the connection stays`, async (t) => {
    const app = await build(t, { MAX_FRAME_BYTES: '1024' })
    const { user, robot, client } = await robotSession(t, app, transport)
    const big = JSON.stringify({ id: 'too-big', type: 1, data: { ...POSITION, padding: 'x'.repeat(2000) } }).slice(0, 2000)
    t.equal(Buffer.byteLength(big), 2000)
    const ack = await send(client, robot.uuid, big)
    t.match(ack, { id: null, status: 'error', errors: [/2000 bytes.*1024/] }, 'not parsed: id null, the size is named')
    t.ok(client.connected, 'the connection stays')
    t.same(await send(client, robot.uuid, positionFrame('small')), { id: 'small', status: 'ok' }, 'and is still usable')
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['small'])
  })

  t.test(`a packet over the hard packet limit over ${transport} closes that connection only`, async (t) => {
    const app = await build(t, { MAX_FRAME_BYTES: '1024' })
    const victim = await robotSession(t, app, transport)
    const other = await robotSession(t, app, transport)
    const gone = new Promise<void>((resolve) => { victim.client.once('close', () => { resolve() }) })
    // 1.5 MiB, over max(4 * 1024, 1 MiB); QoS 0, as no PUBACK will come.
    victim.client.publish(dataTopic(victim.robot.uuid), Buffer.alloc(1.5 * 1024 * 1024, 0x20), { qos: 0 })
    await gone
    t.pass('the connection is closed')
    await healthy(t, app)
    t.same(await send(other.client, other.robot.uuid, positionFrame('other-1')), { id: 'other-1', status: 'ok' }, 'another robot is unaffected')
    t.same((await storedFrames(app, victim.user, victim.robot.uuid)), [], 'nothing stored for the closed connection')
    // The robot may come back at once.
    const back = await connectRobot(t, app, victim.robot, { transport })
    await subscribe(back, ackTopic(victim.robot.uuid))
    t.same(await send(back, victim.robot.uuid, positionFrame('back')), { id: 'back', status: 'ok' }, 'the robot reconnects')
  })

  t.test(`a frame id the database cannot store over ${transport} gets an error ack and fails no one else's frame`, async (t) => {
    const app = await build(t)
    const a = await robotSession(t, app, transport)
    const b = await robotSession(t, app, transport)
    const payload = (id: string): string => `{"id":"${id}","type":1,"data":${JSON.stringify(POSITION)}}`
    const acks = new Map<string | null, Ack>()
    for (const s of [a, b]) {
      s.client.on('message', (topic, body) => {
        if (topic !== ackTopic(s.robot.uuid)) return
        const ack = JSON.parse(body.toString()) as Ack
        acks.set(ack.id, ack)
      })
    }
    // Sent together, so that without the check they would share a batch.
    await Promise.all([
      a.client.publishAsync(dataTopic(a.robot.uuid), payload('nul-\\u0000'), { qos: 1 }),
      a.client.publishAsync(dataTopic(a.robot.uuid), payload('lone-\\ud800'), { qos: 1 }),
      b.client.publishAsync(dataTopic(b.robot.uuid), payload('fine-1'), { qos: 1 }),
      b.client.publishAsync(dataTopic(b.robot.uuid), payload('bot-\\ud83e\\udd16'), { qos: 1 })
    ])
    await eventually(async () => acks.size, (n) => n === 4)
    const [nul, lone, good, emoji] = ['nul-\u0000', 'lone-\ud800', 'fine-1', 'bot-🤖'].map((id) => acks.get(id))
    t.match(nul, { id: 'nul-\u0000', status: 'error', errors: [/NUL/] })
    t.notOk(nul?.retry, 'not worth a resend')
    t.match(lone, { id: 'lone-\ud800', status: 'error', errors: [/unpaired surrogates/] })
    t.same(good, { id: 'fine-1', status: 'ok' })
    t.same(emoji, { id: 'bot-🤖', status: 'ok' })
    t.same(await storedFrames(app, a.user, a.robot.uuid), [], 'nothing of the refused frames is stored')
    t.same((await storedFrames(app, b.user, b.robot.uuid)).map((f) => f.frame_id).sort(), ['bot-🤖', 'fine-1'], 'the other robot’s frames are stored, the emoji exactly')
  })

  t.test(`duplicate frame ids over ${transport} are acked ok each time and stored once`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    // One after the other, as a QoS 1 redelivery would.
    for (let i = 0; i < 3; i++) t.same(await send(client, robot.uuid, positionFrame('dup-seq', { speed: i })), { id: 'dup-seq', status: 'ok' }, `resend ${i + 1} acked ok`)
    // All at once, likely in the same batch.
    const acks: Ack[] = []
    const allAcked = new Promise<void>((resolve) => {
      client.on('message', (topic, payload) => {
        if (topic !== ackTopic(robot.uuid)) return
        acks.push(JSON.parse(payload.toString()) as Ack)
        if (acks.length === 3) resolve()
      })
    })
    await Promise.all([0, 1, 2].map(async (i) => await client.publishAsync(dataTopic(robot.uuid), positionFrame('dup-burst', { speed: i }), { qos: 1 })))
    await allAcked
    t.same(acks, [{ id: 'dup-burst', status: 'ok' }, { id: 'dup-burst', status: 'ok' }, { id: 'dup-burst', status: 'ok' }], 'three ok acks')
    const stored = await storedFrames(app, user, robot.uuid)
    t.equal(stored.filter((f) => f.frame_id === 'dup-seq').length, 1, 'sequential resends stored once')
    t.equal(stored.filter((f) => f.frame_id === 'dup-burst').length, 1, 'burst resends stored once')
    t.equal(stored.find((f) => f.frame_id === 'dup-seq')?.data.speed, 0, 'the first copy is the one kept')
    t.equal(stored.length, 2)
  })

  t.test(`200 frames sent quickly with QoS 1 over ${transport} get exactly one ack each`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    const N = 200
    const acks: Ack[] = []
    let sentinel: (() => void) | undefined
    const all = new Promise<void>((resolve) => {
      client.on('message', (topic, payload) => {
        if (topic !== ackTopic(robot.uuid)) return
        const ack = JSON.parse(payload.toString()) as Ack
        if (ack.id === 'sentinel') { sentinel?.(); return }
        acks.push(ack)
        if (acks.length === N) resolve()
      })
    })
    const ids = Array.from({ length: N }, (_, i) => `burst-${i}`)
    await Promise.all(ids.map(async (id, i) => await client.publishAsync(dataTopic(robot.uuid), positionFrame(id, { position_x: i }), { qos: 1 })))
    await all
    // A later frame's ack comes after any stray duplicate of the earlier ones.
    await new Promise<void>((resolve) => {
      sentinel = resolve
      client.publish(dataTopic(robot.uuid), positionFrame('sentinel'), { qos: 1 })
    })
    t.equal(acks.length, N, 'no extra acks')
    t.ok(acks.every((a) => a.status === 'ok'), 'every ack is ok')
    t.same([...new Set(acks.map((a) => a.id))].sort(), [...ids].sort(), 'one ack per frame id')
    const stored = await storedFrames(app, user, robot.uuid)
    t.equal(stored.length, N + 1, 'every frame is stored')
    t.same(new Set(stored.map((f) => f.frame_id)), new Set([...ids, 'sentinel']))
  })

  t.test(`a storage failure over ${transport} is acked with retry, and a resend is stored once`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    const writer = app.services.frameWriter
    const original = writer.enqueue
    t.teardown(() => { writer.enqueue = original })
    writer.enqueue = (_row, _admitted, done) => { setImmediate(() => { done(false, new Error('db down')) }) }

    const ack = await send(client, robot.uuid, positionFrame('retry-me'))
    t.match(ack, { id: 'retry-me', status: 'error', retry: true, errors: [String] }, 'error ack with retry: true')
    t.notOk(ack.errors?.some((e) => e.includes('db down')), 'no internal error text in the ack')
    t.same(await send(client, robot.uuid, positionFrame('retry-me')), ack, 'still failing: the same answer')
    await healthy(t, app)
    t.ok(client.connected, 'the robot stays connected')

    writer.enqueue = original
    t.same(await send(client, robot.uuid, positionFrame('retry-me')), { id: 'retry-me', status: 'ok' }, 'the resend is stored')
    t.same(await send(client, robot.uuid, positionFrame('retry-me')), { id: 'retry-me', status: 'ok' }, 'and a redelivery is ok again')
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['retry-me'], 'stored once')
  })

  t.test(`a failing batch over ${transport} fails only its frames; the writer recovers`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    // The database itself fails the batch's INSERT (not a stub of our writer).
    const restore = onFrameInsert(t, app, async () => { throw new Error('connection terminated') })
    t.match(await send(client, robot.uuid, positionFrame('batch-1')), { id: 'batch-1', status: 'error', retry: true })
    restore()
    t.same(await send(client, robot.uuid, positionFrame('batch-1')), { id: 'batch-1', status: 'ok' })
    t.same(await send(client, robot.uuid, positionFrame('batch-2')), { id: 'batch-2', status: 'ok' })
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id).sort(), ['batch-1', 'batch-2'])
  })

  t.test(`the ok ack over ${transport} waits for the commit`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    // Slow the storage down: an ack sent before the commit would find nothing stored.
    const writer = app.services.frameWriter
    const original = writer.enqueue
    t.teardown(() => { writer.enqueue = original })
    writer.enqueue = (row, admitted, done) => {
      setTimeout(() => { original(row, admitted, done) }, 30)
    }
    for (const id of ['slow-1', 'slow-2', 'slow-3']) {
      t.same(await send(client, robot.uuid, positionFrame(id)), { id, status: 'ok' })
      t.ok((await storedFrames(app, user, robot.uuid)).some((f) => f.frame_id === id), `${id} is visible when its ack arrives`)
    }
  })

  t.test(`deeply nested and huge JSON within the size limit over ${transport} get an error ack`, async (t) => {
    const app = await build(t, { MAX_FRAME_BYTES: '262144' })
    const { user, robot, client } = await robotSession(t, app, transport)
    const deep = 100_000
    const zeros = (n: number): string => `[${new Array<string>(n).fill('0').join(',')}]`
    const cases: Array<{ name: string, payload: string, id: string | null, error: RegExp }> = [
      { name: 'unclosed nesting', payload: '['.repeat(deep), id: null, error: /JSON/ },
      { name: 'closed nesting', payload: '['.repeat(deep) + ']'.repeat(deep), id: null, error: /JSON object/ },
      { name: 'nested objects', payload: '{"a":'.repeat(40_000) + '1' + '}'.repeat(40_000), id: null, error: /\ba\b.*not a field/ },
      { name: 'nesting inside a field', payload: `{"id":"deep-field","type":1,"data":{"speed":${'['.repeat(50_000)}${']'.repeat(50_000)},"position_x":0,"position_y":0,"angle_theta":0,"datetime":"2024-05-01 12:00:00"}}`, id: 'deep-field', error: /data\.speed.*number/ },
      { name: 'nesting as an unknown field', payload: `{"id":"deep-extra","type":3,"data":{"battery":1,"datetime":"2024-05-01 12:00:00","x":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}}`, id: 'deep-extra', error: /data\.x.*not a field/ },
      { name: 'a huge array', payload: zeros(120_000), id: null, error: /JSON object/ },
      { name: 'a huge array as data', payload: `{"id":"big-data","type":1,"data":${zeros(120_000)}}`, id: 'big-data', error: /\bdata\b/ },
      { name: 'a huge array as a metric', payload: `{"id":"big-metric","type":3,"data":{"datetime":"2024-05-01 12:00:00","cpu":${zeros(120_000)}}}`, id: 'big-metric', error: /data\.cpu.*number/ },
      { name: 'a huge id', payload: `{"id":"${'i'.repeat(200_000)}","type":1,"data":{}}`, id: null, error: /\bid\b.*1 to 64/ }
    ]
    for (const c of cases) {
      t.ok(Buffer.byteLength(c.payload) <= 262144, `${c.name}: within the size limit`)
      const ack = await send(client, robot.uuid, c.payload)
      t.match(ack, { id: c.id, status: 'error' }, `${c.name}: error ack`)
      t.equal(ack.id, c.id)
      t.ok(ack.errors?.some((e) => c.error.test(e)), `${c.name}: ${String(c.error)} in ${JSON.stringify(ack.errors).slice(0, 300)}`)
    }
    await healthy(t, app)
    t.same(await send(client, robot.uuid, positionFrame('still-fine')), { id: 'still-fine', status: 'ok' })
    t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['still-fine'])
  })

  t.test(`live statistics over ${transport} follow the stored frames`, async (t) => {
    const app = await build(t)
    const { user, robot, client } = await robotSession(t, app, transport)
    const watcher = await connectUser(t, app, user, { transport })
    t.same(await subscribe(watcher, statsTopic(robot.uuid), 0), [0])
    const base = { robot_uuid: robot.uuid, state: 'idle', data_connected: true, command_connected: false }

    let stats = nextMessage(watcher, statsTopic(robot.uuid))
    t.same(await send(client, robot.uuid, frame('s-1', 1, POSITION)), { id: 's-1', status: 'ok' })
    t.same(await stats, { ...base, ...POSITION }, 'position frame: the contract fields, nothing else')

    stats = nextMessage(watcher, statsTopic(robot.uuid))
    const geo = { ...GEO, altitude: 35, accuracy: 2.5 }
    t.same(await send(client, robot.uuid, frame('s-2', 2, geo)), { id: 's-2', status: 'ok' })
    t.same(await stats, { ...base, ...POSITION, ...geo }, 'geo fields merged into the last known values')

    stats = nextMessage(watcher, statsTopic(robot.uuid))
    const hw = { battery: 55, temperature: 41.5, cpu: 12, memory: 33, datetime: '2024-05-01 12:00:05' }
    t.same(await send(client, robot.uuid, frame('s-3', 3, hw)), { id: 's-3', status: 'ok' })
    t.same(await stats, { ...base, ...POSITION, ...geo, ...hw }, 'hardware fields merged')

    // Rejected frames publish nothing; the next stored one does.
    stats = messageWhere(watcher, statsTopic(robot.uuid), () => true)
    t.match(await send(client, robot.uuid, frame('s-bad', 1, { ...POSITION, speed: 'fast' })), { status: 'error' })
    t.same(await send(client, robot.uuid, frame('s-4', 1, { ...POSITION, speed: 2 })), { id: 's-4', status: 'ok' })
    t.match(await stats, { speed: 2, battery: 55, latitude: GEO.latitude }, 'the first statistics after a rejected frame are those of the next stored frame')

    // A dashboard that subscribes later gets the latest values at once (retained).
    const late = await connectUser(t, app, user, { transport })
    const retained = nextMessage(late, statsTopic(robot.uuid))
    await subscribe(late, statsTopic(robot.uuid), 0)
    t.match(await retained, { robot_uuid: robot.uuid, speed: 2, battery: 55 })
  })
}

// ── Hostile input on the raw ports ───────────────────────────────────────────

/** Resolves when the socket is closed (by either side); errors are expected and ignored. */
async function socketClosed (socket: Socket): Promise<void> {
  if (socket.destroyed) return
  await once(socket, 'close')
}

async function rawTcp (t: Test, app: FastifyInstance): Promise<Socket> {
  const socket = netConnect({ host: '127.0.0.1', port: app.broker.port })
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  await once(socket, 'connect')
  return socket
}

async function rawWs (t: Test, app: FastifyInstance): Promise<WebSocket> {
  await listen(app)
  const ws = new WebSocket(brokerUrl(app, 'ws'), 'mqtt')
  ws.on('error', () => {})
  t.teardown(() => { ws.terminate() })
  await once(ws, 'open')
  return ws
}

async function wsClosed (ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return
  await once(ws, 'close')
}

/** An MQTT 3.1.1 CONNECT with username and password, keep-alive off, built by hand. */
function connectPacket (clientId: string, username: string, password: string): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8')
    const len = Buffer.alloc(2)
    len.writeUInt16BE(b.length)
    return Buffer.concat([len, b])
  }
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 0]), str(clientId), str(username), str(password)])
  if (body.length > 16383) throw new Error('keep the test CONNECT short')
  const length = body.length < 128 ? [body.length] : [(body.length & 0x7f) | 0x80, body.length >> 7]
  return Buffer.concat([Buffer.from([0x10, ...length]), body])
}

/** The first `n` bytes received, however the server split them into writes or messages. */
async function firstBytes (source: Socket | WebSocket, event: 'data' | 'message', n: number): Promise<Buffer> {
  return await new Promise((resolve) => {
    let received = Buffer.alloc(0)
    const onChunk = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk])
      if (received.length < n) return
      source.off(event, onChunk)
      resolve(received.subarray(0, n))
    }
    source.on(event, onChunk)
  })
}

/** 2 MiB of random bytes: whatever length they declare, the packet is either complete or over the limit. */
const GARBAGE = (): Buffer => randomBytes(2 * 1024 * 1024)
const ABSURD_CONNECT = Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), randomBytes(64)])

t.test('hostile bytes on the TCP port close that connection; robots connected meanwhile keep their acks', async (t) => {
  const app = await build(t)
  const healthyRobot = await robotSession(t, app, 'tcp')
  let n = 0
  const check = async (what: string): Promise<void> => {
    const id = `healthy-${++n}`
    t.same(await send(healthyRobot.client, healthyRobot.robot.uuid, positionFrame(id)), { id, status: 'ok' }, `${what}: a healthy robot still gets its ack`)
  }

  const random = await rawTcp(t, app)
  random.write(GARBAGE())
  await check('random bytes in flight')
  await socketClosed(random)
  t.pass('random bytes: connection closed')

  const absurd = await rawTcp(t, app)
  absurd.write(ABSURD_CONNECT)
  await check('absurd CONNECT pending')
  await socketClosed(absurd)
  t.pass('a CONNECT declaring 256 MiB: connection closed')

  // After a valid CONNECT (keep-alive off, so nothing else would close it), a PUBLISH declaring 256 MiB.
  const { robot } = await ownedRobot(app)
  const loggedIn = await rawTcp(t, app)
  const connack = firstBytes(loggedIn, 'data', 4)
  loggedIn.write(connectPacket('raw-tcp-robot', robot.uuid, await robotToken(app, robot)))
  t.same([...await connack], [0x20, 2, 0, 0], 'CONNACK accepted')
  loggedIn.write(Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), randomBytes(1000)]))
  await check('huge PUBLISH pending')
  await socketClosed(loggedIn)
  t.pass('a PUBLISH declaring 256 MiB after log-in: connection closed')

  const half = await rawTcp(t, app)
  half.write(Buffer.from([0x10])) // a packet cut after its first byte
  half.end()
  await socketClosed(half)

  await check('after all of it')
  await healthy(t, app)
  t.equal(app.broker.connectedRobots(), 1, 'only the healthy robot is connected')
})

t.test('hostile WebSocket messages close that connection; robots connected meanwhile keep their acks', async (t) => {
  const app = await build(t)
  const healthyRobot = await robotSession(t, app, 'ws')
  let n = 0
  const check = async (what: string): Promise<void> => {
    const id = `healthy-${++n}`
    t.same(await send(healthyRobot.client, healthyRobot.robot.uuid, positionFrame(id)), { id, status: 'ok' }, `${what}: a healthy robot still gets its ack`)
  }

  const random = await rawWs(t, app)
  const garbage = GARBAGE()
  for (let i = 0; i < garbage.length; i += 64 * 1024) random.send(garbage.subarray(i, i + 64 * 1024), { binary: true })
  await check('random messages in flight')
  await wsClosed(random)
  t.pass('random binary messages: connection closed')

  const absurd = await rawWs(t, app)
  absurd.send(ABSURD_CONNECT, { binary: true })
  await check('absurd CONNECT pending')
  await wsClosed(absurd)
  t.pass('a CONNECT declaring 256 MiB: connection closed')

  const text = await rawWs(t, app)
  text.send(`GET / HTTP/1.1\r\nHost: example\r\n${'X-Junk: yes\r\n'.repeat(100)}\r\n`)
  await wsClosed(text)
  t.pass('a text message of garbage: connection closed')

  const huge = await rawWs(t, app)
  huge.send(Buffer.alloc(1.5 * 1024 * 1024, 0x30), { binary: true })
  await wsClosed(huge)
  t.pass('a message over the packet limit: connection closed')

  const { robot } = await ownedRobot(app)
  const loggedIn = await rawWs(t, app)
  const connack = firstBytes(loggedIn, 'message', 4)
  loggedIn.send(connectPacket('raw-ws-robot', robot.uuid, await robotToken(app, robot)), { binary: true })
  t.same([...await connack], [0x20, 2, 0, 0], 'CONNACK accepted')
  loggedIn.send(Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), randomBytes(1000)]), { binary: true })
  await check('huge PUBLISH pending')
  await wsClosed(loggedIn)
  t.pass('a PUBLISH declaring 256 MiB after log-in: connection closed')

  await check('after all of it')
  await healthy(t, app)
  t.equal(app.broker.connectedRobots(), 1, 'only the healthy robot is connected')
})

// Acks go to the robot's own connections directly (broker/acks.ts): only to
// those subscribed to the ack topic, at the subscription's QoS, and through
// the broker's offline queue for a robot with a persistent session.
t.test('acks reach only the robot connections subscribed to the ack topic, at their QoS', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  const data = await connectRobot(t, app, robot, { clientId: `data-${robot.uuid}` })
  const acks = await connectRobot(t, app, robot, { clientId: `acks-${robot.uuid}` })
  t.same(await subscribe(acks, ackTopic(robot.uuid), 0), [0])
  const onData: string[] = []
  data.on('message', (topic) => { onData.push(topic) })
  const received = new Promise<{ payload: Ack, qos: number }>((resolve) => {
    acks.on('message', (topic, payload, packet) => { if (topic === ackTopic(robot.uuid)) resolve({ payload: JSON.parse(payload.toString()) as Ack, qos: packet.qos }) })
  })
  await data.publishAsync(dataTopic(robot.uuid), positionFrame('two-connections'), { qos: 1 })
  t.same(await received, { payload: { id: 'two-connections', status: 'ok' }, qos: 0 }, 'the subscribed connection gets the ack at QoS 0')
  // A later frame's ack arriving proves the first one was not also sent to `data`.
  t.same(await send(acks, robot.uuid, positionFrame('from-the-other')), { id: 'from-the-other', status: 'ok' })
  t.same(onData, [], 'the unsubscribed connection got nothing')
})

t.test('frame ids with quotes, backslashes, control characters and non-ASCII are stored and read back exactly', async (t) => {
  const app = await build(t)
  const { user, robot, client } = await robotSession(t, app, 'tcp')
  const ids = ['q"uote', 'back\\slash\\', 'line\nbreak\ttab', 'accent-é', 'json-{"a":[1]}', "'single'", 'bot-🤖']
  for (const id of ids) t.same(await send(client, robot.uuid, positionFrame(id)), { id, status: 'ok' })
  const stored = await storedFrames(app, user, robot.uuid)
  t.same(stored.map((f) => f.frame_id).sort(), [...ids].sort())
  t.same(stored[0]?.data, JSON.parse(positionFrame('x')).data as unknown, 'the data too')
})

t.test("a batch that holds frames of a robot deleted meanwhile stores the others' frames and drops those", async (t) => {
  const app = await build(t)
  const live = await ownedRobot(app)
  const gone = await ownedRobot(app)
  const staff = { id: 0, username: 'x', isStaff: true }
  const liveId = (await app.services.access.robotFor(staff, live.robot.uuid)).id
  const goneId = (await app.services.access.robotFor(staff, gone.robot.uuid)).id
  await app.services.robots.remove(gone.robot.uuid, { actor: null })
  const row = (robotId: number, frameId: string) => ({ robotId, frameId, type: 1, data: { ...POSITION }, recordedAt: null, receivedAt: new Date() })
  // Queued in one turn of the event loop: one batch, one statement.
  const writes = [row(liveId, 'mine-1'), row(goneId, 'orphan'), row(liveId, 'mine-2'), row(999_999, 'never-was')].map((r) => app.services.frameWriter.write(r))
  await Promise.all(writes)
  t.same((await storedFrames(app, live.user, live.robot.uuid)).map((f) => f.frame_id).sort(), ['mine-1', 'mine-2'], "the live robot's frames are stored")
  const [{ n }] = await app.db.sequelize.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM frames WHERE robot_id <> ?', { replacements: [liveId], type: QueryTypes.SELECT }) as [{ n: number | string }]
  t.equal(Number(n), 0, 'nothing else is stored')
})

t.test('frames are stored as JSON.parse reads them, however the robot wrote the JSON', async (t) => {
  const app = await build(t)
  const { user, robot, client } = await robotSession(t, app, 'tcp')
  const dt = '"datetime":"2024-05-01 12:00:00"'
  const texts: Record<string, string> = {
    escapes: `{"id":"esc-\\u00e9\\ud83e\\udd16\\"\\/","type":1,"data":{"speed":1,"position_x":2,"position_y":3,"angle_theta":4,${dt}}}`,
    whitespace: `\n{ "id" : "ws" ,\t"type" : 1 ,\r\n "data" : { "speed" : 1 , "position_x" : 2 , "position_y" : 3 , "angle_theta" : 4 , ${dt} } }\n`,
    exponents: `{"id":"exp","type":1,"data":{"speed":1.5E+2,"position_x":-2.5e-12,"position_y":1e99,"angle_theta":0.10000000000000000555,${dt}}}`,
    'a duplicate key': `{"id":"dup-key","type":1,"data":{"speed":1,"speed":2,"position_x":2,"position_y":3,"angle_theta":4,${dt}}}`,
    'an exponent PostgreSQL numeric cannot hold': `{"id":"tiny","type":1,"data":{"speed":1e-20000,"position_x":2,"position_y":3,"angle_theta":4,${dt}}}`,
    'a 20,000-digit fraction': `{"id":"long","type":1,"data":{"speed":0.${'0'.repeat(20_000)}1,"position_x":2,"position_y":3,"angle_theta":4,${dt}}}`,
    'a 150-digit number in a short frame': `{"id":"wide","type":1,"data":{"speed":${'9'.repeat(150)},"position_x":-0.${'1'.repeat(150)},"position_y":3,"angle_theta":4,${dt}}}`,
    'a three-digit exponent': `{"id":"huge","type":1,"data":{"speed":1e300,"position_x":-1.7976931348623157e308,"position_y":3,"angle_theta":4,${dt}}}`,
    'an id that looks like an exponent': `{"id":"e123","type":1,"data":{"speed":1,"position_x":2,"position_y":3,"angle_theta":4,${dt}}}`
  }
  for (const [what, text] of Object.entries(texts)) {
    const parsed = JSON.parse(text) as { id: string, data: Record<string, unknown> }
    t.same(await send(client, robot.uuid, text), { id: parsed.id, status: 'ok' }, `${what}: acked ok`)
    const stored = (await storedFrames(app, user, robot.uuid)).find((f) => f.frame_id === parsed.id)
    t.same(stored?.data, parsed.data, `${what}: stored as JSON.parse reads it`)
  }
  t.same((await storedFrames(app, user, robot.uuid)).find((f) => f.frame_id === 'esc-é🤖"/')?.type, 1, 'the escaped id is stored unescaped')
  await healthy(t, app)
})

t.test("a robot's will on its own data topic is handled as a frame: stored and acked", async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const watcher = await connectRobot(t, app, robot, { clientId: `acks-${robot.uuid}` })
  t.same(await subscribe(watcher, ackTopic(robot.uuid)), [1])
  const dying = await connectRobot(t, app, robot, {
    clientId: `dying-${robot.uuid}`,
    will: { topic: dataTopic(robot.uuid), payload: Buffer.from(positionFrame('last-words')), qos: 1, retain: false }
  })
  dying.on('error', () => {})
  const ack = nextMessage<Ack>(watcher, ackTopic(robot.uuid))
  // An abnormal end of the connection: the broker publishes the will.
  dying.stream.destroy()
  t.same(await ack, { id: 'last-words', status: 'ok' })
  t.same((await storedFrames(app, user, robot.uuid)).map((f) => f.frame_id), ['last-words'])
})

t.test('the ack of a robot whose persistent session is offline waits for that session', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  const clientId = `persistent-${robot.uuid}`
  const first = await connectRobot(t, app, robot, { clientId, clean: false })
  t.same(await subscribe(first, ackTopic(robot.uuid)), [1])
  await first.endAsync()
  const sender = await connectRobot(t, app, robot, { clientId: `sender-${robot.uuid}` })
  await sender.publishAsync(dataTopic(robot.uuid), positionFrame('while-offline'), { qos: 1 })
  // The session is resumed: the ack queued meanwhile is delivered.
  // Listening before CONNACK: the queued ack may follow it at once.
  const again = mqtt.connect(brokerUrl(app, 'tcp'), { reconnectPeriod: 0, protocolVersion: 4, clientId, clean: false, username: robot.uuid, password: await robotToken(app, robot) })
  t.teardown(() => { again.end(true) })
  t.same(await nextMessage<Ack>(again, ackTopic(robot.uuid)), { id: 'while-offline', status: 'ok' })
})

t.test('over WebSocket, a packet the broker sends arrives whole in one message, not in pieces', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  const ws = await rawWs(t, app)
  const messages: Buffer[] = []
  ws.on('message', (data: Buffer) => { messages.push(data) })
  const received = async (n: number): Promise<void> => {
    const deadline = Date.now() + 5000
    while (messages.length < n && Date.now() < deadline) await new Promise((resolve) => { setTimeout(resolve, 10) })
  }
  ws.send(connectPacket('ws-whole-packets', robot.uuid, await robotToken(app, robot)), { binary: true })
  await received(1)
  const topic = Buffer.from(ackTopic(robot.uuid))
  const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
  // SUBSCRIBE (packet id 1) to the ack topic, QoS 1
  const subscribe = Buffer.concat([Buffer.from([0, 1]), str(topic), Buffer.from([1])])
  ws.send(Buffer.concat([Buffer.from([0x82, subscribe.length]), subscribe]), { binary: true })
  await received(2)
  // PUBLISH QoS 1 (packet id 2) of a frame on the data topic
  const payload = Buffer.from(positionFrame('ws-whole'))
  const publish = Buffer.concat([str(Buffer.from(dataTopic(robot.uuid))), Buffer.from([0, 2]), payload])
  ws.send(Buffer.concat([Buffer.from([0x32, (publish.length & 0x7f) | 0x80, publish.length >> 7]), publish]), { binary: true })
  // PUBACK and the ack's PUBLISH, in one message or two
  const deadline = Date.now() + 5000
  const all = (): Buffer => Buffer.concat(messages)
  while (!all().includes(Buffer.from('"ws-whole"')) && Date.now() < deadline) await new Promise((resolve) => { setTimeout(resolve, 10) })
  t.same([...(messages[0] ?? [])], [0x20, 2, 0, 0], 'CONNACK in one message')
  t.same([...(messages[1] ?? [])], [0x90, 3, 0, 1, 1], 'SUBACK in one message')
  // Every message holds whole packets: walk them, packet by packet.
  for (const m of messages) {
    let at = 0
    while (at < m.length) {
      let length = 0
      let shift = 0
      let i = at + 1
      for (;;) {
        const byte = m[i++] as number
        length += (byte & 0x7f) << shift
        shift += 7
        if ((byte & 0x80) === 0) break
      }
      at = i + length
    }
    t.equal(at, m.length, `a message of ${m.length} bytes holds whole packets`)
  }
  t.ok(all().includes(Buffer.from('{"id":"ws-whole","status":"ok"}')), 'the ack arrived')
})
