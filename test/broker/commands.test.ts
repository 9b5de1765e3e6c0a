// docs/protocol.md §5 over the real broker: POST /robots/robot/command publishes on
// robots/{uuid}/commands (QoS 1); the robot's PUBACK makes it delivered, its
// commands/ack makes it done (state follows) or failed; no ack → expired.
// 409 follows the robot's real command connection.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { MAX_COMMAND_ACK_BYTES } from '../../src/contract/messages.js'
import type { CommandStatus } from '../../src/contract/payloads.js'
import { bearer, build } from '../helper.js'
import { createRobot, grant, ownedRobot, type TestRobot, type TestUser } from '../factory.js'
import { connectRobot, connectUser, eventually, messageWhere, nextMessage, suback, subscribe, TRANSPORTS, type Transport } from '../mqtt.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const commandsTopic = (uuid: string): string => `robots/${uuid}/commands`
const commandAckTopic = (uuid: string): string => `robots/${uuid}/commands/ack`
const statsTopic = (uuid: string): string => `robots/${uuid}/stats`
const presenceTopic = (uuid: string): string => `robots/${uuid}/presence`

interface CommandItem { id: string, robot_uuid: string, command: string, status: CommandStatus, issued_by: string, created_at: string, delivered_at: string | null, acked_at: string | null }

async function sendCommand (app: FastifyInstance, user: TestUser, uuid: string, command: string) {
  return await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: uuid, command } })
}

/** Issues a command that must be accepted; resolves with its id. */
async function issue (app: FastifyInstance, user: TestUser, uuid: string, command: string): Promise<string> {
  const res = await sendCommand(app, user, uuid, command)
  if (res.statusCode !== 201) throw new Error(`command not created: ${res.statusCode} ${res.body}`)
  return res.json().id as string
}

async function commandById (app: FastifyInstance, user: TestUser, uuid: string, id: string): Promise<CommandItem | undefined> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}/commands?limit=1000`, headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET commands: ${res.statusCode} ${res.body}`)
  return (res.json().items as CommandItem[]).find((c) => c.id === id)
}

/** Polls the REST endpoint until the command reaches `status`. */
async function statusBecomes (app: FastifyInstance, user: TestUser, uuid: string, id: string, status: CommandStatus, timeoutMs = 5000): Promise<CommandItem> {
  return await eventually(async () => await commandById(app, user, uuid, id), (c) => c?.status === status, timeoutMs) as CommandItem
}

async function robotState (app: FastifyInstance, user: TestUser, uuid: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}`, headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET robot: ${res.statusCode} ${res.body}`)
  return res.json().state as string
}

/** A robot connected and subscribed (QoS 1) to its commands. */
async function commandRobot (t: Test, app: FastifyInstance, robot: TestRobot, transport: Transport): Promise<MqttClient> {
  const client = await connectRobot(t, app, robot, { transport })
  client.on('error', () => {})
  t.same(await subscribe(client, commandsTopic(robot.uuid), 1), [1], 'commands subscription granted QoS 1')
  return client
}

/**
 * Watches the robots' command acks as the broker hands them to the service:
 * `next(i)` resolves with what the i-th call returned (null = ignored).
 */
function watchAcknowledge (t: Test, app: FastifyInstance) {
  const commands = app.services.commands
  const original = commands.acknowledge
  const results: Array<Promise<CommandStatus | null>> = []
  const waiters: Array<() => void> = []
  commands.acknowledge = async (...args: Parameters<typeof original>) => {
    const result = original(...args)
    results.push(result)
    for (const wake of waiters.splice(0)) wake()
    return await result
  }
  t.teardown(() => { commands.acknowledge = original })
  return {
    get calls (): number { return results.length },
    async next (i: number): Promise<CommandStatus | null> {
      while (results.length <= i) await new Promise<void>((resolve) => { waiters.push(resolve) })
      return await (results[i] as Promise<CommandStatus | null>)
    }
  }
}

const NOT_CONNECTED = { statusCode: 409, error: 'Conflict', code: 'ROBOT_NOT_CONNECTED', message: 'robot is not connected' }

