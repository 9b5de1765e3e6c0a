// DATABASE_STATEMENT_TIMEOUT (src/db/README.md, "The statement timeout"): a
// request's query that runs longer is cancelled, and the client gets a clean
// 503 UNITED_DATABASE_UNAVAILABLE, never a stack or SQL; the frame writer's
// statements and the migrations are not bound by it. On a SQLite file (the
// read handle is interrupted) and on PostgreSQL (TEST_DATABASE_URL: the
// pool's statement_timeout). What is asserted is the order of events (the
// read cancelled while the writer's statement still ran), never a duration.
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { createDatabase, type Migration } from '../../src/db/index.js'
import { migrations } from '../../src/db/migrations/index.js'
import { createRobot, ownedRobot } from '../factory.js'
import { bearer, build, pgBase, testDatabase } from '../helper.js'
import { connectRobot, sendFrame, subscribe } from '../mqtt.js'
import { buildOnFile, countTo, tempDir } from './isolation.js'

/** A read far longer than any timeout here, on either database. */
const forever = (app: FastifyInstance): string => app.db.dialect === 'postgres' ? 'SELECT pg_sleep(600)' : countTo(10_000_000_000)

/** How a promise settled: 'ok', or the error's name. */
async function outcome (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    return (err as Error).name
  }
}

/** A request whose query runs longer than the timeout answers 503, cleanly, and frames are still acked. */
async function requestCancelled (t: Test, app: FastifyInstance): Promise<void> {
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/ack`)
  // The history route's query, made as costly as a request can be.
  const frames = app.services.frames as { list: (...args: unknown[]) => Promise<unknown> }
  frames.list = async () => await app.db.sequelize.query(forever(app), { type: QueryTypes.SELECT })
  const [res, ack] = await Promise.all([
    app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames`, headers: bearer(user.jwt) }),
    sendFrame(client, robot.uuid, 'during')
  ])
  t.equal(ack.status, 'ok', 'a frame sent meanwhile is acked')
  t.equal(res.statusCode, 503, 'the request answers 503')
  t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'database unavailable', code: 'UNITED_DATABASE_UNAVAILABLE' }, 'the error body, nothing more')
  t.notMatch(res.body, /pg_sleep|RECURSIVE|SELECT|at .*\.ts|stack/i, 'no SQL, no stack')
  t.equal((await sendFrame(client, robot.uuid, 'after')).status, 'ok', 'and one after')
}

t.test('SQLite file: a read longer than DATABASE_STATEMENT_TIMEOUT is interrupted, and so is a read that waited as long for its turn', async (t) => {
  const app = await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '1' })
  const { sequelize } = app.db
  const [running, waiting] = await Promise.all([
    outcome(sequelize.query(forever(app), { type: QueryTypes.SELECT })),
    outcome(sequelize.query(forever(app), { type: QueryTypes.SELECT }))
  ])
  t.same([running, waiting], ['SequelizeTimeoutError', 'SequelizeTimeoutError'], 'both fail with Sequelize\'s TimeoutError')
  await t.rejects(sequelize.query(forever(app), { type: QueryTypes.SELECT }), { name: 'SequelizeTimeoutError', message: /statement timeout: the query ran longer than 1000 ms/ }, 'the message says why')
  t.same(await sequelize.query('SELECT 41 + 1 AS n', { type: QueryTypes.SELECT }), [{ n: 42 }], 'the read handle answers the next read')
})

t.test('SQLite file: the frame writer\'s statement is not bound by the timeout, nor stopped by a read\'s interrupt', async (t) => {
  const app = await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '1' })
  const { db } = app
  await createRobot(app)
  // An INSERT that runs for seconds on the frame writer's handle (its
  // condition, read once for the one robot, is false: it inserts nothing),
  // beside a read that the timeout interrupts.
  const slowInsert = `INSERT INTO frames (robot_id, frame_id, type, data, recorded_at, received_at)
    SELECT id, '-1', 1, '{}', NULL, '2024-01-01 00:00:00.000 +00:00' FROM robots
    WHERE (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 12000000) SELECT count(*) FROM c) = -1`
  const order: string[] = []
  const insert = db.serialized(async () => { await db.sqliteIngest(slowInsert, []) }).then(() => { order.push('insert done') }, (err: Error) => { order.push(`insert failed: ${err.message}`) })
  const read = outcome(db.sequelize.query(forever(app), { type: QueryTypes.SELECT })).then((o) => { order.push(`read: ${o}`) })
  await Promise.all([insert, read])
  t.same(order, ['read: SequelizeTimeoutError', 'insert done'], 'the read was cancelled while the INSERT ran, and the INSERT then completed')
})

