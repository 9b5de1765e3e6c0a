// The one owner of Sequelize: connects to the embedded SQLite file or to
// PostgreSQL, runs the migrations (umzug), and closes the connections.
// Everything else gets `Database` injected and never imports `sequelize`
// itself. Which connection runs what (the frame writer has its own, so that
// no request can hold it) is in sqlite.ts and postgres.ts, and in
// src/db/README.md, "Connections".
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { Sequelize, Transaction, type QueryInterface } from 'sequelize'
import { SequelizeStorage, Umzug } from 'umzug'
import type { FastifyBaseLogger } from 'fastify'
import { migrations } from './migrations/index.js'
import { initModels, type Models } from './models/index.js'
import { pgIngest, pgPrepared, pgSequelize, type PgResult } from './postgres.js'
import { sqliteConnections, statementTimeout } from './sqlite.js'

export type { PgResult } from './postgres.js'

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
   * Runs work that writes outside a transaction in the same queue as
   * transactions on SQLite (the writer queue: frame batches, rollups): two
   * SQLite connections that both want to write otherwise meet in SQLite's
   * busy handler, which sleeps and retries, and a command would wait seconds
   * behind a stream of frame batches. Every statement that may write and is
   * not in a transaction takes this queue by itself (src/db/README.md,
   * "Connections").
   */
  serialized: <T>(work: () => Promise<T>) => Promise<T>
  /**
   * Runs the reads of an aggregate or an export in the history lane: one at
   * a time on a node, each starting no sooner than the previous one's
   * duration after it ended, so that history reads take at most half of one
   * core of the database, whatever their number (historyLane). On a SQLite
   * file they also read on a handle of their own, so that the short reads
   * of log-ins, commands and pages never queue behind them.
   */
  historyReads: <T>(work: () => Promise<T>) => Promise<T>
  /**
   * SQLite only: runs one statement with positional `?` parameters on the
   * frame writer's own sqlite3 handle, which nothing else uses, without
   * Sequelize's query machinery (the frame writer's hot path: Sequelize binds
   * an array as thousands of named `$n` parameters, which sqlite3 resolves one
   * by one). Call it inside `serialized`.
   */
  sqliteIngest: (sql: string, params: unknown[]) => Promise<void>
  /**
   * PostgreSQL only: runs one statement as a named prepared statement on the
   * frame writer's own connection, outside Sequelize's pool, so that no
   * number of requests can take it (the frame writer's hot path): PostgreSQL
   * parses and plans it once per connection instead of at every call, which
   * Sequelize's query() cannot ask for. No statement timeout. Resolves with
   * the rows the statement returned (as node-postgres parses them) and how
   * many it changed. Errors are node-postgres' own (`code` is the SQLSTATE),
   * not Sequelize's.
   */
  pgIngest: (name: string, sql: string, params: unknown[]) => Promise<PgResult>
  /**
   * PostgreSQL only: as pgIngest, but on a connection of Sequelize's pool,
   * under the statement timeout (the command service's statements: requests
   * and robots' command acks, which must not take the frame writer's turn).
   */
  pgPrepared: (name: string, sql: string, params: unknown[]) => Promise<PgResult>
  migrate: () => Promise<string[]>
  ping: () => Promise<void>
  close: () => Promise<void>
}

/**
 * The history lane of a node: aggregates and exports may each read for
 * seconds (within AGGREGATE_MAX_ROWS and the statement timeout), up to
 * HISTORY_NODE_CONCURRENCY of them are admitted at once, and every core
 * they take in the database is a core the frame writer's commits and the
 * broker wait for: in the abuse bench, eight aggregates at once on
 * PostgreSQL (eight backends on two cores) took the fleet's ack p99 from
 * 3.2 to 540 ms. So their reads run one at a time, and each waits, before
 * it starts, as long as the previous one ran (at most half of a core,
 * whatever the number of readers; an immediate start after a read under a
 * millisecond). A read that waits longer than twice the statement timeout
 * for its turn (a read and its pause, at most) fails as the statement
 * timeout does (503): with HISTORY_NODE_CONCURRENCY reads admitted, a turn
 * comes sooner but for abuse, and a client is better told than kept.
 */
