// SIGTERM (docs/operations.md §7): frames in flight are stored and acknowledged, the
// broker and the database close, and the process exits 0.
import { once } from 'node:events'
import mqtt from 'mqtt'
import t from 'tap'
import { MANAGE, mqttPortOf, postJson, run, startServer, storedFrameIds, tempDir } from './spawn.js'

t.test('SIGTERM stores the frames in flight, acks them, and exits 0', async (t) => {
  const cwd = tempDir(t)
  const env = { DATABASE_URL: 'sqlite:./data/united.sqlite', JWT_SECRET: 'x'.repeat(40) }
  t.equal((await run(MANAGE, ['createsuperuser', '--username', 'root', '--password', 'root-password'], { cwd, env })).code, 0)
  const server = await startServer(t, { cwd, env })
  const mqttPort = mqttPortOf(server.output().stdout)
  const { access } = await postJson(server.url, '/users/obtain_token/', { username: 'root', password: 'root-password' })
  const robot = await postJson(server.url, '/admin/api/robots', { serial: 'SHUTDOWN-1' }, access)
  const token = await postJson(server.url, '/robots/robot/obtain_token', { serial: 'SHUTDOWN-1', token: robot.token })

  const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { username: token.robot_uuid, password: token.access_token, reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => { client.end(true) })
  await new Promise<void>((resolve) => { client.once('connect', () => { resolve() }) })
  await client.subscribeAsync(`robots/${token.robot_uuid}/ack`, { qos: 1 })
  const acked: string[] = []
  client.on('message', (_topic, payload) => {
    const ack = JSON.parse(payload.toString()) as { id: string, status: string }
    if (ack.status === 'ok') acked.push(ack.id)
  })
  const frames = 200
  for (let i = 0; i < frames; i++) {
    client.publish(`robots/${token.robot_uuid}/data`, JSON.stringify({ id: `f${i}`, type: 3, data: { datetime: '2024-01-01T00:00:00Z', battery: 50 } }), { qos: 1 })
  }
  // Stop the server while frames are still arriving.
  await new Promise<void>((resolve) => { client.once('packetreceive', () => { resolve() }) })
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0, 'exit code 0')
  t.ok(acked.length > 0, `${acked.length} frames acked before the broker closed`)

  // Every acked frame is in the database.
  const again = await startServer(t, { cwd, env })
  const { access: jwt } = await postJson(again.url, '/users/obtain_token/', { username: 'root', password: 'root-password' })
  const stored = new Set(await storedFrameIds(again.url, token.robot_uuid, jwt))
  t.same(acked.filter((id) => !stored.has(id)), [], 'no acked frame is missing')
  again.child.kill('SIGTERM')
  await once(again.child, 'exit')
})
