// On a SQLite file, transactions share one sqlite3 handle instead of
// Sequelize's fresh handle per transaction (opened, schema read, closed:
// ~1 ms of CPU each, twice per command): it stays open between
// transactions, a rolled-back transaction leaves it usable and leaves
// nothing behind, what commits is seen on the plain queries' handle, and
// closing the database closes it. Runs on SQLite whatever TEST_DATABASE_URL
// says.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { QueryTypes } from 'sequelize'
import { createDatabase } from '../../src/db/index.js'

interface Handle { open: boolean }

/** The sqlite3 handle a Sequelize transaction runs on. */
const handleOf = (transaction: unknown): Handle => (transaction as { connection: Handle }).connection

t.test('transactions on a SQLite file share one handle, which closes with the database', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'united-sqlite-tx-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const db = createDatabase(`sqlite:${join(dir, 'united.sqlite')}`)
  await db.migrate()
  const insert = 'INSERT INTO users (username, password_hash, is_staff, is_active, created_at, updated_at) VALUES (?, ?, 0, 1, ?, ?)'
  const names = async (): Promise<string[]> =>
    (await db.sequelize.query<{ username: string }>('SELECT username FROM users ORDER BY username', { type: QueryTypes.SELECT })).map((r) => r.username)

  const handles = new Set<Handle>()
  for (const name of ['ada', 'bob', 'cy']) {
    await db.transaction(async (transaction) => {
      handles.add(handleOf(transaction))
      await db.sequelize.query(insert, { replacements: [name, 'x', new Date().toISOString(), new Date().toISOString()], transaction })
    })
  }
  t.equal(handles.size, 1, 'three transactions, one handle')
  const [shared] = [...handles]
  t.equal(shared?.open, true, 'the handle stays open between transactions')
  t.same(await names(), ['ada', 'bob', 'cy'], 'what they committed is seen outside them')

  await t.rejects(db.transaction(async (transaction) => {
    handles.add(handleOf(transaction))
    await db.sequelize.query(insert, { replacements: ['dan', 'x', new Date().toISOString(), new Date().toISOString()], transaction })
    throw new Error('changed my mind')
  }), /changed my mind/)
  t.same(await names(), ['ada', 'bob', 'cy'], 'a rolled-back transaction leaves nothing behind')
  await db.transaction(async (transaction) => {
    handles.add(handleOf(transaction))
    await db.sequelize.query(insert, { replacements: ['eve', 'x', new Date().toISOString(), new Date().toISOString()], transaction })
  })
  t.same(await names(), ['ada', 'bob', 'cy', 'eve'], 'and the next one commits on the same handle')
  t.equal(handles.size, 1, 'still one handle')

  await db.close()
  t.equal(shared?.open, false, 'closing the database closes it')
})
