// Cluster mode (docs/protocol.md §11, §3.3): a client id taken over from another node.
// Three nodes: the old connection on A, the new one on B, the watcher on C.
import { eventually, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, makeRobot, mqttTo, robotTokenAt } from './nodes.js'

clusterTest('a client id held on node A is taken over from node B: A closes the old connection within a second, no will, the robot ends online', { nodes: 3 }, async (t, { nodes: [a, b, c], staff }) => {
  const robot = await makeRobot(a, staff, 'CL-4')
  const watcher = await mqttTo(t, c, { username: 'chief', password: staff })
  await subscribe(watcher, `robots/${robot.uuid}/presence`, 0)
  const presences: Array<Record<string, unknown>> = []
  watcher.on('message', (topic, payload) => { if (topic.endsWith('/presence')) presences.push(JSON.parse(payload.toString()) as Record<string, unknown>) })

  const token = await robotTokenAt(a, robot)
  const old = await mqttTo(t, a, { username: robot.uuid, password: token, clientId: 'rover', will: { topic: `robots/${robot.uuid}/data`, payload: Buffer.from(positionFrame('will')), qos: 1, retain: false } })
  await eventually(async () => presences.length, (n) => n > 0)
  const oldClosed = new Promise<number>((resolve) => { old.once('close', () => { resolve(Date.now()) }) })
  const started = Date.now()
  const fresh = await mqttTo(t, b, { username: robot.uuid, password: token, clientId: 'rover' })
  t.ok(await oldClosed - started < 1000, `A closed the old connection ${await oldClosed - started} ms after B's CONNECT`)
  await new Promise((resolve) => { setTimeout(resolve, 1500) })
  t.match(presences[presences.length - 1], { online: true, data_connected: true }, 'the robot ends online')
  const frames = await api(c, 'GET', `/robots/${robot.uuid}/frames`, staff)
  t.same(frames.body.items, [], 'the superseded connection published no will')
  t.ok(fresh.connected, 'the new connection stays')

  // The other way: a connection that is lost without being taken over does publish its will.
  const lost = await mqttTo(t, a, { username: robot.uuid, password: token, clientId: 'rover-2', will: { topic: `robots/${robot.uuid}/data`, payload: Buffer.from(positionFrame('will-2')), qos: 1, retain: false } })
  ;(lost.stream as unknown as { destroy: () => void }).destroy()
  const stored = await eventually(async () => await api(c, 'GET', `/robots/${robot.uuid}/frames`, staff), (r) => r.body.items.length > 0)
  t.same(stored.body.items.map((f: { frame_id: string }) => f.frame_id), ['will-2'], 'a lost connection\'s will is published (and stored as the robot\'s frame)')
})
