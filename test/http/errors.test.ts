// docs/protocol.md §7: every REST error is {statusCode, error, message} (+ code) JSON,
// with no stack trace, SQL or secret in it.
import { STATUS_CODES } from 'node:http'
import type { InjectOptions } from 'fastify'
import { ConnectionRefusedError, DatabaseError } from 'sequelize'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser } from '../factory.js'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const ONE_MIB = 1024 * 1024

interface Reply { statusCode: number, headers: Record<string, unknown>, payload: string, json: () => any }

/** The docs/protocol.md §7 shape: JSON, exactly these keys, statusCode matching the status, error = reason phrase. */
function assertErrorShape (t: Test, res: Reply, status: number, label: string): void {
  t.equal(res.statusCode, status, `${label}: status`)
  t.match(res.headers['content-type'], /^application\/json/, `${label}: JSON`)
  const body = res.json()
  const keys = Object.keys(body)
  t.ok(keys.every((k) => ['statusCode', 'error', 'message', 'code'].includes(k)), `${label}: no other keys (${keys.join(',')})`)
  t.equal(body.statusCode, status, `${label}: statusCode`)
  t.equal(body.error, STATUS_CODES[status], `${label}: error is the reason phrase`)
  t.type(body.message, 'string', `${label}: message`)
  if ('code' in body) t.type(body.code, 'string', `${label}: code`)
  t.notOk(/\bat .+:\d+:\d+\)?/.test(res.payload), `${label}: no stack trace`)
}

t.test('every kind of REST error answers {statusCode, error, message, code?} as JSON', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const cases: Array<{ label: string, status: number, code?: string, req: InjectOptions }> = [
    { label: 'validation', status: 400, req: { method: 'POST', url: '/users/obtain_token/', payload: { username: 'x' } } },
    { label: 'invalid JSON', status: 400, req: { method: 'POST', url: '/users/obtain_token/', headers: { 'content-type': 'application/json' }, payload: '{"username":' } },
    { label: 'bad cursor', status: 400, code: 'UNITED_BAD_CURSOR', req: { method: 'GET', url: '/robots?cursor=zzz', headers: bearer(user.jwt) } },
    { label: 'no JWT', status: 401, code: 'UNITED_UNAUTHORIZED', req: { method: 'GET', url: '/robots' } },
    { label: 'bad JWT', status: 401, code: 'UNITED_TOKEN_INVALID', req: { method: 'GET', url: '/robots', headers: bearer('a.b.c') } },
    { label: 'bad credentials', status: 401, code: 'UNITED_INVALID_CREDENTIALS', req: { method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: 'wrong-password' } } },
    { label: 'robot auth', status: 401, code: 'UNITED_ROBOT_AUTH_FAILED', req: { method: 'POST', url: '/robots/robot/obtain_token', payload: { serial: robot.serial, token: 'wrong' } } },
    { label: 'not staff', status: 403, code: 'UNITED_STAFF_ONLY', req: { method: 'GET', url: '/admin/api/robots', headers: bearer(user.jwt) } },
    { label: 'robot not found', status: 404, code: 'UNITED_ROBOT_NOT_FOUND', req: { method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) } },
    { label: 'no route', status: 404, code: 'UNITED_NO_ROUTE', req: { method: 'GET', url: '/no/such/route' } },
    { label: 'duplicate serial', status: 409, code: 'UNITED_SERIAL_TAKEN', req: { method: 'POST', url: '/admin/api/robots', headers: bearer(staff.jwt), payload: { serial: robot.serial } } },
    { label: 'too large', status: 413, req: { method: 'POST', url: '/users/obtain_token/', headers: { 'content-type': 'application/json' }, payload: 'x'.repeat(ONE_MIB + 1) } },
    { label: 'media type', status: 415, req: { method: 'POST', url: '/users/obtain_token/', headers: { 'content-type': 'application/xml' }, payload: '<a/>' } }
  ]
  for (const c of cases) {
    const res = await app.inject(c.req)
    assertErrorShape(t, res, c.status, c.label)
    if (c.code !== undefined) t.equal(res.json().code, c.code, `${c.label}: code`)
  }
})

t.test('an unexpected error answers a bare 500: no message, SQL, stack or secret', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  app.services.robots.list = async () => { throw new Error('SELECT * FROM secret_table password=hunter2') }
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(staff.jwt) })
  assertErrorShape(t, res, 500, '500')
  t.same(res.json(), { statusCode: 500, error: 'Internal Server Error', message: 'internal server error', code: 'UNITED_INTERNAL' })
  for (const leak of ['SELECT', 'secret_table', 'hunter2', 'password', 'stack', '.ts:', 'Error:']) {
    t.notOk(res.payload.includes(leak), `no "${leak}" in the response`)
  }
})

t.test('a Sequelize query error answers a bare 500 without its SQL', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const parent = Object.assign(new Error('syntax error at or near "hunter2"'), { sql: 'SELECT secret_hash FROM robots WHERE token = \'hunter2\'', parameters: {} })
  app.services.robots.list = async () => { throw new DatabaseError(parent as any) }
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })
  t.same(res.json(), { statusCode: 500, error: 'Internal Server Error', message: 'internal server error', code: 'UNITED_INTERNAL' })
  for (const leak of ['SELECT', 'secret_hash', 'hunter2', 'syntax']) t.notOk(res.payload.includes(leak), `no "${leak}"`)
})

