// Migration 013 over a database with grants made before roles existed: each
// becomes an operator grant with no end (what it allowed), the groups and
// API key tables start empty, and its down step gives the grants back as
// they were. On SQLite and on PostgreSQL.
import t from 'tap'
import { QueryTypes } from 'sequelize'
import { migrator } from './migrator.js'

t.test('013 makes every existing grant an operator grant with no end, and goes down again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  await umzug.up({ to: '012-usernames-case-insensitive' })
  const now = new Date()
  await sequelize.query('INSERT INTO users (username, password_hash, is_staff, is_active, token_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    { replacements: ['alice', 'x', false, true, 0, now, now], type: QueryTypes.INSERT })
  await sequelize.query('INSERT INTO robots (uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    { replacements: ['00000000-0000-4000-8000-000000000001', 'R1', '', 'x', true, 'idle', false, false, now, now], type: QueryTypes.INSERT })
  await sequelize.query('INSERT INTO robot_access (user_id, robot_id, created_at) SELECT u.id, r.id, ? FROM users u, robots r', { replacements: [now], type: QueryTypes.INSERT })

  t.equal((await umzug.up({ to: '013-roles-groups-api-keys' })).map((m) => m.name)[0], '013-roles-groups-api-keys')
  const grants = await sequelize.query('SELECT role, expires_at FROM robot_access', { type: QueryTypes.SELECT })
  t.same(grants, [{ role: 'operator', expires_at: null }], 'the grant of before: operator, no end')
  for (const table of ['groups', 'group_robots', 'group_grants', 'api_keys']) {
    const [row] = await sequelize.query(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }) as Array<{ n: unknown }>
    t.equal(Number(row?.n), 0, `${table} is there, empty`)
  }

  await umzug.down({ to: '013-roles-groups-api-keys' })
  const back = await sequelize.query('SELECT * FROM robot_access', { type: QueryTypes.SELECT }) as Array<Record<string, unknown>>
  t.equal(back.length, 1, 'down: the grant stays')
  t.notOk('role' in (back[0] ?? {}), 'without a role')
  await t.rejects(sequelize.query('SELECT 1 FROM api_keys', { type: QueryTypes.SELECT }), 'and the new tables are gone')
  await t.resolves(umzug.up(), 'up again')
})
