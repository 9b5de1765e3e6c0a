// One helper builds the real app for every test: a real
// database (in-memory SQLite, or a fresh PostgreSQL database per app when
// TEST_DATABASE_URL is set), HTTP and MQTT on port 0, closed on teardown.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import type { Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import type { PgResult } from '../src/db/index.js'

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789'

/** postgres://… from TEST_DATABASE_URL, or undefined for the embedded SQLite. */
export const pgBase = process.env.TEST_DATABASE_URL === '' ? undefined : process.env.TEST_DATABASE_URL

async function adminQuery (sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgBase })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/** A database URL for one app, and how to remove it afterwards. */
export async function testDatabase (): Promise<{ url: string, drop: () => Promise<void> }> {
  if (pgBase === undefined) return { url: 'sqlite::memory:', drop: async () => {} }
  const name = `united_test_${process.pid}_${randomBytes(4).toString('hex')}`
  await adminQuery(`CREATE DATABASE ${name}`)
  const url = new URL(pgBase)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: async () => { await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) } }
}

export function testConfig (databaseUrl: string, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_PORT: '0',
    ...overrides
  })
}

/** The real app on a fresh database; closed (and the database dropped) on teardown. */
export async function build (t: Test, overrides: Record<string, string> = {}): Promise<FastifyInstance> {
  const db = await testDatabase()
  const app = await buildApp(testConfig(db.url, overrides))
  t.teardown(async () => {
    await app.close()
    await db.drop()
  })
  return app
}

/** Both JWT header styles of docs/protocol.md §2.1. */
export const bearer = (jwt: string): Record<string, string> => ({ authorization: `Bearer ${jwt}` })
export const authentication = (jwt: string): Record<string, string> => ({ authentication: jwt })

/**
 * Runs `around` instead of each statement that inserts frames (the frame
 * writer's batch), on either database: db.pgIngest on PostgreSQL,
 * db.sqliteIngest on SQLite (the writer's own connection). `around` may throw, delay, or
 * call `run`; it gets the statement's text too.
 * Returns the function that puts the originals back (also done on teardown).
 */
export function onFrameInsert (t: Test, app: FastifyInstance, around: (run: () => Promise<unknown>, sql: string) => Promise<unknown>): () => void {
  const db = app.db
  const sqliteIngest = db.sqliteIngest
  const pgIngest = db.pgIngest
  const isFrameInsert = (sql: string): boolean => sql.includes('INTO frames')
  db.sqliteIngest = async (sql, params) => {
    if (isFrameInsert(sql)) await around(async () => { await sqliteIngest(sql, params) }, sql)
    else await sqliteIngest(sql, params)
  }
  db.pgIngest = async (name, sql, params) => {
    if (!isFrameInsert(sql)) return await pgIngest(name, sql, params)
    let result: PgResult | undefined
    await around(async () => { result = await pgIngest(name, sql, params) }, sql)
    if (result === undefined) throw new Error('the wrapped frame INSERT returned nothing')
    return result
  }
  const restore = (): void => {
    db.sqliteIngest = sqliteIngest
    db.pgIngest = pgIngest
  }
  t.teardown(restore)
  return restore
}
