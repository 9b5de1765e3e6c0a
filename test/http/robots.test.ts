// docs/protocol.md §6.1: GET /robots and GET /robots/{uuid}, what each user may see of the fleet.
import t from 'tap'
import { authentication, bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, grant, ownedRobot } from '../factory.js'

const ROBOT_FIELDS = ['command_connected', 'data_connected', 'last_seen_at', 'model', 'name', 'role', 'serial', 'state', 'uuid']
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const MISSING_UUID = '00000000-0000-4000-8000-000000000000'

t.test('GET /robots lists only the robots granted to the user', async (t) => {
  const app = await build(t)
  const alice = await createUser(app)
  const bob = await createUser(app)
  const a1 = await createRobot(app, { name: 'alpha' })
  const a2 = await createRobot(app, { name: 'beta' })
  const b1 = await createRobot(app)
  await createRobot(app) // granted to nobody
  await grant(app, alice, a1)
  await grant(app, alice, a2)
  await grant(app, bob, b1)
  await grant(app, bob, a2) // shared

  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(alice.jwt) })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['items', 'next_cursor'])
  t.equal(body.next_cursor, null)
  t.same(body.items.map((r: any) => r.uuid).sort(), [a1.uuid, a2.uuid].sort())
  for (const item of body.items) t.same(Object.keys(item).sort(), ROBOT_FIELDS, 'only the contract fields')
  const alpha = body.items.find((r: any) => r.uuid === a1.uuid)
  t.match(alpha, { uuid: a1.uuid, serial: a1.serial, name: 'alpha', state: String, data_connected: false, command_connected: false, last_seen_at: null })

  const bobs = await app.inject({ method: 'GET', url: '/robots', headers: authentication(bob.jwt) })
  t.equal(bobs.statusCode, 200)
  t.same(bobs.json().items.map((r: any) => r.uuid).sort(), [b1.uuid, a2.uuid].sort())
})

t.test('GET /robots gives a user with no grants an empty page', async (t) => {
  const app = await build(t)
  const loner = await createUser(app)
  await createRobot(app)
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(loner.jwt) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { items: [], next_cursor: null })
})

t.test('GET /robots shows staff every robot', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  await grant(app, user, robots[0]!)
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(staff.jwt) })
  t.equal(res.statusCode, 200)
  t.same(res.json().items.map((r: any) => r.uuid).sort(), robots.map((r) => r.uuid).sort())
  t.equal(res.json().next_cursor, null)
})

t.test('a robot revoked from a user disappears from their list', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  t.equal((await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })).json().items.length, 1)
  await app.services.access.revoke(user.id, robot.uuid, { actor: null })
  t.same((await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })).json().items, [])
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })).statusCode, 404)
})

/** Follows next_cursor to the end; returns the pages. */
async function allPages (app: Awaited<ReturnType<typeof build>>, jwt: string, limit: number): Promise<any[]> {
  const pages: any[] = []
  let cursor: string | null = null
  do {
    const qs = new URLSearchParams({ limit: String(limit) })
    if (cursor !== null) qs.set('cursor', cursor)
    const res = await app.inject({ method: 'GET', url: `/robots?${qs.toString()}`, headers: bearer(jwt) })
    if (res.statusCode !== 200) throw new Error(`page ${pages.length + 1}: ${res.statusCode} ${res.payload}`)
    pages.push(res.json())
    cursor = res.json().next_cursor
    if (pages.length > 20) throw new Error('pagination does not end')
  } while (cursor !== null)
  return pages
}

t.test('GET /robots pages with limit and cursor: every robot exactly once, next_cursor null at the end', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const staff = await createStaff(app)
  const granted: string[] = []
  for (let i = 0; i < 5; i++) {
    const r = await createRobot(app)
    // Interleave robots the user may not see, so the filter and the cursor work together.
    await createRobot(app)
    await grant(app, user, r)
    granted.push(r.uuid)
  }

  const pages = await allPages(app, user.jwt, 2)
  t.same(pages.map((p) => p.items.length), [2, 2, 1])
  for (const p of pages.slice(0, -1)) t.type(p.next_cursor, 'string')
  t.equal(pages.at(-1).next_cursor, null)
  const seen = pages.flatMap((p) => p.items.map((r: any) => r.uuid))
  t.equal(new Set(seen).size, seen.length, 'no robot twice')
  t.same([...seen].sort(), [...granted].sort(), 'every granted robot, and only those')

  const staffPages = await allPages(app, staff.jwt, 2)
  const staffSeen = staffPages.flatMap((p) => p.items.map((r: any) => r.uuid))
  t.equal(staffSeen.length, 10)
  t.equal(new Set(staffSeen).size, 10, 'staff: each of the 10 robots once')
  t.equal(staffPages.at(-1).next_cursor, null)
})

t.test('GET /robots: a last page that is exactly full has next_cursor null (no empty extra page)', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  for (let i = 0; i < 4; i++) await grant(app, user, await createRobot(app))
  const pages = await allPages(app, user.jwt, 2)
  t.same(pages.map((p) => p.items.length), [2, 2])
  t.equal(pages[1].next_cursor, null)

  const one = await app.inject({ method: 'GET', url: '/robots?limit=4', headers: bearer(user.jwt) })
  t.equal(one.json().items.length, 4)
  t.equal(one.json().next_cursor, null)
  const defaults = await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })
  t.equal(defaults.json().items.length, 4, 'the default limit (50) covers them all')
})

