// Stale credentials at MQTT CONNECT: a robot access token voided by
// disabling, deleting or rotating its robot (remembered for ROBOT_TOKEN_TTL
// after the voiding), and a JWT this server signed whose user was since
// deleted, deactivated or given a new password, get CONNACK 5 and count
// toward no log-in limit; an expired JWT signed here, or a refresh JWT, gets
// CONNACK 4, uncounted. Unknown tokens and JWTs with a bad signature get CONNACK 4 and
// count, as before. Real mqtt.js clients from chosen loopback addresses.
import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { connackFrom } from '../addresses.js'
import { createRobot, createUser, type TestRobot, type TestUser } from '../factory.js'
import { build, TEST_JWT_SECRET } from '../helper.js'
import { robotToken, TRANSPORTS, type Transport } from '../mqtt.js'

const ACCEPTED = 0
const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

/** An HS256 JWT with the claims of an access token of `user`, signed with `secret`. */
function jwtOf (user: TestUser, secret: string, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000)
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: String(user.id), username: user.username, type: 'access', ver: 0, iat: now, exp: now + 300, ...claims })}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}

const asRobot = async (t: Parameters<typeof connackFrom>[0], app: FastifyInstance, robot: TestRobot, token: string, from = '127.0.0.1', transport: Transport = 'tcp'): Promise<number> =>
  await connackFrom(t, app, from, transport, { username: robot.uuid, password: token })
const asUser = async (t: Parameters<typeof connackFrom>[0], app: FastifyInstance, user: TestUser, jwt: string, from = '127.0.0.1', transport: Transport = 'tcp'): Promise<number> =>
  await connackFrom(t, app, from, transport, { username: user.username, password: jwt })

const voidings: Array<[string, (app: FastifyInstance, robot: TestRobot) => Promise<void>]> = [
  ['disabling', async (app, robot) => { await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null }) }],
  ['deleting', async (app, robot) => { await app.services.robots.remove(robot.uuid, { actor: null }) }],
  ['rotating', async (app, robot) => { await app.services.robots.rotate(robot.uuid, { actor: null }, 0) }]
]

for (const transport of TRANSPORTS) {
  for (const [action, voidIt] of voidings) {
    t.test(`${transport}: a token voided by ${action} its robot gets CONNACK 5; a wrong token for the robot CONNACK 4`, async (t) => {
      const app = await build(t)
      const robot = await createRobot(app)
      const token = await robotToken(app, robot)
      t.equal(await asRobot(t, app, robot, token, '127.0.0.1', transport), ACCEPTED, 'a moment before: the token connects')
      await voidIt(app, robot)
      t.equal(await asRobot(t, app, robot, token, '127.0.0.1', transport), NOT_AUTHORIZED, 'the voided token: CONNACK 5')
      t.equal(await asRobot(t, app, robot, 'f'.repeat(64), '127.0.0.1', transport), BAD_CREDENTIALS, 'an unknown token: CONNACK 4')
    })
  }
}

t.test('a voided token is remembered for ROBOT_TOKEN_TTL after its voiding, then it is an unknown token', async (t) => {
  const app = await build(t, { ROBOT_TOKEN_TTL: '2' })
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  await app.services.robots.rotate(robot.uuid, { actor: null }, 0)
  t.equal(await asRobot(t, app, robot, token), NOT_AUTHORIZED, 'just voided: CONNACK 5')
  await sleep(2200)
  t.equal(await asRobot(t, app, robot, token), BAD_CREDENTIALS, 'ROBOT_TOKEN_TTL later: forgotten, CONNACK 4')
  t.equal(await asRobot(t, app, robot, await robotToken(app, { ...robot, secret: (await app.services.robots.rotate(robot.uuid, { actor: null }, 0)).token })), ACCEPTED, 'a new token connects')
})

