// The real server starting (npm test builds dist/ first): a port another
// program holds stops it with one paragraph that names the setting to change,
// exit code 1, no stack trace, for each listener; the banner names the
// database in use (a PostgreSQL password masked), its first URL answers, and
// it offers the createsuperuser command, which reaches that very database,
// only until an admin exists. On the database under test: a SQLite file, or
// a fresh PostgreSQL database with TEST_DATABASE_URL.
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pgBase, testDatabase } from '../helper.js'
import { MANAGE, ROOT, run, SERVER, startServer, tempDir, type Run } from './spawn.js'

const JWT_SECRET = 'start-test-secret-start-test-secret-0123'
const TLS_CERT_FILE = join(ROOT, 'test', 'fixtures', 'tls', 'server.pem')
const TLS_KEY_FILE = join(ROOT, 'test', 'fixtures', 'tls', 'server.key')

/** A port on 127.0.0.1 that this test holds until it ends, as Mosquitto would. */
async function heldPort (t: Test): Promise<number> {
  const holder = createServer()
  holder.listen({ host: '127.0.0.1', port: 0 })
  await once(holder, 'listening')
  t.teardown(async () => { holder.close(); await once(holder, 'close') })
  return (holder.address() as AddressInfo).port
}

/** The failed start's paragraph: one line on stderr, no stack trace anywhere. */
function paragraph (t: Test, res: Run): string {
  t.equal(res.code, 1, 'exit code 1')
  const ours = res.stderr.split('\n').filter((line) => line.startsWith('united:'))
  t.equal(ours.length, 1, 'one paragraph')
  t.notMatch(res.stderr + res.stdout, /^\s+at /m, 'no stack trace')
  t.notMatch(res.stderr, /Error:/, 'no error dump')
  return ours[0] ?? ''
}

t.test('MQTT_PORT held by another program: the start stops, naming MQTT_PORT and an example', async (t) => {
  const port = await heldPort(t)
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { JWT_SECRET, HTTP_PORT: '0', MQTT_PORT: String(port), npm_lifecycle_event: 'start' } })
  const message = paragraph(t, res)
  t.match(message, `MQTT over TCP cannot listen on 127.0.0.1:${port}: another program already uses this port`)
  t.match(message, `give United another port with MQTT_PORT, for example: MQTT_PORT=${port + 1} npm start`, 'as npm start: the example is npm start')
})

t.test('HTTP_PORT held: the start stops, naming HTTP_PORT, after the broker had begun listening', async (t) => {
  const port = await heldPort(t)
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { JWT_SECRET, HTTP_PORT: String(port), MQTT_PORT: '0' } })
  const message = paragraph(t, res)
  t.match(message, `HTTP (REST API, admin pages, MQTT over WebSocket) cannot listen on 127.0.0.1:${port}`)
  t.match(message, new RegExp(`with HTTP_PORT, for example: HTTP_PORT=${port + 1} node \\S*dist/src/server\\.js$`), 'started with node: the example is that command')
})

t.test('MQTT_TLS_PORT held: the start stops, naming MQTT_TLS_PORT', async (t) => {
  const port = await heldPort(t)
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { JWT_SECRET, HTTP_PORT: '0', MQTT_PORT: '0', MQTT_TLS_PORT: String(port), TLS_CERT_FILE, TLS_KEY_FILE } })
  const message = paragraph(t, res)
  t.match(message, `MQTT over TLS cannot listen on 127.0.0.1:${port}`)
  t.match(message, `with MQTT_TLS_PORT, for example: MQTT_TLS_PORT=${port + 1} `)
})

/**
 * The database under test, as another process reaches it: a SQLite file
 * (the default DATABASE_URL, from the temp directory the server runs in), or
 * a fresh PostgreSQL database whose URL carries a password (the test server
 * trusts local connections, so any password logs in) that must never be shown.
 */
async function database (t: Test, cwd: string): Promise<{ env: Record<string, string>, label: string, password?: string, url: string }> {
  if (pgBase === undefined) {
    const file = join(cwd, 'data', 'united.sqlite')
    return { env: {}, label: `SQLite file ${file}`, url: `sqlite:${file}` }
  }
  const db = await testDatabase()
  t.teardown(db.drop)
  const url = new URL(db.url)
  const password = 'Banner-Pa55word-s3cret'
  url.password = password
  const masked = new URL(db.url)
  masked.password = '***'
  return { env: { DATABASE_URL: url.toString() }, label: `PostgreSQL ${masked.toString()}`, password, url: url.toString() }
}

/** The value of DATABASE_URL in a printed `DATABASE_URL=… ` prefix (single-quoted or not). */
function urlOf (prefix: string): string {
  const m = /^DATABASE_URL=(?:'([^']*)'|(\S+)) $/.exec(prefix)
  if (m === null) throw new Error(`not a DATABASE_URL prefix: ${JSON.stringify(prefix)}`)
  return m[1] ?? m[2] as string
}

t.test('the banner names the database, its first URL answers, and it offers createsuperuser for that database until an admin exists', async (t) => {
  const cwd = tempDir(t)
  const db = await database(t, cwd)
  const env = { JWT_SECRET, ...db.env }

  const first = await startServer(t, { cwd, env })
  const { stdout, stderr } = first.output()
  t.match(stdout, `  Database      ${db.label}\n`, 'the database in use')
  if (db.password !== undefined) t.notMatch(stdout + stderr, db.password, 'the password is never shown')

  const firstUrl = /https?:\/\/\S+/.exec(stdout.slice(stdout.indexOf('United is running')))?.[0] as string
  t.equal(firstUrl, `${first.url}/admin`, 'the first URL is the admin pages')
  const page = await fetch(firstUrl)
  t.equal(page.status, 200, 'and it answers (the log-in page)')
  t.match(page.headers.get('content-type'), /text\/html/)
  const root = await fetch(`${first.url}/`, { redirect: 'manual' })
  t.equal(root.status, 302, '/ leads to the admin')
  t.equal(root.headers.get('location'), '/admin')

  const hint = /\n {2}(.*)npm run manage -- createsuperuser --username admin\n/.exec(stdout)
  t.ok(hint, 'no admin yet: the createsuperuser command')
  const prefix = hint?.[1] ?? ''
  if (db.password === undefined) {
    t.equal(prefix, `DATABASE_URL=${db.url} `, 'started outside the package root: the file, absolute')
  } else {
    t.equal(prefix, `DATABASE_URL='${db.url.replace(db.password, '<password>')}' `, 'the URL with a placeholder for its password')
    t.match(stdout, "(with this server's DATABASE_URL: its password is not shown here)")
  }
  // As `npm run manage` runs it: from the package root, with the printed DATABASE_URL.
  const created = await run(MANAGE, ['createsuperuser', '--username', 'admin', '--password', 'admin-password'], {
    cwd: ROOT, env: { DATABASE_URL: db.password === undefined ? urlOf(prefix) : urlOf(prefix).replace('<password>', db.password) }
  })
  t.equal(created.code, 0, created.stderr)
  first.child.kill('SIGTERM')
  await once(first.child, 'exit')

  const second = await startServer(t, { cwd, env })
  const again = second.output().stdout
  t.notMatch(again, /createsuperuser|No admin yet/, 'an admin exists: no createsuperuser offered')
  t.match(again, /\n {2}Admin {9}http:\/\/127\.0\.0\.1:\d+\/admin\n/)
  const login = await fetch(`${second.url}/users/obtain_token/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'admin-password' }) })
  t.equal(login.status, 200, 'the admin was created in the database this server uses')
  second.child.kill('SIGTERM')
  await once(second.child, 'exit')
})
