// docs/admin.md, the robot admin pages, driven like a browser (cookies, CSRF
// token of the page on screen) against the real app, broker and database:
// the list (search, filters, keyset pages), adding with a generated or given
// secret (shown once, never again), field-by-field validation that keeps what
// was typed and saves nothing, edit, enable/disable, rotate and delete (which
// close the robot's real MQTT connections and void its tokens), granting and
// revoking users (delivery to a real subscriber starts and stops), the robot
// page (state, presence, last seen, statistics 20 a page newest first,
// commands sent to a real robot client) and the audit log of all of it.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { helpers } from '../../admin/helpers.js'
import { bearer } from '../helper.js'
import { createRobot, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { closedByServer, collect, connect, connectRobot, connectUser, eventually, messageWhere, nextMessage, refusedWith, robotToken, sendFrame, suback, subscribe } from '../mqtt.js'
import { staffSetup } from './browser.js'
import { errorFields, errorNextTo, follow, inputValue, location, nextLink, notice, section, selectedOption, walkPages } from './html.js'

const NOT_AUTHORIZED = 5
const REFUSED = 128
const NOT_LISTENING = 'The robot is not connected to its commands topic right now: choose how long the command may wait for it.'

const setup = staffSetup

/** The robots of a list page, by uuid, in page order. */
function listed (body: string): string[] {
  return [...body.matchAll(/<td><a href="\/admin\/robots\/([0-9a-f-]{36})">/g)].map((m) => m[1] as string)
}

/** The frame ids of the robot page's statistics table, in page order. */
function frameIds (body: string): string[] {
  return [...section(body, 'id="stats-table"', '</table>').matchAll(/<td><code>([^<]*)<\/code><\/td>/g)].map((m) => m[1] as string)
}

/** The usernames listed in the robot page's access section. */
function grantedUsers (body: string): string[] {
  return [...section(body, '<section id="access">', '</section>').matchAll(/<a href="\/admin\/users\/\d+">([^<]*)<\/a>/g)].map((m) => m[1] as string)
}

function shownSecret (body: string): string | undefined {
  return /<code class="secret" id="robot-secret">([^<]*)<\/code>/.exec(body)?.[1]
}

const fact = (body: string, id: string): string | undefined => new RegExp(`<dd id="${id}"[^>]*>([\\s\\S]*?)</dd>`).exec(body)?.[1]?.replace(/<[^>]+>/g, '')

async function robotLogin (app: FastifyInstance, serial: string, token: string) {
  return await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial, token } })
}

async function robotCount (app: FastifyInstance): Promise<number> {
  return await app.db.models.Robot.count()
}

/** The whole audit log, oldest first. */
async function auditLog (app: FastifyInstance) {
  return (await app.services.audit.list({ limit: 1000 })).items.reverse()
}

/**
 * Checks that the entries added since `before` are `actions`, each by `staff`
 * from the test client's address. The failed log-ins a test makes on purpose
 * (an old secret refused) are recorded by the system, coalesced, and left out.
 */
async function auditedSince (t: Test, app: FastifyInstance, before: number, staff: TestUser, actions: string[]) {
  const entries = (await auditLog(app)).slice(before).filter((e) => !/\.login_failed$|^auth\.login_blocked$/.test(e.action))
  t.same(entries.map((e) => e.action), actions, `audited: ${actions.join(', ') || 'nothing'}`)
  for (const e of entries) t.match(e, { actor_id: staff.id, actor: staff.username, ip: '127.0.0.1' }, `${e.action} by the staff user`)
  return entries
}

/** The uuids of the robots a user sees over REST. */
async function restRobots (app: FastifyInstance, user: TestUser): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/robots', headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET /robots: ${res.statusCode}`)
  return (res.json().items as Array<{ uuid: string }>).map((r) => r.uuid)
}

/** A robot connection subscribed to its ack topic, ready to send frames. */
async function liveRobot (t: Test, app: FastifyInstance, robot: TestRobot): Promise<MqttClient> {
  const client = await connectRobot(t, app, robot)
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1], 'the robot subscribes to its ack topic')
  return client
}

/** Stores a frame through the broker with this position_x, checking its ack. */
async function stored (t: Test, client: MqttClient, robot: TestRobot, x: number): Promise<void> {
  const id = `frame-${robot.serial}-${x}`
  t.same(await sendFrame(client, robot.uuid, id, { position_x: x }), { id, status: 'ok' }, `frame x=${x} stored`)
}

const statsWith = async (client: MqttClient, robot: TestRobot, x: number) =>
  await messageWhere(client, `robots/${robot.uuid}/stats`, (s) => s.position_x === x)

// ---------------------------------------------------------------- list

