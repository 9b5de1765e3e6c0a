// docs/protocol.md §14.3 over the real broker: a command is a mode or a
// command of the robot's model, its params checked against the model's
// schema after the robot's access check and before anything is stored or
// published; the robot receives a model command with its params, may answer
// with a result (a JSON object of at most 8 KiB, stored with the command; any
// other is refused, the ack's status still counts), and acking a model
// command leaves the robot's state alone. A model command's own timeout
// replaces COMMAND_TIMEOUT, and a queued one is released with its params.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { MAX_RESULT_BYTES } from '../../src/contract/models.js'
import { commandItems, queueCommand, sendCommand, type CommandItem } from '../commands.js'
import { CLEANER_MODEL, createModel, createRobot, createStaff, createUser, grantRole, setModel, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { collect, connectRobot, eventually, nextMessage, subscribe } from '../mqtt.js'

interface ModelItem extends CommandItem { params: Record<string, unknown> | null, result: Record<string, unknown> | null, issued_by: string }

const commandsTopic = (uuid: string): string => `robots/${uuid}/commands`
const ackTopic = (uuid: string): string => `robots/${uuid}/commands/ack`

/** A cleaner robot (CLEANER_MODEL) operated by a fresh user. */
async function cleaner (app: FastifyInstance): Promise<{ user: TestUser, robot: TestRobot }> {
  const model = await createModel(app)
  const robot = await createRobot(app, { model })
  const user = await createUser(app)
  await grantRole(app, user, robot, 'operator')
  return { user, robot }
}

/** The robot's connection, subscribed to its commands, and everything it receives there. */
async function listening (t: Test, app: FastifyInstance, robot: TestRobot): Promise<{ client: MqttClient, received: Array<{ topic: string, body: Record<string, unknown> }> }> {
  const client = await connectRobot(t, app, robot)
  client.on('error', () => {})
  const received = collect(client, (topic) => topic === commandsTopic(robot.uuid))
  t.same(await subscribe(client, commandsTopic(robot.uuid)), [1])
  await eventually(async () => await app.services.presence.isCommandConnected(robot.uuid), (c) => c)
  return { client, received }
}

async function items (app: FastifyInstance, user: TestUser, uuid: string): Promise<ModelItem[]> {
  return await commandItems(app, user, uuid) as ModelItem[]
}

async function item (app: FastifyInstance, user: TestUser, uuid: string, id: string): Promise<ModelItem | undefined> {
  return (await items(app, user, uuid)).find((c) => c.id === id)
}

async function stateOf (app: FastifyInstance, user: TestUser, uuid: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}`, headers: bearer(user.jwt) })
  return res.json().state as string
}

/**
 * Sends a mode as a marker and waits until the robot has it: whatever was
 * refused before it would have been published before it.
 */
/** The robot received nothing before now: a marker command sent now is the only one it gets. */
async function receivedNothing (t: Test, app: FastifyInstance, user: TestUser, robot: TestRobot, received: Array<{ body: Record<string, unknown> }>): Promise<void> {
  const res = await sendCommand(app, user, robot.uuid, 'idle')
  t.equal(res.statusCode, 201, 'the marker command is sent')
  await eventually(async () => received.map((m) => m.body.id), (ids) => ids.includes(res.json().id))
  t.equal(received.length, 1, 'the robot received only the marker')
}

t.test('a command that is neither a mode nor the model\'s is 400 UNITED_UNKNOWN_COMMAND: nothing stored, audited or published', async (t) => {
  const app = await build(t)
  const plain = await createRobot(app)
  const { user, robot } = await cleaner(app)
  await grantRole(app, user, plain, 'operator')
  const robots = [{ robot: plain, about: 'no model' }, { robot, about: 'model cleaner' }]
  const listeners = []
  for (const r of robots) listeners.push(await listening(t, app, r.robot))

  for (const { robot: r, about } of robots) {
    for (const command of ['fly', 'Dock', 'clean-zone', 'x'.repeat(64)]) {
      const res = await sendCommand(app, user, r.uuid, command)
      t.equal(res.statusCode, 400, `${about}: ${command.slice(0, 10)}`)
      t.equal(res.json().code, 'UNITED_UNKNOWN_COMMAND', `${about}: ${command.slice(0, 10)}`)
      t.match(res.json().message, `command ${JSON.stringify(command)} is neither a mode`)
    }
    // With params or a ttl, the command is still what is wrong.
    const withParams = await sendCommand(app, user, r.uuid, 'fly', { params: { zone: 'lobby' }, ttl: 60 })
    t.equal(withParams.json().code, 'UNITED_UNKNOWN_COMMAND', `${about}: with params and a ttl`)
  }
  t.match((await sendCommand(app, user, plain.uuid, 'dock')).json(), { code: 'UNITED_UNKNOWN_COMMAND', message: /the robot has no model/ }, 'a model command for a robot without a model')
  t.match((await sendCommand(app, user, robot.uuid, 'fly')).json().message, /cleaner v1: dock, clean_zone/, 'the message lists the model\'s commands')

  // Longer than a command name may be: the body's schema refuses it.
  t.equal((await sendCommand(app, user, robot.uuid, 'x'.repeat(65))).statusCode, 400)
  t.equal((await sendCommand(app, user, robot.uuid, '')).statusCode, 400)

  t.equal(await app.db.models.Command.count(), 0, 'nothing stored')
  t.same((await app.services.audit.list({ action: 'command.sent' })).items, [], 'nothing audited')
  for (const [i, { robot: r }] of robots.entries()) {
    const { received } = listeners[i] as { received: Array<{ body: Record<string, unknown> }> }
    await receivedNothing(t, app, user, r, received)
  }
})

t.test('params that do not match the schema are 400 UNITED_INVALID_PARAMS naming the field: nothing stored or published', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  const { received } = await listening(t, app, robot)
  const cases: Array<[string, string, unknown, RegExp]> = [
    ['missing required zone', 'clean_zone', { passes: 2 }, /params\.zone is required/],
    ['no params where zone is required', 'clean_zone', undefined, /params\.zone is required/],
    ['zone of the wrong type', 'clean_zone', { zone: 5 }, /params\.zone must be a string/],
    ['a numeric string is not an integer (nothing is coerced)', 'clean_zone', { zone: 'lobby', passes: '2' }, /params\.passes must be an integer/],
    ['a fraction is not an integer', 'clean_zone', { zone: 'lobby', passes: 1.5 }, /params\.passes must be an integer/],
    ['passes out of range', 'clean_zone', { zone: 'lobby', passes: 9 }, /params\.passes must be <= 5/],
    ['passes under range', 'clean_zone', { zone: 'lobby', passes: 0 }, /params\.passes must be >= 1/],
    ['an empty zone', 'clean_zone', { zone: '' }, /params\.zone must NOT have fewer than 1 characters/],
    ['a mode outside the enum', 'clean_zone', { zone: 'lobby', mode: 'turbo' }, /params\.mode must be one of "eco", "normal", "deep"/],
    ['an extra property', 'clean_zone', { zone: 'lobby', nozzle: 2 }, /params\.nozzle is not allowed/],
    ['params for a mode', 'auto', { zone: 'lobby' }, /params: auto is a mode and takes no parameters/],
    ['params for a command without params', 'dock', { speed: 1 }, /params: command dock takes no parameters/],
    ['params over 8 KiB of JSON', 'clean_zone', { zone: 'lobby', note: 'x'.repeat(8200) }, /params is \d+ bytes of JSON, over the limit of 8192/]
  ]
  for (const [name, command, params, message] of cases) {
    const res = await sendCommand(app, user, robot.uuid, command, params === undefined ? {} : { params })
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'UNITED_INVALID_PARAMS', message }, name)
    const queued = await sendCommand(app, user, robot.uuid, command, params === undefined ? { ttl: 60 } : { params, ttl: 60 })
    t.equal(queued.json().code, 'UNITED_INVALID_PARAMS', `${name}, with a ttl`)
  }
  const several = await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { passes: 7, extra: true } })
  t.match(several.json().message, /params\.zone is required/, 'every mistake at once')
  t.match(several.json().message, /params\.passes must be <= 5/)
  t.match(several.json().message, /params\.extra is not allowed/)
  // Not an object at all: the body's schema refuses it.
  for (const params of ['lobby', [1], null, 3]) {
    t.equal((await sendCommand(app, user, robot.uuid, 'clean_zone', { params })).statusCode, 400, `params ${JSON.stringify(params)}`)
  }

  t.equal(await app.db.models.Command.count(), 0, 'nothing stored')
  await receivedNothing(t, app, user, robot, received)
})

t.test('a model command goes out with its params, is acked with a result, and leaves the robot\'s state alone', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  const { client } = await listening(t, app, robot)
  const states: string[] = []
  t.teardown(app.services.events.on('robotStateChanged', (e) => { if (e.robotUuid === robot.uuid) states.push(e.state) }))

  const params = { zone: 'lobby', passes: 2, mode: 'deep' }
  const [published, res] = await Promise.all([
    nextMessage(client, commandsTopic(robot.uuid)),
    sendCommand(app, user, robot.uuid, 'clean_zone', { params })
  ])
  t.equal(res.statusCode, 201)
  const created = res.json()
  t.same(Object.keys(created).sort(), ['command', 'created_at', 'expires_at', 'id', 'params', 'result', 'robot_uuid', 'status'])
  t.match(created, { command: 'clean_zone', status: 'pending', params, result: null })
  t.same(published, { id: created.id, command: 'clean_zone', issued_by: user.username, issued_at: created.created_at, params }, 'the robot receives the command with its params')
  t.equal(Date.parse(created.expires_at) - Date.parse(created.created_at), 600_000, 'its own timeout (600 s), not COMMAND_TIMEOUT')

  const result = { area_m2: 118.5, zones: ['lobby'], nested: { ok: true } }
  await client.publishAsync(ackTopic(robot.uuid), JSON.stringify({ id: created.id, status: 'ok', result }), { qos: 1 })
  const done = await eventually(async () => await item(app, user, robot.uuid, created.id), (c) => c?.status === 'done')
  t.match(done, { command: 'clean_zone', status: 'done', params, result, issued_by: user.username, expires_at: null })
  t.equal(await stateOf(app, user, robot.uuid), 'idle', 'acking a model command does not change the state')
  t.same(states, [], 'no state change announced')
  const audit = await app.services.audit.list({ action: 'command.sent' })
  t.same(audit.items[0]?.details, { command_id: created.id, command: 'clean_zone', params }, 'audited with its params')

  // A command without params goes out with {}; a failed ack may carry a result too.
  const [dockMessage, dock] = await Promise.all([nextMessage(client, commandsTopic(robot.uuid)), sendCommand(app, user, robot.uuid, 'dock')])
  t.equal(dock.statusCode, 201)
  t.same(dock.json().params, {})
  t.same(dockMessage.params, {}, 'a model command always carries params')
  const emptyParams = await sendCommand(app, user, robot.uuid, 'dock', { params: {} })
  t.equal(emptyParams.statusCode, 201, 'empty params are no params')
  await client.publishAsync(ackTopic(robot.uuid), JSON.stringify({ id: dock.json().id, status: 'error', message: 'blocked', result: { obstacle: 'chair' } }), { qos: 1 })
  const failed = await eventually(async () => await item(app, user, robot.uuid, dock.json().id), (c) => c?.status === 'failed')
  t.same(failed?.result, { obstacle: 'chair' })

  // A mode still sets the state, takes {} as no params, and keeps no result.
  const [, manual] = await Promise.all([nextMessage(client, commandsTopic(robot.uuid)), sendCommand(app, user, robot.uuid, 'manual', { params: {} })])
  t.equal(manual.statusCode, 201)
  t.match(manual.json(), { params: null, result: null })
  const [modeMessage, auto] = await Promise.all([nextMessage(client, commandsTopic(robot.uuid)), sendCommand(app, user, robot.uuid, 'auto')])
  t.notOk('params' in modeMessage, 'a mode is published without params')
  await client.publishAsync(ackTopic(robot.uuid), JSON.stringify({ id: auto.json().id, status: 'ok', result: { x: 1 } }), { qos: 1 })
  const autoDone = await eventually(async () => await item(app, user, robot.uuid, auto.json().id), (c) => c?.status === 'done')
  t.equal(autoDone?.result, null, 'a mode keeps no result')
  t.equal(await stateOf(app, user, robot.uuid), 'auto', 'a mode changes the state')
})

t.test('a result that is not a JSON object of at most 8 KiB is refused: the status counts, no result is stored, the message says why', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  const { client } = await listening(t, app, robot)
  const issue = async (): Promise<string> => {
    const [, res] = await Promise.all([nextMessage(client, commandsTopic(robot.uuid)), sendCommand(app, user, robot.uuid, 'dock')])
    t.equal(res.statusCode, 201)
    return res.json().id as string
  }
  const ack = async (body: Record<string, unknown>): Promise<void> => {
    await client.publishAsync(ackTopic(robot.uuid), JSON.stringify(body), { qos: 1 })
  }
  const messageOf = async (id: string): Promise<string | null> => (await app.db.models.Command.findByPk(id))?.message ?? null

  // Exactly at the limit: stored.
  const fits = await issue()
  const padding = MAX_RESULT_BYTES - Buffer.byteLength(JSON.stringify({ blob: '' }))
  const largest = { blob: 'y'.repeat(padding) }
  t.equal(Buffer.byteLength(JSON.stringify(largest)), MAX_RESULT_BYTES)
  await ack({ id: fits, status: 'ok', result: largest })
  t.same((await eventually(async () => await item(app, user, robot.uuid, fits), (c) => c?.status === 'done'))?.result, largest, 'a result of exactly 8 KiB is stored')

  const cases: Array<[string, unknown, RegExp]> = [
    ['one byte over', { blob: 'y'.repeat(padding + 1) }, /^result refused: result is 8193 bytes of JSON, over the limit of 8192/],
    ['an array', [1, 2], /^result refused: result must be a JSON object/],
    ['a string', 'clean', /^result refused: result must be a JSON object/]
  ]
  for (const [name, result, note] of cases) {
    const id = await issue()
    await ack({ id, status: 'ok', result, message: 'all clean' })
    const acked = await eventually(async () => await item(app, user, robot.uuid, id), (c) => c?.status === 'done')
    t.equal(acked?.result, null, `${name}: no result stored`)
    t.match(await messageOf(id), note, `${name}: the note`)
    t.match(await messageOf(id), /; all clean$/, `${name}: the robot's message follows the note`)
  }
  const failed = await issue()
  await ack({ id: failed, status: 'error', result: { blob: 'z'.repeat(12_000) } })
  t.equal((await eventually(async () => await item(app, user, robot.uuid, failed), (c) => c?.status === 'failed'))?.result, null, 'a failed ack with too large a result still fails the command')
  t.match(await messageOf(failed), /^result refused: result is \d+ bytes/)

  const none = await issue()
  await ack({ id: none, status: 'ok', result: null })
  t.equal((await eventually(async () => await item(app, user, robot.uuid, none), (c) => c?.status === 'done'))?.result, null, 'a null result is no result')
  t.equal(await messageOf(none), null, 'and no note')
  t.equal(await stateOf(app, user, robot.uuid), 'idle')
})

