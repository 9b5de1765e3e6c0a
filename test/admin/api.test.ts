// docs/protocol.md §8, Management API: staff JWT, JSON, non-staff 403, no JWT 401,
// duplicates 409, and every change in the audit log with the staff actor.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { authentication, bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, grant, type TestUser } from '../factory.js'

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'

async function call (app: FastifyInstance, jwt: string | null, method: Method, url: string, payload?: unknown) {
  const options: InjectOptions = { method, url, headers: jwt === null ? {} : bearer(jwt) }
  if (payload !== undefined) options.payload = payload as Record<string, unknown>
  return await app.inject(options)
}

async function login (app: FastifyInstance, username: string, password: string) {
  return await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username, password } })
}

async function robotLogin (app: FastifyInstance, serial: string, token: string) {
  return await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial, token } })
}

async function me (app: FastifyInstance, jwt: string) {
  const res = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(jwt) })
  return res.json() as { id: number, username: string, is_staff: boolean, robots: string[] }
}

/** The whole audit log, oldest first. */
async function auditLog (app: FastifyInstance) {
  return (await app.services.audit.list({ limit: 1000 })).items.reverse()
}

/** Walks a list endpoint with `limit` and returns every item in order. */
async function walk (t: Test, app: FastifyInstance, jwt: string, url: string, limit: number): Promise<{ items: Array<Record<string, unknown>>, pages: number[] }> {
  const items: Array<Record<string, unknown>> = []
  const pages: number[] = []
  let cursor: string | null = null
  const sep = url.includes('?') ? '&' : '?'
  do {
    const res = await call(app, jwt, 'GET', `${url}${sep}limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
    t.equal(res.statusCode, 200, `page ${pages.length + 1} of ${url}`)
    const page = res.json()
    t.same(Object.keys(page).sort(), ['items', 'next_cursor'])
    pages.push(page.items.length)
    items.push(...page.items)
    cursor = page.next_cursor
  } while (cursor !== null && pages.length < 100)
  return { items, pages }
}

const USER_KEYS = ['id', 'is_active', 'is_staff', 'username']
const NEW_ROBOT_KEYS = ['enabled', 'model', 'name', 'serial', 'token', 'uuid']
const ADMIN_ROBOT_KEYS = ['command_connected', 'created_at', 'data_connected', 'enabled', 'last_seen_at', 'model', 'name', 'serial', 'state', 'uuid']

// ---------------------------------------------------------------- users

t.test('POST /admin/api/users creates a user: 201 without any password material', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const res = await call(app, staff.jwt, 'POST', '/admin/api/users', { username: 'alice', password: 'alice-password-1' })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.same(Object.keys(body).sort(), USER_KEYS)
  t.match(body, { id: Number, username: 'alice', is_staff: false, is_active: true })
  t.notMatch(res.body, /password|scrypt|alice-password-1/, 'no password or hash in the body')

  const loggedIn = await login(app, 'alice', 'alice-password-1')
  t.equal(loggedIn.statusCode, 200, 'the new user can log in')
  t.match(loggedIn.json(), { access: String, refresh: String })

  const staffRes = await call(app, staff.jwt, 'POST', '/admin/api/users', { username: 'bob', password: 'bob-password-1', is_staff: true })
  t.equal(staffRes.statusCode, 201)
  t.match(staffRes.json(), { username: 'bob', is_staff: true, is_active: true })
  const bobJwt = (await login(app, 'bob', 'bob-password-1')).json().access as string
  t.equal((await call(app, bobJwt, 'GET', '/admin/api/users')).statusCode, 200, 'a staff user made by the API may use the API')

  const one = await call(app, staff.jwt, 'GET', `/admin/api/users/${body.id as number}`)
  t.equal(one.statusCode, 200)
  t.same(one.json(), body)
  t.equal((await call(app, staff.jwt, 'GET', '/admin/api/users/999999')).statusCode, 404)
})

t.test('POST /admin/api/users with a taken username is 409', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  t.equal((await call(app, staff.jwt, 'POST', '/admin/api/users', { username: 'carol', password: 'carol-password-1' })).statusCode, 201)
  const dup = await call(app, staff.jwt, 'POST', '/admin/api/users', { username: 'carol', password: 'another-password-2', is_staff: true })
  t.equal(dup.statusCode, 409)
  t.same(dup.json(), { statusCode: 409, error: 'Conflict', message: 'a user with this username already exists', code: 'UNITED_USERNAME_TAKEN' })
  t.equal((await login(app, 'carol', 'carol-password-1')).statusCode, 200, 'the first carol is untouched')
  t.equal((await login(app, 'carol', 'another-password-2')).statusCode, 401)
  const created = (await auditLog(app)).filter((e) => e.action === 'user.created' && e.actor_id === staff.id)
  t.equal(created.length, 1, 'the refused create is not audited')
})

t.test('POST /admin/api/users refuses weak or invalid input with 400', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const cases: Array<[string, unknown]> = [
    ['password too short', { username: 'dave', password: 'short' }],
    ['empty password', { username: 'dave', password: '' }],
    ['missing password', { username: 'dave' }],
    ['missing username', { password: 'long-enough-password' }],
    ['empty username', { username: '', password: 'long-enough-password' }],
    ['username with a space', { username: 'da ve', password: 'long-enough-password' }],
    ['username with a slash', { username: 'da/ve', password: 'long-enough-password' }],
    ['username too long', { username: 'd'.repeat(151), password: 'long-enough-password' }],
    ['username an object', { username: { name: 'dave' }, password: 'long-enough-password' }],
    ['is_staff not a boolean', { username: 'dave', password: 'long-enough-password', is_staff: 'yes' }],
    ['unknown field (camelCase typo)', { username: 'dave', password: 'long-enough-password', isStaff: true }],
    ['unknown field is_active', { username: 'dave', password: 'long-enough-password', is_active: false }]
  ]
  for (const [name, body] of cases) {
    const res = await call(app, staff.jwt, 'POST', '/admin/api/users', body)
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, name)
  }
  const list = await call(app, staff.jwt, 'GET', '/admin/api/users')
  t.same(list.json().items.map((u: { username: string }) => u.username), [staff.username], 'nothing was created')
})

t.test('GET /admin/api/users pages through every user exactly once', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const others: TestUser[] = []
  for (let i = 0; i < 6; i++) others.push(await createUser(app, { isStaff: i === 2 }))
  const { items, pages } = await walk(t, app, staff.jwt, '/admin/api/users', 2)
  t.same(pages, [2, 2, 2, 1])
  t.equal(items.length, 7)
  for (const item of items) t.same(Object.keys(item).sort(), USER_KEYS)
  t.same(items.map((u) => u.id), [staff, ...others].map((u) => u.id), 'each user once, in a stable order')
  t.same(items.find((u) => u.id === others[2]?.id), { id: others[2]?.id, username: others[2]?.username, is_staff: true, is_active: true })

  const all = await call(app, staff.jwt, 'GET', '/admin/api/users')
  t.equal(all.json().items.length, 7, 'default limit covers them')
  t.equal(all.json().next_cursor, null)
  const bad = await call(app, staff.jwt, 'GET', '/admin/api/users?cursor=nope')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'UNITED_BAD_CURSOR')
  t.equal((await call(app, staff.jwt, 'GET', '/admin/api/users?limit=1001')).statusCode, 400)
})

t.test('PATCH /admin/api/users/{id} sets the password: the new one logs in, the old one does not', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app, { password: 'old-password-1' })
  const res = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { password: 'new-password-2' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { id: user.id, username: user.username, is_staff: false, is_active: true })
  t.notMatch(res.body, /password/)
  t.equal((await login(app, user.username, 'new-password-2')).statusCode, 200, 'new password')
  const old = await login(app, user.username, 'old-password-1')
  t.equal(old.statusCode, 401, 'old password')
  t.equal(old.json().code, 'UNITED_INVALID_CREDENTIALS')
})

t.test('PATCH /admin/api/users/{id} sets the staff flag', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  t.equal((await call(app, user.jwt, 'GET', '/admin/api/users')).statusCode, 403, 'not staff yet')
  const res = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { is_staff: true })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { id: user.id, username: user.username, is_staff: true, is_active: true })
  t.equal((await call(app, user.jwt, 'GET', '/admin/api/users')).statusCode, 200, 'the same JWT is staff now')
  t.equal((await me(app, user.jwt)).is_staff, true)

  const back = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { is_staff: false })
  t.equal(back.json().is_staff, false)
  t.equal((await call(app, user.jwt, 'GET', '/admin/api/users')).statusCode, 403, 'and not any more')
})

t.test('PATCH /admin/api/users/{id} is_active:false stops log-in and the JWTs already issued', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const res = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { is_active: false })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { id: user.id, username: user.username, is_staff: false, is_active: false })
  const refused = await login(app, user.username, user.password)
  t.equal(refused.statusCode, 401, 'an inactive user cannot log in')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.jwt) })).statusCode, 401, 'an old JWT no longer works')

  const again = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { is_active: true })
  t.equal(again.json().is_active, true)
  t.equal((await login(app, user.username, user.password)).statusCode, 200, 'reactivated')
})

t.test('PATCH /admin/api/users/{id} refuses bad bodies and unknown users', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const cases: Array<[string, unknown]> = [
    ['empty body', {}],
    ['weak password', { password: 'short' }],
    ['unknown field', { username: 'renamed' }],
    ['typo', { isActive: false }],
    ['is_active not a boolean', { is_active: 'nope' }]
  ]
  for (const [name, body] of cases) {
    const res = await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, body)
    t.equal(res.statusCode, 400, name)
  }
  t.equal((await login(app, user.username, user.password)).statusCode, 200, 'the user is unchanged')
  const missing = await call(app, staff.jwt, 'PATCH', '/admin/api/users/999999', { is_staff: true })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { statusCode: 404, error: 'Not Found', message: 'user not found', code: 'UNITED_USER_NOT_FOUND' })
  t.equal((await call(app, staff.jwt, 'PATCH', '/admin/api/users/abc', { is_staff: true })).statusCode, 400, 'id not a number')
})

t.test('DELETE /admin/api/users/{id} is 204, then 404', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robot = await createRobot(app)
  await grant(app, user, robot)

  const res = await call(app, staff.jwt, 'DELETE', `/admin/api/users/${user.id}`)
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  const again = await call(app, staff.jwt, 'DELETE', `/admin/api/users/${user.id}`)
  t.equal(again.statusCode, 404)
  t.equal(again.json().code, 'UNITED_USER_NOT_FOUND')
  t.equal((await call(app, staff.jwt, 'GET', `/admin/api/users/${user.id}`)).statusCode, 404)
  t.equal((await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id}`, { is_staff: true })).statusCode, 404)
  t.equal((await login(app, user.username, user.password)).statusCode, 401, 'a deleted user cannot log in')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(user.jwt) })).statusCode, 401, 'nor use an old JWT')
  const grants = await call(app, staff.jwt, 'GET', `/admin/api/robots/${robot.uuid}/users`)
  t.same(grants.json(), { items: [] }, 'their grants went with them')
  const list = await call(app, staff.jwt, 'GET', '/admin/api/users')
  t.same(list.json().items.map((u: { id: number }) => u.id), [staff.id])
})

