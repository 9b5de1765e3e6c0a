// Cluster mode: the log-in limits count failed log-ins per identity and
// address, and per address, across every node. Failures at node A block
// that identity (or, past the address limit, that address) at node B too
// (REST 429, MQTT CONNACK 5), and nothing else; attempts made at once on
// both nodes cannot get past a limit.
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import mqtt from 'mqtt'
import type { Test } from 'tap'
import { clusterTest, makeRobot, type Node, robotTokenAt } from './nodes.js'

/** POSTs JSON to a node from the loopback address `from`. */
async function postFrom (node: Node, from: string, path: string, body: unknown): Promise<{ status: number, retryAfter: string | undefined }> {
  const url = new URL(node.url)
  const text = JSON.stringify(body)
  return await new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path, localAddress: from, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } }, (res) => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined }) })
    })
    req.on('error', reject)
    req.end(text)
  })
}

/** The CONNACK return code of an MQTT CONNECT to a node from `from` (0 when accepted). */
async function connackFrom (t: Test, node: Node, from: string, username: string, password: string): Promise<number> {
  const client = new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: node.mqttPort, localAddress: from }), { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, username, password })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { resolve(0) })
    client.once('error', (err: Error & { code?: number }) => { if (err.code !== undefined) resolve(err.code); else reject(err) })
  })
}

clusterTest('failures of one identity at node A block it at node B (REST and MQTT); other identities and addresses log in', { env: { AUTH_FAIL_LIMIT: '3', AUTH_FAIL_ADDRESS_LIMIT: '6', AUTH_FAIL_WINDOW: '60' } }, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'LIM-1')
  const token = await robotTokenAt(a, robot)

  t.equal((await postFrom(b, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })).status, 200, 'before: chief logs in at B')
  for (let i = 0; i < 3; i++) {
    t.equal((await postFrom(a, '127.0.0.7', '/robots/robot/obtain_token', { serial: robot.serial, token: 'f'.repeat(48) })).status, 401, `wrong secret ${i + 1} at A`)
  }
  const blocked = await postFrom(b, '127.0.0.7', '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })
  t.equal(blocked.status, 429, 'B refuses that serial from that address, the right secret included')
  t.match(blocked.retryAfter, /^\d+$/, 'with Retry-After')
  t.equal((await postFrom(b, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })).status, 200, 'another identity at the address logs in at B')
  t.equal(await connackFrom(t, b, '127.0.0.7', robot.uuid, token), 0, 'the robot\'s MQTT identity (its uuid) is another one: it connects')
  t.equal((await postFrom(b, '127.0.0.8', '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })).status, 201, 'the serial from another address obtains a token')

  // Past the address limit (3 + 3 more failures, new names at B), the whole address is blocked at A too.
  for (let i = 0; i < 3; i++) {
    t.equal((await postFrom(b, '127.0.0.7', '/users/obtain_token/', { username: `guess${i}`, password: 'wrong' })).status, 401, `guess ${i + 1} at B`)
  }
  t.equal((await postFrom(a, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })).status, 429, 'A refuses the blocked address, any identity')
  t.equal(await connackFrom(t, a, '127.0.0.7', robot.uuid, token), 5, 'and its MQTT CONNECTs: CONNACK 5')
  t.equal(await connackFrom(t, a, '127.0.0.8', robot.uuid, token), 0, 'another address connects')
})

clusterTest('wrong secrets sent at once to two nodes: no more than the limit are checked', { env: { AUTH_FAIL_LIMIT: '10', AUTH_FAIL_WINDOW: '60' } }, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'LIM-2')
  const answers = await Promise.all(Array.from({ length: 40 }, async (_, i) =>
    await postFrom(i % 2 === 0 ? a : b, '127.0.0.9', '/robots/robot/obtain_token', { serial: robot.serial, token: 'f'.repeat(48) })))
  t.equal(answers.filter((r) => r.status === 401).length, 10, 'exactly AUTH_FAIL_LIMIT checked across the two nodes')
  t.equal(answers.filter((r) => r.status === 429).length, 30, 'the rest refused unchecked')
})