t.test('a model command\'s own timeout replaces COMMAND_TIMEOUT: it expires, the modes sent with it do not', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: '3600' })
  const model = await createModel(app, { name: 'pinger', telemetry: {}, commands: { ping: { timeout: 1 }, survey: { timeout: 5 }, wait: {} } })
  const robot = await createRobot(app, { model })
  const user = await createUser(app)
  await grantRole(app, user, robot, 'operator')
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })

  const ping = (await sendCommand(app, user, robot.uuid, 'ping')).json()
  const survey = (await sendCommand(app, user, robot.uuid, 'survey')).json()
  const wait = (await sendCommand(app, user, robot.uuid, 'wait')).json()
  const mode = (await sendCommand(app, user, robot.uuid, 'auto')).json()
  t.equal(Date.parse(ping.expires_at) - Date.parse(ping.created_at), 1000, 'expires_at: its own timeout')
  t.equal(Date.parse(survey.expires_at) - Date.parse(survey.created_at), 5000)
  t.equal(Date.parse(wait.expires_at) - Date.parse(wait.created_at), 3_600_000, 'a model command without one: COMMAND_TIMEOUT')
  t.equal(Date.parse(mode.expires_at) - Date.parse(mode.created_at), 3_600_000)

  // The sweep (every second) expires it, no sooner than its expires_at.
  const expired = await eventually(async () => await item(app, user, robot.uuid, ping.id), (c) => c?.status === 'expired', 15_000)
  t.equal(expired?.expires_at, null)
  t.ok(Date.now() >= Date.parse(ping.expires_at), 'not before its expires_at')
  t.equal((await item(app, user, robot.uuid, wait.id))?.status, 'pending', 'COMMAND_TIMEOUT still holds for the others')
  t.equal((await item(app, user, robot.uuid, mode.id))?.status, 'pending')
  t.equal(await app.services.commands.acknowledge(robot.uuid, ping.id, true), null, 'an expired command cannot be acked')

  // The sweep at a given time: exactly at the boundary of each command's own timeout.
  const sentSurvey = Date.parse(survey.created_at)
  if ((await item(app, user, robot.uuid, survey.id))?.status === 'pending') {
    t.equal(await app.services.commands.expireOverdue(new Date(sentSurvey + 5000 - 1)), 0, 'not a millisecond early')
  }
  t.ok(await app.services.commands.expireOverdue(new Date(sentSurvey + 5000 + 1)) <= 1)
  t.equal((await item(app, user, robot.uuid, survey.id))?.status, 'expired', 'expired just after its own timeout')
  t.equal((await item(app, user, robot.uuid, wait.id))?.status, 'pending')
  t.equal(await app.services.commands.expireOverdue(new Date(Date.parse(mode.created_at) + 3_600_000 + 1)), 2, 'the others at COMMAND_TIMEOUT')
})

