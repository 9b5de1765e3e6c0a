// Management API for groups and robot grants (docs/protocol.md §13.2, §8):
// staff only (403 for others, 401 without a JWT); groups are created (409 on
// a taken name), listed, shown with their robots and users, deleted; robots
// put in and taken out; users granted a role (default operator) until an
// optional expires_at, a second PUT replacing it. Unknown groups are 404
// UNITED_GROUP_NOT_FOUND; bad input 400; every change audited once.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { createRobot, createStaff, createUser, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
type Res = Awaited<ReturnType<FastifyInstance['inject']>>
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000'

async function call (app: FastifyInstance, user: TestUser | null, method: Method, url: string, payload?: unknown): Promise<Res> {
  return await app.inject({ method, url, headers: user === null ? {} : bearer(user.jwt), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })
}

async function ok (app: FastifyInstance, user: TestUser, method: Method, url: string, payload?: unknown): Promise<Res> {
  const res = await call(app, user, method, url, payload)
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

async function actions (app: FastifyInstance, staff: TestUser, prefix: string): Promise<Array<{ action: string, actor_id: number | null, robot_uuid: string | null, target_user_id: number | null, details: Record<string, unknown> }>> {
  const items = (await ok(app, staff, 'GET', '/admin/api/audit?limit=1000')).json().items as Array<{ action: string, actor_id: number | null, robot_uuid: string | null, target_user_id: number | null, details: Record<string, unknown> }>
  return items.filter((a) => a.action.startsWith(prefix)).reverse()
}

const inSeconds = (s: number): string => new Date(Date.now() + s * 1000).toISOString()

t.test('every group and grant endpoint is staff only: 401 without a JWT, 403 for users of any role', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const manager = await createUser(app)
  await app.services.access.grant(manager.id, robot.uuid, { role: 'manager' }, { actor: null })
  const plain = await createUser(app)
  const group = (await ok(app, staff, 'POST', '/admin/api/groups', { name: 'staff-only' })).json().id as number
  const endpoints: Array<[Method, string, unknown?]> = [
    ['POST', '/admin/api/groups', { name: 'sneaky' }],
    ['GET', '/admin/api/groups'],
    ['GET', `/admin/api/groups/${group}`],
    ['DELETE', `/admin/api/groups/${group}`],
    ['PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`],
    ['DELETE', `/admin/api/groups/${group}/robots/${robot.uuid}`],
    ['PUT', `/admin/api/groups/${group}/users/${plain.id}`, { role: 'manager' }],
    ['DELETE', `/admin/api/groups/${group}/users/${plain.id}`],
    ['GET', `/admin/api/robots/${robot.uuid}/users`],
    ['PUT', `/admin/api/robots/${robot.uuid}/users/${plain.id}`, { role: 'manager' }],
    ['DELETE', `/admin/api/robots/${robot.uuid}/users/${manager.id}`]
  ]
  for (const [method, url, body] of endpoints) {
    t.equal((await call(app, null, method, url, body)).statusCode, 401, `${method} ${url} without a JWT: 401`)
    for (const [who, user] of [['a robot manager', manager], ['a user', plain]] as const) {
      const res = await call(app, user, method, url, body)
      t.equal(res.statusCode, 403, `${method} ${url} as ${who}: 403`)
      t.equal(res.json().code, 'UNITED_STAFF_ONLY')
    }
  }
  // nothing changed
  t.same((await ok(app, staff, 'GET', '/admin/api/groups')).json().items.map((g: { name: string }) => g.name), ['staff-only'])
  t.match((await ok(app, staff, 'GET', `/admin/api/groups/${group}`)).json(), { robots: [], users: [] })
  t.same((await ok(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json().items.map((g: { user_id: number, role: string }) => [g.user_id, g.role]), [[manager.id, 'manager']])
})

t.test('groups: create, list, show, delete; names are unique (409) and validated (400); unknown ids are 404 UNITED_GROUP_NOT_FOUND', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const user = await createUser(app)

  const created = await call(app, staff, 'POST', '/admin/api/groups', { name: 'Warehouse A' })
  t.equal(created.statusCode, 201)
  const a = created.json()
  t.same(Object.keys(a).sort(), ['created_at', 'id', 'name'])
  t.equal(a.name, 'Warehouse A')
  t.type(a.id, 'number')
  t.ok(Math.abs(Date.parse(a.created_at) - Date.now()) < 60_000, 'created_at is now')
  const b = (await ok(app, staff, 'POST', '/admin/api/groups', { name: '  Warehouse B  ' })).json()
  t.equal(b.name, 'Warehouse B', 'the name is trimmed')

  t.test('a taken name is 409 UNITED_GROUP_NAME_TAKEN', async (t) => {
    for (const name of ['Warehouse A', ' Warehouse B']) {
      const res = await call(app, staff, 'POST', '/admin/api/groups', { name })
      t.equal(res.statusCode, 409, `${JSON.stringify(name)}: 409`)
      t.equal(res.json().code, 'UNITED_GROUP_NAME_TAKEN')
    }
  })

  t.test('bad bodies are 400', async (t) => {
    const bodies: Array<[string, unknown]> = [
      ['no name', {}],
      ['empty name', { name: '' }],
      ['blank name', { name: '   ' }],
      ['name too long', { name: 'x'.repeat(101) }],
      ['name not a string', { name: 42 }],
      ['unknown field', { name: 'C', robots: [] }],
      ['not an object', ['C']]
    ]
    for (const [name, body] of bodies) t.equal((await call(app, staff, 'POST', '/admin/api/groups', body)).statusCode, 400, `${name}: 400`)
    t.equal((await call(app, staff, 'POST', '/admin/api/groups')).statusCode, 400, 'no body: 400')
    t.equal((await call(app, staff, 'POST', '/admin/api/groups', { name: 'x'.repeat(100) })).statusCode, 201, '100 characters are fine')
  })

  t.test('list and show', async (t) => {
    const list = (await ok(app, staff, 'GET', '/admin/api/groups')).json()
    t.same(Object.keys(list), ['items'])
    t.same(list.items.slice(0, 2), [a, b], 'by id, with the fields POST answered')
    const one = (await ok(app, staff, 'GET', `/admin/api/groups/${a.id as number}`)).json()
    t.same(one, { ...a, robots: [], users: [] })
  })

  t.test('unknown and malformed ids', async (t) => {
    const missing = 999999
    const endpoints: Array<[Method, string, unknown?]> = [
      ['GET', `/admin/api/groups/${missing}`],
      ['DELETE', `/admin/api/groups/${missing}`],
      ['PUT', `/admin/api/groups/${missing}/robots/${robot.uuid}`],
      ['DELETE', `/admin/api/groups/${missing}/robots/${robot.uuid}`],
      ['PUT', `/admin/api/groups/${missing}/users/${user.id}`, {}],
      ['DELETE', `/admin/api/groups/${missing}/users/${user.id}`]
    ]
    for (const [method, url, body] of endpoints) {
      const res = await call(app, staff, method, url, body)
      t.equal(res.statusCode, 404, `${method} ${url}: 404`)
      t.equal(res.json().code, 'UNITED_GROUP_NOT_FOUND')
      for (const bad of ['abc', '0', '-1', '1.5']) {
        t.equal((await call(app, staff, method, url.replace(String(missing), bad), body)).statusCode, 400, `${method} with id ${bad}: 400`)
      }
    }
  })

  t.test('delete: 204, then 404; the name is free again; its robots stay', async (t) => {
    const c = (await ok(app, staff, 'POST', '/admin/api/groups', { name: 'Doomed' })).json()
    await ok(app, staff, 'PUT', `/admin/api/groups/${c.id as number}/robots/${robot.uuid}`)
    await ok(app, staff, 'PUT', `/admin/api/groups/${c.id as number}/users/${user.id}`)
    const del = await call(app, staff, 'DELETE', `/admin/api/groups/${c.id as number}`)
    t.equal(del.statusCode, 204)
    t.equal(del.body, '')
    t.equal((await call(app, staff, 'GET', `/admin/api/groups/${c.id as number}`)).statusCode, 404)
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${c.id as number}`)).statusCode, 404, 'a second DELETE: 404')
    t.notOk((await ok(app, staff, 'GET', '/admin/api/groups')).json().items.some((g: { id: number }) => g.id === c.id), 'not listed')
    t.equal((await call(app, staff, 'GET', `/admin/api/robots/${robot.uuid}`)).statusCode, 200, 'the robot stays')
    t.equal((await call(app, user, 'GET', `/robots/${robot.uuid}`)).statusCode, 404, 'its grant went with it')
    t.equal((await call(app, staff, 'POST', '/admin/api/groups', { name: 'Doomed' })).statusCode, 201, 'the name can be used again')
  })
})

t.test("a group's robots and users: put in, replaced, taken out, idempotent, validated, audited", async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const r1 = await createRobot(app)
  const r2 = await createRobot(app)
  const u1 = await createUser(app)
  const u2 = await createUser(app)
  const g = (await ok(app, staff, 'POST', '/admin/api/groups', { name: 'Site' })).json().id as number
  const detail = async (): Promise<{ robots: string[], users: Array<{ user_id: number, username: string, role: string, expires_at: string | null }> }> => (await ok(app, staff, 'GET', `/admin/api/groups/${g}`)).json()

  t.test('robots', async (t) => {
    for (const uuid of [r2.uuid, r1.uuid.toUpperCase(), r1.uuid]) {
      const res = await call(app, staff, 'PUT', `/admin/api/groups/${g}/robots/${uuid}`)
      t.equal(res.statusCode, 204)
      t.equal(res.body, '')
    }
    t.same((await detail()).robots, [r1.uuid, r2.uuid], 'each once, by robot id (any case of the uuid)')
    const unknown = await call(app, staff, 'PUT', `/admin/api/groups/${g}/robots/${UNKNOWN_UUID}`)
    t.equal(unknown.statusCode, 404)
    t.equal(unknown.json().code, 'UNITED_ROBOT_NOT_FOUND')
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/robots/${UNKNOWN_UUID}`)).json().code, 'UNITED_ROBOT_NOT_FOUND')
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/robots/not-a-uuid`)).statusCode, 400)
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/robots/${r2.uuid}`)).statusCode, 204)
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/robots/${r2.uuid}`)).statusCode, 204, 'again: nothing to do')
    t.same((await detail()).robots, [r1.uuid])
    // a robot may be in several groups
    const other = (await ok(app, staff, 'POST', '/admin/api/groups', { name: 'Other site' })).json().id as number
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${other}/robots/${r1.uuid}`)).statusCode, 204)
    t.same((await ok(app, staff, 'GET', `/admin/api/groups/${other}`)).json().robots, [r1.uuid])
    await ok(app, staff, 'DELETE', `/admin/api/groups/${other}`)

    const trail = (await actions(app, staff, 'group.robot_')).filter((a) => a.details.group_id === g)
    t.same(trail.map((a) => [a.action, a.robot_uuid]), [['group.robot_added', r2.uuid], ['group.robot_added', r1.uuid], ['group.robot_removed', r2.uuid]], 'each change audited once, no-ops not')
    t.ok(trail.every((a) => a.actor_id === staff.id))
  })

  t.test('users', async (t) => {
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u1.id}`)).statusCode, 204, 'no body')
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u2.id}`, { role: 'viewer' })).statusCode, 204)
    t.same((await detail()).users, [
      { user_id: u1.id, username: u1.username, role: 'operator', expires_at: null },
      { user_id: u2.id, username: u2.username, role: 'viewer', expires_at: null }
    ], 'default operator')
    const ends = inSeconds(3600)
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u1.id}`, { role: 'manager', expires_at: ends })).statusCode, 204)
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u2.id}`, { role: 'viewer' })).statusCode, 204, 'the same grant again')
    t.same((await detail()).users[0], { user_id: u1.id, username: u1.username, role: 'manager', expires_at: ends }, 'a second PUT replaces role and expiry')
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u1.id}`, { expires_at: null })).statusCode, 204)
    t.same((await detail()).users[0], { user_id: u1.id, username: u1.username, role: 'operator', expires_at: null }, 'and back to the defaults')

    const bodies: Array<[string, unknown]> = [
      ['past expires_at', { expires_at: inSeconds(-5) }],
      ['invalid role', { role: 'owner' }],
      ['staff is no role', { role: 'staff' }],
      ['malformed expires_at', { expires_at: 'next week' }],
      ['unknown field', { role: 'viewer', note: 'x' }]
    ]
    for (const [name, body] of bodies) t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u2.id}`, body)).statusCode, 400, `${name}: 400`)
    t.equal((await detail()).users[1]?.role, 'viewer', 'unchanged by the refusals')

    const unknown = await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/999999`, {})
    t.equal(unknown.statusCode, 404)
    t.equal(unknown.json().code, 'UNITED_USER_NOT_FOUND')
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/users/999999`)).json().code, 'UNITED_USER_NOT_FOUND')
    t.equal((await call(app, staff, 'PUT', `/admin/api/groups/${g}/users/abc`, {})).statusCode, 400)

    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/users/${u2.id}`)).statusCode, 204)
    t.equal((await call(app, staff, 'DELETE', `/admin/api/groups/${g}/users/${u2.id}`)).statusCode, 204, 'again: nothing to do')
    t.same((await detail()).users.map((u) => u.user_id), [u1.id])

    const trail = (await actions(app, staff, 'group.')).filter((a) => a.details.group_id === g && !a.action.startsWith('group.robot_'))
    t.same(trail.map((a) => [a.action, a.target_user_id]), [
      ['group.created', null],
      ['group.granted', u1.id],
      ['group.granted', u2.id],
      ['group.grant_changed', u1.id],
      ['group.grant_changed', u1.id],
      ['group.revoked', u2.id]
    ], 'each change audited once, no-ops and refusals not')
    t.ok(trail.every((a) => a.actor_id === staff.id), 'by the staff member')
    t.match(trail[3]?.details, { group: 'Site', username: u1.username, role: 'manager', expires_at: ends, was: { role: 'operator', expires_at: null } })
  })

  t.test('deleting a robot or a user takes them out of the group', async (t) => {
    await ok(app, staff, 'PUT', `/admin/api/groups/${g}/robots/${r2.uuid}`)
    await ok(app, staff, 'PUT', `/admin/api/groups/${g}/users/${u2.id}`)
    await ok(app, staff, 'DELETE', `/admin/api/robots/${r2.uuid}`)
    await ok(app, staff, 'DELETE', `/admin/api/users/${u2.id}`)
    const now = await detail()
    t.same(now.robots, [r1.uuid])
    t.same(now.users.map((u) => u.user_id), [u1.id])
    await ok(app, staff, 'DELETE', `/admin/api/groups/${g}`)
    const deleted = (await actions(app, staff, 'group.deleted')).filter((a) => a.details.group_id === g)
    t.equal(deleted.length, 1)
    t.match(deleted[0]?.details, { group: 'Site', users: [u1.id] })
  })
})

t.test('robot grants: PUT (default operator, a second replaces), GET, DELETE; validated and audited', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const u1 = await createUser(app)
  const u2 = await createUser(app)
  const users = async (): Promise<unknown[]> => (await ok(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json().items

  t.same((await ok(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json(), { items: [] })
  const first = await call(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${u1.id}`)
  t.equal(first.statusCode, 204)
  t.equal(first.body, '')
  t.equal((await call(app, staff, 'PUT', `/admin/api/robots/${robot.uuid.toUpperCase()}/users/${u2.id}`, { role: 'viewer' })).statusCode, 204)
  t.same(await users(), [
    { user_id: u1.id, username: u1.username, role: 'operator', expires_at: null },
    { user_id: u2.id, username: u2.username, role: 'viewer', expires_at: null }
  ])
  const ends = inSeconds(7200)
  t.equal((await call(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${u1.id}`, { role: 'manager', expires_at: ends })).statusCode, 204)
  t.same((await users())[0], { user_id: u1.id, username: u1.username, role: 'manager', expires_at: ends }, 'replaced')
  t.equal((await call(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${u1.id}`, { role: 'manager', expires_at: ends })).statusCode, 204, 'the same again')
  t.equal((await call(app, u1, 'GET', `/robots/${robot.uuid}`)).json().role, 'manager')

  const bodies: Array<[string, unknown]> = [
    ['past expires_at', { role: 'viewer', expires_at: inSeconds(-5) }],
    ['invalid role', { role: 'superuser' }],
    ['malformed expires_at', { expires_at: '32/13/2026' }],
    ['unknown field', { roles: ['viewer'] }]
  ]
  for (const [name, body] of bodies) t.equal((await call(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${u2.id}`, body)).statusCode, 400, `${name}: 400`)
  t.match((await users())[1], { role: 'viewer', expires_at: null }, 'unchanged by the refusals')

  for (const [method, url, code] of [
    ['PUT', `/admin/api/robots/${robot.uuid}/users/999999`, 'UNITED_USER_NOT_FOUND'],
    ['DELETE', `/admin/api/robots/${robot.uuid}/users/999999`, 'UNITED_USER_NOT_FOUND'],
    ['PUT', `/admin/api/robots/${UNKNOWN_UUID}/users/${u1.id}`, 'UNITED_ROBOT_NOT_FOUND'],
    ['DELETE', `/admin/api/robots/${UNKNOWN_UUID}/users/${u1.id}`, 'UNITED_ROBOT_NOT_FOUND'],
    ['GET', `/admin/api/robots/${UNKNOWN_UUID}/users`, 'UNITED_ROBOT_NOT_FOUND']
  ] as const) {
    const res = await call(app, staff, method, url, method === 'PUT' ? {} : undefined)
    t.equal(res.statusCode, 404, `${method} ${url}: 404`)
    t.equal(res.json().code, code)
  }

  t.equal((await call(app, staff, 'DELETE', `/admin/api/robots/${robot.uuid}/users/${u2.id}`)).statusCode, 204)
  t.equal((await call(app, staff, 'DELETE', `/admin/api/robots/${robot.uuid}/users/${u2.id}`)).statusCode, 204, 'again: nothing to do')
  t.same((await users()).map((g) => (g as { user_id: number }).user_id), [u1.id])

  const trail = await actions(app, staff, 'access.')
  t.same(trail.map((a) => [a.action, a.target_user_id]), [
    ['access.granted', u1.id],
    ['access.granted', u2.id],
    ['access.changed', u1.id],
    ['access.revoked', u2.id]
  ], 'each change audited once, no-ops and refusals not')
  t.ok(trail.every((a) => a.actor_id === staff.id && a.robot_uuid === robot.uuid))
  t.match(trail[0]?.details, { username: u1.username, serial: robot.serial, role: 'operator', expires_at: null })
  t.match(trail[2]?.details, { role: 'manager', expires_at: ends, was: { role: 'operator', expires_at: null } })
})
