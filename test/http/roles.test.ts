// Roles on robots (docs/protocol.md §13): viewer < operator < manager, staff
// above all. Every robot endpoint for every role, both ways: no role is 404
// (the same answer as an unknown robot), a role too low is 403
// UNITED_ROLE_REQUIRED naming the role needed. The effective role is the
// highest of the direct grant and the group grants, expired ones left out;
// an expiring grant ends by itself and is audited as access.expired once; a
// grant lowered below operator cancels its user's queued commands.
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import type { Role } from '../../src/contract/roles.js'
import { commandItems, queueCommand, sendCommand, type CommandItem } from '../commands.js'
import { createRobot, createStaff, createUser, grantRole, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { connectRobot, eventually, subscribe } from '../mqtt.js'

type Who = 'none' | Role | 'staff'
const WHO: Who[] = ['none', 'viewer', 'operator', 'manager', 'staff']
const RANK: Record<Who, number> = { none: 0, viewer: 1, operator: 2, manager: 3, staff: 4 }
const UNKNOWN = '00000000-0000-4000-8000-000000000000'
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
type Res = Awaited<ReturnType<FastifyInstance['inject']>>

async function call (app: FastifyInstance, user: TestUser, method: Method, url: string, payload?: unknown): Promise<Res> {
  return await app.inject({ method, url, headers: bearer(user.jwt), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })
}

/** A staff call that must succeed (fixtures through the Management API). */
async function staffCall (app: FastifyInstance, staff: TestUser, method: Method, url: string, payload?: unknown): Promise<Res> {
  const res = await call(app, staff, method, url, payload)
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

/** The user's effective role on the robot as GET /robots/{uuid} tells it, or the status when refused. */
async function roleOf (app: FastifyInstance, user: TestUser, uuid: string): Promise<string | number> {
  const res = await call(app, user, 'GET', `/robots/${uuid}`)
  return res.statusCode === 200 ? res.json().role : res.statusCode
}

async function audits (app: FastifyInstance, staff: TestUser, query: string): Promise<Array<{ action: string, actor_id: number | null, target_user_id: number | null, robot_uuid: string | null, details: Record<string, unknown> }>> {
  return (await staffCall(app, staff, 'GET', `/admin/api/audit?limit=1000&${query}`)).json().items
}

/** Holds the expiry sweep until the returned function runs it (once, then as usual). */
function holdSweep (t: Test, app: FastifyInstance): () => Promise<number> {
  const sweep = app.services.access.expireDue
  app.services.access.expireDue = async () => 0
  const restore = (): void => { app.services.access.expireDue = sweep }
  t.teardown(restore)
  return async () => { restore(); return await app.services.access.expireDue() }
}

const inSeconds = (s: number): string => new Date(Date.now() + s * 1000).toISOString()

interface Fixture {
  app: FastifyInstance
  staff: TestUser
  /** not connected: commands with a ttl are queued */
  robot: TestRobot
  /** command-connected: commands go out at once */
  live: TestRobot
  users: Record<Who, TestUser>
  /** whom managers grant and revoke */
  target: TestUser
}

interface Action {
  name: string
  need: Role
  /** the status when allowed */
  ok: number
  call: (f: Fixture, user: TestUser) => Promise<Res>
  /** checks the allowed answer further */
  check?: (t: Test, res: Res, who: Who) => void
}

const from = new Date(Date.now() - 3600_000).toISOString()
const to = new Date(Date.now() + 3600_000).toISOString()

const ACTIONS: Action[] = [
  {
    name: 'GET /robots/{uuid}',
    need: 'viewer',
    ok: 200,
    call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}`),
    check: (t, res, who) => { t.equal(res.json().role, who, 'with the role') }
  },
  { name: 'GET /robots/{uuid}/frames', need: 'viewer', ok: 200, call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/frames`) },
  { name: 'GET /robots/{uuid}/frames/aggregate', need: 'viewer', ok: 200, call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/frames/aggregate?type=1&bucket=60&from=${from}&to=${to}`) },
  { name: 'GET /robots/{uuid}/frames/export (NDJSON)', need: 'viewer', ok: 200, call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/frames/export`) },
  { name: 'GET /robots/{uuid}/frames/export (CSV)', need: 'viewer', ok: 200, call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/frames/export?format=csv&type=1`) },
  { name: 'GET /robots/{uuid}/commands', need: 'viewer', ok: 200, call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/commands`) },
  {
    name: 'POST /robots/robot/command (queued with a ttl)',
    need: 'operator',
    ok: 201,
    call: async (f, u) => await sendCommand(f.app, u, f.robot.uuid, 'auto', { ttl: 600 }),
    check: (t, res) => { t.equal(res.json().status, 'queued') }
  },
  {
    name: 'POST /robots/robot/command (connected)',
    need: 'operator',
    ok: 201,
    call: async (f, u) => await sendCommand(f.app, u, f.live.uuid, 'idle'),
    check: (t, res) => { t.equal(res.json().status, 'pending') }
  },
  {
    name: 'POST /robots/robot/command (not connected, no ttl)',
    need: 'operator',
    ok: 409,
    call: async (f, u) => await sendCommand(f.app, u, f.robot.uuid, 'idle'),
    check: (t, res) => { t.equal(res.json().code, 'ROBOT_NOT_CONNECTED', 'not connected only to those who may command it') }
  },
  {
    name: 'POST /robots/{uuid}/commands/{id}/cancel',
    need: 'operator',
    ok: 200,
    call: async (f, u) => {
      const queued = await queueCommand(f.app, f.staff, f.robot.uuid, 'manual')
      return await call(f.app, u, 'POST', `/robots/${f.robot.uuid}/commands/${queued.id}/cancel`)
    },
    check: (t, res) => { t.equal(res.json().status, 'cancelled') }
  },
  {
    name: 'GET /robots/{uuid}/grants',
    need: 'manager',
    ok: 200,
    call: async (f, u) => await call(f.app, u, 'GET', `/robots/${f.robot.uuid}/grants`),
    check: (t, res) => { t.same(res.json().items.map((g: { username: string }) => g.username).sort(), ['manager', 'operator', 'viewer'].map((r) => `${r}_${process.pid}`).sort()) }
  },
  { name: 'PUT /robots/{uuid}/grants/{username}', need: 'manager', ok: 204, call: async (f, u) => await call(f.app, u, 'PUT', `/robots/${f.robot.uuid}/grants/${f.target.username}`, { role: 'viewer' }) },
  { name: 'DELETE /robots/{uuid}/grants/{username}', need: 'manager', ok: 204, call: async (f, u) => await call(f.app, u, 'DELETE', `/robots/${f.robot.uuid}/grants/${f.target.username}`) }
]

