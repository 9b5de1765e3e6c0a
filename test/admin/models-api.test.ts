// Robot models on the Management API (docs/protocol.md §14.1): staff only;
// versions numbered per name and never changed; a bad model refused with a
// 400 naming the mistake and nothing created; a version in use not
// deletable (409 UNITED_MODEL_IN_USE) and a deleted number never reused; a
// robot's model set on create and patch (unknown → 400), shown in robot
// items, and read whole by any role at GET /robots/{uuid}/model.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { CLEANER_MODEL, createRobot, createStaff, createUser, grantRole, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
type Res = Awaited<ReturnType<FastifyInstance['inject']>>

async function call (app: FastifyInstance, user: TestUser | null, method: Method, url: string, payload?: unknown): Promise<Res> {
  return await app.inject({ method, url, headers: user === null ? {} : bearer(user.jwt), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })
}

const ARM = { name: 'arm', telemetry: { payload_kg: { type: 'number', minimum: 0, unit: 'kg' } }, commands: { home: {} } }

t.test('every model endpoint is staff only: 401 without a JWT, 403 for a user, even a manager', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const manager = await createUser(app)
  await grantRole(app, manager, robot, 'manager')
  t.equal((await call(app, staff, 'POST', '/admin/api/models', ARM)).statusCode, 201)
  const endpoints: Array<[Method, string, unknown?]> = [
    ['POST', '/admin/api/models', { ...ARM, name: 'sneaky' }],
    ['GET', '/admin/api/models'],
    ['GET', '/admin/api/models/arm/versions/1'],
    ['DELETE', '/admin/api/models/arm/versions/1']
  ]
  for (const [method, url, body] of endpoints) {
    t.equal((await call(app, null, method, url, body)).statusCode, 401, `${method} ${url} without a JWT`)
    const res = await call(app, manager, method, url, body)
    t.equal(res.statusCode, 403, `${method} ${url} as a manager`)
    t.equal(res.json().code, 'UNITED_STAFF_ONLY')
  }
  t.same((await call(app, staff, 'GET', '/admin/api/models')).json().items.map((m: { name: string }) => m.name), ['arm'], 'nothing was made by the refused post')
  t.equal((await call(app, staff, 'GET', '/admin/api/models/arm/versions/1')).statusCode, 200, 'nor deleted')
})

t.test('posting a name makes version 1, then 2: immutable versions, the list shows the latest with its versions', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const first = await call(app, staff, 'POST', '/admin/api/models', CLEANER_MODEL)
  t.equal(first.statusCode, 201)
  t.match(first.json(), { ...CLEANER_MODEL, version: 1, created_at: String })
  t.same(Object.keys(first.json()).sort(), ['commands', 'created_at', 'description', 'name', 'telemetry', 'version'])
  t.same(Object.keys(first.json().telemetry), Object.keys(CLEANER_MODEL.telemetry), 'the fields keep their declaration order')
  const second = await call(app, staff, 'POST', '/admin/api/models', { ...CLEANER_MODEL, description: undefined, telemetry: { brush_rpm: { type: 'integer' } } })
  t.equal(second.statusCode, 201)
  t.match(second.json(), { name: 'cleaner', version: 2, description: null, telemetry: { brush_rpm: { type: 'integer' } } })
  await call(app, staff, 'POST', '/admin/api/models', ARM)

  const list = (await call(app, staff, 'GET', '/admin/api/models')).json().items as Array<{ name: string, version: number, versions: number[] }>
  t.same(list.map((m) => [m.name, m.version, m.versions]), [['arm', 1, [1]], ['cleaner', 2, [1, 2]]])
  const v1 = await call(app, staff, 'GET', '/admin/api/models/cleaner/versions/1')
  t.same(v1.json(), first.json(), 'version 1 is unchanged by version 2')
  for (const url of ['/admin/api/models/cleaner/versions/3', '/admin/api/models/nobody/versions/1']) {
    const res = await call(app, staff, 'GET', url)
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().code, 'UNITED_MODEL_NOT_FOUND')
  }
  t.equal((await call(app, staff, 'GET', '/admin/api/models/Bad%20Name/versions/1')).statusCode, 400)
  t.equal((await call(app, staff, 'GET', '/admin/api/models/cleaner/versions/0')).statusCode, 400)
})