t.test('a queued model command waits with its params and is released with them', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  const params = { zone: 'kitchen', passes: 3 }
  const res = await sendCommand(app, user, robot.uuid, 'clean_zone', { params, ttl: 600 })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { status: 'queued', params, result: null })
  t.equal(Date.parse(res.json().expires_at) - Date.parse(res.json().created_at), 600_000, 'queued: the ttl')
  const dock = await queueCommand(app, user, robot.uuid, 'dock')
  const mode = await queueCommand(app, user, robot.uuid, 'manual')
  t.match(await item(app, user, robot.uuid, res.json().id), { status: 'queued', params, result: null })
  const refused = await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: 'kitchen', passes: 6 }, ttl: 600 })
  t.equal(refused.json().code, 'UNITED_INVALID_PARAMS', 'checked before it is queued')
  t.equal(await app.db.models.Command.count(), 3, 'the refused one is not queued')

  const { received } = await listening(t, app, robot)
  await eventually(async () => received.length, (n) => n === 3)
  t.same(received.map((m) => m.body), [
    { id: res.json().id, command: 'clean_zone', issued_by: user.username, issued_at: res.json().created_at, params },
    { id: dock.id, command: 'dock', issued_by: user.username, issued_at: dock.created_at, params: {} },
    { id: mode.id, command: 'manual', issued_by: user.username, issued_at: mode.created_at }
  ], 'released oldest first, each with its params')
  const released = await eventually(async () => await item(app, user, robot.uuid, res.json().id), (c) => c?.status === 'delivered')
  t.equal(Date.parse(released?.expires_at as string) - Date.parse(released?.created_at as string) >= 600_000, true, 'once sent, its own timeout counts from the release')
})

