// Log-in limits (CONTRACT §13): failed log-ins per client address, across
// both token endpoints and MQTT CONNECT, from real sockets bound to several
// loopback addresses.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { connackFrom, httpFrom, type HttpAnswer } from '../addresses.js'
import { createRobot, createUser, type TestRobot, type TestUser } from '../factory.js'
import { build } from '../helper.js'
import { robotToken, TLS_SETTINGS, TLS_TRANSPORTS } from '../mqtt.js'

const LIMIT = 3
const WINDOW = 2
const NOT_AUTHORIZED = 5
const BAD_CREDENTIALS = 4

async function setup (t: Test, overrides: Record<string, string> = {}): Promise<{ app: FastifyInstance, user: TestUser, robot: TestRobot }> {
  const app = await build(t, { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_WINDOW: String(WINDOW), ...overrides })
  return { app, user: await createUser(app), robot: await createRobot(app) }
}

const userLogin = async (app: FastifyInstance, from: string, user: TestUser, password = user.password, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
  await httpFrom(app, from, 'POST', '/users/obtain_token/', { username: user.username, password }, headers)
const robotLogin = async (app: FastifyInstance, from: string, robot: TestRobot, secret = robot.secret): Promise<HttpAnswer> =>
  await httpFrom(app, from, 'POST', '/robots/robot/obtain_token', { serial: robot.serial, token: secret })

function assertBlocked (t: Test, res: HttpAnswer, what: string): void {
  t.equal(res.statusCode, 429, `${what}: 429`)
  t.equal(res.body.code, 'UNITED_TOO_MANY_ATTEMPTS', `${what}: the contract's code`)
  t.equal(res.body.statusCode, 429)
  t.equal(res.body.error, 'Too Many Requests')
  const retry = Number(res.headers['retry-after'])
  t.ok(Number.isInteger(retry) && retry >= 1 && retry <= WINDOW, `${what}: Retry-After in seconds (${String(res.headers['retry-after'])})`)
  t.notOk('access' in res.body || 'access_token' in res.body, `${what}: no token`)
}

const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms) }) }

t.test('user log-in: LIMIT wrong passwords are refused with 401, then the address is blocked, right password included; others are not', async (t) => {
  const { app, user } = await setup(t)
  for (let i = 0; i < LIMIT; i++) t.equal((await userLogin(app, '127.0.0.2', user, 'wrong')).statusCode, 401, `wrong password ${i + 1}: 401`)
  assertBlocked(t, await userLogin(app, '127.0.0.2', user), 'the right password from the blocked address')
  assertBlocked(t, await userLogin(app, '127.0.0.2', user, 'wrong'), 'a wrong one')
  assertBlocked(t, await httpFrom(app, '127.0.0.2', 'POST', '/users/obtain_token/', '{"username":'), 'a malformed body (refused before it is parsed)')
  t.equal((await userLogin(app, '127.0.0.3', user)).statusCode, 200, 'another address logs in')
  t.equal((await userLogin(app, '127.0.0.3', user, 'wrong')).statusCode, 401, 'and its own failures start from zero')
  await pause(WINDOW * 1000 + 100)
  t.equal((await userLogin(app, '127.0.0.2', user)).statusCode, 200, 'after the window the address logs in again')
})

t.test('robot log-in: the same limit on /robots/robot/obtain_token', async (t) => {
  const { app, robot } = await setup(t)
  for (let i = 0; i < LIMIT; i++) t.equal((await robotLogin(app, '127.0.0.4', robot, 'f'.repeat(48))).statusCode, 401, `wrong secret ${i + 1}: 401`)
  assertBlocked(t, await robotLogin(app, '127.0.0.4', robot), 'the right secret from the blocked address')
  t.equal((await robotLogin(app, '127.0.0.5', robot)).statusCode, 201, 'another address obtains a token')
})

t.test('the endpoints and MQTT share one count per address', async (t) => {
  const { app, user, robot } = await setup(t)
  t.equal((await userLogin(app, '127.0.0.6', user, 'wrong')).statusCode, 401)
  t.equal((await robotLogin(app, '127.0.0.6', robot, 'wrong')).statusCode, 401)
  t.equal(await connackFrom(t, app, '127.0.0.6', 'tcp', { username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, 'a bad MQTT CONNECT is the third failure')
  assertBlocked(t, await robotLogin(app, '127.0.0.6', robot), 'robot endpoint')
  assertBlocked(t, await userLogin(app, '127.0.0.6', user), 'user endpoint')
})

for (const transport of TLS_TRANSPORTS) {
  t.test(`${transport}: MQTT CONNECTs from a blocked address get CONNACK 5, good credentials too; other addresses connect`, async (t) => {
    const { app, user, robot } = await setup(t, transport === 'tls' ? TLS_SETTINGS : {})
    for (let i = 0; i < LIMIT; i++) {
      t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: user.username, password: 'not-a-jwt' }), BAD_CREDENTIALS, `bad CONNECT ${i + 1}: CONNACK 4`)
    }
    const token = await robotToken(app, robot)
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'a valid robot token: CONNACK 5')
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: user.username, password: user.jwt }), NOT_AUTHORIZED, 'a valid JWT: CONNACK 5')
    assertBlocked(t, await userLogin(app, '127.0.0.7', user), 'and the HTTP endpoints')
    t.equal(await connackFrom(t, app, '127.0.0.8', transport, { username: robot.uuid, password: token }), 0, 'another address connects')
  })
}