t.test('the list searches serial and name, case-insensitively, taking % and _ literally', async (t) => {
  const { app, browser } = await setup(t)
  const alpha1 = await createRobot(app, { serial: 'ALPHA-1', name: 'Dock loader' })
  const alpha2 = await createRobot(app, { serial: 'alpha-2' })
  const beta = await createRobot(app, { serial: 'BETA-1', name: 'Alpha Warehouse' })
  const gammaUnderscore = await createRobot(app, { serial: 'GAMMA_1', name: 'Gamma' })
  const gammaDash = await createRobot(app, { serial: 'GAMMA-2', name: '100% sure' })
  const backslash = await createRobot(app, { serial: 'BACK\\SLASH' })

  const all = await browser.get('/admin/robots')
  t.equal(all.statusCode, 200)
  t.same(listed(all.body), [alpha1, alpha2, beta, gammaUnderscore, gammaDash, backslash].map((r) => r.uuid), 'every robot, oldest first')

  const cases: Array<[string, TestRobot[], string]> = [
    ['alpha', [alpha1, alpha2, beta], 'serials and a name, whatever their case'],
    ['ALPHA', [alpha1, alpha2, beta], 'an upper-case query'],
    ['wAREhouse', [beta], 'by name only'],
    ['dock', [alpha1], 'by name, lower case'],
    ['gamma_', [gammaUnderscore], '_ is not a wildcard'],
    ['%', [gammaDash], '% is not a wildcard'],
    ['\\', [backslash], 'a backslash is itself'],
    ['k\\s', [backslash], 'a backslash inside the query'],
    ['nothing-like-it', [], 'no match']
  ]
  for (const [q, expected, why] of cases) {
    const res = await browser.get(`/admin/robots?q=${encodeURIComponent(q)}`)
    t.equal(res.statusCode, 200, `q=${q}`)
    t.same(listed(res.body), expected.map((r) => r.uuid), `q=${q}: ${why}`)
    t.equal(/<input type="search" name="q" value="([^"]*)"/.exec(res.body)?.[1], q, `q=${q}: the search box keeps the query`)
  }
  t.match((await browser.get('/admin/robots?q=nothing-like-it')).body, 'No robots match these filters.')
})

t.test('the list filters by online and by enabled', async (t) => {
  const { app, browser } = await setup(t)
  const online = await createRobot(app, { serial: 'ON-1' })
  const disabled = await createRobot(app, { serial: 'OFF-DISABLED' })
  const offline = await createRobot(app, { serial: 'OFF-1' })
  await app.services.robots.update(disabled.uuid, { enabled: false }, { actor: null })
  await connectRobot(t, app, online)
  await eventually(async () => await app.services.robots.get(online.uuid), (r) => r.data_connected)

  const cases: Array<[string, TestRobot[]]> = [
    ['online=yes', [online]],
    ['online=no', [disabled, offline]],
    ['enabled=yes', [online, offline]],
    ['enabled=no', [disabled]],
    ['online=no&enabled=yes', [offline]],
    ['online=yes&enabled=no', []],
    ['online=no&q=off-', [disabled, offline]],
    ['online=&enabled=', [online, disabled, offline]]
  ]
  for (const [query, expected] of cases) {
    const res = await browser.get(`/admin/robots?${query}`)
    t.equal(res.statusCode, 200, query)
    t.same(listed(res.body), expected.map((r) => r.uuid), query)
  }
  const filtered = await browser.get('/admin/robots?online=yes&enabled=yes')
  t.match(filtered.body, '<option value="yes" selected>online</option>', 'the online filter stays selected')
  t.match(filtered.body, '<option value="yes" selected>enabled</option>', 'the enabled filter stays selected')
  t.match(section(filtered.body, '<tbody>', '</tbody>'), /<span class="dot on"><\/span>online/, 'the row shows the robot online')
})

t.test('the list shows 20 robots a page; the Next link gives the next 20 and every robot exactly once', async (t) => {
  const { app, browser } = await setup(t)
  const bulk: string[] = []
  const others: string[] = []
  for (let i = 0; i < 45; i++) bulk.push((await createRobot(app, { serial: `BULK-${String(i).padStart(2, '0')}` })).uuid)
  for (let i = 0; i < 3; i++) others.push((await createRobot(app, { serial: `OTHER-${i}` })).uuid)

  const everything = await walkPages(browser, '/admin/robots', listed)
  t.same(everything.statuses, [200, 200, 200])
  t.same(everything.pages.map((p) => p.length), [20, 20, 8], '20 a page')
  t.same(everything.pages.flat(), [...bulk, ...others], 'every robot exactly once, in order')

  const searched = await walkPages(browser, '/admin/robots?q=bulk', listed)
  t.same(searched.pages.map((p) => p.length), [20, 20, 5])
  t.same(searched.pages.flat(), bulk, 'the search holds across pages')
  t.ok(searched.links.every((l) => new URL(l, 'http://x').searchParams.get('q') === 'bulk'), 'each Next link keeps the query')

  const first = await browser.get('/admin/robots')
  t.notMatch(first.body, '« First page', 'no way back from the first page')
  const second = await browser.get(nextLink(first.body) as string)
  t.match(second.body, '<a href="/admin/robots">« First page</a>', 'a way back from the next page')

  const bad = await browser.get('/admin/robots?cursor=not-a-cursor')
  t.equal(bad.statusCode, 400, 'a malformed cursor is a 400 page, not a 500')
  t.match(bad.body, 'malformed cursor')
})

// ---------------------------------------------------------------- add

