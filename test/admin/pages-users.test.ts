// docs/admin.md, the user admin pages, driven like a browser (cookies, CSRF
// token of the page on screen) against the real app, broker and database:
// the list in keyset pages, adding (field errors next to their field, the
// typed username and staff box kept, the password never echoed, nothing
// created), editing the password (old one refused, sessions ended), the staff
// and active flags (deactivating closes real MQTT connections), the guards
// that keep staff from locking themselves out, nothing half-saved, the robots
// each user can access (grant by serial, revoke), deletion after a
// confirmation, and the audit log of all of it.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { bearer } from '../helper.js'
import { createRobot, createStaff, createUser, grant, type TestUser } from '../factory.js'
import { closedByServer, connectRobot, connectUser, refusedWith, subscribe, suback } from '../mqtt.js'
import { AdminBrowser, staffBrowser, staffSetup } from './browser.js'
import { errorFields, errorNextTo, follow, inputValue, isChecked, location, notice, section, walkPages } from './html.js'

const NOT_AUTHORIZED = 5
const REFUSED = 128

const setup = staffSetup

/** The user ids of a list page, in page order. */
function listed (body: string): string[] {
  return [...body.matchAll(/<td><a href="\/admin\/users\/(\d+)">/g)].map((m) => m[1] as string)
}

/** The serials listed in the user page's access section. */
function accessible (body: string): string[] {
  return [...section(body, '<section id="access"', '</section>').matchAll(/<a href="\/admin\/robots\/[0-9a-f-]{36}">([^<]*)<\/a>/g)].map((m) => m[1] as string)
}

async function userLogin (app: FastifyInstance, username: string, password: string): Promise<number> {
  return (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username, password } })).statusCode
}

async function userCount (app: FastifyInstance): Promise<number> {
  return await app.db.models.User.count()
}

async function auditLog (app: FastifyInstance) {
  return (await app.services.audit.list({ limit: 1000 })).items.reverse()
}

const LOGINS = ['user.login', 'user.login_failed']

/**
 * Checks that the changes audited since `before` (log-ins, which the tests
 * make on the way, aside) are `actions`, each by `staff` from the test client's address.
 */
async function auditedSince (t: Test, app: FastifyInstance, before: number, staff: TestUser, actions: string[]) {
  const entries = (await auditLog(app)).slice(before).filter((e) => !LOGINS.includes(e.action))
  t.same(entries.map((e) => e.action), actions, `audited: ${actions.join(', ') || 'nothing'}`)
  for (const e of entries) t.match(e, { actor_id: staff.id, actor: staff.username, ip: '127.0.0.1' }, `${e.action} by the staff user`)
  return entries
}

