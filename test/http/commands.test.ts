// docs/protocol.md §5: POST /robots/robot/command, the command life cycle, and
// GET /robots/{uuid}/commands. The broker is not involved here: presence is
// set through the service, and delivery/acks are driven through the service.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { CommandIssued } from '../../src/events.js'
import { authentication, bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, ownedRobot } from '../factory.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

async function send (app: FastifyInstance, jwt: string | null, body: unknown) {
  return await app.inject({
    method: 'POST',
    url: '/robots/robot/command',
    headers: jwt === null ? {} : bearer(jwt),
    payload: body as Record<string, unknown>
  })
}

async function listCommands (app: FastifyInstance, jwt: string, uuid: string, query = '') {
  return await app.inject({ method: 'GET', url: `/robots/${uuid}/commands${query}`, headers: bearer(jwt) })
}

/** A robot owned by a fresh user, marked command-connected as the broker would. */
async function connectedRobot (app: FastifyInstance) {
  const owned = await ownedRobot(app)
  app.services.presence.set(owned.robot.uuid, { data: 1, command: 1 })
  return owned
}

/** Issues a command over HTTP and returns its id. */
async function issue (app: FastifyInstance, jwt: string, uuid: string, command: string): Promise<string> {
  const res = await send(app, jwt, { robot_uuid: uuid, command })
  if (res.statusCode !== 201) throw new Error(`command not created: ${res.statusCode} ${res.body}`)
  return res.json().id as string
}

async function commandById (app: FastifyInstance, jwt: string, uuid: string, id: string) {
  const res = await listCommands(app, jwt, uuid, '?limit=1000')
  return (res.json().items as Array<Record<string, unknown>>).find((c) => c.id === id)
}

t.test('POST /robots/robot/command without a JWT is 401', async (t) => {
  const app = await build(t)
  const { robot } = await connectedRobot(app)
  const res = await send(app, null, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { statusCode: 401, error: 'Unauthorized', code: 'UNITED_UNAUTHORIZED' })
  const bad = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer('not-a-jwt'), payload: { robot_uuid: robot.uuid, command: 'auto' } })
  t.equal(bad.statusCode, 401)
  t.match(bad.json(), { statusCode: 401, code: 'UNITED_TOKEN_INVALID' })
})

t.test('malformed bodies and unknown commands are 400', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const cases: Array<[string, unknown]> = [
    ['unknown command', { robot_uuid: robot.uuid, command: 'fly' }],
    ['missing command', { robot_uuid: robot.uuid }],
    ['missing robot_uuid', { command: 'auto' }],
    ['robot_uuid not a uuid', { robot_uuid: 'robot-1', command: 'auto' }],
    ['command not a string', { robot_uuid: robot.uuid, command: 1 }],
    ['unknown field', { robot_uuid: robot.uuid, command: 'auto', force: true }],
    ['empty object', {}]
  ]
  for (const [name, body] of cases) {
    const res = await send(app, user.jwt, body)
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, name)
  }
  const notJson = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: { ...bearer(user.jwt), 'content-type': 'application/json' }, payload: '{"robot_uuid":' })
  t.equal(notJson.statusCode, 400, 'unparseable JSON')
  t.match(notJson.json(), { statusCode: 400, error: 'Bad Request' })
  const list = await listCommands(app, user.jwt, robot.uuid)
  t.same(list.json().items, [], 'nothing was stored')
})

t.test('a missing robot and a robot of another user get the same 404', async (t) => {
  const app = await build(t)
  const { user } = await connectedRobot(app)
  const other = await connectedRobot(app)
  const missing = await send(app, user.jwt, { robot_uuid: randomUUID(), command: 'auto' })
  const foreign = await send(app, user.jwt, { robot_uuid: other.robot.uuid, command: 'auto' })
  // Not connected either: still 404, not 409, which would tell that it exists.
  const offline = await ownedRobot(app)
  const foreignOffline = await send(app, user.jwt, { robot_uuid: offline.robot.uuid, command: 'auto' })
  t.equal(missing.statusCode, 404)
  t.equal(foreign.statusCode, 404)
  t.equal(foreignOffline.statusCode, 404)
  t.same(foreign.json(), missing.json(), 'identical bodies: existence is not leaked')
  t.same(foreignOffline.json(), missing.json())
  t.same(missing.json(), { statusCode: 404, error: 'Not Found', message: 'robot not found', code: 'UNITED_ROBOT_NOT_FOUND' })
  const audit = await app.services.audit.list({ action: 'command.sent' })
  t.same(audit.items, [], 'nothing audited')
})

