// docs/protocol.md §3.3 presence: retained on robots/{uuid}/presence and republished on
// every change; data-connected while the robot has an open connection,
// command-connected while one of them subscribes to its commands; the
// robot's row (GET /robots/{uuid}) follows.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, ownedRobot, type TestRobot, type TestUser } from '../factory.js'
import { connectRobot, connectUser, eventually, messageWhere, subscribe, TRANSPORTS } from '../mqtt.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const presenceTopic = (uuid: string): string => `robots/${uuid}/presence`
const commandsTopic = (uuid: string): string => `robots/${uuid}/commands`

interface Presence { robot_uuid: string, online: boolean, data_connected: boolean, command_connected: boolean, since: string }
interface RobotRow { uuid: string, data_connected: boolean, command_connected: boolean, last_seen_at: string | null }

/** The next presence message with its retain flag. */
async function nextPresence (client: MqttClient, uuid: string, match: (p: Presence) => boolean = () => true): Promise<{ body: Presence, retain: boolean }> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.off('message', onMessage); reject(new Error('no presence message within 5 s')) }, 5000)
    function onMessage (topic: string, payload: Buffer, packet: { retain: boolean }): void {
      if (topic !== presenceTopic(uuid)) return
      const body = JSON.parse(payload.toString()) as Presence
      if (!match(body)) return
      clearTimeout(timer)
      client.off('message', onMessage)
      resolve({ body, retain: packet.retain })
    }
    client.on('message', onMessage)
  })
}

async function robotRow (app: FastifyInstance, user: TestUser, uuid: string): Promise<RobotRow> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}`, headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET robot: ${res.statusCode} ${res.body}`)
  return res.json() as RobotRow
}

/** Polls the robot's row until its connection flags are these (the row is written asynchronously). */
async function rowBecomes (app: FastifyInstance, user: TestUser, uuid: string, flags: { data_connected: boolean, command_connected: boolean }): Promise<RobotRow> {
  return await eventually(async () => await robotRow(app, user, uuid), (r) => r.data_connected === flags.data_connected && r.command_connected === flags.command_connected)
}

for (const transport of TRANSPORTS) {
  t.test(`presence over ${transport}: retained, one connection for data and commands`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const staff = await createStaff(app)

    const before = await robotRow(app, user, robot.uuid)
    t.match(before, { data_connected: false, command_connected: false, last_seen_at: null }, 'never seen yet')

    const client = await connectRobot(t, app, robot, { transport })
    // Users who subscribe after the robot connected get the retained presence at once.
    for (const who of [staff, user]) {
      const watcher = await connectUser(t, app, who, { transport })
      const first = nextPresence(watcher, robot.uuid)
      t.same(await subscribe(watcher, presenceTopic(robot.uuid), 0), [0])
      const { body, retain } = await first
      t.ok(retain, `${who.isStaff ? 'staff' : 'owner'}: the presence is retained`)
      t.same(Object.keys(body).sort(), ['command_connected', 'data_connected', 'online', 'robot_uuid', 'since'], 'exactly the contract fields')
      t.match(body, { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: false, since: ISO })
    }
    const watcher = await connectUser(t, app, user, { transport })
    const online = nextPresence(watcher, robot.uuid)
    await subscribe(watcher, presenceTopic(robot.uuid), 0)
    const since = (await online).body.since
    const row = await rowBecomes(app, user, robot.uuid, { data_connected: true, command_connected: false })
    t.match(row, { last_seen_at: ISO }, 'last_seen_at is set')

    let next = nextPresence(watcher, robot.uuid, (p) => p.command_connected)
    await subscribe(client, commandsTopic(robot.uuid), 1)
    t.same((await next).body, { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: true, since }, 'command-connected; since is when it came online')
    await rowBecomes(app, user, robot.uuid, { data_connected: true, command_connected: true })

    next = nextPresence(watcher, robot.uuid, (p) => !p.command_connected)
    await client.unsubscribeAsync(commandsTopic(robot.uuid))
    t.same((await next).body, { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: false, since }, 'unsubscribed: no longer command-connected')
    await rowBecomes(app, user, robot.uuid, { data_connected: true, command_connected: false })

    next = nextPresence(watcher, robot.uuid, (p) => p.command_connected)
    await subscribe(client, commandsTopic(robot.uuid), 1)
    await next
    next = nextPresence(watcher, robot.uuid, (p) => !p.online)
    await client.endAsync()
    const offline = (await next).body
    t.match(offline, { robot_uuid: robot.uuid, online: false, data_connected: false, command_connected: false, since: ISO }, 'offline is published')
    t.ok(Date.parse(offline.since) >= Date.parse(since), 'since is when it went offline')
    const last = await rowBecomes(app, user, robot.uuid, { data_connected: false, command_connected: false })
    t.match(last, { last_seen_at: ISO }, 'last_seen_at kept after disconnecting')

    // A late subscriber sees the retained offline presence.
    const late = await connectUser(t, app, staff, { transport })
    const retained = nextPresence(late, robot.uuid)
    await subscribe(late, presenceTopic(robot.uuid), 0)
    t.match(await retained, { retain: true, body: { online: false, data_connected: false, command_connected: false } })
  })

  t.test(`presence over ${transport}: a data connection and a command connection`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const staff = await createStaff(app)
    const watcher = await connectUser(t, app, staff, { transport })
    await subscribe(watcher, presenceTopic(robot.uuid), 0)

    let next = nextPresence(watcher, robot.uuid)
    const data = await connectRobot(t, app, robot, { transport })
    const first = (await next).body
    t.match(first, { online: true, data_connected: true, command_connected: false })

    const command = await connectRobot(t, app, robot, { transport })
    command.on('error', () => {})
    t.same(app.services.presence.get(robot.uuid), { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: false }, 'a second connection: still data-connected only')

    next = nextPresence(watcher, robot.uuid, (p) => p.command_connected)
    await subscribe(command, commandsTopic(robot.uuid), 1)
    t.same((await next).body, { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: true, since: first.since })
    const row = await rowBecomes(app, user, robot.uuid, { data_connected: true, command_connected: true })
    t.match(row, { last_seen_at: ISO })

    // The command connection is lost (no DISCONNECT): the data one keeps the robot online.
    next = nextPresence(watcher, robot.uuid, (p) => !p.command_connected)
    command.end(true)
    t.same((await next).body, { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: false, since: first.since }, 'closing the command connection: online, not command-connected')
    await rowBecomes(app, user, robot.uuid, { data_connected: true, command_connected: false })
    t.equal(await app.services.presence.isCommandConnected(robot.uuid), false)

    next = nextPresence(watcher, robot.uuid, (p) => !p.online)
    await data.endAsync()
    t.match((await next).body, { robot_uuid: robot.uuid, online: false, data_connected: false, command_connected: false, since: ISO }, 'closing both: offline')
    const last = await rowBecomes(app, user, robot.uuid, { data_connected: false, command_connected: false })
    t.match(last, { last_seen_at: ISO })
  })

  t.test(`presence over ${transport}: closing the data connection first keeps the robot online through its command connection`, async (t) => {
    const app = await build(t)
    const { user, robot } = await ownedRobot(app)
    const watcher = await connectUser(t, app, user, { transport })
    await subscribe(watcher, presenceTopic(robot.uuid), 0)
    const data = await connectRobot(t, app, robot, { transport })
    const command = await connectRobot(t, app, robot, { transport })
    let next = nextPresence(watcher, robot.uuid, (p) => p.command_connected)
    await subscribe(command, commandsTopic(robot.uuid), 1)
    await next

    // Presence is republished on every change of the robot's connections.
    next = nextPresence(watcher, robot.uuid)
    await data.endAsync()
    t.match((await next).body, { online: true, data_connected: true, command_connected: true }, 'still online and command-connected')
    t.same(app.services.presence.get(robot.uuid), { robot_uuid: robot.uuid, online: true, data_connected: true, command_connected: true })

    next = nextPresence(watcher, robot.uuid, (p) => !p.online)
    await command.endAsync()
    t.match((await next).body, { online: false, data_connected: false, command_connected: false })
    await rowBecomes(app, user, robot.uuid, { data_connected: false, command_connected: false })
  })
}

