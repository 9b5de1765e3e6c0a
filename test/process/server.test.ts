import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { run, SERVER, startServer, tempDir } from './spawn.js'

t.test('a fresh start creates ./data/united.sqlite, migrates, serves /health and prints how to create an admin', async (t) => {
  const cwd = tempDir(t)
  const server = await startServer(t, { cwd, env: {} })
  t.ok(existsSync(join(cwd, 'data', 'united.sqlite')), 'embedded database created')
  const health = await fetch(`${server.url}/health`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  const ready = await fetch(`${server.url}/ready`)
  t.same(await ready.json(), { status: 'ready', database: 'ok', redis: 'off' })
  const { stdout } = server.output()
  t.match(stdout, /API docs\s+http:\/\/127\.0\.0\.1:\d+\/docs/)
  t.match(stdout, /npm run manage -- createsuperuser/)

  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0, 'SIGTERM exits 0')
})

t.test('production refuses to start without a JWT_SECRET', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { NODE_ENV: 'production', HTTP_PORT: '0', MQTT_PORT: '0' } })
  t.equal(res.code, 78)
  t.match(res.stderr, /JWT_SECRET must be set/)
})

t.test('a bad setting stops the start with a message that names it', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { HTTP_PORT: 'eighty', MQTT_PORT: '0' } })
  t.equal(res.code, 78)
  t.match(res.stderr, /HTTP_PORT/)
  t.notMatch(res.stderr, /at .*\.js:\d+/, 'no stack trace')
})

t.test('REDIS_URL with the embedded SQLite stops the start (docs/operations.md §4): the nodes must share one PostgreSQL database', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32), HTTP_PORT: '0', MQTT_PORT: '0' } })
  t.equal(res.code, 78)
  t.match(res.stderr, /REDIS_URL \(cluster mode\) needs a PostgreSQL DATABASE_URL/)
  const file = await run(SERVER, [], { cwd: tempDir(t), env: { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'sqlite:./x.sqlite', JWT_SECRET: 'x'.repeat(32), HTTP_PORT: '0', MQTT_PORT: '0' } })
  t.equal(file.code, 78, 'a sqlite: DATABASE_URL too')
})

t.test('REDIS_URL without JWT_SECRET stops the start: a generated secret would be one node\'s own', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/none', HTTP_PORT: '0', MQTT_PORT: '0' } })
  t.equal(res.code, 78)
  t.match(res.stderr, /needs JWT_SECRET, the same on every node/)
})

t.test('outside production a JWT secret is generated, and the log says so', async (t) => {
  const cwd = tempDir(t)
  const server = await startServer(t, { cwd, env: { LOG_LEVEL: 'warn' } })
  t.match(server.output().stdout, /JWT_SECRET is not set/)
  server.child.kill('SIGTERM')
  await once(server.child, 'exit')
})
