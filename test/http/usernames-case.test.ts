// Usernames are unique without regard to case, and log-in matches them the
// same way; the stored spelling is what answers show. Creating a name that
// equals another ignoring case answers 409 UNITED_USERNAME_TAKEN (Management
// API, admin pages, the service the CLI uses), both ways round; logging in
// as ALICE is logging in as alice, on REST, the admin form and MQTT, and her
// JWT reaches her robots only, whatever the case of the MQTT username.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { AdminBrowser, staffBrowser } from '../admin/browser.js'
import { errorNextTo, location } from '../admin/html.js'
import { createRobot, createStaff, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'
import { connect, refusedWith, suback } from '../mqtt.js'

const PASSWORD = 'correct-horse-battery'

async function setup (t: Test): Promise<{ app: FastifyInstance, staff: TestUser, alice: TestUser, bob: TestUser, aliceRobot: TestRobot, bobRobot: TestRobot }> {
  const app = await build(t)
  const staff = await createStaff(app, { username: 'Chief' })
  const alice = await createUser(app, { username: 'alice', password: PASSWORD })
  const bob = await createUser(app, { username: 'Bob', password: 'bobs-own-password' })
  const aliceRobot = await createRobot(app)
  const bobRobot = await createRobot(app)
  await grant(app, alice, aliceRobot)
  await grant(app, bob, bobRobot)
  return { app, staff, alice, bob, aliceRobot, bobRobot }
}

const login = async (app: FastifyInstance, username: string, password: string) =>
  await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username, password } })

const claimsOf = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>

t.test('Management API: a name equal to another ignoring case is taken, both ways round', async (t) => {
  const { app, staff } = await setup(t)
  const create = async (username: string) => await app.inject({ method: 'POST', url: '/admin/api/users', headers: bearer(staff.jwt), payload: { username, password: PASSWORD } })
  for (const name of ['Alice', 'ALICE', 'aLiCe', 'bob', 'BOB', 'chief']) {
    const res = await create(name)
    t.equal(res.statusCode, 409, `${name}: 409`)
    t.equal(res.json().code, 'UNITED_USERNAME_TAKEN', `${name}: UNITED_USERNAME_TAKEN`)
  }
  const fresh = await create('Carol')
  t.equal(fresh.statusCode, 201, 'a new name is created')
  t.equal(fresh.json().username, 'Carol', 'as it was spelled')
  t.equal((await create('carol')).statusCode, 409, 'and its other spellings are taken at once')
  const listed = (await app.inject({ method: 'GET', url: '/admin/api/users', headers: bearer(staff.jwt) })).json().items.map((u: { username: string }) => u.username)
  t.same(listed, ['Chief', 'alice', 'Bob', 'Carol'], 'the stored spellings, one of each name')
})

t.test('the service (what `npm run manage -- createsuperuser` calls) refuses the same names', async (t) => {
  const { app } = await setup(t)
  await t.rejects(app.services.users.create({ username: 'ALICE', password: PASSWORD, isStaff: true }, { actor: null }), { code: 'UNITED_USERNAME_TAKEN' })
  await t.rejects(app.services.users.create({ username: 'bob', password: PASSWORD }, { actor: null }), { code: 'UNITED_USERNAME_TAKEN' })
})

t.test('two creations of one name in different cases at once: one is created, the other is taken', async (t) => {
  const { app } = await setup(t)
  const results = await Promise.allSettled(['Eve', 'EVE', 'eve'].map(async (username) => await app.services.users.create({ username, password: PASSWORD }, { actor: null })))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one created')
  t.same(results.filter((r) => r.status === 'rejected').map((r) => (r.reason as { code?: string }).code), ['UNITED_USERNAME_TAKEN', 'UNITED_USERNAME_TAKEN'], 'the others: 409')
})

t.test('the database itself refuses a name equal to another ignoring case (the index, not only the look-up)', async (t) => {
  const { app } = await setup(t)
  await t.rejects(app.db.models.User.create({ username: 'ALICE', passwordHash: 'x' }), { name: 'SequelizeUniqueConstraintError' })
  await t.resolves(app.db.models.User.create({ username: 'alice.2', passwordHash: 'x' }))
})

