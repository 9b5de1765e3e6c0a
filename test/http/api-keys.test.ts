// docs/protocol.md §13.4: API keys on REST. Made, listed and deleted by their
// user; acting as the user wherever an access JWT does (Management API
// included for staff); unable to make keys; ended by deletion, expiry, a
// password change or a deactivation; wrong keys counted as failed log-ins.
import type { FastifyInstance, InjectOptions } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { httpFrom } from '../addresses.js'
import { createRobot, createStaff, createUser, grant, grantRole, type TestUser } from '../factory.js'
import { authentication, bearer, build } from '../helper.js'
import { eventually } from '../mqtt.js'

interface Made { id: string, name: string, key: string, created_at: string, expires_at: string | null }

async function call (app: FastifyInstance, headers: Record<string, string>, method: InjectOptions['method'], url: string, payload?: unknown) {
  return await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }) })
}

async function makeKey (t: Test, app: FastifyInstance, user: TestUser, body: Record<string, unknown> = { name: 'script' }): Promise<Made> {
  const res = await call(app, bearer(user.jwt), 'POST', '/users/me/api_keys', body)
  t.equal(res.statusCode, 201, res.statusCode === 201 ? 'created' : res.body)
  return res.json()
}

async function rows (app: FastifyInstance): Promise<Array<Record<string, unknown>>> {
  return await app.db.sequelize.query('SELECT * FROM api_keys', { type: QueryTypes.SELECT })
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

t.test('create, list and delete a key; the key is shown once and stored hashed', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const made = await makeKey(t, app, user, { name: 'grafana' })
  t.same(Object.keys(made).sort(), ['created_at', 'expires_at', 'id', 'key', 'name'])
  t.match(made.key, /^uk_[A-Za-z0-9_-]{43,}$/, 'uk_ and at least 43 base64url characters')
  t.equal(made.name, 'grafana')
  t.match(made.created_at, ISO)
  t.equal(made.expires_at, null)

  const stored = await rows(app)
  t.equal(stored.length, 1)
  const text = JSON.stringify(stored)
  t.notOk(text.includes(made.key), 'the key itself is not stored')
  t.notOk(text.includes(made.key.slice(3)), 'nor its random part')
  t.match(stored[0]?.key_hash, /^[0-9a-f]{64}$/, 'a SHA-256')
  t.equal(stored[0]?.lookup, made.key.slice(3, 19), 'the lookup is its first 16 characters after uk_')

  const list = await call(app, bearer(user.jwt), 'GET', '/users/me/api_keys')
  t.equal(list.statusCode, 200)
  t.same(list.json(), { items: [{ id: made.id, name: 'grafana', created_at: made.created_at, expires_at: null, last_used_at: null }] }, 'listed without the key')
  t.notOk(list.body.includes(made.key), 'the key is shown only at creation')

  const expires = new Date(Date.now() + 86_400_000).toISOString()
  const second = await makeKey(t, app, user, { name: 'ci', expires_at: expires })
  t.equal(second.expires_at, expires)
  t.not(second.key, made.key)

  const del = await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${made.id}`)
  t.equal(del.statusCode, 204)
  t.same((await call(app, bearer(user.jwt), 'GET', '/users/me/api_keys')).json().items.map((k: Made) => k.id), [second.id], 'the deleted key is not listed')
  const again = await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${made.id}`)
  t.equal(again.statusCode, 404)
  t.equal(again.json().code, 'UNITED_API_KEY_NOT_FOUND', 'deleting twice: 404')
})