t.test('adding a robot with a generated secret shows it once; it works; the robot page never shows it', async (t) => {
  const { app, staff, browser } = await setup(t)
  const form = await browser.get('/admin/robots/new')
  t.equal(form.statusCode, 200)
  t.equal(inputValue(form.body, 'serial'), '')
  t.equal(inputValue(form.body, 'token'), '', 'the secret field is empty')
  const before = (await auditLog(app)).length

  const res = await browser.post('/admin/robots', { serial: '  SN-NEW-1  ', name: 'New one', token: '' })
  t.equal(res.statusCode, 201)
  const secret = shownSecret(res.body)
  t.match(secret, /^[0-9a-f]{48}$/, 'a generated secret is shown')
  t.match(res.body, 'is not shown again')
  const uuid = /href="\/admin\/robots\/([0-9a-f-]{36})"/.exec(res.body)?.[1] as string
  t.match(await app.services.robots.get(uuid), { serial: 'SN-NEW-1', name: 'New one', enabled: true }, 'created, serial trimmed')

  const login = await robotLogin(app, 'SN-NEW-1', secret as string)
  t.equal(login.statusCode, 201, 'the shown secret obtains a token')
  t.equal(login.json().robot_uuid, uuid)

  for (const url of [`/admin/robots/${uuid}`, `/admin/robots/${uuid}/edit`, '/admin/robots', '/admin/audit']) {
    const page = await browser.get(url)
    t.equal(page.statusCode, 200, url)
    t.notMatch(page.body, secret as string, `${url} does not show the secret`)
  }
  const [entry] = await auditedSince(t, app, before, staff, ['robot.created'])
  t.match(entry, { robot_uuid: uuid, details: { serial: 'SN-NEW-1', name: 'New one', secret_generated: true } })
  t.notMatch(JSON.stringify(await auditLog(app)), secret as string, 'the secret is not in the audit log')
})

t.test('adding a robot with a given secret: it works and is never echoed', async (t) => {
  const { app, staff, browser } = await setup(t)
  await browser.get('/admin/robots/new')
  const before = (await auditLog(app)).length
  const given = 'given-secret-0123'
  const res = await browser.post('/admin/robots', { serial: 'SN-GIVEN', name: '', token: given })
  t.equal(res.statusCode, 201)
  t.notMatch(res.body, given, 'the given secret is not echoed')
  t.equal(shownSecret(res.body), undefined, 'no secret shown')
  t.match(res.body, 'The robot uses the secret you gave.')
  t.equal((await robotLogin(app, 'SN-GIVEN', given)).statusCode, 201, 'the given secret obtains a token')
  t.equal((await robotLogin(app, 'SN-GIVEN', 'another-secret')).statusCode, 401)
  const [entry] = await auditedSince(t, app, before, staff, ['robot.created'])
  t.match(entry, { details: { serial: 'SN-GIVEN', secret_generated: false } })
})

t.test('an invalid robot form comes back with each error next to its field, what was typed, and nothing created', async (t) => {
  const { app, browser } = await setup(t)
  await createRobot(app, { serial: 'SN-TAKEN' })
  const count = await robotCount(app)
  const before = (await auditLog(app)).length
  const cases: Array<{ why: string, form: Record<string, string>, errors: Record<string, string> }> = [
    { why: 'empty serial', form: { serial: '', name: 'Nameless', token: '' }, errors: { serial: 'This field is required.' } },
    { why: 'blank serial', form: { serial: '   ', name: '', token: 'valid-secret-1' }, errors: { serial: 'This field is required.' } },
    { why: 'too-long serial', form: { serial: 'S'.repeat(129), name: 'Long', token: '' }, errors: { serial: 'At most 128 characters.' } },
    { why: 'too-long name', form: { serial: 'SN-LONG-NAME', name: 'n'.repeat(201), token: '' }, errors: { name: 'At most 200 characters.' } },
    { why: 'too-short secret', form: { serial: 'SN-<b>"R&D"</b>', name: 'O\'Neil & <Co>', token: 'seven77' }, errors: { token: 'At least 8 characters.' } },
    { why: 'two errors at once', form: { serial: '', name: 'x', token: 'short' }, errors: { serial: 'This field is required.', token: 'At least 8 characters.' } },
    { why: 'duplicate serial', form: { serial: 'SN-TAKEN', name: 'Twin', token: 'valid-secret-2' }, errors: { serial: 'A robot with this serial already exists.' } }
  ]
  for (const { why, form, errors } of cases) {
    await browser.get('/admin/robots/new')
    const res = await browser.post('/admin/robots', form)
    t.equal(res.statusCode, 400, why)
    t.same(errorFields(res.body).sort(), Object.keys(errors).sort(), `${why}: errors on exactly these fields`)
    for (const [field, message] of Object.entries(errors)) t.equal(errorNextTo(res.body, field), message, `${why}: the ${field} error is next to the field`)
    t.equal(inputValue(res.body, 'serial'), (form.serial as string).trim(), `${why}: the serial is kept`)
    t.equal(inputValue(res.body, 'name'), form.name, `${why}: the name is kept`)
    t.equal(inputValue(res.body, 'token'), '', `${why}: the secret field is empty`)
    if (form.token !== '') t.notMatch(res.body, form.token as string, `${why}: the secret is not echoed`)
    t.equal(await robotCount(app), count, `${why}: nothing created`)
  }
  t.equal((await auditLog(app)).length, before, 'nothing audited')
})

