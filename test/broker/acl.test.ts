// docs/protocol.md §3, access rules, with real mqtt.js clients over TCP and WebSocket:
// every rule both ways, cross-user isolation on `+` subscriptions, and a
// revoked grant that stops delivery without a reconnect.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { closedByServer, collect, connectRobot, connectUser, messageWhere, positionFrame, sendFrame, suback, TRANSPORTS, type Transport } from '../mqtt.js'

const REFUSED = 128
const topic = (robot: TestRobot, channel: string): string => `robots/${robot.uuid}/${channel}`

/** A robot connection subscribed to its own ack topic, ready to send frames. */
async function liveRobot (t: Test, app: FastifyInstance, robot: TestRobot, transport: Transport): Promise<MqttClient> {
  const client = await connectRobot(t, app, robot, { transport })
  t.same(await suback(client, topic(robot, 'ack')), [1], 'the robot subscribes to its ack topic')
  return client
}

/** Sends a frame and checks it was stored (acked ok). */
async function stored (t: Test, client: MqttClient, robot: TestRobot, extra: Record<string, unknown> = {}): Promise<void> {
  const id = randomUUID()
  t.same(await sendFrame(client, robot.uuid, id, extra), { id, status: 'ok' }, 'the frame is acked ok')
}

/** The next stats message of `robot` on this client whose position_x is `x`. */
async function statsWith (client: MqttClient, robot: TestRobot, x: number): Promise<Record<string, unknown>> {
  return await messageWhere(client, topic(robot, 'stats'), (body) => body.position_x === x)
}

async function manage (app: FastifyInstance, staff: TestUser, method: 'PUT' | 'DELETE', url: string): Promise<number> {
  return (await app.inject({ method, url, headers: bearer(staff.jwt) })).statusCode
}

