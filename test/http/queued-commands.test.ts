// docs/protocol.md §5.3 over the real broker: a command with a ttl to a robot that is
// not command-connected is queued (201) instead of refused (409), published
// oldest first when the robot subscribes to its commands, expired when it is
// still queued after ttl; queued and pending commands can be cancelled (a
// later ack is ignored), anything past that gets 409 UNITED_COMMAND_FINISHED.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createUser, grant, ownedRobot, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { commandItems, queueCommand, sendCommand, type CommandItem } from '../commands.js'
import { collect, connectRobot, eventually, nextMessage, subscribe, TRANSPORTS } from '../mqtt.js'

type Item = CommandItem
const send = sendCommand
const queue = queueCommand
const items = commandItems

const commandsTopic = (uuid: string): string => `robots/${uuid}/commands`

async function statusOf (app: FastifyInstance, user: TestUser, uuid: string, id: string): Promise<string | undefined> {
  return (await items(app, user, uuid)).find((c) => c.id === id)?.status
}

async function becomes (app: FastifyInstance, user: TestUser, uuid: string, id: string, status: string, timeoutMs = 5000): Promise<void> {
  await eventually(async () => await statusOf(app, user, uuid, id), (s) => s === status, timeoutMs)
}

async function cancel (app: FastifyInstance, user: TestUser, uuid: string, id: string) {
  return await app.inject({ method: 'POST', url: `/robots/${uuid}/commands/${id}/cancel`, headers: bearer(user.jwt) })
}

/** A robot's connection, not yet subscribed to its commands. */
async function robotClient (t: Test, app: FastifyInstance, robot: TestRobot, transport: 'tcp' | 'ws' = 'tcp'): Promise<MqttClient> {
  const client = await connectRobot(t, app, robot, { transport })
  client.on('error', () => {})
  return client
}

t.test('ttl: an integer of seconds from 1 to 604800; anything else is 400 and stores nothing', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  for (const ttl of [0, -1, 604801, 1.5, '60', null, true, [60]]) {
    const res = await send(app, user, robot.uuid, 'auto', { ttl })
    t.equal(res.statusCode, 400, `ttl ${JSON.stringify(ttl)}`)
  }
  t.same(await items(app, user, robot.uuid), [], 'nothing stored')
  for (const ttl of [1, 604800]) {
    const res = await send(app, user, robot.uuid, 'auto', { ttl })
    t.equal(res.statusCode, 201, `ttl ${ttl}`)
    t.equal(res.json().status, 'queued')
    t.equal(Date.parse(res.json().expires_at) - Date.parse(res.json().created_at), ttl * 1000, 'expires_at = created_at + ttl')
  }
})

t.test('without a ttl an offline robot is still 409; with a ttl a listening robot gets it at once, as in §5', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const refused = await send(app, user, robot.uuid, 'auto')
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().code, 'ROBOT_NOT_CONNECTED')

  const client = await robotClient(t, app, robot)
  t.same(await subscribe(client, commandsTopic(robot.uuid)), [1])
  const [published, res] = await Promise.all([nextMessage(client, commandsTopic(robot.uuid)), send(app, user, robot.uuid, 'manual', { ttl: 60 })])
  t.equal(res.statusCode, 201)
  t.match(res.json(), { status: 'pending' })
  t.equal(Date.parse(res.json().expires_at) - Date.parse(res.json().created_at), 30_000, 'the ttl changes nothing: it expires COMMAND_TIMEOUT after it was sent')
  t.equal(published.id, res.json().id, 'published at once')
})

t.test('a 404 stays a 404 with a ttl: unknown robots and robots the user cannot access queue nothing', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const other = await createRobot(app)
  for (const uuid of [other.uuid, '00000000-0000-4000-8000-000000000000']) {
    const res = await send(app, user, uuid, 'auto', { ttl: 60 })
    t.equal(res.statusCode, 404, uuid)
    t.equal(res.json().code, 'UNITED_ROBOT_NOT_FOUND')
  }
  t.equal(await app.db.models.Command.count(), 0)
})

