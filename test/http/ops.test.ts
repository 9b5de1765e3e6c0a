import t from 'tap'
import { build } from '../helper.js'

t.test('GET /health answers while the process is up', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /ready reports the database', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().status, 'ready')
  t.match(res.json().database, /^(sqlite|postgres)$/)
})

t.test('GET /ready answers 503 when the database is gone', async (t) => {
  const app = await build(t)
  t.teardown(() => { app.db.ping = original })
  const original = app.db.ping
  app.db.ping = async () => { throw new Error('connection refused') }
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { statusCode: 503, error: 'Service Unavailable', code: 'UNITED_DATABASE_UNAVAILABLE' })
})

t.test('unknown routes answer a JSON 404', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { statusCode: 404, error: 'Not Found', code: 'UNITED_NO_ROUTE' })
})
