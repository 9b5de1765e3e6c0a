// No one user can flood a robot through its queue, and a queued command
// goes out only while its issuer may still command the robot:
// - COMMAND_QUEUE_LIMIT queued commands per robot; one more is 429
//   UNITED_QUEUE_FULL (counted with the insert: concurrent requests cannot
//   overshoot), and nothing is stored for it;
// - a queue is released RELEASE_WINDOW commands at a time: the next go out
//   only as the robot PUBACKs (or acks, or lets expire) those before;
// - a revoked grant, a removed staff flag, a deactivated or deleted user
//   cancel that user's queued commands, audited as the server's; the release
//   checks the issuer again;
// - finished commands past COMMAND_RETENTION_DAYS are deleted, open ones never.
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { createRobot, createStaff, createUser, grant, ownedRobot, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { commandItems, queueCommand, sendCommand, type CommandItem } from '../commands.js'
import { connectRobot, eventually, holdingPubacks, robotToken, type HoldingClient } from '../mqtt.js'
import { commandsByCreatedAt, RELEASE_WINDOW } from '../../src/services/commands.js'

type Item = CommandItem
const items = commandItems

/** A command queued for 600 s. */
async function queue (app: FastifyInstance, user: TestUser, uuid: string, command = 'auto'): Promise<Item> {
  return await queueCommand(app, user, uuid, command)
}

const commandsTopic = (uuid: string): string => `robots/${uuid}/commands`

async function countWhere (app: FastifyInstance, uuid: string, status: string): Promise<number> {
  const rows = await app.db.sequelize.query('SELECT count(*) AS n FROM commands c JOIN robots r ON r.id = c.robot_id WHERE r.uuid = $1 AND c.status = $2',
    { bind: [uuid, status], type: QueryTypes.SELECT }) as Array<{ n: number | string }>
  return Number(rows[0]?.n ?? 0)
}

/** A robot subscribed (QoS 1) to its commands whose PUBACKs wait for `puback()`. */
async function holdingRobot (t: Test, app: FastifyInstance, robot: TestRobot): Promise<HoldingClient> {
  return await holdingPubacks(t, app.broker.port, robot.uuid, await robotToken(app, robot), commandsTopic(robot.uuid))
}

t.test('COMMAND_QUEUE_LIMIT: the limit is accepted, one more is 429 UNITED_QUEUE_FULL and stores nothing; other robots are not affected', async (t) => {
  const app = await build(t, { COMMAND_QUEUE_LIMIT: '3' })
  const { user, robot } = await ownedRobot(app)
  const other = await createRobot(app)
  await grant(app, user, other)
  for (let i = 0; i < 3; i++) await queue(app, user, robot.uuid)
  const res = await sendCommand(app, user, robot.uuid, 'manual', { ttl: 600 })
  t.equal(res.statusCode, 429)
  t.match(res.json(), { statusCode: 429, code: 'UNITED_QUEUE_FULL', error: 'Too Many Requests' })
  t.equal((await items(app, user, robot.uuid)).length, 3, 'the refused command was not stored')
  t.equal(await countWhere(app, robot.uuid, 'queued'), 3)
  t.equal((await queue(app, user, other.uuid)).status, 'queued', "another robot's queue is its own")

  // a robot that cannot be reached is still 404, full queue or not
  const stranger = await createUser(app)
  t.equal((await sendCommand(app, stranger, robot.uuid, 'auto', { ttl: 600 })).statusCode, 404)

  // cancelling one makes room for one
  const first = (await items(app, user, robot.uuid))[0] as Item
  t.equal((await app.inject({ method: 'POST', url: `/robots/${robot.uuid}/commands/${first.id}/cancel`, headers: bearer(user.jwt) })).statusCode, 200)
  t.equal((await sendCommand(app, user, robot.uuid, 'idle', { ttl: 600 })).statusCode, 201)
  t.equal((await sendCommand(app, user, robot.uuid, 'idle', { ttl: 600 })).statusCode, 429)
})

t.test('COMMAND_QUEUE_LIMIT holds under concurrent requests: exactly the limit is queued', async (t) => {
  const app = await build(t, { COMMAND_QUEUE_LIMIT: '5' })
  const { user, robot } = await ownedRobot(app)
  const staff = await createStaff(app)
  const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await sendCommand(app, i % 2 === 0 ? user : staff, robot.uuid, 'auto', { ttl: 600 })))
  const statuses = answers.map((r) => r.statusCode).sort()
  t.same(statuses, [...Array(5).fill(201), ...Array(15).fill(429)])
  t.equal(await countWhere(app, robot.uuid, 'queued'), 5)
})

