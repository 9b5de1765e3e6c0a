// docs/protocol.md §2.4: disabling, deleting or rotating a robot closes its open
// connections at once and voids its cached tokens; deactivating or deleting a
// user closes theirs. Everybody else stays connected and keeps being served.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { closedByServer, connect, connectRobot, connectUser, messageWhere, refusedWith, robotToken, sendFrame, suback, TRANSPORTS, type Transport } from '../mqtt.js'

const NOT_AUTHORIZED = 5

async function manage (app: FastifyInstance, staff: TestUser, method: InjectOptions['method'], url: string, payload?: Record<string, unknown>) {
  return await app.inject({ method, url, headers: bearer(staff.jwt), ...(payload === undefined ? {} : { payload }) })
}

/** Counts reconnect attempts, which must stay at zero (reconnectPeriod is 0). */
function reconnects (client: MqttClient): () => number {
  let count = 0
  client.on('reconnect', () => { count++ })
  return () => count
}

/** A robot connection subscribed to its ack topic, ready to send frames. */
async function liveRobot (t: Test, app: FastifyInstance, robot: TestRobot, transport: Transport, password?: string): Promise<MqttClient> {
  const client = password === undefined
    ? await connectRobot(t, app, robot, { transport })
    : await connect(t, app, { transport, username: robot.uuid, password })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  return client
}

async function servedFrame (t: Test, client: MqttClient, robot: TestRobot, msg: string): Promise<void> {
  const id = randomUUID()
  t.same(await sendFrame(client, robot.uuid, id), { id, status: 'ok' }, msg)
}

const robotRevocations: Array<[string, (app: FastifyInstance, staff: TestUser, robot: TestRobot) => Promise<void>]> = [
  ['disabling', async (app, staff, robot) => {
    const res = await manage(app, staff, 'PATCH', `/admin/api/robots/${robot.uuid}`, { enabled: false })
    if (res.statusCode !== 200) throw new Error(`PATCH answered ${res.statusCode}`)
  }],
  ['deleting', async (app, staff, robot) => {
    const res = await manage(app, staff, 'DELETE', `/admin/api/robots/${robot.uuid}`)
    if (res.statusCode !== 204) throw new Error(`DELETE answered ${res.statusCode}`)
  }],
  ['rotating the secret of', async (app, staff, robot) => {
    const res = await manage(app, staff, 'POST', `/admin/api/robots/${robot.uuid}/rotate_token`)
    if (res.statusCode !== 200) throw new Error(`rotate_token answered ${res.statusCode}`)
    robot.secret = res.json().token as string
  }]
]

for (const transport of TRANSPORTS) {
  t.test(`over ${transport}`, async (t) => {
    for (const [action, revoke] of robotRevocations) {
      t.test(`${action} a robot closes its connections at once and voids its token`, async (t) => {
        const app = await build(t)
        const staff = await createStaff(app)
        const robot = await createRobot(app)
        const bystander = await createRobot(app)
        const token = await robotToken(app, robot)
        // The original robot's two channels: data (acks) and commands.
        const data = await liveRobot(t, app, robot, transport, token)
        const command = await connect(t, app, { transport, username: robot.uuid, password: token })
        t.same(await suback(command, `robots/${robot.uuid}/commands`), [1])
        const other = await liveRobot(t, app, bystander, transport)
        await servedFrame(t, data, robot, 'the robot is served before')
        const attempts = [reconnects(data), reconnects(command)]
        const gone = Promise.all([closedByServer(data), closedByServer(command)])

        await revoke(app, staff, robot)
        await gone
        t.notOk(data.connected, 'the data connection is closed')
        t.notOk(command.connected, 'the command connection is closed')
        t.same(attempts.map((n) => n()), [0, 0], 'no reconnect attempt')
        t.notOk(data.reconnecting || command.reconnecting, 'not reconnecting')

        t.equal(await refusedWith(t, app, { transport, username: robot.uuid, password: token }), NOT_AUTHORIZED, 'the old token gets CONNACK 5 (revoked)')

        t.ok(other.connected, 'another robot stays connected')
        await servedFrame(t, other, bystander, 'another robot still gets its acks')

        const login = await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial: robot.serial, token: robot.secret } })
        if (action === 'rotating the secret of') {
          t.equal(login.statusCode, 201, 'the new secret obtains a token')
          const fresh = await liveRobot(t, app, robot, transport, login.json().access_token as string)
          await servedFrame(t, fresh, robot, 'the robot is served again with its new secret')
        } else {
          t.equal(login.statusCode, 401, 'the robot cannot obtain a new token')
        }
      })
    }

    const userRevocations: Array<[string, InjectOptions['method'], Record<string, unknown> | undefined, number, number]> = [
      ['deactivating', 'PATCH', { is_active: false }, 200, NOT_AUTHORIZED],
      ['deleting', 'DELETE', undefined, 204, NOT_AUTHORIZED]
    ]
    for (const [action, method, payload, status, connack] of userRevocations) {
      t.test(`${action} a user closes their connections at once`, async (t) => {
        const app = await build(t)
        const staff = await createStaff(app)
        const alice = await createUser(app)
        const bob = await createUser(app)
        const robot = await createRobot(app)
        await grant(app, alice, robot)
        await grant(app, bob, robot)
        const stats = `robots/${robot.uuid}/stats`
        const aliceClients = [await connectUser(t, app, alice, { transport }), await connectUser(t, app, alice, { transport })]
        const bobClient = await connectUser(t, app, bob, { transport })
        for (const c of [...aliceClients, bobClient]) t.same(await suback(c, stats), [1])
        const robotClient = await liveRobot(t, app, robot, transport)
        const attempts = aliceClients.map(reconnects)
        const gone = Promise.all(aliceClients.map(closedByServer))

        const res = await manage(app, staff, method, `/admin/api/users/${alice.id}`, payload)
        t.equal(res.statusCode, status)
        await gone
        t.ok(aliceClients.every((c) => !c.connected), 'both of the user’s connections are closed')
        t.same(attempts.map((n) => n()), [0, 0], 'no reconnect attempt')
        t.equal(await refusedWith(t, app, { transport, username: alice.username, password: alice.jwt }), connack, `the user's JWT now gets CONNACK ${connack}`)

        t.ok(bobClient.connected, 'another user stays connected')
        const seen = messageWhere(bobClient, stats, (s) => s.position_x === 10)
        await servedFrame(t, robotClient, robot, 'the robot is still served')
        t.match(await seen, { robot_uuid: robot.uuid }, 'another user still gets the stats')
      })
    }
  })
}
