// docs/protocol.md §2.4, secret rotation with overlap: POST
// /admin/api/robots/{uuid}/rotate_token {"grace_seconds": N}. With N > 0 the
// new secret works at once, the previous one at obtain_token for N more
// seconds, and the robot's tokens and connections are left alone (a real
// MQTT connection keeps being served); after that the previous secret gets
// 401 (UNITED_CREDENTIAL_REVOKED: a rotated-out secret is not a guess). With
// 0, or no body, docs/protocol.md §2.4 stands. Only one previous secret is kept, in its own
// scheme. Bad values are a 400 that changes nothing.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { QueryTypes } from 'sequelize'
import t, { type Test } from 'tap'
import { bearer, build } from '../helper.js'
import { createRobot, createStaff, type TestUser } from '../factory.js'
import { closedByServer, connect, refusedWith, robotToken, sendFrame, suback } from '../mqtt.js'

const NOT_AUTHORIZED = 5

async function rotate (app: FastifyInstance, staff: TestUser, uuid: string, payload?: unknown) {
  const options: InjectOptions = { method: 'POST', url: `/admin/api/robots/${uuid}/rotate_token`, headers: bearer(staff.jwt) }
  if (payload !== undefined) options.payload = payload as Record<string, unknown>
  return await app.inject(options)
}

async function login (app: FastifyInstance, serial: string, token: string): Promise<number> {
  return (await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial, token } })).statusCode
}

/** The error code of a refused log-in (undefined when it succeeded). */
async function refusal (app: FastifyInstance, serial: string, token: string): Promise<string | undefined> {
  return (await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial, token } })).json().code
}

async function row (app: FastifyInstance, uuid: string) {
  const [r] = await app.db.sequelize.query<{ secret_hash: string, previous_secret_hash: string | null, previous_secret_expires_at: Date | string | null }>(
    'SELECT secret_hash, previous_secret_hash, previous_secret_expires_at FROM robots WHERE uuid = ?', { replacements: [uuid], type: QueryTypes.SELECT })
  if (r === undefined) throw new Error(`no robot ${uuid}`)
  return { ...r, previous_secret_expires_at: r.previous_secret_expires_at === null ? null : new Date(r.previous_secret_expires_at) }
}

function revocations (t: Test, app: FastifyInstance): Array<{ robotUuid: string, reason: string }> {
  const seen: Array<{ robotUuid: string, reason: string }> = []
  t.teardown(app.services.events.on('robotRevoked', (e) => { seen.push(e) }))
  return seen
}

t.test('grace_seconds > 0: both secrets obtain tokens, the connection and its token are left alone', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { username: robot.uuid, password: token })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  let closes = 0
  client.on('close', () => { closes++ })
  const revoked = revocations(t, app)

  const res = await rotate(app, staff, robot.uuid, { grace_seconds: 3600 })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()), ['token'], 'the answer is {token}, as without a grace period')
  const secret = res.json().token as string
  t.match(secret, /^[0-9a-f]{48}$/)
  t.not(secret, robot.secret)

  const id = randomUUID()
  t.same(await sendFrame(client, robot.uuid, id), { id, status: 'ok' }, 'the connection opened before the rotation is still served')
  t.ok(client.connected, 'and still open')
  t.equal(closes, 0, 'it never closed')
  t.same(revoked, [], 'no robotRevoked event')
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid, 'the token issued before still resolves')
  const again = await connect(t, app, { username: robot.uuid, password: token })
  t.ok(again.connected, 'and still connects')

  t.equal(await login(app, robot.serial, robot.secret), 201, 'the old secret still obtains a token')
  t.equal(await login(app, robot.serial, secret), 201, 'the new one does too')
  t.equal(await login(app, robot.serial, randomUUID()), 401, 'a wrong one does not')
  const withOld = (await app.services.robotTokens.obtain(robot.serial, robot.secret)).access_token
  const fresh = await connect(t, app, { username: robot.uuid, password: withOld })
  t.ok(fresh.connected, 'a token obtained with the old secret during the grace period connects')

  const stored = await row(app, robot.uuid)
  t.match(stored.secret_hash, /^sha256\$/, 'the new secret is generated: sha256')
  t.match(stored.previous_secret_hash, /^sha256\$/, 'the previous one keeps its hash')
  const until = stored.previous_secret_expires_at?.getTime() ?? 0
  t.ok(until > Date.now() + 3500 * 1000 && until <= Date.now() + 3600 * 1000, 'it expires grace_seconds after the rotation')

  const [entry] = (await app.services.audit.list({ limit: 10 })).items.filter((e) => e.action === 'robot.token_rotated')
  t.match(entry, { action: 'robot.token_rotated', robot_uuid: robot.uuid, details: { grace_seconds: 3600 } })
  t.notMatch(JSON.stringify(entry), secret, 'the audit entry holds no secret')
})

