import t from 'tap'
import { ACL, canForward, canPublish, canSubscribe, type AccessView, type Principal } from '../../src/contract/acl.js'
import { CHANNELS, robotTopic, type Channel } from '../../src/contract/topics.js'

const MINE = 'aaaaaaaa-1111-4111-8111-bbbbbbbbbbbb'
const OTHER = '22222222-2222-4222-8222-222222222222'

const robot: Principal = { kind: 'robot', uuid: MINE }
const user: Principal = { kind: 'user', id: 7, username: 'alice', isStaff: false }
const staff: Principal = { kind: 'user', id: 8, username: 'root', isStaff: true }

/** alice (7) can access MINE only; nobody else has grants. */
const access: AccessView = { canAccess: (userId, uuid) => userId === 7 && uuid === MINE }
const noAccess: AccessView = { canAccess: () => false }

// docs/protocol.md §3, written out independently of src/contract/acl.ts.
const ROBOT_PUBLISHES: Channel[] = ['data', 'commands/ack']
const ROBOT_SUBSCRIBES: Channel[] = ['ack', 'commands']
const USERS_SUBSCRIBE: Channel[] = ['stats', 'presence']

t.test('the ACL table is the one of docs/protocol.md §3', async (t) => {
  for (const channel of CHANNELS) {
    t.same(ACL[channel], {
      robotPublishes: ROBOT_PUBLISHES.includes(channel),
      robotSubscribes: ROBOT_SUBSCRIBES.includes(channel),
      usersSubscribe: USERS_SUBSCRIBE.includes(channel)
    }, channel)
  }
})

t.test('a robot publishes only to its own data and commands/ack', async (t) => {
  for (const channel of CHANNELS) {
    const expected = ROBOT_PUBLISHES.includes(channel)
    t.equal(canPublish(robot, robotTopic(MINE, channel)).allow, expected, `own ${channel}: ${expected ? 'allowed' : 'denied'}`)
  }
})

t.test("a robot publishes nothing on another robot's topics", async (t) => {
  for (const channel of CHANNELS) {
    const d = canPublish(robot, robotTopic(OTHER, channel))
    t.equal(d.allow, false, `other robot's ${channel}`)
  }
  t.match(canPublish(robot, robotTopic(OTHER, 'data')), { allow: false, reason: /another robot/ })
})

t.test('a robot publishes nothing outside its robot topics', async (t) => {
  for (const topic of ['$SYS/broker/uptime', 'robots/+/data', 'robots/#', '#', 'hello', `robots/${MINE}/data/x`, `robots/${MINE.toUpperCase()}/data`]) {
    t.equal(canPublish(robot, topic).allow, false, topic)
  }
  t.match(canPublish(robot, '$SYS/broker/uptime'), { allow: false, reason: /\$SYS/ })
})

t.test('a denied publish says why', async (t) => {
  t.match(canPublish(robot, robotTopic(MINE, 'ack')), { allow: false, reason: /may not publish to ack/ })
  t.match(canPublish(user, robotTopic(MINE, 'data')), { allow: false, reason: /users may not publish/ })
})

t.test('users and staff publish nothing', async (t) => {
  for (const who of [user, staff]) {
    for (const uuid of [MINE, OTHER]) {
      for (const channel of CHANNELS) {
        t.equal(canPublish(who, robotTopic(uuid, channel)).allow, false, `${who.kind === 'user' && who.isStaff ? 'staff' : 'user'} on ${channel}`)
      }
    }
    t.equal(canPublish(who, '$SYS/broker/uptime').allow, false)
    t.equal(canPublish(who, 'anything').allow, false)
  }
})

t.test('a robot subscribes only to its own ack and commands', async (t) => {
  for (const channel of CHANNELS) {
    const expected = ROBOT_SUBSCRIBES.includes(channel)
    t.equal(canSubscribe(robot, robotTopic(MINE, channel), access).allow, expected, `own ${channel}: ${expected ? 'allowed' : 'denied'}`)
  }
})

t.test("a robot may not subscribe to another robot's topics", async (t) => {
  for (const channel of CHANNELS) {
    t.equal(canSubscribe(robot, robotTopic(OTHER, channel), access).allow, false, `other robot's ${channel}`)
  }
})

t.test('a robot may not use wildcards', async (t) => {
  for (const filter of ['robots/+/ack', 'robots/+/commands', `robots/${MINE}/#`, `robots/${MINE}/+`, 'robots/#', '#', '+/+/+']) {
    t.equal(canSubscribe(robot, filter, access).allow, false, filter)
  }
})

