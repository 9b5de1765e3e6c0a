// The one owner of Sequelize: connects to the embedded SQLite file or to
// PostgreSQL, runs the migrations (umzug), and closes the pool. Everything
// else gets `Database` injected and never imports `sequelize` itself.
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { Sequelize, Transaction } from 'sequelize'
import { SequelizeStorage, Umzug } from 'umzug'
import type { FastifyBaseLogger } from 'fastify'
import { migrations } from './migrations/index.js'
import { initModels, type Models } from './models/index.js'

export interface Database {
  sequelize: Sequelize
  models: Models
  dialect: 'sqlite' | 'postgres'
  /**
   * A managed transaction. On SQLite they run one at a time: SQLite has one
   * writer anyway, and an in-memory database has a single connection that two
   * open transactions would share.
   */
  transaction: <T>(work: (t: Transaction) => Promise<T>) => Promise<T>
  /**
   * Runs a write outside a transaction in the same queue as transactions on
   * SQLite (the frame writer): two SQLite connections that both want to write
   * otherwise meet in SQLite's busy handler, which sleeps and retries, and a
   * command would wait seconds behind a stream of frame batches.
   */
  serialized: <T>(work: () => Promise<T>) => Promise<T>
  /**
   * SQLite only: runs one statement with positional `?` parameters on the
   * connection Sequelize uses outside transactions, without Sequelize's query
   * machinery (the frame writer's hot path: Sequelize binds an array as
   * thousands of named `$n` parameters, which sqlite3 resolves one by one).
   */
  sqliteRun: (sql: string, params: unknown[]) => Promise<void>
  /**
   * PostgreSQL only: runs one statement as a named prepared statement on a
   * connection of Sequelize's pool (the frame writer's hot path): PostgreSQL
   * parses and plans it once per connection instead of at every call, which
   * Sequelize's query() cannot ask for. Resolves with the rows the statement
   * returned (as node-postgres parses them) and how many it changed. Errors
   * are node-postgres' own (`code` is the SQLSTATE), not Sequelize's.
   */
  pgPrepared: (name: string, sql: string, params: unknown[]) => Promise<PgResult>
  migrate: () => Promise<string[]>
  ping: () => Promise<void>
  close: () => Promise<void>
}

/** `sqlite::memory:`, `sqlite:./path/file.sqlite`, `sqlite:///abs/path` or `postgres://…`. */
/** Sequelize's own SQLite date format, for raw statements whose rows the ORM then reads and compares like its own. */
export function sqliteDate (d: Date | null): string | null {
  return d === null ? null : d.toISOString().replace('T', ' ').replace('Z', ' +00:00')
}

/** A date for a raw statement's bind parameter: a Date for PostgreSQL, sqliteDate's text for SQLite. */
export function dateParam (dialect: Database['dialect'], d: Date): Date | string {
  return dialect === 'postgres' ? d : sqliteDate(d) as string
}

/** A date as a raw row holds it, a Date (PostgreSQL) or sqliteDate's text (SQLite), as a Date. */
export function rawDate (v: unknown): Date {
  return v instanceof Date ? v : new Date(String(v).replace(' +00:00', 'Z').replace(' ', 'T'))
}

export function sqliteStorage (url: string): string {
  const rest = url.replace(/^sqlite:(\/\/)?/, '')
  return rest === ':memory:' || rest === '' ? ':memory:' : rest
}

const MIGRATION_LOCK = 738_512_001 // any constant: serializes nodes of a cluster starting together

export interface DatabaseOptions {
  /**
   * PostgreSQL's `backend_flush_after` for every connection of the pool, or
   * undefined to keep the server's own (PG_BACKEND_FLUSH_AFTER,
   * src/db/README.md, "`backend_flush_after` on PostgreSQL"). A frame's ack waits for its commit's flush, and
   * the pages a busy fleet's inserts push out of shared buffers otherwise sit
   * in the kernel's cache until they leave in one burst, which that flush
   * then waits behind.
   */
  pgBackendFlushAfter?: string
}

