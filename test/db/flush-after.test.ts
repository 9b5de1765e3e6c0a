// PG_BACKEND_FLUSH_AFTER: every connection of United's pool to PostgreSQL
// asks the server to start writing the pages it evicts at once (src/db/README.md,
// "`backend_flush_after` on PostgreSQL"), the operator can choose another amount or keep
// the server's own, and a value PostgreSQL would refuse stops the start.
// The settings are checked on SQLite too; the sessions only on PostgreSQL
// (TEST_DATABASE_URL).
import t, { type Test } from 'tap'
import pg from 'pg'
import { QueryTypes } from 'sequelize'
import type { FastifyInstance } from 'fastify'
import { ConfigError, dbOptions, loadConfig } from '../../src/config.js'
import { buildApp } from '../../src/app.js'
import { pgBase, testConfig, testDatabase } from '../helper.js'

const config = (value?: string): ReturnType<typeof loadConfig> =>
  loadConfig({ NODE_ENV: 'test', ...(value === undefined ? {} : { PG_BACKEND_FLUSH_AFTER: value }) })

t.test('PG_BACKEND_FLUSH_AFTER takes PostgreSQL\'s own syntax and bounds, or server', async (t) => {
  t.same(dbOptions(config()), { pgBackendFlushAfter: '256kB' }, 'the default')
  for (const ok of ['0', '2MB', '2048kB', '256', '1MB', '64kB']) t.same(dbOptions(config(ok)), { pgBackendFlushAfter: ok }, `${ok} is taken`)
  t.same(dbOptions(config('server')), {}, 'server keeps the server\'s own')
  for (const bad of ['3MB', '2049kB', '257', '1GB', '256 kB', '-1', 'abc', '']) {
    t.throws(() => config(bad), ConfigError, `${JSON.stringify(bad)} is refused`)
  }
  t.throws(() => config('4MB'), /PG_BACKEND_FLUSH_AFTER must be 0-2MB/, 'the message names the setting and its bounds')
})

if (pgBase !== undefined) {
  /**
   * United on a fresh database whose own backend_flush_after is 128kB (what
   * an operator's `ALTER DATABASE … SET` gives every session of it).
   */
  async function united (t: Test, overrides: Record<string, string> = {}): Promise<FastifyInstance> {
    const db = await testDatabase()
    const admin = new pg.Client({ connectionString: db.url })
    await admin.connect()
    try {
      await admin.query(`ALTER DATABASE ${new URL(db.url).pathname.slice(1)} SET backend_flush_after = '128kB'`)
    } finally {
      await admin.end()
    }
    const app = await buildApp(testConfig(db.url, overrides))
    t.teardown(async () => {
      await app.close()
      await db.drop()
    })
    return app
  }

  /** backend_flush_after as the frame writer's statements and Sequelize's own queries see it. */
  async function seen (app: FastifyInstance): Promise<string[]> {
    const prepared = await app.db.pgIngest('united_test_show_flush', 'SHOW backend_flush_after', [])
    const rows = await app.db.sequelize.query<{ backend_flush_after: string }>('SHOW backend_flush_after', { type: QueryTypes.SELECT })
    return [String(prepared.rows[0]?.backend_flush_after), String(rows[0]?.backend_flush_after)]
  }

  t.test('PostgreSQL: United\'s connections flush after 256kB by default, over the database\'s own setting', async (t) => {
    t.same(await seen(await united(t)), ['256kB', '256kB'])
  })

  t.test('PostgreSQL: PG_BACKEND_FLUSH_AFTER=1MB reaches every connection', async (t) => {
    t.same(await seen(await united(t, { PG_BACKEND_FLUSH_AFTER: '1MB' })), ['1MB', '1MB'])
  })

  t.test('PostgreSQL: PG_BACKEND_FLUSH_AFTER=server leaves the database\'s own setting', async (t) => {
    t.same(await seen(await united(t, { PG_BACKEND_FLUSH_AFTER: 'server' })), ['128kB', '128kB'])
  })
}