t.test('a robot that is not command-connected gets 409 ROBOT_NOT_CONNECTED', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const res = await send(app, user.jwt, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(res.statusCode, 409)
  t.same(res.json(), { statusCode: 409, error: 'Conflict', message: 'robot is not connected', code: 'ROBOT_NOT_CONNECTED' })

  // Data-connected only is not enough: nobody listens on its commands topic.
  app.services.presence.set(robot.uuid, { data: 1, command: 0 })
  const dataOnly = await send(app, user.jwt, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(dataOnly.statusCode, 409)
  t.equal(dataOnly.json().code, 'ROBOT_NOT_CONNECTED')

  // Disconnected again after having been connected.
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  app.services.presence.set(robot.uuid, { data: 0, command: 0 })
  const gone = await send(app, user.jwt, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(gone.statusCode, 409)
  t.same((await listCommands(app, user.jwt, robot.uuid)).json().items, [], 'nothing was stored')
})

t.test('a command to a connected robot is 201 pending, announced and audited', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const issued: CommandIssued[] = []
  const off = app.services.events.on('commandIssued', (e) => { issued.push(e) })
  t.teardown(off)

  const before = Date.now()
  const res = await send(app, user.jwt, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['command', 'created_at', 'expires_at', 'id', 'params', 'result', 'robot_uuid', 'status'])
  t.match(body, { params: null, result: null }, 'a mode has neither params nor result')
  t.match(body, { robot_uuid: robot.uuid, command: 'auto', status: 'pending' })
  t.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.match(body.created_at, ISO)
  t.ok(Date.parse(body.created_at) >= before - 1000 && Date.parse(body.created_at) <= Date.now() + 1000, 'created_at is now')

  t.equal(issued.length, 1, 'commandIssued emitted once')
  t.same(issued[0], { id: body.id, robotUuid: robot.uuid, command: 'auto', issuedBy: user.username, issuedAt: body.created_at })

  const audit = await app.services.audit.list({ action: 'command.sent' })
  t.equal(audit.items.length, 1)
  t.same(audit.items[0], { id: audit.items[0]?.id, at: body.created_at, action: 'command.sent', actor_id: user.id, actor: user.username, robot_uuid: robot.uuid, target_user_id: null, details: { command_id: body.id, command: 'auto' }, ip: '127.0.0.1' }, 'the audit record, at the command’s time')

  const stored = await commandById(app, user.jwt, robot.uuid, body.id)
  t.same(stored, { id: body.id, robot_uuid: robot.uuid, command: 'auto', status: 'pending', issued_by: user.username, created_at: body.created_at, delivered_at: null, acked_at: null, expires_at: body.expires_at, params: null, result: null })
  t.equal(Date.parse(body.expires_at) - Date.parse(body.created_at), 30_000, 'a pending command expires COMMAND_TIMEOUT after it was sent')
})

t.test('every command of the contract is accepted, with either JWT header and any uuid case', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  for (const command of ['auto', 'idle', 'error', 'manual']) {
    const res = await send(app, user.jwt, { robot_uuid: robot.uuid, command })
    t.equal(res.statusCode, 201, command)
    t.equal(res.json().command, command)
  }
  const legacy = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: authentication(user.jwt), payload: { robot_uuid: robot.uuid.toUpperCase(), command: 'idle' } })
  t.equal(legacy.statusCode, 201, 'authentication header, upper-case uuid')
  t.equal(legacy.json().robot_uuid, robot.uuid, 'the uuid is answered lower-case')
})

t.test('staff may command any robot', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const res = await send(app, staff.jwt, { robot_uuid: robot.uuid, command: 'manual' })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { robot_uuid: robot.uuid, command: 'manual', status: 'pending' })
})

