// Log-in limits: failed log-ins per identity and address, and per address,
// across both token endpoints and MQTT CONNECT, from real sockets bound to
// several loopback addresses.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { connackFrom, httpFrom, type HttpAnswer } from '../addresses.js'
import { createRobot, createUser, type TestRobot, type TestUser } from '../factory.js'
import { build } from '../helper.js'
import { robotToken, TLS_SETTINGS, TLS_TRANSPORTS } from '../mqtt.js'

const LIMIT = 3
const WINDOW = 5
const NOT_AUTHORIZED = 5
const BAD_CREDENTIALS = 4

const ADDRESS_LIMIT = 8

async function setup (t: Test, overrides: Record<string, string> = {}): Promise<{ app: FastifyInstance, user: TestUser, other: TestUser, robot: TestRobot }> {
  const app = await build(t, { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_ADDRESS_LIMIT: String(ADDRESS_LIMIT), AUTH_FAIL_WINDOW: String(WINDOW), ...overrides })
  return { app, user: await createUser(app), other: await createUser(app), robot: await createRobot(app) }
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

t.test('user log-in: LIMIT wrong passwords block that user at that address, right password included; other users, robots and addresses are not', async (t) => {
  const { app, user, other, robot } = await setup(t)
  for (let i = 0; i < LIMIT; i++) t.equal((await userLogin(app, '127.0.0.2', user, 'wrong')).statusCode, 401, `wrong password ${i + 1}: 401`)
  assertBlocked(t, await userLogin(app, '127.0.0.2', user), 'the right password of that user from that address')
  assertBlocked(t, await userLogin(app, '127.0.0.2', user, 'wrong'), 'a wrong one')
  assertBlocked(t, await userLogin(app, '127.0.0.2', { ...user, username: user.username.toUpperCase() }), 'the same username in other case')
  t.equal((await userLogin(app, '127.0.0.2', other)).statusCode, 200, 'another user at the same address logs in')
  t.equal((await robotLogin(app, '127.0.0.2', robot)).statusCode, 201, 'a robot at the same address obtains a token')
  t.equal((await userLogin(app, '127.0.0.3', user)).statusCode, 200, 'the same user from another address logs in')
  t.equal((await userLogin(app, '127.0.0.3', user, 'wrong')).statusCode, 401, 'and its own failures there start from zero')
  await pause(WINDOW * 1000 + 100)
  t.equal((await userLogin(app, '127.0.0.2', user)).statusCode, 200, 'after the window the user logs in again from the first address')
})

t.test('robot log-in: the same limit per serial on /robots/robot/obtain_token', async (t) => {
  const { app, user, robot } = await setup(t)
  const twin = await createRobot(app)
  for (let i = 0; i < LIMIT; i++) t.equal((await robotLogin(app, '127.0.0.4', robot, 'f'.repeat(48))).statusCode, 401, `wrong secret ${i + 1}: 401`)
  assertBlocked(t, await robotLogin(app, '127.0.0.4', robot), 'the right secret of that serial from that address')
  t.equal((await robotLogin(app, '127.0.0.4', twin)).statusCode, 201, 'another robot at the same address obtains a token')
  t.equal((await userLogin(app, '127.0.0.4', user)).statusCode, 200, 'a user at the same address logs in')
  t.equal((await robotLogin(app, '127.0.0.5', robot)).statusCode, 201, 'the same serial from another address obtains a token')
})

t.test('a username is one identity on the endpoint and on MQTT', async (t) => {
  const { app, user, robot } = await setup(t)
  t.equal((await userLogin(app, '127.0.0.6', user, 'wrong')).statusCode, 401)
  t.equal(await connackFrom(t, app, '127.0.0.6', 'tcp', { username: user.username, password: 'not-a-jwt' }), BAD_CREDENTIALS, 'a bad MQTT CONNECT with the username')
  t.equal(await connackFrom(t, app, '127.0.0.6', 'tcp', { username: user.username.toUpperCase(), password: 'a.b.c' }), BAD_CREDENTIALS, 'and one with the username in other case: the third failure')
  assertBlocked(t, await userLogin(app, '127.0.0.6', user), 'the user endpoint')
  t.equal(await connackFrom(t, app, '127.0.0.6', 'tcp', { username: user.username, password: user.jwt }), NOT_AUTHORIZED, 'a valid JWT of that user on MQTT: CONNACK 5')
  t.equal((await robotLogin(app, '127.0.0.6', robot)).statusCode, 201, 'a robot at the same address is not affected')
})

for (const transport of TLS_TRANSPORTS) {
  t.test(`${transport}: CONNECTs of a blocked identity get CONNACK 5, good credentials too; other identities at the address connect`, async (t) => {
    const { app, user, other, robot } = await setup(t, transport === 'tls' ? TLS_SETTINGS : {})
    const token = await robotToken(app, robot)
    for (let i = 0; i < LIMIT; i++) {
      t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, `bad robot token ${i + 1}: CONNACK 4`)
    }
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'that robot\'s valid token: CONNACK 5')
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: user.username, password: user.jwt }), 0, 'a user at the same address connects')
    t.equal(await connackFrom(t, app, '127.0.0.8', transport, { username: robot.uuid, password: token }), 0, 'the robot from another address connects')
    for (let i = 0; i < LIMIT; i++) {
      t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: other.username, password: 'not-a-jwt' }), BAD_CREDENTIALS, `bad JWT ${i + 1}: CONNACK 4`)
    }
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: other.username, password: other.jwt }), NOT_AUTHORIZED, 'that user\'s valid JWT: CONNACK 5')
    assertBlocked(t, await userLogin(app, '127.0.0.7', other), 'and the user endpoint, for that user')
    t.equal(await connackFrom(t, app, '127.0.0.7', transport, { username: user.username, password: user.jwt }), 0, 'the first user still connects')
  })
}