t.test('commanding a model robot needs the operator role, checked before the command and its params', async (t) => {
  const app = await build(t)
  const { user: operator, robot } = await cleaner(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const viewer = await createUser(app)
  await grantRole(app, viewer, robot, 'viewer')
  const stranger = await createUser(app)
  const manager = await createUser(app)
  await grantRole(app, manager, robot, 'manager')
  const staff = await createStaff(app)

  const bodies: Array<[string, string, Record<string, unknown>]> = [
    ['a valid model command', 'clean_zone', { params: { zone: 'lobby' } }],
    ['an unknown command', 'fly', {}],
    ['invalid params', 'clean_zone', { params: { zone: 5 } }],
    ['params for a mode', 'auto', { params: { zone: 'lobby' } }],
    ['a valid model command with a ttl', 'dock', { ttl: 60 }]
  ]
  for (const [name, command, extra] of bodies) {
    const asViewer = await sendCommand(app, viewer, robot.uuid, command, extra)
    t.equal(asViewer.statusCode, 403, `viewer: ${name}`)
    t.same(asViewer.json(), { statusCode: 403, error: 'Forbidden', message: 'this needs the operator role on the robot', code: 'UNITED_ROLE_REQUIRED' }, `viewer: ${name}`)
    const asStranger = await sendCommand(app, stranger, robot.uuid, command, extra)
    t.equal(asStranger.statusCode, 404, `no grant: ${name}`)
    t.same(asStranger.json(), { statusCode: 404, error: 'Not Found', message: 'robot not found', code: 'UNITED_ROBOT_NOT_FOUND' }, `no grant: ${name}`)
  }
  t.equal(await app.db.models.Command.count(), 0, 'nothing stored for them')

  for (const [who, user] of [['operator', operator], ['manager', manager], ['staff', staff]] as const) {
    const res = await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: who } })
    t.equal(res.statusCode, 201, `${who} may`)
    t.same(res.json().params, { zone: who })
    t.equal((await sendCommand(app, user, robot.uuid, 'fly')).json().code, 'UNITED_UNKNOWN_COMMAND', `${who}: then the command is checked`)
  }
  const listed = await items(app, viewer, robot.uuid)
  t.same(listed.map((c) => c.params?.zone).sort(), ['manager', 'operator', 'staff'], 'a viewer reads the commands with their params')
})