async function restRobots (app: FastifyInstance, user: TestUser): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET /robots: ${res.statusCode}`)
  return (res.json().items as Array<{ uuid: string }>).map((r) => r.uuid)
}

/** Whether a browser's admin session still works (a page, not a redirect to the log-in form). */
async function loggedIn (browser: AdminBrowser): Promise<boolean> {
  const res = await browser.get('/admin/users')
  if (res.statusCode === 200) return true
  if (res.statusCode === 303 && location(res)?.startsWith('/admin/login') === true) return false
  throw new Error(`unexpected ${res.statusCode}`)
}

/** The form of a user page as a browser submits it: checkboxes only when checked. */
function account (opts: { password?: string, staff: boolean, active: boolean }): Record<string, string | undefined> {
  return { password: opts.password ?? '', is_staff: opts.staff ? 'on' : undefined, is_active: opts.active ? 'on' : undefined }
}

// ---------------------------------------------------------------- list

t.test('the user list shows 20 users a page; the Next link gives the next 20 and every user exactly once', async (t) => {
  const { app, staff, browser } = await setup(t)
  const ids = [String(staff.id)]
  for (let i = 0; i < 44; i++) ids.push(String((await createUser(app, { username: `member-${String(i).padStart(2, '0')}`, isStaff: i === 3 })).id))

  const walked = await walkPages(browser, '/admin/users', listed)
  t.same(walked.statuses, [200, 200, 200])
  t.same(walked.pages.map((p) => p.length), [20, 20, 5], '20 a page')
  t.same(walked.pages.flat(), ids, 'every user exactly once, in order')

  const first = await browser.get('/admin/users')
  t.match(first.body, /<td><a href="\/admin\/users\/\d+">member-03<\/a><\/td>\s*<td>yes<\/td>\s*<td>yes<\/td>/, 'a staff row says so')
  t.match(first.body, /<td><a href="\/admin\/users\/\d+">member-04<\/a><\/td>\s*<td>no<\/td>\s*<td>yes<\/td>/, 'a plain user row says so')
  t.notMatch(first.body, '« First page')
  t.match((await browser.get(walked.links[0] as string)).body, '<a href="/admin/users">« First page</a>')
  t.equal((await browser.get('/admin/users?cursor=bad')).statusCode, 400, 'a malformed cursor is a 400 page')
})

// ---------------------------------------------------------------- add

t.test('adding a user redirects to their page; they log in with the password; the staff box makes them staff', async (t) => {
  const { app, staff, browser } = await setup(t)
  const form = await browser.get('/admin/users/new')
  t.equal(form.statusCode, 200)
  t.equal(inputValue(form.body, 'username'), '')
  t.equal(isChecked(form.body, 'is_staff'), false)
  const before = (await auditLog(app)).length

  const res = await browser.post('/admin/users', { username: '  carol  ', password: 'carol-password-1' })
  t.equal(res.statusCode, 303)
  const id = Number(/^\/admin\/users\/(\d+)\?notice=user_created$/.exec(location(res) ?? '')?.[1])
  t.ok(id > 0, 'redirected to the new user’s page')
  const page = await follow(browser, res)
  t.equal(notice(page.body), 'User added.')
  t.match(page.body, '<h1>carol</h1>')
  t.same(await app.services.users.get(id), { id, username: 'carol', is_staff: false, is_active: true }, 'created, username trimmed')
  t.equal(await userLogin(app, 'carol', 'carol-password-1'), 200, 'the user logs in with the password')
  t.equal((await new AdminBrowser(app).login('carol', 'carol-password-1')).statusCode, 401, 'not staff: no admin')

  await browser.get('/admin/users/new')
  const staffRes = await browser.post('/admin/users', { username: 'dora', password: 'dora-password-1', is_staff: 'on' })
  t.equal(staffRes.statusCode, 303)
  t.match(await app.services.users.findByUsername('dora'), { is_staff: true, is_active: true })
  await staffBrowser(app, { username: 'dora', password: 'dora-password-1' })
  t.pass('a staff user added here may use the admin')

  const entries = await auditedSince(t, app, before, staff, ['user.created', 'user.created'])
  t.match(entries, [{ target_user_id: id, details: { username: 'carol', is_staff: false } }, { details: { username: 'dora', is_staff: true } }])
  t.notMatch(JSON.stringify(await auditLog(app)), /carol-password|dora-password/, 'no password in the audit log')
})

t.test('an invalid user form comes back with field errors, the username and staff box as typed, no password, nothing created', async (t) => {
  const { app, staff, browser } = await setup(t)
  await createUser(app, { username: 'dave' })
  const count = await userCount(app)
  const before = (await auditLog(app)).length
  const cases: Array<{ why: string, username: string, password: string, staffBox: boolean, errors: Record<string, string> }> = [
    { why: 'characters not allowed', username: 'bad name!', password: 'good-password-1', staffBox: true, errors: { username: 'Only letters, digits and _ . @ + -.' } },
    { why: 'markup in the username', username: '<b>"x"</b>', password: 'good-password-2', staffBox: false, errors: { username: 'Only letters, digits and _ . @ + -.' } },
    { why: 'empty username', username: '', password: 'good-password-3', staffBox: true, errors: { username: 'This field is required.' } },
    { why: 'too-long username', username: 'u'.repeat(151), password: 'good-password-4', staffBox: false, errors: { username: 'At most 150 characters.' } },
    { why: 'too-short password', username: 'erin', password: 'short12', staffBox: true, errors: { password: 'At least 8 characters.' } },
    { why: 'empty password', username: 'erin', password: '', staffBox: false, errors: { password: 'At least 8 characters.' } },
    { why: 'both wrong', username: 'no spaces', password: 'tiny-pw', staffBox: true, errors: { username: 'Only letters, digits and _ . @ + -.', password: 'At least 8 characters.' } },
    { why: 'duplicate username', username: 'dave', password: 'good-password-5', staffBox: true, errors: { username: 'A user with this username already exists.' } }
  ]
  for (const { why, username, password, staffBox, errors } of cases) {
    await browser.get('/admin/users/new')
    const res = await browser.post('/admin/users', { username, password, is_staff: staffBox ? 'on' : undefined })
    t.equal(res.statusCode, 400, why)
    t.same(errorFields(res.body).sort(), Object.keys(errors).sort(), `${why}: errors on exactly these fields`)
    for (const [field, message] of Object.entries(errors)) t.equal(errorNextTo(res.body, field), message, `${why}: the ${field} error is next to the field`)
    t.equal(inputValue(res.body, 'username'), username, `${why}: the username is kept`)
    t.equal(isChecked(res.body, 'is_staff'), staffBox, `${why}: the staff box is as it was`)
    t.equal(inputValue(res.body, 'password'), '', `${why}: the password field is empty`)
    if (password !== '') t.notMatch(res.body, password, `${why}: the password is not echoed`)
    t.equal(await userCount(app), count, `${why}: nothing created`)
  }
  t.notMatch((await browser.get('/admin/users')).body, /erin/, 'no erin in the list')
  await auditedSince(t, app, before, staff, [])
})

// ---------------------------------------------------------------- edit

t.test('a new password: the old one stops working, the new one works, and the user’s admin sessions end', async (t) => {
  const { app, staff, browser } = await setup(t)
  const erin = await createStaff(app, { username: 'erin' })
  const erinBrowser = await staffBrowser(app, erin)
  t.ok(await loggedIn(erinBrowser), 'erin is logged in to the admin')
  const page = await browser.get(`/admin/users/${erin.id}`)
  t.equal(page.statusCode, 200)
  t.equal(isChecked(page.body, 'is_staff'), true, 'the form shows the staff flag')
  t.equal(isChecked(page.body, 'is_active'), true, 'and the active flag')
  t.equal(inputValue(page.body, 'password'), '')
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/users/${erin.id}`, account({ password: 'erin-new-password', staff: true, active: true }))
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/users/${erin.id}?notice=user_updated`)
  t.equal(notice((await follow(browser, res)).body), 'User saved.')
  t.equal(await userLogin(app, 'erin', erin.password), 401, 'the old password is refused')
  t.equal(await userLogin(app, 'erin', 'erin-new-password'), 200, 'the new one works')
  t.notOk(await loggedIn(erinBrowser), 'erin’s admin session ended')
  t.ok(await loggedIn(browser), 'the staff user’s own session goes on')
  t.match(await app.services.users.get(erin.id), { is_staff: true, is_active: true }, 'flags unchanged')
  const [entry] = await auditedSince(t, app, before, staff, ['user.updated'])
  t.match(entry, { target_user_id: erin.id, details: { password_changed: true, is_staff: true, is_active: true } })
  t.notMatch(JSON.stringify(entry), 'erin-new-password')
})

t.test('the staff box gives and takes the admin', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createUser(app, { username: 'bob' })
  const robot = await createRobot(app)
  const stats = `robots/${robot.uuid}/stats`
  const watcher = await connectUser(t, app, bob)
  t.same(await suback(watcher, stats), [REFUSED], 'bob may not watch a robot he was not granted')
  const before = (await auditLog(app)).length
  t.equal((await new AdminBrowser(app).login('bob', bob.password)).statusCode, 401, 'bob is not staff')

  await browser.get(`/admin/users/${bob.id}`)
  const made = await browser.post(`/admin/users/${bob.id}`, account({ staff: true, active: true }))
  t.equal(made.statusCode, 303)
  t.match(await app.services.users.get(bob.id), { is_staff: true, is_active: true })
  t.equal(isChecked((await follow(browser, made)).body, 'is_staff'), true)
  const bobBrowser = await staffBrowser(app, bob)
  t.ok(await loggedIn(bobBrowser), 'bob may use the admin')
  t.equal(await userLogin(app, 'bob', bob.password), 200, 'the password is kept when the field is left empty')
  t.same(await suback(watcher, stats), [1], 'as staff, bob may watch every robot, on the connection he has')

  const taken = await browser.post(`/admin/users/${bob.id}`, account({ staff: false, active: true }))
  t.equal(taken.statusCode, 303)
  t.match(await app.services.users.get(bob.id), { is_staff: false, is_active: true })
  t.notOk(await loggedIn(bobBrowser), 'bob’s admin session no longer works')
  t.same(await suback(watcher, stats), [REFUSED], 'and he may no longer watch the robot')
  t.ok(watcher.connected, 'without losing his connection')

  const entries = await auditedSince(t, app, before, staff, ['user.updated', 'user.updated'])
  t.same(entries.map((e) => e.details), [{ is_staff: true, is_active: true }, { is_staff: false, is_active: true }])
})

t.test('deactivating a user closes their MQTT connections and admin sessions; reactivating lets them log in again', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createStaff(app, { username: 'bob' })
  const other = await createUser(app)
  const clients = [await connectUser(t, app, bob), await connectUser(t, app, bob)]
  const bystander = await connectUser(t, app, other)
  const bobBrowser = await staffBrowser(app, bob)
  t.ok(await loggedIn(bobBrowser))
  await browser.get(`/admin/users/${bob.id}`)
  const before = (await auditLog(app)).length

  const gone = Promise.all(clients.map(closedByServer))
  const res = await browser.post(`/admin/users/${bob.id}`, account({ staff: true, active: false }))
  t.equal(res.statusCode, 303)
  await gone
  t.ok(clients.every((c) => !c.connected), 'both of bob’s connections are closed')
  t.ok(bystander.connected, 'another user stays connected')
  t.equal(await refusedWith(t, app, { username: bob.username, password: bob.jwt }), NOT_AUTHORIZED, 'bob’s JWT now gets CONNACK 5')
  t.equal(await userLogin(app, 'bob', bob.password), 401, 'bob cannot log in')
  t.notOk(await loggedIn(bobBrowser), 'bob’s admin session ended')
  const shown = await follow(browser, res)
  t.equal(isChecked(shown.body, 'is_active'), false, 'the page shows bob inactive')

  const again = await browser.post(`/admin/users/${bob.id}`, account({ staff: true, active: true }))
  t.equal(again.statusCode, 303)
  t.equal(await userLogin(app, 'bob', bob.password), 200, 'bob logs in again')
  t.equal(await refusedWith(t, app, { username: bob.username, password: bob.jwt }), NOT_AUTHORIZED, 'his JWT from before the deactivation stays refused, as revoked (docs/protocol.md §2.4)')
  t.ok((await connectUser(t, app, { ...bob, jwt: await app.services.auth.issueAccess(bob) })).connected, 'a new one connects over MQTT')
  t.equal((await bobBrowser.login('bob', bob.password)).statusCode, 303, 'and to the admin')

  const entries = await auditedSince(t, app, before, staff, ['user.updated', 'user.updated'])
  t.same(entries.map((e) => e.details), [{ is_staff: true, is_active: false }, { is_staff: true, is_active: true }])
})

t.test('a staff user cannot remove their own staff flag or deactivate themselves; nothing of the form is saved', async (t) => {
  const { app, staff, browser } = await setup(t)
  const before = (await auditLog(app)).length
  const cases: Array<[boolean, boolean, Record<string, string>]> = [
    [false, true, { is_staff: 'You cannot remove your own staff status.' }],
    [true, false, { is_active: 'You cannot deactivate yourself.' }],
    [false, false, { is_staff: 'You cannot remove your own staff status.', is_active: 'You cannot deactivate yourself.' }]
  ]
  for (const [isStaff, active, errors] of cases) {
    const why = `staff ${String(isStaff)}, active ${String(active)}`
    await browser.get(`/admin/users/${staff.id}`)
    const res = await browser.post(`/admin/users/${staff.id}`, account({ password: 'a-new-password-1', staff: isStaff, active }))
    t.equal(res.statusCode, 400, why)
    t.same(errorFields(res.body).sort(), Object.keys(errors).sort(), `${why}: errors on exactly these fields`)
    for (const [field, message] of Object.entries(errors)) t.equal(errorNextTo(res.body, field), message, `${why}: the ${field} error is next to the box`)
    t.equal(isChecked(res.body, 'is_staff'), isStaff, `${why}: the staff box as typed`)
    t.equal(isChecked(res.body, 'is_active'), active, `${why}: the active box as typed`)
    t.notMatch(res.body, 'a-new-password-1', `${why}: the password is not echoed`)
    t.same(await app.services.users.get(staff.id), { id: staff.id, username: staff.username, is_staff: true, is_active: true }, `${why}: flags unchanged`)
    t.equal(await userLogin(app, staff.username, staff.password), 200, `${why}: the password is unchanged`)
    t.ok(await loggedIn(browser), `${why}: still logged in`)
  }
  t.equal(await userLogin(app, staff.username, 'a-new-password-1'), 401)
  await auditedSince(t, app, before, staff, [])
})

t.test('a staff user changing their own password is logged out and sent to the log-in form', async (t) => {
  const { app, staff, browser } = await setup(t)
  const elsewhere = await staffBrowser(app, staff)
  await browser.get(`/admin/users/${staff.id}`)
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/users/${staff.id}`, account({ password: 'my-new-password-1', staff: true, active: true }))
  t.equal(res.statusCode, 303)
  t.equal(location(res), '/admin/login?notice=password_changed')
  const login = await follow(browser, res)
  t.equal(login.statusCode, 200)
  t.equal(notice(login.body), 'Your password was changed: log in again with the new one.')
  t.notOk(await loggedIn(browser), 'this session ended')
  t.notOk(await loggedIn(elsewhere), 'and the other session too')
  t.equal((await new AdminBrowser(app).login(staff.username, staff.password)).statusCode, 401, 'the old password no longer logs in')
  t.equal((await browser.login(staff.username, 'my-new-password-1')).statusCode, 303, 'the new one does')
  t.ok(await loggedIn(browser))
  t.equal(await userLogin(app, staff.username, 'my-new-password-1'), 200)
  const [entry] = await auditedSince(t, app, before, staff, ['user.updated'])
  t.match(entry, { target_user_id: staff.id, details: { password_changed: true } })
})

