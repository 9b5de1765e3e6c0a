// MQTT log-in (docs/protocol.md §2.3) with real mqtt.js clients over TCP and WebSocket.
import { createHmac, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createStaff, createUser } from '../factory.js'
import { build, TEST_JWT_SECRET } from '../helper.js'
import { brokerUrl, connect, connectRobot, connectUser, listen, refusedWith, robotToken, subscribe, TRANSPORTS, type ConnectOptions } from '../mqtt.js'

const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5
const IDENTIFIER_REJECTED = 2

const b64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url')

/** An HS256 JWT signed here, so that the secret and the claims are ours to choose. */
function signJwt (secret: string, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000)
  const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ iat: now, exp: now + 300, ver: 0, ...claims }))}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}

async function refreshJwt (app: FastifyInstance, username: string, password: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username, password } })
  return (res.json() as { refresh: string }).refresh
}

/** The next `name` event of an mqtt.js client (its typed emitter does not fit events.once). */
async function event<T = unknown> (client: MqttClient, name: 'connect' | 'error' | 'close'): Promise<T> {
  return await new Promise<T>((resolve) => { (client as unknown as NodeJS.EventEmitter).once(name, (value: T) => { resolve(value) }) })
}

/** Connects and resolves with the CONNACK (for its session-present flag). */
async function connack (t: Test, app: FastifyInstance, opts: ConnectOptions): Promise<{ client: MqttClient, packet: IConnackPacket }> {
  const transport = opts.transport ?? 'tcp'
  if (transport === 'ws') await listen(app)
  const client = mqtt.connect(brokerUrl(app, transport), { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts })
  t.teardown(() => { client.end(true) })
  const packet = await Promise.race([
    event<IConnackPacket>(client, 'connect'),
    event<Error>(client, 'error').then((err) => { throw err })
  ])
  return { client, packet }
}

/** Watches a client for a close, without waiting for one. */
function watchClose (client: MqttClient): { closed: boolean } {
  const state = { closed: false }
  client.on('close', () => { state.closed = true })
  return state
}

