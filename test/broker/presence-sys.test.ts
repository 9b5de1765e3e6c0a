// A staff connection that watches `$SYS/#` beside `robots/+/presence` gets
// every presence update (the wave-1 review: it got none of 6). Aedes numbers
// packets as it creates them and each client drops one numbered below the
// last it received; a retained presence update that waited a turn to be
// stored was overtaken by the `$SYS/…/new/clients` of the same connection and
// dropped. broker/retained.ts now stores retained messages synchronously.
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createStaff, createUser, grant } from '../factory.js'
import { build } from '../helper.js'
import { connectRobot, connectUser, eventually, suback, subscribe, TRANSPORTS, type Transport } from '../mqtt.js'

function presenceLog (client: MqttClient): Array<{ robot_uuid: string, online: boolean }> {
  const seen: Array<{ robot_uuid: string, online: boolean }> = []
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/presence') && payload.length > 0) seen.push(JSON.parse(payload.toString()))
  })
  return seen
}

/** Three robots connect and disconnect one after the other: six presence updates. */
async function sixUpdates (t: Test, app: Awaited<ReturnType<typeof build>>, transport: Transport): Promise<string[]> {
  const uuids: string[] = []
  for (let i = 0; i < 3; i++) {
    const robot = await createRobot(app)
    uuids.push(robot.uuid)
    const client = await connectRobot(t, app, robot, { transport })
    await new Promise((resolve) => { setTimeout(resolve, 50) })
    await client.endAsync()
  }
  return uuids
}

const layouts: Array<[string, string[][]]> = [
  ['in one SUBSCRIBE', [['$SYS/#', 'robots/+/presence']]],
  ['in one SUBSCRIBE, presence first', [['robots/+/presence', '$SYS/#']]],
  ['in two SUBSCRIBEs', [['$SYS/#'], ['robots/+/presence']]],
  ['with $SYS/+/new/clients', [['$SYS/+/new/clients', 'robots/+/presence']]]
]

for (const transport of TRANSPORTS) {
  for (const [how, subscriptions] of layouts) {
    t.test(`${transport}: staff watching $SYS and presence ${how} gets all six presence updates`, async (t) => {
      const app = await build(t)
      const staff = await createStaff(app)
      const watcher = await connectUser(t, app, staff, { transport })
      const seen = presenceLog(watcher)
      for (const topics of subscriptions) t.same(await subscribe(watcher, topics), topics.map(() => 1))
      const uuids = await sixUpdates(t, app, transport)
      const updates = await eventually(async () => seen.filter((p) => uuids.includes(p.robot_uuid)), (u) => u.length >= 6)
      t.same(updates.map((p) => [p.robot_uuid, p.online]), uuids.flatMap((u) => [[u, true], [u, false]]), 'online then offline, for each robot, in order')
    })
  }

  t.test(`${transport}: a user who is not staff is refused $SYS/# and still gets the presence of its robot`, async (t) => {
    const app = await build(t)
    const user = await createUser(app)
    const watcher = await connectUser(t, app, user, { transport })
    const seen = presenceLog(watcher)
    t.same(await suback(watcher, ['$SYS/#', 'robots/+/presence']), [128, 1], '$SYS/# → 0x80')
    const robot = await createRobot(app)
    await grant(app, user, robot)
    const client = await connectRobot(t, app, robot, { transport })
    await client.endAsync()
    const updates = await eventually(async () => seen.filter((p) => p.robot_uuid === robot.uuid), (u) => u.length >= 2)
    t.same(updates.map((p) => p.online), [true, false])
  })
}
