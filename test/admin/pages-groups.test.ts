// docs/admin.md, the groups pages and the roles and ends of grants on the
// robot and user pages, driven like a browser (cookies, the CSRF token of
// the page on screen) against the real app and database: only staff reach
// them; creating (field errors next to the field) and deleting a group after
// a confirmation; adding robots by serial or uuid and removing them; granting
// users a role until a UTC time, re-granting to change it, revoking; an
// expiry in the past shown next to its field with nothing stored or audited;
// every name escaped; the audit page's filter knows the new actions.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { PAST_EXPIRY, utcOf } from '../../admin/pages/grant-form.js'
import { bearer } from '../helper.js'
import { createRobot, createUser, type TestUser } from '../factory.js'
import { AdminBrowser, staffSetup } from './browser.js'
import { errorFields, errorNextTo, follow, location, notice, section, selectedOption, unescape } from './html.js'

const setup = staffSetup

async function auditLog (app: FastifyInstance) {
  return (await app.services.audit.list({ limit: 1000 })).items.reverse()
}

const LOGINS = ['user.login', 'user.login_failed']

/** The changes made through the pages since `before` (log-ins, and the tests' own set-up with no actor, aside) are `actions`, each by `staff`. */
async function auditedSince (t: Test, app: FastifyInstance, before: number, staff: TestUser, actions: string[]) {
  const entries = (await auditLog(app)).slice(before).filter((e) => !LOGINS.includes(e.action) && e.actor_id !== null)
  t.same(entries.map((e) => e.action), actions, `audited: ${actions.join(', ') || 'nothing'}`)
  for (const e of entries) t.match(e, { actor_id: staff.id, actor: staff.username, ip: '127.0.0.1' }, `${e.action} by the staff user`)
  return entries
}

/** The value of the datetime-local input named `name`. */
function timeValue (body: string, name: string): string | undefined {
  const m = new RegExp(`<input id="f-${name}" name="${name}" type="datetime-local" value="([^"]*)"`).exec(body)
  return m === null ? undefined : unescape(m[1] as string)
}

