// docs/protocol.md §12: /docs/asyncapi.json describes the MQTT side, and what it
// says is what the broker does. The document is checked with the AsyncAPI
// project's own parser, and its schemas are read from the parsed document by
// a standard JSON Schema validator (a fresh ajv with ajv-formats, nothing of
// ours). A corpus of frames goes both to that validator and to the broker
// over MQTT: every frame gets the same verdict from both. The messages the
// broker sends on the way (acks, stats, presence, commands) must match the
// document's schemas too, and so must the command acks it takes.
import type { AsyncAPIDocumentInterface } from '@asyncapi/parser'
import type { ValidateFunction } from 'ajv'
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { ACL } from '../../src/contract/acl.js'
import { CHANNELS } from '../../src/contract/topics.js'
import { createRobot, ownedRobot, type TestUser } from '../factory.js'
import { accepts, parsed, served, standardValidator } from '../asyncapi.js'
import { bearer, build } from '../helper.js'
import { collect, connectRobot, connectUser, eventually, listen, nextMessage, subscribe, TLS_SETTINGS, type Transport } from '../mqtt.js'

/** A standard validator for the payload schema of a channel's message, as the parsed document holds it. */
function validatorOf (document: AsyncAPIDocumentInterface, channelId: string): ValidateFunction {
  const channel = document.channels().get(channelId)
  if (channel === undefined) throw new Error(`no channel ${channelId}`)
  const message = channel.messages().all()[0]
  const payload = message?.payload()?.json()
  if (payload === undefined) throw new Error(`no payload schema on ${channelId}`)
  return standardValidator(payload)
}

t.test('the document is valid AsyncAPI 3.0 and names every topic, operation and server', async (t) => {
  const app = await build(t, TLS_SETTINGS)
  await listen(app)
  const doc = await served(app)
  t.equal(doc.asyncapi, '3.0.0')
  const document = await parsed(t, doc)

  t.same(document.channels().all().map((c) => c.address()).sort(), CHANNELS.map((c) => `robots/{uuid}/${c}`).sort(), 'one channel per topic of §3')
  for (const channel of document.channels().all()) {
    t.same(channel.parameters().all().map((p) => p.id()), ['uuid'], `${channel.address() ?? ''}: the uuid parameter`)
    t.equal(channel.messages().all().length, 1, `${channel.address() ?? ''}: one message with a payload schema`)
  }

  // the operations are the access table of docs/protocol.md §3, from the client's side
  const ops = document.operations().all().map((o) => `${o.action()} ${o.channels().all()[0]?.address() ?? ''} ${o.tags().all().map((tag) => tag.name()).join()}`).sort()
  const expected = CHANNELS.flatMap((c) => [
    ...(ACL[c].robotPublishes ? [`send robots/{uuid}/${c} robot`] : []),
    ...(ACL[c].robotSubscribes ? [`receive robots/{uuid}/${c} robot`] : []),
    ...(ACL[c].usersSubscribe ? [`receive robots/{uuid}/${c} user`] : [])
  ]).sort()
  t.same(ops, expected, 'who sends and receives where')
  t.equal(document.operations().get('robotSendsData')?.reply()?.channel()?.address(), 'robots/{uuid}/ack', "a frame's reply is its ack")

  const servers = Object.fromEntries(document.servers().all().map((s) => [s.id(), s]))
  const port = (id: string): string | undefined => servers[id]?.variables().get('port')?.defaultValue()
  t.equal(servers.mqtt?.protocol(), 'mqtt')
  t.equal(port('mqtt'), String(app.broker.port), 'the TCP server names the port MQTT listens on')
  t.equal(servers.websocket?.protocol(), 'ws')
  t.equal(servers.websocket?.pathname(), '/mqtt')
  t.equal(port('websocket'), String((app.server.address() as { port: number }).port))
  t.equal(servers.tls?.protocol(), 'secure-mqtt')
  t.equal(port('tls'), String(app.broker.tlsPort))
  t.equal(servers.mqtt?.variables().get('host')?.defaultValue(), 'localhost', "the host the client asked by (inject's Host)")
})