t.test('a bad model is a 400 naming what is wrong, and nothing is created', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const cases: Array<[unknown, RegExp]> = [
    [{ ...CLEANER_MODEL, name: 'No Caps' }, /name must match/],
    [{ ...ARM, telemetry: { payload_kg: { type: 'float' } } }, /telemetry\.payload_kg\.type must be one of/],
    [{ ...ARM, commands: { home: { params: { type: 'object', properties: { a: { $ref: '#/x' } } } } } }, /the keyword "\$ref" is not allowed/],
    [{ ...ARM, commands: { home: { params: { type: 'object', properties: { a: { type: 'string', pattern: '(a+)+$' } } } } } }, /the keyword "pattern" is not allowed/],
    [{ ...ARM, commands: { idle: {} } }, /"idle" is reserved/],
    [{ ...ARM, description: 'x'.repeat(70_000) }, /over the limit of 65536/],
    ['cleaner', /must be a JSON object/]
  ]
  for (const [body, expected] of cases) {
    const res = await app.inject({ method: 'POST', url: '/admin/api/models', headers: { ...bearer(staff.jwt), 'content-type': 'application/json' }, payload: JSON.stringify(body) })
    t.equal(res.statusCode, 400, String(expected))
    t.equal(res.json().code, 'UNITED_BAD_REQUEST')
    t.match(res.json().message, expected)
  }
  const notJson = await app.inject({ method: 'POST', url: '/admin/api/models', headers: { ...bearer(staff.jwt), 'content-type': 'application/json' }, payload: '{"name":' })
  t.equal(notJson.statusCode, 400, 'malformed JSON')
  t.same((await call(app, staff, 'GET', '/admin/api/models')).json().items, [], 'nothing created')
})

t.test('a robot takes a model on create and patch; unknown ones are 400; robot items show it', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  await call(app, staff, 'POST', '/admin/api/models', CLEANER_MODEL)
  await call(app, staff, 'POST', '/admin/api/models', CLEANER_MODEL)
  const created = await call(app, staff, 'POST', '/admin/api/robots', { serial: 'CL-1', model: { name: 'cleaner', version: 1 } })
  t.equal(created.statusCode, 201)
  t.same(created.json().model, { name: 'cleaner', version: 1 })
  const uuid = created.json().uuid as string
  for (const model of [{ name: 'cleaner', version: 9 }, { name: 'ghost', version: 1 }]) {
    const res = await call(app, staff, 'POST', '/admin/api/robots', { serial: `CL-${model.name}`, model })
    t.equal(res.statusCode, 400)
    t.match(res.json().message, `model ${model.name} version ${model.version} does not exist`)
    const patched = await call(app, staff, 'PATCH', `/admin/api/robots/${uuid}`, { model })
    t.equal(patched.statusCode, 400)
  }
  t.equal((await call(app, staff, 'POST', '/admin/api/robots', { serial: 'CL-x', model: { name: 'cleaner' } })).statusCode, 400, 'a version is required')
  t.equal((await call(app, staff, 'GET', '/admin/api/robots?q=CL-ghost')).json().items.length, 0, 'the refused robot was not created')

  const moved = await call(app, staff, 'PATCH', `/admin/api/robots/${uuid}`, { model: { name: 'cleaner', version: 2 } })
  t.equal(moved.statusCode, 200)
  t.same(moved.json().model, { name: 'cleaner', version: 2 })
  t.same((await call(app, staff, 'GET', `/admin/api/robots/${uuid}`)).json().model, { name: 'cleaner', version: 2 })
  const user = await createUser(app)
  await grantRole(app, user, { uuid }, 'viewer')
  t.same((await call(app, user, 'GET', '/robots')).json().items[0].model, { name: 'cleaner', version: 2 })
  t.same((await call(app, user, 'GET', `/robots/${uuid}`)).json().model, { name: 'cleaner', version: 2 })
  const cleared = await call(app, staff, 'PATCH', `/admin/api/robots/${uuid}`, { model: null })
  t.equal(cleared.json().model, null)
  t.equal((await call(app, user, 'GET', `/robots/${uuid}`)).json().model, null)
})

