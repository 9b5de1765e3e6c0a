// Ingest under a storage slower than the inflow: the queue bound holds,
// robots are slowed down instead of memory growing, and nothing is lost.
import t from 'tap'
import { bearer, build, onFrameInsert } from '../helper.js'
import { createStaff, createRobot } from '../factory.js'
import { connectRobot, positionFrame, subscribe } from '../mqtt.js'

t.test('when storage is slower than the inflow, the queue stays within FRAME_QUEUE_LIMIT and every frame is acked and stored once', async (t) => {
  const limit = 40
  const app = await build(t, { FRAME_QUEUE_LIMIT: String(limit), FRAME_BATCH_MAX: '10' })
  const staff = await createStaff(app)
  // A slow database: every frame INSERT takes 20 ms longer.
  onFrameInsert(t, app, async (run) => {
    await new Promise((resolve) => { setTimeout(resolve, 20) })
    return await run()
  })
  let maxDepth = 0
  const writer = app.services.frameWriter
  const enqueue = writer.enqueue
  writer.enqueue = (row, admitted, done) => {
    enqueue(row, admitted, done)
    maxDepth = Math.max(maxDepth, writer.depth)
  }
  let maxWaiting = 0

  const robots = 4
  const perRobot = 150
  const acks = await Promise.all(Array.from({ length: robots }, async () => {
    const robot = await createRobot(app)
    const client = await connectRobot(t, app, robot)
    await subscribe(client, `robots/${robot.uuid}/ack`)
    const ok = new Set<string>()
    const done = new Promise<void>((resolve) => {
      client.on('message', (_topic, payload) => {
        const ack = JSON.parse(payload.toString()) as { id: string, status: string }
        if (ack.status === 'ok') ok.add(ack.id)
        maxWaiting = Math.max(maxWaiting, writer.waiting)
        if (ok.size === perRobot) resolve()
      })
    })
    // Publish everything at once: only backpressure keeps the queue small.
    for (let i = 0; i < perRobot; i++) client.publish(`robots/${robot.uuid}/data`, positionFrame(`f${i}`), { qos: 1 })
    await done
    return { robot, ok }
  }))

  t.ok(maxDepth <= limit, `queue depth stayed within the limit (max ${maxDepth} of ${limit})`)
  t.ok(maxWaiting > 0, 'robots were made to wait')
  for (const { robot, ok } of acks) {
    t.equal(ok.size, perRobot, 'every frame acked ok')
    const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=1000`, headers: bearer(staff.jwt) })
    const ids = (res.json().items as Array<{ frame_id: string }>).map((f) => f.frame_id)
    t.equal(ids.length, perRobot, 'stored once each')
    t.equal(new Set(ids).size, perRobot)
  }
})