for (const transport of TRANSPORTS) {
  t.test(`queued commands go out oldest first once the robot subscribes, then follow §5 (${transport})`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const queued = [await queue(app, user, robot.uuid, 'auto'), await queue(app, user, robot.uuid, 'manual'), await queue(app, user, robot.uuid, 'idle')]
    for (const q of queued) t.match(q, { status: 'queued', expires_at: String })
    const listed = await items(app, user, robot.uuid)
    t.same(listed.map((c) => [c.status, c.expires_at !== null]), [['queued', true], ['queued', true], ['queued', true]], 'listed as queued, with expires_at')

    // connected but not subscribed: still queued
    const client = await robotClient(t, app, robot, transport)
    const received = collect(client, (topic) => topic === commandsTopic(robot.uuid))
    t.same((await items(app, user, robot.uuid)).map((c) => c.status), ['queued', 'queued', 'queued'], 'a connection alone releases nothing')

    t.same(await subscribe(client, commandsTopic(robot.uuid)), [1])
    await eventually(async () => received.length, (n) => n === 3)
    t.same(received.map((m) => m.body.id), queued.map((q) => q.id), 'oldest first')
    t.same(received.map((m) => m.body.command), ['auto', 'manual', 'idle'])
    for (const q of queued) await becomes(app, user, robot.uuid, q.id, 'delivered')
    for (const c of await items(app, user, robot.uuid)) {
      const sentBy = Date.parse(c.expires_at as string) - 30_000
      t.ok(sentBy >= Date.parse(c.created_at) && sentBy <= Date.now(), 'once sent, expires_at is COMMAND_TIMEOUT after the release, not the ttl')
    }

    await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: queued[2]?.id, status: 'ok' }), { qos: 1 })
    await becomes(app, user, robot.uuid, queued[2]?.id as string, 'done')
    const me = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
    t.equal(me.json().state, 'idle', 'the robot state follows the ack')
    t.equal(received.length, 3, 'each published once')
  })
}

t.test('a queued command expires ttl seconds after it was created and is never published', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const short = await queue(app, user, robot.uuid, 'auto', 1)
  const long = await queue(app, user, robot.uuid, 'manual', 600)
  await becomes(app, user, robot.uuid, short.id, 'expired', 5000)
  t.equal(await statusOf(app, user, robot.uuid, long.id), 'queued', 'the other one still waits')
  const client = await robotClient(t, app, robot)
  const received = collect(client, (topic) => topic === commandsTopic(robot.uuid))
  t.same(await subscribe(client, commandsTopic(robot.uuid)), [1])
  await eventually(async () => received.length, (n) => n === 1)
  t.same(received.map((m) => m.body.id), [long.id], 'only the live one is published')
  t.equal(await statusOf(app, user, robot.uuid, short.id), 'expired')
})

t.test('COMMAND_TIMEOUT counts from when a queued command was sent, not from when it was created', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: '3' })
  const { user, robot } = await ownedRobot(app)
  const q = await queue(app, user, robot.uuid, 'auto', 600)
  await new Promise((resolve) => { setTimeout(resolve, 3500) }) // older than the timeout, still queued
  t.equal(await statusOf(app, user, robot.uuid, q.id), 'queued', 'the timeout does not apply while queued')
  const client = await robotClient(t, app, robot)
  // QoS 0: no PUBACK, so it stays pending until it expires
  t.same(await subscribe(client, commandsTopic(robot.uuid), 0), [0])
  await becomes(app, user, robot.uuid, q.id, 'pending')
  await new Promise((resolve) => { setTimeout(resolve, 1500) })
  t.equal(await statusOf(app, user, robot.uuid, q.id), 'pending', 'still pending 1.5 s after it was sent')
  await becomes(app, user, robot.uuid, q.id, 'expired', 6000)
})

