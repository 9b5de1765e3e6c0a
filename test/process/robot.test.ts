// The example robot end to end: the compiled CLI as a real process against a
// real, listening United.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, ownedRobot } from '../factory.js'
import { cleanEnv, ROOT, tempDir } from './spawn.js'

const ROBOT = join(ROOT, 'dist', 'src', 'cli', 'robot.js')

async function serve (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  const app = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}` }
}

function runRobot (t: Test, args: string[]): { child: ChildProcess, output: () => string, waitFor: (re: RegExp) => Promise<RegExpExecArray> } {
  const child = spawn(process.execPath, [ROBOT, ...args], { env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return {
    child,
    output: () => output,
    waitFor: async (re) => await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { child.stdout?.off('data', check); reject(new Error(`robot did not print ${String(re)} within 20 s:\n${output}`)) }, 20_000)
      const check = (): void => {
        const m = re.exec(output)
        if (m !== null) { clearTimeout(timer); child.stdout?.off('data', check); resolve(m) }
      }
      child.stdout?.on('data', check)
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`robot exited before printing ${String(re)}:\n${output}`)) })
      check()
    })
  }
}

t.test('the example robot obtains a token, streams position frames over WebSocket and prints each ack', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const r = runRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '20', '--count', '15'])
  const [code] = await once(r.child, 'exit')
  t.equal(code, 0, 'exits 0')
  t.match(r.output(), new RegExp(`connected as ${robot.uuid}`))
  t.match(r.output(), /done: 15 frames acked ok, 0 errors/)
  t.equal((r.output().match(/ack \S+ ok/g) ?? []).length, 15, 'one ack printed per frame')
  const frames = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames`, headers: bearer(user.jwt) })
  t.equal(frames.json().items.length, 15)
  t.match(frames.json().items[0], { type: 1, data: { speed: Number, position_x: Number, position_y: Number, angle_theta: Number, datetime: String } })
})

t.test('the example robot works over TCP too', async (t) => {
  const { app, url } = await serve(t)
  const robot = await createRobot(app)
  const r = runRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--mqtt', `mqtt://127.0.0.1:${app.broker.port}`, '--interval', '20', '--count', '5'])
  const [code] = await once(r.child, 'exit')
  t.equal(code, 0)
  t.match(r.output(), /done: 5 frames acked ok, 0 errors/)
})

t.test('the example robot obeys a command, acknowledges it, and its state changes', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const r = runRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50'])
  await r.waitFor(/connected as/)
  let sent
  // The robot subscribes to its commands right after CONNACK; retry the 409 until it has.
  for (let i = 0; i < 100; i++) {
    sent = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command: 'auto' } })
    if (sent.statusCode === 201) break
    await once(r.child.stdout!, 'data')
  }
  t.equal(sent?.statusCode, 201)
  await r.waitFor(/command auto from \S+ → state auto/)
  let status = ''
  for (let i = 0; i < 200 && status !== 'done'; i++) {
    const list = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/commands`, headers: bearer(user.jwt) })
    status = list.json().items[0].status
    if (status !== 'done') await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(status, 'done')
  const robotView = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })
  t.equal(robotView.json().state, 'auto')
  r.child.kill('SIGTERM')
  await once(r.child, 'exit')
})

t.test('the example robot handles the commands queued while it was away, as soon as it is back (CONTRACT §12)', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const args = ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50']
  const first = runRobot(t, args)
  await first.waitFor(/connected as/)
  first.child.kill('SIGTERM')
  await once(first.child, 'exit')
  await new Promise((resolve) => { setTimeout(resolve, 100) }) // its connection is gone

  const ids: string[] = []
  for (const command of ['manual', 'auto']) {
    const res = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command, ttl: 300 } })
    t.equal(res.json().status, 'queued', `${command}: queued while the robot is away`)
    ids.push(res.json().id)
  }
  const back = runRobot(t, args)
  await back.waitFor(/command auto from \S+ → state auto/)
  t.match(back.output(), /command manual from \S+ → state manual[\s\S]*command auto from \S+ → state auto/, 'both, oldest first, right after it connected')
  const statuses = async (): Promise<string[]> => {
    const list = (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/commands`, headers: bearer(user.jwt) })).json().items as Array<{ id: string, status: string }>
    return ids.map((id) => list.find((c) => c.id === id)?.status ?? '')
  }
  let now = await statuses()
  for (let i = 0; i < 200 && now.some((s) => s !== 'done'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    now = await statuses()
  }
  t.same(now, ['done', 'done'], 'both acknowledged')
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(user.jwt) })).json().state, 'auto', 'the state is the last command')
  back.child.kill('SIGTERM')
  await once(back.child, 'exit')
})

t.test('the example robot reconnects with a fresh token after its token is voided', async (t) => {
  const { app, url } = await serve(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const r = runRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50'])
  await r.waitFor(/connected as/)
  // Disabling closes its connection and voids its token; obtain_token then answers 401 until it is enabled again.
  t.equal((await app.inject({ method: 'PATCH', url: `/admin/api/robots/${robot.uuid}`, headers: bearer(staff.jwt), payload: { enabled: false } })).statusCode, 200)
  await r.waitFor(/connection lost/)
  await r.waitFor(/obtain_token answered 401/)
  t.equal((await app.inject({ method: 'PATCH', url: `/admin/api/robots/${robot.uuid}`, headers: bearer(staff.jwt), payload: { enabled: true } })).statusCode, 200)
  const before = (r.output().match(/connected as/g) ?? []).length
  while ((r.output().match(/connected as/g) ?? []).length === before) await once(r.child.stdout!, 'data')
  t.pass('reconnected with a fresh token')
  r.child.kill('SIGTERM')
  await once(r.child, 'exit')
})

t.test('--fleet runs several robots from a credentials file', async (t) => {
  const { app, url } = await serve(t)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  const file = join(tempDir(t), 'fleet.json')
  writeFileSync(file, JSON.stringify(robots.map((r) => ({ serial: r.serial, token: r.secret }))))
  const r = runRobot(t, ['--fleet', '3', '--credentials', file, '--url', url, '--interval', '20', '--count', '4'])
  const [code] = await once(r.child, 'exit')
  t.equal(code, 0, 'exits 0')
  t.match(r.output(), /done: 12 frames acked ok, 0 errors/)
})

t.test('the example robot explains its usage', async (t) => {
  const r = runRobot(t, ['--serial', 'x'])
  const [code] = await once(r.child, 'exit')
  t.equal(code, 2)
  t.match(r.output(), /--serial and --token are required/)
})
