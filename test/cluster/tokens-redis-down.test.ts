// Cluster mode while Redis, which holds the robot tokens, cannot answer: a
// robot whose token came from node A and that connects to node B cannot be
// checked there. It gets CONNACK 3 (server unavailable), not 4, and counts
// toward no log-in limit: more than AUTH_FAIL_LIMIT such CONNECTs leave its
// address free, and it connects at B once Redis is back. At A, which issued
// the token, it still connects. Tokens wrong without Redis' help still count.
import { connect as netConnect } from 'node:net'
import mqtt from 'mqtt'
import type { Test } from 'tap'
import { eventually } from '../mqtt.js'
import { clusterTest, makeRobot, type Node, robotTokenAt } from './nodes.js'

const LIMIT = 3

/** The CONNACK return code of an MQTT CONNECT to a node from `from` (0 when accepted). */
async function connackFrom (t: Test, node: Node, from: string, username: string, password: string): Promise<number> {
  const client = new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: node.mqttPort, localAddress: from }), { reconnectPeriod: 0, connectTimeout: 15_000, protocolVersion: 4, username, password })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { client.end(true); resolve(0) })
    client.once('error', (err: Error & { code?: number }) => { if (err.code !== undefined) resolve(err.code); else reject(err) })
  })
}

const redisOf = async (node: Node): Promise<unknown> => ((await (await fetch(`${node.url}/ready`)).json()) as { redis?: unknown }).redis

clusterTest('Redis down: a token from another node gets CONNACK 3 and blocks nothing; it connects once Redis is back', { env: { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_WINDOW: '60' } }, async (t, { setup, nodes: [a, b], staff }) => {
  const robot = await makeRobot(a as Node, staff, 'TOK-1')
  const token = await robotTokenAt(a as Node, robot)
  const from = '127.0.0.41'

  setup.redis.freeze()
  t.teardown(() => { setup.redis.thaw() })
  // Frozen and not yet known to be down: the command times out, then the same answer.
  t.equal(await connackFrom(t, b as Node, from, robot.uuid, token), 3, 'at B, before B knows Redis is down: CONNACK 3')
  await eventually(async () => await redisOf(b as Node), (r) => r === 'down', 10_000)
  for (let i = 1; i <= LIMIT + 1; i++) t.equal(await connackFrom(t, b as Node, from, robot.uuid, token), 3, `at B, attempt ${i}: CONNACK 3`)
  t.equal(await connackFrom(t, a as Node, from, robot.uuid, token), 0, 'at A, which issued it, the token still works from the same address')

  setup.redis.thaw()
  await eventually(async () => await redisOf(b as Node), (r) => r === 'ok', 10_000)
  t.equal(await connackFrom(t, b as Node, from, robot.uuid, token), 0, 'Redis back: the robot connects at B from the same address')

  for (let i = 1; i <= LIMIT; i++) t.equal(await connackFrom(t, b as Node, from, robot.uuid, 'f'.repeat(64)), 4, `an unknown token ${i}: CONNACK 4`)
  t.equal(await connackFrom(t, b as Node, from, robot.uuid, token), 5, 'wrong tokens still count: the address is blocked')
})
