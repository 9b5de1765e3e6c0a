// The example robot end to end: the compiled CLI as a real process against a
// real, listening United. One robot here; fleets in robot-fleet.test.ts.
import { once } from 'node:events'
import t from 'tap'
import { bearer } from '../helper.js'
import { createRobot, createStaff, ownedRobot } from '../factory.js'
import { serve, spawnRobot } from './robot-spawn.js'

interface StoredFrame { frame_id: string, type: number, data: Record<string, unknown> }

t.test('the example robot obtains a token, streams position and hardware frames over WebSocket and prints each ack', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '20', '--count', '15'])
  t.equal(await r.exit(), 0, 'exits 0')
  t.match(r.output(), new RegExp(`connected as ${robot.uuid}`))
  const frames = (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=100`, headers: bearer(user.jwt) })).json().items as StoredFrame[]
  const positions = frames.filter((f) => f.type === 1)
  const hardware = frames.filter((f) => f.type === 3)
  t.equal(positions.length, 15, '--count 15: fifteen position frames')
  t.ok(hardware.length >= 1, 'and a hardware frame with the first one')
  t.equal(frames.length, positions.length + hardware.length, 'nothing else')
  t.match(r.output(), new RegExp(`done: ${frames.length} frames acked ok, 0 errors\\n`))
  t.equal((r.output().match(/ack \S+ ok/g) ?? []).length, frames.length, 'one ack printed per frame')
  t.match(positions[0], { data: { speed: Number, position_x: Number, position_y: Number, angle_theta: Number, datetime: String } })
  for (const f of hardware) {
    t.same(Object.keys(f.data).sort(), ['battery', 'cpu', 'datetime', 'memory', 'temperature'], 'the hardware fields, all of them')
    for (const field of ['battery', 'cpu', 'memory']) {
      const v = f.data[field] as number
      t.ok(v >= 0 && v <= 100, `${field} ${v} is a percentage`)
    }
    t.ok((f.data.temperature as number) > 20 && (f.data.temperature as number) < 90, 'a plausible temperature')
  }
})

t.test('the example robot works over TCP too', async (t) => {
  const { app, url } = await serve(t)
  const robot = await createRobot(app)
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--mqtt', `mqtt://127.0.0.1:${app.broker.port}`, '--interval', '20', '--count', '5'])
  t.equal(await r.exit(), 0)
  t.match(r.output(), /done: \d+ frames acked ok, 0 errors/)
})

t.test('the example robot obeys a command, acknowledges it, and its state changes', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50'])
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
  t.equal(await r.exit(), 0, 'stopped without an error: exit 0')
})

t.test('the example robot handles the commands queued while it was away, as soon as it is back', async (t) => {
  const { app, url } = await serve(t)
  const { user, robot } = await ownedRobot(app)
  const args = ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50']
  const first = spawnRobot(t, args)
  await first.waitFor(/connected as/)
  first.child.kill('SIGTERM')
  await first.exit()
  await new Promise((resolve) => { setTimeout(resolve, 100) }) // its connection is gone

  const ids: string[] = []
  for (const command of ['manual', 'auto']) {
    const res = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: robot.uuid, command, ttl: 300 } })
    t.equal(res.json().status, 'queued', `${command}: queued while the robot is away`)
    ids.push(res.json().id)
  }
  const back = spawnRobot(t, args)
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
  await back.exit()
})

t.test('the example robot reconnects with a fresh token after its token is voided', async (t) => {
  const { app, url } = await serve(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50'])
  await r.waitFor(/connected as/)
  // Disabling closes its connection and voids its token; obtain_token then answers 401 until it is enabled again.
  t.equal((await app.inject({ method: 'PATCH', url: `/admin/api/robots/${robot.uuid}`, headers: bearer(staff.jwt), payload: { enabled: false } })).statusCode, 200)
  await r.waitFor(/connection lost/)
  await r.waitFor(/obtain_token answered 401 UNITED_CREDENTIAL_REVOKED/)
  t.equal((await app.inject({ method: 'PATCH', url: `/admin/api/robots/${robot.uuid}`, headers: bearer(staff.jwt), payload: { enabled: true } })).statusCode, 200)
  await r.waitFor(/connected as[\s\S]*connection lost[\s\S]*connected as/)
  t.pass('reconnected with a fresh token')
  r.child.kill('SIGTERM')
  t.equal(await r.exit(), 1, 'a run with errors (the lost connection, the refused attempts) exits 1')
  t.match(r.output(), /done: \d+ frames acked ok, \d+ errors \(\d+ failed connection attempts?, 1 connection lost\)/)
})

t.test('the example robot explains its usage', async (t) => {
  const r = spawnRobot(t, ['--serial', 'x'])
  t.equal(await r.exit(), 2)
  t.match(r.output(), /--serial and --token are required/)
})