for (const transport of TRANSPORTS) {
  t.test(`over ${transport}`, async (t) => {
    t.test('a robot subscribes to its own ack and commands, and to nothing else', async (t) => {
      const app = await build(t)
      const robot = await createRobot(app)
      const other = await createRobot(app)
      const client = await connectRobot(t, app, robot, { transport })
      const seen = collect(client, () => true)

      t.same(await suback(client, topic(robot, 'ack')), [1], 'own ack')
      t.same(await suback(client, topic(robot, 'commands')), [1], 'own commands')
      t.same(await suback(client, topic(robot, 'ack'), 0), [0], 'the granted QoS is the requested one')

      for (const channel of ['data', 'stats', 'presence', 'commands/ack']) {
        t.same(await suback(client, topic(robot, channel)), [REFUSED], `own ${channel} → 0x80`)
      }
      for (const channel of ['ack', 'commands', 'data', 'stats']) {
        t.same(await suback(client, topic(other, channel)), [REFUSED], `another robot's ${channel} → 0x80`)
      }
      const wildcards = ['robots/+/ack', 'robots/+/commands', `robots/${robot.uuid}/+`, `robots/${robot.uuid}/#`, 'robots/#', '#', '+/+/ack', '$SYS/#', 'foo']
      for (const filter of wildcards) {
        t.same(await suback(client, filter), [REFUSED], `${filter} → 0x80`)
      }
      t.same(await suback(client, [topic(robot, 'commands'), topic(other, 'ack'), '#']), [1, REFUSED, REFUSED], 'one SUBACK answers each filter of a SUBSCRIBE')

      // The refused subscriptions deliver nothing: the other robot's ack stays its own.
      const otherClient = await liveRobot(t, app, other, transport)
      await stored(t, otherClient, other)
      await stored(t, client, robot)
      t.ok(client.connected, 'a refused subscription does not close the connection')
      t.same([...new Set(seen.map((m) => m.topic))], [topic(robot, 'ack')], 'the robot received only its own acks')
    })

    t.test('a robot publishes to its own data and commands/ack', async (t) => {
      const app = await build(t)
      const owner = await createUser(app)
      const robot = await createRobot(app)
      await grant(app, owner, robot)
      const watcher = await connectUser(t, app, owner, { transport })
      t.same(await suback(watcher, topic(robot, 'stats')), [1])
      const client = await liveRobot(t, app, robot, transport)
      t.same(await suback(client, topic(robot, 'commands')), [1])

      await stored(t, client, robot)
      const command = messageWhere(client, topic(robot, 'commands'), () => true)
      const issued = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(owner.jwt), payload: { robot_uuid: robot.uuid, command: 'manual' } })
      t.equal(issued.statusCode, 201, 'a command is issued')
      t.equal((await command).id, issued.json().id, 'the robot receives it')
      const done = messageWhere(watcher, topic(robot, 'stats'), (s) => s.state === 'manual')
      await client.publishAsync(topic(robot, 'commands/ack'), JSON.stringify({ id: issued.json().id, status: 'ok', state: 'manual' }), { qos: 1 })
      await done
      t.pass('the commands/ack publish is accepted and the robot’s state becomes the command')
      await stored(t, client, robot)
      t.ok(client.connected, 'the robot is still connected')
    })

    t.test('a robot publishing anywhere else is disconnected', async (t) => {
      const app = await build(t)
      const robot = await createRobot(app)
      const other = await createRobot(app)
      const watcher = await liveRobot(t, app, other, transport)
      const otherAcks = collect(watcher, (tp) => tp === topic(other, 'ack'))
      const forbidden = [topic(other, 'data'), topic(other, 'commands/ack'), topic(robot, 'ack'), topic(robot, 'stats'), topic(robot, 'presence'), topic(robot, 'commands'), 'foo', '$SYS/broker/x']
      for (const target of forbidden) {
        const client = await connectRobot(t, app, robot, { transport })
        const gone = closedByServer(client)
        client.publish(target, positionFrame(randomUUID()), { qos: 1 }, () => {})
        await gone
        t.notOk(client.connected, `publishing to ${target} closes the connection`)
      }
      await stored(t, watcher, other)
      t.equal(otherAcks.length, 1, "the frame published to the other robot's data was not taken as its frame")
      const owner = await createUser(app)
      await grant(app, owner, other)
      const frames = await app.inject({ method: 'GET', url: `/robots/${other.uuid}/frames`, headers: bearer(owner.jwt) })
      t.equal(frames.statusCode, 200)
      t.equal(frames.json().items.length, 1, 'only the other robot’s own frame is stored')
    })

    t.test('a user subscribes to stats and presence of robots they can access, and to nothing else', async (t) => {
      const app = await build(t)
      const alice = await createUser(app)
      const mine = await createRobot(app)
      const notMine = await createRobot(app)
      await grant(app, alice, mine)
      const client = await connectUser(t, app, alice, { transport })

      t.same(await suback(client, topic(mine, 'stats')), [1], 'stats of a granted robot')
      t.same(await suback(client, topic(mine, 'presence')), [1], 'presence of a granted robot')
      t.same(await suback(client, 'robots/+/stats'), [1], 'robots/+/stats')
      t.same(await suback(client, 'robots/+/presence', 0), [0], 'robots/+/presence')
      t.same(await suback(client, topic(notMine, 'stats')), [REFUSED], 'stats of a robot not granted → 0x80')
      t.same(await suback(client, topic(notMine, 'presence')), [REFUSED], 'presence of a robot not granted → 0x80')
      for (const channel of ['data', 'ack', 'commands', 'commands/ack']) {
        t.same(await suback(client, topic(mine, channel)), [REFUSED], `${channel} of a granted robot → 0x80`)
        t.same(await suback(client, `robots/+/${channel}`), [REFUSED], `robots/+/${channel} → 0x80`)
      }
      for (const filter of ['#', 'robots/#', `robots/${mine.uuid}/+`, `robots/${mine.uuid}/#`, '+/+/stats', '$SYS/#', '$SYS/+/heartbeat', 'foo']) {
        t.same(await suback(client, filter), [REFUSED], `${filter} → 0x80`)
      }
      t.ok(client.connected, 'refused subscriptions leave the user connected')
    })

    t.test('robots/+/stats and robots/+/presence deliver only the user’s own robots', async (t) => {
      const app = await build(t)
      const alice = await createUser(app)
      const bob = await createUser(app)
      const a = await createRobot(app)
      const b = await createRobot(app)
      await grant(app, alice, a)
      await grant(app, bob, b)
      const aliceClient = await connectUser(t, app, alice, { transport })
      const bobClient = await connectUser(t, app, bob, { transport })
      t.same(await suback(aliceClient, ['robots/+/stats', 'robots/+/presence']), [1, 1])
      t.same(await suback(bobClient, ['robots/+/stats', 'robots/+/presence']), [1, 1])
      const aliceSaw = collect(aliceClient, () => true)
      const bobSaw = collect(bobClient, () => true)

      // Presence: b connects first, then a; alice sees a online, so b's came (or not) before.
      const aliceOnline = messageWhere(aliceClient, topic(a, 'presence'), (p) => p.online === true)
      const bRobot = await liveRobot(t, app, b, transport)
      const aRobot = await liveRobot(t, app, a, transport)
      await aliceOnline
      // Stats: a1, b1, a2, b2 — each user waits for the last frame of their own robot.
      const lastOfEach = Promise.all([statsWith(aliceClient, a, 2), statsWith(bobClient, b, 2)])
      await stored(t, aRobot, a, { position_x: 1 })
      await stored(t, bRobot, b, { position_x: 1 })
      await stored(t, aRobot, a, { position_x: 2 })
      await stored(t, bRobot, b, { position_x: 2 })
      const [aliceLast, bobLast] = await lastOfEach
      t.match(aliceLast, { robot_uuid: a.uuid, position_x: 2 })
      t.match(bobLast, { robot_uuid: b.uuid, position_x: 2 })

      t.ok(aliceSaw.length > 0 && aliceSaw.every((m) => m.topic.startsWith(`robots/${a.uuid}/`)), 'alice saw only her robot')
      t.ok(bobSaw.length > 0 && bobSaw.every((m) => m.topic.startsWith(`robots/${b.uuid}/`)), 'bob saw only his robot')
      t.ok(aliceSaw.some((m) => m.topic === topic(a, 'stats') && m.body.position_x === 1), 'alice saw each stats of her robot')
      t.ok(bobSaw.some((m) => m.topic === topic(b, 'presence')), 'bob saw his robot’s presence')

      // A user who subscribes later gets the retained stats of their robots only.
      const late = await connectUser(t, app, alice, { transport })
      const lateSaw = collect(late, () => true)
      const retained = statsWith(late, a, 2)
      t.same(await suback(late, 'robots/+/stats'), [1])
      await retained
      await stored(t, bRobot, b, { position_x: 3 })
      const live = statsWith(late, a, 3)
      await stored(t, aRobot, a, { position_x: 3 })
      await live
      t.ok(lateSaw.every((m) => m.topic === topic(a, 'stats')), 'no retained or live stats of bob’s robot')
    })

    t.test('a user may publish nothing', async (t) => {
      const app = await build(t)
      const alice = await createUser(app)
      const staff = await createStaff(app)
      const robot = await createRobot(app)
      await grant(app, alice, robot)
      for (const [who, target] of [[alice, topic(robot, 'data')], [alice, topic(robot, 'stats')], [alice, topic(robot, 'commands')], [alice, topic(robot, 'presence')], [alice, 'foo'], [staff, topic(robot, 'commands')], [staff, 'foo']] as const) {
        const client = await connectUser(t, app, who, { transport })
        const gone = closedByServer(client)
        client.publish(target, JSON.stringify({ id: 'x', command: 'idle' }), { qos: 1 }, () => {})
        await gone
        t.notOk(client.connected, `${who.isStaff ? 'staff' : 'a user'} publishing to ${target} is disconnected`)
      }
      const staffQos0 = await connectUser(t, app, staff, { transport })
      const gone = closedByServer(staffQos0)
      staffQos0.publish('foo', 'bar', { qos: 0 })
      await gone
      t.pass('a QoS 0 publish is refused the same way')
    })

    t.test('staff watch every robot and $SYS; robots and users may not', async (t) => {
      const app = await build(t)
      const staff = await createStaff(app)
      const alice = await createUser(app)
      const a = await createRobot(app)
      const b = await createRobot(app)
      const staffClient = await connectUser(t, app, staff, { transport })
      t.same(await suback(staffClient, 'robots/+/stats'), [1], 'robots/+/stats')
      t.same(await suback(staffClient, topic(a, 'presence')), [1], 'presence of any robot')
      t.same(await suback(staffClient, '$SYS/#'), [1], '$SYS/# is granted to staff')
      t.same(await suback(staffClient, topic(a, 'data')), [REFUSED], 'staff may not read data either')
      t.same(await suback(staffClient, topic(a, 'commands')), [REFUSED], 'nor commands')

      const aliceClient = await connectUser(t, app, alice, { transport })
      t.same(await suback(aliceClient, '$SYS/#'), [REFUSED], '$SYS/# is refused to users')
      const aRobot = await liveRobot(t, app, a, transport)
      const bRobot = await liveRobot(t, app, b, transport)
      t.same(await suback(aRobot, '$SYS/#'), [REFUSED], '$SYS/# is refused to robots')

      const both = Promise.all([statsWith(staffClient, a, 7), statsWith(staffClient, b, 8)])
      await stored(t, aRobot, a, { position_x: 7 })
      await stored(t, bRobot, b, { position_x: 8 })
      const [sa, sb] = await both
      t.match(sa, { robot_uuid: a.uuid, position_x: 7 }, 'staff see the first robot')
      t.match(sb, { robot_uuid: b.uuid, position_x: 8 }, 'staff see the second robot')
    })

    t.test('a revoked grant stops delivery at once, without a reconnect; a new grant starts it', async (t) => {
      const app = await build(t)
      const staff = await createStaff(app)
      const alice = await createUser(app)
      const a = await createRobot(app)
      const b = await createRobot(app)
      await grant(app, alice, a)
      await grant(app, alice, b)
      const wildcard = await connectUser(t, app, alice, { transport })
      const exact = await connectUser(t, app, alice, { transport })
      t.same(await suback(wildcard, 'robots/+/stats'), [1])
      t.same(await suback(exact, [topic(a, 'stats'), topic(b, 'stats')]), [1, 1])
      const aRobot = await liveRobot(t, app, a, transport)
      const bRobot = await liveRobot(t, app, b, transport)

      let x = 0
      const before = Promise.all([statsWith(wildcard, a, ++x), statsWith(exact, a, x)])
      await stored(t, aRobot, a, { position_x: x })
      await before
      t.pass('alice receives her robot’s stats on both subscriptions')

      t.equal(await manage(app, staff, 'DELETE', `/admin/api/robots/${a.uuid}/users/${alice.id}`), 204, 'staff revoke the grant')
      const aAfter = x + 1
      const leakedWildcard = collect(wildcard, (tp) => tp === topic(a, 'stats'))
      const leakedExact = collect(exact, (tp) => tp === topic(a, 'stats'))
      const sync = Promise.all([statsWith(wildcard, b, 100), statsWith(exact, b, 100)])
      await stored(t, aRobot, a, { position_x: aAfter })
      await stored(t, bRobot, b, { position_x: 100 })
      await sync
      t.same(leakedWildcard, [], 'no stats of the revoked robot on robots/+/stats')
      t.same(leakedExact, [], 'no stats of the revoked robot on its exact topic')
      t.ok(wildcard.connected && exact.connected, 'alice stays connected')

      t.equal(await manage(app, staff, 'PUT', `/admin/api/robots/${a.uuid}/users/${alice.id}`), 204, 'staff grant it again')
      const again = Promise.all([statsWith(wildcard, a, 200), statsWith(exact, a, 200)])
      await stored(t, aRobot, a, { position_x: 200 })
      await again
      t.pass('delivery starts again without a reconnect')
      t.equal(leakedWildcard.length, 1, 'the only stats of that robot seen since revocation is the one after the new grant')
    })
  })
}
