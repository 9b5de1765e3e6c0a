import { once } from 'node:events'
import t from 'tap'
import { MANAGE, run, startServer, tempDir } from './spawn.js'

t.test('createsuperuser creates a staff user who can log in and use the management API', async (t) => {
  const cwd = tempDir(t)
  const env = { DATABASE_URL: 'sqlite:./data/united.sqlite' }
  const created = await run(MANAGE, ['createsuperuser', '--username', 'root', '--password', 'root-password'], { cwd, env })
  t.equal(created.code, 0, created.stderr)
  t.match(created.stdout, /Superuser "root" created/)

  const again = await run(MANAGE, ['createsuperuser', '--username', 'root', '--password', 'root-password'], { cwd, env })
  t.equal(again.code, 1)
  t.match(again.stderr, /already exists/)

  const server = await startServer(t, { cwd, env })
  const login = await fetch(`${server.url}/users/obtain_token/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'root', password: 'root-password' }) })
  t.equal(login.status, 200)
  const { access } = await login.json() as { access: string }
  const users = await fetch(`${server.url}/admin/api/users`, { headers: { authorization: `Bearer ${access}` } })
  t.equal(users.status, 200)
  t.match(await users.json(), { items: [{ username: 'root', is_staff: true, is_active: true }] })
  server.child.kill('SIGTERM')
  await once(server.child, 'exit')
})

t.test('createsuperuser without a terminal needs both flags', async (t) => {
  const res = await run(MANAGE, ['createsuperuser', '--username', 'x'], { cwd: tempDir(t), env: {} })
  t.equal(res.code, 2)
  t.match(res.stderr, /--password is required/)
})

t.test('createsuperuser rejects a short password and a bad username', async (t) => {
  const cwd = tempDir(t)
  const short = await run(MANAGE, ['createsuperuser', '--username', 'x', '--password', 'short'], { cwd, env: {} })
  t.equal(short.code, 2)
  t.match(short.stderr, /at least 8/)
  const bad = await run(MANAGE, ['createsuperuser', '--username', 'a b', '--password', 'long-enough'], { cwd, env: {} })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /letters, digits/)
})

t.test('an unknown command prints the usage', async (t) => {
  const res = await run(MANAGE, ['frobnicate'], { cwd: tempDir(t), env: {} })
  t.equal(res.code, 2)
  t.match(res.stderr, /usage: npm run manage/)
})