/** The same request on a robot that does not exist: what "no role" must look like. */
async function unknownRobot (f: Fixture, action: Action, user: TestUser): Promise<Res> {
  const swap = (r: TestRobot): TestRobot => ({ ...r, uuid: UNKNOWN })
  if (action.name.startsWith('POST /robots/{uuid}/commands/')) return await call(f.app, user, 'POST', `/robots/${UNKNOWN}/commands/${UNKNOWN}/cancel`)
  return await action.call({ ...f, robot: swap(f.robot), live: swap(f.live) }, user)
}

t.test('every robot endpoint for every role: allowed from its role up, 403 UNITED_ROLE_REQUIRED below, 404 with none', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const live = await createRobot(app)
  const users = { staff } as Record<Who, TestUser>
  for (const who of WHO.filter((w) => w !== 'staff')) users[who] = await createUser(app, { username: `${who}_${process.pid}` })
  for (const role of ['viewer', 'operator', 'manager'] as const) {
    await grantRole(app, users[role], robot, role)
    await grantRole(app, users[role], live, role)
  }
  const target = await createUser(app)
  const f: Fixture = { app, staff, robot, live, users, target }

  const client = await connectRobot(t, app, live)
  await subscribe(client, `robots/${live.uuid}/commands`)
  await eventually(async () => await app.services.presence.isCommandConnected(live.uuid), (yes) => yes)

  for (const action of ACTIONS) {
    for (const who of WHO) {
      const user = users[who]
      const res = await action.call(f, user)
      const label = `${action.name} as ${who}`
      if (who === 'none') {
        t.equal(res.statusCode, 404, `${label}: 404`)
        const unknown = await unknownRobot(f, action, user)
        t.same(res.json(), unknown.json(), `${label}: the same answer as an unknown robot`)
      } else if (RANK[who] < RANK[action.need]) {
        t.equal(res.statusCode, 403, `${label}: 403`)
        t.match(res.json(), { statusCode: 403, code: 'UNITED_ROLE_REQUIRED', message: new RegExp(`\\b${action.need}\\b`) }, `${label}: names the ${action.need} role`)
      } else {
        t.equal(res.statusCode, action.ok, `${label}: ${action.ok}`)
        if (res.statusCode === action.ok) action.check?.(t, res, who)
      }
    }
  }

  // what the refused did not do: only allowed users' commands were stored
  const issuers = (await commandItems(app, staff, robot.uuid)).map((c) => c as CommandItem & { issued_by: string })
  t.notOk(issuers.some((c) => c.issued_by === users.viewer.username || c.issued_by === users.none.username), 'no command of a viewer or a stranger was stored')
  t.equal((await app.services.access.grantsOf(robot.uuid)).some((g) => g.user_id === target.id), false, "the refused grants changed nothing (the last allowed call was a DELETE)")
})