t.test('SQLite file: a request cancelled by the timeout answers 503 UNITED_DATABASE_UNAVAILABLE', async (t) => {
  await requestCancelled(t, await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '1' }))
})

t.test('SQLite file: DATABASE_STATEMENT_TIMEOUT=0 leaves reads unbounded', async (t) => {
  const app = await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '0' })
  // Longer than a second here; with 0 nothing interrupts it.
  t.same(await app.db.sequelize.query(countTo(8_000_000), { type: QueryTypes.SELECT }), [{ n: 8_000_000 }], 'the read runs to its end')
})

/** The app's migrations and one more whose read outlasts a 200 ms timeout. */
function withSlowMigration (slowRead: string): Migration[] {
  return [...migrations, {
    name: '999-slow-test-migration',
    up: async ({ context: qi }) => { await qi.sequelize.query(slowRead, { type: QueryTypes.SELECT }) },
    down: async () => {}
  }]
}

t.test('SQLite file: migrations are not bound by the timeout', async (t) => {
  const db = createDatabase(`sqlite:${join(tempDir(t), 'united.sqlite')}`, undefined, { statementTimeoutMs: 200, migrations: withSlowMigration(countTo(5_000_000)) })
  t.teardown(async () => { await db.close() })
  const applied = await db.migrate()
  t.equal(applied.at(-1), '999-slow-test-migration', 'the slow migration ran to its end')
  await t.rejects(db.sequelize.query(countTo(5_000_000), { type: QueryTypes.SELECT }), { name: 'SequelizeTimeoutError' }, 'the same read after the migrations is bound')
})

if (pgBase !== undefined) {
  t.test('PostgreSQL: the pool\'s statements are bound by DATABASE_STATEMENT_TIMEOUT, the frame writer\'s are not', async (t) => {
    const app = await build(t, { DATABASE_STATEMENT_TIMEOUT: '1' })
    const { db } = app
    const pooled = await db.sequelize.query<{ statement_timeout: string }>('SHOW statement_timeout', { type: QueryTypes.SELECT })
    t.equal(pooled[0]?.statement_timeout, '1s', 'the pool\'s sessions')
    t.equal((await db.pgIngest('united_test_timeout', 'SHOW statement_timeout', [])).rows[0]?.statement_timeout, '0', 'the frame writer\'s session: none')
    await t.rejects(db.sequelize.query('SELECT pg_sleep(1.5)', { type: QueryTypes.SELECT }), { name: 'SequelizeTimeoutError', message: /statement timeout/ }, 'a query of the pool is cancelled, as Sequelize\'s TimeoutError')
    await t.rejects(db.transaction(async (transaction) => await db.sequelize.query('SELECT pg_sleep(1.5)', { transaction })), { name: 'SequelizeTimeoutError' }, 'in a transaction too')
    await t.resolves(db.pgIngest('united_test_sleep', 'SELECT pg_sleep(1.5)', []), 'the same on the frame writer\'s connection runs to its end')
    t.same(await db.sequelize.query('SELECT 41 + 1 AS n', { type: QueryTypes.SELECT }), [{ n: 42 }], 'the pool answers the next query')
  })

  t.test('PostgreSQL: a request cancelled by the timeout answers 503 UNITED_DATABASE_UNAVAILABLE', async (t) => {
    await requestCancelled(t, await build(t, { DATABASE_STATEMENT_TIMEOUT: '1' }))
  })

  t.test('PostgreSQL: migrations are not bound by the timeout', async (t) => {
    const target = await testDatabase()
    const db = createDatabase(target.url, undefined, { statementTimeoutMs: 200, migrations: withSlowMigration('SELECT pg_sleep(0.5)') })
    t.teardown(async () => {
      await db.close()
      await target.drop()
    })
    const applied = await db.migrate()
    t.equal(applied.at(-1), '999-slow-test-migration', 'the slow migration ran to its end')
    await t.rejects(db.sequelize.query('SELECT pg_sleep(0.5)', { type: QueryTypes.SELECT }), { name: 'SequelizeTimeoutError' }, 'the same query after the migrations is bound')
  })
}
