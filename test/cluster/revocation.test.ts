// Cluster mode (docs/protocol.md §11): a revocation told to one node takes effect on
// every node within a second (the events relayed over Redis, src/cluster/events.ts).
import { nextMessage, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, login, makeRobot, mqttTo, refusedAt, robotTokenAt } from './nodes.js'

clusterTest('revocations reach every node within a second: a robot disabled through A is closed on B; a grant revoked on B stops delivery on A', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'CL-2')
  const other = await makeRobot(a, staff, 'CL-3')
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'u2', password: 'u2-password' })
  await api(a, 'PUT', `/admin/api/robots/${other.uuid}/users/${user.body.id as number}`, staff)
  const userJwt = await login(a, 'u2', 'u2-password')

  const robotClient = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  const token = await robotTokenAt(a, robot)
  const closedAt = new Promise<number>((resolve) => { robotClient.once('close', () => { resolve(Date.now()) }) })
  const disabledAt = Date.now()
  t.equal((await api(a, 'PATCH', `/admin/api/robots/${robot.uuid}`, staff, { enabled: false })).status, 200)
  t.ok(await closedAt - disabledAt < 1000, `closed on B ${await closedAt - disabledAt} ms after A disabled it`)
  await api(a, 'PATCH', `/admin/api/robots/${robot.uuid}`, staff, { enabled: true })
  t.equal(await refusedAt(t, b, { username: robot.uuid, password: token }), 5, 'its token from A is void at B too (revoked: CONNACK 5)')

  // The user watches `other` on A; the grant is revoked through B.
  const watcher = await mqttTo(t, a, { username: 'u2', password: userJwt })
  await subscribe(watcher, 'robots/+/stats', 0)
  const otherClient = await mqttTo(t, a, { username: other.uuid, password: await robotTokenAt(a, other) })
  await subscribe(otherClient, `robots/${other.uuid}/ack`)
  const first = nextMessage(watcher, `robots/${other.uuid}/stats`)
  otherClient.publish(`robots/${other.uuid}/data`, positionFrame('g1'), { qos: 1 })
  await first
  t.equal((await api(b, 'DELETE', `/admin/api/robots/${other.uuid}/users/${user.body.id as number}`, staff)).status, 204)
  await new Promise((resolve) => { setTimeout(resolve, 1000) })
  const seen: string[] = []
  watcher.on('message', (topic) => { seen.push(topic) })
  const acked = nextMessage(otherClient, `robots/${other.uuid}/ack`)
  otherClient.publish(`robots/${other.uuid}/data`, positionFrame('g2'), { qos: 1 })
  await acked
  await new Promise((resolve) => { setTimeout(resolve, 300) })
  t.same(seen, [], 'no statistics after the grant was revoked on the other node')
})

clusterTest('a user deactivated through B, or whose password changed through A, loses their MQTT connection on the other node within a second', {}, async (t, { nodes: [a, b], staff }) => {
  for (const [change, via, on] of [['deactivated', b, a], ['password changed', a, b]] as const) {
    const name = change === 'deactivated' ? 'u-off' : 'u-pass'
    const user = await api(a, 'POST', '/admin/api/users', staff, { username: name, password: `${name}-password` })
    const jwt = await login(on, name, `${name}-password`)
    const client = await mqttTo(t, on, { username: name, password: jwt })
    const closedAt = new Promise<number>((resolve) => { client.once('close', () => { resolve(Date.now()) }) })
    const changedAt = Date.now()
    const patch = change === 'deactivated' ? { is_active: false } : { password: 'another-password' }
    t.equal((await api(via, 'PATCH', `/admin/api/users/${user.body.id as number}`, staff, patch)).status, 200)
    const ms = await closedAt - changedAt
    t.ok(ms < 1000, `${change} on ${via.id}: closed on ${on.id} ${ms} ms later`)
    t.equal(await refusedAt(t, on, { username: name, password: jwt }), 5, `${change}: the old JWT is refused at ${on.id} (CONNACK 5: inactive, or revoked)`)
  }
})