// ---------------------------------------------------------------- robots

t.test('POST /admin/api/robots generates a secret when none is given, shown once', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const res = await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-GEN-1' })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.same(Object.keys(body).sort(), NEW_ROBOT_KEYS)
  t.match(body, { serial: 'SN-GEN-1', name: '', enabled: true, token: String })
  t.match(body.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.ok((body.token as string).length >= 16, 'a generated secret of some strength')

  const obtained = await robotLogin(app, 'SN-GEN-1', body.token)
  t.equal(obtained.statusCode, 201, 'the generated secret works')
  t.match(obtained.json(), { access_token: /^[0-9a-f]{64}$/, expires_in: Number, robot_uuid: body.uuid })

  const one = await call(app, staff.jwt, 'GET', `/admin/api/robots/${body.uuid as string}`)
  t.equal(one.statusCode, 200)
  t.same(Object.keys(one.json()).sort(), ADMIN_ROBOT_KEYS, 'the secret is never shown again')
  t.notMatch(one.body, body.token)
  t.match(one.json(), { uuid: body.uuid, serial: 'SN-GEN-1', name: '', enabled: true, state: 'idle', data_connected: false, command_connected: false, last_seen_at: null, created_at: String })
  const list = await call(app, staff.jwt, 'GET', '/admin/api/robots')
  t.notMatch(list.body, body.token, 'nor in the list')

  const second = await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-GEN-2' })
  t.not(second.json().token, body.token, 'each robot gets its own secret')
})