/** The rows of a `<ul class="plain">` list of a section: the link text, then the role and the end when shown. */
function rows (body: string, start: string): Array<{ text: string, grant?: string }> {
  const part = section(body, start, '</section>')
  return [...part.matchAll(/<li>\s*<a href="[^"]+">([^<]*)<\/a>[^<]*(?:<span class="grant"><span class="role">([^<]*)<\/span>, <span class="until">([^<]*)<\/span><\/span>)?/g)]
    .map((m) => ({ text: unescape(m[1] as string), ...(m[2] === undefined ? {} : { grant: `${unescape(m[2])}, ${unescape(m[3] as string)}` }) }))
}

/** The list page's rows: name, robots, users. */
function listed (body: string): Array<[string, number, number]> {
  return [...body.matchAll(/<td><a href="\/admin\/groups\/\d+">([^<]*)<\/a><\/td>\s*<td class="num">(\d+)<\/td>\s*<td class="num">(\d+)<\/td>/g)]
    .map((m) => [unescape(m[1] as string), Number(m[2]), Number(m[3])])
}

async function newGroup (t: Test, browser: AdminBrowser, name: string): Promise<number> {
  await browser.get('/admin/groups')
  const res = await browser.post('/admin/groups', { name })
  t.equal(res.statusCode, 303, `group ${name} created`)
  const id = Number(/^\/admin\/groups\/(\d+)\?notice=group_created$/.exec(location(res) ?? '')?.[1])
  t.ok(id > 0, 'redirected to the group’s page')
  return id
}

// ---------------------------------------------------------------- who

t.test('the groups pages are for staff: in the navigation; anonymous visitors and user JWTs go to the log-in form; forms need the CSRF token', async (t) => {
  const { app, browser } = await setup(t)
  const plain = await createUser(app)
  const group = await app.services.groups.create('night shift', { actor: null })

  const list = await browser.get('/admin/groups')
  t.equal(list.statusCode, 200)
  t.match(list.body, '<a href="/admin/groups" aria-current="page">Groups</a>', 'Groups in the navigation, current')
  t.match((await browser.get('/admin')).body, '<a href="/admin/groups">Groups</a>', 'and on every page')
  t.equal((await browser.get(`/admin/groups/${group.id}`)).statusCode, 200)
  t.equal((await browser.get(`/admin/groups/${group.id}/delete`)).statusCode, 200)
  for (const missing of ['/admin/groups/999999', '/admin/groups/abc', '/admin/groups/0', '/admin/groups/999999/delete']) {
    t.equal((await browser.get(missing)).statusCode, 404, `${missing}: the not-found page`)
  }

  for (const path of ['/admin/groups', `/admin/groups/${group.id}`, `/admin/groups/${group.id}/delete`]) {
    const anonymous = await app.inject({ method: 'GET', url: path })
    t.equal(anonymous.statusCode, 303, `${path}, anonymous`)
    t.equal(anonymous.headers.location, `/admin/login?next=${encodeURIComponent(path)}`)
    t.equal(anonymous.body, '', 'nothing of the page is sent')
    const withJwt = await app.inject({ method: 'GET', url: path, headers: bearer(plain.jwt) })
    t.equal(withJwt.statusCode, 303, `${path}, a user JWT is no admin session`)
  }
  t.equal((await new AdminBrowser(app).login(plain.username, plain.password)).statusCode, 401, 'a non-staff user cannot log in to the admin')

  const before = (await auditLog(app)).length
  const visitor = new AdminBrowser(app)
  await visitor.get('/admin/login')
  for (const [url, form] of [
    ['/admin/groups', { name: 'anon' }],
    [`/admin/groups/${group.id}/users`, { username: plain.username }],
    [`/admin/groups/${group.id}/delete`, {}]
  ] as Array<[string, Record<string, string>]>) {
    const res = await visitor.post(url, form)
    t.equal(res.statusCode, 303, `anonymous POST ${url}`)
    t.equal(res.headers.location, '/admin/login')
  }
  await browser.get('/admin/groups')
  t.equal((await browser.post('/admin/groups', { name: 'forged', _csrf: null })).statusCode, 403, 'no CSRF token: refused')
  t.equal((await browser.post(`/admin/groups/${group.id}/delete`, { _csrf: 'forged' })).statusCode, 403)
  t.same((await app.services.groups.list()).map((g) => g.name), ['night shift'], 'nothing changed')
  t.equal((await auditLog(app)).slice(before).filter((e) => !LOGINS.includes(e.action)).length, 0, 'nothing audited')
})

// ---------------------------------------------------------------- create and delete

t.test('creating a group: field errors next to the field, then the group’s page; the list counts robots and users; deleting after a confirmation', async (t) => {
  const { app, staff, browser } = await setup(t)
  const before = (await auditLog(app)).length

  for (const [typed, message] of [['   ', 'This field is required.'], ['x'.repeat(101), 'At most 100 characters.']]) {
    await browser.get('/admin/groups')
    const res = await browser.post('/admin/groups', { name: typed })
    t.equal(res.statusCode, 400)
    t.same(errorFields(res.body), ['name'])
    t.equal(errorNextTo(res.body, 'name'), message)
  }
  t.same(await app.services.groups.list(), [], 'nothing created')

  const id = await newGroup(t, browser, '  Site A  ')
  const page = await browser.get(`/admin/groups/${id}?notice=group_created`)
  t.equal(notice(page.body), 'Group created.')
  t.match(page.body, '<h1>Site A</h1>', 'the name, trimmed')

  await browser.get('/admin/groups')
  const duplicate = await browser.post('/admin/groups', { name: 'Site A' })
  t.equal(duplicate.statusCode, 400)
  t.equal(errorNextTo(duplicate.body, 'name'), 'A group with this name already exists.')

  const a = await createRobot(app, { serial: 'A-1' })
  const b = await createRobot(app, { serial: 'A-2' })
  const alice = await createUser(app, { username: 'alice' })
  await app.services.groups.addRobot(id, a.uuid, { actor: null })
  await app.services.groups.addRobot(id, b.uuid, { actor: null })
  await app.services.groups.grant(id, alice.id, { role: 'viewer' }, { actor: null })
  await app.services.groups.create('Empty', { actor: null })
  t.same(listed((await browser.get('/admin/groups')).body), [['Site A', 2, 1], ['Empty', 0, 0]], 'robots and users counted')
  t.equal((await app.services.access.rolesOn(alice.id, [a.uuid])).get(a.uuid), 'viewer')

  const confirm = await browser.get(`/admin/groups/${id}/delete`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, '<h1>Delete Site A?</h1>')
  t.match(confirm.body, 'its 1 user grant:')
  t.match(confirm.body, `<form method="post" action="/admin/groups/${id}/delete">`)
  t.equal((await app.services.groups.list()).length, 2, 'the confirmation page deletes nothing')
  const deleted = await browser.post(`/admin/groups/${id}/delete`)
  t.equal(deleted.statusCode, 303)
  t.equal(location(deleted), '/admin/groups?notice=group_deleted')
  const after = await follow(browser, deleted)
  t.equal(notice(after.body), 'Group deleted.')
  t.same(listed(after.body), [['Empty', 0, 0]])
  t.equal((await app.services.access.rolesOn(alice.id, [a.uuid])).size, 0, 'alice lost the role the group gave her')
  t.equal((await app.services.robots.list({})).items.length, 2, 'the robots stay')
  t.equal((await browser.get(`/admin/groups/${id}`)).statusCode, 404)
  const entries = await auditedSince(t, app, before, staff, ['group.created', 'group.deleted'])
  t.match(entries[1], { details: { group_id: id, group: 'Site A' } })
})

// ---------------------------------------------------------------- robots

t.test('adding robots by serial or uuid, errors next to the field, the robot page links its groups; removing', async (t) => {
  const { app, staff, browser } = await setup(t)
  const id = await newGroup(t, browser, 'Dock')
  const a = await createRobot(app, { serial: 'DOCK-1', name: 'first' })
  const b = await createRobot(app, { serial: 'DOCK-2' })
  const before = (await auditLog(app)).length

  for (const [typed, message] of [['', 'This field is required.'], ['NOPE', 'No robot with this serial or uuid.'], ['00000000-0000-4000-8000-000000000000', 'No robot with this serial or uuid.'], ['<b>x</b>', 'No robot with this serial or uuid.']]) {
    await browser.get(`/admin/groups/${id}`)
    const res = await browser.post(`/admin/groups/${id}/robots`, { robot: typed })
    t.equal(res.statusCode, 400, `robot ${JSON.stringify(typed)}`)
    t.same(errorFields(res.body), ['robot'])
    t.equal(errorNextTo(res.body, 'robot'), message)
    t.notMatch(res.body, '<b>x</b>', 'escaped')
  }
  t.same((await app.services.groups.get(id)).robots, [], 'nothing added')

  await browser.get(`/admin/groups/${id}`)
  const bySerial = await browser.post(`/admin/groups/${id}/robots`, { robot: ' DOCK-1 ' })
  t.equal(bySerial.statusCode, 303)
  t.equal(location(bySerial), `/admin/groups/${id}?notice=group_robot_added#robots`)
  t.equal(notice((await follow(browser, bySerial)).body), 'Robot added to the group.')
  const byUuid = await browser.post(`/admin/groups/${id}/robots`, { robot: b.uuid.toUpperCase() })
  t.equal(byUuid.statusCode, 303, 'by uuid, any case')
  const page = await follow(browser, byUuid)
  t.same(rows(page.body, '<section id="robots"'), [{ text: 'DOCK-1' }, { text: 'DOCK-2' }])
  t.match(page.body, 'DOCK-1</a> — first')
  t.match(page.body, `action="/admin/groups/${id}/robots/${a.uuid}/remove"`)
  t.same((await app.services.groups.get(id)).robots, [a.uuid, b.uuid])

  const robotPage = await browser.get(`/admin/robots/${a.uuid}`)
  t.match(section(robotPage.body, '<section id="groups">', '</section>'), `<li><a href="/admin/groups/${id}">Dock</a></li>`, 'the robot page links the group')

  await browser.get(`/admin/groups/${id}`)
  const removed = await browser.post(`/admin/groups/${id}/robots/${a.uuid}/remove`)
  t.equal(removed.statusCode, 303)
  t.equal(location(removed), `/admin/groups/${id}?notice=group_robot_removed#robots`)
  t.same(rows((await follow(browser, removed)).body, '<section id="robots"'), [{ text: 'DOCK-2' }])
  t.match(section((await browser.get(`/admin/robots/${a.uuid}`)).body, '<section id="groups">', '</section>'), '<p class="muted">None.</p>')
  t.equal((await browser.post(`/admin/groups/${id}/robots/not-a-uuid/remove`)).statusCode, 404)
  await auditedSince(t, app, before, staff, ['group.robot_added', 'group.robot_added', 'group.robot_removed'])
})

// ---------------------------------------------------------------- users

t.test('granting a group with a role until a UTC time lists it; granting again changes it; revoking removes it; the user page lists the group grant', async (t) => {
  const { app, staff, browser } = await setup(t)
  const id = await newGroup(t, browser, 'Shift')
  const alice = await createUser(app, { username: 'alice' })
  const robot = await createRobot(app)
  await app.services.groups.addRobot(id, robot.uuid, { actor: null })

  const form = await browser.get(`/admin/groups/${id}`)
  t.equal(selectedOption(form.body, 'role'), 'operator', 'operator by default')
  t.equal(timeValue(form.body, 'expires_at'), '', 'no end by default')
  t.match(form.body, 'Until (UTC, optional)', 'the label says the time is UTC')
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/groups/${id}/users`, { username: 'ALICE', role: 'viewer', expires_at: '2099-01-02T03:04' })
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/groups/${id}?notice=group_granted#users`)
  const page = await follow(browser, res)
  t.equal(notice(page.body), 'Group granted.')
  t.same(rows(page.body, '<section id="users"'), [{ text: 'alice', grant: 'viewer, until 2099-01-02 03:04:00 UTC' }])
  t.match((await app.services.groups.get(id)).users, [{ user_id: alice.id, role: 'viewer', expires_at: '2099-01-02T03:04:00.000Z' }], 'stored as UTC')
  t.equal((await app.services.access.rolesOn(alice.id, [robot.uuid])).get(robot.uuid), 'viewer', 'alice holds the role on the group’s robot')

  const again = await browser.post(`/admin/groups/${id}/users`, { username: 'alice', role: 'manager', expires_at: '' })
  t.equal(again.statusCode, 303)
  t.same(rows((await follow(browser, again)).body, '<section id="users"'), [{ text: 'alice', grant: 'manager, no end' }], 'role and end changed')
  t.same((await app.services.groups.get(id)).users.map((u) => [u.role, u.expires_at]), [['manager', null]])

  const userPage = await browser.get(`/admin/users/${alice.id}`)
  t.match(section(userPage.body, '<section id="user-groups"', '</section>'), new RegExp(`<td><a href="/admin/groups/${id}">Shift</a></td>\\s*<td>manager</td>\\s*<td>no end</td>`), 'the user page lists the group grant')

  await browser.get(`/admin/groups/${id}`)
  const revoked = await browser.post(`/admin/groups/${id}/users/${alice.id}/revoke`)
  t.equal(revoked.statusCode, 303)
  t.equal(location(revoked), `/admin/groups/${id}?notice=group_revoked#users`)
  t.same(rows((await follow(browser, revoked)).body, '<section id="users"'), [])
  t.equal((await app.services.access.rolesOn(alice.id, [robot.uuid])).size, 0)
  t.match(section((await browser.get(`/admin/users/${alice.id}`)).body, '<section id="user-groups"', '</section>'), '<p class="muted">None.</p>')
  await auditedSince(t, app, before, staff, ['group.granted', 'group.grant_changed', 'group.revoked'])
})