t.test('without MQTT over TLS there is no TLS server; a Host header that is not a host name is not echoed', async (t) => {
  const app = await build(t)
  const doc = await served(app, { host: 'broker.example.com:8000' }) as { servers: Record<string, { variables: { host: { default: string } } }>, info: { externalDocs: { url: string } } }
  t.same(Object.keys(doc.servers).sort(), ['mqtt', 'websocket'])
  t.equal(doc.servers.mqtt?.variables.host.default, 'broker.example.com')
  t.equal(doc.info.externalDocs.url, 'http://broker.example.com:8000/docs')
  for (const host of ['evil"<script>', 'a b', 'x/../y', `${'a'.repeat(300)}.com`]) {
    const bad = await app.inject({ method: 'GET', url: '/docs/asyncapi.json', headers: { host } })
    t.equal(bad.statusCode, 200, JSON.stringify(host))
    t.notOk(bad.body.includes(host.slice(0, 20)), `${JSON.stringify(host.slice(0, 20))} is not in the document`)
  }
})

t.test('the OpenAPI document and its UI link to the AsyncAPI document', async (t) => {
  const app = await build(t)
  const openapi = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.equal(openapi.externalDocs?.url, '/docs/asyncapi.json')
  t.match(openapi.info.description, /\[\/docs\/asyncapi\.json\]\(\/docs\/asyncapi\.json\)/, 'a link the UI shows')
  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
})

// ---- the corpus ------------------------------------------------------------

const DT = '2024-05-01 12:00:00'
const POSITION = { speed: 1.5, position_x: 10, position_y: -20, angle_theta: 0.5, datetime: DT }
const GEO = { latitude: 48.85, longitude: 2.35, datetime: DT }
const HARDWARE = { datetime: DT, battery: 80 }
const BASES: Array<[number, Record<string, unknown>]> = [[1, POSITION], [2, GEO], [3, HARDWARE]]

const DATETIMES = [
  DT, '2024-05-01 12:00:00.5', '2024-05-01 12:00:00.123456', '2024-05-01 12:00:00.1234567', '2024-05-01 24:00:00', '2024-05-01 24:00:01',
  '2024-05-01T12:00:00Z', '2024-05-01t12:00:00z', '2024-05-01T12:00Z', '2024-05-01T12Z', '2024-05-01T12:00:00', '2024-05-01T12:00',
  '2024-05-01T12:00:00.123456789Z', '2024-05-01T12:00:00.1234567890Z', '2024-05-01T12:00:00+02:00', '2024-05-01T12:00:00+0200',
  '2024-05-01T12:00:00-23:59', '2024-05-01T12:00:00+24:00', '2024-05-01T12:00:00+05:60', '2024-05-01T24:00Z', '2024-05-01T24:00:00.000Z',
  '2024-05-01T24:00:00.5Z', '2024-05-01T23:60:00Z', '2024-05-01T23:59:60Z', '2024-02-29T10:00:00Z', '2023-02-29T10:00:00Z',
  '2000-02-29 00:00:00', '1900-02-29 00:00:00', '0000-02-29 00:00:00', '2024-04-31T00:00:00Z', '2024-04-30T00:00:00Z', '2024-12-31 23:59:59',
  '2024-13-01 00:00:00', '2024-00-01 00:00:00', '2024-01-00 00:00:00', '2024-1-01 00:00:00', '2024-05-01  12:00:00', ' 2024-05-01 12:00:00',
  '2024-05-01 12:00:00 ', '2024-05-01T12:00:00 Z', '+002024-05-01T12:00Z', '2024-05-01', '12:00:00', 'yesterday', '', 1714564800, null
]