// ---------------------------------------------------------------- edit

t.test('editing a robot saves serial and name; a taken serial is shown next to the field and changes nothing', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app, { serial: 'SN-EDIT', name: 'Before' })
  const other = await createRobot(app, { serial: 'SN-OTHER' })
  const form = await browser.get(`/admin/robots/${robot.uuid}/edit`)
  t.equal(form.statusCode, 200)
  t.equal(inputValue(form.body, 'serial'), 'SN-EDIT', 'the form shows the serial')
  t.equal(inputValue(form.body, 'name'), 'Before', 'and the name')
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/robots/${robot.uuid}`, { serial: 'SN-EDITED', name: 'After' })
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/robots/${robot.uuid}?notice=robot_updated`)
  const page = await follow(browser, res)
  t.equal(notice(page.body), 'Robot saved.')
  t.match(page.body, '<h1>SN-EDITED <small>After</small></h1>')
  t.match(await app.services.robots.get(robot.uuid), { serial: 'SN-EDITED', name: 'After' })
  t.equal((await robotLogin(app, 'SN-EDITED', robot.secret)).statusCode, 201, 'the robot logs in with its new serial')
  t.equal((await robotLogin(app, 'SN-EDIT', robot.secret)).statusCode, 401, 'not with the old one')
  const [entry] = await auditedSince(t, app, before, staff, ['robot.updated'])
  t.match(entry, { robot_uuid: robot.uuid, details: { serial: 'SN-EDITED', name: 'After' } })

  const failures: Array<[Record<string, string>, string, string]> = [
    [{ serial: other.serial, name: 'Typed name' }, 'serial', 'A robot with this serial already exists.'],
    [{ serial: '', name: 'Typed name' }, 'serial', 'This field is required.'],
    [{ serial: 'SN-FINE', name: 'n'.repeat(201) }, 'name', 'At most 200 characters.']
  ]
  for (const [typed, field, message] of failures) {
    await browser.get(`/admin/robots/${robot.uuid}/edit`)
    const bad = await browser.post(`/admin/robots/${robot.uuid}`, typed)
    t.equal(bad.statusCode, 400, message)
    t.same(errorFields(bad.body), [field])
    t.equal(errorNextTo(bad.body, field), message)
    t.equal(inputValue(bad.body, 'serial'), typed.serial, 'the typed serial is kept')
    t.equal(inputValue(bad.body, 'name'), typed.name, 'the typed name is kept')
    t.match(await app.services.robots.get(robot.uuid), { serial: 'SN-EDITED', name: 'After' }, 'nothing changed')
  }
  t.match(await app.services.robots.get(other.uuid), { serial: 'SN-OTHER' }, 'the other robot is untouched')
  await auditedSince(t, app, before, staff, ['robot.updated'])
})

// ---------------------------------------------------------------- enable / disable / rotate / delete

t.test('disabling a robot closes its connection and voids its token; enabling lets it log in again', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app)
  const bystander = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { username: robot.uuid, password: token })
  const other = await connectRobot(t, app, bystander)
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.match(page.body, `action="/admin/robots/${robot.uuid}/disable"`, 'the page offers Disable')
  const before = (await auditLog(app)).length

  const gone = closedByServer(client)
  const res = await browser.post(`/admin/robots/${robot.uuid}/disable`)
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/robots/${robot.uuid}?notice=robot_disabled`)
  await gone
  t.notOk(client.connected, 'the robot’s connection is closed')
  t.ok(other.connected, 'another robot stays connected')
  t.equal(await refusedWith(t, app, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'its token is void (revoked: CONNACK 5)')
  t.equal((await robotLogin(app, robot.serial, robot.secret)).statusCode, 401, 'it cannot obtain a new one')
  const shown = await follow(browser, res)
  t.match(notice(shown.body), /^Robot disabled/)
  t.match(shown.body, `action="/admin/robots/${robot.uuid}/enable"`, 'the page now offers Enable')
  t.match(shown.body, 'no — it cannot log in')

  const enabled = await browser.post(`/admin/robots/${robot.uuid}/enable`)
  t.equal(enabled.statusCode, 303)
  t.equal(location(enabled), `/admin/robots/${robot.uuid}?notice=robot_enabled`)
  t.equal(notice((await follow(browser, enabled)).body), 'Robot enabled.')
  const login = await robotLogin(app, robot.serial, robot.secret)
  t.equal(login.statusCode, 201, 'the robot obtains a token again')
  const again = await connect(t, app, { username: robot.uuid, password: login.json().access_token as string })
  t.ok(again.connected, 'and connects with it')

  const entries = await auditedSince(t, app, before, staff, ['robot.updated', 'robot.updated'])
  t.match(entries, [{ robot_uuid: robot.uuid, details: { enabled: false } }, { robot_uuid: robot.uuid, details: { enabled: true } }])
})

t.test('rotating the secret shows the new one once, refuses the old one and kicks the connected robot', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { username: robot.uuid, password: token })
  await browser.get(`/admin/robots/${robot.uuid}`)
  const before = (await auditLog(app)).length

  const gone = closedByServer(client)
  const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`)
  t.equal(res.statusCode, 200)
  const secret = shownSecret(res.body)
  t.match(secret, /^[0-9a-f]{48}$/, 'the new secret is shown')
  t.not(secret, robot.secret)
  t.match(res.body, 'The old secret no longer works')
  await gone
  t.notOk(client.connected, 'the connected robot is kicked')
  t.equal(await refusedWith(t, app, { username: robot.uuid, password: token }), NOT_AUTHORIZED, 'its token is void (revoked: CONNACK 5)')
  t.equal((await robotLogin(app, robot.serial, robot.secret)).statusCode, 401, 'the old secret is refused')
  t.equal((await robotLogin(app, robot.serial, secret as string)).statusCode, 201, 'the new secret works')
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.notMatch(page.body, secret as string, 'the robot page does not show the new secret')
  const [entry] = await auditedSince(t, app, before, staff, ['robot.token_rotated'])
  t.match(entry, { robot_uuid: robot.uuid })
  t.notMatch(JSON.stringify(entry), secret as string)
})