t.test('life cycle: pending → delivered → done sets the robot state', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const { commands } = app.services
  const states: Array<{ robotUuid: string, state: string }> = []
  t.teardown(app.services.events.on('robotStateChanged', (e) => { states.push(e) }))

  const initial = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(initial.json().state, 'idle', 'a robot starts idle')

  const id = await issue(app, user.jwt, robot.uuid, 'auto')
  t.equal(await commands.markDelivered(id), true)
  const delivered = await commandById(app, user.jwt, robot.uuid, id)
  t.equal(delivered?.status, 'delivered')
  t.match(delivered?.delivered_at, ISO)
  t.equal(delivered?.acked_at, null)
  t.equal(await commands.markDelivered(id), false, 'a second PUBACK changes nothing')

  t.equal(await commands.acknowledge(robot.uuid, id, true), 'done')
  const done = await commandById(app, user.jwt, robot.uuid, id)
  t.equal(done?.status, 'done')
  t.match(done?.acked_at, ISO)
  t.equal(done?.delivered_at, delivered?.delivered_at, 'delivered_at is kept')
  t.ok(Date.parse(done?.delivered_at as string) <= Date.parse(done?.acked_at as string), 'delivered no later than acked')
  t.same(states, [{ robotUuid: robot.uuid, state: 'auto' }], 'robotStateChanged emitted')

  const after = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(after.statusCode, 200)
  t.equal(after.json().state, 'auto', 'the state became the command')

  t.equal(await commands.acknowledge(robot.uuid, id, false, 'late'), null, 'a closed command cannot be acked again')
  t.equal((await commandById(app, user.jwt, robot.uuid, id))?.status, 'done')
})

t.test('a failed ack marks the command failed and keeps the state', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const { commands } = app.services
  const first = await issue(app, user.jwt, robot.uuid, 'manual')
  t.equal(await commands.acknowledge(robot.uuid, first, true), 'done')

  const id = await issue(app, user.jwt, robot.uuid, 'error')
  await commands.markDelivered(id)
  t.equal(await commands.acknowledge(robot.uuid, id, false, 'broken'), 'failed')
  const failed = await commandById(app, user.jwt, robot.uuid, id)
  t.equal(failed?.status, 'failed')
  t.match(failed?.acked_at, ISO)
  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(res.json().state, 'manual', 'state unchanged by a failed command')
})

t.test('an ack from another robot is ignored', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const intruder = await createRobot(app)
  const { commands } = app.services
  const id = await issue(app, user.jwt, robot.uuid, 'auto')
  t.equal(await commands.acknowledge(intruder.uuid, id, true), null, 'another robot')
  t.equal(await commands.acknowledge(randomUUID(), id, true), null, 'a robot that does not exist')
  t.equal(await commands.acknowledge(robot.uuid, randomUUID(), true), null, 'a command that does not exist')
  const row = await commandById(app, user.jwt, robot.uuid, id)
  t.equal(row?.status, 'pending')
  t.equal(row?.acked_at, null)
  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(res.json().state, 'idle')
})

t.test('an ack straight from pending sets delivered_at equal to acked_at', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const id = await issue(app, user.jwt, robot.uuid, 'idle')
  t.equal(await app.services.commands.acknowledge(robot.uuid, id, true), 'done')
  const row = await commandById(app, user.jwt, robot.uuid, id)
  t.equal(row?.status, 'done')
  t.match(row?.acked_at, ISO)
  t.equal(row?.delivered_at, row?.acked_at)

  const failedId = await issue(app, user.jwt, robot.uuid, 'auto')
  t.equal(await app.services.commands.acknowledge(robot.uuid, failedId, false, 'nope'), 'failed')
  const failed = await commandById(app, user.jwt, robot.uuid, failedId)
  t.equal(failed?.delivered_at, failed?.acked_at, 'also for a failed ack')
})

t.test('open commands expire after COMMAND_TIMEOUT; closed ones do not', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const { commands } = app.services
  const pending = await issue(app, user.jwt, robot.uuid, 'auto')
  const delivered = await issue(app, user.jwt, robot.uuid, 'manual')
  await commands.markDelivered(delivered)
  const done = await issue(app, user.jwt, robot.uuid, 'idle')
  await commands.acknowledge(robot.uuid, done, true)
  const failed = await issue(app, user.jwt, robot.uuid, 'error')
  await commands.acknowledge(robot.uuid, failed, false, 'broken')

  t.equal(await commands.expireOverdue(new Date(Date.now() + 5_000)), 0, 'nothing is overdue yet')
  t.equal(await commands.expireOverdue(new Date(Date.now() + 31_000)), 2, 'the two open commands expire')
  const status = async (id: string) => (await commandById(app, user.jwt, robot.uuid, id))?.status
  t.equal(await status(pending), 'expired')
  t.equal(await status(delivered), 'expired')
  t.equal(await status(done), 'done')
  t.equal(await status(failed), 'failed')
  t.equal(await commands.acknowledge(robot.uuid, pending, true), null, 'an expired command cannot be acked')
  t.equal(await commands.expireOverdue(new Date(Date.now() + 31_000)), 0, 'expiring again changes nothing')
})