t.test('presence with a watcher on the + wildcard, across transports', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const staff = await createStaff(app)
  const watcher = await connectUser(t, app, staff, { transport: 'ws' })
  await subscribe(watcher, 'robots/+/presence', 0)
  const online = messageWhere<Presence>(watcher, presenceTopic(robot.uuid), (p) => p.online)
  const client = await connectRobot(t, app, robot, { transport: 'tcp' })
  t.match(await online, { robot_uuid: robot.uuid, data_connected: true })
  const offline = messageWhere<Presence>(watcher, presenceTopic(robot.uuid), (p) => !p.online)
  await client.endAsync()
  t.match(await offline, { robot_uuid: robot.uuid, data_connected: false, command_connected: false })
  await rowBecomes(app, user, robot.uuid, { data_connected: false, command_connected: false })
})

t.test('presence rows of robots connecting at once are written together, with each robot’s latest flags', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robots: TestRobot[] = []
  for (let i = 0; i < 10; i++) robots.push(await createRobot(app))
  // The first write is held until every robot has connected and subscribed:
  // everything that changed meanwhile must then go in one more write.
  const service = app.services.robots
  const setConnections = service.setConnections
  const batches: string[][] = []
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  service.setConnections = async (changes, at) => {
    batches.push(changes.map((c) => c.uuid))
    if (batches.length === 1) await held
    await setConnections.call(service, changes, at)
  }
  t.teardown(() => { service.setConnections = setConnections })

  const clients = await Promise.all(robots.map(async (robot) => await connectRobot(t, app, robot)))
  await Promise.all(clients.map(async (client, i) => await subscribe(client, commandsTopic((robots[i] as TestRobot).uuid), 1)))
  t.equal(batches.length, 1, 'one write in flight, the rest waiting')
  release()
  for (const robot of robots) await rowBecomes(app, staff, robot.uuid, { data_connected: true, command_connected: true })
  t.equal(batches.length, 2, 'then one write for every change made meanwhile')
  t.same([...(batches[1] ?? [])].sort(), robots.map((r) => r.uuid).sort(), 'holding every robot, with its latest flags')
})