t.test('after grace_seconds the previous secret gets 401 and the new one 201', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const res = await rotate(app, staff, robot.uuid, { grace_seconds: 2 })
  t.equal(res.statusCode, 200)
  const secret = res.json().token as string
  t.equal(await login(app, robot.serial, robot.secret), 201, 'the old secret works during the grace period')
  const until = (await row(app, robot.uuid)).previous_secret_expires_at as Date
  await sleep(Math.max(0, until.getTime() - Date.now()) + 50)
  t.equal(await login(app, robot.serial, robot.secret), 401, 'the old secret is refused once it has passed')
  t.equal(await refusal(app, robot.serial, robot.secret), 'UNITED_CREDENTIAL_REVOKED', 'as a revoked credential')
  t.equal(await refusal(app, robot.serial, 'not-the-secret'), 'UNITED_ROBOT_AUTH_FAILED', 'a wrong secret: the ordinary refusal')
  t.equal(await app.services.robots.previousSecretExpiry(robot.uuid), null, 'no previous secret works any more')
  t.equal(await login(app, robot.serial, secret), 201, 'the new secret works')
})

t.test('grace_seconds 0, {} or no body: the old secret and its tokens are void and the connection closes (docs/protocol.md §2.4)', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  for (const [name, body] of [['grace_seconds 0', { grace_seconds: 0 }], ['{}', {}], ['no body', undefined]] as const) {
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    const client = await connect(t, app, { username: robot.uuid, password: token })
    const revoked = revocations(t, app)
    const gone = closedByServer(client)
    const res = await rotate(app, staff, robot.uuid, body)
    t.equal(res.statusCode, 200, name)
    await gone
    t.notOk(client.connected, `${name}: the connection is closed`)
    t.same(revoked, [{ robotUuid: robot.uuid, reason: 'rotated' }], `${name}: robotRevoked`)
    t.equal(await refusedWith(t, app, { username: robot.uuid, password: token }), NOT_AUTHORIZED, `${name}: the old token is void (revoked)`)
    t.equal(await login(app, robot.serial, robot.secret), 401, `${name}: the old secret is refused`)
    t.equal(await refusal(app, robot.serial, robot.secret), 'UNITED_CREDENTIAL_REVOKED', `${name}: as a revoked credential`)
    t.equal(await login(app, robot.serial, res.json().token as string), 201, `${name}: the new one works`)
    const stored = await row(app, robot.uuid)
    t.match(stored.previous_secret_hash, /^sha256\$/, `${name}: the old secret's hash is kept, to recognize it`)
    t.ok(stored.previous_secret_expires_at !== null && stored.previous_secret_expires_at.getTime() <= Date.now(), `${name}: with no grace period left`)
    t.equal(await app.services.robots.previousSecretExpiry(robot.uuid), null, `${name}: no previous secret works`)
    const [entry] = (await app.services.audit.list({ robotUuid: robot.uuid, limit: 10 })).items.filter((e) => e.action === 'robot.token_rotated')
    t.match(entry, { details: { grace_seconds: 0 } }, `${name}: audited with grace_seconds 0`)
  }
})