t.test('successful log-ins do not count', async (t) => {
  const { app, user, robot } = await setup(t)
  for (let i = 0; i < LIMIT * 2; i++) t.equal((await userLogin(app, '127.0.0.9', user)).statusCode, 200)
  for (let i = 0; i < LIMIT * 2; i++) t.equal((await robotLogin(app, '127.0.0.9', robot)).statusCode, 201)
  t.equal(await connackFrom(t, app, '127.0.0.9', 'tcp', { username: user.username, password: user.jwt }), 0)
  for (let i = 0; i < LIMIT - 1; i++) t.equal((await userLogin(app, '127.0.0.9', user, 'wrong')).statusCode, 401)
  t.equal((await userLogin(app, '127.0.0.9', user)).statusCode, 200, 'LIMIT - 1 failures leave the address free')
})

t.test('AUTH_FAIL_LIMIT=0 turns the limit off', async (t) => {
  const { app, user } = await setup(t, { AUTH_FAIL_LIMIT: '0' })
  for (let i = 0; i < 12; i++) t.equal((await userLogin(app, '127.0.0.10', user, 'wrong')).statusCode, 401)
  t.equal((await userLogin(app, '127.0.0.10', user)).statusCode, 200)
})

t.test('behind a trusted proxy the address is the one the proxy appended to X-Forwarded-For', async (t) => {
  const { app, user } = await setup(t, { TRUST_PROXY: 'true' })
  for (let i = 0; i < LIMIT; i++) {
    // The client writes its own X-Forwarded-For, changing each time; the proxy appends the real one.
    t.equal((await userLogin(app, '127.0.0.11', user, 'wrong', { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.5` })).statusCode, 401)
  }
  assertBlocked(t, await userLogin(app, '127.0.0.11', user, user.password, { 'x-forwarded-for': '198.51.100.99, 203.0.113.5' }), 'a forged first entry does not escape the limit')
  t.equal((await userLogin(app, '127.0.0.11', user, user.password, { 'x-forwarded-for': '203.0.113.6' })).statusCode, 200, 'another client behind the same proxy logs in')
})

t.test('failed API log-ins are audited, coalesced per address and window', async (t) => {
  const { app, user, robot } = await setup(t)
  for (let i = 0; i < 10; i++) await userLogin(app, '127.0.0.12', user, 'wrong')
  for (let i = 0; i < 10; i++) await robotLogin(app, '127.0.0.13', robot, 'wrong')
  const entries = async (): Promise<Array<{ action: string, ip: string | null, details: Record<string, unknown> | null }>> =>
    (await app.services.audit.list({ limit: 100 })).items.filter((e) => e.action.endsWith('login_failed') || e.action === 'auth.login_blocked')
  let seen = await entries()
  for (let i = 0; i < 50 && seen.length < 4; i++) { await pause(20); seen = await entries() }
  const of = (ip: string) => seen.filter((e) => e.ip === ip).map((e) => e.action).sort()
  t.same(of('127.0.0.12'), ['auth.login_blocked', 'user.login_failed'], 'ten bad user log-ins: two entries')
  t.same(of('127.0.0.13'), ['auth.login_blocked', 'robot.login_failed'], 'ten bad robot log-ins: two entries')
  const failed = seen.find((e) => e.action === 'user.login_failed')
  t.equal(failed?.details?.username, user.username, 'the first failure names the account tried')
  t.equal(failed?.details?.via, 'api')
  t.equal(seen.find((e) => e.action === 'auth.login_blocked' && e.ip === '127.0.0.12')?.details?.failures, LIMIT, 'the block says how many failures caused it')
})


t.test('more password checks than the queue holds: 503 UNITED_BUSY with Retry-After, not a 401 nor a counted failure', async (t) => {
  const { app, user } = await setup(t, { AUTH_FAIL_LIMIT: '1000' })
  const answers = await Promise.all(Array.from({ length: 100 }, async () =>
    await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: 'wrong' } })))
  const busy = answers.filter((a) => a.statusCode === 503)
  t.ok(answers.every((a) => a.statusCode === 401 || a.statusCode === 503), 'only 401 and 503, never a 500')
  t.ok(busy.length > 0, `some are refused as busy (${busy.length})`)
  t.same(busy[0]?.json(), { statusCode: 503, error: 'Service Unavailable', message: 'too many log-ins are being checked right now; try again shortly', code: 'UNITED_BUSY' })
  t.equal(busy[0]?.headers['retry-after'], '1')
  const failed = (await app.services.audit.list({ limit: 100 })).items.find((e) => e.action === 'user.login_failed')
  t.ok(failed !== undefined, 'the wrong passwords that were checked are counted')
  t.equal((await userLogin(app, '127.0.0.14', user)).statusCode, 200, 'afterwards the right password logs in')
})