t.test('deleting a robot asks first, then deletes it, closes its connection and returns to the list', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app, { serial: 'SN-DOOMED' })
  const kept = await createRobot(app)
  const alice = await createUser(app)
  await grant(app, alice, robot)
  const client = await connectRobot(t, app, robot)
  // A robot with a history: a stored frame and a command.
  const robotId = (await app.db.models.Robot.findOne({ where: { uuid: robot.uuid } }))?.id as number
  await app.services.frames.store(robotId, [{ frameId: 'f-1', type: 1, data: { speed: 1 }, recordedAt: null }])
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])
  const commanded = nextMessage(client, `robots/${robot.uuid}/commands`)
  await app.services.commands.issue({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid, 'auto', { actor: null })
  await commanded
  const history = async () => [
    await app.db.models.Frame.count({ where: { robotId } }),
    await app.db.models.Command.count({ where: { robotId } })
  ]
  t.same(await history(), [1, 1])
  const count = await robotCount(app)
  const before = (await auditLog(app)).length

  const confirm = await browser.get(`/admin/robots/${robot.uuid}/delete`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, '<h1>Delete SN-DOOMED?</h1>')
  t.match(confirm.body, `<form method="post" action="/admin/robots/${robot.uuid}/delete">`)
  t.equal(await robotCount(app), count, 'asking deletes nothing')
  t.ok(client.connected)

  const gone = closedByServer(client)
  const res = await browser.post(`/admin/robots/${robot.uuid}/delete`)
  t.equal(res.statusCode, 303)
  t.equal(location(res), '/admin/robots?notice=robot_deleted')
  await gone
  t.notOk(client.connected, 'its connection is closed')
  t.equal(await robotCount(app), count - 1, 'one robot fewer')
  const list = await follow(browser, res)
  t.equal(notice(list.body), 'Robot deleted.')
  t.same(listed(list.body), [kept.uuid], 'the list no longer has it')
  t.equal((await browser.get(`/admin/robots/${robot.uuid}`)).statusCode, 404, 'its page is gone')
  t.equal((await robotLogin(app, robot.serial, robot.secret)).statusCode, 401, 'it cannot log in')
  t.same(await history(), [0, 0], 'its frames and commands went with it')
  t.same(await restRobots(app, alice), [], 'a user it was granted to no longer sees it')
  const [entry] = await auditedSince(t, app, before, staff, ['robot.deleted'])
  t.match(entry, { robot_uuid: robot.uuid, details: { serial: 'SN-DOOMED' } })

  await browser.get('/admin/robots')
  t.equal((await browser.post(`/admin/robots/${robot.uuid}/delete`)).statusCode, 404, 'deleting it again is a 404 page')
})

t.test('a robot’s serial and name are shown as text on every page, never as markup', async (t) => {
  const { app, browser } = await setup(t)
  const robot = await createRobot(app, { serial: 'SN-<i>"x"</i>', name: '<script>alert(1)</script>' })
  for (const url of ['/admin/robots', `/admin/robots/${robot.uuid}`, `/admin/robots/${robot.uuid}/edit`, `/admin/robots/${robot.uuid}/delete`, '/admin/audit']) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 200, url)
    t.notMatch(res.body, '<script>alert', `${url}: the name is not markup`)
    t.notMatch(res.body, '<i>"x"</i>', `${url}: the serial is not markup`)
    t.match(res.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;|SN-&lt;i&gt;&quot;x&quot;&lt;\/i&gt;/, `${url}: shown as text`)
  }
  t.equal(inputValue((await browser.get(`/admin/robots/${robot.uuid}/edit`)).body, 'name'), '<script>alert(1)</script>', 'the edit form holds the name as it is')
})

t.test('an unknown or malformed robot uuid is a 404 page', async (t) => {
  const { browser } = await setup(t)
  for (const url of ['/admin/robots/00000000-0000-4000-8000-000000000000', '/admin/robots/not-a-uuid', '/admin/robots/00000000-0000-4000-8000-000000000000/edit']) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 404, url)
    t.match(res.body, 'Not found')
  }
})

// ---------------------------------------------------------------- access

