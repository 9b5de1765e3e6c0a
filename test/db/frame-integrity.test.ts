// Frames belong to a robot that exists. On SQLite a foreign key sees to it;
// on PostgreSQL (migration 004) the frame writer locks each robot of a batch
// and deleting a robot deletes its frames after the robot. These tests race a
// frame batch and a deletion both ways on a real PostgreSQL database, made
// deterministic by making one side wait on a lock the test holds.
import pg from 'pg'
import t, { type Test } from 'tap'
import { QueryTypes } from 'sequelize'
import type { FastifyInstance } from 'fastify'
import { build, pgBase } from '../helper.js'
import { createRobot, queuedFrame as frame, robotIdOf as robotId } from '../factory.js'

async function framesOf (app: FastifyInstance, id: number): Promise<string[]> {
  const rows = await app.db.sequelize.query<{ frame_id: string }>('SELECT frame_id FROM frames WHERE robot_id = ? ORDER BY frame_id', { replacements: [id], type: QueryTypes.SELECT })
  return rows.map((r) => r.frame_id)
}

t.test("deleting a robot deletes its frames and keeps the other robots' frames", async (t) => {
  const app = await build(t)
  const [gone, kept] = await Promise.all([createRobot(app), createRobot(app)])
  const goneId = await robotId(app, gone.uuid)
  const keptId = await robotId(app, kept.uuid)
  await Promise.all([frame(goneId, 'a'), frame(keptId, 'a'), frame(goneId, 'b')].map((f) => app.services.frameWriter.write(f)))
  t.same(await framesOf(app, goneId), ['a', 'b'])

  await app.services.robots.remove(gone.uuid, { actor: null })
  t.same(await framesOf(app, goneId), [], "the robot's frames are gone")
  t.same(await framesOf(app, keptId), ['a'], "the other robot's frame stays")
})

if (pgBase !== undefined) {
  /** A connection of the test's own to the app's database. */
  async function connect (t: Test, app: FastifyInstance): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: app.config.DATABASE_URL })
    await client.connect()
    t.teardown(async () => { await client.end() })
    return client
  }

  /** Resolves once `n` sessions of the app's database wait for a lock (gives up after 10 s; the test's assertions then tell). */
  async function lockWaiters (client: pg.Client, n: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
      if (Number(rows[0]?.n) >= n) return
      await new Promise((resolve) => { setTimeout(resolve, 50) })
    }
  }

  t.test('PostgreSQL: a robot deleted while a frame batch holds it waits for the batch, then deletes its frames too', async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const id = await robotId(app, robot.uuid)
    const holder = await connect(t, app)
    const watcher = await connect(t, app)
    // The test's transaction holds frame 'x' uncommitted: the batch below
    // stores 'y', locks the robot, and waits at 'x' until the test commits.
    await holder.query('BEGIN')
    await holder.query("INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES ($1, 'x', 1, '{}', now())", [id])
    const batch = Promise.all([frame(id, 'y'), frame(id, 'x')].map((f) => app.services.frameWriter.write(f)))
    await lockWaiters(watcher, 1)
    let removed = false
    const removal = app.services.robots.remove(robot.uuid, { actor: null }).then(() => { removed = true })
    await lockWaiters(watcher, 2)
    t.notOk(removed, 'the deletion waits for the batch')

    await holder.query('COMMIT')
    await batch
    await removal
    t.same(await framesOf(app, id), [], "the batch's frames are deleted with the robot")
  })

  t.test('PostgreSQL: a frame batch that meets a robot being deleted waits, then stores none of its frames', async (t) => {
    const app = await build(t)
    const [gone, kept] = await Promise.all([createRobot(app), createRobot(app)])
    const goneId = await robotId(app, gone.uuid)
    const keptId = await robotId(app, kept.uuid)
    const deleter = await connect(t, app)
    const watcher = await connect(t, app)
    await deleter.query('BEGIN')
    await deleter.query('DELETE FROM robots WHERE id = $1', [goneId])
    let written = false
    const batch = Promise.all([frame(keptId, 'k'), frame(goneId, 'g')].map((f) => app.services.frameWriter.write(f))).then(() => { written = true })
    await lockWaiters(watcher, 1)
    t.notOk(written, 'the batch waits for the deletion')

    await deleter.query('COMMIT')
    await batch
    t.same(await framesOf(app, goneId), [], "no frame of the deleted robot is stored")
    t.same(await framesOf(app, keptId), ['k'], "the other robot's frame is")
  })
}