t.test('a 500 from a user route is as bare as one from a robot route', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  app.services.access.visibleUuids = async () => { throw new TypeError('Cannot read properties of undefined (reading \'passwordHash\')') }
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.jwt) })
  t.same(res.json(), { statusCode: 500, error: 'Internal Server Error', message: 'internal server error', code: 'UNITED_INTERNAL' })
  t.notOk(res.payload.includes('passwordHash'))
})

t.test('a database connection error answers 503 UNITED_DATABASE_UNAVAILABLE', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const expected = { statusCode: 503, error: 'Service Unavailable', message: 'database unavailable', code: 'UNITED_DATABASE_UNAVAILABLE' }

  const named = Object.assign(new Error('connect ECONNREFUSED 10.1.2.3:5432 password=hunter2'), { name: 'SequelizeConnectionRefusedError' })
  app.services.robots.list = async () => { throw named }
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(staff.jwt) })
  assertErrorShape(t, res, 503, '503')
  t.same(res.json(), expected)
  for (const leak of ['ECONNREFUSED', '10.1.2.3', '5432', 'hunter2']) t.notOk(res.payload.includes(leak), `no "${leak}"`)

  // The real Sequelize class, on another route.
  app.services.robots.get = async () => { throw new ConnectionRefusedError(new Error('connect ECONNREFUSED 10.1.2.3:5432')) }
  const one = await app.inject({ method: 'GET', url: `/robots/${(await createRobot(app)).uuid}`, headers: bearer(staff.jwt) })
  t.same(one.json(), expected)
})

t.test('a body over 1 MiB answers 413', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const json = JSON.stringify({ username: user.username, password: 'p'.repeat(ONE_MIB) })
  t.ok(Buffer.byteLength(json) > ONE_MIB)
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', headers: { 'content-type': 'application/json' }, payload: json })
  assertErrorShape(t, res, 413, 'JSON')

  const form = await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', headers: FORM, payload: `serial=a&token=${'t'.repeat(ONE_MIB)}` })
  assertErrorShape(t, form, 413, 'form')

  const robot = await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ serial: 's', token: 't'.repeat(ONE_MIB + 1) }) })
  assertErrorShape(t, robot, 413, 'robot JSON')
})

t.test('unknown body fields answer 400 instead of being dropped', async (t) => {
  const app = await build(t)
  const user = await createUser(app, { password: 'hunter2-hunter2' })
  const staff = await createStaff(app)
  const robot = await createRobot(app)

  // Good credentials plus one unknown field: refused, not logged in.
  const login = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password, remember_me: true } })
  assertErrorShape(t, login, 400, 'obtain_token JSON')
  t.notOk('access' in login.json())
  t.notOk(login.payload.includes('hunter2'), 'the password is not echoed')

  const loginForm = await app.inject({ method: 'POST', url: '/users/obtain_token/', headers: FORM, payload: new URLSearchParams({ username: user.username, password: user.password, next: '/' }).toString() })
  assertErrorShape(t, loginForm, 400, 'obtain_token form')

  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  const refresh = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: pair.refresh, access: pair.access } })
  assertErrorShape(t, refresh, 400, 'refresh_token')

  const robotLogin = await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial: robot.serial, token: robot.secret, firmware: '1.2' } })
  assertErrorShape(t, robotLogin, 400, 'robot obtain_token')
  t.notOk('access_token' in robotLogin.json())

  // The typo the app comment warns about: isStaff for is_staff must not create a non-staff user silently.
  const created = await app.inject({ method: 'POST', url: '/admin/api/users', headers: bearer(staff.jwt), payload: { username: 'typo_user', password: 'long-enough-password', isStaff: true } })
  assertErrorShape(t, created, 400, 'admin create user')
  t.equal(await app.services.users.findByUsername('typo_user'), null, 'no user was created')
})

t.test('a body of the wrong content type answers 415', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const robot = await createRobot(app)
  const cases: Array<[string, string, string]> = [
    ['/users/obtain_token/', 'application/xml', `<u>${user.username}</u>`],
    ['/users/obtain_token/', 'multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="username"\r\n\r\nu\r\n--x--'],
    ['/users/obtain_token/', 'application/octet-stream', 'binary'],
    ['/robots/robot/obtain_token', 'application/xml', `<serial>${robot.serial}</serial>`],
    ['/robots/robot/obtain_token', 'image/png', 'png']
  ]
  for (const [url, type, payload] of cases) {
    const res = await app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload })
    assertErrorShape(t, res, 415, `${url} ${type}`)
  }

  // text/plain has a parser in Fastify, so it reaches validation: still an error, never a success.
  const text = await app.inject({ method: 'POST', url: '/users/obtain_token/', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify({ username: user.username, password: user.password }) })
  t.ok([400, 415].includes(text.statusCode), `text/plain refused (${text.statusCode})`)
  assertErrorShape(t, text, text.statusCode, 'text/plain')
})

t.test('a JSON body that tries prototype poisoning answers 400', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const res = await app.inject({
    method: 'POST',
    url: '/users/obtain_token/',
    headers: { 'content-type': 'application/json' },
    payload: `{"username":"${user.username}","password":"${user.password}","__proto__":{"isStaff":true}}`
  })
  assertErrorShape(t, res, 400, '__proto__')
  t.notOk('access' in res.json())
})
