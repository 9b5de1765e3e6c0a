// docs/operations.md §4, REDIS_PREFIX: two deployments on one Redis, each with its own
// prefix (and database), are two clusters: neither lists the other's nodes,
// and no message of one reaches a subscriber of the other.
import { testDatabase } from '../helper.js'
import { collect, messageWhere, positionFrame, subscribe } from '../mqtt.js'
import { MANAGE, run } from '../process/spawn.js'
import { api, clusterTest, login, makeRobot, mqttTo, robotTokenAt, startNode } from './nodes.js'

clusterTest('two deployments with their own REDIS_PREFIX share a Redis without seeing each other', {}, async (t, { setup, nodes: [a, b], staff }) => {
  const db = await testDatabase()
  t.teardown(async () => { await db.drop() })
  const made = await run(MANAGE, ['createsuperuser', '--username', 'chief', '--password', 'chief-password'], { cwd: setup.cwd, env: { DATABASE_URL: db.url } })
  t.equal(made.code, 0)
  const other = await startNode(t, setup, 'other-1', { DATABASE_URL: db.url, REDIS_PREFIX: 'united-other:' })
  const otherStaff = await login(other, 'chief', 'chief-password')

  const listed = async (node: typeof a, jwt: string): Promise<string[]> => (await api(node, 'GET', '/admin/api/cluster', jwt)).body.nodes.map((n: { node_id: string }) => n.node_id)
  t.same(await listed(a, staff), ['node-a', 'node-b'], 'the first deployment lists its own two nodes')
  t.same(await listed(other, otherStaff), ['other-1'], 'the other lists itself alone')

  // Staff of each deployment watch every robot; a robot of the other deployment streams.
  const mine = await mqttTo(t, b, { username: 'chief', password: staff })
  await subscribe(mine, ['robots/+/stats', 'robots/+/presence'], 0)
  const seenByMine = collect(mine, () => true)
  const theirs = await mqttTo(t, other, { username: 'chief', password: otherStaff })
  await subscribe(theirs, 'robots/+/stats', 0)
  const robot = await makeRobot(other, otherStaff, 'PFX-1')
  const client = await mqttTo(t, other, { username: robot.uuid, password: await robotTokenAt(other, robot) })
  const stats = messageWhere<{ speed: number }>(theirs, `robots/${robot.uuid}/stats`, (s) => s.speed === 3.25)
  client.publish(`robots/${robot.uuid}/data`, positionFrame('p1', { speed: 3.25 }), { qos: 1 })
  t.match(await stats, { speed: 3.25 }, 'its own deployment sees its statistics')
  await new Promise((resolve) => { setTimeout(resolve, 500) })
  t.same(seenByMine.filter((m) => m.topic.includes(robot.uuid)), [], 'the first deployment sees neither its statistics nor its presence')
})