t.test('an expiry in the past, a malformed time, a bad role or an unknown user: the error next to its field, what was typed kept, nothing stored or audited', async (t) => {
  const { app, browser } = await setup(t)
  const id = await newGroup(t, browser, 'Yard')
  await createUser(app, { username: 'bob' })
  const before = (await auditLog(app)).length
  const cases: Array<[Record<string, string>, string, string]> = [
    [{ username: 'bob', role: 'viewer', expires_at: '2020-01-01T00:00' }, 'expires_at', PAST_EXPIRY],
    [{ username: 'bob', role: 'operator', expires_at: '2030-02-30T10:00' }, 'expires_at', 'A date and time such as 2030-12-31T18:00 (UTC), or nothing for no end.'],
    [{ username: 'bob', role: 'operator', expires_at: 'tomorrow' }, 'expires_at', 'A date and time such as 2030-12-31T18:00 (UTC), or nothing for no end.'],
    [{ username: 'bob', role: 'owner', expires_at: '' }, 'role', 'Choose one of the listed roles.'],
    [{ username: 'nobody', role: 'viewer', expires_at: '2099-01-01T00:00' }, 'username', 'No user with this username.']
  ]
  for (const [form, field, message] of cases) {
    await browser.get(`/admin/groups/${id}`)
    const res = await browser.post(`/admin/groups/${id}/users`, form)
    t.equal(res.statusCode, 400, JSON.stringify(form))
    t.same(errorFields(res.body), [field])
    t.equal(errorNextTo(res.body, field), message)
    t.equal(timeValue(res.body, 'expires_at'), form.expires_at, 'the typed time is kept')
    if (field !== 'role') t.equal(selectedOption(res.body, 'role'), form.role, 'the chosen role is kept')
  }
  t.same((await app.services.groups.get(id)).users, [], 'nothing stored')
  t.equal((await auditLog(app)).slice(before).filter((e) => !LOGINS.includes(e.action)).length, 0, 'nothing audited')

  t.same(utcOf('2030-06-01T12:30'), new Date('2030-06-01T12:30:00Z'), 'a datetime-local value is read as UTC')
  t.same(utcOf('2030-06-01 12:30:15'), new Date('2030-06-01T12:30:15Z'))
  t.equal(utcOf(''), null)
  t.equal(utcOf('2030-13-01T00:00'), undefined)
})

