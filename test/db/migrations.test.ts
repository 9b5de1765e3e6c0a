// Migrations over a database that already holds data: 003 turns frames'
// (robot_id, frame_id) into the primary key and keeps every stored frame;
// its down step brings the surrogate id back. 004 drops frames' foreign key
// on PostgreSQL and its down step restores it. 005 narrows the history index
// to (robot_id, received_at) on PostgreSQL, and its down step widens it
// again. 007 adds a robot's previous secret and its expiry (nullable), keeps
// every robot and its grants, and its down step drops both columns without
// touching the rows. On SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.
import t from 'tap'
import { QueryTypes } from 'sequelize'
import { migrations } from '../../src/db/migrations/index.js'
import { migrator } from './migrator.js'
import * as m006 from '../../src/db/migrations/006-user-token-version.js'
import * as m007 from '../../src/db/migrations/007-robot-secret-grace.js'
import { pgBase } from '../helper.js'

t.test('003 keeps every frame, makes (robot_id, frame_id) the key, and goes back down', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  await umzug.up({ to: '002-admin-sessions' })

  const now = new Date('2024-05-01T12:00:00.000Z')
  const insert = async (sql: string, replacements: unknown[]): Promise<void> => { await sequelize.query(sql, { replacements, type: QueryTypes.INSERT }) }
  for (const id of [1, 2]) {
    await insert('INSERT INTO robots (id, uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [id, `00000000-0000-4000-8000-00000000000${id}`, `SN-${id}`, '', 'x', true, 'idle', false, false, now, now])
  }
  const frames = [[1, 'a', 0], [1, 'b', 0], [1, 'c', 1000], [2, 'a', 0]] as const
  for (const [robot, frameId, offset] of frames) {
    await insert('INSERT INTO frames (robot_id, frame_id, type, data, recorded_at, received_at) VALUES (?, ?, ?, ?, ?, ?)',
      [robot, frameId, 1, JSON.stringify({ speed: offset }), null, new Date(now.getTime() + offset)])
  }

  t.same((await umzug.up({ to: '003-frames-natural-key' })).map((m) => m.name), ['003-frames-natural-key'], 'only 003 was pending')
  const rows = await sequelize.query<{ robot_id: number, frame_id: string, data: unknown }>('SELECT robot_id, frame_id, data FROM frames ORDER BY robot_id, frame_id', { type: QueryTypes.SELECT })
  t.same(rows.map((r) => [r.robot_id, r.frame_id]), [[1, 'a'], [1, 'b'], [1, 'c'], [2, 'a']], 'every frame is kept')
  const data = rows.map((r) => typeof r.data === 'string' ? JSON.parse(r.data) as unknown : r.data)
  t.same(data, [{ speed: 0 }, { speed: 0 }, { speed: 1000 }, { speed: 0 }], 'with its data')
  const columns = Object.keys(await sequelize.getQueryInterface().describeTable('frames'))
  t.notOk(columns.includes('id'), 'the surrogate id is gone')
  await t.rejects(insert('INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (?, ?, ?, ?, ?)', [1, 'a', 1, '{}', now]), 'a second (robot, frame id) is refused')
  await insert('INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (?, ?, ?, ?, ?)', [2, 'b', 1, '{}', now])

  await umzug.down()
  const back = await sequelize.query<{ id: number | string, robot_id: number, frame_id: string }>('SELECT id, robot_id, frame_id FROM frames ORDER BY id', { type: QueryTypes.SELECT })
  t.equal(back.length, 5, 'down keeps every frame')
  t.ok(back.every((r) => Number(r.id) > 0), 'each with an id again')
  t.equal(new Set(back.map((r) => Number(r.id))).size, 5, 'ids are unique')
  await t.rejects(insert('INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (?, ?, ?, ?, ?)', [1, 'a', 1, '{}', now]), '(robot, frame id) stays unique after down')
  t.same((await umzug.up({ to: '003-frames-natural-key' })).map((m) => m.name), ['003-frames-natural-key'], 'and 003 applies again')
})

