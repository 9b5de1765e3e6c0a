// An MQTT CONNECT that could not be checked — the database did not answer —
// gets CONNACK 3 (server unavailable), not 4, and counts toward no log-in
// limit: more than AUTH_FAIL_LIMIT of them leave the address free to log in
// once the database is back. Credentials that are wrong without any look-up
// (an unknown robot token, a forged JWT) still get 4 and still count. Users
// (JWT, also in the WebSocket upgrade's `authentication` header) and robots
// (token, also as `x-token`), over TCP and WebSocket, on SQLite and on
// PostgreSQL (a real outage there, and an exhausted pool).
import type { IClientOptions } from 'mqtt'
import t from 'tap'
import { connackFrom } from '../addresses.js'
import { databaseBusy, databaseOutage } from '../database-outage.js'
import { createRobot, createUser } from '../factory.js'
import { build } from '../helper.js'
import { eventually, robotToken, TRANSPORTS, type Transport } from '../mqtt.js'

const LIMIT = 3
const SERVER_UNAVAILABLE = 3
const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

for (const transport of TRANSPORTS) {
  t.test(`${transport}: CONNECTs during an outage get CONNACK 3 and block nothing; afterwards they connect from the same address`, async (t) => {
    const app = await build(t, { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_WINDOW: '60' })
    const user = await createUser(app)
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    const from = transport === 'tcp' ? '127.0.0.31' : '127.0.0.32'
    const ways: Array<[string, IClientOptions]> = [
      ['a user with a JWT', { username: user.username, password: user.jwt }],
      ['a robot with its token', { username: robot.uuid, password: token }]
    ]
    if (transport === 'ws') {
      ways.push(['a user with the authentication header', { username: user.username, wsOptions: { headers: { authentication: `Bearer ${user.jwt}` } } }])
      ways.push(['a robot with the x-token header', { username: robot.uuid, wsOptions: { headers: { 'x-token': token } } }])
    }

    const restore = await databaseOutage(t, app)
    for (const [what, opts] of ways) {
      for (let i = 1; i <= LIMIT + 1; i++) {
        t.equal(await connackFrom(t, app, from, transport as Transport, opts), SERVER_UNAVAILABLE, `${what}, attempt ${i}: CONNACK 3`)
      }
    }
    t.notOk(await app.services.loginLimits.hasFailures(from), 'nothing was counted against the address')

    await restore()
    for (const [what, opts] of ways) {
      const code = await eventually(async () => await connackFrom(t, app, from, transport as Transport, opts), (c) => c !== SERVER_UNAVAILABLE, 10_000)
      t.equal(code, 0, `${what}: connects once the database is back`)
    }

    // Wrong credentials count exactly as before.
    for (let i = 1; i <= LIMIT; i++) {
      t.equal(await connackFrom(t, app, from, transport as Transport, { username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, `an unknown token ${i}: CONNACK 4`)
    }
    t.equal(await connackFrom(t, app, from, transport as Transport, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'then that robot is blocked at the address: CONNACK 5, its valid token included')
  })
}

t.test('during an outage, credentials that are wrong without a look-up still get CONNACK 4 and still count', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_WINDOW: '60' })
  const robot = await createRobot(app)
  const user = await createUser(app)
  await databaseOutage(t, app)
  const from = '127.0.0.33'
  t.equal(await connackFrom(t, app, from, 'tcp', { username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, 'an unknown robot token: 4')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: user.username, password: 'f'.repeat(64) }), BAD_CREDENTIALS, 'an unknown robot token with the user\'s name: 4')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: user.username, password: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl' }), BAD_CREDENTIALS, 'a forged JWT: 4')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: user.username }), BAD_CREDENTIALS, 'no password: 4')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: user.username, password: user.jwt }), NOT_AUTHORIZED, 'three failures of the user: blocked at the address (5)')
})

t.test('a database too busy to answer (PostgreSQL: an exhausted pool; SQLite: locked): CONNACK 3 for a valid JWT, not 4, and nothing counted', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: String(LIMIT), AUTH_FAIL_WINDOW: '60' })
  const user = await createUser(app)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const end = await databaseBusy(t, app)
  const from = '127.0.0.34'
  // All at once, each waiting (on PostgreSQL) for the pool's acquire timeout.
  const codes = await Promise.all([
    ...Array.from({ length: LIMIT + 1 }, async () => await connackFrom(t, app, from, 'tcp', { username: user.username, password: user.jwt, connectTimeout: 60_000 })),
    connackFrom(t, app, from, 'tcp', { username: robot.uuid, password: token, connectTimeout: 60_000 })
  ])
  t.same(codes, codes.map(() => SERVER_UNAVAILABLE), 'every CONNECT: CONNACK 3')
  await end()
  t.notOk(await app.services.loginLimits.hasFailures(from), 'nothing counted')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: user.username, password: user.jwt }), 0, 'the user connects once the database answers')
  t.equal(await connackFrom(t, app, from, 'tcp', { username: robot.uuid, password: token }), 0, 'and the robot')
})