t.test('$SYS is staff-only', async (t) => {
  for (const filter of ['$SYS/#', '$SYS/broker/uptime', '$SYS/+/clients']) {
    t.equal(canSubscribe(staff, filter, noAccess).allow, true, `staff: ${filter}`)
    t.match(canSubscribe(user, filter, access), { allow: false, reason: /staff-only/ }, `user: ${filter}`)
    t.equal(canSubscribe(robot, filter, access).allow, false, `robot: ${filter}`)
  }
  t.equal(canForward(staff, '$SYS/broker/uptime', noAccess), true)
  t.equal(canForward(user, '$SYS/broker/uptime', access), false)
  t.equal(canForward(robot, '$SYS/broker/uptime', access), false)
})

t.test('a user subscribes to stats and presence of the robots they can access', async (t) => {
  for (const channel of CHANNELS) {
    const expected = USERS_SUBSCRIBE.includes(channel)
    t.equal(canSubscribe(user, robotTopic(MINE, channel), access).allow, expected, `accessible robot's ${channel}: ${expected ? 'allowed' : 'denied'}`)
    t.equal(canSubscribe(user, robotTopic(OTHER, channel), access).allow, false, `inaccessible robot's ${channel}: denied`)
  }
  t.match(canSubscribe(user, robotTopic(OTHER, 'stats'), access), { allow: false, reason: /no access/ })
  t.match(canSubscribe(user, robotTopic(MINE, 'data'), access), { allow: false, reason: /may not subscribe to data/ })
})

t.test('a user may use + in the robot position of stats and presence only', async (t) => {
  t.equal(canSubscribe(user, 'robots/+/stats', noAccess).allow, true, 'even with no robots: delivery is filtered per message')
  t.equal(canSubscribe(user, 'robots/+/presence', noAccess).allow, true)
  for (const channel of CHANNELS.filter((c) => !USERS_SUBSCRIBE.includes(c))) {
    t.equal(canSubscribe(user, `robots/+/${channel}`, access).allow, false, `robots/+/${channel}`)
  }
  for (const filter of ['#', 'robots/#', `robots/${MINE}/#`, `robots/${MINE}/+`, 'robots/+/+', '+/+/stats']) {
    t.equal(canSubscribe(user, filter, access).allow, false, filter)
    t.equal(canSubscribe(staff, filter, access).allow, false, `staff: ${filter}`)
  }
})

t.test('staff subscribe to stats and presence of every robot, and to nothing else', async (t) => {
  for (const uuid of [MINE, OTHER, '+']) {
    for (const channel of CHANNELS) {
      const expected = USERS_SUBSCRIBE.includes(channel)
      t.equal(canSubscribe(staff, `robots/${uuid}/${channel}`, noAccess).allow, expected, `${uuid} ${channel}: ${expected ? 'allowed' : 'denied'}`)
    }
  }
})

t.test('a robot receives only its own ack and commands', async (t) => {
  for (const channel of CHANNELS) {
    const expected = ROBOT_SUBSCRIBES.includes(channel)
    t.equal(canForward(robot, robotTopic(MINE, channel), access), expected, `own ${channel}`)
    t.equal(canForward(robot, robotTopic(OTHER, channel), access), false, `other robot's ${channel}`)
  }
  t.equal(canForward(robot, 'something/else', access), false)
})

t.test('a user receives stats and presence only of robots they can access, checked per message', async (t) => {
  for (const channel of CHANNELS) {
    const expected = USERS_SUBSCRIBE.includes(channel)
    t.equal(canForward(user, robotTopic(MINE, channel), access), expected, `accessible robot's ${channel}`)
    t.equal(canForward(user, robotTopic(OTHER, channel), access), false, `inaccessible robot's ${channel}`)
  }
  // The same message after the grant is revoked: the access view is asked every time.
  let granted = true
  const live: AccessView = { canAccess: (userId, uuid) => granted && userId === 7 && uuid === MINE }
  t.equal(canForward(user, robotTopic(MINE, 'stats'), live), true)
  granted = false
  t.equal(canForward(user, robotTopic(MINE, 'stats'), live), false, 'revoked access stops delivery')
  t.equal(canSubscribe(user, robotTopic(MINE, 'stats'), live).allow, false, 'and new subscriptions')
})

t.test('staff receive stats and presence of every robot, nothing else', async (t) => {
  for (const uuid of [MINE, OTHER]) {
    for (const channel of CHANNELS) {
      t.equal(canForward(staff, robotTopic(uuid, channel), noAccess), USERS_SUBSCRIBE.includes(channel), `${uuid} ${channel}`)
    }
  }
  t.equal(canForward(staff, 'something/else', noAccess), false)
})

t.test('the access view is asked about the right user and robot', async (t) => {
  const asked: Array<[number, string]> = []
  const spy: AccessView = { canAccess: (userId, uuid) => { asked.push([userId, uuid]); return false } }
  canSubscribe(user, robotTopic(OTHER, 'presence'), spy)
  canForward(user, robotTopic(OTHER, 'stats'), spy)
  t.same(asked, [[7, OTHER], [7, OTHER]])
})