t.test('004 drops frames\' foreign key on PostgreSQL only, and its down step restores it', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  const keys = async (): Promise<number> => (await sequelize.getQueryInterface().getForeignKeyReferencesForTable('frames') as unknown[]).length
  await umzug.up({ to: '003-frames-natural-key' })
  t.equal(await keys(), 1, 'frames reference robots before 004')
  t.same((await umzug.up({ to: '004-frames-without-foreign-key' })).map((m) => m.name), ['004-frames-without-foreign-key'], 'only 004 was pending')
  t.equal(await keys(), pgBase === undefined ? 1 : 0, pgBase === undefined ? 'SQLite keeps the key' : 'PostgreSQL has none')

  const now = new Date('2024-05-01T12:00:00.000Z')
  await sequelize.query('INSERT INTO robots (id, uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    { replacements: [1, '00000000-0000-4000-8000-000000000001', 'SN-1', '', 'x', true, 'idle', false, false, now, now], type: QueryTypes.INSERT })
  await sequelize.query("INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (1, 'kept', 1, '{}', ?)", { replacements: [now], type: QueryTypes.INSERT })
  if (pgBase !== undefined) {
    // Only a write that bypasses United can leave one: down removes it before it restores the key.
    await sequelize.query("INSERT INTO frames (robot_id, frame_id, type, data, received_at) VALUES (2, 'orphan', 1, '{}', ?)", { replacements: [now], type: QueryTypes.INSERT })
  }
  await umzug.down()
  t.equal(await keys(), 1, 'down: frames reference robots again')
  const rows = await sequelize.query<{ frame_id: string }>('SELECT frame_id FROM frames ORDER BY frame_id', { type: QueryTypes.SELECT })
  t.same(rows.map((r) => r.frame_id), ['kept'], "a robot's frame is kept, an orphan is not")
  t.same((await umzug.up({ to: '004-frames-without-foreign-key' })).map((m) => m.name), ['004-frames-without-foreign-key'], 'and 004 applies again')
})

t.test('005 narrows the history index on PostgreSQL only, and its down step widens it again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  const historyIndexes = async (): Promise<string[]> => {
    const found = await sequelize.getQueryInterface().showIndex('frames') as Array<{ name: string, primary?: boolean, fields: Array<{ attribute: string }> }>
    return found.filter((i) => i.primary !== true && !i.name.endsWith('_pkey') && !i.name.startsWith('sqlite_autoindex'))
      .map((i) => `${i.name}(${i.fields.map((f) => f.attribute).join(',')})`).sort()
  }
  await umzug.up({ to: '004-frames-without-foreign-key' })
  const wide = ['frames_robot_received(robot_id,received_at,frame_id)']
  t.same(await historyIndexes(), wide, 'before 005')
  t.same((await umzug.up({ to: '005-frames-history-index' })).map((m) => m.name), ['005-frames-history-index'], 'only 005 was pending')
  t.same(await historyIndexes(), pgBase === undefined ? wide : ['frames_robot_received_at(robot_id,received_at)'], pgBase === undefined ? 'SQLite keeps the wide index' : 'PostgreSQL has the narrow one')
  await umzug.down()
  t.same(await historyIndexes(), wide, 'down: the wide index is back')
  t.same((await umzug.up({ to: '005-frames-history-index' })).map((m) => m.name), ['005-frames-history-index'], 'and 005 applies again')
})

