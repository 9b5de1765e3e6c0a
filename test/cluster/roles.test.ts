// Cluster mode (docs/protocol.md §13, docs/operations.md §4): a change of role made
// through node A reaches a `robots/+/stats` subscription open on node B
// within a second, the robots streaming through A; an expiring grant stops
// on B with nobody acting; a robot taken out of a group or a group deleted
// stops there too. One cluster for every case.
import type { Test } from 'tap'
import { subscribe } from '../mqtt.js'
import { watcher, type Live } from '../broker/stats-watch.js'
import { api, clusterTest, login, makeRobot, mqttTo, robotTokenAt, type Node } from './nodes.js'

async function liveRobot (t: Test, node: Node, robot: { uuid: string, serial: string, secret: string }): Promise<Live> {
  const client = await mqttTo(t, node, { username: robot.uuid, password: await robotTokenAt(node, robot) })
  t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1], `${robot.serial} streams through ${node.id}`)
  return { robot, client }
}

clusterTest('changes of role made through A reach a robots/+/stats subscription on B within a second: a revoked grant, an expired grant, a robot added to a granted group', {}, async (t, { nodes: [a, b], staff }) => {
  if (a === undefined || b === undefined) throw new Error('two nodes')
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'role-watcher', password: 'role-watcher-password' })
  const userId = user.body.id as number
  const controlRobot = await makeRobot(a, staff, 'CL-ROLE-C')
  const subjectRobot = await makeRobot(a, staff, 'CL-ROLE-S')
  t.equal((await api(a, 'PUT', `/admin/api/robots/${controlRobot.uuid}/users/${userId}`, staff, { role: 'viewer' })).status, 204, 'a control robot the user holds for good')

  const client = await mqttTo(t, b, { username: 'role-watcher', password: await login(b, 'role-watcher', 'role-watcher-password') })
  t.same(await subscribe(client, 'robots/+/stats', 0), [0], 'the user subscribes to robots/+/stats on B')
  const control = await liveRobot(t, a, controlRobot)
  const subject = await liveRobot(t, a, subjectRobot)
  const watch = watcher(client, control)
  t.notOk((await watch.probe(subject)).delivered, 'no role on the subject yet: nothing of it on B')

  // (a) a direct grant made, then revoked, through A
  let since = Date.now()
  t.equal((await api(a, 'PUT', `/admin/api/robots/${subjectRobot.uuid}/users/${userId}`, staff, { role: 'viewer' })).status, 204, 'a viewer grant through A')
  await watch.starts(t, subject, since, 'the grant made on A starts deliveries on B')
  since = Date.now()
  t.equal((await api(a, 'DELETE', `/admin/api/robots/${subjectRobot.uuid}/users/${userId}`, staff)).status, 204, 'the grant revoked through A')
  await watch.stops(t, subject, since, 'revoking on A stops deliveries on B')

  // (b) a grant for ~2 s: it stops on B at its end, nobody acting
  const end = Date.now() + 2000
  t.equal((await api(a, 'PUT', `/admin/api/robots/${subjectRobot.uuid}/users/${userId}`, staff, { role: 'viewer', expires_at: new Date(end).toISOString() })).status, 204, 'a viewer grant for ~2 s through A')
  await watch.holdsUntil(t, subject, end, 'delivered on B until its end')
  await watch.stops(t, subject, end, 'the expired grant stops deliveries on B')

  // (c) a group granted to the user; the robot added to it through A
  const group = await api(a, 'POST', '/admin/api/groups', staff, { name: 'cluster-site' })
  t.equal(group.status, 201, 'a group')
  const groupId = group.body.id as number
  t.equal((await api(a, 'PUT', `/admin/api/groups/${groupId}/users/${userId}`, staff, { role: 'viewer' })).status, 204, 'the empty group granted to the user')
  t.notOk((await watch.probe(subject)).delivered, 'the robot is not in the group yet: nothing of it on B')
  since = Date.now()
  t.equal((await api(a, 'PUT', `/admin/api/groups/${groupId}/robots/${subjectRobot.uuid}`, staff)).status, 204, 'the robot added to the group through A')
  await watch.starts(t, subject, since, 'the robot added to the granted group on A starts deliveries on B')
  since = Date.now()
  t.equal((await api(a, 'DELETE', `/admin/api/groups/${groupId}/robots/${subjectRobot.uuid}`, staff)).status, 204, 'the robot taken out of the group through A')
  await watch.stops(t, subject, since, 'taking it out on A stops deliveries on B')
  since = Date.now()
  t.equal((await api(a, 'PUT', `/admin/api/groups/${groupId}/robots/${subjectRobot.uuid}`, staff)).status, 204, 'and put back')
  await watch.starts(t, subject, since, 'putting it back starts them again')
  since = Date.now()
  t.equal((await api(a, 'DELETE', `/admin/api/groups/${groupId}`, staff)).status, 204, 'the group deleted through A')
  await watch.stops(t, subject, since, 'deleting the group on A stops deliveries on B')
})
