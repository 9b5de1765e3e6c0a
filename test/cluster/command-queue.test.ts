// Cluster mode: a robot's queue, filled through one node, is released by the
// node the robot subscribes on, 10 unacknowledged at a time (the count is the
// database's, whichever node released what); a grant revoked through the
// other node cancels its user's queued commands, and they never go out.
import { eventually, holdingPubacks } from '../mqtt.js'
import { api, clusterTest, login, makeRobot, robotTokenAt } from './nodes.js'

clusterTest('a queue filled through A is released on B ten at a time; a grant revoked through B cancels its user\'s queued commands', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'CQ-1')
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'cq-user', password: 'cq-password' })
  await api(a, 'PUT', `/admin/api/robots/${robot.uuid}/users/${user.body.id as number}`, staff)
  const userJwt = await login(a, 'cq-user', 'cq-password')

  const staffQueued: string[] = []
  for (let i = 0; i < 25; i++) {
    const res = await api(a, 'POST', '/robots/robot/command', staff, { robot_uuid: robot.uuid, command: ['auto', 'idle', 'manual'][i % 3], ttl: 600 })
    t.equal(res.status, 201, `staff command ${i} queued`)
    staffQueued.push(res.body.id)
  }
  const userQueued: string[] = []
  for (let i = 0; i < 2; i++) userQueued.push((await api(a, 'POST', '/robots/robot/command', userJwt, { robot_uuid: robot.uuid, command: 'error', ttl: 600 })).body.id)
  t.equal((await api(b, 'DELETE', `/admin/api/robots/${robot.uuid}/users/${user.body.id as number}`, staff)).status, 204)
  const statusOf = async (id: string): Promise<string | undefined> => ((await api(a, 'GET', `/robots/${robot.uuid}/commands?limit=100`, staff)).body.items as Array<{ id: string, status: string }>).find((c) => c.id === id)?.status
  for (const id of userQueued) await eventually(async () => await statusOf(id), (s) => s === 'cancelled')

  const robotSide = await holdingPubacks(t, b.mqttPort, robot.uuid, await robotTokenAt(b, robot), `robots/${robot.uuid}/commands`)
  await eventually(async () => robotSide.received.length, (n) => n === 10)
  await new Promise((resolve) => { setTimeout(resolve, 500) })
  t.equal(robotSide.received.length, 10, 'ten without a PUBACK')
  robotSide.puback(4)
  await eventually(async () => robotSide.received.length, (n) => n === 14)
  const drain = setInterval(() => { robotSide.puback() }, 20)
  t.teardown(() => { clearInterval(drain) })
  await eventually(async () => robotSide.received.length, (n) => n === 25, 10_000)
  await new Promise((resolve) => { setTimeout(resolve, 300) })
  t.same(robotSide.received, staffQueued, 'the staff commands once each, oldest first; none of the revoked user\'s')
})