t.test('GET /robots refuses a limit outside 1…1000 with 400', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  for (const limit of ['1001', '0', '-1', 'abc', '1.5']) {
    const res = await app.inject({ method: 'GET', url: `/robots?limit=${limit}`, headers: bearer(user.jwt) })
    t.equal(res.statusCode, 400, `limit=${limit}`)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, `limit=${limit}`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/robots?limit=1000', headers: bearer(user.jwt) })).statusCode, 200, 'limit=1000 is allowed')
  t.equal((await app.inject({ method: 'GET', url: '/robots?limit=1', headers: bearer(user.jwt) })).statusCode, 200, 'limit=1 is allowed')
})

t.test('GET /robots refuses a malformed cursor with 400 UNITED_BAD_CURSOR', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  await grant(app, user, await createRobot(app))
  const b64 = (s: string): string => Buffer.from(s).toString('base64url')
  const cursors = ['not-a-cursor', '!!!', b64('{"id":1}'), b64('["1"]'), b64('[1,2]'), b64('[1.5]'), b64('null'), b64('[]')]
  for (const cursor of cursors) {
    const res = await app.inject({ method: 'GET', url: `/robots?cursor=${encodeURIComponent(cursor)}`, headers: bearer(user.jwt) })
    t.equal(res.statusCode, 400, `cursor ${cursor}`)
    t.same(res.json(), { statusCode: 400, error: 'Bad Request', message: 'malformed cursor', code: 'UNITED_BAD_CURSOR' }, `cursor ${cursor}`)
  }
})

t.test('GET /robots refuses unknown query parameters with 400', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const res = await app.inject({ method: 'GET', url: '/robots?page=2', headers: bearer(user.jwt) })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { statusCode: 400, error: 'Bad Request' })
})

t.test('GET /robots/{uuid} answers a granted robot with exactly the contract fields', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const robot = await createRobot(app, { name: 'Robbie', secret: 'super-secret-value-123' })
  await grant(app, user, robot)
  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.same(Object.keys(body).sort(), ROBOT_FIELDS)
  t.match(body.uuid, UUID)
  t.same(body, { uuid: robot.uuid, serial: robot.serial, name: 'Robbie', state: body.state, data_connected: false, command_connected: false, last_seen_at: null, model: null, role: 'operator' })
  t.type(body.state, 'string')
  for (const leak of ['secret', 'secret_hash', 'secretHash', 'enabled', 'token', 'id', 'created_at']) t.notOk(leak in body, `no ${leak}`)
  t.notOk(res.payload.includes('super-secret-value-123'), 'the secret is not in the response')
  t.notOk(/scrypt|\$[0-9a-z]+\$/.test(res.payload), 'no hash in the response')
})

t.test('GET /robots/{uuid}: another user\'s robot and a non-existent robot get the same 404', async (t) => {
  const app = await build(t)
  const alice = await createUser(app)
  const bob = await ownedRobot(app)
  const others = await app.inject({ method: 'GET', url: `/robots/${bob.robot.uuid}`, headers: bearer(alice.jwt) })
  const missing = await app.inject({ method: 'GET', url: `/robots/${MISSING_UUID}`, headers: bearer(alice.jwt) })
  t.equal(others.statusCode, 404)
  t.equal(missing.statusCode, 404)
  t.same(others.json(), { statusCode: 404, error: 'Not Found', message: 'robot not found', code: 'UNITED_ROBOT_NOT_FOUND' })
  t.same(missing.json(), others.json(), 'no way to tell "exists but not yours" from "does not exist"')
  t.equal(missing.payload, others.payload)

  const own = await app.inject({ method: 'GET', url: `/robots/${bob.robot.uuid}`, headers: bearer(bob.user.jwt) })
  t.equal(own.statusCode, 200, 'bob sees his own robot')
})

t.test('GET /robots/{uuid}: staff see any robot; a deleted robot is 404', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(staff.jwt) })
  t.equal(res.statusCode, 200)
  t.equal(res.json().uuid, robot.uuid)
  await app.services.robots.remove(robot.uuid, { actor: null })
  const gone = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(staff.jwt) })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().code, 'UNITED_ROBOT_NOT_FOUND')
})

t.test('GET /robots/{uuid} refuses a value that is not a uuid with 400', async (t) => {
  const app = await build(t)
  const { user } = await ownedRobot(app)
  for (const bad of ['1', 'not-a-uuid', '00000000-0000-4000-8000-00000000000', `${MISSING_UUID}x`, "'%20OR%201=1"]) {
    const res = await app.inject({ method: 'GET', url: `/robots/${bad}`, headers: bearer(user.jwt) })
    t.equal(res.statusCode, 400, bad)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, bad)
  }
})

t.test('GET /robots and GET /robots/{uuid} without a JWT answer 401', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  for (const url of ['/robots', '/robots?limit=2', `/robots/${robot.uuid}`, '/robots/not-a-uuid', '/robots?limit=5000']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 401, url)
    t.match(res.json(), { statusCode: 401, error: 'Unauthorized', message: String, code: 'UNITED_UNAUTHORIZED' }, url)
    t.notOk(res.payload.includes(robot.serial), `${url}: nothing about the robot`)
  }
  const bad = await app.inject({ method: 'GET', url: '/robots', headers: bearer('not.a.jwt') })
  t.equal(bad.statusCode, 401, 'a bad JWT is 401 too')
})
