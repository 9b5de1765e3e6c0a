// docs/protocol.md §2.4: sessions end with the credential, and a connection the
// server closes publishes no will. Real mqtt.js clients over TCP and
// WebSocket, the Management API, and the REST token endpoints.
import { createHmac, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createStaff, createUser, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build, TEST_JWT_SECRET } from '../helper.js'
import { closedByServer, connect, connectRobot, connectUser, eventually, positionFrame, refusedWith, sendFrame, suback, TRANSPORTS } from '../mqtt.js'

const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

async function logIn (app: FastifyInstance, user: TestUser, password = user.password): Promise<{ access: string, refresh: string }> {
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password } })
  if (res.statusCode !== 200) throw new Error(`log-in answered ${res.statusCode}`)
  return res.json()
}
const me = async (app: FastifyInstance, access: string): Promise<number> => (await app.inject({ method: 'GET', url: '/users/me', headers: bearer(access) })).statusCode
const refresh = async (app: FastifyInstance, token: string): Promise<number> => (await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: token } })).statusCode

async function patchUser (app: FastifyInstance, staff: TestUser, user: TestUser, body: Record<string, unknown>): Promise<void> {
  const res = await app.inject({ method: 'PATCH', url: `/admin/api/users/${user.id}`, headers: bearer(staff.jwt), payload: body })
  if (res.statusCode !== 200) throw new Error(`PATCH answered ${res.statusCode}`)
}

/** Resolves with the ms from now until the server closed the connection. */
async function closeTime (client: MqttClient, start: number): Promise<number> {
  await closedByServer(client)
  return Date.now() - start
}

const userEndings: Array<[string, (app: FastifyInstance, staff: TestUser, user: TestUser) => Promise<void>]> = [
  ['a password change', async (app, staff, user) => { await patchUser(app, staff, user, { password: 'a-brand-new-password' }) }],
  ['a deactivation', async (app, staff, user) => { await patchUser(app, staff, user, { is_active: false }) }],
  ['a deletion', async (app, staff, user) => {
    const res = await app.inject({ method: 'DELETE', url: `/admin/api/users/${user.id}`, headers: bearer(staff.jwt) })
    if (res.statusCode !== 204) throw new Error(`DELETE answered ${res.statusCode}`)
  }]
]

for (const [ending, end] of userEndings) {
  t.test(`${ending} ends everything issued before it: JWTs get 401, MQTT connections close within 1 s`, async (t) => {
    const app = await build(t)
    const staff = await createStaff(app)
    const user = await createUser(app)
    const bystander = await createUser(app)
    const pair = await logIn(app, user)
    t.equal(await me(app, pair.access), 200, 'before: the access JWT works')
    t.equal(await refresh(app, pair.refresh), 200, 'before: the refresh JWT works')
    const clients = await Promise.all(TRANSPORTS.map(async (transport) => await connectUser(t, app, { ...user, jwt: pair.access }, { transport })))
    const other = await connectUser(t, app, bystander)

    const start = Date.now()
    await end(app, staff, user)
    const times = await Promise.all(clients.map(async (c) => await closeTime(c, start)))
    for (const [i, ms] of times.entries()) t.ok(ms < 1000, `${TRANSPORTS[i] as string}: closed in ${ms} ms`)
    t.equal(await me(app, pair.access), 401, 'the access JWT gets 401')
    t.equal(await refresh(app, pair.refresh), 401, 'the refresh JWT gets 401')
    for (const transport of TRANSPORTS) {
      t.not(await refusedWith(t, app, { transport, username: user.username, password: pair.access }), 0, `${transport}: the old JWT cannot connect again`)
    }
    t.same(await suback(other, 'robots/+/presence'), [1], 'another user stays connected and served')
  })
}

t.test('a password change: the new password gives tokens that work; the old JWTs stay refused', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const old = await logIn(app, user)
  await patchUser(app, staff, user, { password: 'a-brand-new-password' })
  const fresh = await logIn(app, user, 'a-brand-new-password')
  t.equal(await me(app, fresh.access), 200, 'a new access JWT works')
  t.equal(await refresh(app, fresh.refresh), 200, 'a new refresh JWT works')
  const client = await connectUser(t, app, { ...user, jwt: fresh.access })
  t.equal(client.connected, true, 'and connects')
  t.equal(await refusedWith(t, app, { username: user.username, password: old.access }), NOT_AUTHORIZED, 'the old access JWT: CONNACK 5, revoked')
  t.equal(await me(app, old.access), 401)
})