t.test('GET /robots/{uuid}/commands lists newest first with the contract fields', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const ids: string[] = []
  for (const command of ['auto', 'manual', 'idle']) ids.push(await issue(app, user.jwt, robot.uuid, command))
  const res = await listCommands(app, user.jwt, robot.uuid)
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['items', 'next_cursor'])
  t.equal(body.next_cursor, null)
  t.equal(body.items.length, 3)
  for (const item of body.items) {
    t.same(Object.keys(item).sort(), ['acked_at', 'command', 'created_at', 'delivered_at', 'expires_at', 'id', 'issued_by', 'params', 'result', 'robot_uuid', 'status'])
    t.match(item, { robot_uuid: robot.uuid, status: 'pending', issued_by: user.username, delivered_at: null, acked_at: null, expires_at: ISO })
    t.match(item.created_at, ISO)
  }
  t.same(new Set(body.items.map((c: { id: string }) => c.id)), new Set(ids))
  const times = body.items.map((c: { created_at: string }) => Date.parse(c.created_at))
  t.same(times, [...times].sort((a, b) => b - a), 'newest first')
})

t.test('commands paginate with limit=2 over 5, each exactly once, newest first', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const ids: string[] = []
  for (const command of ['auto', 'manual', 'idle', 'error', 'auto']) ids.push(await issue(app, user.jwt, robot.uuid, command))

  const seen: Array<{ id: string, created_at: string }> = []
  const pageSizes: number[] = []
  let cursor: string | null = null
  do {
    const query: string = `?limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
    const res = await listCommands(app, user.jwt, robot.uuid, query)
    t.equal(res.statusCode, 200)
    const page = res.json()
    pageSizes.push(page.items.length)
    seen.push(...page.items)
    cursor = page.next_cursor
  } while (cursor !== null && pageSizes.length < 10)

  t.same(pageSizes, [2, 2, 1])
  t.equal(seen.length, 5)
  t.same(new Set(seen.map((c) => c.id)), new Set(ids), 'every command once')
  // Newest first: created_at descending, the id breaking ties within one millisecond.
  const expected = [...seen].sort((a, b) => b.created_at.localeCompare(a.created_at) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0))
  t.same(seen.map((c) => c.id), expected.map((c) => c.id), 'keyset order over pages')
  const full = await listCommands(app, user.jwt, robot.uuid, '?limit=1000')
  t.same(full.json().items.map((c: { id: string }) => c.id), seen.map((c) => c.id), 'pages concatenate to the full list')
})

t.test('commands issued in the same millisecond page through by id, each exactly once', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  const ids: string[] = []
  for (const command of ['auto', 'manual', 'idle', 'error', 'auto']) ids.push(await issue(app, user.jwt, robot.uuid, command))
  await app.db.sequelize.query('UPDATE commands SET created_at = ?', { replacements: [new Date('2024-05-01T12:00:00.000Z')] })

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const res = await listCommands(app, user.jwt, robot.uuid, `?limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
    t.equal(res.statusCode, 200)
    seen.push(...res.json().items.map((c: { id: string }) => c.id))
    cursor = res.json().next_cursor
  } while (cursor !== null && seen.length < 10)
  t.same(seen, [...ids].sort().reverse(), 'every command once, by id descending')
})

t.test('GET /robots/{uuid}/commands refuses other users, bad cursors and no JWT', async (t) => {
  const app = await build(t)
  const { user, robot } = await connectedRobot(app)
  await issue(app, user.jwt, robot.uuid, 'auto')
  const stranger = await createUser(app)

  const foreign = await listCommands(app, stranger.jwt, robot.uuid)
  const missing = await listCommands(app, stranger.jwt, randomUUID())
  t.equal(foreign.statusCode, 404)
  t.same(foreign.json(), missing.json(), 'same 404 as a missing robot')
  t.equal(foreign.json().code, 'UNITED_ROBOT_NOT_FOUND')

  const staff = await createStaff(app)
  const asStaff = await listCommands(app, staff.jwt, robot.uuid)
  t.equal(asStaff.statusCode, 200)
  t.equal(asStaff.json().items.length, 1, 'staff read any robot')

  const anonymous = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/commands` })
  t.equal(anonymous.statusCode, 401)

  const badCursor = await listCommands(app, user.jwt, robot.uuid, '?cursor=not-a-cursor')
  t.equal(badCursor.statusCode, 400)
  t.equal(badCursor.json().code, 'UNITED_BAD_CURSOR')
  t.equal((await listCommands(app, user.jwt, robot.uuid, '?limit=0')).statusCode, 400)
  t.equal((await listCommands(app, user.jwt, robot.uuid, '?limit=1001')).statusCode, 400)
})
