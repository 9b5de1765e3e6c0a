// docs/protocol.md §2.2 (robots): POST /robots/robot/obtain_token, the cached access
// token it hands out, and everything that voids that token.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot } from '../factory.js'

const OBTAIN = '/robots/robot/obtain_token'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const HEX64 = /^[0-9a-f]{64}$/

const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString()

t.test('POST /robots/robot/obtain_token with a JSON body answers 201 with a 64-hex access token that resolves to the robot', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const res = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })
  t.equal(res.statusCode, 201)
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'robot_uuid'])
  t.match(body.access_token, HEX64)
  t.equal(body.expires_in, 3600, 'ROBOT_TOKEN_TTL defaults to 3600 s')
  t.equal(body.robot_uuid, robot.uuid)
  t.equal(await app.services.robotTokens.resolve(body.access_token), robot.uuid)
})

t.test('POST /robots/robot/obtain_token accepts the original robot\'s form body', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app, { secret: 'a secret & with = odd chars' })
  const res = await app.inject({ method: 'POST', url: OBTAIN, headers: FORM, payload: form({ serial: robot.serial, token: robot.secret }) })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.match(body, { access_token: HEX64, expires_in: 3600, robot_uuid: robot.uuid })
  t.equal(await app.services.robotTokens.resolve(body.access_token), robot.uuid)
})

t.test('expires_in follows ROBOT_TOKEN_TTL', async (t) => {
  const app = await build(t, { ROBOT_TOKEN_TTL: '120' })
  const robot = await createRobot(app)
  const res = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })
  t.equal(res.statusCode, 201)
  t.equal(res.json().expires_in, 120)
})

t.test('each log-in gets a fresh token, and earlier tokens stay valid', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const first = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json()
  const second = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json()
  t.not(first.access_token, second.access_token)
  t.equal(await app.services.robotTokens.resolve(first.access_token), robot.uuid)
  t.equal(await app.services.robotTokens.resolve(second.access_token), robot.uuid)
  t.equal(await app.services.robotTokens.resolve('0'.repeat(64)), null, 'an unknown token resolves to nothing')
})

t.test('two robots get tokens that resolve to themselves only', async (t) => {
  const app = await build(t)
  const r1 = await createRobot(app)
  const r2 = await createRobot(app)
  const t1 = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: r1.serial, token: r1.secret } })).json()
  const t2 = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: r2.serial, token: r2.secret } })).json()
  t.equal(await app.services.robotTokens.resolve(t1.access_token), r1.uuid)
  t.equal(await app.services.robotTokens.resolve(t2.access_token), r2.uuid)
  // r1's secret does not open r2.
  const crossed = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: r2.serial, token: r1.secret } })
  t.equal(crossed.statusCode, 401)
})

t.test('wrong secret, unknown serial and a wrong secret of a disabled robot get the same 401 body; its right secret is revoked', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const disabled = await createRobot(app)
  await app.services.robots.update(disabled.uuid, { enabled: false }, { actor: null })

  const wrongSecret = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: 'not-the-secret' } })
  const unknownSerial = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: 'NO-SUCH-SERIAL', token: robot.secret } })
  const disabledWrong = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: disabled.serial, token: 'not-the-secret' } })
  const disabledForm = await app.inject({ method: 'POST', url: OBTAIN, headers: FORM, payload: form({ serial: disabled.serial, token: 'not-the-secret' }) })
  const disabledRight = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: disabled.serial, token: disabled.secret } })

  for (const res of [wrongSecret, unknownSerial, disabledWrong, disabledForm, disabledRight]) {
    t.equal(res.statusCode, 401)
    t.match(res.headers['content-type'], /^application\/json/)
  }
  t.same(wrongSecret.json(), { statusCode: 401, error: 'Unauthorized', message: 'invalid serial or token', code: 'UNITED_ROBOT_AUTH_FAILED' })
  t.equal(unknownSerial.payload, wrongSecret.payload, 'unknown serial indistinguishable from wrong secret')
  t.equal(disabledWrong.payload, wrongSecret.payload, 'a wrong secret of a disabled robot indistinguishable from any wrong secret')
  t.equal(disabledForm.payload, wrongSecret.payload)
  t.same(disabledRight.json(), { statusCode: 401, error: 'Unauthorized', message: 'this credential was revoked', code: 'UNITED_CREDENTIAL_REVOKED' }, 'the right secret of a disabled robot: revoked')
  for (const res of [wrongSecret, disabledRight]) t.notOk(res.payload.includes(robot.uuid) || res.payload.includes(disabled.uuid), 'the uuid is not revealed')
})

