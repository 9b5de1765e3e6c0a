// Retained messages across nodes (docs/protocol.md §11, src/cluster/mqtt.ts): a
// node writes them to Redis at most every RETAINED_FLUSH_MS, the last one per
// topic. Its own late subscribers see the newest at once, another node's
// within that delay; a deleted robot's retained messages go on every node.
import { Redis } from 'ioredis'
import type { MqttClient } from 'mqtt'
import { eventually, nextMessage, positionFrame, subscribe } from '../mqtt.js'
import { api, clusterTest, makeRobot, mqttTo, robotTokenAt, type Node } from './nodes.js'

/** The retained statistics a new subscriber on `node` gets (null when none comes within 1 s). */
async function retainedStats (t: Parameters<Parameters<typeof clusterTest>[2]>[0], node: Node, jwt: string, uuid: string): Promise<Record<string, unknown> | null> {
  const client: MqttClient = await mqttTo(t, node, { username: 'chief', password: jwt })
  const got = new Promise<Record<string, unknown> | null>((resolve) => {
    const timer = setTimeout(() => { resolve(null) }, 1000)
    client.on('message', (topic, payload, packet) => {
      if (topic === `robots/${uuid}/stats` && packet.retain) { clearTimeout(timer); resolve(JSON.parse(payload.toString()) as Record<string, unknown>) }
    })
  })
  await subscribe(client, `robots/${uuid}/stats`, 0)
  const stats = await got
  client.end(true)
  return stats
}

async function hsetCalls (redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  return Number(/cmdstat_hset:calls=(\d+)/.exec(info)?.[1] ?? 0)
}

clusterTest('retained statistics: the newest at once on their node, within half a second on the other, one Redis write per topic and flush, held through a Redis freeze; a deleted robot leaves none', {}, async (t, { setup, nodes: [a, b], staff }) => {
  const redis = new Redis(setup.redis.url)
  t.teardown(() => { redis.disconnect() })
  const robot = await makeRobot(a, staff, 'RT-1')
  const client = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  await subscribe(client, `robots/${robot.uuid}/ack`, 1)

  // 30 frames, each acked (stored) before the next: 30 statistics messages
  const before = await hsetCalls(redis)
  for (let i = 1; i <= 30; i++) {
    const ack = nextMessage(client, `robots/${robot.uuid}/ack`)
    client.publish(`robots/${robot.uuid}/data`, positionFrame(`rt-${i}`, { speed: i }), { qos: 1 })
    t.match(await ack, { id: `rt-${i}`, status: 'ok' })
  }
  t.match(await retainedStats(t, b, staff, robot.uuid), { speed: 30 }, 'a new subscriber on the robot\'s node gets the newest statistics at once')
  const seen = await eventually(async () => await retainedStats(t, a, staff, robot.uuid), (s) => s?.speed === 30, 5000)
  t.match(seen, { speed: 30 }, 'and one on the other node, once written')
  const writes = (await hsetCalls(redis)) - before
  t.ok(writes >= 1 && writes < 15, `30 statistics messages, ${writes} retained writes to Redis`)

  // Redis frozen: frames are still acked; the statistics held meanwhile reach the other node once it is back
  setup.redis.freeze()
  let thawed = false
  t.teardown(() => { if (!thawed) setup.redis.thaw() })
  for (let i = 31; i <= 33; i++) {
    const ack = nextMessage(client, `robots/${robot.uuid}/ack`)
    client.publish(`robots/${robot.uuid}/data`, positionFrame(`rt-${i}`, { speed: i }), { qos: 1 })
    t.match(await ack, { id: `rt-${i}`, status: 'ok' }, `frame ${i} acked while Redis is frozen`)
  }
  setup.redis.thaw()
  thawed = true
  const back = await eventually(async () => await retainedStats(t, a, staff, robot.uuid), (s) => s?.speed === 33, 15_000)
  t.match(back, { speed: 33 }, 'the statistics held while Redis was frozen are seen from the other node once it is back')

  // Deleted on A: neither node gives its retained statistics any more
  t.equal((await api(a, 'DELETE', `/admin/api/robots/${robot.uuid}`, staff)).status, 204)
  for (const node of [a, b]) {
    const left = await eventually(async () => await retainedStats(t, node, staff, robot.uuid), (s) => s === null, 5000)
    t.equal(left, null, `${node.id}: no retained statistics of the deleted robot`)
  }
})
