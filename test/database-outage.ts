// The app's database goes away or stops answering in time, for the tests of
// "a log-in that could not be checked is not a wrong credential". On
// PostgreSQL (TEST_DATABASE_URL) both are real: the test database stops
// accepting connections and every session of the app is terminated; or the
// app's pool is exhausted by sleeping statements. The embedded SQLite cannot
// go away, so every connection the app asks for fails with the driver's
// error for a file it cannot open (or, busy, for a lock it cannot get).
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { ConnectionError, TimeoutError, type Sequelize } from 'sequelize'
import type { Test } from 'tap'
import { pgBase } from './helper.js'

async function admin (sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgBase })
  await client.connect()
  try { await client.query(sql) } finally { await client.end() }
}

/** Every Sequelize the app's database layer holds (one today; a second for reads would be found too). */
function sequelizesOf (app: FastifyInstance): Sequelize[] {
  return Object.values(app.db as unknown as Record<string, unknown>)
    .filter((v): v is Sequelize => typeof v === 'object' && v !== null && 'connectionManager' in v && 'getQueryInterface' in v)
}

/** Every connection the app asks for fails with `error()` until the returned function is called. */
function failConnections (app: FastifyInstance, error: () => Error): () => Promise<void> {
  const undo: Array<() => void> = []
  for (const sequelize of sequelizesOf(app)) {
    const manager = sequelize.connectionManager as unknown as { getConnection: (...args: unknown[]) => Promise<unknown> }
    const original = manager.getConnection
    manager.getConnection = async () => { throw error() }
    undo.push(() => { manager.getConnection = original })
  }
  if (undo.length === 0) throw new Error('no Sequelize found on app.db')
  return async () => { for (const u of undo.splice(0)) u() }
}

/** Runs `restore` at most once, now or on teardown. */
function onceAndOnTeardown (t: Test, restore: () => Promise<void>): () => Promise<void> {
  let restored = false
  const once = async (): Promise<void> => {
    if (restored) return
    restored = true
    await restore()
  }
  t.teardown(once)
  return once
}

/** Stops the database; resolves with what brings it back (also run on teardown). */
export async function databaseOutage (t: Test, app: FastifyInstance): Promise<() => Promise<void>> {
  let restore: () => Promise<void>
  if (pgBase !== undefined) {
    const name = new URL(app.config.DATABASE_URL).pathname.slice(1)
    await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`)
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid()`)
    restore = async () => { await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`) }
  } else {
    restore = failConnections(app, () => new ConnectionError(Object.assign(new Error('SQLITE_CANTOPEN: unable to open database file'), { code: 'SQLITE_CANTOPEN' })))
  }
  return onceAndOnTeardown(t, restore)
}

/**
 * The database is there but too busy to answer in time. PostgreSQL: every
 * connection of the app's pool is taken by a sleeping statement, so a query
 * waits for the pool's acquire timeout and fails with
 * SequelizeConnectionAcquireTimeoutError (the stress of the security
 * review: a pool exhausted by slow readers). SQLite: the file stays locked
 * past the busy timeout, and the driver gives up with SQLITE_BUSY
 * (SequelizeTimeoutError). Resolves with what ends it (also run on teardown).
 */
export async function databaseBusy (t: Test, app: FastifyInstance): Promise<() => Promise<void>> {
  if (pgBase === undefined) {
    return onceAndOnTeardown(t, failConnections(app, () => new TimeoutError(Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY', sql: 'SELECT …' }))))
  }
  return await exhaustPool(t, app)
}

/** PostgreSQL: every connection of the app's pool sleeps until the returned function cancels them. */
async function exhaustPool (t: Test, app: FastifyInstance): Promise<() => Promise<void>> {
  const sequelize = app.db.sequelize
  const max = (sequelize as unknown as { options: { pool?: { max?: number } } }).options.pool?.max ?? 10
  const tag = `united-test-sleeper-${process.pid}`
  const sleepers = Array.from({ length: max }, async () => await sequelize.query(`SELECT pg_sleep(120) /* ${tag} */`).catch(() => {}))
  const name = new URL(app.config.DATABASE_URL).pathname.slice(1)
  // Until every sleeper runs, the pool still has a connection to give.
  for (let i = 0; i < 500; i++) {
    const client = new pg.Client({ connectionString: pgBase })
    await client.connect()
    try {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE $2 AND state = 'active'`, [name, `%${tag}%`])
      if (Number(rows[0]?.n) >= max) break
    } finally { await client.end() }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return onceAndOnTeardown(t, async () => {
    await admin(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND query LIKE '%${tag}%' AND pid <> pg_backend_pid()`)
    await Promise.all(sleepers)
  })
}
