// Cluster mode: what one identity can leave in Redis is bounded. 3,000
// CONNECTs by one user, each with a new client id and a persistent session
// that subscribes, leave no `owner:` record once closed and at most
// MQTT_SESSIONS_PER_IDENTITY sessions; sessions expire MQTT_SESSION_TTL after
// their last connection; a killed node's ownership records go when it is
// reaped. Keys are counted under the test's REDIS_PREFIX.
import { Redis } from 'ioredis'
import mqtt, { type MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { eventually } from '../mqtt.js'
import { clusterTest, mqttTo, type Node } from './nodes.js'

const PREFIX = 'united-test:'

async function keys (redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}${pattern}`, 'COUNT', 1000)
    cursor = next
    found.push(...batch)
  } while (cursor !== '0')
  return found
}

/** CONNECT (clean = false), SUBSCRIBE at QoS 1 and DISCONNECT, `count` times with new client ids, `parallel` at once, over the nodes in turn. */
async function churn (nodes: Node[], jwt: string, count: number, parallel: number, clientId: (i: number) => string): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      const node = nodes[i % nodes.length] as Node
      const client: MqttClient = mqtt.connect(`mqtt://127.0.0.1:${node.mqttPort}`, { username: 'chief', password: jwt, clientId: clientId(i), clean: false, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 })
      try {
        await new Promise<void>((resolve, reject) => { client.once('connect', () => { resolve() }); client.once('error', reject) })
        await client.subscribeAsync('robots/+/presence', { qos: 1 })
        await client.endAsync()
      } finally {
        client.end(true)
      }
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
}

async function redisOf (t: Test, url: string): Promise<Redis> {
  const redis = new Redis(url)
  t.teardown(() => { redis.disconnect() })
  return redis
}

clusterTest('3,000 CONNECTs by one user with new client ids and persistent sessions: no owner record left, at most MQTT_SESSIONS_PER_IDENTITY sessions, a bounded number of keys', {}, async (t, { setup, nodes, staff }) => {
  const redis = await redisOf(t, setup.redis.url)
  const before = (await keys(redis, '*')).length
  await churn(nodes, staff, 3000, 8, (i) => `churn-${i}`)
  const owners = await eventually(async () => (await keys(redis, 'owner:*')).length, (n) => n === 0, 10_000)
  t.equal(owners, 0, 'no owner: record outlives its connection')
  const sessions = await eventually(async () => (await keys(redis, 'mqtt:client:*')).length, (n) => n <= 100, 10_000)
  t.ok(sessions > 0 && sessions <= 100, `${sessions} persistent sessions kept of 3,000 (MQTT_SESSIONS_PER_IDENTITY=100)`)
  t.ok(await redis.scard(`${PREFIX}mqtt:clients`) <= 100, 'the persistence\'s list of sessions holds at most 100')
  t.ok(await redis.zcard(`${PREFIX}sessions`) <= 100, 'and so does the list of expiries')
  const after = (await keys(redis, '*')).length
  t.ok(after - before <= 250, `keys under the prefix: ${before} before, ${after} after 3,000 CONNECTs`)

  // The sessions kept are the last ones used: the newest client ids.
  const kept = (await keys(redis, 'mqtt:client:*')).map((k) => Number(/churn-(\d+)$/.exec(decodeURIComponent(k))?.[1]))
  t.ok(kept.every((n) => n >= 2800), 'the sessions kept are the most recently used ones')
})

clusterTest('persistent sessions expire MQTT_SESSION_TTL after their last connection; a killed node\'s ownership records go when it is reaped', { env: { MQTT_SESSION_TTL: '10' } }, async (t, { setup, nodes: [a, b], staff }) => {
  const redis = await redisOf(t, setup.redis.url)
  await churn([a, b], staff, 20, 4, (i) => `brief-${i}`)
  t.equal((await keys(redis, 'mqtt:client:*')).length, 20, 'twenty persistent sessions stored')
  // One session stays connected meanwhile: it does not expire.
  const stays = await mqttTo(t, a, { username: 'chief', password: staff, clientId: 'stays', clean: false })
  await stays.subscribeAsync('robots/+/stats', { qos: 1 })
  const gone = await eventually(async () => await keys(redis, 'mqtt:client:*'), (k) => k.length === 1, 30_000)
  t.ok(gone.length === 1 && decodeURIComponent(gone[0] ?? '').endsWith(':stays'), 'the twenty expired; the connected one stays')
  t.equal(await redis.scard(`${PREFIX}mqtt:clients`), 1, 'the persistence\'s list of sessions follows')

  // A node killed with open connections: their owner records go when it is reaped.
  for (let i = 0; i < 5; i++) await mqttTo(t, b, { username: 'chief', password: staff, clientId: `on-b-${i}` })
  const before = (await keys(redis, 'owner:*')).length
  t.ok(before >= 6, `${before} owner records while node-b holds five connections`)
  b.child.kill('SIGKILL')
  const left = await eventually(async () => (await keys(redis, 'owner:*')).length, (n) => n === 1, 15_000)
  t.equal(left, 1, 'once node-b is reaped (CLUSTER_NODE_TIMEOUT=3), only node-a\'s connection has an owner record')
})
