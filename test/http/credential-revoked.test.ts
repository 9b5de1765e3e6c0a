// Stale credentials at the two token endpoints: a credential that was valid
// and has been revoked — the right secret of a disabled robot, a robot secret
// rotated out (remembered 7 days after its grace period), the right password
// of an inactive user — gets 401 UNITED_CREDENTIAL_REVOKED and counts toward
// no log-in limit. A wrong secret or password for the same robot or user
// still gets the ordinary 401. Real sockets from chosen loopback addresses;
// the rows are read and aged in the database itself.
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t from 'tap'
import { httpFrom, type HttpAnswer } from '../addresses.js'
import { createRobot, createUser, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'

const DAY_MS = 86_400_000

const robotLogin = async (app: FastifyInstance, robot: { serial: string }, secret: string, from = '127.0.0.1'): Promise<HttpAnswer> =>
  await httpFrom(app, from, 'POST', '/robots/robot/obtain_token', { serial: robot.serial, token: secret })
const userLogin = async (app: FastifyInstance, user: TestUser, password = user.password, from = '127.0.0.1'): Promise<HttpAnswer> =>
  await httpFrom(app, from, 'POST', '/users/obtain_token/', { username: user.username, password })

const REVOKED = { statusCode: 401, error: 'Unauthorized', message: 'this credential was revoked', code: 'UNITED_CREDENTIAL_REVOKED' }

/** Moves the end of the robot's previous secret's grace period to `msAgo` ms in the past. */
async function ageGrace (app: FastifyInstance, robot: TestRobot, msAgo: number): Promise<void> {
  await app.db.sequelize.query('UPDATE robots SET previous_secret_expires_at = ? WHERE uuid = ?', { replacements: [new Date(Date.now() - msAgo), robot.uuid], type: QueryTypes.UPDATE })
}

async function rotate (app: FastifyInstance, robot: TestRobot, graceSeconds = 0): Promise<string> {
  return (await app.services.robots.rotate(robot.uuid, { actor: null }, graceSeconds)).token
}

t.test('a disabled robot: its right secret is revoked, a wrong one the ordinary 401; re-enabled, it logs in', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  t.equal((await robotLogin(app, robot, robot.secret)).statusCode, 201, 'a moment before: the secret works')
  await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null })
  const right = await robotLogin(app, robot, robot.secret)
  t.same(right.body, REVOKED, 'the right secret: 401 UNITED_CREDENTIAL_REVOKED')
  t.notOk(JSON.stringify(right.body).includes(robot.uuid), 'the uuid is not revealed')
  const wrong = await robotLogin(app, robot, 'f'.repeat(48))
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.body.code, 'UNITED_ROBOT_AUTH_FAILED', 'a wrong secret: the ordinary refusal')
  t.same(wrong.body, (await robotLogin(app, { serial: 'NO-SUCH-SERIAL' }, robot.secret)).body, 'as for an unknown serial')
  await app.services.robots.update(robot.uuid, { enabled: true }, { actor: null })
  t.equal((await robotLogin(app, robot, robot.secret)).statusCode, 201, 're-enabled: the secret works again')
})

t.test('a secret rotated out without a grace period is revoked for 7 days, then an ordinary wrong secret', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  t.equal((await robotLogin(app, robot, robot.secret)).statusCode, 201, 'a moment before: the secret works')
  const fresh = await rotate(app, robot)
  t.same((await robotLogin(app, robot, robot.secret)).body, REVOKED, 'the old secret: revoked')
  t.equal((await robotLogin(app, robot, 'f'.repeat(48))).body.code, 'UNITED_ROBOT_AUTH_FAILED', 'a wrong secret: the ordinary refusal')
  t.equal((await robotLogin(app, other, robot.secret)).body.code, 'UNITED_ROBOT_AUTH_FAILED', 'the old secret with another serial: the ordinary refusal')
  t.equal((await robotLogin(app, robot, fresh)).statusCode, 201, 'the new secret works')
  await ageGrace(app, robot, 6 * DAY_MS)
  t.same((await robotLogin(app, robot, robot.secret)).body, REVOKED, '6 days later: still revoked')
  await ageGrace(app, robot, 8 * DAY_MS)
  t.equal((await robotLogin(app, robot, robot.secret)).body.code, 'UNITED_ROBOT_AUTH_FAILED', '8 days later: forgotten, an ordinary wrong secret')
  t.equal((await robotLogin(app, robot, fresh)).statusCode, 201, 'the new secret still works')
})

t.test('a secret rotated out with a grace period works during it and is revoked after it', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const fresh = await rotate(app, robot, 3600)
  t.equal((await robotLogin(app, robot, robot.secret)).statusCode, 201, 'during the grace period the old secret works')
  await ageGrace(app, robot, 1000)
  t.same((await robotLogin(app, robot, robot.secret)).body, REVOKED, 'once it has passed: revoked')
  t.equal(await app.services.robots.previousSecretExpiry(robot.uuid), null, 'and no previous secret is said to work')
  t.equal((await robotLogin(app, robot, fresh)).statusCode, 201)
  // Only one previous secret is remembered: rotating again forgets the first one.
  const third = await rotate(app, robot)
  t.equal((await robotLogin(app, robot, robot.secret)).body.code, 'UNITED_ROBOT_AUTH_FAILED', 'rotated again: the first secret is forgotten')
  t.same((await robotLogin(app, robot, fresh)).body, REVOKED, 'the second is the one remembered')
  t.equal((await robotLogin(app, robot, third)).statusCode, 201)
})