t.test('cancel: queued and pending → 200 cancelled, audited; a later ack is ignored; past that 409; unknown 404', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)

  const q = await queue(app, user, robot.uuid, 'auto')
  const cancelled = await cancel(app, user, robot.uuid, q.id)
  t.equal(cancelled.statusCode, 200)
  t.match(cancelled.json(), { id: q.id, status: 'cancelled', expires_at: null, robot_uuid: robot.uuid, command: 'auto' })

  const client = await robotClient(t, app, robot)
  const received = collect(client, (topic) => topic === commandsTopic(robot.uuid))
  t.same(await subscribe(client, commandsTopic(robot.uuid), 0), [0]) // QoS 0: commands stay pending
  const pending = await send(app, user, robot.uuid, 'manual')
  t.equal(pending.json().status, 'pending')
  await eventually(async () => received.length, (n) => n === 1)
  t.same(received.map((m) => m.body.id), [pending.json().id], 'the cancelled queued command was never published')
  const cancelledPending = await cancel(app, user, robot.uuid, pending.json().id)
  t.equal(cancelledPending.statusCode, 200)
  t.equal(cancelledPending.json().status, 'cancelled')
  await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: pending.json().id, status: 'ok' }), { qos: 1 })
  // a second command's ack after it: once that is done, the broker has read the first
  const marker = await send(app, user, robot.uuid, 'idle')
  await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: marker.json().id, status: 'ok' }), { qos: 1 })
  await becomes(app, user, robot.uuid, marker.json().id, 'done')
  t.equal(await statusOf(app, user, robot.uuid, pending.json().id), 'cancelled', "the robot's later ack is ignored")
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })).json().state, 'idle', 'and did not set the state')

  // past queued and pending: 409 with the contract's code
  const delivered = await connectAndDeliver(t, app, user, robot)
  for (const id of [q.id, pending.json().id, marker.json().id, delivered]) {
    const res = await cancel(app, user, robot.uuid, id)
    t.equal(res.statusCode, 409, `${(await statusOf(app, user, robot.uuid, id)) ?? ''}: 409`)
    t.equal(res.json().code, 'UNITED_COMMAND_FINISHED')
  }
  const idle = await createRobot(app) // not connected, so that its command queues
  await grant(app, user, idle)
  const expired = await queue(app, user, idle.uuid, 'auto', 1)
  await becomes(app, user, idle.uuid, expired.id, 'expired')
  t.equal((await cancel(app, user, idle.uuid, expired.id)).json().code, 'UNITED_COMMAND_FINISHED', 'expired: 409')

  // 404: an unknown id, a malformed one, another robot's command
  const other = await ownedRobot(app)
  const elsewhere = await queue(app, other.user, other.robot.uuid, 'auto')
  for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', elsewhere.id]) {
    const res = await cancel(app, user, robot.uuid, id)
    t.equal(res.statusCode, 404, id)
    t.equal(res.json().code, 'UNITED_COMMAND_NOT_FOUND')
  }
  t.equal(await statusOf(app, other.user, other.robot.uuid, elsewhere.id), 'queued', "another robot's command is untouched")

  const audit = (await app.services.audit.list({ limit: 1000, action: 'command.cancelled' })).items
  t.same(audit.map((e) => e.details).reverse(), [{ command_id: q.id, was: 'queued' }, { command_id: pending.json().id, was: 'pending' }], 'each cancel audited once, with what it was')
  t.match(audit[0], { actor: user.username, robot_uuid: robot.uuid })
  const queuedAudit = (await app.services.audit.list({ limit: 1000, action: 'command.queued' })).items
  t.ok(queuedAudit.some((e) => e.details?.command_id === q.id && e.details.ttl === 600), 'queuing is audited with its ttl')
})

/** Issues a command to a robot that PUBACKs it; resolves with its id once delivered. */
async function connectAndDeliver (t: Test, app: FastifyInstance, user: TestUser, robot: TestRobot): Promise<string> {
  const client = await robotClient(t, app, robot)
  t.same(await subscribe(client, commandsTopic(robot.uuid), 1), [1])
  const res = await send(app, user, robot.uuid, 'auto')
  await becomes(app, user, robot.uuid, res.json().id, 'delivered')
  return res.json().id
}

t.test('cancel needs a JWT and access to the robot, like the rest of §5', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const q = await queue(app, user, robot.uuid, 'auto')
  const noJwt = await app.inject({ method: 'POST', url: `/robots/${robot.uuid}/commands/${q.id}/cancel` })
  t.equal(noJwt.statusCode, 401)
  const stranger = await createUser(app)
  const refused = await cancel(app, stranger, robot.uuid, q.id)
  t.equal(refused.statusCode, 404, 'no access: the robot is not found, as on every robot route')
  t.equal(refused.json().code, 'UNITED_ROBOT_NOT_FOUND')
  t.equal(await statusOf(app, user, robot.uuid, q.id), 'queued')
  await grant(app, stranger, robot)
  t.equal((await cancel(app, stranger, robot.uuid, q.id)).statusCode, 200, 'granted: allowed')
})

