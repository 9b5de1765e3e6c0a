// docs/protocol.md §7: the OpenAPI 3 document at /docs/json and the UI at /docs.
import t, { type Test } from 'tap'
import { VERSION } from '../../src/app.js'
import { build } from '../helper.js'

/** Every REST path of the contract, with the methods it must document. */
const CONTRACT_PATHS: Record<string, string[]> = {
  '/users/obtain_token/': ['post'],
  '/users/refresh_token/': ['post'],
  '/users/me': ['get'],
  '/robots': ['get'],
  '/robots/{uuid}': ['get'],
  '/robots/{uuid}/frames': ['get'],
  '/robots/{uuid}/commands': ['get'],
  '/robots/robot/command': ['post'],
  '/robots/robot/obtain_token': ['post'],
  '/robots/{uuid}/grants': ['get'],
  '/robots/{uuid}/grants/{username}': ['put', 'delete'],
  '/admin/api/robots': ['get', 'post'],
  '/admin/api/robots/{uuid}': ['patch', 'delete'],
  '/admin/api/robots/{uuid}/rotate_token': ['post'],
  '/admin/api/robots/{uuid}/users/{user_id}': ['put', 'delete'],
  '/admin/api/users': ['get', 'post'],
  '/admin/api/users/{id}': ['patch', 'delete'],
  '/admin/api/cluster': ['get'],
  '/admin/api/groups': ['get', 'post'],
  '/admin/api/groups/{id}': ['get', 'delete'],
  '/admin/api/groups/{id}/robots/{uuid}': ['put', 'delete'],
  '/admin/api/groups/{id}/users/{user_id}': ['put', 'delete'],
  '/health': ['get'],
  '/ready': ['get']
}

const PUBLIC = new Set(['/users/obtain_token/', '/users/refresh_token/', '/robots/robot/obtain_token', '/health', '/ready'])

async function openapi (t: Test): Promise<any> {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  return res.json()
}

t.test('GET /docs/json is an OpenAPI 3 document for United', async (t) => {
  const doc = await openapi(t)
  t.match(doc.openapi, /^3\.\d+\.\d+$/)
  t.equal(doc.info.title, 'United')
  t.equal(doc.info.version, VERSION)
  t.type(doc.paths, 'object')
})

t.test('GET /docs/json lists every path of the contract with its methods', async (t) => {
  const doc = await openapi(t)
  for (const [path, methods] of Object.entries(CONTRACT_PATHS)) {
    t.ok(path in doc.paths, `documents ${path}`)
    for (const method of methods) t.type(doc.paths[path]?.[method], 'object', `documents ${method.toUpperCase()} ${path}`)
  }
  const paths = Object.keys(doc.paths)
  t.notOk(paths.some((p) => p.includes(':')), 'path parameters are written {name}, not :name')
  t.notOk(paths.some((p) => p === '/docs' || p.startsWith('/docs/')), 'the docs do not document themselves')
  t.notOk(paths.some((p) => p === '/mqtt'), 'the MQTT WebSocket is not a REST path')
})

t.test('every documented operation has responses, and errors follow the §7 schema', async (t) => {
  const doc = await openapi(t)
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      const responses = Object.keys(op.responses ?? {})
      t.ok(responses.length > 0, `${method} ${path}: responses documented`)
      for (const status of responses.filter((s) => Number(s) >= 400)) {
        const schema = op.responses[status].content?.['application/json']?.schema
        t.same([...(schema?.required ?? [])].sort(), ['error', 'message', 'statusCode'], `${method} ${path} ${status}: error schema`)
      }
    }
  }
})

t.test('the documented success codes match the contract', async (t) => {
  const doc = await openapi(t)
  const has = (path: string, method: string, status: string): boolean => status in (doc.paths[path]?.[method]?.responses ?? {})
  t.ok(has('/users/obtain_token/', 'post', '200'))
  t.ok(has('/users/obtain_token/', 'post', '401'))
  t.ok(has('/robots/robot/obtain_token', 'post', '201'))
  t.ok(has('/robots/robot/obtain_token', 'post', '401'))
  t.ok(has('/robots/robot/command', 'post', '201'))
  t.ok(has('/robots/robot/command', 'post', '409'))
  t.ok(has('/robots/{uuid}', 'get', '404'))
  t.ok(has('/admin/api/robots', 'post', '201'))
  t.ok(has('/admin/api/robots', 'post', '409'))
  t.ok(has('/admin/api/robots/{uuid}', 'delete', '204'))
  t.ok(has('/admin/api/robots/{uuid}/users/{user_id}', 'put', '204'))
  t.ok(has('/admin/api/robots/{uuid}/rotate_token', 'post', '200'))
})

t.test('the robot a user sees is documented without its secret', async (t) => {
  const doc = await openapi(t)
  const schema = doc.paths['/robots/{uuid}'].get.responses['200'].content['application/json'].schema
  t.same(Object.keys(schema.properties).sort(), ['command_connected', 'data_connected', 'last_seen_at', 'model', 'name', 'role', 'serial', 'state', 'uuid'])
  t.same([...new Set(JSON.stringify(schema.properties.role).match(/\b(viewer|operator|manager|staff)\b/g))], ['viewer', 'operator', 'manager', 'staff'], 'with the role')
  const token = doc.paths['/robots/robot/obtain_token'].post.responses['201'].content['application/json'].schema
  t.same(Object.keys(token.properties).sort(), ['access_token', 'expires_in', 'robot_uuid'])
})

t.test('authenticated operations declare the bearer JWT scheme; log-in does not', async (t) => {
  const doc = await openapi(t)
  t.match(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    if (!(path in CONTRACT_PATHS)) continue
    for (const [method, op] of Object.entries<any>(item)) {
      if (PUBLIC.has(path)) {
        t.notOk(op.security?.some((s: any) => 'bearerAuth' in s), `${method} ${path}: public`)
      } else {
        t.ok(op.security?.some((s: any) => 'bearerAuth' in s), `${method} ${path}: bearerAuth`)
      }
    }
  }
})

t.test('GET /docs serves the HTML UI, which loads', async (t) => {
  const app = await build(t)
  let url = '/docs'
  let res = await app.inject({ method: 'GET', url })
  for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 5; hops++) {
    url = new URL(String(res.headers.location), `http://localhost${url}`).pathname
    res = await app.inject({ method: 'GET', url })
  }
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  t.match(res.payload, /<html/i)
  t.match(res.payload, /swagger-ui/i)

  // Its scripts and styles are served too (a UI without them is a blank page).
  const assets = [...res.payload.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1] as string)
  t.ok(assets.length > 0, 'the page references its assets')
  for (const asset of assets) {
    const path = new URL(asset, `http://localhost${url}`).pathname
    const a = await app.inject({ method: 'GET', url: path })
    t.equal(a.statusCode, 200, `${path} is served`)
  }
})
