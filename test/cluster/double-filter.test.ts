// Cluster mode: a persistent session (clean = false) whose one SUBSCRIBE
// holds several filters. Aedes stores the session's subscriptions once per
// filter, and aedes-persistence-redis waits for each store's broadcast under
// a key made of the client id and the first filter: two stores of one
// SUBSCRIBE shared that key, one of them waited for ever and the SUBACK never
// came (src/cluster/mqtt.ts runs one store per SUBSCRIBE).
import { messageWhere, subscribe } from '../mqtt.js'
import { clusterTest, makeRobot, mqttTo, robotTokenAt } from './nodes.js'

clusterTest('a persistent session\'s SUBSCRIBE with two filters matching one retained topic is answered, and the retained presence arrives', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'DF-1')
  const watcher = await mqttTo(t, a, { username: 'chief', password: staff })
  await subscribe(watcher, `robots/${robot.uuid}/presence`, 0)
  const online = messageWhere<{ online: boolean }>(watcher, `robots/${robot.uuid}/presence`, (p) => p.online, 5000)
  const rover = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  await online
  await new Promise((resolve) => { setTimeout(resolve, 1000) }) // written to Redis whatever the node holds back
  watcher.end(true)
  t.ok(rover.connected)

  for (const node of [a, b]) {
    const client = await mqttTo(t, node, { username: 'chief', password: staff, clientId: `dashboard-${node.id}`, clean: false })
    const copies: Array<Record<string, unknown>> = []
    client.on('message', (topic, payload, packet) => {
      if (topic === `robots/${robot.uuid}/presence` && packet.retain) copies.push(JSON.parse(payload.toString()) as Record<string, unknown>)
    })
    const granted = await Promise.race([
      subscribe(client, ['robots/+/presence', `robots/${robot.uuid}/presence`], 1),
      new Promise<null>((resolve) => { setTimeout(() => { resolve(null) }, 5000) })
    ])
    t.ok(granted !== null && granted.length === 2 && granted.every((q) => q < 128), `${node.id}: a SUBACK granting both filters (${JSON.stringify(granted)})`)
    if (granted === null) continue
    const first = await messageWhere<Record<string, unknown>>(client, `robots/${robot.uuid}/presence`, () => true, 5000).catch(() => null)
    t.match(first ?? copies[0], { robot_uuid: robot.uuid, online: true }, `${node.id}: the retained presence arrives`)
    await new Promise((resolve) => { setTimeout(resolve, 300) })
    t.ok(copies.length >= 1 && copies.length <= 2, `${node.id}: ${copies.length} retained cop${copies.length === 1 ? 'y' : 'ies'} (at most one per matching filter)`)

    // Several SUBSCRIBEs in a row, each with several filters, none overlapping: all answered.
    const more = await Promise.race([
      Promise.all([
        subscribe(client, [`robots/${robot.uuid}/stats`, 'robots/+/stats'], 0),
        subscribe(client, ['robots/+/stats', `robots/${robot.uuid}/presence`], 0)
      ]),
      new Promise<null>((resolve) => { setTimeout(() => { resolve(null) }, 5000) })
    ])
    t.ok(more !== null, `${node.id}: two SUBSCRIBEs of several filters each, sent at once, are both answered`)
    client.end(true)
  }
})