t.test('a key acts as its user on REST: Bearer and the authentication header', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  await grant(app, user, robot)
  const { key } = await makeKey(t, app, user)
  for (const [style, headers] of [['Bearer', bearer(key)], ['authentication', authentication(key)], ['authentication with Bearer', { authentication: `Bearer ${key}` }]] as const) {
    const me = await call(app, headers, 'GET', '/users/me')
    t.equal(me.statusCode, 200, `${style}: /users/me`)
    t.same(me.json(), { id: user.id, username: user.username, is_staff: false, robots: [robot.uuid] }, `${style}: the key's user`)
    const robots = await call(app, headers, 'GET', '/robots')
    t.equal(robots.statusCode, 200, `${style}: /robots`)
    t.same(robots.json().items.map((r: { uuid: string }) => r.uuid), [robot.uuid], `${style}: the user's robots only`)
    t.equal((await call(app, headers, 'GET', `/robots/${other.uuid}`)).statusCode, 404, `${style}: not another robot`)
  }
  await eventually(async () => (await rows(app))[0]?.last_used_at, (v) => v !== null && v !== undefined)
  const listed = (await call(app, bearer(key), 'GET', '/users/me/api_keys')).json().items[0]
  t.match(listed.last_used_at, ISO, 'last_used_at is recorded')
})

t.test("a manager's key manages the robot's grants; a viewer's key is refused a command", async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const manager = await createUser(app)
  const viewer = await createUser(app)
  await grantRole(app, manager, robot, 'manager')
  await grantRole(app, viewer, robot, 'viewer')
  const managerKey = (await makeKey(t, app, manager)).key
  const viewerKey = (await makeKey(t, app, viewer)).key
  const put = await call(app, bearer(managerKey), 'PUT', `/robots/${robot.uuid}/grants/${viewer.username}`, { role: 'operator' })
  t.equal(put.statusCode, 204, 'the manager\'s key grants')
  const list = await call(app, bearer(managerKey), 'GET', `/robots/${robot.uuid}/grants`)
  t.match(list.json().items, [{ username: manager.username, role: 'manager' }, { username: viewer.username, role: 'operator' }])
  await grantRole(app, viewer, robot, 'viewer')
  const refused = await call(app, bearer(viewerKey), 'POST', '/robots/robot/command', { robot_uuid: robot.uuid, command: 'auto', ttl: 60 })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'UNITED_ROLE_REQUIRED')
})

t.test('a key cannot make keys, but lists and deletes them', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const first = await makeKey(t, app, user)
  const second = await makeKey(t, app, user)
  const res = await call(app, bearer(first.key), 'POST', '/users/me/api_keys', { name: 'more' })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'UNITED_API_KEY_FORBIDDEN')
  t.equal((await rows(app)).length, 2, 'nothing stored')
  const list = await call(app, bearer(first.key), 'GET', '/users/me/api_keys')
  t.equal(list.statusCode, 200)
  t.equal(list.json().items.length, 2)
  t.equal((await call(app, authentication(first.key), 'DELETE', `/users/me/api_keys/${second.id}`)).statusCode, 204, 'a key deletes another key')
  t.equal((await call(app, bearer(second.key), 'GET', '/users/me')).statusCode, 401, 'which ends at once')
  t.equal((await call(app, bearer(first.key), 'DELETE', `/users/me/api_keys/${first.id}`)).statusCode, 204, 'a key deletes itself')
  t.equal((await call(app, bearer(first.key), 'GET', '/users/me')).statusCode, 401)
})