t.test('reactivating a user revives nothing issued before the deactivation; an inactive user\'s JWT still gets CONNACK 5', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const before = await logIn(app, user)
  await patchUser(app, staff, user, { is_active: false })
  for (const transport of TRANSPORTS) {
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: before.access }), NOT_AUTHORIZED, `${transport}: inactive: CONNACK 5`)
  }
  await patchUser(app, staff, user, { is_active: true })
  t.equal(await me(app, before.access), 401, 'the old access JWT stays refused')
  t.equal(await refresh(app, before.refresh), 401, 'the old refresh JWT stays refused')
  t.equal(await refusedWith(t, app, { username: user.username, password: before.access }), NOT_AUTHORIZED, 'and cannot connect: CONNACK 5, revoked')
  const after = await logIn(app, user)
  t.equal(await me(app, after.access), 200, 'a new log-in works')
  t.equal(await refresh(app, after.refresh), 200)
})

t.test('a staff flag change ends nothing: tokens and connections keep working', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const pair = await logIn(app, user)
  const client = await connectUser(t, app, { ...user, jwt: pair.access })
  await patchUser(app, staff, user, { is_staff: true })
  t.equal(await me(app, pair.access), 200)
  t.equal(await refresh(app, pair.refresh), 200)
  t.same(await suback(client, '$SYS/#'), [1], 'the connection stays, with the new flag')
})