t.test('granting a user by username lets them watch the robot over MQTT and see it over REST', async (t) => {
  const { app, staff, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const robot = await createRobot(app)
  const robotClient = await liveRobot(t, app, robot)
  const watcher = await connectUser(t, app, alice)
  const stats = `robots/${robot.uuid}/stats`
  t.same(await suback(watcher, stats), [REFUSED], 'before the grant the stats subscription is refused')
  t.same(await restRobots(app, alice), [], 'and REST lists nothing')
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.same(grantedUsers(page.body), [])
  const before = (await auditLog(app)).length

  const res = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: ' alice ' })
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/robots/${robot.uuid}?notice=access_granted#access`)
  const shown = await follow(browser, res)
  t.equal(notice(shown.body), 'Access granted.')
  t.same(grantedUsers(shown.body), ['alice'], 'the robot page lists alice')

  t.same(await suback(watcher, stats), [1], 'alice may now subscribe to the robot’s stats')
  const seen = statsWith(watcher, robot, 42)
  await stored(t, robotClient, robot, 42)
  t.match(await seen, { robot_uuid: robot.uuid, position_x: 42 }, 'and receives them')
  t.same(await restRobots(app, alice), [robot.uuid], 'REST GET /robots lists it')
  const [entry] = await auditedSince(t, app, before, staff, ['access.granted'])
  t.match(entry, { robot_uuid: robot.uuid, target_user_id: alice.id })
})

t.test('granting an unknown or empty username shows the error next to the field, keeps what was typed, grants nothing', async (t) => {
  const { app, browser } = await setup(t)
  const robot = await createRobot(app)
  await createUser(app, { username: 'Bob' })
  const before = (await auditLog(app)).length
  const cases: Array<[string, string]> = [
    ['nobody', 'No user with this username.'],
    ['bobby', 'No user with this username.'], // (bob would be Bob: usernames match without regard to case)
    ['   ', 'This field is required.'],
    ['<script>x</script>', 'No user with this username.']
  ]
  for (const [typed, message] of cases) {
    await browser.get(`/admin/robots/${robot.uuid}`)
    const res = await browser.post(`/admin/robots/${robot.uuid}/access`, { username: typed })
    t.equal(res.statusCode, 400, `username ${JSON.stringify(typed)}`)
    t.same(errorFields(res.body), ['username'])
    t.equal(errorNextTo(res.body, 'username'), message)
    t.equal(inputValue(res.body, 'username'), typed.trim(), 'the typed username is kept')
    t.notMatch(res.body, '<script>x</script>', 'and escaped')
    t.same(grantedUsers(res.body), [], 'nobody granted')
  }
  t.same(await app.services.access.usersOf(robot.uuid), [])
  t.equal((await auditLog(app)).length, before, 'nothing audited')
})

t.test('revoking a user on the robot page stops their delivery at once, as through the Management API', async (t) => {
  const { app, staff, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const a = await createRobot(app)
  const b = await createRobot(app)
  await grant(app, alice, a)
  await grant(app, alice, b)
  const wildcard = await connectUser(t, app, alice)
  const exact = await connectUser(t, app, alice)
  t.same(await suback(wildcard, 'robots/+/stats'), [1])
  t.same(await suback(exact, [`robots/${a.uuid}/stats`, `robots/${b.uuid}/stats`]), [1, 1])
  const aRobot = await liveRobot(t, app, a)
  const bRobot = await liveRobot(t, app, b)
  const first = Promise.all([statsWith(wildcard, a, 1), statsWith(exact, a, 1)])
  await stored(t, aRobot, a, 1)
  await first
  t.pass('alice receives the robot’s stats on both subscriptions')

  const page = await browser.get(`/admin/robots/${a.uuid}`)
  t.same(grantedUsers(page.body), ['alice'])
  t.match(page.body, `action="/admin/robots/${a.uuid}/access/${alice.id}/revoke"`)
  const before = (await auditLog(app)).length
  const res = await browser.post(`/admin/robots/${a.uuid}/access/${alice.id}/revoke`)
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/robots/${a.uuid}?notice=access_revoked#access`)

  const leakedWildcard = collect(wildcard, (tp) => tp === `robots/${a.uuid}/stats`)
  const leakedExact = collect(exact, (tp) => tp === `robots/${a.uuid}/stats`)
  const sync = Promise.all([statsWith(wildcard, b, 100), statsWith(exact, b, 100)])
  await stored(t, aRobot, a, 2)
  await stored(t, bRobot, b, 100)
  await sync
  t.same(leakedWildcard, [], 'no stats of the revoked robot on robots/+/stats')
  t.same(leakedExact, [], 'no stats of the revoked robot on its exact topic')
  t.ok(wildcard.connected && exact.connected, 'alice stays connected')

  const shown = await follow(browser, res)
  t.equal(notice(shown.body), 'Access revoked.')
  t.same(grantedUsers(shown.body), [], 'the robot page no longer lists alice')
  t.same(await restRobots(app, alice), [b.uuid], 'REST lists only the other robot')
  const [entry] = await auditedSince(t, app, before, staff, ['access.revoked'])
  t.match(entry, { robot_uuid: a.uuid, target_user_id: alice.id })
})

// ---------------------------------------------------------------- the robot page

t.test('the robot page shows state, presence and last-seen time', async (t) => {
  const { app, browser } = await setup(t)
  const robot = await createRobot(app, { serial: 'SN-FACTS', name: 'Facts' })
  const fresh = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(fresh.statusCode, 200)
  t.equal(fact(fresh.body, 'robot-state'), 'idle')
  t.equal(fact(fresh.body, 'robot-presence'), 'offline')
  t.equal(fact(fresh.body, 'robot-last-seen'), '—', 'never seen')
  t.match(fresh.body, 'No frames stored yet.')
  t.match(fresh.body, 'No commands yet.')

  const client = await connectRobot(t, app, robot)
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])
  const live = await eventually(async () => await browser.get(`/admin/robots/${robot.uuid}`), (res) => fact(res.body, 'robot-presence') === 'online, listening for commands')
  const lastSeen = (await app.services.robots.get(robot.uuid)).last_seen_at
  t.ok(lastSeen !== null, 'the robot was seen')
  t.equal(fact(live.body, 'robot-last-seen'), helpers.time(lastSeen), 'the last-seen time is shown')
  t.match(fact(live.body, 'robot-last-seen'), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/)

  await client.endAsync()
  const gone = await eventually(async () => await browser.get(`/admin/robots/${robot.uuid}`), (res) => fact(res.body, 'robot-presence') === 'offline')
  t.match(fact(gone.body, 'robot-last-seen'), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/, 'an offline robot keeps its last-seen time')
})