function historyLane (run: <T>(work: () => Promise<T>) => Promise<T>, timeoutMs: number): <T>(work: () => Promise<T>) => Promise<T> {
  let free: Promise<void> = Promise.resolve()
  return async <T>(work: () => Promise<T>): Promise<T> => {
    let release!: () => void
    const previous = free
    free = new Promise<void>((resolve) => { release = resolve })
    let waited: NodeJS.Timeout | undefined
    const most = 2 * timeoutMs
    try {
      await (most > 0
        ? Promise.race([previous, new Promise<never>((_resolve, reject) => { waited = setTimeout(() => { reject(statementTimeout(`statement timeout: waited more than ${most} ms for the history lane`)) }, most) })])
        : previous)
    } catch (err) {
      // Its turn passes on when it comes: the reads behind keep their order.
      void previous.then(release)
      throw err
    } finally {
      clearTimeout(waited)
    }
    const started = performance.now()
    try {
      return await run(work)
    } finally {
      const took = performance.now() - started
      if (took >= 1) setTimeout(release, took)
      else release()
    }
  }
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

/** One migration as umzug runs it (migrations/index.ts lists them in order). */
export interface Migration {
  name: string
  up: (params: { context: QueryInterface }) => Promise<void>
  down: (params: { context: QueryInterface }) => Promise<void>
}

export interface DatabaseOptions {
  /**
   * PostgreSQL's `backend_flush_after` for every connection (the pool's and
   * the frame writer's), or undefined to keep the server's own
   * (PG_BACKEND_FLUSH_AFTER, src/db/README.md, "`backend_flush_after` on
   * PostgreSQL"). A frame's ack waits for its commit's flush, and
   * the pages a busy fleet's inserts push out of shared buffers otherwise sit
   * in the kernel's cache until they leave in one burst, which that flush
   * then waits behind.
   */
  pgBackendFlushAfter?: string
  /**
   * Milliseconds a query of a request may run before it is cancelled and
   * fails with Sequelize's TimeoutError (DATABASE_STATEMENT_TIMEOUT; 0 or
   * undefined: no limit). On PostgreSQL it is the `statement_timeout` of
   * Sequelize's pool; on a SQLite file it bounds each read on the read
   * handle and its wait for that handle. Never the frame writer's
   * statements, nor the migrations (src/db/README.md, "The statement
   * timeout").
   */
  statementTimeoutMs?: number
  /** The migrations to run, in order; by default every one of migrations/ (a test adds its own). */
  migrations?: readonly Migration[]
}

export function createDatabase (url: string, log?: FastifyBaseLogger, options: DatabaseOptions = {}): Database {
  const logging = log !== undefined && log.level === 'trace' ? (sql: string) => log.trace({ sql }, 'sql') : false
  const statementTimeoutMs = Math.max(0, Math.round(options.statementTimeoutMs ?? 0))
  const list = options.migrations ?? migrations

  /** Runs the pending migrations with `sequelize` (umzug keeps their names in schema_migrations). */
  async function runMigrations (sequelize: Sequelize): Promise<string[]> {
    const umzug = new Umzug({
      migrations: list.map((m) => ({ name: m.name, up: m.up, down: m.down })),
      context: sequelize.getQueryInterface(),
      storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
      logger: undefined
    })
    return (await umzug.up()).map((m) => m.name)
  }

  if (url.startsWith('sqlite:')) {
    const storage = sqliteStorage(url)
    const file = storage !== ':memory:'
    if (file) mkdirSync(dirname(storage), { recursive: true })
    const sequelize = new Sequelize({ dialect: 'sqlite', storage, logging })
    const connections = sqliteConnections(sequelize, file, statementTimeoutMs)
    return {
      sequelize,
      models: initModels(sequelize),
      dialect: 'sqlite',
      async transaction<T> (work: (t: Transaction) => Promise<T>): Promise<T> {
        // IMMEDIATE takes the write lock at BEGIN, so the busy timeout applies;
        // a deferred transaction that reads and then writes fails at once with
        // SQLITE_BUSY when another connection wrote in between.
        return await connections.serialized(async () => await sequelize.transaction({ type: Transaction.TYPES.IMMEDIATE }, work))
      },
      serialized: connections.serialized,
      historyReads: historyLane(async (work) => await connections.history(work), statementTimeoutMs),
      sqliteIngest: connections.ingest,
      pgIngest: async () => { throw new Error('pgIngest is for PostgreSQL') },
      pgPrepared: async () => { throw new Error('pgPrepared is for PostgreSQL') },
      async migrate () {
        return await connections.untimed(async () => await runMigrations(sequelize))
      },
      async ping () {
        await sequelize.query('SELECT 1')
      },
      async close () {
        await sequelize.close()
      }
    }
  }

  const settings = { logging, backendFlushAfter: options.pgBackendFlushAfter }
  const sequelize = pgSequelize(url, { ...settings, statementTimeoutMs })
  const ingest = pgIngest(url, { ...settings, statementTimeoutMs: 0 }, log)
  return {
    sequelize,
    models: initModels(sequelize),
    dialect: 'postgres',
    async transaction<T> (work: (t: Transaction) => Promise<T>): Promise<T> {
      return await sequelize.transaction(work)
    },
    async serialized<T> (work: () => Promise<T>): Promise<T> {
      return await work()
    },
    historyReads: historyLane(async (work) => await work(), statementTimeoutMs),
    sqliteIngest: async () => { throw new Error('sqliteIngest is for SQLite') },
    pgIngest: ingest.run,
    async pgPrepared (name: string, sql: string, params: unknown[]): Promise<PgResult> {
      return await pgPrepared(sequelize, name, sql, params)
    },
    async migrate () {
      // On a pool of their own without the statement timeout, closed after them.
      const migrator = pgSequelize(url, { ...settings, statementTimeoutMs: 0 })
      try {
        return await migrator.transaction(async (transaction) => {
          await migrator.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`, { transaction })
          return await runMigrations(migrator)
        })
      } finally {
        await migrator.close()
      }
    },
    async ping () {
      await sequelize.query('SELECT 1')
    },
    async close () {
      try {
        await ingest.close()
      } finally {
        await sequelize.close()
      }
    }
  }
}