t.test('AUTH_FAIL_ADDRESS_LIMIT failures across identities block the whole address; blocked attempts do not count', async (t) => {
  const { app, user, robot } = await setup(t)
  // One identity blocked at the address: its blocked attempts do not count toward the address.
  for (let i = 0; i < LIMIT; i++) t.equal((await userLogin(app, '127.0.0.9', { ...user, username: 'ghost' }, 'wrong')).statusCode, 401)
  const refused = await Promise.all(Array.from({ length: 3 * ADDRESS_LIMIT }, async () => await userLogin(app, '127.0.0.9', { ...user, username: 'ghost' }, 'wrong')))
  refused.forEach((res, i) => { assertBlocked(t, res, `blocked attempt ${i + 1}`) })
  t.equal((await userLogin(app, '127.0.0.9', user)).statusCode, 200, 'LIMIT failures of the address so far: others log in')
  // Then a guess of a new name each time: the address limit.
  for (let i = LIMIT; i < ADDRESS_LIMIT; i++) t.equal((await userLogin(app, '127.0.0.9', { ...user, username: `guess${i}` }, 'wrong')).statusCode, 401, `failure ${i + 1} of the address`)
  assertBlocked(t, await userLogin(app, '127.0.0.9', user), 'a valid user at the blocked address')
  assertBlocked(t, await robotLogin(app, '127.0.0.9', robot), 'a valid robot')
  assertBlocked(t, await httpFrom(app, '127.0.0.9', 'POST', '/users/obtain_token/', '{"username":'), 'a malformed body (refused before it is parsed)')
  t.equal(await connackFrom(t, app, '127.0.0.9', 'tcp', { username: robot.uuid, password: await robotToken(app, robot) }), NOT_AUTHORIZED, 'an MQTT CONNECT with a valid token: CONNACK 5')
  t.equal((await userLogin(app, '127.0.0.10', user)).statusCode, 200, 'another address logs in')
  await pause(WINDOW * 1000 + 100)
  t.equal((await userLogin(app, '127.0.0.9', user)).statusCode, 200, 'after the window the address logs in again')
})

t.test('successful log-ins do not count', async (t) => {
  const { app, user, robot } = await setup(t)
  for (let i = 0; i < ADDRESS_LIMIT * 2; i++) t.equal((await userLogin(app, '127.0.0.11', user)).statusCode, 200)
  for (let i = 0; i < ADDRESS_LIMIT * 2; i++) t.equal((await robotLogin(app, '127.0.0.11', robot)).statusCode, 201)
  t.equal(await connackFrom(t, app, '127.0.0.11', 'tcp', { username: user.username, password: user.jwt }), 0)
  for (let i = 0; i < LIMIT - 1; i++) t.equal((await userLogin(app, '127.0.0.11', user, 'wrong')).statusCode, 401)
  t.equal((await userLogin(app, '127.0.0.11', user)).statusCode, 200, 'LIMIT - 1 failures leave the user free')
})

