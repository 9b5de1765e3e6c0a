// The frame writer owns its connection (src/db/README.md, "Connections"):
// reads that take seconds, however many run at once, never hold back a
// robot's frames. On a SQLite file (the tests' in-memory database is one
// connection by nature) eight long reads run while a robot streams, and every
// frame is acked before the first of them ends: the reads are on a handle of
// their own, one at a time, so neither their handle nor libuv's thread pool
// (4 threads) is the writer's to wait for. On PostgreSQL (TEST_DATABASE_URL)
// sixteen sleeping queries hold every connection of Sequelize's pool (10)
// while the robot streams. What is asserted is the order of events (acks
// before the reads end), never a duration.
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { ownedRobot } from '../factory.js'
import { build, pgBase } from '../helper.js'
import { connectRobot, eventually, sendFrame, subscribe } from '../mqtt.js'
import { buildOnFile, countTo } from './isolation.js'
import { PG_POOL_MAX } from '../../src/db/postgres.js'

/** A robot connected and subscribed to its acks, one frame already stored (every connection of the app is open). */
async function streamingRobot (t: Test, app: FastifyInstance): Promise<(id: string) => Promise<Record<string, unknown>>> {
  const { robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/ack`)
  const send = async (id: string): Promise<Record<string, unknown>> => await sendFrame(client, robot.uuid, id)
  t.equal((await send('before')).status, 'ok', 'a frame before the reads')
  return send
}

t.test('SQLite file: eight long reads at once, and a robot\'s frames are acked before the first of them ends', async (t) => {
  const app = await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '0' })
  const send = await streamingRobot(t, app)

  let ended = 0
  const reads = Array.from({ length: 8 }, async () => {
    const rows = await app.db.sequelize.query<{ n: number }>(countTo(8_000_000), { type: QueryTypes.SELECT })
    ended++
    return rows[0]?.n
  })
  const acks: Array<{ status: unknown, readsEnded: number }> = []
  for (let i = 0; i < 20; i++) {
    const ack = await send(`during-${i}`)
    acks.push({ status: ack.status, readsEnded: ended })
  }
  t.same(acks, acks.map(() => ({ status: 'ok', readsEnded: 0 })), 'twenty frames in a row, each acked ok while all eight reads were still to end')
  t.same(await Promise.all(reads), reads.map(() => 8_000_000), 'and the reads answered in full')
  t.equal((await send('after')).status, 'ok', 'a frame after them')
  const stored = await app.db.sequelize.query<{ n: number }>('SELECT count(*) AS n FROM frames', { type: QueryTypes.SELECT })
  t.equal(Number(stored[0]?.n), 22, 'every acked frame is stored')
})

t.test('SQLite file: history reads take a handle of their own; short reads (a log-in, a robot list) answer while they run', async (t) => {
  const app = await buildOnFile(t, { DATABASE_STATEMENT_TIMEOUT: '0' })
  const { user } = await ownedRobot(app)
  let ended = 0
  const reads = Array.from({ length: 2 }, async () => {
    const rows = await app.db.historyReads(async () => await app.db.sequelize.query<{ n: number }>(countTo(8_000_000), { type: QueryTypes.SELECT }))
    ended++
    return rows[0]?.n
  })
  const answers: Array<{ status: number, readsEnded: number }> = []
  for (let i = 0; i < 3; i++) {
    const login = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })
    answers.push({ status: login.statusCode, readsEnded: ended })
    const list = await app.inject({ method: 'GET', url: '/robots', headers: { authorization: `Bearer ${user.jwt}` } })
    answers.push({ status: list.statusCode, readsEnded: ended })
  }
  t.same(answers, answers.map(() => ({ status: 200, readsEnded: 0 })), 'log-ins and robot lists answered while both history reads were still to end')
  t.same(await Promise.all(reads), reads.map(() => 8_000_000), 'and the history reads answered in full')
})

t.test('SQLite file: statements that write outside a transaction take the writer queue, reads go beside it', async (t) => {
  const app = await buildOnFile(t)
  const { db } = app
  const order: string[] = []
  // A frame batch holds the writer queue; a write made meanwhile waits for
  // it, a read does not.
  let release: () => void = () => {}
  const held = db.serialized(async () => {
    order.push('turn')
    await new Promise<void>((resolve) => { release = resolve })
    order.push('turn ends')
  })
  const write = db.sequelize.query('UPDATE robots SET name = name WHERE id = -1').then(() => { order.push('write') })
  const read = db.sequelize.query('SELECT 1 AS one', { type: QueryTypes.SELECT }).then(() => { order.push('read') })
  await read
  release()
  await Promise.all([held, write])
  t.same(order, ['turn', 'read', 'turn ends', 'write'], 'the read ran during the turn, the write after it')

  // The read handle is query_only: a write that calls itself a SELECT is
  // still a write, and takes the queue.
  await t.resolves(db.sequelize.query('UPDATE robots SET name = name WHERE id = -1 RETURNING id', { type: QueryTypes.SELECT }), 'a write typed SELECT runs, in the queue')
})

if (pgBase !== undefined) {
  async function admin (sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> {
    const client = new pg.Client({ connectionString: pgBase })
    await client.connect()
    try {
      return (await client.query(sql, params)).rows
    } finally {
      await client.end()
    }
  }

  t.test('PostgreSQL: history reads run one at a time in their lane; requests get connections meanwhile', async (t) => {
    const app = await build(t, { DATABASE_STATEMENT_TIMEOUT: '0' })
    const { user } = await ownedRobot(app)
    const name = new URL(app.config.DATABASE_URL).pathname.slice(1)
    const sleeping = async (): Promise<number> => Number((await admin("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = 'SELECT pg_sleep(0.4)'", [name]))[0]?.n)
    let ended = 0
    const reads = Array.from({ length: app.config.HISTORY_NODE_CONCURRENCY }, async () => {
      await app.db.historyReads(async () => await app.db.sequelize.query('SELECT pg_sleep(0.4)', { type: QueryTypes.SELECT }))
      ended++
    })
    await eventually(sleeping, (n) => n === 1, 10_000)
    const seen: number[] = []
    for (let i = 0; i < 6; i++) {
      const list = app.inject({ method: 'GET', url: '/robots', headers: { authorization: `Bearer ${user.jwt}` } })
      const login = app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: user.username, password: user.password } })
      t.same([(await list).statusCode, (await login).statusCode], [200, 200], `requests ${i} answered`)
      seen.push(await sleeping())
    }
    t.ok(ended < reads.length, 'while history reads were still waiting for their turn')
    t.ok(seen.every((n) => n <= 1), `one history read in the database at a time (seen ${seen.join(', ')})`)
    await Promise.all(reads)
  })

  t.test('PostgreSQL: with every connection of the pool held by slow queries, a robot\'s frames are acked', async (t) => {
    const app = await build(t)
    const name = new URL(app.config.DATABASE_URL).pathname.slice(1)
    const send = await streamingRobot(t, app)
    const sleeping = async (): Promise<number> => Number((await admin(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = 'SELECT pg_sleep(600)'", [name]))[0]?.n)

    const pool = PG_POOL_MAX
    let settled = 0
    const reads = Array.from({ length: pool + 6 }, async () => {
      try {
        await app.db.sequelize.query('SELECT pg_sleep(600)', { type: QueryTypes.SELECT })
        return 'answered'
      } catch (err) {
        return (err as Error).name
      } finally {
        settled++
      }
    })
    await eventually(sleeping, (n) => n === pool, 10_000)
    const acks: Array<{ status: unknown, readsSettled: number }> = []
    for (let i = 0; i < 20; i++) {
      const ack = await send(`during-${i}`)
      acks.push({ status: ack.status, readsSettled: settled })
    }
    t.same(acks, acks.map(() => ({ status: 'ok', readsSettled: 0 })), 'twenty frames in a row, each acked ok while all the queries waited')
    t.equal(await sleeping(), pool, 'the pool was still held by them')

    // Cancel them (those still waiting for the pool start when others end).
    const cancel = async (): Promise<number> => {
      await admin("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query = 'SELECT pg_sleep(600)'", [name])
      return settled
    }
    await eventually(cancel, (n) => n === pool + 6, 30_000)
    const outcomes = await Promise.all(reads)
    t.ok(outcomes.every((o) => o === 'SequelizeTimeoutError' || o === 'SequelizeConnectionAcquireTimeoutError'), `the queries were cancelled or never got a connection: ${[...new Set(outcomes)].join(', ')}`)
    t.equal((await send('after')).status, 'ok', 'a frame after them')
    const stored = await app.db.sequelize.query<{ n: string }>('SELECT count(*) AS n FROM frames', { type: QueryTypes.SELECT })
    t.equal(Number(stored[0]?.n), 22, 'every acked frame is stored')
  })

  t.test('PostgreSQL: the frame writer\'s connection is not one of the pool\'s, and has United\'s session settings', async (t) => {
    const app = await build(t, { PG_BACKEND_FLUSH_AFTER: '1MB' })
    const writer = (await app.db.pgIngest('united_test_show', "SELECT pg_backend_pid() AS pid, current_setting('backend_flush_after') AS flush, current_setting('application_name') AS app", [])).rows[0]
    const pooled = (await app.db.sequelize.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', { type: QueryTypes.SELECT }))[0]
    t.not(writer?.pid, pooled?.pid, 'another session than the pool\'s')
    t.equal(writer?.flush, '1MB', 'PG_BACKEND_FLUSH_AFTER reaches it')
    t.equal(writer?.app, 'united frame writer', 'named in pg_stat_activity')
    const again = (await app.db.pgIngest('united_test_pid', 'SELECT pg_backend_pid() AS pid', [])).rows[0]
    t.equal(again?.pid, writer?.pid, 'and it is kept between batches')
  })
}