t.test('a robot given another model version is checked against that version', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  t.equal((await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: 'a', passes: 7 } })).json().code, 'UNITED_INVALID_PARAMS', 'v1: at most 5 passes')

  const zone = CLEANER_MODEL.commands.clean_zone
  const v2 = await createModel(app, {
    ...CLEANER_MODEL,
    commands: {
      clean_zone: { ...zone, params: { ...zone.params, properties: { ...zone.params.properties, passes: { type: 'integer', minimum: 1, maximum: 9 } } } },
      mop: { timeout: 30 }
    }
  })
  t.equal(v2.version, 2)
  await setModel(app, robot, v2)
  const res = await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: 'a', passes: 7 } })
  t.equal(res.statusCode, 201, 'v2: up to 9 passes')
  t.equal((await sendCommand(app, user, robot.uuid, 'dock')).json().code, 'UNITED_UNKNOWN_COMMAND', 'v2 has no dock')
  const mop = (await sendCommand(app, user, robot.uuid, 'mop')).json()
  t.equal(Date.parse(mop.expires_at) - Date.parse(mop.created_at), 30_000, 'v2\'s own timeout')

  await setModel(app, robot, null)
  t.equal((await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: 'a' } })).json().code, 'UNITED_UNKNOWN_COMMAND', 'no model: modes only')
  t.equal((await sendCommand(app, user, robot.uuid, 'auto')).statusCode, 201)
})