t.test('a too-short new password is shown next to the field and changes nothing, the flags included', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createUser(app, { username: 'bob' })
  await browser.get(`/admin/users/${bob.id}`)
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/users/${bob.id}`, account({ password: 'short', staff: true, active: false }))
  t.equal(res.statusCode, 400)
  t.same(errorFields(res.body), ['password'])
  t.equal(errorNextTo(res.body, 'password'), 'At least 8 characters.')
  t.equal(inputValue(res.body, 'password'), '', 'the password is not echoed')
  t.equal(isChecked(res.body, 'is_staff'), true, 'the boxes are as typed')
  t.equal(isChecked(res.body, 'is_active'), false)
  t.same(await app.services.users.get(bob.id), { id: bob.id, username: 'bob', is_staff: false, is_active: true }, 'neither flag was saved')
  t.equal(await userLogin(app, 'bob', bob.password), 200, 'the old password still works')
  t.equal(await userLogin(app, 'bob', 'short'), 401)
  await auditedSince(t, app, before, staff, [])
})

t.test('an unknown or malformed user id is a 404 page', async (t) => {
  const { browser } = await setup(t)
  for (const url of ['/admin/users/999999', '/admin/users/abc', '/admin/users/0', '/admin/users/999999/delete']) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 404, url)
    t.match(res.body, 'Not found')
  }
})

// ---------------------------------------------------------------- access

t.test('the user page lists the robots the user can access; grant by serial and revoke', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createUser(app, { username: 'bob' })
  const r1 = await createRobot(app, { serial: 'SN-ONE', name: 'One' })
  const r2 = await createRobot(app, { serial: 'SN-TWO' })
  await createRobot(app, { serial: 'SN-THREE' })
  await grant(app, bob, r1)
  const watcher = await connectUser(t, app, bob)
  t.same(await suback(watcher, `robots/${r2.uuid}/stats`), [REFUSED], 'bob cannot watch SN-TWO yet')

  const page = await browser.get(`/admin/users/${bob.id}`)
  t.same(accessible(page.body), ['SN-ONE'], 'the page lists the granted robot')
  t.match(page.body, 'SN-ONE</a> — One')
  const before = (await auditLog(app)).length

  const granted = await browser.post(`/admin/users/${bob.id}/access`, { serial: ' SN-TWO ' })
  t.equal(granted.statusCode, 303)
  t.equal(location(granted), `/admin/users/${bob.id}?notice=access_granted#access`)
  const afterGrant = await follow(browser, granted)
  t.equal(notice(afterGrant.body), 'Access granted.')
  t.same(accessible(afterGrant.body), ['SN-ONE', 'SN-TWO'])
  t.same(await restRobots(app, bob), [r1.uuid, r2.uuid], 'REST lists both')
  t.same(await suback(watcher, `robots/${r2.uuid}/stats`), [1], 'bob may watch SN-TWO now')

  t.match(afterGrant.body, `action="/admin/users/${bob.id}/access/${r1.uuid}/revoke"`)
  const revoked = await browser.post(`/admin/users/${bob.id}/access/${r1.uuid}/revoke`)
  t.equal(revoked.statusCode, 303)
  t.equal(location(revoked), `/admin/users/${bob.id}?notice=access_revoked#access`)
  const afterRevoke = await follow(browser, revoked)
  t.equal(notice(afterRevoke.body), 'Access revoked.')
  t.same(accessible(afterRevoke.body), ['SN-TWO'])
  t.same(await restRobots(app, bob), [r2.uuid], 'REST lists only SN-TWO')
  t.same(await suback(watcher, `robots/${r1.uuid}/stats`), [REFUSED], 'bob can no longer watch SN-ONE')

  const entries = await auditedSince(t, app, before, staff, ['access.granted', 'access.revoked'])
  t.match(entries, [{ robot_uuid: r2.uuid, target_user_id: bob.id }, { robot_uuid: r1.uuid, target_user_id: bob.id }])
})