t.test('a command to a connected robot is not bound by the queue limit', async (t) => {
  const app = await build(t, { COMMAND_QUEUE_LIMIT: '1' })
  const { user, robot } = await ownedRobot(app)
  await queue(app, user, robot.uuid)
  t.equal((await sendCommand(app, user, robot.uuid, 'auto', { ttl: 600 })).statusCode, 429)
  const robotSide = await holdingRobot(t, app, robot)
  await eventually(async () => robotSide.received.length, (n) => n === 1)
  for (let i = 0; i < 3; i++) {
    const res = await sendCommand(app, user, robot.uuid, 'idle')
    t.equal(res.statusCode, 201)
    t.equal(res.json().status, 'pending')
  }
})

t.test(`a queue is released ${RELEASE_WINDOW} commands at a time, oldest first, the next as the robot PUBACKs`, async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const queued: Item[] = []
  for (let i = 0; i < 25; i++) queued.push(await queue(app, user, robot.uuid, ['auto', 'idle', 'manual', 'error'][i % 4] as string))
  const robotSide = await holdingRobot(t, app, robot)
  await eventually(async () => robotSide.received.length, (n) => n === RELEASE_WINDOW)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(robotSide.received.length, RELEASE_WINDOW, `no more than ${RELEASE_WINDOW} without a PUBACK`)
  t.equal(await countWhere(app, robot.uuid, 'queued'), 25 - RELEASE_WINDOW, 'the rest stay queued')

  robotSide.puback(3)
  await eventually(async () => robotSide.received.length, (n) => n === RELEASE_WINDOW + 3)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(robotSide.received.length, RELEASE_WINDOW + 3, 'three PUBACKs made room for three')

  // then the robot PUBACKs everything as it comes
  const drain = setInterval(() => { robotSide.puback() }, 20)
  t.teardown(() => { clearInterval(drain) })
  await eventually(async () => robotSide.received.length, (n) => n === 25)
  t.same(robotSide.received, queued.map((q) => q.id), 'every command once, oldest first')
  await eventually(async () => await countWhere(app, robot.uuid, 'delivered'), (n) => n === 25)
  t.equal(await countWhere(app, robot.uuid, 'queued'), 0)
})

t.test("the robot's command acks make room too (a QoS 0 subscription sends no PUBACK)", async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  for (let i = 0; i < 15; i++) await queue(app, user, robot.uuid)
  const client = await connectRobot(t, app, robot)
  const received: string[] = []
  client.on('message', (topic, payload) => {
    if (topic !== commandsTopic(robot.uuid)) return
    received.push(String(JSON.parse(payload.toString()).id))
  })
  await client.subscribeAsync(commandsTopic(robot.uuid), { qos: 0 })
  await eventually(async () => received.length, (n) => n === RELEASE_WINDOW)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(received.length, RELEASE_WINDOW, 'the window, no more')
  for (const id of received.slice(0, 5)) client.publish(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id, status: 'ok' }), { qos: 1 })
  await eventually(async () => received.length, (n) => n === 15)
  t.equal(new Set(received).size, 15, 'each once')
})

t.test('commands that expire unacknowledged make room for the rest of the queue', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: '1' })
  const { user, robot } = await ownedRobot(app)
  for (let i = 0; i < RELEASE_WINDOW + 2; i++) await queue(app, user, robot.uuid)
  const robotSide = await holdingRobot(t, app, robot) // never PUBACKs
  await eventually(async () => robotSide.received.length, (n) => n === RELEASE_WINDOW)
  await eventually(async () => robotSide.received.length, (n) => n === RELEASE_WINDOW + 2, 10_000)
  await eventually(async () => await countWhere(app, robot.uuid, 'expired'), (n) => n >= RELEASE_WINDOW, 10_000)
})

/** Queues commands by `issuer` and by `bystander` (who keeps the right) for `robot`. */
async function twoIssuers (app: FastifyInstance, issuer: TestUser, bystander: TestUser, robot: TestRobot): Promise<{ mine: Item[], theirs: Item[] }> {
  const mine = [await queue(app, issuer, robot.uuid, 'error'), await queue(app, issuer, robot.uuid, 'manual')]
  const theirs = [await queue(app, bystander, robot.uuid, 'auto')]
  return { mine, theirs }
}