t.test('the OpenAPI document lists 403 on every endpoint that needs more than the viewer role', async (t) => {
  const app = await build(t)
  const paths = (await app.inject({ method: 'GET', url: '/docs/json' })).json().paths as Record<string, Record<string, { responses: Record<string, unknown> }>>
  const needing: Array<[string, string]> = [
    ['post', '/robots/robot/command'],
    ['post', '/robots/{uuid}/commands/{id}/cancel'],
    ['get', '/robots/{uuid}/grants'],
    ['put', '/robots/{uuid}/grants/{username}'],
    ['delete', '/robots/{uuid}/grants/{username}']
  ]
  for (const [method, path] of needing) t.ok('403' in (paths[path]?.[method]?.responses ?? {}), `${method.toUpperCase()} ${path} documents 403`)
})

t.test('the role field of robot items, and GET /robots listing only robots with a role', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robots: Record<Who, TestRobot> = {} as Record<Who, TestRobot>
  for (const who of ['none', 'viewer', 'operator', 'manager'] as const) robots[who] = await createRobot(app)
  for (const role of ['viewer', 'operator', 'manager'] as const) await grantRole(app, user, robots[role], role)

  const list = await call(app, user, 'GET', '/robots?limit=100')
  t.equal(list.statusCode, 200)
  const roles = Object.fromEntries(list.json().items.map((r: { uuid: string, role: string }) => [r.uuid, r.role]))
  t.same(roles, { [robots.viewer.uuid]: 'viewer', [robots.operator.uuid]: 'operator', [robots.manager.uuid]: 'manager' }, 'each with its role, the robot without one absent')
  for (const role of ['viewer', 'operator', 'manager'] as const) t.equal(await roleOf(app, user, robots[role].uuid), role)
  t.equal(await roleOf(app, user, robots.none.uuid), 404)

  const all = (await call(app, staff, 'GET', '/robots?limit=100')).json().items as Array<{ role: string }>
  t.equal(all.length, 4)
  t.ok(all.every((r) => r.role === 'staff'), 'staff: "staff" on every robot')
  t.equal(await roleOf(app, staff, robots.none.uuid), 'staff')
})

