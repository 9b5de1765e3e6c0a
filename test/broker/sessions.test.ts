// Persistent sessions on a lone node (Aedes keeps them in memory): at most
// MQTT_SESSIONS_PER_IDENTITY per identity, the least recently used dropped,
// and each expires MQTT_SESSION_TTL after its last connection ended. Seen
// from outside as CONNACK's session-present flag.
import mqtt from 'mqtt'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { build } from '../helper.js'
import { createUser, type TestUser } from '../factory.js'

/** Connects with clean = false; subscribes when asked; disconnects. Resolves with CONNACK's session-present flag. */
async function visit (t: Test, app: FastifyInstance, user: TestUser, clientId: string, subscribe: boolean): Promise<boolean> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${app.broker.port}`, { username: user.username, password: user.jwt, clientId, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => { client.end(true) })
  const present = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => { resolve(connack.sessionPresent) })
    client.once('error', reject)
  })
  if (subscribe) await client.subscribeAsync('robots/+/presence', { qos: 1 })
  await client.endAsync()
  return present
}

t.test('a lone node keeps at most MQTT_SESSIONS_PER_IDENTITY persistent sessions per identity, the most recently used, each for MQTT_SESSION_TTL after its last connection', async (t) => {
  const app = await build(t, { MQTT_SESSIONS_PER_IDENTITY: '3', MQTT_SESSION_TTL: '10' })
  const user = await createUser(app)
  for (let i = 1; i <= 5; i++) t.equal(await visit(t, app, user, `s${i}`, true), false, `session s${i} is new`)
  t.equal(await visit(t, app, user, 's5', false), true, 's5, among the last three used, is still there')
  t.equal(await visit(t, app, user, 's3', false), true, 's3 too')
  t.equal(await visit(t, app, user, 's1', false), false, 's1, the least recently used, was dropped when s4 came')
  t.equal(await visit(t, app, user, 's2', false), false, 'and s2 when s5 came')
  const other = await createUser(app)
  t.equal(await visit(t, app, other, 'o1', true), false)
  t.equal(await visit(t, app, other, 'o1', false), true, 'another identity\'s sessions do not count toward the first\'s cap')

  // MQTT_SESSION_TTL=10: the sweep runs every 2.5 s; nothing connects meanwhile.
  await new Promise((resolve) => { setTimeout(resolve, 14_000) })
  t.equal(await visit(t, app, other, 'o1', false), false, 'after MQTT_SESSION_TTL without a connection the session is gone')
  t.equal(await visit(t, app, user, 's3', false), false, 'for every identity')
})