/** Raw frame texts: valid ones, one change at a time, and some that are not frames at all. */
function corpus (): string[] {
  const texts: string[] = []
  let n = 0
  const id = (): string => `c-${n++}`
  const frame = (type: unknown, data: unknown, extra: Record<string, unknown> = {}): string => JSON.stringify({ id: id(), type, data, ...extra })

  for (const datetime of DATETIMES) texts.push(frame(1, { ...POSITION, datetime }))
  const values: unknown[] = ['1.5', null, true, [], {}, 0, -1e308, 1e308, -0.0001, 100, 100.0001, 90, 90.5, -90, -180, 180.1, 'x']
  for (const [type, base] of BASES) {
    texts.push(frame(type, base))
    for (const field of [...Object.keys(base), 'altitude', 'accuracy', 'battery', 'temperature', 'cpu', 'memory', 'speed', 'latitude', 'color']) {
      const without = { ...base }
      delete without[field]
      texts.push(frame(type, without))
      for (const value of values) texts.push(frame(type, { ...base, [field]: value }))
    }
    texts.push(frame(type, { ...base }).replace('"datetime"', '"speed":1e400,"datetime"'))
  }
  texts.push(frame(3, { datetime: DT }), frame(3, { datetime: DT, temperature: -40, cpu: 0, memory: 100 }), frame(2, { ...GEO, altitude: -10, accuracy: 0 }))
  for (const type of [0, 4, -1, 1.5, '1', null, [1], 1.0]) texts.push(frame(type, POSITION))
  for (const data of [[], null, 'x', 5, {}]) texts.push(frame(1, data))
  texts.push(frame(1, POSITION, { extra: true }), frame(1, POSITION, { ts: null }))
  for (const frameId of ['', 'a', 'x'.repeat(64), 'x'.repeat(65), '🤖'.repeat(64), '🤖'.repeat(65), 'with,comma "quotes"\nnewline', 7, null]) {
    texts.push(JSON.stringify({ id: frameId, type: 1, data: POSITION }))
  }
  texts.push(JSON.stringify({ type: 1, data: POSITION }))
  const positionText = JSON.stringify(POSITION)
  texts.push(`{"id":"nul-\\u0000","type":1,"data":${positionText}}`, `{"id":"lone-\\ud800","type":1,"data":${positionText}}`,
    `{"id":"low-\\udc00x","type":1,"data":${positionText}}`, `{"id":"pair-\\ud83e\\udd16","type":1,"data":${positionText}}`)
  // repeated keys: JSON.parse, here and in the broker, keeps the last
  texts.push(`{"id":"dup-1","type":1,"data":"x","data":${positionText}}`, `{"id":"dup-2","type":1,"data":${positionText},"data":null}`,
    `{"id":"dup-3","type":3,"type":1,"data":${positionText}}`, `{"id":"dup-4","type":1,"data":{"speed":"x","speed":1,"position_x":1,"position_y":1,"angle_theta":1,"datetime":"${DT}"}}`)
  texts.push('not json', '{"id":"x","type":1', '[]', '"frame"', '42', 'null', '{}', `[${frame(1, POSITION)}]`)

  // and a few hundred frames with random fields and values, the same every run
  let seed = 7
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T
  const fields = ['speed', 'position_x', 'position_y', 'angle_theta', 'latitude', 'longitude', 'altitude', 'accuracy', 'battery', 'temperature', 'cpu', 'memory', 'datetime', 'other']
  const anyValue = (): unknown => pick<() => unknown>([
    () => (random() - 0.5) * 400,
    () => Math.round(random() * 120),
    () => pick(DATETIMES),
    () => pick(['', 'x', '1'] as const),
    () => pick([null, true, false] as const)
  ])()
  for (let i = 0; i < 300; i++) {
    const data: Record<string, unknown> = {}
    for (let k = Math.floor(random() * 7); k >= 0; k--) data[pick(fields)] = anyValue()
    if (random() < 0.8) data.datetime = pick(DATETIMES.slice(0, 16))
    texts.push(frame(pick([1, 2, 3, 3, 4] as const), data))
  }
  return texts
}

async function agreement (t: Test, transport: Transport): Promise<void> {
  const app = await build(t)
  const document = await parsed(t, await served(app))
  const frameSchema = validatorOf(document, 'data')
  const ackSchema = validatorOf(document, 'ack')
  const statsSchema = validatorOf(document, 'stats')
  const presenceSchema = validatorOf(document, 'presence')

  const { user, robot } = await ownedRobot(app)
  const watcher = await connectUser(t, app, user, { transport })
  const stats = collect(watcher, (topic) => topic.endsWith('/stats'))
  const presence = collect(watcher, (topic) => topic.endsWith('/presence'))
  t.same(await subscribe(watcher, ['robots/+/stats', 'robots/+/presence'], 0), [0, 0])
  const client = await connectRobot(t, app, robot, { transport })
  t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1])

  const texts = corpus()
  let valid = 0
  const disagreements: string[] = []
  const badAcks: string[] = []
  for (const text of texts) {
    const documentSays = accepts(frameSchema, text)
    if (documentSays) valid++
    const [ack] = await Promise.all([nextMessage(client, `robots/${robot.uuid}/ack`), client.publishAsync(`robots/${robot.uuid}/data`, text, { qos: 1 })])
    if ((ack.status === 'ok') !== documentSays) disagreements.push(`${text.slice(0, 160)}: the document says ${documentSays ? 'valid' : 'invalid'}, the broker ${JSON.stringify(ack).slice(0, 200)}`)
    if (!ackSchema(ack)) badAcks.push(JSON.stringify(ack).slice(0, 200))
  }
  t.same(disagreements, [], `the document and the broker agree on all ${texts.length} frames`)
  t.ok(valid > 80 && texts.length - valid > 200, `${valid} valid and ${texts.length - valid} invalid frames: both kinds well represented`)
  t.same(badAcks, [], 'every ack matches the ack schema')

  await eventually(async () => stats.length, (n) => n > 0)
  t.same(stats.filter((m) => !statsSchema(m.body)).map((m) => m.body), [], `all ${stats.length} stats messages match the stats schema`)
  await eventually(async () => presence.length, (n) => n > 0)
  t.same(presence.filter((m) => !presenceSchema(m.body)).map((m) => m.body), [], `all ${presence.length} presence messages match the presence schema`)
}

