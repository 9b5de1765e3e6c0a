// How robot secrets are stored (src/http/README.md, "Secrets at rest"): a secret the server
// generated is a sha256 hash, one an admin typed an scrypt hash, and either
// works at POST /robots/robot/obtain_token, as do the scrypt hashes of
// generated secrets stored before the sha256 scheme. Wrong secrets get 401
// under both schemes, and a stored hash that cannot be read is a 401, not
// a 500. Each row is read from the database itself.
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t from 'tap'
import { hashSecret, randomToken } from '../../src/services/secrets.js'
import { createRobot, createStaff } from '../factory.js'
import { bearer, build } from '../helper.js'

const OBTAIN = '/robots/robot/obtain_token'
const SHA256 = /^sha256\$[A-Za-z0-9_-]{43}$/
const SCRYPT = /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/

async function login (app: FastifyInstance, serial: string, token: string) {
  return await app.inject({ method: 'POST', url: OBTAIN, payload: { serial, token } })
}

async function storedHash (app: FastifyInstance, uuid: string): Promise<string> {
  const [row] = await app.db.sequelize.query<{ secret_hash: string }>('SELECT secret_hash FROM robots WHERE uuid = ?', { replacements: [uuid], type: QueryTypes.SELECT })
  if (row === undefined) throw new Error(`no robot ${uuid}`)
  return row.secret_hash
}

async function setStoredHash (app: FastifyInstance, uuid: string, hash: string): Promise<void> {
  await app.db.sequelize.query('UPDATE robots SET secret_hash = ? WHERE uuid = ?', { replacements: [hash, uuid], type: QueryTypes.UPDATE })
}

t.test('a generated secret is stored as sha256 and obtains a token; a wrong one gets 401', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  t.match(robot.secret, /^[0-9a-f]{48}$/, '192 random bits, hex')
  const stored = await storedHash(app, robot.uuid)
  t.match(stored, SHA256)
  t.notOk(stored.includes(robot.secret), 'the secret is not in the row')
  const ok = await login(app, robot.serial, robot.secret)
  t.equal(ok.statusCode, 201)
  t.equal(ok.json().robot_uuid, robot.uuid)
  for (const wrong of [randomToken(24), robot.secret.toUpperCase(), robot.secret.slice(1), `${robot.secret}0`, stored]) {
    const res = await login(app, robot.serial, wrong)
    t.equal(res.statusCode, 401, 'wrong secret')
    t.equal(res.json().code, 'UNITED_ROBOT_AUTH_FAILED')
  }
})

t.test('a given secret is stored as scrypt and obtains a token; a wrong one gets 401', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app, { secret: 'typed-by-an-admin' })
  t.match(await storedHash(app, robot.uuid), SCRYPT)
  t.equal((await login(app, robot.serial, 'typed-by-an-admin')).statusCode, 201)
  t.equal((await login(app, robot.serial, 'typed-by-an-admin ')).statusCode, 401)
  t.equal((await login(app, robot.serial, 'Typed-by-an-admin')).statusCode, 401)
})

t.test('a given secret that looks generated is still stored as scrypt: the scheme follows who chose the secret', async (t) => {
  const app = await build(t)
  const typed = '0'.repeat(48)
  const robot = await createRobot(app, { secret: typed })
  t.match(await storedHash(app, robot.uuid), SCRYPT)
  t.equal((await login(app, robot.serial, typed)).statusCode, 201)
})

t.test('POST /admin/api/robots without a token stores sha256, with one scrypt', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const generated = await app.inject({ method: 'POST', url: '/admin/api/robots', headers: bearer(staff.jwt), payload: { serial: 'SN-GEN' } })
  const given = await app.inject({ method: 'POST', url: '/admin/api/robots', headers: bearer(staff.jwt), payload: { serial: 'SN-GIVEN', token: 'given-secret-1' } })
  t.equal(generated.statusCode, 201)
  t.equal(given.statusCode, 201)
  t.match(await storedHash(app, generated.json().uuid as string), SHA256)
  t.match(await storedHash(app, given.json().uuid as string), SCRYPT)
  t.equal((await login(app, 'SN-GEN', generated.json().token as string)).statusCode, 201)
  t.equal((await login(app, 'SN-GIVEN', 'given-secret-1')).statusCode, 201)
})

t.test('a legacy scrypt hash of a generated-looking secret still obtains a token', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const legacySecret = randomToken(24)
  await setStoredHash(app, robot.uuid, await hashSecret(legacySecret))
  t.match(await storedHash(app, robot.uuid), SCRYPT, 'the row holds an scrypt hash, as before the sha256 scheme')
  const ok = await login(app, robot.serial, legacySecret)
  t.equal(ok.statusCode, 201)
  t.equal(ok.json().robot_uuid, robot.uuid)
  t.equal((await login(app, robot.serial, robot.secret)).statusCode, 401, 'the secret it replaced does not')
  t.equal((await login(app, robot.serial, randomToken(24))).statusCode, 401, 'nor a wrong one')
  t.match(await storedHash(app, robot.uuid), SCRYPT, 'a log-in does not rewrite the hash')
})

t.test('a stored hash that cannot be read answers 401, never 500, and the server goes on', async (t) => {
  const app = await build(t, { AUTH_FAIL_LIMIT: '0' }) // many wrong secrets from one address on purpose
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const malformed = ['', 'garbage', 'sha256$', 'sha256$short', 'scrypt$abc$8$1$c2FsdA$a2V5', 'scrypt$16384$8$1$$', 'scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5', 'bcrypt$2b$10$abc']
  for (const hash of malformed) {
    await setStoredHash(app, robot.uuid, hash)
    for (const secret of [robot.secret, hash === '' ? 'x' : hash]) {
      const res = await login(app, robot.serial, secret)
      t.equal(res.statusCode, 401, `stored ${JSON.stringify(hash)}`)
      t.equal(res.json().code, 'UNITED_ROBOT_AUTH_FAILED')
    }
  }
  t.equal((await login(app, other.serial, other.secret)).statusCode, 201, 'other robots still log in')
})

t.test('an unknown serial gets the same 401 whatever the shape of the secret', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const wrong = await login(app, robot.serial, randomToken(24))
  for (const secret of [randomToken(24), 'typed-secret', robot.secret]) {
    const res = await login(app, 'NO-SUCH-SERIAL', secret)
    t.equal(res.statusCode, 401)
    t.equal(res.payload, wrong.payload, 'the same body as a wrong secret')
  }
})
