// Cluster mode: what a subscriber on another node gets right after a change.
// Presence is written to Redis before it is published, so a subscriber that
// arrives just after it went by reads it retained; statistics are written at
// most every RETAINED_FLUSH_MS, so the node that holds the newest gives them
// again, live, to a subscriber of another node that arrives meanwhile.
import type { MqttClient } from 'mqtt'
import { messageWhere, nextMessage, positionFrame, subscribe } from '../mqtt.js'
import { clusterTest, makeRobot, mqttTo, robotTokenAt, type Node } from './nodes.js'

/** Subscribes a new client of `node` to `topic` and collects what comes within `ms`. */
async function arrivals (t: Parameters<Parameters<typeof clusterTest>[2]>[0], node: Node, jwt: string, topic: string, ms: number): Promise<Array<{ retain: boolean, body: Record<string, unknown> }>> {
  const client: MqttClient = await mqttTo(t, node, { username: 'chief', password: jwt })
  const seen: Array<{ retain: boolean, body: Record<string, unknown> }> = []
  client.on('message', (got, payload, packet) => { if (got === topic) seen.push({ retain: packet.retain, body: JSON.parse(payload.toString()) as Record<string, unknown> }) })
  await subscribe(client, topic, 0)
  await new Promise((resolve) => { setTimeout(resolve, ms) })
  client.end(true)
  return seen
}

clusterTest('presence from another node at once: a subscriber arriving right after the robot connects or leaves on the other node reads the new presence retained', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'PA-1')
  const token = await robotTokenAt(b, robot)
  const topic = `robots/${robot.uuid}/presence`
  // A watcher on the robot's own node: it sees each change go by.
  const watcher = await mqttTo(t, b, { username: 'chief', password: staff })
  await subscribe(watcher, topic, 0)
  for (let round = 1; round <= 3; round++) {
    const online = messageWhere<{ online: boolean }>(watcher, topic, (p) => p.online, 5000)
    const rover = await mqttTo(t, b, { username: robot.uuid, password: token, clientId: `rover-${round}` })
    await online
    const seen = await arrivals(t, a, staff, topic, 300)
    t.match(seen[0], { retain: true, body: { robot_uuid: robot.uuid, online: true } }, `round ${round}: a subscriber on the other node, just after the robot connected, reads online retained`)

    const offline = messageWhere<{ online: boolean }>(watcher, topic, (p) => !p.online, 5000)
    rover.end(true)
    await offline
    const after = await arrivals(t, a, staff, topic, 300)
    t.match(after[0], { retain: true, body: { online: false } }, `round ${round}: and just after it left, offline retained`)
  }
})

clusterTest('statistics from another node: a subscriber arriving while the newest are not yet written to Redis still gets them', {}, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'PA-2')
  const rover = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  await subscribe(rover, `robots/${robot.uuid}/ack`, 1)
  const topic = `robots/${robot.uuid}/stats`
  const watcher = await mqttTo(t, b, { username: 'chief', password: staff })
  await subscribe(watcher, topic, 0)
  for (let speed = 1; speed <= 5; speed++) {
    const live = messageWhere<{ speed: number }>(watcher, topic, (s) => s.speed === speed, 5000)
    const ack = nextMessage(rover, `robots/${robot.uuid}/ack`)
    rover.publish(`robots/${robot.uuid}/data`, positionFrame(`pa-${speed}`, { speed }), { qos: 1 })
    await ack
    await live
    // The robot sends nothing more: whatever this subscriber ends with is all it has until the next frame.
    const seen = await arrivals(t, a, staff, topic, 1500)
    t.ok(seen.length > 0, `speed ${speed}: statistics arrive on the other node`)
    t.equal(seen[seen.length - 1]?.body.speed, speed, `speed ${speed}: the last statistics a new subscriber on the other node gets are the newest (${JSON.stringify(seen.map((s) => s.body.speed))})`)
  }
})
