// docs/protocol.md §2.1 (users): log-in, refresh, /users/me and every way a JWT is refused.
import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { authentication, bearer, build, TEST_JWT_SECRET } from '../helper.js'
import { createRobot, createStaff, createUser, grant } from '../factory.js'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** An HS256 JWT made by hand, so a test can choose the secret and the claims. */
function signJwt (claims: Record<string, unknown>, secret: string, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const unsigned = `${enc(header)}.${enc(claims)}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

function accessClaims (user: { id: number, username: string }): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { sub: String(user.id), username: user.username, type: 'access', iat: now, exp: now + 300, ver: 0 }
}

/** The only 401 body a log-in failure may produce (docs/protocol.md §2, §7). */
function assertUnauthorized (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => any }): void {
  t.equal(res.statusCode, 401)
  t.match(res.headers['content-type'], /^application\/json/)
  t.match(res.json(), { statusCode: 401, error: 'Unauthorized', message: String, code: /^UNITED_/ })
}

t.test('POST /users/obtain_token/ with a JSON body answers 200 with an access and a refresh JWT', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access', 'refresh'])
  t.match(body.access, /^[\w-]+\.[\w-]+\.[\w-]+$/)
  t.match(body.refresh, /^[\w-]+\.[\w-]+\.[\w-]+$/)
  t.not(body.access, body.refresh)

  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(body.access) })
  t.equal(me.statusCode, 200, 'the access token works')
  t.equal(me.json().id, user.id)
})

t.test('POST /users/obtain_token/ accepts a form body (application/x-www-form-urlencoded)', async (t) => {
  const app = await build(t)
  const user = await createUser(app, { password: 'p&ss=word with spaces' })
  const payload = new URLSearchParams({ username: user.username, password: user.password }).toString()
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', headers: FORM, payload })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['access', 'refresh'])
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(res.json().access) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().username, user.username)
})

t.test('the log-in paths answer with and without their trailing slash (original clients use both)', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token', payload: { username: user.username, password: user.password } })
  t.equal(res.statusCode, 200)
  const refreshed = await app.inject({ method: 'POST', url: '/users/refresh_token', payload: { refresh: res.json().refresh } })
  t.equal(refreshed.statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/users/me/', headers: bearer(refreshed.json().access) })).statusCode, 200)
})

t.test('a successful log-in lands in the audit log', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })
  t.equal(res.statusCode, 200)
  const page = await app.services.audit.list({ action: 'user.login' })
  t.equal(page.items.length, 1)
  t.match(page.items[0], { action: 'user.login', actor_id: user.id, actor: user.username, target_user_id: user.id })
})

t.test('wrong password, unknown user and a wrong password of an inactive user get the same 401 body; its right password is revoked', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const inactive = await createUser(app)
  await app.services.users.update(inactive.id, { isActive: false }, { actor: null })

  const wrongPassword = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: 'not-the-password' } })
  const unknownUser = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: 'nobody-by-this-name', password: user.password } })
  const inactiveWrong = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: inactive.username, password: 'not-the-password' } })
  const inactiveRight = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: inactive.username, password: inactive.password } })

  for (const res of [wrongPassword, unknownUser, inactiveWrong, inactiveRight]) assertUnauthorized(t, res)
  t.same(unknownUser.json(), wrongPassword.json(), 'unknown user indistinguishable from wrong password')
  t.same(inactiveWrong.json(), wrongPassword.json(), 'a wrong password of an inactive user indistinguishable from any wrong password')
  t.equal(unknownUser.payload, wrongPassword.payload)
  t.equal(inactiveWrong.payload, wrongPassword.payload)
  t.same(inactiveRight.json(), { statusCode: 401, error: 'Unauthorized', message: 'this credential was revoked', code: 'UNITED_CREDENTIAL_REVOKED' }, 'the right password of an inactive user: revoked')
  for (const res of [wrongPassword, inactiveRight]) t.notOk(/access|refresh/.test(res.payload), 'no token in a failure')
})

t.test('POST /users/obtain_token/ with a malformed body answers 400', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const cases: Array<{ name: string, headers?: Record<string, string>, payload: string | object }> = [
    { name: 'invalid JSON', headers: { 'content-type': 'application/json' }, payload: '{"username": "a", ' },
    { name: 'empty JSON body', headers: { 'content-type': 'application/json' }, payload: '' },
    { name: 'missing password', payload: { username: user.username } },
    { name: 'missing username', payload: { password: user.password } },
    { name: 'empty username', payload: { username: '', password: user.password } },
    { name: 'object as password', payload: { username: user.username, password: { $ne: '' } } },
    { name: 'a JSON array', payload: [user.username, user.password] },
    { name: 'form body without password', headers: FORM, payload: `username=${user.username}` }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', headers: c.headers, payload: c.payload as any })
    t.equal(res.statusCode, 400, c.name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, c.name)
  }
})

t.test('POST /users/refresh_token/ exchanges a refresh JWT for a new access JWT', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  const res = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: pair.refresh } })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()), ['access'])
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(res.json().access) })
  t.equal(me.statusCode, 200, 'the refreshed access token works')
  t.equal(me.json().id, user.id)

  const form = await app.inject({ method: 'POST', url: '/users/refresh_token/', headers: FORM, payload: `refresh=${encodeURIComponent(pair.refresh)}` })
  t.equal(form.statusCode, 200, 'a form body works too')
  t.type(form.json().access, 'string')
})

t.test('POST /users/refresh_token/ refuses an access JWT, garbage and a foreign signature with 401', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  const now = Math.floor(Date.now() / 1000)
  const forged = signJwt({ sub: String(user.id), username: user.username, type: 'refresh', iat: now, exp: now + 3600, ver: 0 }, 'another-secret-another-secret-another-secret')
  for (const [name, refresh] of [['an access JWT', pair.access], ['garbage', 'garbage'], ['a JWT signed with another secret', forged]]) {
    const res = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh } })
    assertUnauthorized(t, res)
    t.notOk('access' in res.json(), `${name as string}: no access token`)
  }
  const missing = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: {} })
  t.equal(missing.statusCode, 400, 'a missing refresh field is a malformed body')
})

t.test('a refresh JWT of a user deactivated since is refused', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  await app.services.users.update(user.id, { isActive: false }, { actor: null })
  const res = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: pair.refresh } })
  assertUnauthorized(t, res)
})

t.test('GET /users/me answers the user and the uuids of the robots granted to them, with every JWT header style', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const r1 = await createRobot(app)
  const r2 = await createRobot(app)
  await createRobot(app) // not granted
  await grant(app, user, r1)
  await grant(app, user, r2)
  const expected = { id: user.id, username: user.username, is_staff: false }

  const styles: Array<[string, Record<string, string>]> = [
    ['Authorization: Bearer', bearer(user.jwt)],
    ['authentication: <jwt>', authentication(user.jwt)],
    ['authentication: Bearer <jwt>', { authentication: `Bearer ${user.jwt}` }],
    ['authorization: bearer (lower-case scheme)', { authorization: `bearer ${user.jwt}` }]
  ]
  for (const [name, headers] of styles) {
    const res = await app.inject({ method: 'GET', url: '/users/me', headers })
    t.equal(res.statusCode, 200, name)
    const body = res.json()
    t.same(Object.keys(body).sort(), ['id', 'is_staff', 'robots', 'username'], name)
    t.match(body, expected, name)
    t.same([...body.robots].sort(), [r1.uuid, r2.uuid].sort(), `${name}: exactly the granted robots`)
  }
})

t.test('GET /users/me reports staff users as staff and a user with no grants with no robots', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const loner = await createUser(app)
  await createRobot(app)
  const s = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(staff.jwt) })
  t.equal(s.statusCode, 200)
  t.equal(s.json().is_staff, true)
  const l = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(loner.jwt) })
  t.equal(l.statusCode, 200)
  t.same(l.json(), { id: loner.id, username: loner.username, is_staff: false, robots: [] })
})

t.test('GET /users/me without any JWT header answers 401', async (t) => {
  const app = await build(t)
  await createUser(app)
  for (const headers of [{}, { authorization: '' }, { authorization: 'Bearer' }, { authorization: 'Basic dXNlcjpwYXNz' }, { authentication: '' }]) {
    const res = await app.inject({ method: 'GET', url: '/users/me', headers })
    assertUnauthorized(t, res)
  }
})

t.test('a refresh JWT is not an access JWT: GET /users/me refuses it with 401', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.refresh) }))
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: authentication(pair.refresh) }))
})

t.test('an access JWT expires after JWT_ACCESS_TTL seconds', async (t) => {
  const app = await build(t, { JWT_ACCESS_TTL: '1' })
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.access) })).statusCode, 200, 'valid at first')
  await sleep(2100)
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.access) }))
  // The refresh token (JWT_REFRESH_TTL, default one day) still works.
  const refreshed = await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: pair.refresh } })
  t.equal(refreshed.statusCode, 200, 'the refresh token outlives the access token')
})

t.test('a JWT signed with another secret, or unsigned, is refused with 401', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const claims = accessClaims(user)
  // Control: the same hand-made token signed with the server's secret is accepted.
  const genuine = signJwt(claims, TEST_JWT_SECRET)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(genuine) })).statusCode, 200, 'control: right secret accepted')

  const foreign = signJwt(claims, 'another-secret-another-secret-another-secret')
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(foreign) }))
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: authentication(foreign) }))

  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const unsigned = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(unsigned) }))

  const tampered = genuine.split('.')
  tampered[1] = enc({ ...claims, sub: String(user.id + 1000) })
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(tampered.join('.')) }))
})

t.test('a user deactivated after getting a token is refused with 401', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const pair = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.access) })).statusCode, 200, 'active: accepted')
  await app.services.users.update(user.id, { isActive: false }, { actor: null })
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.access) }))
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/robots', headers: bearer(pair.access) }))

  // docs/protocol.md §2.4: reactivating a user revives none of what was issued before.
  await app.services.users.update(user.id, { isActive: true }, { actor: null })
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(pair.access) }))
  assertUnauthorized(t, await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh: pair.refresh } }))
  const fresh = (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })).json()
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(fresh.access) })).statusCode, 200, 'reactivated: a new log-in works')
})

t.test('a token of a deleted user is refused with 401, even right after it was used', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.jwt) })).statusCode, 200, 'used once: the server knows the user')
  await app.services.users.remove(user.id, { actor: null })
  assertUnauthorized(t, await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.jwt) }))
})

t.test('a change of the staff flag applies to the next request of a token already in use', async (t) => {
  const app = await build(t)
  const admin = await createStaff(app)
  const user = await createUser(app)
  const manage = async () => (await app.inject({ method: 'GET', url: '/admin/api/users', headers: bearer(user.jwt) })).statusCode
  t.equal(await manage(), 403, 'not staff: refused')
  const patch = async (isStaff: boolean) => await app.inject({ method: 'PATCH', url: `/admin/api/users/${user.id}`, headers: bearer(admin.jwt), payload: { is_staff: isStaff } })
  t.equal((await patch(true)).statusCode, 200)
  t.equal(await manage(), 200, 'made staff: allowed at once')
  t.equal((await patch(false)).statusCode, 200)
  t.equal(await manage(), 403, 'staff flag removed: refused at once')
})