for (const transport of TRANSPORTS) {
  t.test(`${transport}: robot with a fresh access token connects`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const client = await connectRobot(t, app, robot, { transport })
    t.equal(client.connected, true)
    t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1], 'and is the robot: its own ack topic is granted')
  })

  t.test(`${transport}: robot with a bad token gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, 'unknown token')
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: robot.secret }), BAD_CREDENTIALS, 'the robot secret is not an access token')
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: 'x'.repeat(300) }), BAD_CREDENTIALS, 'an overlong token')
  })

  t.test(`${transport}: robot token used with another robot's uuid gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const other = await createRobot(app)
    const token = await robotToken(app, other)
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), BAD_CREDENTIALS)
    t.equal(await refusedWith(t, app, { transport, username: 'someone', password: token }), BAD_CREDENTIALS, 'any other username too')
  })

  t.test(`${transport}: robot without a password gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid }), BAD_CREDENTIALS)
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: '' }), BAD_CREDENTIALS, 'an empty password')
    t.equal(await refusedWith(t, app, { transport }), BAD_CREDENTIALS, 'no username either')
  })

  // A voided token is a revoked credential, not a guess (test/broker/credential-revoked.test.ts): CONNACK 5.
  t.test(`${transport}: token voided by a secret rotation gets CONNACK 5`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    await app.services.robots.rotate(robot.uuid, { actor: null }, 0)
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), NOT_AUTHORIZED)
  })

  t.test(`${transport}: disabled robot gets CONNACK 5`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null })
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), NOT_AUTHORIZED)
    await app.services.robots.update(robot.uuid, { enabled: true }, { actor: null })
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), NOT_AUTHORIZED, 'the token stays void after re-enabling')
    await connectRobot(t, app, robot, { transport })
    t.pass('a token obtained after re-enabling works')
  })

  t.test(`${transport}: deleted robot gets CONNACK 5`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    await app.services.robots.remove(robot.uuid, { actor: null })
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), NOT_AUTHORIZED)
  })

  t.test(`${transport}: user with an access JWT connects`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const client = await connectUser(t, app, user, { transport })
    t.equal(client.connected, true)
  })

  t.test(`${transport}: user with an empty username and a JWT password connects`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    // MQTT 3.1.1 has no password without a user name; an empty one is "none".
    const client = await connect(t, app, { transport, username: '', password: user.jwt })
    t.equal(client.connected, true)
  })

  t.test(`${transport}: JWT with another user's username gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const other = await createUser(app)
    t.equal(await refusedWith(t, app, { transport, username: other.username, password: user.jwt }), BAD_CREDENTIALS)
    // Usernames match without regard to case (test/http/usernames-case.test.ts), but only the JWT's user's.
    t.equal(await refusedWith(t, app, { transport, username: `${user.username.toUpperCase()}X`, password: user.jwt }), BAD_CREDENTIALS, 'a name that only starts like the JWT user\'s')
  })

  t.test(`${transport}: refresh JWT gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const refresh = await refreshJwt(app, user.username, user.password)
    t.match(refresh, /^[\w-]+\.[\w-]+\.[\w-]+$/)
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: refresh }), BAD_CREDENTIALS)
  })

  t.test(`${transport}: JWT signed with another secret gets CONNACK 4`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const claims = { sub: String(user.id), username: user.username, type: 'access' }
    // The control: the same claims signed with the server's secret are accepted.
    await connect(t, app, { transport, username: user.username, password: signJwt(TEST_JWT_SECRET, claims) })
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: signJwt('another-secret-another-secret-0123456789', claims) }), BAD_CREDENTIALS)
  })

  t.test(`${transport}: expired and tampered JWTs get CONNACK 4, a deleted user's CONNACK 5`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const now = Math.floor(Date.now() / 1000)
    const expired = signJwt(TEST_JWT_SECRET, { sub: String(user.id), username: user.username, type: 'access', iat: now - 600, exp: now - 300 })
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: expired }), BAD_CREDENTIALS, 'expired')
    const [head, , sig] = user.jwt.split('.') as [string, string, string]
    const forged = `${head}.${b64url(JSON.stringify({ sub: String(user.id), username: user.username, type: 'access', exp: now + 300, ver: 0 }))}.${sig}`
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: forged }), BAD_CREDENTIALS, 'claims changed after signing')
    await app.services.users.remove(user.id, { actor: null })
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: user.jwt }), NOT_AUTHORIZED, 'deleted user: a revoked credential')
  })

  t.test(`${transport}: inactive user's JWT gets CONNACK 5`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    await app.services.users.update(user.id, { isActive: false }, { actor: null })
    t.equal(await refusedWith(t, app, { transport, username: user.username, password: user.jwt }), NOT_AUTHORIZED)
    t.equal(await refusedWith(t, app, { transport, username: '', password: user.jwt }), NOT_AUTHORIZED, 'without a username too')
  })

  // Client ids are scoped to their identity (docs/protocol.md §3.3): another identity
  // with the same client id connects beside the holder, and neither is closed.
  t.test(`${transport}: a user with a connected robot's client id neither blocks nor closes it`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const user = await createUser(app)
    const robotClient = await connectRobot(t, app, robot, { transport, clientId: `robot-${robot.uuid}` })
    const state = watchClose(robotClient)
    const squatter = await connectUser(t, app, user, { transport, clientId: `robot-${robot.uuid}` })
    const anonymous = await connect(t, app, { transport, clientId: `robot-${robot.uuid}`, username: '', password: user.jwt })
    t.equal(squatter.connected && anonymous.connected, true, 'the user connects, with or without a username')
    // A round trip on the robot's connection proves it is still served.
    t.same(await subscribe(robotClient, `robots/${robot.uuid}/commands`), [1])
    t.equal(state.closed, false, 'the robot stays connected')
    t.equal(robotClient.connected, true)
  })

  t.test(`${transport}: a user holding an offline robot's client id does not lock the robot out`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const user = await createUser(app)
    const squatter = await connectUser(t, app, user, { transport, clientId: `robot-${robot.serial}` })
    const squatterState = watchClose(squatter)
    const robotClient = await connectRobot(t, app, robot, { transport, clientId: `robot-${robot.serial}` })
    t.same(await subscribe(robotClient, `robots/${robot.uuid}/commands`), [1], 'the robot connects and is served')
    t.same(await subscribe(squatter, 'robots/+/presence'), [1], 'the user stays connected and served')
    t.equal(squatterState.closed, false, 'the user is not kicked either')
  })

  t.test(`${transport}: robots sharing a client id do not close each other`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const other = await createRobot(app)
    const robotClient = await connectRobot(t, app, robot, { transport, clientId: 'shared-id' })
    const state = watchClose(robotClient)
    const otherClient = await connectRobot(t, app, other, { transport, clientId: 'shared-id' })
    t.same(await subscribe(robotClient, `robots/${robot.uuid}/ack`), [1])
    t.same(await subscribe(otherClient, `robots/${other.uuid}/ack`), [1])
    t.equal(state.closed, false, 'the first robot stays connected')
  })

  t.test(`${transport}: a robot with a connected user's client id does not close it`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const staff = await createStaff(app)
    const userClient = await connectUser(t, app, staff, { transport, clientId: 'dashboard' })
    const state = watchClose(userClient)
    await connectRobot(t, app, robot, { transport, clientId: 'dashboard' })
    t.same(await subscribe(userClient, 'robots/+/presence'), [1])
    t.equal(state.closed, false, 'the user stays connected')
  })

  t.test(`${transport}: client ids over 128 characters get CONNACK 2; 128 are accepted`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const user = await createUser(app)
    t.equal(await refusedWith(t, app, { transport, clientId: 'x'.repeat(129), username: robot.uuid, password: await robotToken(app, robot) }), IDENTIFIER_REJECTED, 'a robot')
    t.equal(await refusedWith(t, app, { transport, clientId: 'x'.repeat(65_000), username: user.username, password: user.jwt }), IDENTIFIER_REJECTED, 'a user, with a 64 KB client id')
    t.equal(await refusedWith(t, app, { transport, clientId: 'y'.repeat(129), username: user.username, password: 'wrong' }), IDENTIFIER_REJECTED, 'before the credentials are looked at')
    const ok = await connectRobot(t, app, robot, { transport, clientId: 'z'.repeat(128) })
    t.equal(ok.connected, true, '128 characters connect')
  })

  t.test(`${transport}: the same robot reconnecting with its client id takes its session over`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const clientId = `robot-${robot.uuid}`
    const first = await connack(t, app, { transport, clientId, clean: false, username: robot.uuid, password: await robotToken(app, robot) })
    first.client.on('error', () => {})
    t.same(await subscribe(first.client, `robots/${robot.uuid}/commands`), [1])
    const firstClosed = event(first.client, 'close')

    const second = await connack(t, app, { transport, clientId, clean: false, username: robot.uuid, password: await robotToken(app, robot) })
    t.equal(second.packet.sessionPresent, true, 'the session (and its subscription) is the robot\'s')
    await firstClosed
    t.pass('the old connection is closed')
    t.equal(second.client.connected, true)
  })

  t.test(`${transport}: the same user reconnecting with its client id takes its session over`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const first = await connectUser(t, app, user, { transport, clientId: 'my-dashboard' })
    first.on('error', () => {})
    const firstClosed = event(first, 'close')
    const second = await connectUser(t, app, user, { transport, clientId: 'my-dashboard' })
    await firstClosed
    t.equal(second.connected, true)
  })
}

