// The example robot with a model (docs/protocol.md §14, the README's worked
// example): the compiled CLI as a real process with --model
// examples/cleaner.json against a real, listening United. Its type-4 frames
// are checked by the broker against the model and stored, with plausible
// values; it answers a model command with a result, and its state stays.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { bearer } from '../helper.js'
import { createModel, createRobot, createStaff } from '../factory.js'
import { serve, spawnRobot } from './robot-spawn.js'
import { ROOT, tempDir } from './spawn.js'

const EXAMPLE_FILE = join(ROOT, 'examples', 'cleaner.json')
const EXAMPLE = JSON.parse(readFileSync(EXAMPLE_FILE, 'utf8')) as { name: string, telemetry: Record<string, { type: string, minimum?: number, maximum?: number, enum?: string[], max_length?: number }> } & Record<string, unknown>

interface StoredFrame { frame_id: string, type: number, data: Record<string, unknown> }

t.test('with --model, the example robot sends type-4 frames of the model’s fields, within their declarations, and they are stored', async (t) => {
  const { app, url } = await serve(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { model: await createModel(app, EXAMPLE) })
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '20', '--count', '15', '--model', EXAMPLE_FILE])
  t.equal(await r.exit(), 0, 'exits 0: every frame acked ok')
  const frames = (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=100`, headers: bearer(staff.jwt) })).json().items as StoredFrame[]
  const telemetry = frames.filter((f) => f.type === 4)
  t.ok(telemetry.length >= 1, `type-4 frames stored: ${telemetry.length}`)
  t.equal(frames.filter((f) => f.type === 1).length, 15, 'beside its usual position frames')
  t.match(r.output(), new RegExp(`done: ${frames.length} frames acked ok, 0 errors\\n`), 'no frame refused')
  for (const f of telemetry) {
    t.same(Object.keys(f.data).sort(), ['datetime', ...Object.keys(EXAMPLE.telemetry)].sort(), 'every field of the model')
    for (const [field, decl] of Object.entries(EXAMPLE.telemetry)) {
      const v = f.data[field]
      if (decl.type === 'integer') t.ok(Number.isInteger(v) && (v as number) >= (decl.minimum ?? -Infinity) && (v as number) <= (decl.maximum ?? Infinity), `${field} ${String(v)}: a whole number within its bounds`)
      else if (decl.type === 'number') t.ok(typeof v === 'number' && v >= (decl.minimum ?? -Infinity) && v <= (decl.maximum ?? Infinity), `${field} ${String(v)}: within its bounds`)
      else if (decl.type === 'boolean') t.type(v, 'boolean', `${field}: a boolean`)
      else if (decl.enum !== undefined) t.ok(decl.enum.includes(v as string), `${field} ${String(v)}: one of its values`)
      else t.ok(typeof v === 'string' && v.length > 0 && v.length <= (decl.max_length ?? 256), `${field} ${String(v)}: a short string`)
    }
  }
  // the aggregate of type 4 sees them (the robot page's charts)
  const from = new Date(Date.now() - 3600_000).toISOString()
  const aggregate = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames/aggregate?type=4&bucket=3600&from=${from}&to=${new Date().toISOString()}`, headers: bearer(staff.jwt) })
  t.equal(aggregate.statusCode, 200)
  t.ok(typeof aggregate.json().items[0]?.avg.brush_rpm === 'number', 'the numeric fields aggregate')
})

t.test('with --model, the example robot answers a model command with a result, and its state stays', async (t) => {
  const { app, url } = await serve(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { model: await createModel(app, EXAMPLE) })
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--interval', '50', '--model', EXAMPLE_FILE])
  await r.waitFor(/connected as/)
  let sent
  // The robot subscribes to its commands right after CONNACK; retry the 409 until it has.
  for (let i = 0; i < 100; i++) {
    sent = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(staff.jwt), payload: { robot_uuid: robot.uuid, command: 'clean_zone', params: { zone: 'lobby', passes: 2 } } })
    if (sent.statusCode === 201) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(sent?.statusCode, 201, 'the model command is accepted')
  await r.waitFor(/model command clean_zone params \{"zone":"lobby","passes":2\} → result \{"ok":true,"command":"clean_zone","params":\{"zone":"lobby","passes":2\}\}/)
  const id = sent?.json().id as string
  let item: { status: string, result: unknown } | undefined
  for (let i = 0; i < 200 && item?.status !== 'done'; i++) {
    const list = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/commands`, headers: bearer(staff.jwt) })
    item = (list.json().items as Array<{ id: string, status: string, result: unknown }>).find((c) => c.id === id)
    if (item?.status !== 'done') await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(item?.status, 'done', 'acknowledged ok')
  t.same(item?.result, { ok: true, command: 'clean_zone', params: { zone: 'lobby', passes: 2 } }, 'with its result, stored')
  t.equal((await app.inject({ method: 'GET', url: `/robots/${robot.uuid}`, headers: bearer(staff.jwt) })).json().state, 'idle', 'a model command leaves the state alone')

  const dock = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(staff.jwt), payload: { robot_uuid: robot.uuid, command: 'dock' } })
  t.equal(dock.statusCode, 201)
  await r.waitFor(/model command dock params \{\} → result \{"ok":true,"command":"dock","params":\{\}\}/)
  t.pass('a command without parameters gets its result too')
  r.child.kill('SIGTERM')
  t.equal(await r.exit(), 0, 'stopped without an error')
})

t.test('--model refuses a file that is not a valid model, naming the mistakes', async (t) => {
  const dir = tempDir(t)
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, JSON.stringify({ name: 'Bad', telemetry: { speed: { type: 'float' } }, commands: {} }))
  const r = spawnRobot(t, ['--serial', 's', '--token', 't', '--model', bad])
  t.equal(await r.exit(), 2)
  t.match(r.output(), /--model \S+bad\.json is not a valid model: name must match .*; telemetry\.speed\.type must be one of/)
  const missing = spawnRobot(t, ['--serial', 's', '--token', 't', '--model', join(dir, 'none.json')])
  t.equal(await missing.exit(), 2)
  t.match(missing.output(), /--model \S+none\.json: ENOENT/)
})
