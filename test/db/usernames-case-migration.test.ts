// Migration 012 over a database that already holds names differing only by
// case (made before they had to be unique that way): it does not fail, keeps
// every account, names them in a process warning, and from then on no new
// name equal to theirs ignoring case can be added, by the service or behind
// its back; each kept name logs in by its exact spelling only, and once all
// but one of a group are deleted the one left matches without regard to
// case. Its down step drops the index. On SQLite and on PostgreSQL.
import t from 'tap'
import { QueryTypes, type Sequelize } from 'sequelize'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { migrator } from './migrator.js'
import { createServices } from '../../src/services/index.js'
import { hashSecret } from '../../src/services/secrets.js'

async function insertUser (sequelize: Sequelize, username: string, passwordHash: string): Promise<void> {
  const now = new Date()
  await sequelize.query('INSERT INTO users (username, password_hash, is_staff, is_active, token_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    { replacements: [username, passwordHash, false, true, 0, now, now], type: QueryTypes.INSERT })
}

async function idOf (sequelize: Sequelize, username: string): Promise<number> {
  const [row] = await sequelize.query<{ id: number }>('SELECT id FROM users WHERE username = ?', { replacements: [username], type: QueryTypes.SELECT })
  return Number(row?.id)
}

t.test('012 keeps names that differ only by case, and no new one can join them', async (t) => {
  const { db, sequelize, umzug } = await migrator(t)
  await umzug.up({ to: '011-commands-retention' })
  const hash = await hashSecret('correct-horse-battery')
  for (const name of ['alice', 'Alice', 'ALICE', 'bob', 'Bob', 'carol']) await insertUser(sequelize, name, hash)

  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  t.equal((await umzug.up()).map((m) => m.name)[0], '012-usernames-case-insensitive', 'the migration runs and does not fail (and the later ones after it)')
  await new Promise((resolve) => setImmediate(resolve))
  const warning = warnings.find((w) => (w as Error & { code?: string }).code === 'UNITED_USERNAME_CASE_DUPLICATES')
  t.ok(warning, 'a process warning says so')
  for (const name of ['"alice"', '"Alice"', '"ALICE"', '"bob"', '"Bob"']) t.match(warning?.message, name, `it names ${name}`)
  t.notMatch(warning?.message, 'carol', 'and only them')

  const names = (await sequelize.query<{ username: string }>('SELECT username FROM users ORDER BY id', { type: QueryTypes.SELECT })).map((r) => r.username)
  t.same(names, ['alice', 'Alice', 'ALICE', 'bob', 'Bob', 'carol'], 'every account is kept, as it was spelled')

  // Behind the service's back: the index itself refuses a new member of a group, and a new spelling of carol.
  for (const name of ['aLiCe', 'BOB', 'Carol']) {
    await t.rejects(insertUser(sequelize, name, hash), `the index refuses ${name}`)
  }
  await t.resolves(insertUser(sequelize, 'dave', hash), 'a new name is accepted')

  const services = createServices({
    db,
    config: loadConfig({ DATABASE_URL: 'sqlite::memory:', JWT_SECRET: 'x'.repeat(32), FRAME_RETENTION_DAYS: '0' }),
    log: pino({ level: 'silent' }),
    jwt: { sign: () => '', verify: () => null }
  })
  t.teardown(async () => { await services.close() })
  const { users } = services
  const as = async (typed: string): Promise<number | undefined> => (await users.verifyPassword(typed, 'correct-horse-battery'))?.id
  t.equal(await as('alice'), await idOf(sequelize, 'alice'), 'alice logs in as alice')
  t.equal(await as('Alice'), await idOf(sequelize, 'Alice'), 'Alice as Alice')
  t.equal(await as('ALICE'), await idOf(sequelize, 'ALICE'), 'ALICE as ALICE')
  t.equal(await as('aLiCe'), undefined, 'a spelling that none of them has is nobody')
  t.equal(await as('CAROL'), await idOf(sequelize, 'carol'), 'a name without twins matches without regard to case')
  await t.rejects(users.create({ username: 'BoB', password: 'correct-horse-battery' }, { actor: null }), { code: 'UNITED_USERNAME_TAKEN' }, 'the service refuses a new member of a group')

  // bob, the oldest of his group, holds the name in the index; once he is deleted, Bob is alone.
  await users.remove(await idOf(sequelize, 'bob'), { actor: null })
  await t.rejects(users.create({ username: 'BOB', password: 'correct-horse-battery' }, { actor: null }), { code: 'UNITED_USERNAME_TAKEN' }, 'the name stays taken by Bob')
  t.equal(await as('BOB'), await idOf(sequelize, 'Bob'), 'and Bob, alone now, matches without regard to case')

  await umzug.down({ to: '012-usernames-case-insensitive' })
  await t.resolves(insertUser(sequelize, 'DAVE', hash), 'down: the index is gone')
})

t.test('012 on a database without such names: a plain unique index on lower(username)', async (t) => {
  const { sequelize, umzug } = await migrator(t)
  await umzug.up({ to: '011-commands-retention' })
  const hash = await hashSecret('correct-horse-battery')
  for (const name of ['alice', 'Bob']) await insertUser(sequelize, name, hash)
  await umzug.up()
  await t.rejects(insertUser(sequelize, 'ALICE', hash), 'ALICE is refused')
  await t.rejects(insertUser(sequelize, 'bob', hash), 'bob is refused')
  await t.resolves(insertUser(sequelize, 'carol', hash))
})
