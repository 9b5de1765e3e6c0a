// The README's "two commands" and "Your first robot in five minutes",
// followed step by step as a newcomer would: the same npm commands through a
// shell (npm start, npm run manage, npm run robot), and the same HTTP calls
// and MQTT messages through Node's own clients where the README uses curl,
// jq and Mosquitto's tools (a fresh machine may lack them). The steps are
// first checked to be in the README as written, so the README and this test
// cannot drift apart. Ports are free ones instead of 8000 and 1884 (another
// test may hold them), and the SQLite file is in a temp dir instead of
// ./data: the only two differences.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { opened } from '../mqtt.js'
import { cleanEnv, ROOT, tempDir } from './spawn.js'

const README = readFileSync(join(ROOT, 'README.md'), 'utf8')
const tour = (/## Your first robot in five minutes\n([\s\S]*?)\n## /.exec(README)?.[1]) ?? ''

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Shell { child: ChildProcess, output: () => string, exit: Promise<number | null> }

/** A command line run by the shell, as typed in the README; killed with its process group at the end. */
function shell (t: Test, line: string, env: Record<string, string>): Shell {
  const child = spawn('sh', ['-c', line], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const exit = new Promise<number | null>((resolve) => { child.once('close', (code) => { resolve(code) }) })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    try { process.kill(-(child.pid as number), 'SIGINT') } catch {}
    const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }, 5000)
    await exit
    clearTimeout(timer)
  })
  return { child, output: () => output, exit }
}

async function until<T> (what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function json (method: string, url: string, body?: unknown, jwt?: string): Promise<{ status: number, body: any }> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(jwt === undefined ? {} : { authorization: `Bearer ${jwt}` }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? null : JSON.parse(text) }
}

/** mosquitto_sub/mosquitto_pub's part: an MQTT 3.1.1 client over TCP. */
async function mqttClient (t: Test, port: number, username: string, password: string): Promise<MqttClient> {
  return await opened(t, mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, username, password, reconnectPeriod: 0 }))
}

function messages (client: MqttClient): Array<{ topic: string, body: any }> {
  const seen: Array<{ topic: string, body: any }> = []
  client.on('message', (topic, payload) => { seen.push({ topic, body: JSON.parse(payload.toString()) }) })
  return seen
}

t.test('the README gives the steps this test follows', async (t) => {
  t.match(README, /npm install && npm start/, 'the two commands: run')
  t.match(README, /\nnpm test\s/, 'and test')
  for (const step of [
    'MQTT_PORT=1884 npm start &',
    'until curl -sf $API/ready',
    'npm run manage -- createsuperuser --username admin --password admin-password',
    '$API/users/obtain_token/',
    '$API/admin/api/robots',
    '{"serial":"R2D2","name":"first robot"}',
    '$API/robots/robot/obtain_token',
    '-t "robots/$ROBOT_UUID/ack" -t "robots/$ROBOT_UUID/commands"',
    '$API/robots/$ROBOT_UUID -H "authorization: Bearer $ADMIN" | jq -e .command_connected',
    '{"id":"f1","type":1,"data":{"speed":0.5,"position_x":1,"position_y":2,"angle_theta":0,"datetime":"2026-12-03 10:00:00"}}',
    '$API/robots/robot/command',
    '{\\"robot_uuid\\":\\"$ROBOT_UUID\\",\\"command\\":\\"auto\\"}',
    '"$API/robots/$ROBOT_UUID/frames?limit=5"',
    'kill $ROBOT_SUB',
    '{"username":"alice","password":"alice-password"}',
    'curl -s -X PUT $API/admin/api/robots/$ROBOT_UUID/users/$ALICE_ID',
    'npm run robot -- --serial R2D2 --token $ROBOT_SECRET --url $API &',
    '$API/robots/$ROBOT_UUID -H "authorization: Bearer $ALICE" | jq -e .command_connected',
    "-t 'robots/+/stats' -t 'robots/+/presence'",
    '"$API/robots/$ROBOT_UUID/commands?limit=1"',
    '{"role":"viewer","expires_at":"2030-01-01T00:00:00Z"}',
    '$API/users/me/api_keys',
    '{"name":"dashboard"}',
    "curl -s $API/robots -H \"authorization: Bearer $KEY\" | jq '.items[] | {serial, role}'"
  ]) t.ok(tour.includes(step), `the tour has: ${step}`)
})