t.test('an admin-typed (scrypt) secret rotated out is recognized too; a wrong secret then costs a second check but answers the same', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app, { secret: 'typed-by-an-admin' })
  await rotate(app, robot)
  const [row] = await app.db.sequelize.query<{ previous_secret_hash: string }>('SELECT previous_secret_hash FROM robots WHERE uuid = ?', { replacements: [robot.uuid], type: QueryTypes.SELECT })
  t.match(row?.previous_secret_hash, /^scrypt\$/, 'the previous hash is kept in its scheme')
  t.same((await robotLogin(app, robot, 'typed-by-an-admin')).body, REVOKED, 'the old typed secret: revoked')
  t.equal((await robotLogin(app, robot, 'typed-by-an-admin ')).body.code, 'UNITED_ROBOT_AUTH_FAILED', 'a near miss: the ordinary refusal')
})

t.test('a deleted robot leaves nothing behind: its secret gets the ordinary 401', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  await app.services.robots.remove(robot.uuid, { actor: null })
  const res = await robotLogin(app, robot, robot.secret)
  t.equal(res.statusCode, 401)
  t.equal(res.body.code, 'UNITED_ROBOT_AUTH_FAILED')
})

t.test('an inactive user: the right password is revoked, a wrong one the ordinary 401; REST keeps its answers', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const before = await userLogin(app, user)
  t.equal(before.statusCode, 200, 'a moment before: the password works')
  await app.services.users.update(user.id, { isActive: false }, { actor: null })
  const right = await userLogin(app, user)
  t.same(right.body, REVOKED, 'the right password: 401 UNITED_CREDENTIAL_REVOKED')
  t.equal((await userLogin(app, user, 'not-the-password')).body.code, 'UNITED_INVALID_CREDENTIALS', 'a wrong password: the ordinary refusal')
  // A request is not a log-in: a JWT on REST keeps the answers it had.
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(before.body.access as string) })
  t.equal(me.json().code, 'UNITED_USER_INACTIVE', 'REST: the inactive user\'s JWT')
  await app.services.users.update(user.id, { isActive: true }, { actor: null })
  const stale = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(before.body.access as string) })
  t.equal(stale.json().code, 'UNITED_TOKEN_INVALID', 'REST: a JWT from before the deactivation, after reactivation')
  t.equal((await userLogin(app, user)).statusCode, 200, 'reactivated: the password works')
})

t.test('stale credentials count toward no limit: after 20 from one address, that identity still logs in there and stale ones are still told apart', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '2', AUTH_FAIL_WINDOW: '60' })
  const from = '127.0.0.21'

  // a robot's rotated-out secret
  const robot = await createRobot(app)
  const fresh = await rotate(app, robot)
  for (let i = 0; i < 20; i++) t.equal((await robotLogin(app, robot, robot.secret, from)).body.code, 'UNITED_CREDENTIAL_REVOKED', `rotated-out secret ${i + 1}`)
  t.same((await robotLogin(app, robot, robot.secret, from)).body, REVOKED, 'still revoked, not 429')
  t.equal((await robotLogin(app, robot, fresh, from)).statusCode, 201, 'the robot logs in with its new secret from the same address')
  t.equal((await robotLogin(app, robot, 'f'.repeat(48), from)).statusCode, 401, 'a wrong secret then: 401, not 429')

  // a disabled robot's secret
  const disabled = await createRobot(app)
  await app.services.robots.update(disabled.uuid, { enabled: false }, { actor: null })
  for (let i = 0; i < 20; i++) t.equal((await robotLogin(app, disabled, disabled.secret, from)).body.code, 'UNITED_CREDENTIAL_REVOKED', `disabled robot ${i + 1}`)
  await app.services.robots.update(disabled.uuid, { enabled: true }, { actor: null })
  t.equal((await robotLogin(app, disabled, disabled.secret, from)).statusCode, 201, 're-enabled, it logs in from the same address')

  // an inactive user's password
  const user = await createUser(app)
  await app.services.users.update(user.id, { isActive: false }, { actor: null })
  for (let i = 0; i < 20; i++) t.equal((await userLogin(app, user, user.password, from)).body.code, 'UNITED_CREDENTIAL_REVOKED', `inactive user ${i + 1}`)
  t.same((await userLogin(app, user, user.password, from)).body, REVOKED, 'still revoked, not 429')
  t.equal((await userLogin(app, user, 'not-the-password', from)).statusCode, 401, 'a wrong password then: 401, not 429')
  await app.services.users.update(user.id, { isActive: true }, { actor: null })
  t.equal((await userLogin(app, user, user.password, from)).statusCode, 200, 'reactivated, the user logs in from the same address')

  // The control: wrong secrets do count, so the limit was on.
  const guessed = await createRobot(app)
  for (let i = 0; i < 3; i++) await robotLogin(app, guessed, 'f'.repeat(48), from)
  t.equal((await robotLogin(app, guessed, guessed.secret, from)).statusCode, 429, 'the control: 3 wrong secrets block that robot at that address')
})
