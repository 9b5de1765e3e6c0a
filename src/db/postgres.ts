// PostgreSQL's connections (src/db/README.md, "Connections"):
// - Sequelize's pool (10) for requests and the background jobs, every
//   statement under the statement timeout;
// - the frame writer's own connection, a node-postgres pool of one outside
//   Sequelize's, without the timeout: however many requests wait for the
//   pool, a frame batch never waits for them;
// - the migrations' own pool, opened for them and closed after them, without
//   the timeout (rebuilding an index over millions of frames takes minutes).
// Each connection gets United's session settings (backend_flush_after).
import pg from 'pg'
import { Sequelize, TimeoutError, type Options } from 'sequelize'
import type { FastifyBaseLogger } from 'fastify'

/**
 * Connections of Sequelize's pool: 10 for requests, commands and jobs, and
 * one for the history lane (Database.historyReads), which runs one history
 * read at a time; the frame writer's connection is not one of them.
 */
export const PG_POOL_MAX = 11

export interface PgSettings {
  logging: Options['logging']
  /** backend_flush_after for each connection; undefined keeps the server's own */
  backendFlushAfter?: string
  /** statement_timeout of each connection of the pool, in ms (0: the server's own, none by default) */
  statementTimeoutMs: number
}

/** Rows and changed-row count of one statement, as node-postgres returns them. */
export interface PgResult { rows: Array<Record<string, unknown>>, rowCount: number }

const CONNECT_TIMEOUT_MS = 5000
const SET_FLUSH_AFTER = "SELECT set_config('backend_flush_after', $1, false)"
const QUERY_CANCELED = '57014' // SQLSTATE of a statement stopped by statement_timeout (or a cancel request)

/** A Sequelize over PostgreSQL with United's pool and session settings. */
export function pgSequelize (url: string, settings: PgSettings): Sequelize {
  const sequelize = new Sequelize(url, {
    dialect: 'postgres',
    logging: settings.logging,
    pool: { max: PG_POOL_MAX, min: 0, idle: 10_000, acquire: 10_000 },
    dialectOptions: {
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A startup parameter of each connection: no round trip. It binds
      // every statement of the pool, so a request's query that runs longer
      // is cancelled by PostgreSQL itself, its connection given back.
      ...(settings.statementTimeoutMs > 0 ? { statement_timeout: settings.statementTimeoutMs } : {})
    },
    hooks: {
      afterConnect: async (connection: unknown) => {
        if (settings.backendFlushAfter === undefined) return
        // One round trip per new pooled connection, as Sequelize's own SETs.
        await (connection as PgSetConnection).query(SET_FLUSH_AFTER, [settings.backendFlushAfter])
      }
    }
  })
  // A statement the timeout cancelled fails as a Sequelize TimeoutError
  // (the HTTP layer answers 503 UNITED_DATABASE_UNAVAILABLE), not as any
  // other database error (500).
  const query = sequelize.query.bind(sequelize) as unknown as (...args: unknown[]) => Promise<unknown>
  ;(sequelize as unknown as { query: typeof query }).query = async (...args) => {
    try {
      return await query(...args)
    } catch (err) {
      const original = (err as { original?: { code?: unknown } }).original
      if (original?.code !== QUERY_CANCELED) throw err
      throw new TimeoutError(original as ConstructorParameters<typeof TimeoutError>[0], { stack: (err as Error).stack })
    }
  }
  return sequelize
}

/**
 * Runs one statement as a named prepared statement on a connection of
 * Sequelize's pool: PostgreSQL parses and plans it once per connection
 * instead of at every call, which Sequelize's query() cannot ask for.
 */
export async function pgPrepared (sequelize: Sequelize, name: string, sql: string, params: unknown[]): Promise<PgResult> {
  const manager = sequelize.connectionManager as unknown as PgManager
  const connection = await manager.getConnection({ type: 'write' })
  try {
    const { rows, rowCount } = await connection.query({ name, text: sql, values: params })
    return { rows, rowCount: rowCount ?? 0 }
  } catch (err) {
    // As Sequelize does with its own queries: a connection that failed,
    // rather than its statement, is not handed out again.
    if (connectionFailed(err)) connection._invalid = true
    throw err
  } finally {
    manager.releaseConnection(connection)
  }
}

export interface PgIngest {
  /** Runs one statement, prepared once per connection, on the frame writer's connection. */
  run: (name: string, sql: string, params: unknown[]) => Promise<PgResult>
  close: () => Promise<void>
}

/**
 * The frame writer's own connection. One is enough: the writer runs one
 * batch at a time. It is opened at the first batch and kept (no idle
 * timeout; TCP keep-alive); a connection that failed is dropped and the next
 * batch opens a new one, so ingest comes back by itself after the database
 * does (the failed batches' frames got retry acks meanwhile). Opening waits
 * CONNECT_TIMEOUT_MS at most, as the pool's do.
 */
export function pgIngest (url: string, settings: PgSettings, log?: FastifyBaseLogger): PgIngest {
  const { backendFlushAfter } = settings
  const pool = new pg.Pool({
    connectionString: url,
    max: 1,
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    application_name: 'united frame writer', // how it shows in pg_stat_activity
    // Before a new connection's first statement, as afterConnect does for the pool's.
    verify: (client, done) => {
      if (backendFlushAfter === undefined) { done(); return }
      client.query(SET_FLUSH_AFTER, [backendFlushAfter]).then(() => { done() }, done)
    }
  })
  // A connection that fails while idle (the server restarted, an
  // administrator terminated it) is dropped by the pool, which then says so
  // here; without a listener the 'error' event would end the process.
  pool.on('error', (err) => { log?.warn({ err }, 'the frame writer\'s database connection failed while idle; the next batch opens a new one') })
  return {
    async run (name, text, values) {
      const client = await pool.connect()
      let failed: Error | undefined
      // Between two statements the client has no query to report a failure
      // to, and emits it instead.
      const onError = (err: Error): void => { failed = err }
      client.on('error', onError)
      try {
        const { rows, rowCount } = await client.query({ name, text, values })
        return { rows, rowCount: rowCount ?? 0 }
      } catch (err) {
        if (connectionFailed(err)) failed = err as Error
        throw err
      } finally {
        client.removeListener('error', onError)
        client.release(failed) // with an error: closed, not reused
      }
    },
    async close () {
      await pool.end()
    }
  }
}

/**
 * A failure of the connection rather than of the statement: no SQLSTATE
 * (a socket error), or class 08 (connection exception) or 57 (operator
 * intervention: the server shutting down, the backend terminated).
 */
function connectionFailed (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code !== 'string' || /^(08|57)/.test(code)
}

interface PgConnection { query: (q: { name: string, text: string, values: unknown[] }) => Promise<{ rows: PgResult['rows'], rowCount: number | null }>, _invalid?: boolean }
interface PgSetConnection { query: (text: string, values: unknown[]) => Promise<unknown> }
interface PgManager { getConnection: (o: object) => Promise<PgConnection>, releaseConnection: (c: PgConnection) => void }