t.test('the document and the broker give every frame of the corpus the same verdict (TCP)', async (t) => {
  await agreement(t, 'tcp')
})

t.test('… and over WebSocket', async (t) => {
  await agreement(t, 'ws')
})

async function commandStatus (app: FastifyInstance, user: TestUser, uuid: string, id: string): Promise<string | undefined> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}/commands?limit=1000`, headers: bearer(user.jwt) })
  return (res.json().items as Array<{ id: string, status: string }>).find((c) => c.id === id)?.status
}

t.test('commands match the command schema, and a command ack counts exactly when the document accepts it', async (t) => {
  const app = await build(t)
  const document = await parsed(t, await served(app))
  const commandSchema = validatorOf(document, 'commands')
  const commandAckSchema = validatorOf(document, 'commandAck')
  const { user, robot } = await ownedRobot(app)
  const client: MqttClient = await connectRobot(t, app, robot)
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])

  async function issue (): Promise<{ id: string }> {
    const [command, res] = await Promise.all([
      nextMessage<{ id: string }>(client, `robots/${robot.uuid}/commands`),
      app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command: 'auto' } })
    ])
    t.equal(res.statusCode, 201)
    t.ok(commandSchema(command), `the command matches the schema: ${JSON.stringify(command)}`)
    await eventually(async () => await commandStatus(app, user, robot.uuid, command.id), (s) => s === 'delivered')
    return command
  }

  const variants: Array<(id: string) => string> = [
    (id) => JSON.stringify({ id, status: 'ok' }),
    (id) => JSON.stringify({ id, status: 'ok', state: 'auto' }),
    (id) => JSON.stringify({ id, status: 'error', message: 'motor stalled' }),
    (id) => JSON.stringify({ id, status: 'ok', extra: [1, 2] }),
    (id) => JSON.stringify({ id, status: 'OK' }),
    (id) => JSON.stringify({ id }),
    (id) => JSON.stringify({ id, status: 'ok', message: 5 }),
    (id) => JSON.stringify({ id, status: 'ok', state: 5 }),
    (id) => JSON.stringify([{ id, status: 'ok' }]),
    (id) => `{"id":"${id}","status":"ok"`,
    (id) => `{"id":"${id}","status":"error","status":"ok"}`
  ]
  const disagreements: string[] = []
  for (const variant of variants) {
    const command = await issue()
    const text = variant(command.id)
    const documentSays = accepts(commandAckSchema, text)
    await client.publishAsync(`robots/${robot.uuid}/commands/ack`, text, { qos: 1 })
    // A valid ack for a second command after it: once that one is done, the broker has read the first.
    const marker = await issue()
    await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: marker.id, status: 'ok' }), { qos: 1 })
    await eventually(async () => await commandStatus(app, user, robot.uuid, marker.id), (s) => s === 'done')
    const status = await commandStatus(app, user, robot.uuid, command.id)
    const brokerSays = status === 'done' || status === 'failed'
    if (brokerSays !== documentSays) disagreements.push(`${text}: the document says ${documentSays ? 'valid' : 'invalid'}, the command is ${String(status)}`)
  }
  t.same(disagreements, [], `the document and the broker agree on all ${variants.length} command acks`)
})

t.test('the document is public, like /docs: it holds no secret and no robot', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const res = await app.inject({ method: 'GET', url: '/docs/asyncapi.json' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.notOk(res.body.includes(robot.uuid), 'no robot uuid')
  t.notOk(res.body.includes(robot.serial), 'no serial')
})