for (const transport of TRANSPORTS) {
  t.test(`a command over ${transport}: pending → delivered (PUBACK) → done, and the state follows`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const watcher = await connectUser(t, app, user, { transport })
    await subscribe(watcher, statsTopic(robot.uuid), 0)
    const client = await commandRobot(t, app, robot, transport)

    const received = nextMessage(client, commandsTopic(robot.uuid))
    const res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 201)
    const created = res.json()
    t.match(created, { id: String, robot_uuid: robot.uuid, command: 'auto', status: 'pending', created_at: ISO })

    t.same(await received, { id: created.id, command: 'auto', issued_by: user.username, issued_at: created.created_at }, 'the robot receives the command')
    const delivered = await statusBecomes(app, user, robot.uuid, created.id, 'delivered')
    t.match(delivered, { robot_uuid: robot.uuid, command: 'auto', issued_by: user.username, delivered_at: ISO, acked_at: null }, 'delivered after the PUBACK')
    t.equal(await robotState(app, user, robot.uuid), 'idle', 'the state changes only with the ack')

    const stats = messageWhere(watcher, statsTopic(robot.uuid), (s) => s.state === 'auto')
    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id: created.id, status: 'ok', state: 'auto' }), { qos: 1 })
    const done = await statusBecomes(app, user, robot.uuid, created.id, 'done')
    t.match(done, { delivered_at: ISO, acked_at: ISO })
    t.ok(Date.parse(done.delivered_at as string) <= Date.parse(done.acked_at as string), 'delivered no later than acked')
    t.equal(await robotState(app, user, robot.uuid), 'auto', 'the robot state is the command')
    t.match(await stats, { robot_uuid: robot.uuid, state: 'auto', data_connected: true, command_connected: true }, 'live statistics show the new state')

    // A second ack of a closed command changes nothing.
    const acks = watchAcknowledge(t, app)
    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id: created.id, status: 'error', message: 'late' }), { qos: 1 })
    t.equal(await acks.next(0), null, 'an ack for a closed command is ignored')
    t.equal((await commandById(app, user, robot.uuid, created.id))?.status, 'done')
  })

  t.test(`a command acked with an error over ${transport} is failed and the state stays`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const client = await commandRobot(t, app, robot, transport)
    const received = nextMessage(client, commandsTopic(robot.uuid))
    const id = await issue(app, user, robot.uuid, 'manual')
    t.match(await received, { id, command: 'manual' })
    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id, status: 'error', message: 'joystick not found' }), { qos: 1 })
    const failed = await statusBecomes(app, user, robot.uuid, id, 'failed')
    t.match(failed, { delivered_at: ISO, acked_at: ISO })
    t.equal(await robotState(app, user, robot.uuid), 'idle', 'state unchanged')
  })

  t.test(`a command never acked over ${transport} expires after COMMAND_TIMEOUT`, async (t) => {
    const app = await build(t, { COMMAND_TIMEOUT: '0.5' })
    const { user, robot } = await ownedRobot(app)
    const client = await commandRobot(t, app, robot, transport)
    const received = nextMessage(client, commandsTopic(robot.uuid))
    const id = await issue(app, user, robot.uuid, 'error')
    await received
    const expired = await statusBecomes(app, user, robot.uuid, id, 'expired', 5000)
    t.equal(expired.acked_at, null)
    // An ack after expiry is too late.
    const acks = watchAcknowledge(t, app)
    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
    t.equal(await acks.next(0), null, 'a late ack is ignored')
    t.equal((await commandById(app, user, robot.uuid, id))?.status, 'expired')
    t.equal(await robotState(app, user, robot.uuid), 'idle')
  })

  t.test(`409 over ${transport} follows the robot's real command connection`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const presence = await connectUser(t, app, user, { transport })
    await subscribe(presence, presenceTopic(robot.uuid), 0)

    let res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 409, 'not connected at all')
    t.match(res.json(), NOT_CONNECTED)

    const client = await connectRobot(t, app, robot, { transport })
    client.on('error', () => {})
    res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 409, 'connected, but not subscribed to its commands')
    t.match(res.json(), NOT_CONNECTED)

    // A subscription the ACL refuses does not count.
    t.same(await suback(client, 'robots/+/commands', 1), [128])
    t.equal((await sendCommand(app, user, robot.uuid, 'auto')).statusCode, 409, 'a refused wildcard subscription is not a command connection')

    await subscribe(client, commandsTopic(robot.uuid), 1)
    res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 201, 'accepted as soon as the SUBACK arrives')

    await client.unsubscribeAsync(commandsTopic(robot.uuid))
    res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 409, 'unsubscribed: not connected again')
    t.match(res.json(), NOT_CONNECTED)

    await subscribe(client, commandsTopic(robot.uuid), 1)
    t.equal((await sendCommand(app, user, robot.uuid, 'idle')).statusCode, 201, 'subscribed again')

    const offline = messageWhere(presence, presenceTopic(robot.uuid), (p) => p.online === false)
    await client.endAsync()
    await offline
    res = await sendCommand(app, user, robot.uuid, 'auto')
    t.equal(res.statusCode, 409, 'disconnected: not connected again')
    t.match(res.json(), NOT_CONNECTED)

    // A connection lost without DISCONNECT counts as well.
    const again = await commandRobot(t, app, robot, transport)
    t.equal((await sendCommand(app, user, robot.uuid, 'auto')).statusCode, 201)
    const lost = messageWhere(presence, presenceTopic(robot.uuid), (p) => p.online === false)
    again.end(true)
    await lost
    t.equal((await sendCommand(app, user, robot.uuid, 'auto')).statusCode, 409, 'connection lost: not connected')
  })

  t.test(`a robot acking another robot's command over ${transport} is ignored`, async (t) => {
    const app = await build(t)
    const { user, robot: mine } = await ownedRobot(app)
    const other = await createRobot(app)
    await grant(app, user, other)
    const mineClient = await commandRobot(t, app, mine, transport)
    const otherClient = await commandRobot(t, app, other, transport)
    const acks = watchAcknowledge(t, app)

    const received = nextMessage(mineClient, commandsTopic(mine.uuid))
    const id = await issue(app, user, mine.uuid, 'auto')
    await received
    await statusBecomes(app, user, mine.uuid, id, 'delivered')

    await otherClient.publishAsync(commandAckTopic(other.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
    t.equal(await acks.next(0), null, "the other robot's ack is ignored")
    t.equal((await commandById(app, user, mine.uuid, id))?.status, 'delivered', 'status unchanged')
    t.equal(await robotState(app, user, mine.uuid), 'idle')
    t.equal(await robotState(app, user, other.uuid), 'idle')

    await mineClient.publishAsync(commandAckTopic(mine.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
    t.equal(await acks.next(1), 'done', 'its own robot may still ack it')
    t.equal(await robotState(app, user, mine.uuid), 'auto')
    t.equal(await robotState(app, user, other.uuid), 'idle')
  })

  t.test(`malformed command acks over ${transport} are ignored`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const client = await commandRobot(t, app, robot, transport)
    const acks = watchAcknowledge(t, app)
    const received = nextMessage(client, commandsTopic(robot.uuid))
    const id = await issue(app, user, robot.uuid, 'auto')
    await received
    await statusBecomes(app, user, robot.uuid, id, 'delivered')

    const malformed: Array<string | Buffer> = [
      'not json',
      '',
      Buffer.from([0xff, 0x00, 0xfe]),
      'null',
      '[]',
      '"ok"',
      JSON.stringify({ status: 'ok' }),
      JSON.stringify({ id }),
      JSON.stringify({ id: 42, status: 'ok' }),
      JSON.stringify({ id, status: 'done' }),
      JSON.stringify({ id, status: 'OK' }),
      JSON.stringify({ id, status: 'ok', message: { nested: true } }),
      JSON.stringify({ id, status: 'ok', pad: 'x'.repeat(MAX_COMMAND_ACK_BYTES) }), // over the size limit
      '{"id":' + '['.repeat(10_000)
    ]
    for (const payload of malformed) await client.publishAsync(commandAckTopic(robot.uuid), payload, { qos: 1 })
    t.ok(client.connected, 'the robot stays connected')
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'the process is fine')

    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
    t.equal(await acks.next(0), 'done', 'the well-formed ack is recorded')
    t.equal(acks.calls, 1, 'none of the malformed acks reached the service')
    t.equal(await robotState(app, user, robot.uuid), 'auto')
  })
}

t.test('acks that name no open command are ignored: not a UUID, an unknown UUID, a command already done', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const client = await commandRobot(t, app, robot, 'tcp')
  const acks = watchAcknowledge(t, app)
  const received = nextMessage(client, commandsTopic(robot.uuid))
  const id = await issue(app, user, robot.uuid, 'manual')
  await received
  await statusBecomes(app, user, robot.uuid, id, 'delivered')

  const ack = async (ackId: string, status = 'ok'): Promise<void> => {
    await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id: ackId, status }), { qos: 1 })
  }
  await ack('not-a-uuid')
  t.equal(await acks.next(0), null, 'an id that is not a UUID names no command')
  await ack("x' OR '1'='1")
  t.equal(await acks.next(1), null, 'nor does SQL')
  await ack(randomUUID())
  t.equal(await acks.next(2), null, 'an unknown UUID is ignored')
  t.equal((await commandById(app, user, robot.uuid, id))?.status, 'delivered', 'the open command is untouched')

  await ack(id.toUpperCase(), 'error')
  t.equal(await acks.next(3), 'failed', 'its id in capitals names it too')
  await ack(id)
  t.equal(await acks.next(4), null, 'a command already acknowledged is not acknowledged again')
  const row = await commandById(app, user, robot.uuid, id)
  t.equal(row?.status, 'failed', 'the first ack stands')
  t.equal(await robotState(app, user, robot.uuid), 'idle', 'the state did not follow the late ok')
  t.ok(client.connected, 'the robot stays connected')
})