t.test('the two commands and the five-minute tour, step by step', async (t) => {
  const dir = tempDir(t)
  const httpPort = await freePort()
  const mqttPort = await freePort()
  const API = `http://127.0.0.1:${httpPort}`
  // Each npm command gets the variables the README's shell would have, and a database outside the checkout.
  const env = { DATABASE_URL: `sqlite:${join(dir, 'united.sqlite')}`, HTTP_PORT: String(httpPort), LOG_LEVEL: 'warn' }

  // 1. start United, wait until it is ready, create an admin
  const server = shell(t, 'npm start', { ...env, MQTT_PORT: String(mqttPort) })
  await until('the server to be ready', async () => (await fetch(`${API}/ready`)).ok ? true : undefined, 60_000)
    .catch((err: Error) => { throw new Error(`${err.message}:\n${server.output()}`) })
  t.match(server.output(), /createsuperuser/, 'the banner says how to create the first admin')
  const manage = shell(t, 'npm run manage -- createsuperuser --username admin --password admin-password', env)
  t.equal(await manage.exit, 0, `createsuperuser exits 0:\n${manage.output()}`)

  // 2. log in as the admin and create a robot; the secret is shown only now
  const ADMIN = (await json('POST', `${API}/users/obtain_token/`, { username: 'admin', password: 'admin-password' })).body.access as string
  t.type(ADMIN, 'string', 'the admin logs in')
  const created = await json('POST', `${API}/admin/api/robots`, { serial: 'R2D2', name: 'first robot' }, ADMIN)
  t.equal(created.status, 201, 'the robot is created')
  const ROBOT_UUID = created.body.uuid as string
  const ROBOT_SECRET = created.body.token as string
  t.type(ROBOT_SECRET, 'string', 'with its secret')

  // 3. as the robot: a token, a client on its acks and commands, then wait until United sees it
  const ROBOT_TOKEN = (await json('POST', `${API}/robots/robot/obtain_token`, { serial: 'R2D2', token: ROBOT_SECRET })).body.access_token as string
  const robotSub = await mqttClient(t, mqttPort, ROBOT_UUID, ROBOT_TOKEN)
  const robotSeen = messages(robotSub)
  await robotSub.subscribeAsync([`robots/${ROBOT_UUID}/ack`, `robots/${ROBOT_UUID}/commands`], { qos: 1 })
  await until('command_connected', async () => (await json('GET', `${API}/robots/${ROBOT_UUID}`, undefined, ADMIN)).body.command_connected === true ? true : undefined)

  // 4. a frame; its ack arrives once it is stored
  const robotPub = await mqttClient(t, mqttPort, ROBOT_UUID, ROBOT_TOKEN)
  await robotPub.publishAsync(`robots/${ROBOT_UUID}/data`, '{"id":"f1","type":1,"data":{"speed":0.5,"position_x":1,"position_y":2,"angle_theta":0,"datetime":"2026-12-03 10:00:00"}}', { qos: 1 })
  robotPub.end()
  const ack = await until('the ack', async () => robotSeen.find((m) => m.topic.endsWith('/ack')))
  t.same(ack.body, { id: 'f1', status: 'ok' }, 'the ack {"id":"f1","status":"ok"}')

  // 5. a command reaches the robot's topic; the stored frame is there
  const sent = await json('POST', `${API}/robots/robot/command`, { robot_uuid: ROBOT_UUID, command: 'auto' }, ADMIN)
  t.equal(sent.status, 201, 'the command is accepted')
  const command = await until('the command', async () => robotSeen.find((m) => m.topic.endsWith('/commands')))
  t.match(command.body, { command: 'auto' }, 'and arrives on robots/<uuid>/commands')
  const frames = await json('GET', `${API}/robots/${ROBOT_UUID}/frames?limit=5`, undefined, ADMIN)
  t.same(frames.body.items.map((f: { frame_id: string }) => f.frame_id), ['f1'], 'the stored frame')

  // 6. the example robot takes over, watched by a user granted the robot
  robotSub.end(true)
  const alice = await json('POST', `${API}/admin/api/users`, { username: 'alice', password: 'alice-password' }, ADMIN)
  t.equal(alice.status, 201, 'alice is created')
  const granted = await json('PUT', `${API}/admin/api/robots/${ROBOT_UUID}/users/${String(alice.body.id)}`, undefined, ADMIN)
  t.ok(granted.status >= 200 && granted.status < 300, 'and granted the robot')
  const ALICE = (await json('POST', `${API}/users/obtain_token/`, { username: 'alice', password: 'alice-password' })).body.access as string
  const robot = shell(t, `npm run robot -- --serial R2D2 --token ${ROBOT_SECRET} --url ${API}`, { ...env, MQTT_PORT: String(mqttPort) })
  await until('the example robot to be command_connected', async () => (await json('GET', `${API}/robots/${ROBOT_UUID}`, undefined, ALICE)).body.command_connected === true ? true : undefined)
    .catch((err: Error) => { throw new Error(`${err.message}:\n${robot.output()}`) })
  const watcher = await mqttClient(t, mqttPort, 'alice', ALICE)
  const watched = messages(watcher)
  await watcher.subscribeAsync(['robots/+/stats', 'robots/+/presence'])
  const presence = await until('the retained presence', async () => watched.find((m) => m.topic === `robots/${ROBOT_UUID}/presence`))
  t.match(presence.body, { robot_uuid: ROBOT_UUID, online: true, data_connected: true, command_connected: true }, 'alice sees the robot online')

  // 7. alice commands the robot; it obeys, acknowledges, and its statistics say so
  const byAlice = await json('POST', `${API}/robots/robot/command`, { robot_uuid: ROBOT_UUID, command: 'auto' }, ALICE)
  t.equal(byAlice.status, 201, 'alice\'s command is accepted')
  await until('the robot to obey', async () => /R2D2: command auto from alice → state auto/.test(robot.output()) ? true : undefined)
  const done = await until('the command to be done', async () => {
    const list = await json('GET', `${API}/robots/${ROBOT_UUID}/commands?limit=1`, undefined, ALICE)
    return list.body.items[0]?.status === 'done' ? list.body.items[0] : undefined
  })
  t.match(done, { command: 'auto', status: 'done' }, 'the command is done')
  await until('statistics with state auto', async () => watched.find((m) => m.topic === `robots/${ROBOT_UUID}/stats` && m.body.state === 'auto'))
  t.pass('the statistics show "state": "auto"')

  // Alice becomes a viewer until 2030, makes an API key and lists her robots with it
  const viewer = await json('PUT', `${API}/admin/api/robots/${ROBOT_UUID}/users/${String(alice.body.id)}`, { role: 'viewer', expires_at: '2030-01-01T00:00:00Z' }, ADMIN)
  t.equal(viewer.status, 204, 'the grant becomes a viewer grant with an end')
  const key = await json('POST', `${API}/users/me/api_keys`, { name: 'dashboard' }, ALICE)
  t.match(key.body.key, /^uk_/, 'an API key, shown once')
  const withKey = await json('GET', `${API}/robots`, undefined, key.body.key as string)
  t.match(withKey.body.items, [{ serial: 'R2D2', role: 'viewer' }], 'the key lists alice\'s robot, as a viewer')
  t.equal((await json('POST', `${API}/robots/robot/command`, { robot_uuid: ROBOT_UUID, command: 'manual' }, key.body.key as string)).status, 403, 'a viewer does not command')

  // Ctrl-C stops the example robot and the server.
  process.kill(-(robot.child.pid as number), 'SIGINT')
  process.kill(-(server.child.pid as number), 'SIGINT')
  await Promise.all([robot.exit, server.exit])
})
