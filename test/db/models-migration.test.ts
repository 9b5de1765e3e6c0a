// Migration 014 over a database with robots and commands made before models
// existed: every robot has no model, every command no params, result or own
// timeout, and a model command's name (up to 64 characters) fits where a
// mode's did; its down step gives the tables back as they were. On SQLite
// and on PostgreSQL.
import t from 'tap'
import { QueryTypes } from 'sequelize'
import { migrator } from './migrator.js'

const ROBOT = '00000000-0000-4000-8000-000000000001'
const COMMAND = '00000000-0000-4000-8000-0000000000c1'

t.test('014 leaves robots without a model and commands without params, and goes down again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  await umzug.up({ to: '013-roles-groups-api-keys' })
  const now = new Date()
  await sequelize.query('INSERT INTO robots (uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    { replacements: [ROBOT, 'R1', '', 'x', true, 'idle', false, false, now, now], type: QueryTypes.INSERT })
  await sequelize.query("INSERT INTO commands (id, robot_id, command, status, issued_by, created_at, updated_at) SELECT ?, id, 'auto', 'done', 'alice', ?, ? FROM robots",
    { replacements: [COMMAND, now, now], type: QueryTypes.INSERT })

  t.equal((await umzug.up({ to: '014-robot-models' })).map((m) => m.name)[0], '014-robot-models')
  t.same(await sequelize.query('SELECT model_name, model_version FROM robots', { type: QueryTypes.SELECT }), [{ model_name: null, model_version: null }], 'the robot of before: no model')
  t.same(await sequelize.query('SELECT command, params, result, timeout_seconds FROM commands', { type: QueryTypes.SELECT }), [{ command: 'auto', params: null, result: null, timeout_seconds: null }], 'the command of before: as it was')
  for (const table of ['robot_models', 'frame_field_rollups']) {
    const [row] = await sequelize.query(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }) as Array<{ n: unknown }>
    t.equal(Number(row?.n), 0, `${table} is there, empty`)
  }
  const long = 'c'.repeat(64)
  await t.resolves(sequelize.query("INSERT INTO commands (id, robot_id, command, status, issued_by, created_at, updated_at) SELECT ?, id, ?, 'done', 'alice', ?, ? FROM robots",
    { replacements: ['00000000-0000-4000-8000-0000000000c2', long, now, now], type: QueryTypes.INSERT }), 'a 64-character command name fits')
  await t.rejects(sequelize.query("INSERT INTO robot_models (name, version, definition, created_at) VALUES ('m', 1, '{}', ?), ('m', 1, '{}', ?)", { replacements: [now, now] }), 'one row per (name, version)')

  await umzug.down({ to: '014-robot-models' })
  const robots = await sequelize.query('SELECT * FROM robots', { type: QueryTypes.SELECT }) as Array<Record<string, unknown>>
  t.notOk('model_name' in (robots[0] ?? {}), 'down: robots without a model column')
  const commands = await sequelize.query('SELECT * FROM commands ORDER BY id', { type: QueryTypes.SELECT }) as Array<Record<string, unknown>>
  t.equal(commands[0]?.command, 'auto', 'the command of before stays')
  t.notOk('params' in (commands[0] ?? {}), 'without params')
  await t.rejects(sequelize.query('SELECT 1 FROM robot_models', { type: QueryTypes.SELECT }), 'and the new tables are gone')
  await t.resolves(umzug.up(), 'up again')
})
