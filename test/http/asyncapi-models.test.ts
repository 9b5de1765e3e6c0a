// docs/protocol.md §12 and §14: the AsyncAPI document describes every live model
// version, its type-4 frame and its commands, from the schemas the broker
// and the command endpoint check with. As in asyncapi.test.ts, the document
// is read with the AsyncAPI parser and its schemas with a standard JSON
// Schema validator (a fresh ajv with ajv-formats); a corpus of type-4 frames
// goes to that validator and to the broker over MQTT, for robots of three
// model versions of two models: every frame gets the same verdict from both.
import type { AsyncAPIDocumentInterface } from '@asyncapi/parser'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { CLEANER_MODEL, createModel, createRobot, createUser, grantRole, type TestRobot } from '../factory.js'
import { accepts, parsed, served, standardValidator } from '../asyncapi.js'
import { bearer, build } from '../helper.js'
import { connectRobot, eventually, messageWhere, nextMessage, subscribe } from '../mqtt.js'

const CLEANER_V2 = {
  name: 'cleaner',
  description: 'the second version: water in whole percent, suction',
  telemetry: {
    brush_rpm: { type: 'integer', minimum: 0, maximum: 2000 },
    water_level: { type: 'integer', minimum: 0, maximum: 100 },
    suction: { type: 'integer', minimum: -5, maximum: 5 }
  },
  commands: {}
}
const MOWER = {
  name: 'mower-x',
  telemetry: {
    blade_rpm: { type: 'number', minimum: 0 },
    grass: { type: 'string', max_length: 4 },
    cutting: { type: 'boolean' },
    height: { type: 'string', enum: ['low', 'high'] },
    temperature: { type: 'number', maximum: 90, unit: '°C' }
  },
  commands: {
    mow: {
      description: 'mow some zones',
      params: {
        type: 'object',
        properties: {
          zones: { type: 'array', items: { type: 'string', maxLength: 8 }, minItems: 1, maxItems: 3 },
          pattern: { type: 'object', properties: { angle: { type: 'number', minimum: 0, maximum: 180 } }, additionalProperties: false },
          mulch: { type: ['boolean', 'null'] }
        },
        required: ['zones']
      },
      timeout: 120
    },
    stop: {}
  }
}

function payloadOf (document: AsyncAPIDocumentInterface, channelId: string, messageId: string): Record<string, unknown> {
  const message = document.channels().get(channelId)?.messages().get(messageId)
  const payload = message?.payload()?.json() as Record<string, unknown> | undefined
  if (payload === undefined) throw new Error(`no message ${messageId} on ${channelId}`)
  return payload
}

/** A schema without the ids the parser adds (`x-parser-schema-id`): as the model declared it. */
function declared (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(declared)
  if (schema === null || typeof schema !== 'object') return schema
  return Object.fromEntries(Object.entries(schema).filter(([k]) => !k.startsWith('x-parser-')).map(([k, v]) => [k, declared(v)]))
}