t.test('admin pages: adding a user whose name is taken ignoring case shows the error on the form', async (t) => {
  const { app, staff } = await setup(t)
  const browser = await staffBrowser(app, staff)
  await browser.get('/admin/users/new')
  const res = await browser.post('/admin/users', { username: 'ALICE', password: PASSWORD })
  t.equal(res.statusCode, 400)
  t.equal(errorNextTo(res.body, 'username'), 'A user with this username already exists.')
  await browser.get('/admin/users/new')
  t.equal((await browser.post('/admin/users', { username: 'Dora', password: PASSWORD })).statusCode, 303, 'a free name is created')
})

t.test('REST log-in matches the username without regard to case; answers and JWTs carry the stored spelling', async (t) => {
  const { app, alice, aliceRobot } = await setup(t)
  for (const typed of ['alice', 'ALICE', 'Alice', 'aLIce']) {
    const res = await login(app, typed, PASSWORD)
    t.equal(res.statusCode, 200, `${typed}: 200`)
    const { access, refresh } = res.json() as { access: string, refresh: string }
    t.match(claimsOf(access), { sub: String(alice.id), username: 'alice' }, `${typed}: the access JWT is alice's, with her spelling`)
    const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(access) })
    t.same(me.json(), { id: alice.id, username: 'alice', is_staff: false, robots: [aliceRobot.uuid] }, `${typed}: /users/me is alice, with her robots only`)
    t.equal((await app.inject({ method: 'POST', url: '/users/refresh_token/', payload: { refresh } })).statusCode, 200, `${typed}: the refresh JWT works`)
  }
  const wrong = await login(app, 'ALICE', 'wrong password')
  const unknown = await login(app, 'ALICEX', PASSWORD)
  t.equal(wrong.statusCode, 401, 'a wrong password is still wrong')
  t.same(wrong.json(), unknown.json(), 'and answers exactly as an unknown name')
})

t.test('a user stored with capitals logs in with any case', async (t) => {
  const { app, bob, bobRobot } = await setup(t)
  const res = await login(app, 'bob', 'bobs-own-password')
  t.equal(res.statusCode, 200)
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer((res.json() as { access: string }).access) })
  t.same(me.json(), { id: bob.id, username: 'Bob', is_staff: false, robots: [bobRobot.uuid] })
})

t.test('admin log-in form: CHIEF logs in as Chief; a wrong password is refused as before', async (t) => {
  const { app } = await setup(t)
  const browser = new AdminBrowser(app)
  const res = await browser.login('CHIEF', PASSWORD)
  t.equal(res.statusCode, 303)
  const token = await browser.get('/admin/token.json')
  t.equal(token.json().username, 'Chief', 'the session is Chief\'s, with the stored spelling')
  t.equal((await new AdminBrowser(app).login('chief', 'wrong password')).statusCode, 401)
})

t.test('admin grant form: the username is matched as log-in matches it', async (t) => {
  const { app, staff, alice } = await setup(t)
  const robot = await createRobot(app)
  const browser = await staffBrowser(app, staff)
  await browser.get(`/admin/robots/${robot.uuid}`)
  const res = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: 'ALICE' })
  t.equal(location(res), `/admin/robots/${robot.uuid}?notice=access_granted#access`)
  const me = await app.inject({ method: 'GET', url: '/users/me', headers: bearer(alice.jwt) })
  t.ok((me.json().robots as string[]).includes(robot.uuid), 'alice was granted the robot')
})

t.test('MQTT: the username of a user matches without regard to case; the principal and its access rules stay the JWT\'s user', async (t) => {
  const { app, aliceRobot, bobRobot } = await setup(t)
  const { access } = (await login(app, 'ALICE', PASSWORD)).json() as { access: string }
  for (const username of ['ALICE', 'alice', 'Alice']) {
    const client = await connect(t, app, { username, password: access })
    t.same(await suback(client, `robots/${aliceRobot.uuid}/stats`, 0), [0], `${username}: alice's robot is granted`)
    t.same(await suback(client, `robots/${bobRobot.uuid}/stats`, 0), [128], `${username}: Bob's robot is refused`)
    client.end(true)
  }
  t.equal(await refusedWith(t, app, { username: 'BOB', password: access }), 4, "another user's name with alice's JWT: CONNACK 4")
  t.equal(await refusedWith(t, app, { username: 'ALICEX', password: access }), 4, 'a name that only starts like hers: CONNACK 4')
})