// ---------------------------------------------------------------- direct grants

t.test('the robot page grants with a role and an expiry and shows them; a past expiry is an error there too', async (t) => {
  const { app, staff, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const robot = await createRobot(app)
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(selectedOption(page.body, 'role'), 'operator')
  const before = (await auditLog(app)).length

  const past = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: 'alice', role: 'viewer', expires_at: '2001-01-01T00:00' })
  t.equal(past.statusCode, 400)
  t.same(errorFields(past.body), ['expires_at'])
  t.equal(errorNextTo(past.body, 'expires_at'), PAST_EXPIRY)
  t.same(await app.services.access.grantsOf(robot.uuid), [], 'nothing stored')

  await browser.get(`/admin/robots/${robot.uuid}`)
  const res = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: 'alice', role: 'viewer', expires_at: '2099-05-06T07:08' })
  t.equal(res.statusCode, 303)
  const shown = await follow(browser, res)
  t.same(rows(shown.body, '<section id="access">'), [{ text: 'alice', grant: 'viewer, until 2099-05-06 07:08:00 UTC' }], 'role and expiry shown')
  t.match(await app.services.access.grantsOf(robot.uuid), [{ user_id: alice.id, role: 'viewer', expires_at: '2099-05-06T07:08:00.000Z' }])

  const again = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: 'alice', role: 'manager', expires_at: '' })
  t.same(rows((await follow(browser, again)).body, '<section id="access">'), [{ text: 'alice', grant: 'manager, no end' }], 'granting again changes them')
  const entries = await auditedSince(t, app, before, staff, ['access.granted', 'access.changed'])
  t.match(entries[1], { details: { role: 'manager', expires_at: null, was: { role: 'viewer', expires_at: '2099-05-06T07:08:00.000Z' } } })
})