t.test('granting an unknown or empty serial shows the error next to the field, keeps what was typed, grants nothing', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createUser(app, { username: 'bob' })
  await createRobot(app, { serial: 'SN-CASE' })
  const before = (await auditLog(app)).length
  const cases: Array<[string, string]> = [
    ['SN-NOPE', 'No robot with this serial.'],
    ['sn-case', 'No robot with this serial.'],
    ['  ', 'This field is required.'],
    ['"><script>', 'No robot with this serial.']
  ]
  for (const [typed, message] of cases) {
    await browser.get(`/admin/users/${bob.id}`)
    const res = await browser.post(`/admin/users/${bob.id}/access`, { serial: typed })
    t.equal(res.statusCode, 400, `serial ${JSON.stringify(typed)}`)
    t.same(errorFields(res.body), ['serial'])
    t.equal(errorNextTo(res.body, 'serial'), message)
    t.equal(inputValue(res.body, 'serial'), typed.trim(), 'the typed serial is kept')
    t.notMatch(res.body, '"><script>', 'and escaped')
    t.same(accessible(res.body), [])
  }
  t.same(await restRobots(app, bob), [])
  await auditedSince(t, app, before, staff, [])
})

// ---------------------------------------------------------------- delete

t.test('deleting a user asks first, then deletes them, closes their connections and returns to the list', async (t) => {
  const { app, staff, browser } = await setup(t)
  const bob = await createUser(app, { username: 'bob' })
  const robot = await createRobot(app)
  await grant(app, bob, robot)
  const client = await connectUser(t, app, bob)
  // Bob has a history: a command he sent stays in the robot's list after him.
  const robotClient = await connectRobot(t, app, robot)
  t.same(await subscribe(robotClient, `robots/${robot.uuid}/commands`), [1])
  const sent = await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(bob.jwt), payload: { robot_uuid: robot.uuid, command: 'auto' } })
  t.equal(sent.statusCode, 201, 'bob sends a command')
  const count = await userCount(app)
  const before = (await auditLog(app)).length

  const confirm = await browser.get(`/admin/users/${bob.id}/delete`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, '<h1>Delete bob?</h1>')
  t.match(confirm.body, `<form method="post" action="/admin/users/${bob.id}/delete">`)
  t.equal(await userCount(app), count, 'asking deletes nothing')

  const gone = closedByServer(client)
  const res = await browser.post(`/admin/users/${bob.id}/delete`)
  t.equal(res.statusCode, 303)
  t.equal(location(res), '/admin/users?notice=user_deleted')
  await gone
  t.notOk(client.connected, 'bob’s connection is closed')
  t.equal(await refusedWith(t, app, { username: bob.username, password: bob.jwt }), NOT_AUTHORIZED, 'bob’s JWT gets CONNACK 5 (revoked)')
  t.equal(await userCount(app), count - 1, 'one user fewer')
  const list = await follow(browser, res)
  t.equal(notice(list.body), 'User deleted.')
  t.same(listed(list.body), [String(staff.id)], 'the list no longer has bob')
  t.equal((await browser.get(`/admin/users/${bob.id}`)).statusCode, 404, 'bob’s page is gone')
  t.equal(await userLogin(app, 'bob', bob.password), 401, 'bob cannot log in')
  t.same(await app.services.access.usersOf(robot.uuid), [], 'bob’s grants are gone')
  const commands = await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid)
  t.match(commands.items, [{ id: sent.json().id, issued_by: 'bob' }], 'the command he sent is still listed')
  t.equal((await browser.get(`/admin/robots/${robot.uuid}`)).statusCode, 200, 'the robot page still shows')
  const [entry] = await auditedSince(t, app, before, staff, ['user.deleted'])
  t.match(entry, { target_user_id: bob.id, details: { username: 'bob' } })
})