t.test('a robot given another model between the check of a command and its insert: the command is checked again, against the new model', async (t) => {
  const app = await build(t)
  const { user, robot } = await cleaner(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const zone = CLEANER_MODEL.commands.clean_zone
  const v2 = await createModel(app, { ...CLEANER_MODEL, commands: { clean_zone: { ...zone, timeout: 900 } } })

  // The model changes once, right after the command was checked (the
  // presence look-up comes between the check and the insert).
  const { presence } = app.services
  const isCommandConnected = presence.isCommandConnected.bind(presence)
  let change: (() => Promise<void>) | null = null
  presence.isCommandConnected = async (uuid: string) => {
    const now = change
    change = null
    if (now !== null) await now()
    return await isCommandConnected(uuid)
  }
  t.teardown(() => { presence.isCommandConnected = isCommandConnected })

  change = async () => { await setModel(app, robot, v2) }
  const res = await sendCommand(app, user, robot.uuid, 'clean_zone', { params: { zone: 'hall' } })
  t.equal(res.statusCode, 201)
  t.equal(Date.parse(res.json().expires_at) - Date.parse(res.json().created_at), 900_000, 'stored with v2\'s timeout: checked again against v2')

  await setModel(app, robot, { name: 'cleaner', version: 1 })
  change = async () => { await setModel(app, robot, v2) }
  const dock = await sendCommand(app, user, robot.uuid, 'dock')
  t.equal(dock.statusCode, 400, 'v1 has dock, v2 has not')
  t.equal(dock.json().code, 'UNITED_UNKNOWN_COMMAND')
  t.equal(await app.db.models.Command.count({ where: { command: 'dock' } }), 0, 'nothing stored')
})
