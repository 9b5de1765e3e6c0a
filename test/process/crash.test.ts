// `kill -9` in the middle of a stream (issue: ingest at line rate): after a
// restart, every frame that was acked ok is in the database exactly once.
import { once } from 'node:events'
import mqtt from 'mqtt'
import t from 'tap'
import { testDatabase } from '../helper.js'
import { MANAGE, mqttPortOf, postJson, run, startServer, storedFrameIds, tempDir } from './spawn.js'

t.test('every frame acked before a kill -9 is stored exactly once after the restart', async (t) => {
  const cwd = tempDir(t)
  const db = await testDatabase()
  t.teardown(db.drop)
  const env = { DATABASE_URL: db.url === 'sqlite::memory:' ? 'sqlite:./data/united.sqlite' : db.url, JWT_SECRET: 'k'.repeat(40) }
  t.equal((await run(MANAGE, ['createsuperuser', '--username', 'root', '--password', 'root-password'], { cwd, env })).code, 0)
  const server = await startServer(t, { cwd, env })
  const mqttPort = mqttPortOf(server.output().stdout)
  const { access } = await postJson(server.url, '/users/obtain_token/', { username: 'root', password: 'root-password' })
  const robot = await postJson(server.url, '/admin/api/robots', { serial: 'CRASH-1' }, access)
  const token = await postJson(server.url, '/robots/robot/obtain_token', { serial: 'CRASH-1', token: robot.token })

  const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { username: token.robot_uuid, password: token.access_token, reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => { client.end(true) })
  client.on('error', () => {})
  await new Promise<void>((resolve) => { client.once('connect', () => { resolve() }) })
  await client.subscribeAsync(`robots/${token.robot_uuid}/ack`, { qos: 1 })

  // A stream with 20 frames in flight; the server is killed at the 300th ack.
  // Every ack is answered with a new frame, also those that arrive with the
  // 300th in one read (acks of one batch leave together), so that frames are
  // in flight whatever the batches were when the server dies.
  const acked: string[] = []
  let next = 0
  const send = (): void => { client.publish(`robots/${token.robot_uuid}/data`, JSON.stringify({ id: `c${next++}`, type: 2, data: { latitude: 45, longitude: 7, datetime: '2024-01-01T00:00:00Z' } }), { qos: 1 }, () => {}) }
  const killed = new Promise<void>((resolve) => {
    client.on('message', (_topic, payload) => {
      const ack = JSON.parse(payload.toString()) as { id: string, status: string }
      if (ack.status === 'ok') acked.push(ack.id)
      if (acked.length === 300) {
        server.child.kill('SIGKILL')
        resolve()
      }
      send()
    })
  })
  for (let i = 0; i < 20; i++) send()
  await killed
  await once(server.child, 'exit')
  t.ok(next > acked.length, `${next} frames sent, ${acked.length} acked when the server died`)

  const again = await startServer(t, { cwd, env })
  const { access: jwt } = await postJson(again.url, '/users/obtain_token/', { username: 'root', password: 'root-password' })
  const stored = await storedFrameIds(again.url, token.robot_uuid, jwt)
  const counts = new Map<string, number>()
  for (const id of stored) counts.set(id, (counts.get(id) ?? 0) + 1)
  t.same(acked.filter((id) => counts.get(id) !== 1), [], 'each acked frame is stored exactly once')
  again.child.kill('SIGTERM')
  await once(again.child, 'exit')
})
