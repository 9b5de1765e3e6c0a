// A fresh, empty database and the app's migrations over it, driven step by
// step (umzug's `up({ to })`, `down`), for the tests of migrations over data.
// Closed and dropped on teardown.
import type { Test } from 'tap'
import type { QueryInterface, Sequelize } from 'sequelize'
import { SequelizeStorage, Umzug } from 'umzug'
import { createDatabase, type Database } from '../../src/db/index.js'
import { migrations } from '../../src/db/migrations/index.js'
import { testDatabase } from '../helper.js'

export async function migrator (t: Test): Promise<{ db: Database, sequelize: Sequelize, umzug: Umzug<QueryInterface> }> {
  const target = await testDatabase()
  const db = createDatabase(target.url)
  t.teardown(async () => {
    await db.close()
    await target.drop()
  })
  const { sequelize } = db
  const umzug = new Umzug({
    migrations: migrations.map((m) => ({ name: m.name, up: m.up, down: m.down })),
    context: sequelize.getQueryInterface(),
    storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
    logger: undefined
  })
  return { db, sequelize, umzug }
}
