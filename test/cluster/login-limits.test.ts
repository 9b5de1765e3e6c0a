// Cluster mode (CONTRACT §10, §13): the log-in limits count failed log-ins
// from an address across every node. Failures at node A block that address
// at node B too (REST 429, MQTT CONNACK 5), and no other address.
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

clusterTest('failed log-ins at node A block the address at node B (REST and MQTT); another address logs in', { env: { AUTH_FAIL_LIMIT: '3', AUTH_FAIL_WINDOW: '60' } }, async (t, { nodes: [a, b], staff }) => {
  const robot = await makeRobot(a, staff, 'LIM-1')
  const token = await robotTokenAt(a, robot)

  t.equal((await postFrom(b, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })).status, 200, 'before: the address logs in at B')
  for (let i = 0; i < 3; i++) {
    t.equal((await postFrom(a, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'wrong' })).status, 401, `failure ${i + 1} at A`)
  }
  const blocked = await postFrom(b, '127.0.0.7', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })
  t.equal(blocked.status, 429, 'B refuses the blocked address, correct credentials included')
  t.match(blocked.retryAfter, /^\d+$/, 'with Retry-After')
  t.equal((await postFrom(b, '127.0.0.7', '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })).status, 429, 'the robot endpoint too')
  t.equal(await connackFrom(t, b, '127.0.0.7', robot.uuid, token), 5, 'and an MQTT CONNECT at B: CONNACK 5')
  t.equal((await postFrom(b, '127.0.0.8', '/users/obtain_token/', { username: 'chief', password: 'chief-password' })).status, 200, 'another address is not affected')
  t.equal(await connackFrom(t, a, '127.0.0.8', robot.uuid, token), 0, 'nor its CONNECTs')
})
