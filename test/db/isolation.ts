// Shared by the isolation tests (isolation*.test.ts): the app on a SQLite
// file (the in-memory database is one connection, so isolation shows only
// on a file) and a read that takes seconds without touching a table.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { testConfig } from '../helper.js'

/** A fresh temporary directory for a SQLite file, removed on teardown. */
export function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'united-isolation-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** The real app on a SQLite file in a fresh temporary directory; closed, and the file removed, on teardown. */
export async function buildOnFile (t: Test, overrides: Record<string, string> = {}): Promise<FastifyInstance> {
  const dir = tempDir(t)
  const app = await buildApp(testConfig(`sqlite:${join(dir, 'united.sqlite')}`, overrides))
  t.teardown(async () => { await app.close() }) // teardowns run last-added first: closed before the directory goes
  return app
}

/**
 * A SQLite read that counts to `n` (roughly a second per 5,000,000 on this
 * project's machine), shaped as Sequelize's model queries are: it names a
 * table in backquotes, so Sequelize first reads that table's columns and then
 * hands the statement to sqlite3 outside its serialize() (sqlite/query.js),
 * in sqlite3's parallel mode, where each statement takes a thread of libuv's
 * pool as soon as it is asked for.
 */
export const countTo = (n: number): string =>
  `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT (SELECT count(*) FROM c) AS n FROM \`schema_migrations\` LIMIT 1`
