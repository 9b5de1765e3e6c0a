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
  t.same(await ready.json(), { status: 'ready', database: 'sqlite' })
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

t.test('REDIS_URL is refused until cluster mode exists, instead of running a lone node that looks clustered', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { REDIS_URL: 'redis://127.0.0.1:6379', HTTP_PORT: '0', MQTT_PORT: '0' } })
  t.equal(res.code, 78)
  t.match(res.stderr, /cluster mode is not built yet/)
})

t.test('outside production a JWT secret is generated, and the log says so', async (t) => {
  const cwd = tempDir(t)
  const server = await startServer(t, { cwd, env: { LOG_LEVEL: 'warn' } })
  t.match(server.output().stdout, /JWT_SECRET is not set/)
  server.child.kill('SIGTERM')
  await once(server.child, 'exit')
})