t.test('the document lists every live model version\'s telemetry frame and commands, and stays valid AsyncAPI', async (t) => {
  const app = await build(t)
  const v1 = await createModel(app)
  const v2 = await createModel(app, CLEANER_V2)
  const mower = await createModel(app, MOWER)
  const gone = await createModel(app, { name: 'gone', telemetry: { x: { type: 'number' } }, commands: { go: {} } })
  await app.services.models.remove(gone.name, gone.version, { actor: null })
  t.same([v1, v2, mower], [{ name: 'cleaner', version: 1 }, { name: 'cleaner', version: 2 }, { name: 'mower-x', version: 1 }])

  const doc = await served(app)
  const document = await parsed(t, doc)
  const data = document.channels().get('data')
  t.same(data?.messages().all().map((m) => m.id()), ['frame', 'telemetry_cleaner_v1', 'telemetry_cleaner_v2', 'telemetry_mower-x_v1'], 'the fixed frame, then one type-4 message per live version (not the deleted one)')
  t.same(document.channels().get('commands')?.messages().all().map((m) => m.id()), ['command', 'commands_cleaner_v1', 'commands_mower-x_v1'], 'the fixed command, then one message per version that has commands')
  t.same(document.operations().get('robotSendsData')?.messages().all().map((m) => m.id()), ['frame', 'telemetry_cleaner_v1', 'telemetry_cleaner_v2', 'telemetry_mower-x_v1'], 'the robot sends them')
  t.same(document.operations().get('robotReceivesCommands')?.messages().all().map((m) => m.id()), ['command', 'commands_cleaner_v1', 'commands_mower-x_v1'], 'the robot receives them')
  t.equal(document.operations().get('robotSendsData')?.reply()?.channel()?.address(), 'robots/{uuid}/ack', "a frame's reply is still its ack")
  t.notOk(JSON.stringify(doc).includes('"gone'), 'nothing of the deleted version')
  t.match(data?.messages().get('telemetry_cleaner_v2')?.summary(), /cleaner v2 \(the second version/)

  // The commands, each with the parameter schema as declared.
  for (const [model, body] of [['cleaner_v1', CLEANER_MODEL], ['mower-x_v1', MOWER]] as const) {
    const payload = payloadOf(document, 'commands', `commands_${model}`) as { oneOf: Array<{ properties: Record<string, Record<string, unknown>>, required: string[], description?: string }> }
    const listed = Object.fromEntries(payload.oneOf.map((alt) => [alt.properties.command?.const as string, alt]))
    t.same(Object.keys(listed).sort(), Object.keys(body.commands).sort(), `${model}: every command`)
    for (const [name, decl] of Object.entries(body.commands) as Array<[string, { params?: unknown, timeout?: number, description?: string }]>) {
      const alt = listed[name]
      t.same(declared(alt?.properties.params), decl.params ?? { type: 'object', maxProperties: 0, description: 'takes no parameters: always {}' }, `${model} ${name}: its params schema`)
      t.same(alt?.required, ['id', 'command', 'issued_by', 'issued_at', 'params'], `${model} ${name}: params always present`)
      if (decl.timeout !== undefined) t.match(alt?.description, new RegExp(`${decl.timeout} s`), `${model} ${name}: its timeout`)
      if (decl.description !== undefined) t.match(alt?.description, decl.description)
    }
  }
  // The statistics may carry model fields.
  const stats = standardValidator(payloadOf(document, 'stats', 'stats'))
  t.ok(stats({ robot_uuid: '3f1c2a4e-8b7d-4c6e-9a1b-2d3e4f5a6b7c', state: 'idle', speed: null, position_x: null, position_y: null, angle_theta: null, datetime: null, data_connected: true, command_connected: false, brush_rpm: 5, mode: 'eco', mopping: true }), 'stats with model fields match')
  t.notOk(stats({ robot_uuid: '3f1c2a4e-8b7d-4c6e-9a1b-2d3e4f5a6b7c', state: 'idle', speed: null, position_x: null, position_y: null, angle_theta: null, datetime: null, data_connected: true, command_connected: false, brush_rpm: {} }), 'not with an object')

  // A new version is in the document at once (built per request).
  await createModel(app, { ...CLEANER_V2, commands: { beep: {} } })
  const later = await parsed(t, await served(app))
  t.ok(later.channels().get('data')?.messages().get('telemetry_cleaner_v3'), 'cleaner v3 appears')
  t.ok(later.channels().get('commands')?.messages().get('commands_cleaner_v3'))
})

// ---- the corpus ------------------------------------------------------------

const DT = '2024-05-01 12:00:00'
/** Values of every kind, for every field of every model. */
const VALUES: unknown[] = [0, 1, -1, 1.5, 12e2, 1200, 2000, 2001, 3000, 3001, 100, 100.5, -5, -6, 5, 6, 90, 90.1, 1e308, -1e308, 4000.5,
  '1', '1200', '', 'x', 'abcd', 'abcde', 'eco', 'deep', 'ECO', 'low', 'high', 'z'.repeat(32), 'z'.repeat(33), '🤖🤖🤖🤖', '🤖🤖🤖🤖🤖',
  true, false, 'true', null, [], {}, [1]]
const FIELDS = [...new Set([...Object.keys(CLEANER_MODEL.telemetry), ...Object.keys(CLEANER_V2.telemetry), ...Object.keys(MOWER.telemetry), 'nozzle', 'speed', 'battery', 'datetime'])]

function corpus (): string[] {
  const texts: string[] = []
  let n = 0
  const frame = (data: unknown, type: unknown = 4, extra: Record<string, unknown> = {}): string => JSON.stringify({ id: `m-${n++}`, type, data, ...extra })
  for (const field of FIELDS) {
    for (const value of VALUES) {
      texts.push(frame({ datetime: DT, [field]: value }))
    }
  }
  // whole frames of each model, and each model's frame without datetime, with a bad one, with nothing else
  texts.push(frame({ datetime: DT, brush_rpm: 1200, water_level: 71.5, mopping: true, zone: 'lobby', mode: 'eco' }))
  texts.push(frame({ datetime: DT, brush_rpm: 1200, water_level: 71, suction: -5 }))
  texts.push(frame({ datetime: DT, blade_rpm: 10, grass: 'ok', cutting: false, height: 'low', temperature: -40 }))
  texts.push(frame({ brush_rpm: 1 }), frame({ blade_rpm: 1 }), frame({ datetime: DT }), frame({}), frame({ datetime: 'yesterday', brush_rpm: 1 }), frame({ datetime: '2024-02-30T00:00:00Z', suction: 1 }))
  texts.push(frame({ datetime: '2024-05-01T12:00:00.123456789+02:00', brush_rpm: 1 }), frame({ datetime: DT, brush_rpm: 1 }, 4, { extra: 1 }), frame([]), frame(null), frame({ datetime: DT, brush_rpm: 1 }, '4'))
  // strings the database cannot store, and numbers JSON.parse makes infinite
  texts.push(`{"id":"nul","type":4,"data":{"datetime":"${DT}","zone":"a\\u0000"}}`, `{"id":"lone","type":4,"data":{"datetime":"${DT}","grass":"\\ud800"}}`,
    `{"id":"pair","type":4,"data":{"datetime":"${DT}","grass":"\\ud83e\\udd16"}}`, `{"id":"inf","type":4,"data":{"datetime":"${DT}","blade_rpm":1e400}}`,
    `{"id":"dup","type":4,"data":{"datetime":"${DT}","mode":"x","mode":"eco"}}`)
  // a few types 1–3, which every robot sends as before
  texts.push(frame({ speed: 1, position_x: 1, position_y: 1, angle_theta: 1, datetime: DT }, 1), frame({ datetime: DT, battery: 50 }, 3), frame({ datetime: DT, brush_rpm: 1 }, 3))

  // random frames of the fields and values, the same every run
  let seed = 11
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T
  for (let i = 0; i < 150; i++) {
    const data: Record<string, unknown> = {}
    for (let k = Math.floor(random() * 4); k >= 0; k--) data[pick(FIELDS)] = pick(VALUES)
    if (random() < 0.85) data.datetime = DT
    texts.push(frame(data))
  }
  return texts
}

t.test('the document and the broker give every type-4 frame the same verdict, for robots of three model versions', async (t) => {
  const app = await build(t)
  const models = [await createModel(app), await createModel(app, CLEANER_V2), await createModel(app, MOWER)]
  const document = await parsed(t, await served(app))
  const frameSchema = standardValidator(payloadOf(document, 'data', 'frame'))
  const ackSchema = standardValidator(payloadOf(document, 'ack', 'frameAck'))
  const texts = corpus()

  for (const model of models) {
    const name = `telemetry_${model.name}_v${model.version}`
    const telemetrySchema = standardValidator(payloadOf(document, 'data', name))
    const robot = await createRobot(app, { model })
    const client = await connectRobot(t, app, robot)
    t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1])
    let valid = 0
    const disagreements: string[] = []
    const badAcks: string[] = []
    for (const text of texts) {
      // this robot's frames: the fixed ones and its own model version's
      const documentSays = accepts(frameSchema, text) || accepts(telemetrySchema, text)
      if (documentSays) valid++
      const [ack] = await Promise.all([nextMessage<Record<string, unknown>>(client, `robots/${robot.uuid}/ack`), client.publishAsync(`robots/${robot.uuid}/data`, text, { qos: 1 })])
      if ((ack.status === 'ok') !== documentSays) disagreements.push(`${text.slice(0, 160)}: the document says ${documentSays ? 'valid' : 'invalid'}, the broker ${JSON.stringify(ack).slice(0, 200)}`)
      if (!ackSchema(ack)) badAcks.push(JSON.stringify(ack).slice(0, 200))
    }
    t.same(disagreements, [], `${name}: the document and the broker agree on all ${texts.length} frames`)
    t.ok(valid > 20 && texts.length - valid > 300, `${name}: ${valid} valid and ${texts.length - valid} invalid frames: both kinds represented`)
    t.same(badAcks, [], `${name}: every ack matches the ack schema`)
  }
})