t.test('the statistics table shows 20 frames a page, newest first; the Older link pages through every frame exactly once', async (t) => {
  const { app, browser } = await setup(t)
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const robotId = (await app.db.models.Robot.findOne({ where: { uuid: robot.uuid } }))?.id as number
  const otherId = (await app.db.models.Robot.findOne({ where: { uuid: other.uuid } }))?.id as number
  // Stored out of time order, three frames sharing each received time (ties
  // are ordered by id, newest first), so the cursor must carry both.
  const base = Date.UTC(2024, 4, 1, 12, 0, 0)
  const frames: Array<{ frameId: string, at: number, index: number }> = []
  for (let i = 0; i < 45; i++) {
    const at = base + Math.floor(((i * 17) % 45) / 3) * 1000
    const frameId = `f-${String(i).padStart(2, '0')}`
    frames.push({ frameId, at, index: i })
    await app.services.frames.store(robotId, [{
      frameId,
      type: 1,
      data: { speed: i, position_x: i, position_y: -i, angle_theta: 0, datetime: new Date(at).toISOString() },
      recordedAt: new Date(at - 500),
      receivedAt: new Date(at)
    }])
  }
  await app.services.frames.store(otherId, [{ frameId: 'not-mine', type: 1, data: { speed: 0 }, recordedAt: null, receivedAt: new Date(base + 3_600_000) }])
  const expected = [...frames].sort((x, y) => y.at - x.at || y.index - x.index).map((f) => f.frameId)

  const walked = await walkPages(browser, `/admin/robots/${robot.uuid}`, frameIds)
  t.same(walked.statuses, [200, 200, 200])
  t.same(walked.pages.map((p) => p.length), [20, 20, 5], '20 rows a page')
  t.same(walked.pages.flat(), expected, 'newest first, every frame exactly once across the pages')
  t.equal(new Set(walked.pages.flat()).size, 45)
  t.notOk(walked.pages.flat().includes('not-mine'), 'only this robot’s frames')

  const first = await browser.get(`/admin/robots/${robot.uuid}`)
  t.match(first.body, /<a rel="next" href="[^"]+">Older »<\/a>/, 'an Older » link')
  t.notMatch(first.body, '« Newest', 'the first page has no way back')
  const last = await browser.get(walked.links[1] as string)
  t.equal(nextLink(last.body), undefined, 'the last page has no Older link')
  t.match(last.body, '« Newest')
  const row = section(first.body, 'id="stats-table"', '</tbody>')
  const newest = frames.find((f) => f.frameId === expected[0]) as { at: number, index: number }
  t.match(row, `<td class="time">${helpers.time(new Date(newest.at).toISOString())}</td>\n        <td>position</td>`, 'received time and type are shown')
  t.match(row, `<td class="num" title="${newest.index}">${newest.index}.00</td>`, 'and the data, with fixed decimals')
  t.equal((await browser.get(`/admin/robots/${robot.uuid}?cursor=garbage`)).statusCode, 400, 'a malformed cursor is a 400 page')
})

