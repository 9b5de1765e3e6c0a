// Times what a developer waits for, on this checkout as it is (build it
// first, or the first run includes the build):
//   `npm start`              from the spawn to the first 200 of /health
//   `npm run manage -- …`    from the spawn to its exit (an unknown command: usage only;
//                             and createsuperuser, which opens the database and hashes a password)
// Each on a fresh SQLite file in a temp directory (the first start migrates
// it; the later ones open it as it is), HTTP on a free port, MQTT on any.
//   node scripts/time-start.mjs [runs]
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = Number(process.argv[2] ?? 3)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

async function freePort () {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address()
  s.close()
  await once(s, 'close')
  return port
}

const ms = (start) => Math.round(performance.now() - start)

async function timeStart (env) {
  const port = await freePort()
  const start = performance.now()
  // Its own process group, so that npm, sh and node stop together.
  const child = spawn(npm, ['start'], { cwd: ROOT, env: { ...process.env, ...env, HTTP_PORT: String(port), MQTT_PORT: '0', LOG_LEVEL: 'warn' }, stdio: 'ignore', detached: true })
  let exited = false
  child.once('exit', () => { exited = true })
  try {
    for (;;) {
      if (exited) throw new Error('npm start exited before /health answered')
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`)
        if (res.status === 200) return ms(start)
      } catch {}
      await new Promise((resolve) => { setTimeout(resolve, 10) })
    }
  } finally {
    if (!exited) {
      process.kill(-child.pid, 'SIGTERM')
      await once(child, 'exit')
    }
  }
}

async function timeCommand (args, env) {
  const start = performance.now()
  const child = spawn(npm, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore' })
  const [code] = await once(child, 'exit')
  return { ms: ms(start), code }
}

const dir = mkdtempSync(join(tmpdir(), 'united-time-'))
try {
  const env = { DATABASE_URL: `sqlite:${join(dir, 'united.sqlite')}`, JWT_SECRET: 'time-start-secret-time-start-secret-0123' }
  const starts = []
  for (let i = 0; i < RUNS; i++) starts.push(await timeStart(env))
  console.log(`npm start → /health 200: ${starts.join(', ')} ms (the first on a new database, which it migrates)`)
  const usage = []
  for (let i = 0; i < RUNS; i++) usage.push((await timeCommand(['run', 'manage', '--silent', '--', 'help'], env)).ms)
  console.log(`npm run manage -- help (usage): ${usage.join(', ')} ms`)
  const created = []
  for (let i = 0; i < RUNS; i++) {
    const res = await timeCommand(['run', 'manage', '--silent', '--', 'createsuperuser', '--username', `admin${i}`, '--password', 'admin-password'], env)
    if (res.code !== 0) throw new Error(`createsuperuser exited with ${res.code}`)
    created.push(res.ms)
  }
  console.log(`npm run manage -- createsuperuser: ${created.join(', ')} ms`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