t.test('a command reaches the command connection of a robot with two connections', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const data = await connectRobot(t, app, robot, { transport: 'tcp' })
  const command = await commandRobot(t, app, robot, 'ws')
  const received = nextMessage(command, commandsTopic(robot.uuid))
  let onData = 0
  data.on('message', () => { onData++ })
  const id = await issue(app, user, robot.uuid, 'idle')
  t.match(await received, { id, command: 'idle' })
  await statusBecomes(app, user, robot.uuid, id, 'delivered')
  t.equal(onData, 0, 'nothing on the data connection')
})

t.test('a robot with a persistent session (clean: false) gets its commands delivered too', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot, { clean: false, clientId: `robot-${robot.uuid}` })
  client.on('error', () => {})
  await subscribe(client, commandsTopic(robot.uuid), 1)
  const received = nextMessage(client, commandsTopic(robot.uuid))
  const id = await issue(app, user, robot.uuid, 'auto')
  t.match(await received, { id, command: 'auto' })
  await statusBecomes(app, user, robot.uuid, id, 'delivered')
  await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
  await statusBecomes(app, user, robot.uuid, id, 'done')
  t.equal(await robotState(app, user, robot.uuid), 'auto')
})

t.test('a robot subscribed with QoS 0 sends no PUBACK: its ack makes the command delivered and done at once', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  t.same(await subscribe(client, commandsTopic(robot.uuid), 0), [0])
  const acks = watchAcknowledge(t, app)
  const received = nextMessage(client, commandsTopic(robot.uuid))
  const id = await issue(app, user, robot.uuid, 'manual')
  t.match(await received, { id, command: 'manual' })
  await client.publishAsync(commandAckTopic(robot.uuid), JSON.stringify({ id, status: 'ok' }), { qos: 1 })
  t.equal(await acks.next(0), 'done')
  const done = await commandById(app, user, robot.uuid, id)
  t.match(done, { status: 'done', delivered_at: ISO, acked_at: ISO })
  t.equal(done?.delivered_at, done?.acked_at, 'delivered when acked')
})