t.test('a staff user cannot delete themselves', async (t) => {
  const { app, staff, browser } = await setup(t)
  const before = (await auditLog(app)).length
  const confirm = await browser.get(`/admin/users/${staff.id}/delete`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, 'You cannot delete your own account.')
  t.notMatch(confirm.body, `action="/admin/users/${staff.id}/delete"`, 'no delete form')

  const res = await browser.post(`/admin/users/${staff.id}/delete`)
  t.equal(res.statusCode, 400)
  t.match(res.body, 'You cannot delete your own account.')
  t.match(await app.services.users.get(staff.id), { is_staff: true, is_active: true }, 'still there')
  t.ok(await loggedIn(browser), 'still logged in')
  await auditedSince(t, app, before, staff, [])
})

t.test('every user page action is audited with the staff user as actor', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app, { serial: 'SN-AUDIT' })
  const before = (await auditLog(app)).length

  await browser.get('/admin/users/new')
  const created = await browser.post('/admin/users', { username: 'frank', password: 'frank-password-1' })
  const id = Number(/\/admin\/users\/(\d+)/.exec(location(created) ?? '')?.[1])
  await browser.get(`/admin/users/${id}`)
  t.equal((await browser.post(`/admin/users/${id}`, account({ password: 'frank-password-2', staff: true, active: false }))).statusCode, 303)
  t.equal((await browser.post(`/admin/users/${id}/access`, { serial: 'SN-AUDIT' })).statusCode, 303)
  t.equal((await browser.post(`/admin/users/${id}/access/${robot.uuid}/revoke`)).statusCode, 303)
  await browser.get(`/admin/users/${id}/delete`)
  t.equal((await browser.post(`/admin/users/${id}/delete`)).statusCode, 303)

  const entries = await auditedSince(t, app, before, staff, ['user.created', 'user.updated', 'access.granted', 'access.revoked', 'user.deleted'])
  t.ok(entries.every((e) => e.target_user_id === id), 'all about frank')
  t.match(entries[1], { details: { password_changed: true, is_staff: true, is_active: false } })
  t.notMatch(JSON.stringify(entries), /frank-password/, 'no password in the audit log')
  const logPage = await browser.get('/admin/audit?action=user.deleted')
  t.match(logPage.body, `<a href="/admin/users/${staff.id}">${staff.username}</a>`, 'the audit page names the staff user')
})
