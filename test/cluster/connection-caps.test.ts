// Cluster mode: the connection caps per identity hold across nodes
// (MAX_CONNECTIONS_PER_USER, MAX_CONNECTIONS_PER_ROBOT), a takeover of a
// client id the identity holds on the other node is never refused, a
// refusal is logged once per identity and node, and a crashed node's
// connections stop counting once it is dead.
import mqtt, { type IClientOptions } from 'mqtt'
import type { Test } from 'tap'
import { closed } from '../mqtt.js'
import { clusterTest, makeRobot, mqttTo, robotTokenAt, type Node } from './nodes.js'

/** The CONNACK code of one CONNECT to `node` (0: accepted, the client stays open until teardown). */
async function attempt (t: Test, node: Node, opts: IClientOptions): Promise<number> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve) => {
    client.once('connect', () => { resolve(0) })
    client.once('error', (err: Error & { code?: number }) => { resolve(err.code ?? -1) })
  })
}

const capLines = (node: Node, identity: string): number => node.output().stdout.split('\n').filter((l) => l.includes('maximum of open connections') && l.includes(identity)).length

clusterTest('connection caps across two nodes: up to the cap over both, CONNACK 5 above on either, a takeover from the other node passes, logged once, a dead node stops counting', { env: { MAX_CONNECTIONS_PER_USER: '4', MAX_CONNECTIONS_PER_ROBOT: '2', AUTH_FAIL_LIMIT: '2', AUTH_FAIL_ADDRESS_LIMIT: '2' } }, async (t, { nodes: [a, b], staff }) => {
  // A user: two connections on each node, then nothing more on either.
  const user = { username: 'chief', password: staff }
  for (const [node, id] of [[a, 'u-a1'], [b, 'u-b1'], [a, 'u-a2'], [b, 'u-b2']] as const) {
    t.equal(await attempt(t, node, { ...user, clientId: id }), 0, `${id} accepted on ${node.id}`)
  }
  for (let i = 0; i < 3; i++) {
    t.equal(await attempt(t, a, { ...user, clientId: `u-x${i}` }), 5, `a fifth connection on node-a (try ${i + 1}): CONNACK 5`)
    t.equal(await attempt(t, b, { ...user, clientId: `u-y${i}` }), 5, `a fifth connection on node-b (try ${i + 1}): CONNACK 5`)
  }
  t.equal(await attempt(t, b, { ...user, clientId: 'u-a1' }), 0, 'the user takes its node-a client id over from node-b, at the cap')
  t.equal(await attempt(t, a, { ...user, clientId: 'u-a1' }), 0, 'and back, from node-a')
  t.equal(await attempt(t, a, { ...user, clientId: 'u-z' }), 5, 'still at the cap after the takeovers')

  // A robot: one connection on each node, a third refused, a takeover passes.
  const robot = await makeRobot(a, staff, 'CAP-1')
  const token = await robotTokenAt(a, robot)
  const creds = { username: robot.uuid, password: token }
  const onB = await mqttTo(t, b, { ...creds, clientId: 'r-b' })
  t.equal(await attempt(t, a, { ...creds, clientId: 'r-a' }), 0, 'the robot\'s second connection is accepted')
  t.equal(await attempt(t, a, { ...creds, clientId: 'r-c' }), 5, 'its third, on node-a: CONNACK 5')
  t.equal(await attempt(t, b, { ...creds, clientId: 'r-d' }), 5, 'its third, on node-b: CONNACK 5')
  t.equal(await attempt(t, a, { ...creds, clientId: 'r-b' }), 0, 'node-b\'s client id taken over from node-a, at the cap')
  await closed(onB)
  t.pass('the connection taken over on node-b is closed')

  // Refusals are no failed log-ins (AUTH_FAIL_LIMIT=2 would have blocked both identities), and are logged once.
  t.equal(capLines(a, 'user:'), 1, 'node-a logged the user\'s four refusals once')
  t.equal(capLines(b, 'user:'), 1, 'node-b logged the user\'s three refusals once')
  t.equal(capLines(a, `robot:${robot.uuid}`), 1, 'node-a logged the robot\'s refusal once')

  // node-b dies with the user's two connections: once it is taken for dead, they no longer count.
  b.child.kill('SIGKILL')
  const deadline = Date.now() + 15_000
  let code = 5
  while (code !== 0 && Date.now() < deadline) {
    code = await attempt(t, a, { ...user, clientId: `after-${Date.now()}` })
    if (code !== 0) await new Promise((resolve) => { setTimeout(resolve, 250) })
  }
  t.equal(code, 0, 'after node-b died (CLUSTER_NODE_TIMEOUT=3), the user connects again on node-a')
})