t.test('model commands as the robot receives them match their version\'s message; an ack with a result matches commandAck', async (t) => {
  const app = await build(t)
  const mower = await createModel(app, MOWER)
  const document = await parsed(t, await served(app))
  const modelCommands = standardValidator(payloadOf(document, 'commands', 'commands_mower-x_v1'))
  const anyCommand = standardValidator(payloadOf(document, 'commands', 'command'))
  const commandAck = standardValidator(payloadOf(document, 'commandAck', 'commandAck'))
  const user = await createUser(app)
  const robot: TestRobot = await createRobot(app, { model: mower })
  await grantRole(app, user, robot, 'operator')
  const client: MqttClient = await connectRobot(t, app, robot)
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])

  const issued = [
    { command: 'mow', params: { zones: ['north', 'south'], pattern: { angle: 45 }, mulch: null } },
    { command: 'mow', params: { zones: ['a'] } },
    { command: 'stop' },
    { command: 'stop', params: {} },
    { command: 'auto' }
  ]
  for (const body of issued) {
    const [message, res] = await Promise.all([
      messageWhere<Record<string, unknown>>(client, `robots/${robot.uuid}/commands`, () => true),
      app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, ...body } })
    ])
    t.equal(res.statusCode, 201, `${JSON.stringify(body)}: issued`)
    t.ok(anyCommand(message), `${JSON.stringify(message)} matches the command message`)
    if (body.command === 'auto') t.notOk(modelCommands(message), 'a mode is not one of the model\'s commands')
    else t.ok(modelCommands(message), `${JSON.stringify(message)} matches commands_mower-x_v1`)
    const ack = { id: message.id, status: 'ok', result: { mowed_m2: 12.5 } }
    t.ok(commandAck(ack), 'an ack with a result matches commandAck')
    await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify(ack), { qos: 1 })
    await eventually(async () => (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/commands?limit=10`, headers: bearer(user.jwt) })).json().items.find((c: { id: string }) => c.id === message.id)?.status, (s) => s === 'done')
  }
  // what the endpoint refuses, the document refuses too
  for (const params of [{ zones: [] }, { zones: ['x'], pattern: { angle: 181 } }, { zones: 'north' }, {}]) {
    const res = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command: 'mow', params } })
    t.equal(res.statusCode, 400, `${JSON.stringify(params)}: refused by the endpoint`)
    t.notOk(modelCommands({ id: 'x', command: 'mow', issued_by: 'u', issued_at: '2026-12-07T10:00:00Z', params }), `${JSON.stringify(params)}: and by the document`)
  }
})
