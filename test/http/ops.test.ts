import t from 'tap'
import { createStaff, ownedRobot } from '../factory.js'
import { bearer, build } from '../helper.js'
import { connectRobot, connectUser } from '../mqtt.js'

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

t.test('GET /health answers while the process is up', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /ready reports the database, and Redis as off without cluster mode (docs/operations.md §7)', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ready', database: 'ok', redis: 'off' })
})

t.test('GET /ready answers 503 when the database is gone', async (t) => {
  const app = await build(t)
  t.teardown(() => { app.db.ping = original })
  const original = app.db.ping
  app.db.ping = async () => { throw new Error('connection refused') }
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'database unavailable', code: 'UNITED_DATABASE_UNAVAILABLE', status: 'unready', database: 'down', redis: 'off' })
})

t.test('unknown routes answer a JSON 404', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, error: 'Not Found', code: 'UNITED_NO_ROUTE' })
})

t.test('GET /admin/api/cluster: without REDIS_URL, this node alone with its connections; staff only (docs/protocol.md §8)', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const { user, robot } = await ownedRobot(app)
  await connectRobot(t, app, robot)
  await connectUser(t, app, user)
  const res = await app.inject({ method: 'GET', url: '/admin/api/cluster', headers: bearer(staff.jwt) })
  t.equal(res.statusCode, 200)
  const body = res.json() as { node_id: string, nodes: Array<Record<string, unknown>> }
  t.equal(body.node_id, app.config.nodeId)
  t.match(body.node_id, /^[A-Za-z0-9_.-]+-[0-9a-f]{8}$/, 'generated: host name and a random suffix')
  t.equal(body.nodes.length, 1)
  t.match(body.nodes[0], { node_id: body.node_id, started_at: ISO, last_seen_at: ISO, robots: 1, users: 1 })
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/cluster', headers: bearer(user.jwt) })).statusCode, 403, 'not for a user who is not staff')
  t.equal((await app.inject({ method: 'GET', url: '/admin/api/cluster' })).statusCode, 401)
})