/** An HS256 JWT signed with the server's secret, with claims of our choosing. */
function signed (claims: Record<string, unknown>): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`
  return `${head}.${createHmac('sha256', TEST_JWT_SECRET).update(head).digest('base64url')}`
}

t.test('a JWT without exp is refused everywhere; the same claims with exp are accepted', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const now = Math.floor(Date.now() / 1000)
  const claims = { sub: String(user.id), username: user.username, ver: 0, iat: now }
  const access = signed({ ...claims, type: 'access' })
  const refreshJwt = signed({ ...claims, type: 'refresh' })
  t.equal(await me(app, access), 401, 'access JWT without exp: 401')
  t.equal(await refresh(app, refreshJwt), 401, 'refresh JWT without exp: 401')
  for (const transport of TRANSPORTS) {
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: access }), BAD_CREDENTIALS, `${transport}: CONNACK 4`)
  }
  t.equal(await me(app, signed({ ...claims, type: 'access', exp: now + 60 })), 200, 'the control: with exp, accepted')
  t.equal(await me(app, signed({ sub: String(user.id), username: user.username, iat: now, exp: now + 60, type: 'access', ver: 1 })), 401, 'a version the user does not have: 401')
})

// A robot whose will is a valid frame on its own data topic.
async function robotWithWill (t: Test, app: FastifyInstance, robot: TestRobot, transport: 'tcp' | 'ws', willId: string): Promise<MqttClient> {
  const client = await connectRobot(t, app, robot, { transport, will: { topic: `robots/${robot.uuid}/data`, payload: Buffer.from(positionFrame(willId)), qos: 1, retain: false } })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  t.same(await sendFrame(client, robot.uuid, 'before'), { id: 'before', status: 'ok' }, 'a frame before is stored')
  return client
}

async function storedIds (app: FastifyInstance, robot: TestRobot): Promise<string[]> {
  const rows = await app.db.sequelize.query('SELECT f.frame_id FROM frames f JOIN robots r ON r.id = f.robot_id WHERE r.uuid = ? ORDER BY f.frame_id', { replacements: [robot.uuid] }) as [Array<{ frame_id: string }>, unknown]
  return rows[0].map((r) => r.frame_id)
}

for (const transport of TRANSPORTS) {
  t.test(`${transport}: a robot closed by the server publishes no will`, async (t) => {
    const revocations: Array<[string, (app: FastifyInstance, robot: TestRobot) => Promise<void>]> = [
      ['disabled', async (app, robot) => { await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null }) }],
      ['rotated', async (app, robot) => { await app.services.robots.rotate(robot.uuid, { actor: null }, 0) }]
    ]
    for (const [what, revoke] of revocations) {
      t.test(what, async (t) => {
        const app = await build(t)
        const robot = await createRobot(app)
        const client = await robotWithWill(t, app, robot, transport, `will-${randomUUID()}`)
        const closed = closedByServer(client)
        await revoke(app, robot)
        await closed
        // A frame sent by a live robot is stored within milliseconds; give the will far longer.
        await new Promise((resolve) => { setTimeout(resolve, 300) })
        await app.services.frameWriter.flush()
        t.same(await storedIds(app, robot), ['before'], 'only the frame sent before: the will is not stored')
      })
    }
    t.test('deleted: no will, and nothing of the robot is left', async (t) => {
      const app = await build(t)
      const robot = await createRobot(app)
      const client = await robotWithWill(t, app, robot, transport, 'will-deleted')
      const closed = closedByServer(client)
      await app.services.robots.remove(robot.uuid, { actor: null })
      await closed
      await new Promise((resolve) => { setTimeout(resolve, 300) })
      await app.services.frameWriter.flush()
      const [rows] = await app.db.sequelize.query("SELECT count(*) AS n FROM frames WHERE frame_id IN ('before', 'will-deleted')") as [Array<{ n: number | string }>, unknown]
      t.equal(Number(rows[0]?.n), 0)
    })
  })

  t.test(`${transport}: a robot whose connection drops (not closed by the server) still has its will handled as a frame`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const client = await robotWithWill(t, app, robot, transport, 'will-drop')
    client.on('error', () => {})
    client.stream.destroy() // the network goes: no DISCONNECT
    await eventually(async () => await storedIds(app, robot), (ids) => ids.includes('will-drop'))
    t.same(await storedIds(app, robot), ['before', 'will-drop'])
  })
}

t.test('a robot that disconnects cleanly publishes no will (MQTT 3.1.1)', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const client = await robotWithWill(t, app, robot, 'tcp', 'will-clean')
  await client.endAsync()
  await new Promise((resolve) => { setTimeout(resolve, 300) })
  await app.services.frameWriter.flush()
  t.same(await storedIds(app, robot), ['before'])
  await connect(t, app, { username: robot.uuid, password: (await app.services.robotTokens.obtain(robot.serial, robot.secret)).access_token })
})

/** Holds every call of `obj[name]` until released; resolves `reached` at the first call. */
function gate<T extends object, K extends keyof T> (t: Test, obj: T, name: K): { reached: Promise<void>, release: () => void } {
  const original = obj[name] as (...args: unknown[]) => Promise<unknown>
  let release!: () => void
  const open = new Promise<void>((resolve) => { release = resolve })
  let reached!: () => void
  const first = new Promise<void>((resolve) => { reached = resolve })
  obj[name] = (async (...args: unknown[]) => { reached(); await open; return await original.apply(obj, args) }) as T[K]
  t.teardown(() => { obj[name] = original as T[K] })
  return { reached: first, release }
}

for (const transport of TRANSPORTS) {
  t.test(`${transport}: a CONNECT whose robot token was checked just before a rotation is refused`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const token = await app.services.robotTokens.obtain(robot.serial, robot.secret)
    const held = gate(t, app.services.robots, 'ref') // after the token is resolved, before the robot is read
    const answer = refusedWith(t, app, { transport, username: robot.uuid, password: token.access_token })
    await held.reached
    await app.services.robots.rotate(robot.uuid, { actor: null }, 0)
    held.release()
    t.equal(await answer, NOT_AUTHORIZED, 'revoked during its own log-in: like every revoked credential')
    t.notOk(await app.services.loginLimits.hasFailures('127.0.0.1'), 'and not counted as a failure')
  })

  t.test(`${transport}: a CONNECT whose JWT was checked just before a password change is refused`, async (t) => {
    const app = await build(t)
    const staff = await createStaff(app)
    const user = await createUser(app)
    const held = gate(t, app.services.access, 'viewOf') // after the JWT is verified, while the grants load
    const answer = refusedWith(t, app, { transport, username: user.username, password: user.jwt })
    await held.reached
    await patchUser(app, staff, user, { password: 'a-brand-new-password' })
    held.release()
    t.equal(await answer, NOT_AUTHORIZED, 'revoked during its own log-in: like every revoked credential')
    t.notOk(await app.services.loginLimits.hasFailures('127.0.0.1'), 'and not counted as a failure')
  })
}