t.test('a cancel that races the release: exactly one wins, and a cancelled command stays cancelled', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  let published = 0
  let cancelledCount = 0
  for (let i = 0; i < 12; i++) {
    const q = await queue(app, user, robot.uuid, 'auto')
    const client = await robotClient(t, app, robot)
    const received = collect(client, (topic) => topic === commandsTopic(robot.uuid))
    // Either side first, a little apart: the two paths meet at different points.
    const pause = async (): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, 3 * (i % 6)) }) }
    const [res] = i % 2 === 0
      ? await Promise.all([cancel(app, user, robot.uuid, q.id), pause().then(async () => await subscribe(client, commandsTopic(robot.uuid)))])
      : await Promise.all([pause().then(async () => await cancel(app, user, robot.uuid, q.id)), subscribe(client, commandsTopic(robot.uuid))])
    // let the release and the PUBACK land
    await new Promise((resolve) => { setTimeout(resolve, 150) })
    const status = await statusOf(app, user, robot.uuid, q.id)
    if (res.statusCode === 200) {
      cancelledCount++
      t.equal(status, 'cancelled', `round ${i}: cancel answered 200, the command is cancelled`)
      // the robot may have got it (cancelled while pending): its ack changes nothing
      if (received.length > 0) {
        published++
        await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: q.id, status: 'ok' }), { qos: 1 })
        await new Promise((resolve) => { setTimeout(resolve, 100) })
        t.equal(await statusOf(app, user, robot.uuid, q.id), 'cancelled', `round ${i}: a late ack is ignored`)
      }
    } else {
      t.equal(res.statusCode, 409, `round ${i}: cancel lost to the delivery`)
      t.equal(status, 'delivered', `round ${i}: delivered`)
      t.equal(received.length, 1, `round ${i}: published once`)
    }
    t.ok(received.length <= 1, `round ${i}: published at most once`)
    client.end(true)
    await eventually(async () => app.services.presence.isCommandConnected(robot.uuid), (c) => !c)
  }
  t.comment(`${cancelledCount} of 12 cancels won (${published} after the robot got the command)`)
})

t.test('/metrics and the admin dashboard count queued and cancelled commands, from memory', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  await queue(app, user, robot.uuid, 'auto')
  const c = await queue(app, user, robot.uuid, 'manual')
  await cancel(app, user, robot.uuid, c.id)
  await app.services.commands.refreshCounts() // what the background count does every few seconds
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(text, /^united_commands\{status="queued"\} 1$/m)
  t.match(text, /^united_commands\{status="pending"\} 0$/m)
  t.match(text, /^united_commands_finished_total\{status="cancelled"\} 1$/m)
  t.notMatch(text, /united_commands\{status="cancelled"\}/, 'finished commands are counters, not a count of the table')
  t.match(app.services.commands.countByStatus(), { open: { queued: 1, pending: 0 }, finished: { cancelled: 1 } })

  // a scrape never reads the commands table
  const seen: string[] = []
  const query = app.db.sequelize.query.bind(app.db.sequelize)
  app.db.sequelize.query = (async (sql: unknown, ...rest: unknown[]) => {
    seen.push(String(sql))
    return await (query as (...a: unknown[]) => Promise<unknown>)(sql, ...rest)
  }) as typeof app.db.sequelize.query
  t.teardown(() => { app.db.sequelize.query = query })
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200)
  t.same(seen.filter((sql) => /commands/i.test(sql)), [], 'no query of the commands table per scrape')
})

t.test("acks sent back to back are recorded in order: the robot's state is its last command", async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const sequence = ['auto', 'manual', 'idle', 'error', 'manual', 'auto', 'idle', 'manual']
  const queued = []
  for (const command of sequence) queued.push(await queue(app, user, robot.uuid, command))
  const client = await robotClient(t, app, robot)
  // like the example robot: acknowledge each command the moment it arrives
  client.on('message', (topic, payload) => {
    if (topic !== commandsTopic(robot.uuid)) return
    client.publish(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: JSON.parse(payload.toString()).id, status: 'ok' }), { qos: 1 })
  })
  t.same(await subscribe(client, commandsTopic(robot.uuid)), [1])
  for (const q of queued) await becomes(app, user, robot.uuid, q.id, 'done')
  const me = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(me.json().state, 'manual', 'the last of the queue')
})
