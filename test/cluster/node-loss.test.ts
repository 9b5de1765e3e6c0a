// Cluster mode (docs/operations.md §4): a node killed with SIGKILL. Its robots go
// offline within CLUSTER_NODE_TIMEOUT (node heartbeats in Redis, not Aedes'
// wills), nothing acked is lost, the other node goes on.
import { eventually, messageWhere, nextMessage, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, makeRobot, mqttTo, robotTokenAt } from './nodes.js'

clusterTest('kill -9 of a node: within CLUSTER_NODE_TIMEOUT its robots are offline everywhere, nothing acked is lost, the other node goes on', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'CL-5')
  const stays = await makeRobot(a, staff, 'CL-6')
  const watcher = await mqttTo(t, a, { username: 'chief', password: staff })
  await subscribe(watcher, 'robots/+/presence', 0)
  const doomed = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  await subscribe(doomed, [`robots/${robot.uuid}/ack`, `robots/${robot.uuid}/commands`])
  const acked: string[] = []
  doomed.on('message', (topic, payload) => { if (topic.endsWith('/ack')) acked.push((JSON.parse(payload.toString()) as { id: string }).id) })
  for (let i = 0; i < 20; i++) doomed.publish(`robots/${robot.uuid}/data`, positionFrame(`k${i}`), { qos: 1 })
  await eventually(async () => acked.length, (n) => n === 20)
  const survivor = await mqttTo(t, a, { username: stays.uuid, password: await robotTokenAt(a, stays) })
  await subscribe(survivor, `robots/${stays.uuid}/ack`)
  const userRow = await eventually(async () => await api(a, 'GET', `/robots/${robot.uuid}`, staff), (r) => r.body.command_connected === true)
  t.match(userRow.body, { data_connected: true })

  const offline = new Promise<number>((resolve) => {
    watcher.on('message', (topic, payload) => {
      const p = JSON.parse(payload.toString()) as { online: boolean }
      if (topic === `robots/${robot.uuid}/presence` && !p.online) resolve(Date.now())
    })
  })
  const killedAt = Date.now()
  b.child.kill('SIGKILL')
  const seconds = (await offline - killedAt) / 1000
  t.ok(seconds <= 3, `presence online:false ${seconds.toFixed(1)} s after kill -9 (CLUSTER_NODE_TIMEOUT=3)`)
  const row = await eventually(async () => await api(a, 'GET', `/robots/${robot.uuid}`, staff), (r) => r.body.data_connected === false)
  t.match(row.body, { data_connected: false, command_connected: false }, 'REST: not connected')
  t.equal((await api(a, 'POST', '/robots/robot/command', staff, { robot_uuid: robot.uuid, command: 'auto' })).status, 409)
  const ids = (await api(a, 'GET', `/robots/${robot.uuid}/frames?limit=100`, staff)).body.items.map((f: { frame_id: string }) => f.frame_id).sort()
  t.same(ids, acked.sort(), 'every frame acked before the kill is stored')
  const ack = nextMessage(survivor, `robots/${stays.uuid}/ack`)
  survivor.publish(`robots/${stays.uuid}/data`, positionFrame('alive'), { qos: 1 })
  t.same(await ack, { id: 'alive', status: 'ok' }, 'the other node goes on')
  const nodes = await eventually(async () => await api(a, 'GET', '/admin/api/cluster', staff), (r) => r.body.nodes?.length === 1)
  t.same(nodes.body.nodes.map((n: { node_id: string }) => n.node_id), ['node-a'], 'the dead node leaves the list')
})

clusterTest('a node frozen past CLUSTER_NODE_TIMEOUT is taken for dead; when it runs again it reports its robots, which are online again', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'CL-7')
  const watcher = await mqttTo(t, a, { username: 'chief', password: staff })
  await subscribe(watcher, 'robots/+/presence', 0)
  const client = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot), keepalive: 600 })
  await eventually(async () => await api(a, 'GET', `/robots/${robot.uuid}`, staff), (r) => r.body.data_connected === true)
  const online = (want: boolean): Promise<unknown> => messageWhere<{ online: boolean }>(watcher, `robots/${robot.uuid}/presence`, (p) => p.online === want, 10_000)

  const offline = online(false)
  b.child.kill('SIGSTOP')
  t.teardown(() => { b.child.kill('SIGCONT') })
  await offline
  t.pass('taken for dead while frozen: offline')
  const back = online(true)
  b.child.kill('SIGCONT')
  await back
  t.pass('running again: its robot is online again')
  const row = await eventually(async () => await api(a, 'GET', `/robots/${robot.uuid}`, staff), (r) => r.body.data_connected === true)
  t.match(row.body, { data_connected: true }, 'REST agrees')
  t.ok(client.connected, 'the robot never lost its connection')
})
