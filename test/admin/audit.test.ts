import t from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser } from '../factory.js'

t.test('GET /admin/api/audit lists changes newest first, filtered by robot, user and action', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const alice = await createUser(app)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const put = await app.inject({ method: 'PUT', url: `/admin/api/robots/${robot.uuid}/users/${alice.id}`, headers: bearer(staff.jwt) })
  t.equal(put.statusCode, 204)
  await app.inject({ method: 'PATCH', url: `/admin/api/robots/${other.uuid}`, headers: bearer(staff.jwt), payload: { name: 'renamed' } })

  const all = await app.inject({ method: 'GET', url: '/admin/api/audit', headers: bearer(staff.jwt) })
  t.equal(all.statusCode, 200)
  const items = all.json().items as Array<{ id: number, action: string, actor: string | null, robot_uuid: string | null, target_user_id: number | null }>
  t.same(items.map((e) => e.id), [...items.map((e) => e.id)].sort((a, b) => b - a), 'newest first')
  t.match(items[0], { action: 'robot.updated', actor: staff.username, robot_uuid: other.uuid })

  const byRobot = await app.inject({ method: 'GET', url: `/admin/api/audit?robot_uuid=${robot.uuid}`, headers: bearer(staff.jwt) })
  t.same(byRobot.json().items.map((e: { action: string }) => e.action), ['access.granted', 'robot.created'])

  const byUser = await app.inject({ method: 'GET', url: `/admin/api/audit?user_id=${alice.id}&action=access.granted`, headers: bearer(staff.jwt) })
  t.match(byUser.json().items, [{ action: 'access.granted', target_user_id: alice.id, robot_uuid: robot.uuid }])
  t.equal(byUser.json().items.length, 1)

  const page1 = await app.inject({ method: 'GET', url: '/admin/api/audit?limit=2', headers: bearer(staff.jwt) })
  const page2 = await app.inject({ method: 'GET', url: `/admin/api/audit?limit=2&cursor=${page1.json().next_cursor as string}`, headers: bearer(staff.jwt) })
  t.same([...page1.json().items, ...page2.json().items].map((e: { id: number }) => e.id), items.slice(0, 4).map((e) => e.id), 'pages continue without gaps')
})

t.test('the audit log is staff-only', async (t) => {
  const app = await build(t)
  const alice = await createUser(app)
  const res = await app.inject({ method: 'GET', url: '/admin/api/audit', headers: bearer(alice.jwt) })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'UNITED_STAFF_ONLY')
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/audit' })).statusCode, 401)
})

t.test('a login is audited with the client address', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const login = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: staff.username, password: staff.password } })
  t.equal(login.statusCode, 200)
  const { items } = await app.services.audit.list({ action: 'user.login' })
  t.match(items, [{ action: 'user.login', actor: staff.username, target_user_id: staff.id, ip: '127.0.0.1' }])
})
