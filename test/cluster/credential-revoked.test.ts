// Stale credentials across nodes: a robot token voided through node A is
// remembered in Redis (`voided-token:<sha256>`, expiring ROBOT_TOKEN_TTL after
// the voiding), so node B answers it CONNACK 5 and counts it toward no
// limit; after ROBOT_TOKEN_TTL the key is gone and the token is unknown
// (CONNACK 4). A JWT revoked through A gets CONNACK 5 at B; a secret rotated
// out through A is revoked at B's obtain_token.
import { createHash } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import mqtt from 'mqtt'
import type { Test } from 'tap'
import { postJson } from '../process/spawn.js'
import { api, clusterTest, login, makeRobot, type Node, robotTokenAt } from './nodes.js'

const TTL = 4

/** The CONNACK return code of an MQTT CONNECT to a node from `from` (0 when accepted). */
async function connackFrom (t: Test, node: Node, from: string, username: string, password: string): Promise<number> {
  const client = new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: node.mqttPort, localAddress: from }), { reconnectPeriod: 0, connectTimeout: 15_000, protocolVersion: 4, username, password })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { client.end(true); resolve(0) })
    client.once('error', (err: Error & { code?: number }) => { if (err.code !== undefined) resolve(err.code); else reject(err) })
  })
}

clusterTest('a token voided through A gets CONNACK 5 at B, uncounted, for ROBOT_TOKEN_TTL; revoked JWTs and secrets too', { env: { ROBOT_TOKEN_TTL: String(TTL), AUTH_FAIL_LIMIT: '2', AUTH_FAIL_WINDOW: '60' } }, async (t, { setup, nodes: [a, b], staff }) => {
  const A = a as Node
  const B = b as Node
  const from = '127.0.0.51'
  const redis = new Redis(setup.redis.url)
  t.teardown(() => { redis.disconnect() })

  const robot = await makeRobot(A, staff, 'REV-1')
  const token = await robotTokenAt(A, robot)
  t.equal(await connackFrom(t, B, from, robot.uuid, token), 0, 'a moment before: the token from A connects at B')
  const rotated = await api(A, 'POST', `/admin/api/robots/${robot.uuid}/rotate_token`, staff)
  t.equal(rotated.status, 200)
  const voidedAt = Date.now()
  for (let i = 0; i < 10; i++) t.equal(await connackFrom(t, B, from, robot.uuid, token), 5, `voided through A, at B ${i + 1}: CONNACK 5`)
  const key = `united-test:voided-token:${createHash('sha256').update(token).digest('hex')}`
  const ttl = await redis.ttl(key)
  t.ok(ttl > 0 && ttl <= TTL, `remembered in Redis by its hash, expiring (${ttl} s left)`)
  t.equal(await redis.exists(`united-test:token:${createHash('sha256').update(token).digest('hex')}`), 0, 'and no longer a live token')
  const fresh = await robotTokenAt(B, { serial: robot.serial, secret: rotated.body.token as string })
  t.equal(await connackFrom(t, B, from, robot.uuid, fresh), 0, 'after 10 stale CONNECTs the robot connects at B from the same address')
  t.equal(await connackFrom(t, A, from, robot.uuid, fresh), 0, 'and at A')

  // The old secret, rotated out through A, at B's obtain_token.
  const old = await postJson(B.url, '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })
  t.equal(old.code, 'UNITED_CREDENTIAL_REVOKED', 'the rotated-out secret at B: revoked')
  const wrong = await postJson(B.url, '/robots/robot/obtain_token', { serial: robot.serial, token: 'f'.repeat(48) })
  t.equal(wrong.code, 'UNITED_ROBOT_AUTH_FAILED', 'a wrong one: the ordinary refusal')

  // A JWT revoked through A (password changed) at B.
  const user = await api(A, 'POST', '/admin/api/users', staff, { username: 'rev-user', password: 'rev-user-password' })
  const jwt = await login(A, 'rev-user', 'rev-user-password')
  t.equal(await connackFrom(t, B, from, 'rev-user', jwt), 0, 'a moment before: the JWT connects at B')
  t.equal((await api(A, 'PATCH', `/admin/api/users/${user.body.id as number}`, staff, { password: 'another-password' })).status, 200)
  for (let i = 0; i < 5; i++) t.equal(await connackFrom(t, B, from, 'rev-user', jwt), 5, `the old JWT at B ${i + 1}: CONNACK 5`)
  t.equal(await connackFrom(t, B, from, 'rev-user', await login(B, 'rev-user', 'another-password')), 0, 'a new JWT connects at B from the same address')

  await sleep(Math.max(0, voidedAt + TTL * 1000 - Date.now()) + 300)
  t.equal(await redis.exists(key), 0, 'ROBOT_TOKEN_TTL after the voiding, the key is gone')
  t.equal(await connackFrom(t, B, from, robot.uuid, token), 4, 'and the token is unknown: CONNACK 4')
})