t.test('AUTH_FAIL_LIMIT=0 and AUTH_FAIL_ADDRESS_LIMIT=0 turn the limits off, each on its own', async (t) => {
  const { app, user } = await setup(t, { AUTH_FAIL_LIMIT: '0', AUTH_FAIL_ADDRESS_LIMIT: '0' })
  for (let i = 0; i < 12; i++) t.equal((await userLogin(app, '127.0.0.12', user, 'wrong')).statusCode, 401)
  t.equal((await userLogin(app, '127.0.0.12', user)).statusCode, 200)
  const identityOnly = await setup(t, { AUTH_FAIL_ADDRESS_LIMIT: '0' })
  for (let i = 0; i < 12; i++) t.equal((await userLogin(identityOnly.app, '127.0.0.12', { ...user, username: `guess${i}` }, 'wrong')).statusCode, 401, 'new names: no address limit')
  t.equal((await userLogin(identityOnly.app, '127.0.0.12', identityOnly.user)).statusCode, 200)
  const addressOnly = await setup(t, { AUTH_FAIL_LIMIT: '0' })
  for (let i = 0; i < ADDRESS_LIMIT; i++) t.equal((await userLogin(addressOnly.app, '127.0.0.12', addressOnly.user, 'wrong')).statusCode, 401, 'one name: no identity limit')
  assertBlocked(t, await userLogin(addressOnly.app, '127.0.0.12', addressOnly.other), 'but the address limit')
})