t.test('expired robot token gets CONNACK 4', async (t) => {
  const app = await build(t, { ROBOT_TOKEN_TTL: '1' })
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const before = await connect(t, app, { username: robot.uuid, password: token })
  t.equal(before.connected, true, 'the token works while it lives')
  before.end(true)
  await new Promise((resolve) => { setTimeout(resolve, 2100) })
  for (const transport of TRANSPORTS) {
    t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), BAD_CREDENTIALS, transport)
  }
})

t.test('ws: robot with an x-token header and no password connects', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { transport: 'ws', username: robot.uuid, wsOptions: { headers: { 'x-token': token } } })
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1], 'as that robot')
})

t.test('ws: a bad x-token header gets CONNACK 4, a voided one 5', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  t.equal(await refusedWith(t, app, { transport: 'ws', username: robot.uuid, wsOptions: { headers: { 'x-token': 'f'.repeat(64) } } }), BAD_CREDENTIALS, 'unknown token')
  t.equal(await refusedWith(t, app, { transport: 'ws', username: robot.uuid, wsOptions: { headers: { 'x-token': await robotToken(app, other) } } }), BAD_CREDENTIALS, "another robot's token")
  const token = await robotToken(app, robot)
  await app.services.robots.rotate(robot.uuid, { actor: null }, 0)
  t.equal(await refusedWith(t, app, { transport: 'ws', username: robot.uuid, wsOptions: { headers: { 'x-token': token } } }), NOT_AUTHORIZED, 'a voided token')
})

