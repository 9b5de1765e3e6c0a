// Migration 010 over a database that already holds frames: the history index
// becomes (robot_id, type, received_at) on PostgreSQL and (robot_id, type,
// received_at, frame_id) on SQLite, every frame is kept and read back through
// it, and the down step puts the previous index back. On SQLite, and on
// PostgreSQL when TEST_DATABASE_URL is set.
import t from 'tap'
import { QueryTypes } from 'sequelize'
import { migrations } from '../../src/db/migrations/index.js'
import { migrator } from './migrator.js'
import * as m010 from '../../src/db/migrations/010-frames-history-type.js'
import { pgBase } from '../helper.js'

t.test('010 puts the type in the history index of a table that holds frames, and its down step takes it out again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  const historyIndexes = async (): Promise<string[]> => {
    const found = await sequelize.getQueryInterface().showIndex('frames') as Array<{ name: string, primary?: boolean, fields: Array<{ attribute: string }> }>
    return found.filter((i) => i.primary !== true && !i.name.endsWith('_pkey') && !i.name.startsWith('sqlite_autoindex'))
      .map((i) => `${i.name}(${i.fields.map((f) => f.attribute).join(',')})`).sort()
  }
  const before = migrations[migrations.findIndex((m) => m.name === m010.name) - 1]?.name as string
  await umzug.up({ to: before })
  const previous = pgBase === undefined ? ['frames_robot_received(robot_id,received_at,frame_id)'] : ['frames_robot_received_at(robot_id,received_at)']
  t.same(await historyIndexes(), previous, 'before 010')

  const now = new Date('2024-05-01T12:00:00.000Z')
  await sequelize.query('INSERT INTO robots (id, uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    { replacements: [1, '00000000-0000-4000-8000-000000000001', 'SN-1', '', 'x', true, 'idle', false, false, now, now], type: QueryTypes.INSERT })
  for (let i = 0; i < 30; i++) {
    await sequelize.query('INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (?, ?, ?, ?, ?)',
      { replacements: [1, `f${i}`, 1 + (i % 3), '{}', new Date(now.getTime() + i * 1000)], type: QueryTypes.INSERT })
  }

  t.same((await umzug.up({ to: m010.name })).map((m) => m.name), [m010.name], 'only 010 was pending')
  t.same(await historyIndexes(), [pgBase === undefined ? 'frames_robot_type_received(robot_id,type,received_at,frame_id)' : 'frames_robot_type_received(robot_id,type,received_at)'], 'the type is in the history index')
  const geo = await sequelize.query<{ frame_id: string }>('SELECT frame_id FROM frames WHERE robot_id = 1 AND type = 2 ORDER BY received_at DESC, frame_id DESC', { type: QueryTypes.SELECT })
  t.same(geo.map((r) => r.frame_id), ['f28', 'f25', 'f22', 'f19', 'f16', 'f13', 'f10', 'f7', 'f4', 'f1'], 'every frame is kept and read by type')
  const [{ n }] = await sequelize.query<{ n: number | string }>('SELECT count(*) AS n FROM frames', { type: QueryTypes.SELECT }) as [{ n: number | string }]
  t.equal(Number(n), 30, 'no frame lost')

  await umzug.down()
  t.same(await historyIndexes(), previous, 'down: the previous index is back')
  t.same((await umzug.up({ to: m010.name })).map((m) => m.name), [m010.name], 'and 010 applies again')
})
