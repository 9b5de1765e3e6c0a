// docs/protocol.md §13: any role lets a user watch a robot's stats and presence;
// every message is checked when it is forwarded, so a change of the effective
// role (a direct or group grant made, removed or expired, a robot entering or
// leaving a group, a group deleted) reaches subscriptions already open within
// a second, without a resubscription. Real mqtt.js clients over TCP and WebSocket.
import type { FastifyInstance, InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { collect, connectRobot, connectUser, messageWhere, sendFrame, suback, TRANSPORTS, type Transport } from '../mqtt.js'
import { watcher, type Live } from './stats-watch.js'

const REFUSED = 128
const topic = (robot: TestRobot, channel: string): string => `robots/${robot.uuid}/${channel}`

async function manage (app: FastifyInstance, staff: TestUser, method: InjectOptions['method'], url: string, payload?: Record<string, unknown>): Promise<{ status: number, body: any }> {
  const res = await app.inject({ method, url, headers: bearer(staff.jwt), ...(payload === undefined ? {} : { payload }) })
  return { status: res.statusCode, body: res.body === '' ? null : res.json() }
}

/** A robot connection subscribed to its own ack topic, ready to send frames. */
async function liveRobot (t: Test, app: FastifyInstance, robot: TestRobot, transport: Transport): Promise<Live & { robot: TestRobot }> {
  const client = await connectRobot(t, app, robot, { transport })
  t.same(await suback(client, topic(robot, 'ack')), [1], 'the robot subscribes to its ack topic')
  return { robot, client }
}

type Setup = (app: FastifyInstance, staff: TestUser, user: TestUser, robots: TestRobot[]) => Promise<void>

/**
 * A user watching `robots/+/stats` with a control robot granted for good, and
 * `n` subject robots streaming; `before` runs before the user connects.
 */
async function scene (t: Test, transport: Transport, n: number, before?: Setup) {
  const app = await build(t)
  const staff = await createStaff(app)
  const user = await createUser(app)
  const controlRobot = await createRobot(app)
  await grant(app, user, controlRobot)
  const robots: TestRobot[] = []
  for (let i = 0; i < n; i++) robots.push(await createRobot(app))
  await before?.(app, staff, user, robots)
  const client = await connectUser(t, app, user, { transport })
  t.same(await suback(client, 'robots/+/stats'), [1], 'the user subscribes to robots/+/stats')
  const control = await liveRobot(t, app, controlRobot, transport)
  const subjects: Array<Live & { robot: TestRobot }> = []
  for (const robot of robots) subjects.push(await liveRobot(t, app, robot, transport))
  return { app, staff, user, client, control, subjects, watch: watcher(client, control) }
}

/** Grants `robot` to `user` for `aheadMs` from now, directly or through a new group: the status and the end. */
async function expiringGrant (app: FastifyInstance, staff: TestUser, user: TestUser, robot: TestRobot, kind: 'direct' | 'group', aheadMs: number): Promise<{ status: number, end: number }> {
  let url = `/admin/api/robots/${robot.uuid}/users/${user.id}`
  if (kind === 'group') {
    const group = (await manage(app, staff, 'POST', '/admin/api/groups', { name: `shift-${robot.serial}` })).body.id as number
    const added = await manage(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${robot.uuid}`)
    if (added.status !== 204) return { status: added.status, end: 0 }
    url = `/admin/api/groups/${group}/users/${user.id}`
  }
  const end = Date.now() + aheadMs
  return { status: (await manage(app, staff, 'PUT', url, { role: 'viewer', expires_at: new Date(end).toISOString() })).status, end }
}

for (const transport of TRANSPORTS) {
  t.test(`over ${transport}`, async (t) => {
    t.test('a viewer subscribes to stats and presence and receives them; a user with no role is refused and sees nothing', async (t) => {
      const app = await build(t)
      const staff = await createStaff(app)
      const viewer = await createUser(app)
      const stranger = await createUser(app)
      const robot = await createRobot(app)
      const other = await createRobot(app)
      await grant(app, stranger, other)
      t.equal((await manage(app, staff, 'PUT', `/admin/api/robots/${robot.uuid}/users/${viewer.id}`, { role: 'viewer' })).status, 204, 'a viewer grant')
      const listed = await manage(app, staff, 'GET', `/admin/api/robots/${robot.uuid}/users`)
      t.match(listed.body.items, [{ user_id: viewer.id, role: 'viewer', expires_at: null }], 'the grant is a viewer grant')

      const v = await connectUser(t, app, viewer, { transport })
      t.same(await suback(v, [topic(robot, 'stats'), topic(robot, 'presence')]), [1, 1], 'a viewer subscribes to the robot’s stats and presence')
      const vWild = await connectUser(t, app, viewer, { transport })
      t.same(await suback(vWild, ['robots/+/stats', 'robots/+/presence']), [1, 1])
      const s = await connectUser(t, app, stranger, { transport })
      t.same(await suback(s, [topic(robot, 'stats'), topic(robot, 'presence')]), [REFUSED, REFUSED], 'no role: SUBACK 0x80 on the robot’s stats and presence')
      t.same(await suback(s, ['robots/+/stats', 'robots/+/presence']), [1, 1], 'robots/+/… is granted (filtered per message)')
      const strangerSaw = collect(s, (tp) => tp.startsWith(`robots/${robot.uuid}/`))

      const online = Promise.all([
        messageWhere(v, topic(robot, 'presence'), (p) => p.online === true),
        messageWhere(vWild, topic(robot, 'presence'), (p) => p.online === true)
      ])
      const live = await liveRobot(t, app, robot, transport)
      await online
      t.pass('the viewer receives the robot’s presence, on its topic and on robots/+/presence')
      const stats = Promise.all([
        messageWhere(v, topic(robot, 'stats'), (b) => b.position_x === 42),
        messageWhere(vWild, topic(robot, 'stats'), (b) => b.position_x === 42)
      ])
      t.same(await sendFrame(live.client, robot.uuid, 'f-42', { position_x: 42 }), { id: 'f-42', status: 'ok' })
      t.match(await stats, [{ robot_uuid: robot.uuid, position_x: 42 }, { robot_uuid: robot.uuid, position_x: 42 }], 'the viewer receives its stats, on its topic and on robots/+/stats')

      // The stranger's own robot streams after: its stats arrive, the other's never did.
      const otherLive = await liveRobot(t, app, other, transport)
      const sync = messageWhere(s, topic(other, 'stats'), (b) => b.position_x === 43)
      await sendFrame(otherLive.client, other.uuid, 'f-43', { position_x: 43 })
      await sync
      t.same(strangerSaw, [], 'a user with no role receives nothing of the robot on robots/+/…')
      t.ok(v.connected && s.connected, 'everyone stays connected')
    })

    t.test('group changes reach an open robots/+/stats subscription within a second', async (t) => {
      const { app, staff, user, subjects: [first, second], watch } = await scene(t, transport, 2)
      if (first === undefined || second === undefined) throw new Error('two subjects')
      const created = await manage(app, staff, 'POST', '/admin/api/groups', { name: `site-${transport}` })
      t.equal(created.status, 201, 'a group')
      const group = created.body.id as number
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${first.robot.uuid}`)).status, 204, 'the first robot enters it')
      t.notOk((await watch.probe(first)).delivered, 'not granted yet: nothing of it')

      let since = Date.now()
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/users/${user.id}`, { role: 'viewer' })).status, 204, 'a viewer grant on the group')
      await watch.starts(t, first, since, 'the group grant starts deliveries of its robot on the open subscription')
      t.notOk((await watch.probe(second)).delivered, 'a robot outside the group stays hidden')

      since = Date.now()
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${second.robot.uuid}`)).status, 204, 'the second robot enters the group')
      await watch.starts(t, second, since, 'a robot added to the granted group reaches the open subscription')

      since = Date.now()
      t.equal((await manage(app, staff, 'DELETE', `/admin/api/groups/${group}/robots/${second.robot.uuid}`)).status, 204, 'the second robot leaves the group')
      await watch.stops(t, second, since, 'a robot taken out of the group stops')
      t.ok((await watch.probe(first)).delivered, 'the robot still in the group is still delivered')

      since = Date.now()
      t.equal((await manage(app, staff, 'DELETE', `/admin/api/groups/${group}/users/${user.id}`)).status, 204, 'the group grant is removed')
      await watch.stops(t, first, since, 'removing the group grant stops deliveries')

      since = Date.now()
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/users/${user.id}`, { role: 'operator' })).status, 204, 'granted again')
      await watch.starts(t, first, since, 'a new group grant starts them again')
      since = Date.now()
      t.equal((await manage(app, staff, 'DELETE', `/admin/api/groups/${group}`)).status, 204, 'the group is deleted')
      await watch.stops(t, first, since, 'deleting the group stops deliveries')
      t.equal((await manage(app, staff, 'GET', `/admin/api/groups/${group}`)).status, 404, 'the group is gone')
    })

    t.test('the effective role is the highest of the direct and group grants: removing one leaves the other', async (t) => {
      const { app, staff, user, subjects: [subject], watch } = await scene(t, transport, 1)
      if (subject === undefined) throw new Error('a subject')
      const group = (await manage(app, staff, 'POST', '/admin/api/groups', { name: 'both' })).body.id as number
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/robots/${subject.robot.uuid}`)).status, 204)
      t.equal((await manage(app, staff, 'PUT', `/admin/api/groups/${group}/users/${user.id}`, { role: 'viewer' })).status, 204, 'a group grant')
      t.equal((await manage(app, staff, 'PUT', `/admin/api/robots/${subject.robot.uuid}/users/${user.id}`, { role: 'operator' })).status, 204, 'and a direct one')
      t.ok((await watch.probe(subject)).delivered, 'delivered')
      t.equal((await manage(app, staff, 'DELETE', `/admin/api/robots/${subject.robot.uuid}/users/${user.id}`)).status, 204, 'the direct grant removed')
      for (let i = 0; i < 3; i++) t.ok((await watch.probe(subject)).delivered, 'still delivered through the group')
      const since = Date.now()
      t.equal((await manage(app, staff, 'DELETE', `/admin/api/groups/${group}/robots/${subject.robot.uuid}`)).status, 204, 'the robot taken out of the group')
      await watch.stops(t, subject, since, 'with neither, deliveries stop')
    })

    for (const kind of ['direct', 'group'] as const) {
      // The broker learns the end from the grant's event (connected) or from the database (connecting after).
      t.test(`a ${kind} grant with an expiry, made while the user is connected, stops deliveries at its end with nobody acting`, async (t) => {
        const { app, staff, user, subjects: [subject], watch } = await scene(t, transport, 1)
        if (subject === undefined) throw new Error('a subject')
        const { status, end } = await expiringGrant(app, staff, user, subject.robot, kind, 2000)
        t.equal(status, 204, `a ${kind} viewer grant for ~2 s`)
        await watch.holdsUntil(t, subject, end, 'delivered until the end')
        await watch.stops(t, subject, end, `the expired ${kind} grant stops deliveries`)
      })

      t.test(`a ${kind} grant with an expiry, made before the user connects, stops deliveries at its end with nobody acting`, async (t) => {
        let end = 0
        const { subjects: [subject], watch } = await scene(t, transport, 1, async (app, staff, user, [robot]) => {
          // the connections take their time on a loaded machine: a longer grant
          const made = await expiringGrant(app, staff, user, robot as TestRobot, kind, 4000)
          end = made.end
          t.equal(made.status, 204, `a ${kind} viewer grant for ~4 s`)
        })
        if (subject === undefined) throw new Error('a subject')
        await watch.holdsUntil(t, subject, end, 'delivered until the end')
        await watch.stops(t, subject, end, `the expired ${kind} grant stops deliveries`)
      })
    }
  })
}