export function createDatabase (url: string, log?: FastifyBaseLogger, options: DatabaseOptions = {}): Database {
  const logging = log !== undefined && log.level === 'trace' ? (sql: string) => log.trace({ sql }, 'sql') : false
  let sequelize: Sequelize
  let dialect: Database['dialect']
  if (url.startsWith('sqlite:')) {
    const storage = sqliteStorage(url)
    if (storage !== ':memory:') mkdirSync(dirname(storage), { recursive: true })
    sequelize = new Sequelize({ dialect: 'sqlite', storage, logging })
    dialect = 'sqlite'
    tuneSqlite(sequelize, storage !== ':memory:')
  } else {
    sequelize = new Sequelize(url, {
      dialect: 'postgres',
      logging,
      pool: { max: 10, min: 0, idle: 10_000, acquire: 10_000 },
      dialectOptions: { connectionTimeoutMillis: 5000 },
      hooks: {
        afterConnect: async (connection: unknown) => {
          if (options.pgBackendFlushAfter === undefined) return
          // One round trip per new pooled connection, as Sequelize's own SETs.
          await (connection as PgSetConnection).query("SELECT set_config('backend_flush_after', $1, false)", [options.pgBackendFlushAfter])
        }
      }
    })
    dialect = 'postgres'
  }
  const models = initModels(sequelize)

  const umzug = new Umzug({
    migrations: migrations.map((m) => ({ name: m.name, up: m.up, down: m.down })),
    context: sequelize.getQueryInterface(),
    storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
    logger: undefined
  })

  let writer: Promise<unknown> = Promise.resolve()
  async function serialized<T> (work: () => Promise<T>): Promise<T> {
    if (dialect !== 'sqlite') return await work()
    const run = writer.then(work)
    writer = run.catch(() => {})
    return await run
  }
  return {
    sequelize,
    models,
    dialect,
    async transaction<T> (work: (t: Transaction) => Promise<T>): Promise<T> {
      if (dialect !== 'sqlite') return await sequelize.transaction(work)
      // IMMEDIATE takes the write lock at BEGIN, so the busy timeout applies;
      // a deferred transaction that reads and then writes fails at once with
      // SQLITE_BUSY when another connection wrote in between.
      return await serialized(async () => await sequelize.transaction({ type: Transaction.TYPES.IMMEDIATE }, work))
    },
    serialized,
    async sqliteRun (sql: string, params: unknown[]): Promise<void> {
      if (dialect !== 'sqlite') throw new Error('sqliteRun is for SQLite')
      const manager = sequelize.connectionManager as unknown as { getConnection: (o: object) => Promise<SqliteHandle> }
      const handle = await manager.getConnection({})
      await new Promise<void>((resolve, reject) => { handle.run(sql, params, (err) => { if (err === null) resolve(); else reject(err) }) })
    },
    async pgPrepared (name: string, sql: string, params: unknown[]): Promise<PgResult> {
      if (dialect !== 'postgres') throw new Error('pgPrepared is for PostgreSQL')
      const manager = sequelize.connectionManager as unknown as PgManager
      const connection = await manager.getConnection({ type: 'write' })
      try {
        const { rows, rowCount } = await connection.query({ name, text: sql, values: params })
        return { rows, rowCount: rowCount ?? 0 }
      } catch (err) {
        // As Sequelize does with its own queries: a connection that failed,
        // rather than its statement, is not handed out again.
        const code = (err as { code?: unknown }).code
        if (typeof code !== 'string' || /^(08|57)/.test(code)) connection._invalid = true
        throw err
      } finally {
        manager.releaseConnection(connection)
      }
    },
    async migrate () {
      const run = async () => (await umzug.up()).map((m) => m.name)
      if (dialect !== 'postgres') return await run()
      return await sequelize.transaction(async (transaction) => {
        await sequelize.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`, { transaction })
        return await run()
      })
    },
    async ping () {
      await sequelize.query('SELECT 1')
    },
    async close () {
      await sequelize.close()
    }
  }
}

/** What pgPrepared uses of Sequelize's PostgreSQL pool and of its node-postgres clients. */
export interface PgResult { rows: Array<Record<string, unknown>>, rowCount: number }
interface PgConnection { query: (q: { name: string, text: string, values: unknown[] }) => Promise<{ rows: PgResult['rows'], rowCount: number | null }>, _invalid?: boolean }
interface PgSetConnection { query: (text: string, values: unknown[]) => Promise<unknown> }
interface PgManager { getConnection: (o: object) => Promise<PgConnection>, releaseConnection: (c: PgConnection) => void }

/**
 * Sequelize opens one sqlite3 handle for plain queries and, on a file, a new
 * one for each transaction, which it closes at the end: every command issued
 * or acknowledged paid for opening the file and reading its schema again.
 * Transactions run one at a time on SQLite (Database.transaction and the
 * migrations), so they share one handle instead, kept open until the pool
 * closes. WAL lets readers run beside the writer, and a busy timeout makes
 * two writers wait for each other instead of failing with SQLITE_BUSY.
 */
function tuneSqlite (sequelize: Sequelize, file: boolean): void {
  const manager = sequelize.connectionManager as unknown as SqliteManager
  const getConnection = manager.getConnection.bind(manager)
  const releaseConnection = manager.releaseConnection.bind(manager)
  const tuned = new WeakSet<SqliteHandle>()
  let shared: SqliteHandle | undefined
  manager.getConnection = async (options?: { uuid?: string }) => {
    const forTransaction = file && options?.uuid !== undefined && options.uuid !== 'default'
    const handle = await getConnection(forTransaction ? { ...options, uuid: TRANSACTION_HANDLE } : options)
    if (forTransaction) shared = handle
    if (!tuned.has(handle)) {
      tuned.add(handle)
      handle.configure('busyTimeout', 10_000)
      if (file) {
        await new Promise<void>((resolve, reject) => handle.exec('PRAGMA journal_mode=WAL;', (err) => { err ? reject(err) : resolve() }))
      }
    }
    return handle
  }
  // Sequelize releases a transaction's handle by closing it; the shared one
  // stays open, and Sequelize's close() closes it with the others.
  manager.releaseConnection = (connection: SqliteHandle, force?: boolean) => {
    if (connection !== shared) releaseConnection(connection, force)
  }
}

/** The key of the handle transactions share among Sequelize's SQLite connections. */
const TRANSACTION_HANDLE = 'united-transactions'

interface SqliteManager {
  getConnection: (o?: { uuid?: string }) => Promise<SqliteHandle>
  releaseConnection: (connection: SqliteHandle, force?: boolean) => void
}

interface SqliteHandle {
  configure: (option: 'busyTimeout', value: number) => void
  run: (sql: string, params: unknown[], cb: (err: Error | null) => void) => void
  exec: (sql: string, cb: (err: Error | null) => void) => void
}