t.test('behind a trusted proxy the address is the one the proxy appended to X-Forwarded-For, without port or brackets', async (t) => {
  const { app, user, other } = await setup(t, { TRUST_PROXY: 'true' })
  for (let i = 0; i < LIMIT; i++) {
    // The client writes its own X-Forwarded-For, changing each time; the proxy appends the real one.
    t.equal((await userLogin(app, '127.0.0.13', user, 'wrong', { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.5` })).statusCode, 401)
  }
  assertBlocked(t, await userLogin(app, '127.0.0.13', user, user.password, { 'x-forwarded-for': '198.51.100.99, 203.0.113.5' }), 'a forged first entry does not escape the limit')
  t.equal((await userLogin(app, '127.0.0.13', user, user.password, { 'x-forwarded-for': '203.0.113.6' })).statusCode, 200, 'another client behind the same proxy logs in')

  // Balancers that write the client's port: each port is the same address.
  for (let i = 0; i < LIMIT; i++) {
    t.equal((await userLogin(app, '127.0.0.13', other, 'wrong', { 'x-forwarded-for': `192.0.2.9:${40000 + i}` })).statusCode, 401)
  }
  assertBlocked(t, await userLogin(app, '127.0.0.13', other, other.password, { 'x-forwarded-for': '192.0.2.9:50123' }), 'a new port of the same address')
  assertBlocked(t, await userLogin(app, '127.0.0.13', other, other.password, { 'x-forwarded-for': '192.0.2.9' }), 'the address without a port')
  // IPv6 in brackets, with and without a port, counts as its /64 like the bare form.
  const v6 = ['[2001:db8::5]', '2001:db8::6', '[2001:db8::7]:443']
  for (const forwarded of v6) t.equal((await userLogin(app, '127.0.0.13', other, 'wrong', { 'x-forwarded-for': forwarded })).statusCode, 401, forwarded)
  assertBlocked(t, await userLogin(app, '127.0.0.13', other, other.password, { 'x-forwarded-for': '[2001:db8::ffff]:8080' }), 'another address of the same /64')
  t.equal((await userLogin(app, '127.0.0.13', other, other.password, { 'x-forwarded-for': '[2001:db8:0:1::5]' })).statusCode, 200, 'another /64 logs in')
})

t.test('failed API log-ins are audited, coalesced per address and window', async (t) => {
  const { app, user, robot } = await setup(t)
  await Promise.all(Array.from({ length: LIMIT + 5 }, async () => await userLogin(app, '127.0.0.14', user, 'wrong')))
  await Promise.all(Array.from({ length: LIMIT + 5 }, async () => await robotLogin(app, '127.0.0.15', robot, 'wrong')))
  const entries = async (): Promise<Array<{ action: string, ip: string | null, details: Record<string, unknown> | null }>> =>
    (await app.services.audit.list({ limit: 100 })).items.filter((e) => e.action.endsWith('login_failed') || e.action === 'auth.login_blocked')
  let seen = await entries()
  for (let i = 0; i < 50 && seen.length < 4; i++) { await pause(20); seen = await entries() }
  const of = (ip: string) => seen.filter((e) => e.ip === ip).map((e) => e.action).sort()
  t.same(of('127.0.0.14'), ['auth.login_blocked', 'user.login_failed'], 'eight bad user log-ins: two entries')
  t.same(of('127.0.0.15'), ['auth.login_blocked', 'robot.login_failed'], 'eight bad robot log-ins: two entries')
  const failed = seen.find((e) => e.action === 'user.login_failed')
  t.equal(failed?.details?.username, user.username, 'the first failure names the account tried')
  t.equal(failed?.details?.via, 'api')
  const blocked = seen.find((e) => e.action === 'auth.login_blocked' && e.ip === '127.0.0.14')
  t.equal(blocked?.details?.failures, LIMIT, 'the block says how many failures caused it')
  t.equal(blocked?.details?.scope, 'identity', 'and that it blocks one identity')
  t.equal(blocked?.details?.username, user.username, 'which one')
})

t.test('a refusal of a blocked log-in is held a second before it is sent (clients that ask again at once)', async (t) => {
  const { app, robot } = await setup(t)
  for (let i = 0; i < LIMIT; i++) await robotLogin(app, '127.0.0.22', robot, 'wrong')
  const started = Date.now()
  assertBlocked(t, await robotLogin(app, '127.0.0.22', robot), 'blocked')
  t.ok(Date.now() - started >= 900, 'answered after about a second, not at once')
  const connecting = Date.now()
  t.equal(await connackFrom(t, app, '127.0.0.22', 'tcp', { username: 'ghost', password: 'x' }), BAD_CREDENTIALS, 'a CONNECT of another identity is answered')
  for (let i = 1; i < LIMIT; i++) await connackFrom(t, app, '127.0.0.22', 'tcp', { username: 'ghost', password: 'x' })
  const refusedAt = Date.now()
  t.equal(await connackFrom(t, app, '127.0.0.22', 'tcp', { username: 'ghost', password: 'x' }), NOT_AUTHORIZED, 'then blocked: CONNACK 5')
  t.ok(Date.now() - refusedAt >= 900, `held too (${Date.now() - refusedAt} ms; the ${LIMIT} counted refusals took ${refusedAt - connecting} ms)`)
})

t.test('concurrent wrong secrets cannot get past the limit: each is counted before it is checked', async (t) => {
  const { app, robot } = await setup(t, { AUTH_FAIL_LIMIT: '10', AUTH_FAIL_ADDRESS_LIMIT: '100' })
  const answers = await Promise.all(Array.from({ length: 40 }, async () => await robotLogin(app, '127.0.0.16', robot, 'f'.repeat(48))))
  const codes = answers.map((a) => a.statusCode)
  t.equal(codes.filter((c) => c === 401).length, 10, 'exactly AUTH_FAIL_LIMIT secrets were checked')
  t.equal(codes.filter((c) => c === 429).length, 30, 'the rest were refused unchecked')

  // Across identities, against the address limit.
  const app2 = (await setup(t, { AUTH_FAIL_LIMIT: '10', AUTH_FAIL_ADDRESS_LIMIT: '10' })).app
  const guesses = await Promise.all(Array.from({ length: 40 }, async (_, i) => await robotLogin(app2, '127.0.0.16', { ...robot, serial: `guess-${i}` }, 'f'.repeat(48))))
  t.equal(guesses.filter((a) => a.statusCode === 401).length, 10, 'exactly AUTH_FAIL_ADDRESS_LIMIT guesses of forty names were checked')

  // Passwords go through the hashing queue: still no more than the limit checked.
  const { app: app3, user } = await setup(t, { AUTH_FAIL_LIMIT: '10', AUTH_FAIL_ADDRESS_LIMIT: '100' })
  const logins = await Promise.all(Array.from({ length: 40 }, async () => await userLogin(app3, '127.0.0.16', user, 'wrong')))
  const checked = logins.filter((a) => a.statusCode === 401).length
  t.ok(checked >= 1 && checked <= 10, `at most AUTH_FAIL_LIMIT passwords checked (${checked})`)
  t.ok(logins.every((a) => [401, 429, 503].includes(a.statusCode)), 'only 401, 429 and 503 (busy)')
})

t.test('more password checks than an address may queue: 503 UNITED_BUSY with Retry-After, counted toward the address only', async (t) => {
  const { app, user, other } = await setup(t, { AUTH_FAIL_LIMIT: '1000', AUTH_FAIL_ADDRESS_LIMIT: '30' })
  const answers = await Promise.all(Array.from({ length: 100 }, async () => await userLogin(app, '127.0.0.17', user, 'wrong')))
  const busy = answers.filter((a) => a.statusCode === 503)
  t.ok(answers.every((a) => [401, 429, 503].includes(a.statusCode)), 'only 401, 429 and 503, never a 500')
  t.ok(busy.length > 0, `some are refused as busy (${busy.length})`)
  t.same(busy[0]?.body, { statusCode: 503, error: 'Service Unavailable', message: 'too many log-ins are being checked right now; try again shortly', code: 'UNITED_BUSY' })
  t.equal(busy[0]?.headers['retry-after'], '1')
  t.ok(answers.some((a) => a.statusCode === 429), 'busy refusals count toward the address: it ends up blocked')
  assertBlocked(t, await userLogin(app, '127.0.0.17', other), 'another user at the flooding address')
  t.equal((await userLogin(app, '127.0.0.18', user)).statusCode, 200, 'the user from another address logs in')
})

t.test('the password queue takes turns among addresses: twenty flooding addresses do not keep a user or a robot out', async (t) => {
  // No limits here: the attackers are never blocked, only the queue's fairness is under test.
  const { app, user } = await setup(t, { AUTH_FAIL_LIMIT: '0', AUTH_FAIL_ADDRESS_LIMIT: '0' })
  const typed = await createRobot(app, { secret: 'an admin typed this secret' }) // scrypt, like a password
  let flooding = true
  const attacker = async (from: string): Promise<void> => {
    while (flooding) await userLogin(app, from, { ...user, username: `nobody-${from}` }, 'wrong')
  }
  const attackers = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`).flatMap((from) => Array.from({ length: 5 }, async () => { await attacker(from) }))
  await pause(500) // the queue is full by now
  const userCodes: number[] = []
  const robotCodes: number[] = []
  for (let i = 0; i < 5; i++) {
    userCodes.push((await userLogin(app, '127.0.0.19', user)).statusCode)
    robotCodes.push((await robotLogin(app, '127.0.0.20', typed)).statusCode)
  }
  flooding = false
  await Promise.all(attackers)
  t.same(userCodes, [200, 200, 200, 200, 200], 'the user logged in five times out of five')
  t.same(robotCodes, [201, 201, 201, 201, 201], 'the robot with a typed secret got five tokens out of five')
})

t.test('many valid log-ins of one identity at once all succeed: attempts being checked make others wait, not fail', async (t) => {
  const { app, user, robot } = await setup(t)
  const token = await robotToken(app, robot)
  const codes = await Promise.all([
    ...Array.from({ length: 30 }, async () => await connackFrom(t, app, '127.0.0.21', 'tcp', { username: user.username, password: user.jwt })),
    ...Array.from({ length: 30 }, async () => await connackFrom(t, app, '127.0.0.21', 'ws', { username: robot.uuid, password: token }))
  ])
  t.same(codes, codes.map(() => 0), `sixty CONNECTs of two identities (limit ${LIMIT}): all accepted`)
  const tokens = await Promise.all(Array.from({ length: 20 }, async () => await robotLogin(app, '127.0.0.21', robot)))
  t.same(tokens.map((r) => r.statusCode), tokens.map(() => 201), 'twenty token requests of one robot at once: all answered')
})

t.test('a site\'s whole fleet logging in at once from one address, far more than its limit in flight: every robot gets its token and connects', async (t) => {
  const { app } = await setup(t)
  const fleet = await Promise.all(Array.from({ length: 12 * ADDRESS_LIMIT }, async () => await createRobot(app)))
  const tokens = await Promise.all(fleet.map(async (robot) => await robotLogin(app, '127.0.0.22', robot)))
  t.same(tokens.map((r) => r.statusCode), tokens.map(() => 201), `${fleet.length} token requests at once (${ADDRESS_LIMIT} may be checked at a time): all answered`)
  const codes = await Promise.all(fleet.map(async (robot, i) => await connackFrom(t, app, '127.0.0.22', 'tcp', { username: robot.uuid, password: tokens[i]?.body.access_token as string })))
  t.same(codes, codes.map(() => 0), 'and every CONNECT accepted')
  t.notOk(await app.services.loginLimits.hasFailures('127.0.0.22'), 'nothing counted')
})