t.test('at most 20 live keys; deleted ones do not count, concurrent creates cannot pass the limit', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const keys: Made[] = []
  for (let i = 0; i < 20; i++) keys.push(await makeKey(t, app, user, { name: `k${i}` }))
  const over = await call(app, bearer(user.jwt), 'POST', '/users/me/api_keys', { name: 'k20' })
  t.equal(over.statusCode, 409)
  t.equal(over.json().code, 'UNITED_TOO_MANY_API_KEYS')
  t.equal((await rows(app)).length, 20)
  t.equal((await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${keys[0]!.id}`)).statusCode, 204)
  await makeKey(t, app, user, { name: 'k20' })
  t.equal((await call(app, bearer(user.jwt), 'POST', '/users/me/api_keys', { name: 'k21' })).statusCode, 409, 'full again')
  // Concurrent creates of one user cannot pass the limit together.
  await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${keys[1]!.id}`)
  await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${keys[2]!.id}`)
  const burst = await Promise.all(Array.from({ length: 5 }, async (_, i) => (await call(app, bearer(user.jwt), 'POST', '/users/me/api_keys', { name: `b${i}` })).statusCode))
  t.same(burst.sort(), [201, 201, 409, 409, 409], 'five at once with two places: two made')
  t.equal((await call(app, bearer(user.jwt), 'GET', '/users/me/api_keys')).json().items.length, 20)
})

t.test('bad input: 400 with a clear message, nothing stored', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const cases: Array<[string, InjectOptions]> = [
    ['malformed JSON', { payload: '{"name": ', headers: { ...bearer(user.jwt), 'content-type': 'application/json' } }],
    ['no name', { payload: {} }],
    ['a number as name', { payload: { name: 5 } }],
    ['an empty name', { payload: { name: '' } }],
    ['a blank name', { payload: { name: '   ' } }],
    ['a name of 101 characters', { payload: { name: 'x'.repeat(101) } }],
    ['an unknown field', { payload: { name: 'a', scope: 'all' } }],
    ['a malformed expires_at', { payload: { name: 'a', expires_at: 'tomorrow' } }],
    ['an expires_at in the past', { payload: { name: 'a', expires_at: new Date(Date.now() - 60_000).toISOString() } }]
  ]
  for (const [what, opts] of cases) {
    const res = await app.inject({ method: 'POST', url: '/users/me/api_keys', headers: bearer(user.jwt), ...opts })
    t.equal(res.statusCode, 400, `${what}: 400`)
    t.ok(typeof res.json().message === 'string' && res.json().message.length > 0, `${what}: ${res.json().message}`)
  }
  t.match((await app.inject({ method: 'POST', url: '/users/me/api_keys', headers: bearer(user.jwt), payload: { name: 'a', expires_at: new Date(Date.now() - 60_000).toISOString() } })).json().message, /past/)
  t.equal((await rows(app)).length, 0, 'nothing stored')
  t.equal((await call(app, bearer(user.jwt), 'POST', '/users/me/api_keys', { name: 'x'.repeat(100) })).statusCode, 201, '100 characters are fine')
  t.equal((await call(app, bearer(user.jwt), 'DELETE', '/users/me/api_keys/not-a-uuid')).statusCode, 400, 'a malformed id: 400')
  t.equal((await call(app, {}, 'GET', '/users/me/api_keys')).statusCode, 401, 'no credentials: 401')
})

t.test('another user\'s key id: 404, and the key keeps working', async (t) => {
  const app = await build(t)
  const alice = await createUser(app)
  const bob = await createUser(app)
  const made = await makeKey(t, app, alice)
  for (const id of [made.id, '00000000-0000-4000-8000-000000000000']) {
    const res = await call(app, bearer(bob.jwt), 'DELETE', `/users/me/api_keys/${id}`)
    t.equal(res.statusCode, 404)
    t.equal(res.json().code, 'UNITED_API_KEY_NOT_FOUND')
  }
  t.same((await call(app, bearer(bob.jwt), 'GET', '/users/me/api_keys')).json(), { items: [] }, 'bob lists none of alice\'s keys')
  t.equal((await call(app, bearer(made.key), 'GET', '/users/me')).statusCode, 200)
})

t.test('a key ends at its expires_at', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const made = await makeKey(t, app, user, { name: 'short', expires_at: new Date(Date.now() + 1500).toISOString() })
  t.equal((await call(app, bearer(made.key), 'GET', '/users/me')).statusCode, 200, 'works before')
  const res = await eventually(async () => await call(app, bearer(made.key), 'GET', '/users/me'), (r) => r.statusCode !== 200, 10_000)
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'UNITED_TOKEN_INVALID', 'as a revoked JWT')
  t.same((await call(app, bearer(user.jwt), 'GET', '/users/me/api_keys')).json(), { items: [] }, 'no longer listed')
})

t.test('a deleted key is a revoked credential: 401, never counted toward the log-in limits', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '3', AUTH_FAIL_ADDRESS_LIMIT: '5' })
  const user = await createUser(app)
  const made = await makeKey(t, app, user)
  t.equal((await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${made.id}`)).statusCode, 204)
  const stored = await rows(app)
  t.equal(stored.length, 1, 'the row is kept')
  t.ok(stored[0]?.deleted_at !== null, 'marked deleted')
  for (let i = 0; i < 8; i++) {
    const res = await httpFrom(app, '127.0.0.5', 'GET', '/users/me', undefined, bearer(made.key))
    t.equal(res.statusCode, 401, `attempt ${i + 1}: 401`)
    t.equal(res.body.code, 'UNITED_TOKEN_INVALID')
  }
  t.notOk(await app.services.loginLimits.hasFailures('127.0.0.5'), 'nothing counted')
  const other = await makeKey(t, app, user)
  t.equal((await httpFrom(app, '127.0.0.5', 'GET', '/users/me', undefined, bearer(other.key))).statusCode, 200, 'that address still uses a valid key')
})