t.test('POST /admin/api/robots echoes a given secret, which then logs the robot in', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const res = await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-GIVEN', name: 'Rover 1', token: 'given-secret-123' })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.same(Object.keys(body).sort(), NEW_ROBOT_KEYS)
  t.match(body, { serial: 'SN-GIVEN', name: 'Rover 1', enabled: true, token: 'given-secret-123' })
  const obtained = await robotLogin(app, 'SN-GIVEN', 'given-secret-123')
  t.equal(obtained.statusCode, 201)
  t.equal(obtained.json().robot_uuid, body.uuid)
  t.equal((await robotLogin(app, 'SN-GIVEN', 'wrong-secret-123')).statusCode, 401)
})

t.test('POST /admin/api/robots refuses duplicates (409) and bad input (400)', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  t.equal((await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-DUP', token: 'first-secret-1' })).statusCode, 201)
  const dup = await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-DUP', token: 'second-secret-2' })
  t.equal(dup.statusCode, 409)
  t.same(dup.json(), { statusCode: 409, error: 'Conflict', message: 'a robot with this serial already exists', code: 'UNITED_SERIAL_TAKEN' })
  t.equal((await robotLogin(app, 'SN-DUP', 'first-secret-1')).statusCode, 201, 'the first robot keeps its secret')
  t.equal((await robotLogin(app, 'SN-DUP', 'second-secret-2')).statusCode, 401)

  const cases: Array<[string, unknown]> = [
    ['missing serial', { name: 'x' }],
    ['empty serial', { serial: '' }],
    ['serial too long', { serial: 'S'.repeat(129) }],
    ['serial with a control character', { serial: 'SN\n1' }],
    ['secret too short', { serial: 'SN-X', token: 'short' }],
    ['name an array', { serial: 'SN-X', name: ['a', 'b'] }],
    ['unknown field', { serial: 'SN-X', secret: 'long-enough-secret' }],
    ['enabled is not settable on create', { serial: 'SN-X', enabled: false }]
  ]
  for (const [name, body] of cases) {
    const res = await call(app, staff.jwt, 'POST', '/admin/api/robots', body)
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request' }, name)
  }
  const list = await call(app, staff.jwt, 'GET', '/admin/api/robots')
  t.same(list.json().items.map((r: { serial: string }) => r.serial), ['SN-DUP'], 'nothing else was created')
})

t.test('GET /admin/api/robots lists, searches serial and name with ?q=, and paginates', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const made = [
    await createRobot(app, { serial: 'ALPHA-001', name: 'Warehouse picker' }),
    await createRobot(app, { serial: 'ALPHA-002', name: 'Dock loader' }),
    await createRobot(app, { serial: 'BETA-001', name: 'alpha tester' }),
    await createRobot(app, { serial: 'GAMMA-100%', name: 'Gamma_one' }),
    await createRobot(app, { serial: 'DELTA-7', name: '' })
  ]
  const serials = async (query: string): Promise<string[]> => {
    const res = await call(app, staff.jwt, 'GET', `/admin/api/robots${query}`)
    t.equal(res.statusCode, 200, query)
    return res.json().items.map((r: { serial: string }) => r.serial)
  }
  const all = await call(app, staff.jwt, 'GET', '/admin/api/robots')
  t.equal(all.statusCode, 200)
  t.equal(all.json().next_cursor, null)
  t.same(all.json().items.map((r: { uuid: string }) => r.uuid), made.map((r) => r.uuid))
  for (const item of all.json().items) t.same(Object.keys(item).sort(), ADMIN_ROBOT_KEYS)

  t.same(await serials('?q=ALPHA'), ['ALPHA-001', 'ALPHA-002', 'BETA-001'], 'serial or name, case-insensitive')
  t.same(await serials('?q=alpha-00'), ['ALPHA-001', 'ALPHA-002'])
  t.same(await serials('?q=loader'), ['ALPHA-002'], 'by name only')
  t.same(await serials('?q=001'), ['ALPHA-001', 'BETA-001'])
  t.same(await serials('?q=nothing-like-this'), [])
  t.same(await serials('?q='), made.map((r) => r.serial), 'an empty q is no filter')
  t.same(await serials(`?q=${encodeURIComponent('%')}`), ['GAMMA-100%'], '% is matched literally')
  t.same(await serials('?q=_'), ['GAMMA-100%'], '_ is matched literally')

  const { items, pages } = await walk(t, app, staff.jwt, '/admin/api/robots', 2)
  t.same(pages, [2, 2, 1])
  t.same(items.map((r) => r.uuid), made.map((r) => r.uuid), 'every robot once')
  const searched = await walk(t, app, staff.jwt, '/admin/api/robots?q=alpha', 1)
  t.same(searched.items.map((r) => r.serial), ['ALPHA-001', 'ALPHA-002', 'BETA-001'], 'search pages too')
  t.same(searched.pages, [1, 1, 1])

  // The same search over the robots granted to one user (the join path).
  const user = await createUser(app)
  await grant(app, user, made[1] as { uuid: string })
  await grant(app, user, made[3] as { uuid: string })
  const visible = await app.services.robots.list({ q: 'a', visibleTo: user.id })
  t.same(visible.items.map((r) => r.serial), ['ALPHA-002', 'GAMMA-100%'], 'search within the robots granted to a user')
  t.same((await app.services.robots.list({ q: '%', visibleTo: user.id })).items.map((r) => r.serial), ['GAMMA-100%'])

  t.equal((await call(app, staff.jwt, 'GET', '/admin/api/robots?cursor=bad')).statusCode, 400)
  t.equal((await call(app, staff.jwt, 'GET', '/admin/api/robots?sort=serial')).statusCode, 400, 'unknown query parameter')
})

