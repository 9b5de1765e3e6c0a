// docs/protocol.md §6.6, retention: FRAME_RETENTION_DAYS removes exactly the frames
// received before the cutoff, of every robot, in pieces, in the background,
// while robots go on streaming; 0 keeps everything.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { createRobot, ownedRobot, robotIdOf } from '../factory.js'
import { bearer, build } from '../helper.js'
import { connectRobot, eventually, positionFrame, subscribe } from '../mqtt.js'

const DAY = 86400_000
const data = { speed: 1, position_x: 0, position_y: 0, angle_theta: 0, datetime: '2026-12-01 10:00:00' }

/** Stores `count` frames per robot, received from `days` days ago up to now. */
async function history (app: FastifyInstance, uuids: string[], count: number, days: number, now = Date.now()): Promise<Map<string, Date[]>> {
  const stored = new Map<string, Date[]>()
  for (const uuid of uuids) {
    const robotId = await robotIdOf(app, uuid)
    const times = Array.from({ length: count }, (_, i) => new Date(now - days * DAY + Math.floor((i * days * DAY) / count)))
    await app.services.frames.store(robotId, times.map((receivedAt, i) => ({ frameId: `h-${i}`, type: 1, data, recordedAt: null, receivedAt })))
    stored.set(uuid, times)
  }
  return stored
}

async function remaining (app: FastifyInstance, uuid: string): Promise<Date[]> {
  const robotId = await robotIdOf(app, uuid)
  const rows = await app.db.models.Frame.findAll({ where: { robotId }, attributes: ['receivedAt'], order: [['receivedAt', 'ASC']] })
  return rows.map((r) => r.receivedAt)
}

t.test('removeOlderThan removes exactly the frames received before the cutoff, of every robot, piece by piece', async (t) => {
  const app = await build(t)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  const now = Date.now()
  const stored = await history(app, robots.map((r) => r.uuid), 300, 10, now)
  const cutoff = new Date(now - 4 * DAY)
  // one frame exactly at the cutoff: it is not older, so it stays
  await app.services.frames.store(await robotIdOf(app, robots[0]?.uuid as string), [{ frameId: 'edge', type: 1, data, recordedAt: null, receivedAt: cutoff }])
  const expectedGone = [...stored.values()].reduce((n, times) => n + times.filter((d) => d < cutoff).length, 0)

  const removed = await app.services.frames.removeOlderThan(cutoff, { piece: 7 })
  t.equal(removed, expectedGone, `${expectedGone} frames reported removed`)
  for (const robot of robots) {
    const left = await remaining(app, robot.uuid)
    const want = (stored.get(robot.uuid) as Date[]).filter((d) => d >= cutoff)
    if (robot === robots[0]) want.push(cutoff)
    t.same(left.map((d) => d.getTime()).sort(), want.map((d) => d.getTime()).sort(), `${robot.serial}: exactly the frames from the cutoff on are left`)
  }
  t.equal(await app.services.frames.removeOlderThan(cutoff), 0, 'a second run finds nothing')
})

t.test('in the background: old frames go, new ones stay, robots keep streaming, /metrics counts them', async (t) => {
  const app = await build(t, { FRAME_RETENTION_DAYS: '2', FRAME_RETENTION_INTERVAL: '1' })
  const { user, robot } = await ownedRobot(app)
  const other = await createRobot(app)
  const stored = await history(app, [robot.uuid, other.uuid], 2000, 5)
  const old = [...stored.values()].reduce((n, times) => n + times.filter((d) => d.getTime() < Date.now() - 2 * DAY).length, 0)

  // a robot streams meanwhile: every frame is acked ok and kept
  const client = await connectRobot(t, app, robot)
  t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1])
  const acks: string[] = []
  client.on('message', (topic, payload) => { if (topic.endsWith('/ack')) acks.push(String(JSON.parse(payload.toString()).status)) })
  for (let i = 0; i < 200; i++) {
    await client.publishAsync(`robots/${robot.uuid}/data`, positionFrame(`live-${i}`), { qos: 1 })
    if (i % 20 === 0) await new Promise((resolve) => { setTimeout(resolve, 20) })
  }
  await eventually(async () => acks.length, (n) => n === 200)
  t.same([...new Set(acks)], ['ok'], 'every live frame acked ok')

  await eventually(async () => Number(/^united_frames_expired_total (\d+)$/m.exec((await app.inject({ method: 'GET', url: '/metrics' })).body)?.[1] ?? 0), (n) => n === old, 15_000)
  const cutoff = Date.now() - 2 * DAY
  for (const uuid of [robot.uuid, other.uuid]) {
    const left = await remaining(app, uuid)
    t.ok(left.every((d) => d.getTime() >= cutoff - 5000), `${uuid}: nothing older than the retention is left`)
    const want = (stored.get(uuid) as Date[]).filter((d) => d.getTime() >= cutoff + 5000).length
    t.ok(left.length >= want, `${uuid}: the frames within the retention stay (${left.length} ≥ ${want})`)
  }
  const live = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=1000`, headers: bearer(user.jwt) })
  t.equal(live.json().items.filter((f: { frame_id: string }) => f.frame_id.startsWith('live-')).length, 200, 'the live frames are all kept')
})

t.test('FRAME_RETENTION_DAYS=0 (the default) keeps every frame', async (t) => {
  const app = await build(t, { FRAME_RETENTION_INTERVAL: '1' })
  const robot = await createRobot(app)
  await history(app, [robot.uuid], 100, 3650)
  await new Promise((resolve) => { setTimeout(resolve, 2500) })
  t.equal((await remaining(app, robot.uuid)).length, 100, 'ten years of frames, all kept')
  t.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /^united_frames_expired_total 0$/m)
})