t.test('JWTs signed here: revoked ones get CONNACK 5, expired ones CONNACK 4; a bad signature CONNACK 4', async (t) => {
  const app = await build(t)
  const deleted = await createUser(app)
  const changed = await createUser(app)
  const inactive = await createUser(app)
  const plain = await createUser(app)
  for (const user of [deleted, changed, inactive]) t.equal(await asUser(t, app, user, user.jwt), ACCEPTED, `${user.username}: a moment before, the JWT connects`)

  await app.services.users.remove(deleted.id, { actor: null })
  t.equal(await asUser(t, app, deleted, deleted.jwt), NOT_AUTHORIZED, 'a deleted user\'s JWT: CONNACK 5')
  await app.services.users.update(changed.id, { password: 'a-brand-new-password' }, { actor: null })
  t.equal(await asUser(t, app, changed, changed.jwt), NOT_AUTHORIZED, 'a JWT from before a password change: CONNACK 5')
  await app.services.users.update(inactive.id, { isActive: false }, { actor: null })
  t.equal(await asUser(t, app, inactive, inactive.jwt), NOT_AUTHORIZED, 'an inactive user\'s JWT: CONNACK 5')
  await app.services.users.update(inactive.id, { isActive: true }, { actor: null })
  t.equal(await asUser(t, app, inactive, inactive.jwt), NOT_AUTHORIZED, 'reactivated: the JWT from before stays revoked, CONNACK 5')

  const now = Math.floor(Date.now() / 1000)
  t.equal(await asUser(t, app, plain, jwtOf(plain, TEST_JWT_SECRET, { iat: now - 600, exp: now - 300 })), BAD_CREDENTIALS, 'an expired JWT: CONNACK 4')
  t.equal(await asUser(t, app, plain, jwtOf(plain, 'another-secret-another-secret-0123456789')), BAD_CREDENTIALS, 'a JWT signed with another secret: CONNACK 4')
  t.equal(await asUser(t, app, plain, plain.jwt), ACCEPTED, 'the user\'s own JWT connects')
})

t.test('stale credentials count toward no limit: after 20 from one address, that identity still connects there', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '2', AUTH_FAIL_WINDOW: '60' })
  const from = '127.0.0.31'

  const robot = await createRobot(app)
  const voided = await robotToken(app, robot)
  const secret = (await app.services.robots.rotate(robot.uuid, { actor: null }, 0)).token
  for (let i = 0; i < 20; i++) t.equal(await asRobot(t, app, robot, voided, from), NOT_AUTHORIZED, `voided token ${i + 1}: CONNACK 5`)
  t.equal(await asRobot(t, app, robot, await robotToken(app, { ...robot, secret }), from), ACCEPTED, 'the robot connects with a new token from the same address')
  t.equal(await asRobot(t, app, robot, 'f'.repeat(64), from), BAD_CREDENTIALS, 'an unknown token then: CONNACK 4, not blocked')

  const changed = await createUser(app)
  await app.services.users.update(changed.id, { password: 'a-brand-new-password' }, { actor: null })
  for (let i = 0; i < 20; i++) t.equal(await asUser(t, app, changed, changed.jwt, from), NOT_AUTHORIZED, `revoked JWT ${i + 1}: CONNACK 5`)
  t.equal(await asUser(t, app, changed, await app.services.auth.issueAccess(changed), from), ACCEPTED, 'the user connects with a new JWT from the same address')

  const inactive = await createUser(app)
  await app.services.users.update(inactive.id, { isActive: false }, { actor: null })
  for (let i = 0; i < 20; i++) await asUser(t, app, inactive, inactive.jwt, from)
  await app.services.users.update(inactive.id, { isActive: true }, { actor: null })
  t.equal(await asUser(t, app, inactive, await app.services.auth.issueAccess(inactive), from), ACCEPTED, 'after 20 inactive JWTs and a reactivation, the user connects from the same address')

  const late = await createUser(app)
  const now = Math.floor(Date.now() / 1000)
  const expired = jwtOf(late, TEST_JWT_SECRET, { iat: now - 600, exp: now - 300 })
  for (let i = 0; i < 20; i++) t.equal(await asUser(t, app, late, expired, from), BAD_CREDENTIALS, `expired JWT ${i + 1}: CONNACK 4`)
  t.equal(await asUser(t, app, late, late.jwt, from), ACCEPTED, 'the user connects with a valid JWT from the same address')

  const refreshing = await createUser(app)
  const pair = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: refreshing.username, password: refreshing.password } })
  const refresh = pair.json().refresh as string
  for (let i = 0; i < 20; i++) t.equal(await asUser(t, app, refreshing, refresh, from), BAD_CREDENTIALS, `refresh JWT ${i + 1}: CONNACK 4`)
  t.equal(await asUser(t, app, refreshing, refreshing.jwt, from), ACCEPTED, 'after 20 refresh JWTs (signed here) the user connects from the same address')

  // The control: JWTs with a bad signature do count, so the limit was on.
  const guessed = await createUser(app)
  for (let i = 0; i < 3; i++) await asUser(t, app, guessed, jwtOf(guessed, 'another-secret-another-secret-0123456789'), from)
  t.equal(await asUser(t, app, guessed, guessed.jwt, from), NOT_AUTHORIZED, 'the control: after 3 bad signatures that user is blocked at that address')
})