t.test('GET /admin/api/robots/{uuid} answers 404 for an unknown robot', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const res = await call(app, staff.jwt, 'GET', `/admin/api/robots/${randomUUID()}`)
  t.equal(res.statusCode, 404)
  t.same(res.json(), { statusCode: 404, error: 'Not Found', message: 'robot not found', code: 'UNITED_ROBOT_NOT_FOUND' })
  t.equal((await call(app, staff.jwt, 'GET', '/admin/api/robots/not-a-uuid')).statusCode, 400)
  const robot = await createRobot(app)
  const upper = await call(app, staff.jwt, 'GET', `/admin/api/robots/${robot.uuid.toUpperCase()}`)
  t.equal(upper.statusCode, 200, 'an upper-case uuid finds the robot')
  t.equal(upper.json().uuid, robot.uuid)
})

t.test('PATCH /admin/api/robots/{uuid} changes serial, name and enabled', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { serial: 'SN-OLD', name: 'Old name', secret: 'robot-secret-1' })

  const renamed = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid}`, { serial: 'SN-NEW', name: 'New name' })
  t.equal(renamed.statusCode, 200)
  t.same(Object.keys(renamed.json()).sort(), ADMIN_ROBOT_KEYS)
  t.match(renamed.json(), { uuid: robot.uuid, serial: 'SN-NEW', name: 'New name', enabled: true })
  t.match((await call(app, staff.jwt, 'GET', `/admin/api/robots/${robot.uuid}`)).json(), { serial: 'SN-NEW', name: 'New name' })
  t.equal((await robotLogin(app, 'SN-OLD', 'robot-secret-1')).statusCode, 401, 'the old serial is gone')
  const obtained = await robotLogin(app, 'SN-NEW', 'robot-secret-1')
  t.equal(obtained.statusCode, 201, 'the new serial logs in with the same secret')
  const accessToken = obtained.json().access_token as string
  t.equal(await app.services.robotTokens.resolve(accessToken), robot.uuid)

  const cleared = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid}`, { name: '' })
  t.equal(cleared.json().name, '', 'a name may be cleared')

  const revoked: Array<{ robotUuid: string, reason: string }> = []
  t.teardown(app.services.events.on('robotRevoked', (e) => { revoked.push(e) }))
  const disabled = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid}`, { enabled: false })
  t.equal(disabled.statusCode, 200)
  t.equal(disabled.json().enabled, false)
  t.equal((await robotLogin(app, 'SN-NEW', 'robot-secret-1')).statusCode, 401, 'a disabled robot cannot log in')
  await t.rejects(app.services.robotTokens.resolve(accessToken), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'its cached tokens are void (revoked)')
  t.same(revoked, [{ robotUuid: robot.uuid, reason: 'disabled' }], 'its connections are told to close')

  const enabled = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid}`, { enabled: true })
  t.equal(enabled.json().enabled, true)
  t.equal((await robotLogin(app, 'SN-NEW', 'robot-secret-1')).statusCode, 201, 'enabled again')
  t.equal(revoked.length, 1, 'enabling revokes nothing')
})