t.test('ws: user with an authentication header connects, with or without Bearer', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const plain = await connect(t, app, { transport: 'ws', username: user.username, wsOptions: { headers: { authentication: user.jwt } } })
  t.equal(plain.connected, true, 'authentication: <jwt>')
  const withBearer = await connect(t, app, { transport: 'ws', username: user.username, wsOptions: { headers: { authentication: `Bearer ${user.jwt}` } } })
  t.equal(withBearer.connected, true, 'authentication: Bearer <jwt>')
  const anonymous = await connect(t, app, { transport: 'ws', wsOptions: { headers: { authentication: user.jwt } } })
  t.equal(anonymous.connected, true, 'without a username')
})

t.test('ws: a bad authentication header gets the same refusals as a bad password', async (t) => {
  const app = await build(t)
  const user = await createUser(app)
  const other = await createUser(app)
  const refresh = await refreshJwt(app, user.username, user.password)
  const header = (jwt: string): ConnectOptions => ({ transport: 'ws', wsOptions: { headers: { authentication: jwt } } })
  t.equal(await refusedWith(t, app, { ...header(user.jwt), username: other.username }), BAD_CREDENTIALS, 'username not matching the JWT')
  t.equal(await refusedWith(t, app, { ...header(refresh), username: user.username }), BAD_CREDENTIALS, 'a refresh JWT')
  t.equal(await refusedWith(t, app, header(signJwt('another-secret-another-secret-0123456789', { sub: String(user.id), username: user.username, type: 'access' }))), BAD_CREDENTIALS, 'another secret')
  await app.services.users.update(user.id, { isActive: false }, { actor: null })
  t.equal(await refusedWith(t, app, { ...header(user.jwt), username: user.username }), NOT_AUTHORIZED, 'an inactive user')
})

t.test('ws: a password takes precedence over the headers', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  t.equal(await refusedWith(t, app, { transport: 'ws', username: robot.uuid, password: 'f'.repeat(64), wsOptions: { headers: { 'x-token': token } } }), BAD_CREDENTIALS)
})

t.test('tcp: there are no headers to stand in for the password', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  // wsOptions mean nothing on TCP: the CONNECT carries no password.
  t.equal(await refusedWith(t, app, { transport: 'tcp', username: robot.uuid, wsOptions: { headers: { 'x-token': await robotToken(app, robot) } } }), BAD_CREDENTIALS)
})

t.test('ws: MQTT is served at /mqtt only', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  await listen(app)
  const url = brokerUrl(app, 'ws').replace(/\/mqtt$/, '/other')
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, username: robot.uuid, password: await robotToken(app, robot) })
  t.teardown(() => { client.end(true) })
  client.on('error', () => {})
  let connected = false
  client.on('connect', () => { connected = true })
  await event(client, 'close')
  t.equal(connected, false, 'mqtt.js gives up without an MQTT session')

  // What the client saw: the upgrade is answered 404.
  const { port } = new URL(url)
  const req = request({ host: '127.0.0.1', port, path: '/other', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), 'sec-websocket-protocol': 'mqtt' } })
  req.on('upgrade', () => { t.fail('upgraded') })
  req.end()
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.resume()
  t.equal(res.statusCode, 404, 'the upgrade is answered 404')

  await connectRobot(t, app, robot, { transport: 'ws' })
  t.pass('/mqtt still works')
})