t.test('the user page grants by serial with a role and an expiry and shows them; a past expiry is an error there too', async (t) => {
  const { app, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const robot = await createRobot(app, { serial: 'U-1' })
  const grouped = await createRobot(app, { serial: 'U-2' })
  const group = await app.services.groups.create('G', { actor: null })
  await app.services.groups.addRobot(group.id, grouped.uuid, { actor: null })
  await app.services.groups.grant(group.id, alice.id, {}, { actor: null })

  await browser.get(`/admin/users/${alice.id}`)
  const past = await browser.post(`/admin/users/${alice.id}/access`, { serial: 'U-1', role: 'viewer', expires_at: '2001-01-01T00:00' })
  t.equal(past.statusCode, 400)
  t.equal(errorNextTo(past.body, 'expires_at'), PAST_EXPIRY)
  t.same(await app.services.access.grantsOf(robot.uuid), [])

  await browser.get(`/admin/users/${alice.id}`)
  const res = await browser.post(`/admin/users/${alice.id}/access`, { serial: 'U-1', role: 'viewer', expires_at: '2099-05-06T07:08:09' })
  t.equal(res.statusCode, 303)
  const shown = await follow(browser, res)
  t.same(rows(shown.body, '<section id="access"'), [{ text: 'U-1', grant: 'viewer, until 2099-05-06 07:08:09 UTC' }], 'the direct grant, not the group’s robot')
  t.match(section(shown.body, '<section id="user-groups"', '</section>'), new RegExp(`<td><a href="/admin/groups/${group.id}">G</a></td>\\s*<td>operator</td>\\s*<td>no end</td>`), 'the group grant below')
})

// ---------------------------------------------------------------- escaping and the audit filter

t.test('a group named <script> is escaped everywhere it is shown', async (t) => {
  const { app, browser } = await setup(t)
  const name = '<script>alert(1)</script>'
  const id = await newGroup(t, browser, name)
  const alice = await createUser(app)
  const robot = await createRobot(app)
  await app.services.groups.addRobot(id, robot.uuid, { actor: null })
  await app.services.groups.grant(id, alice.id, {}, { actor: null })
  const pages = ['/admin/groups', `/admin/groups/${id}`, `/admin/groups/${id}/delete`, `/admin/robots/${robot.uuid}`, `/admin/users/${alice.id}`, '/admin/audit?action=group.created']
  for (const path of pages) {
    const res = await browser.get(path)
    t.equal(res.statusCode, 200, path)
    t.notMatch(res.body, '<script>alert(1)', `${path}: not as markup`)
    t.match(res.body, '&lt;script&gt;alert(1)&lt;/script&gt;', `${path}: as text`)
  }
})

t.test('the audit page filters by the new actions', async (t) => {
  const { app, browser } = await setup(t)
  const id = await newGroup(t, browser, 'Audited')
  const page = await browser.get('/admin/audit')
  for (const action of ['access.changed', 'access.expired', 'group.created', 'group.deleted', 'group.robot_added', 'group.robot_removed', 'group.granted', 'group.grant_changed', 'group.revoked', 'api_key.created', 'api_key.deleted']) {
    t.match(page.body, `<option value="${action}">${action}</option>`, `${action} is offered`)
  }
  const filtered = await browser.get('/admin/audit?action=group.created')
  t.match(filtered.body, '<option value="group.created" selected>')
  t.match(filtered.body, '<code>group.created</code>')
  t.match(filtered.body, `group_id=${id}`)
  t.notMatch(filtered.body, '<code>user.login</code>', 'only that action')
})

// ---------------------------------------------------------------- API keys

t.test('the user page lists the user’s API keys; staff delete one, and it stops working at once', async (t) => {
  const { app, staff, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const bob = await createUser(app, { username: 'bob' })
  const who = { id: alice.id, username: alice.username, isStaff: false }
  const ci = await app.services.apiKeys.create(who, { name: '<b>ci</b>', expiresAt: new Date('2099-03-04T05:06:07Z') }, { actor: null })
  const dash = await app.services.apiKeys.create(who, { name: 'dashboard' }, { actor: null })
  const bobs = await app.services.apiKeys.create({ id: bob.id, username: bob.username, isStaff: false }, { name: 'bob-key' }, { actor: null })
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(ci.key) })).statusCode, 200, 'the key works')

  const page = await browser.get(`/admin/users/${alice.id}`)
  const keys = section(page.body, '<section id="api-keys"', '</section>')
  const listedKeys = [...keys.matchAll(/<tr data-key-id="([^"]+)">\s*<td>([^<]*)<\/td>\s*<td>([^<]*)<\/td>\s*<td>([^<]*)<\/td>\s*<td>([^<]*)<\/td>/g)].map((m) => m.slice(1, 6).map((x) => unescape(x as string)))
  t.same(listedKeys.map((k) => [k[0], k[1], k[3]]), [[ci.id, '<b>ci</b>', '2099-03-04 05:06:07 UTC'], [dash.id, 'dashboard', 'never']], 'name and expiry')
  const utc = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/
  t.match(listedKeys[0]?.[2], utc, 'created')
  t.match(listedKeys[0]?.[4], utc, 'the key just used: when')
  t.equal(listedKeys[1]?.[4], 'never', 'a key never used')
  t.notMatch(keys, '<b>ci</b>', 'the name escaped')
  t.notMatch(page.body, ci.key, 'the key itself is never shown')
  t.notMatch(keys, 'bob-key', 'only this user’s keys')

  const before = (await auditLog(app)).length
  const res = await browser.post(`/admin/users/${alice.id}/api_keys/${ci.id}/delete`)
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/users/${alice.id}?notice=api_key_deleted#api-keys`)
  const after = await follow(browser, res)
  t.equal(notice(after.body), 'API key deleted.')
  t.notMatch(section(after.body, '<section id="api-keys"', '</section>'), ci.id, 'gone from the page')
  t.same((await app.services.apiKeys.listOf(alice.id)).map((k) => k.id), [dash.id])
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: bearer(ci.key) })).statusCode, 401, 'the deleted key no longer works')
  const [entry] = await auditedSince(t, app, before, staff, ['api_key.deleted'])
  t.match(entry, { target_user_id: alice.id, details: { key_id: ci.id } })

  t.equal((await browser.post(`/admin/users/${alice.id}/api_keys/${bobs.id}/delete`)).statusCode, 404, 'another user’s key through this user: not found')
  t.equal((await browser.post(`/admin/users/${alice.id}/api_keys/${ci.id}/delete`)).statusCode, 404, 'a deleted key: not found')
  t.equal((await browser.post(`/admin/users/${alice.id}/api_keys/not-a-key/delete`)).statusCode, 404)
  t.equal((await browser.post(`/admin/users/${alice.id}/api_keys/${dash.id}/delete`, { _csrf: null })).statusCode, 403, 'no CSRF token: refused')
  t.same((await app.services.apiKeys.listOf(bob.id)).map((k) => k.id), [bobs.id], 'bob’s key untouched')
  t.same((await app.services.apiKeys.listOf(alice.id)).map((k) => k.id), [dash.id])
})