t.test('the keys of a deleted user stay known as revoked: 401, not counted', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '3', AUTH_FAIL_ADDRESS_LIMIT: '5' })
  const staff = await createStaff(app)
  const user = await createUser(app)
  const made = await makeKey(t, app, user)
  t.equal((await call(app, bearer(staff.jwt), 'DELETE', `/admin/api/users/${user.id}`)).statusCode, 204)
  const stored = await rows(app)
  t.equal(stored.length, 1, 'the row outlives its user')
  t.equal(stored[0]?.user_id, null, 'with no user')
  for (let i = 0; i < 6; i++) t.equal((await httpFrom(app, '127.0.0.6', 'GET', '/robots', undefined, bearer(made.key))).statusCode, 401)
  t.notOk(await app.services.loginLimits.hasFailures('127.0.0.6'), 'a revoked credential, not a guess: nothing counted')
  await app.services.apiKeys.sweep()
  t.ok((await rows(app))[0]?.deleted_at !== null, 'the sweep marks it deleted, to be forgotten after 7 days')
})

t.test('wrong keys count as failed log-ins: an address guessing keys gets 429; valid cached keys and other addresses go on', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '3', AUTH_FAIL_WINDOW: '30' })
  const user = await createUser(app)
  const made = await makeKey(t, app, user)
  t.equal((await httpFrom(app, '127.0.0.6', 'GET', '/users/me', undefined, bearer(made.key))).statusCode, 200, 'the valid key, cached')
  const guess = (i: number): string => `uk_${String(i).padStart(43, 'A')}`
  const wrong = `${made.key.slice(0, -4)}AAAA` === made.key ? `${made.key.slice(0, -4)}BBBB` : `${made.key.slice(0, -4)}AAAA`
  const codes: number[] = []
  for (const key of [guess(1), wrong, 'uk_short', guess(2), guess(3)]) {
    const res = await httpFrom(app, '127.0.0.7', 'GET', '/robots', undefined, bearer(key))
    codes.push(res.statusCode)
    if (res.statusCode === 401) t.equal(res.body.code, 'UNITED_TOKEN_INVALID')
  }
  t.same(codes.slice(0, 3), [401, 401, 401], 'three wrong keys (a guess, the right lookup with a wrong rest, a short one): 401')
  t.same(codes.slice(3), [429, 429], 'then blocked')
  const fresh = await app.services.apiKeys.create({ id: user.id, username: user.username, isStaff: false }, { name: 'fresh' }, { actor: null })
  const blocked = await httpFrom(app, '127.0.0.7', 'GET', '/users/me', undefined, bearer(fresh.key))
  t.equal(blocked.statusCode, 429, 'a valid key not yet cached, from the blocked address: refused too')
  t.ok(Number(blocked.headers['retry-after']) >= 1, 'with Retry-After')
  t.equal((await httpFrom(app, '127.0.0.6', 'GET', '/users/me', undefined, bearer(made.key))).statusCode, 200, 'another address goes on')
  const jwt = await httpFrom(app, '127.0.0.7', 'GET', '/users/me', undefined, bearer(user.jwt))
  t.equal(jwt.statusCode, 200, 'an access JWT from the blocked address is no log-in and goes on')
})