t.test('a re-enabled robot may log in again', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null })
  t.equal((await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).statusCode, 401)
  await app.services.robots.update(robot.uuid, { enabled: true }, { actor: null })
  t.equal((await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).statusCode, 201)
})

t.test('POST /robots/robot/obtain_token with a missing field or malformed body answers 400', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const json = { 'content-type': 'application/json' }
  const cases: Array<{ name: string, headers?: Record<string, string>, payload: string | object }> = [
    { name: 'missing token', payload: { serial: robot.serial } },
    { name: 'missing serial', payload: { token: robot.secret } },
    { name: 'empty object', payload: {} },
    { name: 'empty serial', payload: { serial: '', token: robot.secret } },
    { name: 'object as token', payload: { serial: robot.serial, token: { a: 1 } } },
    { name: 'malformed JSON', headers: json, payload: `{"serial":"${robot.serial}","token":` },
    { name: 'empty JSON body', headers: json, payload: '' },
    { name: 'form without token', headers: FORM, payload: form({ serial: robot.serial }) },
    { name: 'empty form', headers: FORM, payload: '' }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: OBTAIN, headers: c.headers, payload: c.payload as any })
    t.equal(res.statusCode, 400, c.name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, c.name)
  }
})

t.test('a robot access token expires after ROBOT_TOKEN_TTL seconds', async (t) => {
  const app = await build(t, { ROBOT_TOKEN_TTL: '1' })
  const robot = await createRobot(app)
  const res = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })
  t.equal(res.statusCode, 201)
  t.equal(res.json().expires_in, 1)
  const token = res.json().access_token as string
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid, 'valid at first')
  await sleep(2100)
  t.equal(await app.services.robotTokens.resolve(token), null, 'expired')
})

t.test('rotating the secret voids existing tokens; the old secret fails and the new one works', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const before = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json()
  const before2 = (await app.inject({ method: 'POST', url: OBTAIN, headers: FORM, payload: form({ serial: robot.serial, token: robot.secret }) })).json()
  const othersToken = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: other.serial, token: other.secret } })).json()

  const newSecret = (await app.services.robots.rotate(robot.uuid, { actor: null }, 0)).token
  t.type(newSecret, 'string')
  t.not(newSecret, robot.secret)
  await t.rejects(app.services.robotTokens.resolve(before.access_token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'first token voided')
  await t.rejects(app.services.robotTokens.resolve(before2.access_token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'second token voided')
  t.equal(await app.services.robotTokens.resolve(othersToken.access_token), other.uuid, 'another robot\'s token is untouched')

  const old = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })
  t.equal(old.statusCode, 401, 'the old secret no longer works')
  t.equal(old.json().code, 'UNITED_CREDENTIAL_REVOKED', 'a rotated-out secret is answered as revoked')

  const fresh = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: newSecret } })
  t.equal(fresh.statusCode, 201, 'the new secret works')
  t.equal(fresh.json().robot_uuid, robot.uuid)
  t.equal(await app.services.robotTokens.resolve(fresh.json().access_token), robot.uuid)
})

t.test('disabling a robot voids its tokens, and re-enabling does not bring them back', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json().access_token
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid)
  await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null })
  await t.rejects(app.services.robotTokens.resolve(token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'voided on disable')
  await app.services.robots.update(robot.uuid, { enabled: true }, { actor: null })
  await t.rejects(app.services.robotTokens.resolve(token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'still void after re-enabling')
})

t.test('renaming a robot does not void its tokens', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json().access_token
  await app.services.robots.update(robot.uuid, { name: 'renamed' }, { actor: null })
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid)
})

t.test('deleting a robot voids its tokens and its credentials', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json().access_token
  await app.services.robots.remove(robot.uuid, { actor: null })
  await t.rejects(app.services.robotTokens.resolve(token), { code: 'UNITED_CREDENTIAL_REVOKED' }, 'its token is remembered as voided')
  const login = await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })
  t.equal(login.statusCode, 401)
  t.equal(login.json().code, 'UNITED_ROBOT_AUTH_FAILED', 'its secret is forgotten with its row: an ordinary refusal')
})

t.test('a robot access token is not a user JWT', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  const token = (await app.inject({ method: 'POST', url: OBTAIN, payload: { serial: robot.serial, token: robot.secret } })).json().access_token
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(token) })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { statusCode: 401, error: 'Unauthorized' })
})
