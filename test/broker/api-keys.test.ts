// docs/protocol.md §13.4: API keys on MQTT. The username and a key log in as
// the user; a key that ended (deleted, expired, its user's password changed)
// gets CONNACK 5 and counts toward no log-in limit, a wrong one CONNACK 4;
// deleting a key closes exactly the connections it opened, and a key's
// expires_at closes them when it comes.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createUser, grant, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { closedByServer, connect, connectUser, refusedWith, suback, TRANSPORTS, type Transport } from '../mqtt.js'

const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5
const REFUSED = 128

interface Made { id: string, key: string }

async function makeKey (app: FastifyInstance, user: TestUser, expiresAt?: Date): Promise<Made> {
  const res = await app.inject({ method: 'POST', url: '/users/me/api_keys', headers: bearer(user.jwt), payload: { name: 'mqtt', ...(expiresAt === undefined ? {} : { expires_at: expiresAt.toISOString() }) } })
  if (res.statusCode !== 201) throw new Error(`POST /users/me/api_keys answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

async function deleteKey (app: FastifyInstance, user: TestUser, key: Made): Promise<void> {
  const res = await app.inject({ method: 'DELETE', url: `/users/me/api_keys/${key.id}`, headers: bearer(user.jwt) })
  if (res.statusCode !== 204) throw new Error(`DELETE answered ${res.statusCode}`)
}

async function withKey (t: Test, app: FastifyInstance, transport: Transport, username: string, key: string): Promise<MqttClient> {
  return await connect(t, app, { transport, username, password: key })
}

/** Resolves with the time the server closed the client, failing after `ms`. */
async function closedWithin (client: MqttClient, ms: number, what: string): Promise<number> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: not closed within ${ms} ms`)) }, ms) })
  try {
    await Promise.race([closedByServer(client), deadline])
    return Date.now()
  } finally {
    clearTimeout(timer)
  }
}

const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms) }) }

for (const transport of TRANSPORTS) {
  t.test(`over ${transport}`, async (t) => {
    t.test('the username and a key log in as the user, with the user\'s access', async (t) => {
      const app = await build(t)
      const user = await createUser(app)
      const robot = await createRobot(app)
      const other = await createRobot(app)
      await grant(app, user, robot)
      const made = await makeKey(app, user)
      for (const username of [user.username, user.username.toUpperCase()]) {
        const client = await withKey(t, app, transport, username, made.key)
        t.ok(client.connected, `username ${username === user.username ? 'as stored' : 'in upper case'}: connected`)
        t.same(await suback(client, `robots/${robot.uuid}/stats`), [1], 'a granted robot\'s stats')
        t.same(await suback(client, `robots/${other.uuid}/stats`), [REFUSED], 'not another robot\'s')
      }
      if (transport === 'ws') {
        for (const header of [made.key, `Bearer ${made.key}`]) {
          const client = await connect(t, app, { transport, username: user.username, wsOptions: { headers: { authentication: header } } })
          t.ok(client.connected, `the authentication header stands in for the password (${header.startsWith('Bearer') ? 'with' : 'without'} Bearer)`)
        }
      }
    })

    t.test('a wrong username or a wrong key: CONNACK 4, counted', async (t) => {
      const app = await build(t)
      const user = await createUser(app)
      const bob = await createUser(app)
      const made = await makeKey(app, user)
      t.equal(await refusedWith(t, app, { transport, username: bob.username, password: made.key }), BAD_CREDENTIALS, 'another user\'s name')
      t.equal(await refusedWith(t, app, { transport, username: 'nobody', password: made.key }), BAD_CREDENTIALS, 'an unknown name')
      t.equal(await refusedWith(t, app, { transport, username: user.username, password: `uk_${'A'.repeat(43)}` }), BAD_CREDENTIALS, 'an unknown key')
      t.equal(await refusedWith(t, app, { transport, username: user.username, password: `${made.key.slice(0, 19)}${'A'.repeat(made.key.length - 19)}` }), BAD_CREDENTIALS, 'the right lookup, the wrong rest')
      t.ok(await app.services.loginLimits.hasFailures('127.0.0.1', user.username), 'counted as failed log-ins')
    })

    t.test('deleting a key closes exactly the connections it opened; it then gets CONNACK 5, not counted', async (t) => {
      const app = await build(t, { AUTH_FAIL_LIMIT: '3' })
      const user = await createUser(app)
      const robot = await createRobot(app)
      await grant(app, user, robot)
      const doomed = await makeKey(app, user)
      const kept = await makeKey(app, user)
      const stats = `robots/${robot.uuid}/stats`
      const mine = [await withKey(t, app, transport, user.username, doomed.key), await withKey(t, app, transport, user.username, doomed.key)]
      const others = [await withKey(t, app, transport, user.username, kept.key), await connectUser(t, app, user, { transport })]
      for (const c of [...mine, ...others]) t.same(await suback(c, stats), [1])

      const gone = mine.map(async (c, i) => await closedWithin(c, 5000, `connection ${i + 1} of the deleted key`))
      const start = Date.now()
      await deleteKey(app, user, doomed)
      const ends = await Promise.all(gone)
      t.ok(Math.max(...ends) - start < 5000, `both closed (after ${Math.max(...ends) - start} ms)`)
      await pause(300)
      t.ok(others.every((c) => c.connected), 'the other key\'s and the JWT\'s connections stay')
      t.same(await suback(others[0]!, `robots/${robot.uuid}/presence`), [1], 'and are served')

      for (let i = 0; i < 5; i++) {
        t.equal(await refusedWith(t, app, { transport, username: user.username, password: doomed.key }), NOT_AUTHORIZED, `the deleted key, attempt ${i + 1}: CONNACK 5`)
      }
      t.notOk(await app.services.loginLimits.hasFailures('127.0.0.1'), 'not counted')
      t.ok((await withKey(t, app, transport, user.username, kept.key)).connected, 'the other key still logs in')
    })

    t.test('a key\'s connections close at its expires_at; then CONNACK 5', async (t) => {
      const app = await build(t)
      const user = await createUser(app)
      const expiresAt = new Date(Date.now() + 2500)
      const made = await makeKey(app, user, expiresAt)
      const lasting = await makeKey(app, user)
      const client = await withKey(t, app, transport, user.username, made.key)
      const other = await withKey(t, app, transport, user.username, lasting.key)
      const closedAt = await closedWithin(client, 10_000, 'the expiring key\'s connection')
      t.ok(closedAt >= expiresAt.getTime(), 'not before its expiry')
      t.ok(closedAt - expiresAt.getTime() < 3000, `soon after it (${closedAt - expiresAt.getTime()} ms)`)
      t.ok(other.connected, 'another key\'s connection stays')
      t.equal(await refusedWith(t, app, { transport, username: user.username, password: made.key }), NOT_AUTHORIZED, 'the expired key: CONNACK 5')
      t.notOk(await app.services.loginLimits.hasFailures('127.0.0.1'), 'not counted')
    })

    t.test('a password change closes the key\'s connections and ends the key', async (t) => {
      const app = await build(t)
      const user = await createUser(app)
      const made = await makeKey(app, user)
      const client = await withKey(t, app, transport, user.username, made.key)
      const gone = closedWithin(client, 5000, 'the key\'s connection')
      await app.services.users.update(user.id, { password: 'a-brand-new-password' }, { actor: null })
      await gone
      t.equal(await refusedWith(t, app, { transport, username: user.username, password: made.key }), NOT_AUTHORIZED, 'then CONNACK 5')
    })
  })
}