t.test('a version in use is not deletable; a deleted number is not given out again', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  await call(app, staff, 'POST', '/admin/api/models', ARM)
  await call(app, staff, 'POST', '/admin/api/models', ARM)
  const robot = await createRobot(app, { model: { name: 'arm', version: 2 } })
  const refused = await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/2')
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().code, 'UNITED_MODEL_IN_USE')
  t.equal((await call(app, staff, 'GET', '/admin/api/models/arm/versions/2')).statusCode, 200, 'still there')
  t.equal((await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/1')).statusCode, 204, 'an unused version goes')
  t.equal((await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/1')).json().code, 'UNITED_MODEL_NOT_FOUND', 'once')
  t.equal((await call(app, staff, 'PATCH', `/admin/api/robots/${robot.uuid}`, { model: { name: 'arm', version: 1 } })).statusCode, 400, 'a deleted version cannot be given to a robot')
  await call(app, staff, 'PATCH', `/admin/api/robots/${robot.uuid}`, { model: null })
  t.equal((await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/2')).statusCode, 204, 'no longer in use')
  t.same((await call(app, staff, 'GET', '/admin/api/models')).json().items, [], 'no live version left')
  const again = await call(app, staff, 'POST', '/admin/api/models', ARM)
  t.equal(again.json().version, 3, 'the numbers of deleted versions are not reused')
  // a deleted robot no longer holds its version
  const other = await createRobot(app, { model: { name: 'arm', version: 3 } })
  await app.services.robots.remove(other.uuid, { actor: null })
  t.equal((await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/3')).statusCode, 204)
})

t.test('GET /robots/{uuid}/model: any role reads the whole version; no grant 404; no model 404 UNITED_NO_MODEL', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const created = (await call(app, staff, 'POST', '/admin/api/models', CLEANER_MODEL)).json()
  const robot = await createRobot(app, { model: { name: 'cleaner', version: 1 } })
  const bare = await createRobot(app)
  const users: Record<string, TestUser> = {}
  for (const role of ['viewer', 'operator', 'manager'] as const) {
    users[role] = await createUser(app)
    await grantRole(app, users[role], robot, role)
    await grantRole(app, users[role], bare, role)
  }
  for (const who of [staff, users.viewer!, users.operator!, users.manager!]) {
    const res = await call(app, who, 'GET', `/robots/${robot.uuid}/model`)
    t.equal(res.statusCode, 200)
    t.same(res.json(), created)
    const none = await call(app, who, 'GET', `/robots/${bare.uuid}/model`)
    t.equal(none.statusCode, 404)
    t.equal(none.json().code, 'UNITED_NO_MODEL')
  }
  const stranger = await createUser(app)
  const hidden = await call(app, stranger, 'GET', `/robots/${robot.uuid}/model`)
  t.equal(hidden.statusCode, 404)
  t.equal(hidden.json().code, 'UNITED_ROBOT_NOT_FOUND', 'a robot you cannot see: the same 404 as no robot')
  t.equal((await call(app, null, 'GET', `/robots/${robot.uuid}/model`)).statusCode, 401)
})

t.test('creating and deleting versions, and a robot\'s model change, are audited', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  await call(app, staff, 'POST', '/admin/api/models', ARM)
  const robot = (await call(app, staff, 'POST', '/admin/api/robots', { serial: 'AU-1' })).json().uuid as string
  await call(app, staff, 'PATCH', `/admin/api/robots/${robot}`, { model: { name: 'arm', version: 1 } })
  await call(app, staff, 'PATCH', `/admin/api/robots/${robot}`, { model: null })
  await call(app, staff, 'DELETE', '/admin/api/models/arm/versions/1')
  const items = (await call(app, staff, 'GET', '/admin/api/audit?limit=100')).json().items.reverse() as Array<{ action: string, actor_id: number, details: Record<string, unknown> }>
  t.match(items.filter((a) => a.action.startsWith('model.')), [
    { action: 'model.created', actor_id: staff.id, details: { model: 'arm', version: 1 } },
    { action: 'model.deleted', actor_id: staff.id, details: { model: 'arm', version: 1 } }
  ])
  t.match(items.filter((a) => a.action === 'robot.updated').map((a) => a.details), [{ model: { name: 'arm', version: 1 } }, { model: null }])
})

t.test('two versions posted at once get two numbers', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const answers = await Promise.all(Array.from({ length: 4 }, async () => await call(app, staff, 'POST', '/admin/api/models', ARM)))
  t.same(answers.map((r) => r.statusCode), [201, 201, 201, 201])
  t.same(answers.map((r) => r.json().version as number).sort(), [1, 2, 3, 4])
})