t.test('only one previous secret is kept: a second rotation ends the older one at once', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const first = (await rotate(app, staff, robot.uuid, { grace_seconds: 3600 })).json().token as string
  const second = (await rotate(app, staff, robot.uuid, { grace_seconds: 3600 })).json().token as string
  t.equal(await refusal(app, robot.serial, robot.secret), 'UNITED_ROBOT_AUTH_FAILED', 'the secret before the first rotation stops at once, forgotten')
  t.equal(await login(app, robot.serial, first), 201, 'the first rotation\'s secret is now the previous one')
  t.equal(await login(app, robot.serial, second), 201, 'the second rotation\'s secret works')

  const token = await robotToken(app, { ...robot, secret: first })
  const client = await connect(t, app, { username: robot.uuid, password: token })
  const gone = closedByServer(client)
  const third = (await rotate(app, staff, robot.uuid, { grace_seconds: 0 })).json().token as string
  await gone
  t.equal(await refusal(app, robot.serial, first), 'UNITED_ROBOT_AUTH_FAILED', 'a rotation with 0 ends the previous secret too, forgotten')
  t.equal(await refusal(app, robot.serial, second), 'UNITED_CREDENTIAL_REVOKED', 'and the current one, remembered as revoked')
  t.equal(await login(app, robot.serial, third), 201)
  t.equal(await refusedWith(t, app, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'tokens obtained during the grace period are void (revoked)')
})

t.test('an admin-given secret keeps its scrypt hash as the previous secret; the new one is sha256', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { secret: 'weak-pass-1' })
  t.match((await row(app, robot.uuid)).secret_hash, /^scrypt\$/)
  const secret = (await rotate(app, staff, robot.uuid, { grace_seconds: 600 })).json().token as string
  const stored = await row(app, robot.uuid)
  t.match(stored.previous_secret_hash, /^scrypt\$16384\$/, 'the weak secret stays behind scrypt')
  t.match(stored.secret_hash, /^sha256\$/, 'the generated one is sha256')
  t.equal(await login(app, robot.serial, 'weak-pass-1'), 201, 'the typed secret works during the grace period')
  t.equal(await login(app, robot.serial, 'weak-pass-2'), 401)
  t.equal(await login(app, robot.serial, secret), 201)
})

t.test('grace_seconds out of range or not an integer, extra fields or a body that is not an object: 400, nothing rotated', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const json = { 'content-type': 'application/json' }
  const cases: Array<[string, InjectOptions['payload'], Record<string, string>?]> = [
    ['-1', { grace_seconds: -1 }],
    ['604801', { grace_seconds: 604801 }],
    ['"10"', { grace_seconds: '10' }],
    ['1.5', { grace_seconds: 1.5 }],
    ['null', { grace_seconds: null }],
    ['true', { grace_seconds: true }],
    ['extra field', { grace_seconds: 10, extra: 1 }],
    ['only an extra field', { grace: 10 }],
    ['a JSON null', 'null', json],
    ['a JSON array', '[]', json],
    ['a JSON number', '10', json],
    ['malformed JSON', '{"grace_seconds":', json],
    ['a form field (text, not a number)', 'grace_seconds=10', { 'content-type': 'application/x-www-form-urlencoded' }]
  ]
  for (const [name, payload, headers] of cases) {
    const res = await app.inject({ method: 'POST', url: `/admin/api/robots/${robot.uuid}/rotate_token`, headers: { ...bearer(staff.jwt), ...headers }, payload })
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, `${name}: the contract's error body`)
  }
  t.equal(await login(app, robot.serial, robot.secret), 201, 'the secret was never rotated')
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid, 'nor its tokens voided')
  t.same((await app.services.audit.list({ robotUuid: robot.uuid, limit: 10 })).items.map((e) => e.action), ['robot.created'], 'nothing audited')

  for (const edge of [0, 604800]) {
    const res = await rotate(app, staff, robot.uuid, { grace_seconds: edge })
    t.equal(res.statusCode, 200, `${edge} is accepted`)
  }
  t.equal((await rotate(app, staff, randomUUID(), { grace_seconds: 10 })).statusCode, 404, 'an unknown robot is a 404')
})

t.test('the service refuses a grace period the schema would refuse', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  for (const bad of [-1, 604801, 1.5, Number.NaN]) {
    await t.rejects(app.services.robots.rotate(robot.uuid, { actor: null }, bad), { statusCode: 400, code: 'UNITED_BAD_REQUEST' } as unknown as Error, String(bad))
  }
  t.equal(await login(app, robot.serial, robot.secret), 201, 'nothing was rotated')
})