t.test('sending a command: 409 when the robot is not listening, 400 for an unknown command, 303 and delivered over MQTT when it is', async (t) => {
  const { app, staff, browser } = await setup(t)
  const robot = await createRobot(app)
  const before = (await auditLog(app)).length
  await browser.get(`/admin/robots/${robot.uuid}`)

  const offline = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'manual' })
  t.equal(offline.statusCode, 409, 'not connected')
  t.same(errorFields(offline.body), ['command'])
  t.equal(errorNextTo(offline.body, 'command'), NOT_LISTENING)
  t.equal(selectedOption(offline.body, 'command'), 'manual', 'the chosen command stays selected')

  const client = await connectRobot(t, app, robot)
  const notSubscribed = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'auto' })
  t.equal(notSubscribed.statusCode, 409, 'connected but not subscribed to its commands')
  t.equal(errorNextTo(notSubscribed.body, 'command'), NOT_LISTENING)

  for (const bad of ['explode', '', 'AUTO']) {
    const res = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: bad })
    t.equal(res.statusCode, 400, `command ${JSON.stringify(bad)}`)
    t.same(errorFields(res.body), ['command'])
    t.equal(errorNextTo(res.body, 'command'), 'Choose one of the listed commands.')
  }
  t.same((await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid)).items, [], 'no command stored')
  t.equal((await auditLog(app)).length, before, 'nothing audited')

  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])
  const received = nextMessage(client, `robots/${robot.uuid}/commands`)
  const res = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'manual' })
  t.equal(res.statusCode, 303)
  t.equal(location(res), `/admin/robots/${robot.uuid}?notice=command_sent#commands`)
  const command = await received
  t.match(command, { id: String, command: 'manual', issued_by: staff.username, issued_at: /^\d{4}-/ }, 'the robot receives the command over MQTT')
  const id = command.id as string

  const json = async () => {
    const r = await browser.get(`/admin/robots/${robot.uuid}/commands.json`)
    t.equal(r.statusCode, 200)
    return r.json().items as Array<{ id: string, status: string }>
  }
  const delivered = await eventually(json, (items) => items[0]?.status === 'delivered')
  t.match(delivered, [{ id, robot_uuid: robot.uuid, command: 'manual', status: 'delivered', issued_by: staff.username }], 'commands.json: delivered after the PUBACK')
  await client.publishAsync(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id, status: 'ok', state: 'manual' }), { qos: 1 })
  const done = await eventually(json, (items) => items[0]?.status === 'done')
  t.match(done, [{ id, status: 'done', acked_at: /^\d{4}-/ }], 'commands.json: done after the ack')

  const page = await follow(browser, res)
  t.equal(notice(page.body), 'Command sent.')
  t.equal(fact(page.body, 'robot-state'), 'manual', 'the page shows the new state')
  t.match(page.body, new RegExp(`<tr data-command-id="${id}">[\\s\\S]*?<td>manual</td>\\s*<td class="status status-done">done</td>\\s*<td>${staff.username}</td>`), 'the recent commands show it with its status')

  const [entry] = await auditedSince(t, app, before, staff, ['command.sent'])
  t.match(entry, { robot_uuid: robot.uuid, details: { command_id: id, command: 'manual' } })

  const anonymous = await app.inject({ method: 'GET', url: `/admin/robots/${robot.uuid}/commands.json` })
  t.equal(anonymous.statusCode, 401, 'commands.json needs a session')
  t.equal(anonymous.json().statusCode, 401)
})

t.test('every robot page action is audited with the staff user as actor', async (t) => {
  const { app, staff, browser } = await setup(t)
  const alice = await createUser(app, { username: 'alice' })
  const before = (await auditLog(app)).length

  await browser.get('/admin/robots/new')
  const created = await browser.post('/admin/robots', { serial: 'SN-AUDIT', name: 'Audited', token: '' })
  const uuid = /href="\/admin\/robots\/([0-9a-f-]{36})"/.exec(created.body)?.[1] as string
  await browser.get(`/admin/robots/${uuid}/edit`)
  t.equal((await browser.post(`/admin/robots/${uuid}`, { serial: 'SN-AUDIT', name: 'Renamed' })).statusCode, 303)
  t.equal((await browser.post(`/admin/robots/${uuid}/disable`)).statusCode, 303)
  t.equal((await browser.post(`/admin/robots/${uuid}/enable`)).statusCode, 303)
  const rotated = await browser.post(`/admin/robots/${uuid}/rotate`)
  const secret = shownSecret(rotated.body) as string
  await browser.get(`/admin/robots/${uuid}`)
  t.equal((await browser.post(`/admin/robots/${uuid}/access`, { username: 'alice' })).statusCode, 303)
  t.equal((await browser.post(`/admin/robots/${uuid}/access/${alice.id}/revoke`)).statusCode, 303)
  const client = await connectRobot(t, app, { uuid, serial: 'SN-AUDIT', secret })
  t.same(await subscribe(client, `robots/${uuid}/commands`), [1])
  t.equal((await browser.post(`/admin/robots/${uuid}/commands`, { command: 'idle' })).statusCode, 303)
  await browser.get(`/admin/robots/${uuid}/delete`)
  t.equal((await browser.post(`/admin/robots/${uuid}/delete`)).statusCode, 303)

  const entries = await auditedSince(t, app, before, staff, [
    'robot.created', 'robot.updated', 'robot.updated', 'robot.updated', 'robot.token_rotated',
    'access.granted', 'access.revoked', 'command.sent', 'robot.deleted'
  ])
  t.ok(entries.every((e) => e.robot_uuid === uuid), 'all about this robot')
  t.notMatch(JSON.stringify(entries), secret, 'no secret in the audit log')
  const logPage = await browser.get(`/admin/audit?robot=${uuid}`)
  t.equal(logPage.statusCode, 200)
  t.match(logPage.body, 'robot.deleted', 'the audit page shows the robot’s history')
})