t.test('a password change or a deactivation ends the user\'s keys', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  for (const [what, patch] of [['a password change', { password: 'another-long-password' }], ['a deactivation', { is_active: false }]] as const) {
    const user = await createUser(app)
    const made = await makeKey(t, app, user)
    t.equal((await call(app, bearer(made.key), 'GET', '/users/me')).statusCode, 200, `${what}: works before`)
    t.equal((await call(app, bearer(staff.jwt), 'PATCH', `/admin/api/users/${user.id}`, patch)).statusCode, 200)
    const res = await call(app, bearer(made.key), 'GET', '/users/me')
    t.equal(res.statusCode, 401, `${what}: 401 at once`)
    if (what === 'a deactivation') {
      t.equal((await call(app, bearer(staff.jwt), 'PATCH', `/admin/api/users/${user.id}`, { is_active: true })).statusCode, 200)
      t.equal((await call(app, bearer(made.key), 'GET', '/users/me')).statusCode, 401, 'reactivated: the key stays ended')
    }
    const fresh = await app.services.auth.issueAccess(user)
    t.same((await call(app, bearer(fresh), 'GET', '/users/me/api_keys')).json(), { items: [] }, `${what}: no longer listed`)
  }
  // The sweep marks such keys deleted, so that they are purged in time.
  await app.services.apiKeys.sweep()
  t.ok((await rows(app)).every((r) => r.deleted_at !== null), 'swept: marked deleted')
  t.equal(await app.services.apiKeys.sweep(Date.now() + 8 * 86_400_000), 2, 'eight days later: purged')
})

t.test('the Management API: a staff user\'s key works, another user\'s key gets 403; staff list and delete a user\'s keys', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const staffKey = await makeKey(t, app, staff)
  const userKey = await makeKey(t, app, user)
  const users = await call(app, bearer(staffKey.key), 'GET', '/admin/api/users')
  t.equal(users.statusCode, 200, 'a staff key reaches the Management API')
  const made = await call(app, authentication(staffKey.key), 'POST', '/admin/api/robots', { serial: `SN-key-${process.pid}` })
  t.equal(made.statusCode, 201, 'and acts there')
  const refused = await call(app, bearer(userKey.key), 'GET', '/admin/api/users')
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'UNITED_STAFF_ONLY')

  t.same((await app.services.apiKeys.listOf(user.id)).map((k) => k.id), [userKey.id])
  await app.services.apiKeys.removeFor(user.id, userKey.id, { actor: { id: staff.id, username: staff.username } })
  t.equal((await call(app, bearer(userKey.key), 'GET', '/users/me')).statusCode, 401, 'deleted by staff: ended')
  await t.rejects(app.services.apiKeys.removeFor(staff.id, userKey.id, { actor: null }), { code: 'UNITED_API_KEY_NOT_FOUND' })
})

t.test('creation and deletion are audited with the key\'s id and name, never the key', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const made = await makeKey(t, app, user, { name: 'backup job' })
  t.equal((await call(app, bearer(user.jwt), 'DELETE', `/users/me/api_keys/${made.id}`)).statusCode, 204)
  const res = await call(app, bearer(staff.jwt), 'GET', `/admin/api/audit?user_id=${user.id}`)
  t.equal(res.statusCode, 200)
  const entries = (res.json().items as Array<{ action: string, actor: string, target_user_id: number, details: Record<string, unknown> }>).filter((e) => e.action.startsWith('api_key.'))
  t.same(entries.map((e) => e.action).sort(), ['api_key.created', 'api_key.deleted'])
  for (const e of entries) {
    t.same(e.details, { key_id: made.id, name: 'backup job' }, `${e.action}: id and name`)
    t.equal(e.actor, user.username)
    t.equal(e.target_user_id, user.id)
  }
  const text = JSON.stringify(await app.db.sequelize.query('SELECT * FROM audit_events', { type: QueryTypes.SELECT }))
  const stored = await rows(app)
  t.notOk(text.includes(made.key.slice(3)), 'the key is in no audit entry')
  t.notOk(text.includes(String(stored[0]?.key_hash)), 'nor its hash')
})
