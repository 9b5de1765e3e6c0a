// Retained messages are indexed by topic (broker/retained.ts): an exact
// subscription finds its message by lookup, a wildcard one by matching, an
// empty retained publish deletes it; a deleted robot leaves none behind.
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { topicMatches } from '../../src/contract/topics.js'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff } from '../factory.js'
import { connectRobot, connectUser, subscribe } from '../mqtt.js'

t.test('topicMatches follows MQTT topic matching', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['robots/a/presence', 'robots/a/presence', true],
    ['robots/a/presence', 'robots/b/presence', false],
    ['robots/a/presence', 'robots/a/presence/x', false],
    ['robots/+/presence', 'robots/a/presence', true],
    ['robots/+/presence', 'robots/a/stats', false],
    ['robots/+/presence', 'robots/a/b/presence', false],
    ['robots/+/+', 'robots/a/stats', true],
    ['robots/+', 'robots/a/stats', false],
    ['robots/#', 'robots/a/stats', true],
    ['robots/#', 'robots', true], // `#` also matches the parent level (MQTT-4.7.1-2)
    ['robots/#', 'robot/a', false],
    ['#', 'robots/a/stats', true],
    ['#', '$SYS/broker/uptime', false], // wildcards never match a leading `$` (MQTT-4.7.2-1)
    ['+/broker/uptime', '$SYS/broker/uptime', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['robots/+/stats', 'robots//stats', true] // an empty level is a level
  ]
  for (const [pattern, topic, expected] of cases) t.equal(topicMatches(pattern, topic), expected, `${pattern} ${expected ? 'matches' : 'does not match'} ${topic}`)
})

/** The retained messages a fresh subscription brings, until `last` (a topic sure to have one) arrives. */
async function retainedUntil (client: MqttClient, filters: string[], last: string): Promise<string[]> {
  const seen: string[] = []
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no retained message on ${last} within 5 s`)) }, 5000)
    client.on('message', (topic, _payload, packet) => {
      if (!packet.retain) return
      seen.push(topic)
      if (topic === last) { clearTimeout(timer); resolve() }
    })
  })
  await subscribe(client, [...filters, last], 0)
  await done
  return seen
}

t.test('subscriptions get exactly the retained messages they match, and a deleted robot leaves none', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const [a, b, gone] = [await createRobot(app), await createRobot(app), await createRobot(app)]
  for (const robot of [a, b, gone]) await connectRobot(t, app, robot) // each retains its presence
  const presence = (uuid: string): string => `robots/${uuid}/presence`

  // Exact: one lookup, one message, nothing of the other robots.
  const exact = await retainedUntil(await connectUser(t, app, staff), [presence(a.uuid)], presence(b.uuid))
  t.same(exact, [presence(a.uuid), presence(b.uuid)], 'an exact subscription gets its own retained message only')

  // Wildcard: every robot's presence and no other channel.
  const watcher = await connectUser(t, app, staff)
  const wild: string[] = []
  watcher.on('message', (topic, _payload, packet) => { if (packet.retain) wild.push(topic) })
  await subscribe(watcher, 'robots/+/presence', 0)
  const until = Date.now() + 5000
  while (wild.length < 3 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(wild.sort(), [a, b, gone].map((r) => presence(r.uuid)).sort(), 'a wildcard subscription gets every matching retained message')

  // A deleted robot's retained presence is cleared (an empty retained publish deletes it).
  const del = await app.inject({ method: 'DELETE', url: `/admin/api/robots/${gone.uuid}`, headers: bearer(staff.jwt) })
  t.equal(del.statusCode, 204)
  let after: string[] = []
  for (let tries = 0; tries < 50; tries++) {
    after = await retainedUntil(await connectUser(t, app, staff), [presence(gone.uuid)], presence(a.uuid))
    if (!after.includes(presence(gone.uuid))) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.same(after, [presence(a.uuid)], 'no retained presence of the deleted robot')
})
