// Connections per identity on a lone node: MAX_CONNECTIONS_PER_ROBOT (10 by
// default) and MAX_CONNECTIONS_PER_USER; one more gets CONNACK 5, a takeover
// of its own client id never does, a refusal is no failed log-in and is
// logged once per identity, and a closed connection frees its place.
import { Writable } from 'node:stream'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loggerOptions } from '../../src/logger.js'
import { createRobot, createUser } from '../factory.js'
import { testConfig, testDatabase } from '../helper.js'
import { closed, connect, eventually, robotToken } from '../mqtt.js'

t.test('a robot holds at most 10 connections by default, a user MAX_CONNECTIONS_PER_USER; the next gets CONNACK 5, logged once, uncounted; a takeover passes', async (t) => {
  const db = await testDatabase()
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8')
      if (text.includes('maximum of open connections')) lines.push(text)
      done()
    }
  })
  // Two failed log-ins would block the identity and the address: refusals for the cap must not count.
  const app = await buildApp(testConfig(db.url, { MAX_CONNECTIONS_PER_USER: '3', AUTH_FAIL_LIMIT: '2', AUTH_FAIL_ADDRESS_LIMIT: '2', LOG_LEVEL: 'info' }), { ...loggerOptions('info'), stream })
  t.teardown(async () => { await app.close(); await db.drop() })

  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const robotClients: MqttClient[] = []
  // Half over WebSocket: a connection counts however it came.
  for (let i = 0; i < 10; i++) robotClients.push(await connect(t, app, { username: robot.uuid, password: token, clientId: `r-${i}`, transport: i % 2 === 0 ? 'tcp' : 'ws' }))
  t.equal(robotClients.length, 10, 'ten connections of one robot are accepted (TCP and WebSocket)')
  t.equal(await refused(t, app, { username: robot.uuid, password: token, clientId: 'r-extra-ws', transport: 'ws' }), 5, 'the eleventh over WebSocket: CONNACK 5')
  for (let i = 0; i < 4; i++) {
    const code = await refused(t, app, { username: robot.uuid, password: token, clientId: `r-extra-${i}` })
    t.equal(code, 5, `the eleventh connection (try ${i + 1}) gets CONNACK 5`)
  }
  const fresh = await connect(t, app, { username: robot.uuid, password: token, clientId: 'r-3' })
  t.ok(fresh.connected, 'a connection with a client id the robot holds takes it over, at the cap')
  await closed(robotClients[3] as MqttClient)
  t.pass('the connection taken over is closed')
  robotClients[1]?.end(true)
  const again = await eventually(async () => await attempt(t, app, { username: robot.uuid, password: token, clientId: 'r-10' }), (code) => code === 0)
  t.equal(again, 0, 'a closed (WebSocket) connection frees its place')
  t.equal(await refused(t, app, { username: robot.uuid, password: token, clientId: 'r-11' }), 5, 'and only one')

  const user = await createUser(app)
  for (let i = 0; i < 3; i++) await connect(t, app, { username: user.username, password: user.jwt, clientId: `u-${i}` })
  for (let i = 0; i < 5; i++) t.equal(await refused(t, app, { username: user.username, password: user.jwt, clientId: `u-extra-${i}` }), 5, `the user's fourth connection (try ${i + 1}) gets CONNACK 5`)
  t.equal(await attempt(t, app, { username: user.username, password: user.jwt, clientId: 'u-1' }), 0, 'the user\'s own client id is taken over at the cap')
  t.equal(await app.services.loginLimits.addressBlocked('127.0.0.1'), null, 'nine refusals for the cap with AUTH_FAIL_ADDRESS_LIMIT=2: the address is not blocked')

  const robotLines = lines.filter((l) => l.includes(`robot:${robot.uuid}`))
  const userLines = lines.filter((l) => l.includes(`user:${user.id}`))
  t.equal(robotLines.length, 1, 'the robot\'s six refusals are logged once')
  t.equal(userLines.length, 1, 'the user\'s five refusals are logged once')
})

/** The CONNACK code of one CONNECT (0: accepted; the client is ended on teardown). */
async function attempt (t: Test, app: Parameters<typeof connect>[1], opts: Parameters<typeof connect>[2]): Promise<number> {
  try {
    await connect(t, app, opts)
    return 0
  } catch (err) {
    return (err as { code?: number }).code ?? -1
  }
}

async function refused (t: Test, app: Parameters<typeof connect>[1], opts: Parameters<typeof connect>[2]): Promise<number> {
  return await attempt(t, app, opts)
}