t.test('PATCH /admin/api/robots/{uuid} refuses a taken serial, bad bodies and unknown robots', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const a = await createRobot(app, { serial: 'SN-A', name: 'A' })
  await createRobot(app, { serial: 'SN-B' })
  const dup = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${a.uuid}`, { serial: 'SN-B', name: 'renamed' })
  t.equal(dup.statusCode, 409)
  t.equal(dup.json().code, 'UNITED_SERIAL_TAKEN')
  t.match((await call(app, staff.jwt, 'GET', `/admin/api/robots/${a.uuid}`)).json(), { serial: 'SN-A', name: 'A' }, 'nothing changed')
  t.equal((await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${a.uuid}`, { serial: 'SN-A' })).statusCode, 200, 'its own serial is not a duplicate')

  const cases: Array<[string, unknown]> = [
    ['empty body', {}],
    ['empty serial', { serial: '' }],
    ['unknown field', { state: 'auto' }],
    ['secret is not patched here', { token: 'new-secret-123' }],
    ['enabled not a boolean', { enabled: 'maybe' }]
  ]
  for (const [name, body] of cases) {
    t.equal((await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${a.uuid}`, body)).statusCode, 400, name)
  }
  const missing = await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${randomUUID()}`, { name: 'x' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'UNITED_ROBOT_NOT_FOUND')
})

t.test('DELETE /admin/api/robots/{uuid} is 204, then 404, and ends its access', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robot = await createRobot(app, { secret: 'robot-secret-1' })
  await grant(app, user, robot)
  const token = (await robotLogin(app, robot.serial, 'robot-secret-1')).json().access_token as string
  const robotId = (await app.services.access.robotFor({ id: 0, username: 'x', isStaff: true }, robot.uuid)).id
  await app.services.frames.store(robotId, [{ frameId: 'f1', type: 3, data: { battery: 50, datetime: '2024-01-01T00:00:00Z' }, recordedAt: null }])
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  t.equal((await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command: 'auto' } })).statusCode, 201)
  app.services.presence.set(robot.uuid, { data: 0, command: 0 })

  const res = await call(app, staff.jwt, 'DELETE', `/admin/api/robots/${robot.uuid}`)
  t.equal(res.statusCode, 204, 'a robot with grants, frames and commands can be deleted')
  t.equal(res.body, '')
  t.equal((await call(app, staff.jwt, 'GET', `/admin/api/robots/${robot.uuid}`)).statusCode, 404)
  t.equal((await call(app, staff.jwt, 'DELETE', `/admin/api/robots/${robot.uuid}`)).statusCode, 404)
  t.equal((await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid}`, { name: 'x' })).statusCode, 404)
  t.equal((await call(app, staff.jwt, 'POST', `/admin/api/robots/${robot.uuid}/rotate_token`)).statusCode, 404)
  t.equal((await robotLogin(app, robot.serial, 'robot-secret-1')).statusCode, 401)
  await t.rejects(app.services.robotTokens.resolve(token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'cached tokens are void (revoked)')
  t.same((await me(app, user.jwt)).robots, [])
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })).statusCode, 404)

  const again = await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: robot.serial })
  t.equal(again.statusCode, 201, 'the serial is free again')
})

t.test('POST /admin/api/robots/{uuid}/rotate_token replaces the secret and voids old tokens', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { secret: 'robot-secret-1' })
  const token = (await robotLogin(app, robot.serial, 'robot-secret-1')).json().access_token as string
  const revoked: Array<{ robotUuid: string, reason: string }> = []
  t.teardown(app.services.events.on('robotRevoked', (e) => { revoked.push(e) }))

  const res = await call(app, staff.jwt, 'POST', `/admin/api/robots/${robot.uuid}/rotate_token`)
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()), ['token'])
  const secret = res.json().token as string
  t.type(secret, 'string')
  t.not(secret, 'robot-secret-1')
  t.equal((await robotLogin(app, robot.serial, 'robot-secret-1')).statusCode, 401, 'the old secret is refused')
  t.equal((await robotLogin(app, robot.serial, secret)).statusCode, 201, 'the new secret is accepted')
  await t.rejects(app.services.robotTokens.resolve(token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'tokens issued with the old secret are void (revoked)')
  t.same(revoked, [{ robotUuid: robot.uuid, reason: 'rotated' }])

  const twice = await call(app, staff.jwt, 'POST', `/admin/api/robots/${robot.uuid}/rotate_token`)
  t.not(twice.json().token, secret, 'every rotation makes a new secret')
  t.equal((await robotLogin(app, robot.serial, secret)).statusCode, 401)

  t.equal((await call(app, staff.jwt, 'POST', `/admin/api/robots/${randomUUID()}/rotate_token`)).statusCode, 404)
})

// ---------------------------------------------------------------- access grants

t.test('PUT and DELETE /admin/api/robots/{uuid}/users/{user_id} grant and revoke access', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robot = await createRobot(app)
  const path = `/admin/api/robots/${robot.uuid}/users/${user.id}`
  const robotPage = async () => (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })).statusCode

  t.same((await me(app, user.jwt)).robots, [])
  t.equal(await robotPage(), 404)

  const granted = await call(app, staff.jwt, 'PUT', path)
  t.equal(granted.statusCode, 204)
  t.equal(granted.body, '')
  t.same((await me(app, user.jwt)).robots, [robot.uuid], '/users/me lists the robot')
  t.equal(await robotPage(), 200, 'GET /robots/{uuid} is 200')
  t.same((await call(app, staff.jwt, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json(), { items: [{ user_id: user.id, username: user.username, role: 'operator', expires_at: null }] }, 'a grant without a body: operator, for good')
  t.equal((await call(app, staff.jwt, 'PUT', path)).statusCode, 204, 'granting twice is fine')

  const revoked = await call(app, staff.jwt, 'DELETE', path)
  t.equal(revoked.statusCode, 204)
  t.equal(revoked.body, '')
  t.same((await me(app, user.jwt)).robots, [], '/users/me no longer lists it')
  t.equal(await robotPage(), 404, 'GET /robots/{uuid} is 404')
  t.equal((await call(app, staff.jwt, 'DELETE', path)).statusCode, 204, 'revoking twice is fine')

  const log = (await auditLog(app)).filter((e) => e.action.startsWith('access.'))
  t.same(log.map((e) => e.action), ['access.granted', 'access.revoked'], 'repeats are not audited')
})

t.test('grants answer 404 for an unknown robot or user', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robot = await createRobot(app)
  for (const method of ['PUT', 'DELETE'] as const) {
    const noRobot = await call(app, staff.jwt, method, `/admin/api/robots/${randomUUID()}/users/${user.id}`)
    t.equal(noRobot.statusCode, 404, `${method} unknown robot`)
    t.equal(noRobot.json().code, 'UNITED_ROBOT_NOT_FOUND')
    const noUser = await call(app, staff.jwt, method, `/admin/api/robots/${robot.uuid}/users/999999`)
    t.equal(noUser.statusCode, 404, `${method} unknown user`)
    t.equal(noUser.json().code, 'UNITED_USER_NOT_FOUND')
    t.equal((await call(app, staff.jwt, method, `/admin/api/robots/${robot.uuid}/users/zero`)).statusCode, 400, `${method} user id not a number`)
  }
  t.equal((await call(app, staff.jwt, 'GET', `/admin/api/robots/${randomUUID()}/users`)).statusCode, 404)
  t.same((await me(app, user.jwt)).robots, [])
})

// ---------------------------------------------------------------- who may call

t.test('every management endpoint is 403 UNITED_STAFF_ONLY for a non-staff JWT and 401 without one', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const victim = await createUser(app)
  const robot = await createRobot(app)
  await grant(app, user, robot)
  const endpoints: Array<[Method, string, unknown?]> = [
    ['POST', '/admin/api/users', { username: 'mallory', password: 'mallory-password' }],
    ['GET', '/admin/api/users'],
    ['GET', `/admin/api/users/${victim.id}`],
    ['PATCH', `/admin/api/users/${user.id}`, { is_staff: true }],
    ['DELETE', `/admin/api/users/${victim.id}`],
    ['POST', '/admin/api/robots', { serial: 'SN-EVIL' }],
    ['GET', '/admin/api/robots'],
    ['GET', `/admin/api/robots/${robot.uuid}`],
    ['PATCH', `/admin/api/robots/${robot.uuid}`, { enabled: false }],
    ['DELETE', `/admin/api/robots/${robot.uuid}`],
    ['POST', `/admin/api/robots/${robot.uuid}/rotate_token`],
    ['GET', `/admin/api/robots/${robot.uuid}/users`],
    ['PUT', `/admin/api/robots/${robot.uuid}/users/${user.id}`],
    ['DELETE', `/admin/api/robots/${robot.uuid}/users/${user.id}`],
    // Refused before the body or the target is looked at.
    ['POST', '/admin/api/users', { bogus: true }],
    ['PATCH', `/admin/api/robots/${randomUUID()}`, {}],
    ['DELETE', '/admin/api/users/999999']
  ]
  for (const [method, url, body] of endpoints) {
    const forbidden = await call(app, user.jwt, method, url, body)
    t.equal(forbidden.statusCode, 403, `${method} ${url} as a user`)
    t.same(forbidden.json(), { statusCode: 403, error: 'Forbidden', message: 'staff only', code: 'UNITED_STAFF_ONLY' })
    const legacy = await app.inject({ method, url, headers: authentication(user.jwt), ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) })
    t.equal(legacy.statusCode, 403, `${method} ${url} with the authentication header`)
    const anonymous = await call(app, null, method, url, body)
    t.equal(anonymous.statusCode, 401, `${method} ${url} without a JWT`)
    t.match(anonymous.json(), { statusCode: 401, error: 'Unauthorized', code: 'UNITED_UNAUTHORIZED' })
    const garbage = await call(app, 'not.a.jwt', method, url, body)
    t.equal(garbage.statusCode, 401, `${method} ${url} with a bad JWT`)
  }
  // Nothing happened.
  t.equal((await login(app, 'mallory', 'mallory-password')).statusCode, 401)
  t.same(await me(app, user.jwt), { id: user.id, username: user.username, is_staff: false, robots: [robot.uuid] })
  t.equal((await login(app, victim.username, victim.password)).statusCode, 200)
  const robotState = await app.services.robots.get(robot.uuid)
  t.equal(robotState.enabled, true)
  t.equal((await robotLogin(app, robot.serial, robot.secret)).statusCode, 201, 'the secret was not rotated')
  t.same((await auditLog(app)).filter((e) => e.actor_id === user.id || e.actor_id === null && !['user.created', 'robot.created', 'access.granted', 'user.login_failed'].includes(e.action)), [], 'no audited change (but the failed log-in)')
})

t.test('a refresh JWT is not accepted by the management API', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const tokens = (await login(app, staff.username, staff.password)).json()
  t.equal((await call(app, tokens.access, 'GET', '/admin/api/users')).statusCode, 200)
  t.equal((await call(app, tokens.refresh, 'GET', '/admin/api/users')).statusCode, 401)
})

// ---------------------------------------------------------------- audit

t.test('every management change is audited with the staff actor', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const before = (await auditLog(app)).length

  const user = (await call(app, staff.jwt, 'POST', '/admin/api/users', { username: 'erin', password: 'erin-password-1' })).json()
  await call(app, staff.jwt, 'PATCH', `/admin/api/users/${user.id as number}`, { password: 'erin-password-2', is_staff: true, is_active: false })
  const robot = (await call(app, staff.jwt, 'POST', '/admin/api/robots', { serial: 'SN-AUDIT', name: 'Audited' })).json()
  await call(app, staff.jwt, 'PATCH', `/admin/api/robots/${robot.uuid as string}`, { name: 'Renamed', enabled: false })
  await call(app, staff.jwt, 'POST', `/admin/api/robots/${robot.uuid as string}/rotate_token`)
  await call(app, staff.jwt, 'PUT', `/admin/api/robots/${robot.uuid as string}/users/${user.id as number}`)
  await call(app, staff.jwt, 'DELETE', `/admin/api/robots/${robot.uuid as string}/users/${user.id as number}`)
  await call(app, staff.jwt, 'DELETE', `/admin/api/robots/${robot.uuid as string}`)
  await call(app, staff.jwt, 'DELETE', `/admin/api/users/${user.id as number}`)
  // Reads are not changes.
  await call(app, staff.jwt, 'GET', '/admin/api/users')
  await call(app, staff.jwt, 'GET', '/admin/api/robots')

  const log = (await auditLog(app)).slice(before)
  t.same(log.map((e) => e.action), [
    'user.created', 'user.updated',
    'robot.created', 'robot.updated', 'robot.token_rotated',
    'access.granted', 'access.revoked',
    'robot.deleted', 'user.deleted'
  ])
  for (const entry of log) {
    t.equal(entry.actor_id, staff.id, `${entry.action}: actor id`)
    t.equal(entry.actor, staff.username, `${entry.action}: actor name`)
    t.match(entry.at, /^\d{4}-\d{2}-\d{2}T/)
  }
  const byAction = (action: string) => log.find((e) => e.action === action)
  t.match(byAction('user.created'), { target_user_id: user.id, robot_uuid: null, details: { username: 'erin', is_staff: false } })
  t.match(byAction('user.updated'), { target_user_id: user.id, details: { password_changed: true, is_staff: true, is_active: false } })
  t.notMatch(JSON.stringify(log), /erin-password/, 'no password in the audit log')
  t.match(byAction('user.deleted'), { target_user_id: user.id, details: { username: 'erin' } })
  t.match(byAction('robot.created'), { robot_uuid: robot.uuid, target_user_id: null, details: { serial: 'SN-AUDIT', name: 'Audited' } })
  t.notMatch(JSON.stringify(log), robot.token, 'no robot secret in the audit log')
  t.match(byAction('robot.updated'), { robot_uuid: robot.uuid, details: { name: 'Renamed', enabled: false } })
  t.match(byAction('robot.token_rotated'), { robot_uuid: robot.uuid })
  t.match(byAction('robot.deleted'), { robot_uuid: robot.uuid, details: { serial: 'SN-AUDIT' } })
  t.match(byAction('access.granted'), { robot_uuid: robot.uuid, target_user_id: user.id })
  t.match(byAction('access.revoked'), { robot_uuid: robot.uuid, target_user_id: user.id })

  const forRobot = await app.services.audit.list({ robotUuid: robot.uuid })
  t.same(forRobot.items.map((e) => e.action).reverse(), ['robot.created', 'robot.updated', 'robot.token_rotated', 'access.granted', 'access.revoked', 'robot.deleted'], 'the robot history survives its deletion')
})