t.test('007 adds the previous secret and its expiry to robots, keeps every row, and its down step drops them again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  const qi = sequelize.getQueryInterface()
  const columns = async (): Promise<string[]> => Object.keys(await qi.describeTable('robots'))
  // The migration just before 007, whatever its number: the list may grow between them.
  const before = migrations[migrations.findIndex((m) => m.name === m007.name) - 1]?.name as string
  await umzug.up({ to: before })
  t.notOk((await columns()).includes('previous_secret_hash'), 'no previous secret before 007')

  const now = new Date('2024-05-01T12:00:00.000Z')
  await sequelize.query('INSERT INTO users (id, username, password_hash, is_staff, is_active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    { replacements: [1, 'alice', 'x', false, true, now, now], type: QueryTypes.INSERT })
  await sequelize.query('INSERT INTO robots (id, uuid, serial, name, secret_hash, enabled, state, data_connected, command_connected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    { replacements: [1, '00000000-0000-4000-8000-000000000001', 'SN-1', '', 'scrypt$legacy', true, 'idle', false, false, now, now], type: QueryTypes.INSERT })
  await sequelize.query('INSERT INTO robot_access (user_id, robot_id, created_at) VALUES (1, 1, ?)', { replacements: [now], type: QueryTypes.INSERT })

  t.same((await umzug.up({ to: m007.name })).map((m) => m.name), [m007.name], 'only 007 was pending')
  const described = await qi.describeTable('robots')
  t.match(described, { previous_secret_hash: { allowNull: true }, previous_secret_expires_at: { allowNull: true } }, 'both columns, nullable')
  const rows = await sequelize.query<Record<string, unknown>>('SELECT serial, secret_hash, previous_secret_hash, previous_secret_expires_at FROM robots', { type: QueryTypes.SELECT })
  t.same(rows, [{ serial: 'SN-1', secret_hash: 'scrypt$legacy', previous_secret_hash: null, previous_secret_expires_at: null }], 'the robot is kept, with no previous secret')
  const until = new Date('2024-05-02T12:00:00.000Z')
  await sequelize.query('UPDATE robots SET previous_secret_hash = ?, previous_secret_expires_at = ? WHERE id = 1', { replacements: ['sha256$x', until], type: QueryTypes.UPDATE })
  const [stored] = await sequelize.query<{ previous_secret_expires_at: Date | string }>('SELECT previous_secret_expires_at FROM robots', { type: QueryTypes.SELECT })
  t.equal(new Date(stored?.previous_secret_expires_at as string).getTime(), until.getTime(), 'an expiry is stored as a date')

  await umzug.down()
  const after = await columns()
  t.notOk(after.includes('previous_secret_hash') || after.includes('previous_secret_expires_at'), 'down: both columns are gone')
  const kept = await sequelize.query<{ serial: string, secret_hash: string }>('SELECT serial, secret_hash FROM robots', { type: QueryTypes.SELECT })
  t.same(kept, [{ serial: 'SN-1', secret_hash: 'scrypt$legacy' }], 'down keeps the robot')
  const grants = await sequelize.query('SELECT user_id, robot_id FROM robot_access', { type: QueryTypes.SELECT })
  t.equal(grants.length, 1, 'and its grant')
  t.same((await umzug.up({ to: m007.name })).map((m) => m.name), [m007.name], 'and 007 applies again')
})

t.test('006 gives every user a token version of 0, keeps every row, and its down step drops it again', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  const qi = sequelize.getQueryInterface()
  await umzug.up({ to: '005-frames-history-index' })
  const now = new Date('2024-05-01T12:00:00.000Z')
  await sequelize.query('INSERT INTO users (id, username, password_hash, is_staff, is_active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    { replacements: [1, 'alice', 'x', true, true, now, now], type: QueryTypes.INSERT })
  await sequelize.query('INSERT INTO admin_sessions (id, user_id, ip, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    { replacements: ['a'.repeat(64), 1, null, now, now], type: QueryTypes.INSERT })
  t.same((await umzug.up({ to: m006.name })).map((m) => m.name), [m006.name], 'only 006 was pending')
  const rows = await sequelize.query<{ username: string, token_version: number }>('SELECT username, token_version FROM users', { type: QueryTypes.SELECT })
  t.same(rows.map((r) => ({ ...r, token_version: Number(r.token_version) })), [{ username: 'alice', token_version: 0 }], 'existing users start at version 0')
  t.match(await qi.describeTable('users'), { token_version: { allowNull: false } })
  await umzug.down()
  t.notOk('token_version' in await qi.describeTable('users'), 'down: the column is gone')
  const sessions = await sequelize.query('SELECT id FROM admin_sessions', { type: QueryTypes.SELECT })
  t.equal(sessions.length, 1, 'down keeps the rows that reference users')
})