t.test("managers manage a robot's direct grants, only on active non-staff users", async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const manager = await createUser(app)
  const operator = await createUser(app)
  const target = await createUser(app)
  const inactive = await createUser(app)
  await staffCall(app, staff, 'PATCH', `/admin/api/users/${inactive.id}`, { is_active: false })
  await grantRole(app, manager, robot, 'manager')
  await grantRole(app, manager, other, 'operator')
  await grantRole(app, operator, robot, 'operator')
  const grants = (uuid: string, name: string): string => `/robots/${uuid}/grants/${encodeURIComponent(name)}`

  t.test('staff, unknown and inactive usernames are 404', async (t) => {
    for (const [name, username] of [['staff', staff.username], ['unknown', 'nobody-at-all'], ['inactive', inactive.username]]) {
      for (const method of ['PUT', 'DELETE'] as const) {
        const res = await call(app, manager, method, grants(robot.uuid, username as string), method === 'PUT' ? { role: 'viewer' } : undefined)
        t.equal(res.statusCode, 404, `${method} on a ${name as string} user: 404`)
        t.equal(res.json().code, 'UNITED_USER_NOT_FOUND')
      }
    }
    t.equal(await roleOf(app, inactive, robot.uuid), 401, 'the inactive user got nothing (and cannot log in anyway)')
    t.equal((await app.services.access.grantsOf(robot.uuid)).length, 2, 'no grant was written')
  })

  t.test('a robot the manager only operates is 403, one without a role 404, even for valid targets', async (t) => {
    const third = await createRobot(app)
    const cases: Array<[string, number, string]> = [[other.uuid, 403, 'UNITED_ROLE_REQUIRED'], [third.uuid, 404, 'UNITED_ROBOT_NOT_FOUND'], [UNKNOWN, 404, 'UNITED_ROBOT_NOT_FOUND']]
    for (const [uuid, status, code] of cases) {
      for (const [method, url] of [['GET', `/robots/${uuid}/grants`], ['PUT', grants(uuid, target.username)], ['DELETE', grants(uuid, target.username)], ['PUT', grants(uuid, staff.username)], ['PUT', grants(uuid, 'nobody-at-all')]] as const) {
        const res = await call(app, manager, method, url, method === 'PUT' ? {} : undefined)
        t.equal(res.statusCode, status, `${method} ${url}: ${status}`)
        t.equal(res.json().code, code)
        if (status === 403) t.match(res.json().message, /\bmanager\b/)
      }
    }
    t.equal(await roleOf(app, target, other.uuid), 404)
  })

  t.test('grant, change, list and revoke, audited with the manager as actor', async (t) => {
    t.equal((await call(app, manager, 'PUT', grants(robot.uuid, target.username.toUpperCase()), {})).statusCode, 204, 'no body field: operator (the username in any case)')
    t.equal(await roleOf(app, target, robot.uuid), 'operator')
    t.equal((await call(app, manager, 'PUT', grants(robot.uuid, target.username), { role: 'viewer' })).statusCode, 204)
    t.equal(await roleOf(app, target, robot.uuid), 'viewer', 'a second PUT replaces the role')
    const ends = inSeconds(3600)
    t.equal((await call(app, manager, 'PUT', grants(robot.uuid, target.username), { role: 'manager', expires_at: ends })).statusCode, 204)
    t.equal(await roleOf(app, target, robot.uuid), 'manager')
    const list = await call(app, manager, 'GET', `/robots/${robot.uuid}/grants`)
    t.equal(list.statusCode, 200)
    t.same(list.json().items.find((g: { username: string }) => g.username === target.username), { username: target.username, role: 'manager', expires_at: ends })
    t.same(list.json().items.map((g: { username: string }) => g.username).sort(), [manager.username, operator.username, target.username].sort())
    t.equal((await call(app, target, 'GET', `/robots/${robot.uuid}/grants`)).statusCode, 200, 'the new manager manages')
    // a page at a time
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page = await call(app, manager, 'GET', `/robots/${robot.uuid}/grants?limit=1${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
      t.equal(page.statusCode, 200)
      t.ok(page.json().items.length <= 1)
      seen.push(...page.json().items.map((g: { username: string }) => g.username))
      cursor = page.json().next_cursor
    } while (cursor !== null && seen.length < 10)
    t.same(seen.sort(), [manager.username, operator.username, target.username].sort(), 'pages of one: each grant once')

    t.equal((await call(app, manager, 'DELETE', grants(robot.uuid, target.username))).statusCode, 204)
    t.equal(await roleOf(app, target, robot.uuid), 404)
    t.equal((await call(app, manager, 'DELETE', grants(robot.uuid, target.username))).statusCode, 204, 'a second DELETE: nothing to do')

    const trail = (await audits(app, staff, `robot_uuid=${robot.uuid}&user_id=${target.id}`)).filter((a) => a.action.startsWith('access.')).reverse()
    t.same(trail.map((a) => a.action), ['access.granted', 'access.changed', 'access.changed', 'access.revoked'], 'each change once, the no-op not')
    t.ok(trail.every((a) => a.actor_id === manager.id), 'by the manager')
    t.match(trail[1]?.details, { role: 'viewer', was: { role: 'operator', expires_at: null } })
  })

  t.test('bad bodies: a past expires_at, an invalid role, an unknown field, a malformed date are 400', async (t) => {
    const bodies: Array<[string, unknown]> = [
      ['past expires_at', { role: 'viewer', expires_at: inSeconds(-60) }],
      ['invalid role', { role: 'owner' }],
      ['staff as a role', { role: 'staff' }],
      ['unknown field', { role: 'viewer', admin: true }],
      ['malformed date', { expires_at: 'tomorrow' }]
    ]
    for (const [name, body] of bodies) {
      const res = await call(app, manager, 'PUT', grants(robot.uuid, target.username), body)
      t.equal(res.statusCode, 400, `${name}: 400`)
    }
    t.equal(await roleOf(app, target, robot.uuid), 404, 'nothing was granted')
  })
})

t.test('group grants: the effective role is the highest of the direct and the group grants; taking the robot out, the grant or the group away ends it', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robot = await createRobot(app)
  const newGroup = async (name: string): Promise<number> => (await staffCall(app, staff, 'POST', '/admin/api/groups', { name })).json().id
  const groupGrant = async (id: number, role: Role | null): Promise<void> => {
    if (role === null) await staffCall(app, staff, 'DELETE', `/admin/api/groups/${id}/users/${user.id}`)
    else await staffCall(app, staff, 'PUT', `/admin/api/groups/${id}/users/${user.id}`, { role })
  }
  const direct = async (role: Role | null): Promise<void> => {
    if (role === null) await staffCall(app, staff, 'DELETE', `/admin/api/robots/${robot.uuid}/users/${user.id}`)
    else await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${user.id}`, { role })
  }
  const g1 = await newGroup(`site-a-${process.pid}`)
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${g1}/robots/${robot.uuid}`)

  t.test('a group grant alone gives its role, and only on the group\'s robots', async (t) => {
    const elsewhere = await createRobot(app)
    await groupGrant(g1, 'viewer')
    t.equal(await roleOf(app, user, robot.uuid), 'viewer')
    t.equal(await roleOf(app, user, elsewhere.uuid), 404)
    const refused = await sendCommand(app, user, robot.uuid, 'auto', { ttl: 600 })
    t.match(refused.json(), { statusCode: 403, code: 'UNITED_ROLE_REQUIRED', message: /\boperator\b/ })
    t.same((await call(app, user, 'GET', '/robots')).json().items.map((r: { uuid: string, role: string }) => [r.uuid, r.role]), [[robot.uuid, 'viewer']])
    t.same((await call(app, user, 'GET', '/users/me')).json().robots, [robot.uuid], '/users/me lists it')
    await groupGrant(g1, 'operator')
    t.equal((await sendCommand(app, user, robot.uuid, 'auto', { ttl: 600 })).statusCode, 201, 'a group operator commands')
    await groupGrant(g1, 'manager')
    t.equal((await call(app, user, 'GET', `/robots/${robot.uuid}/grants`)).statusCode, 200, 'a group manager manages')
  })

  t.test('the highest of direct and group grants, whichever is higher', async (t) => {
    const table: Array<[Role | null, Role | null, Role | 404]> = [
      ['viewer', 'operator', 'operator'],
      ['operator', 'viewer', 'operator'],
      ['manager', 'viewer', 'manager'],
      ['viewer', 'manager', 'manager'],
      ['viewer', null, 'viewer'],
      [null, 'operator', 'operator'],
      [null, null, 404]
    ]
    for (const [d, g, expected] of table) {
      await direct(d)
      await groupGrant(g1, g)
      t.equal(await roleOf(app, user, robot.uuid), expected, `direct ${d ?? 'none'}, group ${g ?? 'none'}: ${expected}`)
      const listed = (await call(app, user, 'GET', '/robots')).json().items.map((r: { role: string }) => r.role)
      t.same(listed, expected === 404 ? [] : [expected], 'GET /robots agrees')
    }
    // two groups holding the robot: the higher grant counts
    const g2 = await newGroup(`site-b-${process.pid}`)
    await staffCall(app, staff, 'PUT', `/admin/api/groups/${g2}/robots/${robot.uuid}`)
    await groupGrant(g1, 'viewer')
    await groupGrant(g2, 'manager')
    t.equal(await roleOf(app, user, robot.uuid), 'manager', 'two groups: the higher')
    await staffCall(app, staff, 'DELETE', `/admin/api/groups/${g2}`)
    t.equal(await roleOf(app, user, robot.uuid), 'viewer', 'the other group stays')
  })

  t.test('taking the robot out of the group, the group grant away or deleting the group ends the role (the direct grant stays)', async (t) => {
    const losses: Array<[string, (id: number) => Promise<void>]> = [
      ['robot taken out', async (id) => { await staffCall(app, staff, 'DELETE', `/admin/api/groups/${id}/robots/${robot.uuid}`) }],
      ['group grant removed', async (id) => { await groupGrant(id, null) }],
      ['group deleted', async (id) => { await staffCall(app, staff, 'DELETE', `/admin/api/groups/${id}`) }]
    ]
    for (const [name, lose] of losses) {
      const id = await newGroup(`loss-${name}-${process.pid}`)
      await staffCall(app, staff, 'PUT', `/admin/api/groups/${id}/robots/${robot.uuid}`)
      await groupGrant(id, 'manager')
      await groupGrant(g1, null)
      await direct(null)
      t.equal(await roleOf(app, user, robot.uuid), 'manager', `${name}: before`)
      await lose(id)
      t.equal(await roleOf(app, user, robot.uuid), 404, `${name}: no role left`)
      t.same((await call(app, user, 'GET', '/users/me')).json().robots, [], `${name}: /users/me no longer lists it`)
      t.equal((await call(app, user, 'GET', `/robots/${robot.uuid}/commands`)).statusCode, 404)

      // again with a direct viewer grant: it is what remains
      const again = await newGroup(`loss-again-${name}-${process.pid}`)
      await staffCall(app, staff, 'PUT', `/admin/api/groups/${again}/robots/${robot.uuid}`)
      await groupGrant(again, 'operator')
      await direct('viewer')
      t.equal(await roleOf(app, user, robot.uuid), 'operator')
      await lose(again)
      t.equal(await roleOf(app, user, robot.uuid), 'viewer', `${name}: the direct viewer grant remains`)
      await direct(null)
    }
  })
})

async function rowsOf (app: FastifyInstance, table: 'robot_access' | 'group_grants', userId: number): Promise<number> {
  const rows = await app.db.sequelize.query(`SELECT count(*) AS n FROM ${table} WHERE user_id = $1`, { type: QueryTypes.SELECT, bind: [userId] }) as Array<{ n: number | string }>
  return Number(rows[0]?.n ?? 0)
}

t.test('expiring grants end by themselves, are removed by the sweep and audited as access.expired once', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const direct = await createUser(app)
  const member = await createUser(app)
  const forever = await createUser(app)
  const group = (await staffCall(app, staff, 'POST', '/admin/api/groups', { name: `expiring-${process.pid}` })).json().id as number
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`)

  // operators' queued commands (made while the grants are for good): the expiry takes the right to send them
  await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${direct.id}`, { role: 'operator' })
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/users/${member.id}`, { role: 'operator' })
  await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${forever.id}`, { role: 'viewer', expires_at: null })
  const queued = await queueCommand(app, direct, robot.uuid, 'auto')
  const queuedByMember = await queueCommand(app, member, robot.uuid, 'idle')
  // then both grants end in a few seconds
  const ends = inSeconds(3)
  await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${direct.id}`, { role: 'operator', expires_at: ends })
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/users/${member.id}`, { role: 'operator', expires_at: ends })

  t.equal(await roleOf(app, direct, robot.uuid), 'operator')
  t.equal(await roleOf(app, member, robot.uuid), 'operator')
  t.same((await staffCall(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json().items.find((g: { user_id: number }) => g.user_id === direct.id),
    { user_id: direct.id, username: direct.username, role: 'operator', expires_at: ends })
  t.match((await staffCall(app, staff, 'GET', `/admin/api/groups/${group}`)).json().users, [{ user_id: member.id, role: 'operator', expires_at: ends }])

  await eventually(async () => [await roleOf(app, direct, robot.uuid), await roleOf(app, member, robot.uuid)], (r) => r[0] === 404 && r[1] === 404, 15_000)
  t.pass('both grants ended by themselves')
  t.same((await call(app, direct, 'GET', '/robots')).json().items, [])
  t.equal((await sendCommand(app, direct, robot.uuid, 'auto', { ttl: 600 })).statusCode, 404, 'no more commands')
  t.equal(await roleOf(app, forever, robot.uuid), 'viewer', 'a grant without an end stays')

  const expired = async (): Promise<Awaited<ReturnType<typeof audits>>> => await audits(app, staff, 'action=access.expired')
  await eventually(expired, (items) => items.length === 2, 15_000)
  await eventually(async () => await rowsOf(app, 'robot_access', direct.id) + await rowsOf(app, 'group_grants', member.id), (n) => n === 0)
  // a few more sweeps: nothing is audited twice
  await new Promise((resolve) => setTimeout(resolve, 2500))
  const items = await expired()
  t.equal(items.length, 2, 'each expiry audited exactly once')
  const mine = items.find((a) => a.target_user_id === direct.id)
  t.match(mine, { actor_id: null, robot_uuid: robot.uuid, details: { username: direct.username, serial: robot.serial, role: 'operator', expires_at: ends } })
  t.match(items.find((a) => a.target_user_id === member.id), { actor_id: null, details: { username: member.username, role: 'operator', group_id: group, expires_at: ends } })
  t.same((await staffCall(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)).json().items.map((g: { user_id: number }) => g.user_id), [forever.id])
  t.same((await staffCall(app, staff, 'GET', `/admin/api/groups/${group}`)).json().users, [])

  await eventually(async () => await commandItems(app, staff, robot.uuid), (list) => [queued.id, queuedByMember.id].every((id) => list.find((c) => c.id === id)?.status === 'cancelled'))
  t.pass("the expired operators' queued commands (direct and group) were cancelled")
})

t.test('a grant that expired and is granted again (or revoked) before the sweep removed it: the expiry is audited once, the new one as granted', async (t) => {
  const app = await build(t)
  // hold the sweep, as when the grant is replaced within its second
  const sweep = holdSweep(t, app)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const direct = await createUser(app)
  const member = await createUser(app)
  const revoked = await createUser(app)
  const revokedMember = await createUser(app)
  const group = (await staffCall(app, staff, 'POST', '/admin/api/groups', { name: `regrant-${process.pid}` })).json().id as number
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`)
  const ends = inSeconds(3)
  for (const u of [direct, revoked]) await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${u.id}`, { role: 'manager', expires_at: ends })
  for (const u of [member, revokedMember]) await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/users/${u.id}`, { role: 'manager', expires_at: ends })
  await eventually(async () => [await roleOf(app, direct, robot.uuid), await roleOf(app, member, robot.uuid)], (r) => r[0] === 404 && r[1] === 404, 15_000)

  await staffCall(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${direct.id}`, { role: 'viewer' })
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/users/${member.id}`, { role: 'viewer' })
  await staffCall(app, staff, 'DELETE', `/admin/api/robots/${robot.uuid}/users/${revoked.id}`)
  await staffCall(app, staff, 'DELETE', `/admin/api/groups/${group}/users/${revokedMember.id}`)
  t.equal(await roleOf(app, direct, robot.uuid), 'viewer')
  t.equal(await roleOf(app, member, robot.uuid), 'viewer')

  await sweep()
  for (const [user, granted] of [[direct, 'access.granted'], [member, 'group.granted']] as const) {
    const trail = (await audits(app, staff, `user_id=${user.id}`)).filter((a) => a.action.startsWith('access.') || a.action.startsWith('group.')).map((a) => a.action).reverse()
    t.same(trail, [granted, 'access.expired', granted], `${user === direct ? 'direct' : 'group'}: granted, expired once, granted again`)
  }
  for (const [user, granted] of [[revoked, 'access.granted'], [revokedMember, 'group.granted']] as const) {
    const trail = (await audits(app, staff, `user_id=${user.id}`)).filter((a) => a.action.startsWith('access.') || a.action.startsWith('group.')).map((a) => a.action).reverse()
    t.same(trail, [granted, 'access.expired'], `${user === revoked ? 'direct' : 'group'}: revoked after it ended: expired once, nothing revoked`)
  }
  t.equal(await rowsOf(app, 'robot_access', revoked.id) + await rowsOf(app, 'group_grants', revokedMember.id), 0, 'the sweep removed them')
  t.equal(await roleOf(app, direct, robot.uuid), 'viewer', 'the sweep leaves the new grant')
  t.equal(await roleOf(app, member, robot.uuid), 'viewer')
})

