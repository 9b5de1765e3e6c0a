// Cluster mode (docs/operations.md §4), real processes: two United nodes on their own
// ports, one PostgreSQL database and a Redis of the test's own (nodes.ts).
// Tokens, presence, 409, commands, statistics, retained messages, /ready and
// the node list, each used on one node and checked on the other.
import { eventually, messageWhere, nextMessage, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, login, makeRobot, mqttTo, robotTokenAt, stopNode } from './nodes.js'

const presenceOf = (uuid: string) => (topic: string): boolean => topic === `robots/${uuid}/presence`

clusterTest('two nodes are one broker: tokens, presence, 409, commands, statistics, /ready and the node list across nodes', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'CL-1')
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'watcher', password: 'watcher-password' })
  t.equal((await api(b, 'PUT', `/admin/api/robots/${robot.uuid}/users/${user.body.id as number}`, staff)).status, 204, 'a JWT from A works at B')
  const userJwt = await login(b, 'watcher', 'watcher-password')

  for (const node of [a, b]) {
    const ready = await fetch(`${node.url}/ready`)
    t.same(await ready.json(), { status: 'ready', database: 'ok', redis: 'ok' }, `${node.id}: ready, Redis ok`)
  }
  const metrics = await (await fetch(`${a.url}/metrics`)).text()
  t.match(metrics, /^united_connected_robots\{node="node-a"\} \d+$/m, 'every series names its node')
  t.match(a.output().stdout, /Cluster\s+node node-a, Redis redis:\/\/127\.0\.0\.1:\d+ \(prefix united-test:\)/, 'the banner names the node and its Redis')
  const nodes = await eventually(async () => await api(b, 'GET', '/admin/api/cluster', staff), (r) => r.body.nodes?.length === 2)
  t.equal(nodes.body.node_id, 'node-b')
  t.same(nodes.body.nodes.map((n: { node_id: string }) => n.node_id), ['node-a', 'node-b'], 'both nodes listed')

  // The user watches on A, over WebSocket; the robot is on B with a token from A.
  const watcher = await mqttTo(t, a, { username: 'watcher', password: userJwt, ws: true })
  t.same(await subscribe(watcher, ['robots/+/presence', 'robots/+/stats'], 0), [0, 0])
  t.equal((await api(a, 'POST', '/robots/robot/command', userJwt, { robot_uuid: robot.uuid, command: 'auto' })).status, 409, 'not connected anywhere: 409')
  const token = await robotTokenAt(a, robot)
  const online = nextMessage(watcher, presenceOf(robot.uuid))
  const robotClient = await mqttTo(t, b, { username: robot.uuid, password: token })
  t.match(await online, { robot_uuid: robot.uuid, online: true, data_connected: true }, 'presence from B reaches A')
  const listening = new Promise<Record<string, unknown>>((resolve) => {
    watcher.on('message', (topic, payload) => {
      const p = JSON.parse(payload.toString()) as Record<string, unknown>
      if (topic === `robots/${robot.uuid}/presence` && p.command_connected === true) resolve(p)
    })
  })
  t.same(await subscribe(robotClient, [`robots/${robot.uuid}/commands`, `robots/${robot.uuid}/ack`]), [1, 1])
  t.match(await listening, { online: true, command_connected: true })
  const row = await eventually(async () => await api(a, 'GET', `/robots/${robot.uuid}`, userJwt), (r) => r.body.command_connected === true)
  t.match(row.body, { data_connected: true, command_connected: true }, 'REST on A sees the robot on B')

  // A command through A reaches the robot on B, which acks it: done.
  robotClient.on('message', (topic, payload) => {
    if (topic !== `robots/${robot.uuid}/commands`) return
    const { id } = JSON.parse(payload.toString()) as { id: string }
    robotClient.publish(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id, status: 'ok', state: 'auto' }), { qos: 1 })
  })
  const sent = await api(a, 'POST', '/robots/robot/command', userJwt, { robot_uuid: robot.uuid, command: 'auto' })
  t.equal(sent.status, 201, 'command-connected through B: 201 at A')
  const done = await eventually(async () => await api(b, 'GET', `/robots/${robot.uuid}/commands`, userJwt), (r) => r.body.items?.[0]?.status === 'done')
  t.match(done.body.items[0], { id: sent.body.id, status: 'done' }, 'delivered and acked on B, done for everyone')
  t.ok(done.body.items[0].delivered_at !== null, 'the PUBACK on B marked it delivered')

  // A frame on B: acked by B, statistics at the user on A.
  const stats = messageWhere<Record<string, unknown>>(watcher, `robots/${robot.uuid}/stats`, (s) => s.speed === 4.5)
  const ack = nextMessage(robotClient, `robots/${robot.uuid}/ack`)
  robotClient.publish(`robots/${robot.uuid}/data`, positionFrame('cl-f1', { speed: 4.5 }), { qos: 1 })
  t.same(await ack, { id: 'cl-f1', status: 'ok' })
  t.match(await stats, { robot_uuid: robot.uuid, speed: 4.5, state: 'auto' }, 'statistics from B reach A')

  // A late subscriber on B sees the retained presence and statistics stored through both nodes.
  const late = await mqttTo(t, b, { username: 'watcher', password: userJwt })
  const retained = nextMessage(late, (topic) => topic === `robots/${robot.uuid}/stats`)
  await subscribe(late, `robots/${robot.uuid}/stats`, 0)
  t.match(await retained, { speed: 4.5 }, 'retained statistics seen from every node')

  // The robot goes: offline everywhere, and 409 again.
  const offline = new Promise<Record<string, unknown>>((resolve) => {
    watcher.on('message', (topic, payload) => {
      const p = JSON.parse(payload.toString()) as Record<string, unknown>
      if (topic === `robots/${robot.uuid}/presence` && p.online === false) resolve(p)
    })
  })
  robotClient.end(true)
  t.match(await offline, { online: false, data_connected: false, command_connected: false })
  t.equal((await api(a, 'POST', '/robots/robot/command', userJwt, { robot_uuid: robot.uuid, command: 'idle' })).status, 409, 'connected nowhere: 409')

  t.equal(await stopNode(b), 0, 'SIGTERM: B exits 0')
  const after = await eventually(async () => await api(a, 'GET', '/admin/api/cluster', staff), (r) => r.body.nodes?.length === 1)
  t.same(after.body.nodes.map((n: { node_id: string }) => n.node_id), ['node-a'], 'a node that stopped leaves the list')
  t.equal(await stopNode(a), 0)
})
