// Cluster mode (docs/operations.md §4) while Redis is away: frozen with SIGSTOP (its
// connections stay open and answer nothing), then killed and started again
// empty. No node crashes; each keeps storing and acking its own robots'
// frames and logging in the robots it can check; /ready says redis down;
// cross-node features come back by themselves when Redis does.
import type { MqttClient } from 'mqtt'
import { eventually, messageWhere, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, makeRobot, mqttTo, type Node, robotTokenAt } from './nodes.js'

/** Sends `n` frames one after the other; the ids acked (each within `timeoutMs`, or the run stops). */
async function stream (client: MqttClient, uuid: string, prefix: string, n: number, timeoutMs = 3000): Promise<string[]> {
  const acked: string[] = []
  for (let i = 0; i < n; i++) {
    const id = `${prefix}${i}`
    const ack = messageWhere<{ id: string, status: string }>(client, `robots/${uuid}/ack`, (a) => a.id === id, timeoutMs)
    client.publish(`robots/${uuid}/data`, positionFrame(id), { qos: 1 })
    const got = await ack.catch(() => null)
    if (got === null) break
    if (got.status === 'ok') acked.push(id)
  }
  return acked
}

/** Sends frames with `speed` every 300 ms until `watcher` (on another node) gets statistics with it; those statistics. */
async function statsCross (robot: MqttClient, uuid: string, watcher: MqttClient, speed: number, timeoutMs: number): Promise<{ speed: number }> {
  const crossing = messageWhere<{ speed: number }>(watcher, `robots/${uuid}/stats`, (s) => s.speed === speed, timeoutMs)
  await eventually(async () => {
    robot.publish(`robots/${uuid}/data`, positionFrame(`speed-${speed}-${Date.now()}`, { speed }), { qos: 1 })
    return await Promise.race([crossing.then(() => true), new Promise<boolean>((resolve) => { setTimeout(() => { resolve(false) }, 300) })])
  }, (ok) => ok, timeoutMs)
  return await crossing
}

async function readyOf (node: Node): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`${node.url}/ready`)
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

clusterTest('Redis frozen, then killed and restarted empty: frames keep being stored and acked, nothing crashes, cross-node features come back', {}, async (t, { setup, nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'OUT-1')
  const late = await makeRobot(a, staff, 'OUT-2')
  const onA = await mqttTo(t, a, { username: robot.uuid, password: await robotTokenAt(a, robot) })
  await subscribe(onA, `robots/${robot.uuid}/ack`)
  const lateToken = await robotTokenAt(a, late)
  const watcher = await mqttTo(t, b, { username: 'chief', password: staff })
  await subscribe(watcher, `robots/${robot.uuid}/stats`, 0)
  t.same(await stream(onA, robot.uuid, 'before-', 5), ['before-0', 'before-1', 'before-2', 'before-3', 'before-4'])

  // ---- frozen ----
  setup.redis.freeze()
  const frozenAcks = await stream(onA, robot.uuid, 'frozen-', 10)
  t.equal(frozenAcks.length, 10, 'every frame sent while Redis is frozen is acked')
  const down = await eventually(async () => await readyOf(a), (r) => r.body.redis === 'down', 5000)
  t.same(down, { status: 200, body: { status: 'ready', database: 'ok', redis: 'down' } }, '/ready: 200, redis down')
  // A robot logs in at the node that issued its token, subscribes and is acked.
  const lateClient = await mqttTo(t, a, { username: late.uuid, password: lateToken })
  t.same(await subscribe(lateClient, `robots/${late.uuid}/ack`), [1], 'SUBACK while Redis is frozen')
  t.same(await stream(lateClient, late.uuid, 'late-', 3), ['late-0', 'late-1', 'late-2'], 'a robot that logged in during the outage is acked')
  t.equal((await fetch(`${b.url}/health`)).status, 200, 'the other node is up too')

  setup.redis.thaw()
  const back = await eventually(async () => await readyOf(a), (r) => r.body.redis === 'ok', 5000)
  t.match(back.body, { redis: 'ok' }, 'redis ok again')
  t.match(await statsCross(onA, robot.uuid, watcher, 7, 5000), { speed: 7 }, 'statistics from A reach B again')
  // The robot that connected during the outage is known to the cluster again: a command through B reaches it on A.
  await subscribe(lateClient, `robots/${late.uuid}/commands`)
  const command = messageWhere<{ command: string }>(lateClient, `robots/${late.uuid}/commands`, () => true, 5000)
  const sent = await eventually(async () => await api(b, 'POST', '/robots/robot/command', staff, { robot_uuid: late.uuid, command: 'manual' }), (r) => r.status === 201, 5000)
  t.equal(sent.status, 201, 'B sees the robot on A as command-connected')
  t.match(await command, { command: 'manual' })

  // ---- killed and restarted empty ----
  await setup.redis.stop()
  const killedAcks = await stream(onA, robot.uuid, 'killed-', 10)
  t.equal(killedAcks.length, 10, 'every frame sent while Redis is dead is acked')
  t.match((await eventually(async () => await readyOf(b), (r) => r.body.redis === 'down')).body, { status: 'ready', redis: 'down' })
  await setup.redis.restart()
  await eventually(async () => await readyOf(a), (r) => r.body.redis === 'ok', 8000)
  await eventually(async () => await readyOf(b), (r) => r.body.redis === 'ok', 8000)
  const nodes = await eventually(async () => await api(a, 'GET', '/admin/api/cluster', staff), (r) => r.body.nodes?.length === 2, 8000)
  t.same(nodes.body.nodes.map((n: { node_id: string }) => n.node_id), ['node-a', 'node-b'], 'both nodes beat into the empty Redis')
  const row = await eventually(async () => await api(b, 'POST', '/robots/robot/command', staff, { robot_uuid: late.uuid, command: 'auto' }), (r) => r.status === 201, 8000)
  t.equal(row.status, 201, 'presence reported again: B sees the robot on A')
  t.match(await statsCross(onA, robot.uuid, watcher, 9, 8000), { speed: 9 }, 'statistics cross nodes again (the emitter subscribed again by itself)')

  const stored = (await api(b, 'GET', `/robots/${robot.uuid}/frames?limit=1000`, staff)).body.items.map((f: { frame_id: string }) => f.frame_id)
  const acked = ['before-0', ...frozenAcks, ...killedAcks]
  t.same(acked.filter((id) => !stored.includes(id)), [], 'every acked frame is stored')
  t.equal(a.child.exitCode, null, 'node A never exited')
  t.equal(b.child.exitCode, null, 'node B never exited')
})