t.test('a group deleted while a grant on it had ended and was not swept yet: the expiry is audited once, nothing revoked', async (t) => {
  const app = await build(t)
  const sweep = holdSweep(t, app)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const member = await createUser(app)
  const group = (await staffCall(app, staff, 'POST', '/admin/api/groups', { name: `ended-${process.pid}` })).json().id as number
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`)
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/users/${member.id}`, { role: 'operator', expires_at: inSeconds(2) })
  await eventually(async () => await roleOf(app, member, robot.uuid), (r) => r === 404, 15_000)
  await staffCall(app, staff, 'DELETE', `/admin/api/groups/${group}`)
  await sweep()
  const trail = (await audits(app, staff, `user_id=${member.id}`)).filter((a) => a.action.startsWith('access.') || a.action.startsWith('group.')).map((a) => a.action).reverse()
  t.same(trail, ['group.granted', 'access.expired'], 'granted, then expired once')
  const deleted = (await audits(app, staff, 'action=group.deleted'))[0]
  t.same(deleted?.details?.users, [], 'the deletion names no live grant')
})

t.test('expires_at in the past and invalid roles are 400 on every grant endpoint, and grant nothing', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const user = await createUser(app)
  const group = (await staffCall(app, staff, 'POST', '/admin/api/groups', { name: `bad-${process.pid}` })).json().id as number
  await staffCall(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`)
  const urls = [`/admin/api/robots/${robot.uuid}/users/${user.id}`, `/admin/api/groups/${group}/users/${user.id}`]
  const bodies: Array<[string, unknown]> = [
    ['expires_at in the past', { expires_at: inSeconds(-1) }],
    ['expires_at years ago', { role: 'viewer', expires_at: '2020-01-01T00:00:00Z' }],
    ['invalid role', { role: 'admin' }],
    ['role of the wrong type', { role: 3 }],
    ['malformed expires_at', { expires_at: 'soon' }],
    ['unknown field', { role: 'viewer', until: 5 }]
  ]
  for (const url of urls) {
    for (const [name, body] of bodies) {
      const res = await call(app, staff, 'PUT', url, body)
      t.equal(res.statusCode, 400, `${url}, ${name}: 400`)
      t.equal(res.json().statusCode, 400)
    }
  }
  t.equal(await roleOf(app, user, robot.uuid), 404, 'nothing was granted')
  t.same((await audits(app, staff, `user_id=${user.id}`)).map((a) => a.action).filter((a) => a.startsWith('access.') || a.startsWith('group.')), [], 'nor audited')
})

t.test('a grant lowered below operator (or lost) cancels its user\'s queued commands for that robot; one kept at operator or above does not', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const manager = await createUser(app)

  interface Case { name: string, cancels: boolean, setup?: (robot: TestRobot, issuer: TestUser) => Promise<void>, change: (robot: TestRobot, issuer: TestUser) => Promise<void> }
  const groupWith = async (robot: TestRobot, issuer: TestUser, role: Role): Promise<number> => {
    const id = (await staffCall(app, staff, 'POST', '/admin/api/groups', { name: `g-${robot.serial}` })).json().id as number
    await staffCall(app, staff, 'PUT', `/admin/api/groups/${id}/robots/${robot.uuid}`)
    await staffCall(app, staff, 'PUT', `/admin/api/groups/${id}/users/${issuer.id}`, { role })
    return id
  }
  let groupId = 0
  const CASES: Case[] = [
    { name: 'staff downgrades to viewer', cancels: true, change: async (r, u) => { await staffCall(app, staff, 'PUT', `/admin/api/robots/${r.uuid}/users/${u.id}`, { role: 'viewer' }) } },
    { name: 'a manager downgrades to viewer', cancels: true, change: async (r, u) => { await staffCall(app, manager, 'PUT', `/robots/${r.uuid}/grants/${u.username}`, { role: 'viewer' }) } },
    { name: 'a manager revokes', cancels: true, change: async (r, u) => { await staffCall(app, manager, 'DELETE', `/robots/${r.uuid}/grants/${u.username}`) } },
    { name: 'staff upgrades to manager', cancels: false, change: async (r, u) => { await staffCall(app, staff, 'PUT', `/admin/api/robots/${r.uuid}/users/${u.id}`, { role: 'manager' }) } },
    { name: 'a manager sets an expiry an hour ahead', cancels: false, change: async (r, u) => { await staffCall(app, manager, 'PUT', `/robots/${r.uuid}/grants/${u.username}`, { role: 'operator', expires_at: inSeconds(3600) }) } },
    {
      name: 'downgraded to viewer, a group operator grant remains',
      cancels: false,
      setup: async (r, u) => { await groupWith(r, u, 'operator') },
      change: async (r, u) => { await staffCall(app, staff, 'PUT', `/admin/api/robots/${r.uuid}/users/${u.id}`, { role: 'viewer' }) }
    },
    {
      name: 'a group operator grant lowered to viewer (no direct grant)',
      cancels: true,
      setup: async (r, u) => { groupId = await groupWith(r, u, 'operator'); await staffCall(app, staff, 'DELETE', `/admin/api/robots/${r.uuid}/users/${u.id}`) },
      change: async (_r, u) => { await staffCall(app, staff, 'PUT', `/admin/api/groups/${groupId}/users/${u.id}`, { role: 'viewer' }) }
    },
    {
      name: 'the robot taken out of the operator\'s group',
      cancels: true,
      setup: async (r, u) => { groupId = await groupWith(r, u, 'operator'); await staffCall(app, staff, 'DELETE', `/admin/api/robots/${r.uuid}/users/${u.id}`) },
      change: async (r) => { await staffCall(app, staff, 'DELETE', `/admin/api/groups/${groupId}/robots/${r.uuid}`) }
    },
    {
      name: 'the operator\'s group deleted',
      cancels: true,
      setup: async (r, u) => { groupId = await groupWith(r, u, 'operator'); await staffCall(app, staff, 'DELETE', `/admin/api/robots/${r.uuid}/users/${u.id}`) },
      change: async () => { await staffCall(app, staff, 'DELETE', `/admin/api/groups/${groupId}`) }
    }
  ]

  for (const c of CASES) {
    t.test(`${c.name}: ${c.cancels ? 'cancelled' : 'kept'}`, async (t) => {
      const robot = await createRobot(app)
      const elsewhere = await createRobot(app)
      const issuer = await createUser(app)
      const bystander = await createUser(app)
      await grantRole(app, manager, robot, 'manager')
      for (const r of [robot, elsewhere]) {
        await grantRole(app, issuer, r, 'operator')
        await grantRole(app, bystander, r, 'operator')
      }
      await c.setup?.(robot, issuer)
      const mine = [await queueCommand(app, issuer, robot.uuid, 'error'), await queueCommand(app, issuer, robot.uuid, 'manual')]
      const theirs = await queueCommand(app, bystander, robot.uuid, 'auto')
      const onOther = await queueCommand(app, issuer, elsewhere.uuid, 'idle')
      await c.change(robot, issuer)

      const statuses = async (): Promise<Map<string, string>> => new Map((await commandItems(app, staff, robot.uuid)).map((i) => [i.id, i.status]))
      if (c.cancels) {
        const now = await eventually(statuses, (s) => mine.every((m) => s.get(m.id) === 'cancelled'))
        t.equal(now.get(theirs.id), 'queued', "the bystander's command stays queued")
        // read until both are there: on in-memory SQLite (one handle) the statuses can be read inside the cancelling transaction, before its audit rows
        const audited = await eventually(async () => await audits(app, staff, `robot_uuid=${robot.uuid}&action=command.cancelled`), (a) => a.length >= mine.length)
        t.same(audited.map((a) => a.details.command_id).sort(), mine.map((m) => m.id).sort(), 'each cancellation audited')
        t.ok(audited.every((a) => a.actor_id === null), 'by the server')
      } else {
        // the cancellation runs after the answer: give it time to do wrong
        await new Promise((resolve) => setTimeout(resolve, 500))
        const now = await statuses()
        t.ok([...mine, theirs].every((m) => now.get(m.id) === 'queued'), 'every command stays queued')
      }
      t.equal((await commandItems(app, staff, elsewhere.uuid))[0]?.status, 'queued', "the issuer's command for another robot stays queued")
      t.equal(onOther.status, 'queued')
    })
  }
})
