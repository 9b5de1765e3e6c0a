// The admin pages are not API: the OpenAPI document at /docs/json leaves them
// out (they hide themselves, admin/site.ts), while the Management API under
// /admin/api, which scripts call with a staff JWT, stays documented.
import t from 'tap'
import { build } from '../helper.js'

/** The Management API (admin/api). */
const MANAGEMENT: Record<string, string[]> = {
  '/admin/api/robots': ['get', 'post'],
  '/admin/api/robots/{uuid}': ['get', 'patch', 'delete'],
  '/admin/api/robots/{uuid}/rotate_token': ['post'],
  '/admin/api/robots/{uuid}/users': ['get'],
  '/admin/api/robots/{uuid}/users/{user_id}': ['put', 'delete'],
  '/admin/api/users': ['get', 'post'],
  '/admin/api/users/{id}': ['get', 'patch', 'delete'],
  '/admin/api/audit': ['get'],
  '/admin/api/cluster': ['get'],
  '/admin/api/groups': ['get', 'post'],
  '/admin/api/groups/{id}': ['get', 'delete'],
  '/admin/api/groups/{id}/robots/{uuid}': ['put', 'delete'],
  '/admin/api/groups/{id}/users/{user_id}': ['put', 'delete'],
  '/admin/api/models': ['get', 'post'],
  '/admin/api/models/{name}/versions/{version}': ['get', 'delete']
}

/** Some of the pages (and the JSON the pages fetch), as the router knows them. */
const PAGES: Array<[string, string]> = [
  ['GET', '/admin'],
  ['GET', '/admin/login'],
  ['POST', '/admin/login'],
  ['POST', '/admin/logout'],
  ['GET', '/admin/token.json'],
  ['GET', '/admin/fleet'],
  ['GET', '/admin/robots'],
  ['GET', '/admin/robots/:uuid'],
  ['POST', '/admin/robots/:uuid/rotate'],
  ['GET', '/admin/robots/:uuid/commands.json'],
  ['GET', '/admin/users/:id'],
  ['GET', '/admin/audit']
]

t.test('/docs/json documents the Management API and none of the admin pages', async (t) => {
  const app = await build(t)
  for (const [method, url] of PAGES) t.ok(app.hasRoute({ method, url }), `${method} ${url} is a route of the app`)

  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const paths = res.json().paths as Record<string, Record<string, unknown>>
  const admin = Object.keys(paths).filter((p) => p === '/admin' || p.startsWith('/admin/'))
  t.same(admin.filter((p) => !p.startsWith('/admin/api/')), [], 'no admin page in the document')
  for (const [, url] of PAGES) t.notOk(url.replace(/:(\w+)/g, '{$1}') in paths, `${url} is not documented`)
  for (const [path, methods] of Object.entries(MANAGEMENT)) {
    for (const method of methods) t.type(paths[path]?.[method], 'object', `${method.toUpperCase()} ${path} is documented`)
  }
  t.same(admin.filter((p) => !(p in MANAGEMENT)), [], 'every admin path documented is a Management API path')
  t.match(paths['/admin/api/robots']?.post, { tags: ['management'], security: [{ bearerAuth: [] }] }, 'tagged and secured as before')

  // hidden from the document, still served
  t.equal((await app.inject({ method: 'GET', url: '/admin/login' })).statusCode, 200, 'the log-in page still answers')
})
