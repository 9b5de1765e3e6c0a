// GET / (the bare address a browser or the start banner leads to) answers a
// redirect to the admin pages instead of a 404, and is no part of the API's
// OpenAPI document.
import t from 'tap'
import { build } from '../helper.js'

t.test('GET / redirects to /admin (302), which answers', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/' })
  t.equal(res.statusCode, 302)
  t.equal(res.headers.location, '/admin')
  const admin = await app.inject({ method: 'GET', url: '/admin' })
  t.equal(admin.statusCode, 303, '/admin, not logged in: on to the log-in page')
  t.equal(admin.headers.location, '/admin/login')
  t.equal((await app.inject({ method: 'HEAD', url: '/' })).statusCode, 302, 'HEAD too')
})

t.test('/ is not in the OpenAPI document', async (t) => {
  const app = await build(t)
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, unknown> }
  t.notOk('/' in doc.paths, 'hidden')
  t.ok('/health' in doc.paths, 'while its neighbours are listed')
})