async function serverCancellations (app: FastifyInstance, robotUuid: string): Promise<Array<{ actor_id: number | null, details: { command_id: string } }>> {
  const staff = await createStaff(app)
  const res = await app.inject({ method: 'GET', url: `/admin/api/audit?robot_uuid=${robotUuid}&action=command.cancelled&limit=100`, headers: bearer(staff.jwt) })
  if (res.statusCode !== 200) throw new Error(`audit: ${res.statusCode} ${res.body}`)
  return res.json().items
}

const LOSSES: Array<{ name: string, lose: (app: FastifyInstance, staff: TestUser, issuer: TestUser, robot: TestRobot) => Promise<void>, issuerIsStaff?: boolean }> = [
  {
    name: 'grant revoked',
    lose: async (app, staff, issuer, robot) => {
      const res = await app.inject({ method: 'DELETE', url: `/admin/api/robots/${robot.uuid}/users/${issuer.id}`, headers: bearer(staff.jwt) })
      if (res.statusCode !== 204) throw new Error(`revoke: ${res.statusCode}`)
    }
  },
  {
    name: 'user deactivated',
    lose: async (app, staff, issuer) => {
      const res = await app.inject({ method: 'PATCH', url: `/admin/api/users/${issuer.id}`, headers: bearer(staff.jwt), payload: { is_active: false } })
      if (res.statusCode !== 200) throw new Error(`deactivate: ${res.statusCode}`)
    }
  },
  {
    name: 'user deleted',
    lose: async (app, staff, issuer) => {
      const res = await app.inject({ method: 'DELETE', url: `/admin/api/users/${issuer.id}`, headers: bearer(staff.jwt) })
      if (res.statusCode !== 204) throw new Error(`delete: ${res.statusCode}`)
    }
  },
  {
    name: 'staff flag removed (no grant)',
    issuerIsStaff: true,
    lose: async (app, staff, issuer) => {
      const res = await app.inject({ method: 'PATCH', url: `/admin/api/users/${issuer.id}`, headers: bearer(staff.jwt), payload: { is_staff: false } })
      if (res.statusCode !== 200) throw new Error(`unstaff: ${res.statusCode}`)
    }
  }
]

for (const loss of LOSSES) {
  t.test(`${loss.name}: the issuer's queued commands are cancelled by the server, the others' go out`, async (t) => {
    const app = await build(t)
    const staff = await createStaff(app)
    const robot = await createRobot(app)
    const issuer = loss.issuerIsStaff === true ? await createStaff(app) : await createUser(app)
    if (loss.issuerIsStaff !== true) await grant(app, issuer, robot)
    const bystander = await createUser(app)
    await grant(app, bystander, robot)
    const { mine, theirs } = await twoIssuers(app, issuer, bystander, robot)
    await loss.lose(app, staff, issuer, robot)
    await eventually(async () => await items(app, staff, robot.uuid), (list) => mine.every((m) => list.find((c) => c.id === m.id)?.status === 'cancelled'))
    const cancellations = await serverCancellations(app, robot.uuid)
    t.same(cancellations.map((a) => a.details.command_id).sort(), mine.map((m) => m.id).sort(), 'each cancellation audited')
    t.ok(cancellations.every((a) => a.actor_id === null), 'by the server')

    const robotSide = await holdingRobot(t, app, robot)
    await eventually(async () => robotSide.received.length, (n) => n === 1)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(robotSide.received, theirs.map((c) => c.id), "only the bystander's command reaches the robot")
  })
}

t.test('the release checks the issuer again: a right lost without its event still cancels', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const q = await queue(app, user, robot.uuid)
  // the grant disappears behind the server's back (another node's change whose event was lost)
  await app.db.sequelize.query('DELETE FROM robot_access WHERE user_id = $1', { bind: [user.id] })
  const robotSide = await holdingRobot(t, app, robot)
  const staff = await createStaff(app)
  await eventually(async () => (await items(app, staff, robot.uuid))[0]?.status, (s) => s === 'cancelled')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(robotSide.received, [], 'nothing published')
  t.match(await serverCancellations(app, robot.uuid), [{ actor_id: null, details: { command_id: q.id } }])
})

t.test('a right that remains keeps the queue: a second grant path (staff) and a regranted user', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const issuer = await createStaff(app)
  await grant(app, issuer, robot)
  const q = await queue(app, issuer, robot.uuid)
  // revoking the grant of a staff user leaves them staff: they may still command
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/api/robots/${robot.uuid}/users/${issuer.id}`, headers: bearer(staff.jwt) })).statusCode, 204)
  // and removing the staff flag of a granted user leaves the grant
  const granted = await createStaff(app)
  await grant(app, granted, robot)
  const q2 = await queue(app, granted, robot.uuid)
  t.equal((await app.inject({ method: 'PATCH', url: `/admin/api/users/${granted.id}`, headers: bearer(staff.jwt), payload: { is_staff: false } })).statusCode, 200)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const list = await items(app, staff, robot.uuid)
  t.equal(list.find((c) => c.id === q.id)?.status, 'queued')
  t.equal(list.find((c) => c.id === q2.id)?.status, 'queued')
  const robotSide = await holdingRobot(t, app, robot)
  await eventually(async () => robotSide.received.length, (n) => n === 2)
})

t.test('COMMAND_RETENTION_DAYS: finished commands older than the cutoff go in pieces; open and newer ones stay', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const robotId = Number((await app.db.sequelize.query('SELECT id FROM robots WHERE uuid = $1', { bind: [robot.uuid], type: QueryTypes.SELECT }) as Array<{ id: number }>)[0]?.id)
  const old = new Date(Date.now() - 100 * 86400_000)
  const recent = new Date(Date.now() - 10 * 86400_000)
  const when = (d: Date): Date | string => app.db.dialect === 'postgres' ? d : d.toISOString().replace('T', ' ').replace('Z', ' +00:00')
  const rows: Array<[string, Date]> = []
  for (const status of ['done', 'failed', 'expired', 'cancelled']) for (let i = 0; i < 3; i++) rows.push([status, old])
  rows.push(['queued', old], ['pending', old], ['delivered', old], ['done', recent])
  let n = 0
  for (const [status, at] of rows) {
    await app.db.sequelize.query(`INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at)
VALUES ($1, $2, 'auto', $3, $4, $5, $6, $6, $7, $6)`, { bind: [`00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`, robotId, status, user.username, user.id, when(at), when(new Date(Date.now() + 3600_000))] })
  }
  const removed = await app.services.commands.removeFinishedOlderThan(new Date(Date.now() - 90 * 86400_000), { piece: 5 })
  t.equal(removed, 12, 'the twelve old finished commands, in pieces of 5')
  const left = await app.db.sequelize.query('SELECT status FROM commands ORDER BY status', { type: QueryTypes.SELECT }) as Array<{ status: string }>
  t.same(left.map((r) => r.status), ['delivered', 'done', 'pending', 'queued'], 'open commands and the recent one stay')
  t.equal(await app.services.commands.removeFinishedOlderThan(new Date(Date.now() - 90 * 86400_000)), 0, 'again: nothing')
})

t.test('SQLite: command retention and the dashboard read commands through the index on created_at, and frames of the last hour one range per robot', async (t) => {
  const app = await build(t)
  if (app.db.dialect !== 'sqlite') {
    t.pass('a SQLite plan: PostgreSQL plans by its statistics')
    return
  }
  const plan = async (sql: string): Promise<string> => (await app.db.sequelize.query(`EXPLAIN QUERY PLAN ${sql}`, { type: QueryTypes.SELECT }) as Array<{ detail: string }>).map((r) => r.detail).join('; ')
  const by = commandsByCreatedAt('sqlite')
  t.match(await plan(`SELECT id FROM commands ${by} WHERE created_at < '2026-01-01' AND status IN ('done', 'failed', 'expired', 'cancelled') ORDER BY created_at LIMIT 2000`), /SEARCH commands USING INDEX commands_created_at \(created_at<\?\)/, 'retention: a range of created_at, no sort')
  t.notMatch(await plan(`SELECT id FROM commands ${by} WHERE created_at < '2026-01-01' AND status IN ('done', 'failed', 'expired', 'cancelled') ORDER BY created_at LIMIT 2000`), /TEMP B-TREE/)
  t.match(await plan(`SELECT status, COUNT(*) AS n FROM commands ${by} WHERE created_at > '2026-01-01' GROUP BY status`), /SEARCH commands USING INDEX commands_created_at \(created_at>\?\)/, 'dashboard: a day of commands')
  t.match(await plan("SELECT COUNT(*) AS n FROM robots r CROSS JOIN frames f WHERE f.robot_id = r.id AND f.type IN (1, 2, 3) AND f.received_at > '2026-01-01'"), /SEARCH f USING COVERING INDEX frames_robot_type_received \(robot_id=\? AND type=\? AND received_at>\?\)/, 'dashboard: the last hour of each robot')
})
