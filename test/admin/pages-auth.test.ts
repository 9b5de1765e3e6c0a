// docs/admin.md, the admin pages' security and read-only pages, through real
// requests on a real database: staff-only log-in and log-out with a session
// cookie (HttpOnly, SameSite, Secure behind TLS) whose token is stored only
// hashed; anonymous, non-staff, demoted, deactivated and re-passworded users
// sent to the log-in form; CSRF tokens on every form, bound to the session;
// the log-in rate limit; no open redirect after log-in; the dashboard's
// figures; the audit log's order, pages and filters; HTML escaping of hostile
// names everywhere; security headers; and HTML error pages.
import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Response } from 'light-my-request'
import t from 'tap'
import { build } from '../helper.js'
import { createRobot, createStaff, createUser, type TestUser } from '../factory.js'
import { eventually } from '../mqtt.js'
import { AdminBrowser, staffBrowser } from './browser.js'

const LOGIN_ERROR = 'Wrong username or password, or not a staff account.'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

interface Cookie { name: string, value: string, path?: string, httpOnly?: boolean, sameSite?: string, secure?: boolean, maxAge?: number, expires?: Date }

function cookieOf (res: Response, name: string): Cookie | undefined {
  return (res.cookies as Cookie[]).find((c) => c.name === name)
}

/** The text Eta escaped back to what it was. */
function unescapeHtml (s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
}

function csrfOf (body: string): string | undefined {
  return /name="_csrf" value="([^"]+)"/.exec(body)?.[1]
}

function alertOf (body: string): string | undefined {
  return /<p class="error" role="alert">([^<]*)<\/p>/.exec(body)?.[1]
}

function h1Of (body: string): string | undefined {
  return /<h1>([^<]*)<\/h1>/.exec(body)?.[1]
}

function inputValue (body: string, name: string): string | undefined {
  const v = new RegExp(`name="${name}"[^>]*? value="([^"]*)"`).exec(body)?.[1]
  return v === undefined ? undefined : unescapeHtml(v)
}

const staffActor = (u: TestUser) => ({ actor: { id: u.id, username: u.username } })

async function sessionCount (app: FastifyInstance, userId: number): Promise<number> {
  return await app.db.models.AdminSession.count({ where: { userId } })
}

/** Waits until the user has no admin session left (they are ended by event listeners). */
async function noSessionsLeft (app: FastifyInstance, userId: number): Promise<number> {
  return await eventually(async () => await sessionCount(app, userId), (n) => n === 0)
}

/** A request with only this session cookie, as a stolen or kept cookie would be replayed. */
async function withSession (app: FastifyInstance, token: string, url = '/admin'): Promise<Response> {
  return await app.inject({ method: 'GET', url, headers: { cookie: `united_session=${token}` } })
}

/** A log-in by hand (GET the form, POST it), with extra headers and a client address. */
async function rawLogin (app: FastifyInstance, username: string, password: string, opts: { headers?: Record<string, string>, remoteAddress?: string } = {}): Promise<{ page: Response, res: Response }> {
  const headers = opts.headers ?? {}
  const page = await app.inject({ method: 'GET', url: '/admin/login', headers, remoteAddress: opts.remoteAddress })
  const secret = cookieOf(page, 'united_csrf')
  const res = await app.inject({
    method: 'POST',
    url: '/admin/login',
    remoteAddress: opts.remoteAddress,
    headers: { ...headers, ...FORM, cookie: `united_csrf=${secret?.value ?? ''}` },
    payload: new URLSearchParams({ _csrf: csrfOf(page.body) ?? '', username, password }).toString()
  })
  return { page, res }
}

/** An anonymous browser that has loaded the log-in form (so it holds a valid anonymous CSRF token). */
async function visitor (app: FastifyInstance): Promise<AdminBrowser> {
  const browser = new AdminBrowser(app)
  const res = await browser.get('/admin/login')
  if (res.statusCode !== 200 || browser.csrf === undefined) throw new Error(`log-in form: ${res.statusCode}`)
  return browser
}

interface AuditRow { who: string, action: string, robot: string, user: string, details: string, ip: string }

/** The rows of the audit page's table, tags stripped and text unescaped. */
function auditRows (body: string): AuditRow[] {
  const tbody = /<tbody>([\s\S]*?)<\/tbody>/.exec(body)?.[1] ?? ''
  const rows: AuditRow[] = []
  for (const [, tr] of tbody.matchAll(/<tr>([\s\S]*?)<\/tr>/g)) {
    const cells = [...(tr as string).matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => unescapeHtml((m[1] as string).replace(/<[^>]*>/g, '').trim()))
    const [, who = '', action = '', robot = '', user = '', details = '', ip = ''] = cells
    rows.push({ who, action, robot, user, details, ip })
  }
  return rows
}

function olderLink (body: string): string | undefined {
  const href = /<a rel="next" href="([^"]+)">Older »<\/a>/.exec(body)?.[1]
  return href === undefined ? undefined : unescapeHtml(href)
}

// ---------------------------------------------------------------- log-in

t.test('the log-in form is public and carries a CSRF token', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/admin/login' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/)
  t.match(res.body, /<form method="post" action="\/admin\/login">/)
  t.match(csrfOf(res.body), /^\S{20,}$/, 'a hidden _csrf input')
  t.match(res.body, /name="username"/)
  t.match(res.body, /name="password" type="password" value=""/)
  const secret = cookieOf(res, 'united_csrf')
  t.ok(secret, 'the CSRF secret cookie is set')
  t.match(secret, { path: '/admin', httpOnly: true, sameSite: 'Strict' })
  t.notOk(cookieOf(res, 'united_session'), 'no session for a visitor')
  t.notMatch(res.body, /action="\/admin\/logout"/, 'no log-out form for a visitor')
})

t.test('a staff log-in sets an HttpOnly, SameSite=Lax session cookie whose token is stored only hashed', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = new AdminBrowser(app)
  const res = await browser.login(staff.username, staff.password)
  t.equal(res.statusCode, 303)
  t.equal(res.headers.location, '/admin')
  const cookie = cookieOf(res, 'united_session')
  if (cookie === undefined) throw new Error('no session cookie')
  t.match(cookie, { path: '/admin', httpOnly: true, sameSite: 'Lax', maxAge: app.config.ADMIN_SESSION_TTL })
  t.notOk(cookie.secure, 'no Secure flag over plain http without PUBLIC_URL')
  t.match(cookie.value, /^[0-9a-f]{64}$/, '32 random bytes')
  const raw = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('united_session='))
  t.match(raw, /; HttpOnly/)
  t.match(raw, /; SameSite=Lax/)
  t.match(raw, /; Path=\/admin/)

  const { AdminSession } = app.db.models
  t.equal(await AdminSession.count(), 1)
  t.equal(await AdminSession.findByPk(cookie.value), null, 'the token itself is not a key')
  const row = await AdminSession.findByPk(createHash('sha256').update(cookie.value).digest('hex'))
  t.ok(row, 'the row id is the SHA-256 of the token')
  t.equal(row?.userId, staff.id)
  t.equal(row?.ip, '127.0.0.1')
  const rows = await AdminSession.findAll({ raw: true })
  t.notMatch(JSON.stringify(rows), cookie.value, 'the token is nowhere in the table')

  const dashboard = await browser.get('/admin')
  t.equal(dashboard.statusCode, 200)
  t.equal(h1Of(dashboard.body), 'Dashboard')
  t.match(dashboard.body, `<span class="who">${staff.username}</span>`, 'the page names who is logged in')
  t.match(dashboard.body, /<form class="logout" method="post" action="\/admin\/logout">/)

  const again = await browser.get('/admin/login')
  t.equal(again.statusCode, 303, 'the log-in form sends a logged-in user on')
  t.equal(again.headers.location, '/admin')
})

t.test('log-in follows a safe `next` and refuses open redirects', async (t) => {
  const app = await build(t, { ADMIN_LOGIN_RATE: '100' }) // many log-ins from one address
  const staff = await createStaff(app)
  const cases: Array<[string, string]> = [
    ['/admin/robots?q=a%20b&online=yes', '/admin/robots?q=a%20b&online=yes'],
    ['/admin/audit', '/admin/audit'],
    ['/admin', '/admin'],
    ['//evil.example', '/admin'],
    ['https://evil.example', '/admin'],
    ['http://evil.example/admin', '/admin'],
    ['/\\evil.example', '/admin'],
    ['/admin\\..\\..\\evil', '/admin'],
    ['/administrator', '/admin'],
    ['javascript:alert(1)', '/admin'],
    ['/admin/logout', '/admin'],
    ['/admin/login?next=//evil.example', '/admin'],
    ['', '/admin'],
    ['/admin/x\r\nSet-Cookie: united_session=forged', '/admin'],
    ['/admin/\u20ac', '/admin'],
    // Dot segments, plain or encoded, would lead the browser out of /admin.
    ['/admin/../docs', '/admin'],
    ['/admin/robots/../../docs', '/admin'],
    ['/admin/%2e%2e/docs', '/admin'],
    ['/admin/%2E%2E/docs', '/admin'],
    ['/admin/..%2fdocs', '/admin'],
    ['/admin/..%5cdocs', '/admin'],
    ['/admin/./robots', '/admin'],
    ['/admin/robots/..', '/admin'],
    ['/admin/users/1', '/admin/users/1']
  ]
  for (const [next, expected] of cases) {
    const browser = await visitor(app)
    const res = await browser.post('/admin/login', { username: staff.username, password: staff.password, next })
    t.equal(res.statusCode, 303, `next=${JSON.stringify(next)}`)
    t.equal(res.headers.location, expected, `next=${JSON.stringify(next)} goes to ${expected}`)
    t.ok(cookieOf(res, 'united_session'), 'logged in')
  }
  // The same rule for the query string of the log-in form, once logged in.
  const browser = await staffBrowser(app, staff)
  for (const next of ['//evil.example', 'https://evil.example']) {
    const res = await browser.get(`/admin/login?next=${encodeURIComponent(next)}`)
    t.equal(res.statusCode, 303)
    t.equal(res.headers.location, '/admin')
  }
})

t.test('?notice= shows only the fixed notices: names of Object.prototype show nothing', async (t) => {
  const app = await build(t)
  const browser = await visitor(app)
  const known = await browser.get('/admin/login?notice=logged_out')
  t.match(known.body, 'You are logged out.', 'a known notice is shown')
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'unknown']) {
    const res = await browser.get(`/admin/login?notice=${name}`)
    t.equal(res.statusCode, 200)
    t.notMatch(res.body, /native code|function |\[object /, `notice=${name}: nothing of the prototype`)
    t.notMatch(res.body, 'You are logged out.')
  }
})

t.test('wrong password, unknown user, inactive staff and non-staff all get the same 401 page, and no session', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const inactive = await createStaff(app)
  await app.services.users.update(inactive.id, { isActive: false }, { actor: null })
  const plain = await createUser(app)
  const cases: Array<[string, string, string]> = [
    ['wrong password', staff.username, 'not-the-password'],
    ['unknown user', 'nobody-by-this-name', 'correct-horse-battery'],
    ['inactive staff, right password', inactive.username, inactive.password],
    ['non-staff, right password', plain.username, plain.password],
    ['empty password', staff.username, ''],
    ['empty username', '', 'correct-horse-battery'],
    ['username too long', 'u'.repeat(151), 'correct-horse-battery']
  ]
  const pages: string[] = []
  for (const [name, username, password] of cases) {
    const browser = await visitor(app)
    const res = await browser.post('/admin/login', { username, password })
    t.equal(res.statusCode, 401, name)
    t.match(res.headers['content-type'], /^text\/html/, name)
    t.equal(alertOf(res.body), LOGIN_ERROR, `${name}: the one error text`)
    t.equal(inputValue(res.body, 'username'), username, `${name}: the typed username is kept`)
    t.match(res.body, /name="password" type="password" value=""/, `${name}: the password is not sent back`)
    if (password !== '') t.notMatch(res.body, password, `${name}: the password is nowhere in the page`)
    t.notOk(cookieOf(res, 'united_session'), `${name}: no session cookie`)
    t.equal((await browser.get('/admin')).statusCode, 303, `${name}: still not logged in`)
    // Apart from the token and the typed name, the pages are identical.
    pages.push(res.body.replace(/name="_csrf" value="[^"]*"/, '').replace(/(name="username"[^>]*? value=")[^"]*"/, '$1"'))
  }
  t.equal(new Set(pages).size, 1, 'one page for every failure: nothing tells which names exist or who is staff')
  t.equal(await app.db.models.AdminSession.count(), 0, 'no session was created')

  const failed = (await app.services.audit.list({ action: 'user.login_failed', limit: 100 })).items
  t.equal(failed.length, 4, 'every attempt that reached the check is audited')
  t.match(failed.find((e) => e.target_user_id === plain.id), { actor: null, details: { username: plain.username, via: 'admin' } })
  t.match(failed.find((e) => e.details?.username === staff.username), { target_user_id: staff.id }, 'a wrong password is recorded against the account tried')
  t.match(failed.find((e) => e.details?.username === 'nobody-by-this-name'), { target_user_id: null })
  t.equal((await app.services.audit.list({ action: 'user.login' })).items.length, 0)
})

t.test('a non-staff user cannot get a session, even with a user JWT', async (t) => {
  const app = await build(t)
  const plain = await createUser(app)
  const browser = await visitor(app)
  const res = await browser.post('/admin/login', { username: plain.username, password: plain.password })
  t.equal(res.statusCode, 401)
  t.equal(alertOf(res.body), LOGIN_ERROR)
  const page = await app.inject({ method: 'GET', url: '/admin/robots', headers: { authorization: `Bearer ${plain.jwt}` } })
  t.equal(page.statusCode, 303, 'a JWT is no admin session')
  t.equal(page.headers.location, '/admin/login?next=%2Fadmin%2Frobots')
})

t.test('logging in again replaces the previous session (no session fixation)', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const other = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  const first = browser.cookies.get('united_session') as string
  // The form is not shown to a logged-in user; post a fresh log-in with the dashboard's token.
  await browser.get('/admin')
  const res = await browser.post('/admin/login', { username: other.username, password: other.password })
  t.equal(res.statusCode, 303)
  const second = browser.cookies.get('united_session') as string
  t.not(second, first)
  t.equal(await sessionCount(app, staff.id), 0, 'the first session is gone')
  t.equal((await withSession(app, first)).statusCode, 303, 'the first cookie no longer works')
  const page = await browser.get('/admin')
  t.match(page.body, `<span class="who">${other.username}</span>`)
})

t.test('an expired session is sent to the log-in form', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  t.equal((await browser.get('/admin')).statusCode, 200)
  await app.db.models.AdminSession.update({ expiresAt: new Date(Date.now() - 1000) }, { where: { userId: staff.id } })
  const res = await browser.get('/admin/users')
  t.equal(res.statusCode, 303)
  t.equal(res.headers.location, '/admin/login?next=%2Fadmin%2Fusers')
  t.equal(browser.cookies.has('united_session'), false, 'the dead cookie is cleared')
})

// ---------------------------------------------------------------- Secure

t.test('the cookies are Secure when PUBLIC_URL is https', async (t) => {
  const app = await build(t, { PUBLIC_URL: 'https://united.example' })
  const staff = await createStaff(app)
  const { page, res } = await rawLogin(app, staff.username, staff.password)
  t.equal(res.statusCode, 303)
  t.match(cookieOf(res, 'united_session'), { secure: true, httpOnly: true, sameSite: 'Lax', path: '/admin' })
  t.match(cookieOf(page, 'united_csrf'), { secure: true, httpOnly: true })
  const raw = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('united_session='))
  t.match(raw, /; Secure/)
})

t.test('behind a trusted proxy the session cookie is Secure exactly when the client used https', async (t) => {
  const app = await build(t, { TRUST_PROXY: 'true' })
  const staff = await createStaff(app)
  const tls = await rawLogin(app, staff.username, staff.password, { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } })
  t.equal(tls.res.statusCode, 303)
  t.match(cookieOf(tls.res, 'united_session'), { secure: true, httpOnly: true, sameSite: 'Lax' })
  t.match(cookieOf(tls.page, 'united_csrf'), { secure: true })
  const session = await app.db.models.AdminSession.findOne({ where: { userId: staff.id } })
  t.equal(session?.ip, '203.0.113.7', 'the client address comes from the proxy')

  const plain = await rawLogin(app, staff.username, staff.password, { headers: { 'x-forwarded-proto': 'http' } })
  t.equal(plain.res.statusCode, 303)
  t.notOk(cookieOf(plain.res, 'united_session')?.secure, 'no Secure flag over http')
})

t.test('over plain http without PUBLIC_URL, and with an untrusted x-forwarded-proto, the cookie is not Secure', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const { res } = await rawLogin(app, staff.username, staff.password, { headers: { 'x-forwarded-proto': 'https' } })
  t.equal(res.statusCode, 303)
  const cookie = cookieOf(res, 'united_session')
  t.ok(cookie)
  t.notOk(cookie?.secure)
  const raw = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('united_session='))
  t.notMatch(raw, /Secure/)
})

// ---------------------------------------------------------------- anonymous and revoked visitors

t.test('an anonymous visitor is sent to the log-in form from every page, and comes back after logging in', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const pages = [
    '/admin', '/admin/', '/admin/robots', '/admin/robots?q=a%20b&online=yes', '/admin/robots/new',
    `/admin/robots/${robot.uuid}`, `/admin/robots/${robot.uuid}/edit`, `/admin/robots/${robot.uuid}/delete`,
    '/admin/users', '/admin/users/new', `/admin/users/${staff.id}`, `/admin/users/${staff.id}/delete`,
    '/admin/audit', '/admin/audit?action=user.login', '/admin/logout'
  ]
  for (const path of pages) {
    const res = await app.inject({ method: 'GET', url: path })
    t.equal(res.statusCode, 303, path)
    const expected = path === '/admin' ? '/admin/login' : `/admin/login?next=${encodeURIComponent(path)}`
    t.equal(res.headers.location, expected, `${path} → ${expected}`)
    t.equal(res.body, '', `${path}: nothing of the page is sent`)
  }
  const css = await app.inject({ method: 'GET', url: '/admin/static/admin.css' })
  t.equal(css.statusCode, 200, 'static files need no log-in')

  // The log-in form keeps the page to come back to.
  const browser = new AdminBrowser(app)
  const redirect = await browser.get('/admin/robots?q=a%20b&online=yes')
  const form = await browser.get(redirect.headers.location as string)
  t.equal(form.statusCode, 200)
  const next = inputValue(form.body, 'next')
  t.equal(next, '/admin/robots?q=a%20b&online=yes')
  const res = await browser.post('/admin/login', { username: staff.username, password: staff.password, next })
  t.equal(res.statusCode, 303)
  t.equal(res.headers.location, '/admin/robots?q=a%20b&online=yes')
})

t.test('anonymous forms are sent to the log-in form and change nothing', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const alice = await createUser(app)
  const robot = await createRobot(app, { name: 'before' })
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const auditBefore = (await app.services.audit.list({ limit: 1000 })).items.length
  const browser = await visitor(app)
  const forms: Array<[string, Record<string, string>]> = [
    ['/admin/robots', { serial: 'ANON-1', name: 'x' }],
    [`/admin/robots/${robot.uuid}`, { serial: robot.serial, name: 'after' }],
    [`/admin/robots/${robot.uuid}/disable`, {}],
    [`/admin/robots/${robot.uuid}/rotate`, {}],
    [`/admin/robots/${robot.uuid}/access`, { username: alice.username }],
    [`/admin/robots/${robot.uuid}/commands`, { command: 'idle' }],
    [`/admin/robots/${robot.uuid}/delete`, {}],
    ['/admin/users', { username: 'anon-made', password: 'long-enough-password', is_staff: 'on' }],
    [`/admin/users/${alice.id}`, { password: 'another-long-password', is_staff: 'on', is_active: 'on' }],
    [`/admin/users/${staff.id}/delete`, {}],
    [`/admin/users/${alice.id}/access`, { serial: robot.serial }],
    ['/admin/logout', {}]
  ]
  for (const [url, form] of forms) {
    const res = await browser.post(url, form)
    t.equal(res.statusCode, 303, url)
    t.equal(res.headers.location, '/admin/login', `${url} → the log-in form`)
  }
  t.equal(await app.services.robots.findBySerial('ANON-1'), null)
  t.match(await app.services.robots.get(robot.uuid), { name: 'before', enabled: true })
  t.same(await app.services.access.usersOf(robot.uuid), [])
  t.equal(await app.services.users.findByUsername('anon-made'), null)
  t.match(await app.services.users.get(alice.id), { is_staff: false, is_active: true })
  t.ok(await app.services.users.verifyPassword(alice.username, alice.password), 'the password is unchanged')
  t.ok(await app.services.users.findByUsername(staff.username), 'the staff user still exists')
  const secret = await app.services.robots.verifySecret(robot.serial, robot.secret)
  t.ok(secret, 'the secret was not rotated')
  const commands = await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid)
  t.same(commands.items, [], 'no command was sent')
  t.equal((await app.services.audit.list({ limit: 1000 })).items.length, auditBefore, 'nothing was audited')
})

t.test('the JSON endpoints answer 401 JSON to an anonymous visitor', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  for (const url of ['/admin/token.json', `/admin/robots/${robot.uuid}/commands.json`]) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 401, url)
    t.match(res.headers['content-type'], /^application\/json/, url)
    t.same(res.json(), { statusCode: 401, error: 'Unauthorized', message: 'log in to the admin first' }, url)
  }
  const browser = await staffBrowser(app, staff)
  const token = await browser.get('/admin/token.json')
  t.equal(token.statusCode, 200, 'a staff session gets the token')
  t.match(token.json(), { username: staff.username, access: String })
  const commands = await browser.get(`/admin/robots/${robot.uuid}/commands.json`)
  t.equal(commands.statusCode, 200)
  t.same(commands.json(), { items: [] })
})

t.test('a staff user who loses the staff flag is sent to the log-in form, and the session stays ended', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  const token = browser.cookies.get('united_session') as string
  t.equal((await browser.get('/admin/robots')).statusCode, 200)

  await app.services.users.update(staff.id, { isStaff: false }, { actor: null })
  const res = await browser.get('/admin/robots')
  t.equal(res.statusCode, 303, 'the next request is refused')
  t.equal(res.headers.location, '/admin/login?next=%2Fadmin%2Frobots')
  t.equal(browser.cookies.has('united_session'), false, 'the cookie is cleared')
  t.equal(await noSessionsLeft(app, staff.id), 0, 'the session is ended, not just ignored')

  await app.services.users.update(staff.id, { isStaff: true }, { actor: null })
  t.equal((await withSession(app, token)).statusCode, 303, 'giving the flag back does not revive the old cookie')
  const again = await browser.login(staff.username, staff.password)
  t.equal(again.statusCode, 303, 'a new log-in works')
})

t.test('a deactivated staff user is sent to the log-in form and their sessions end', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const other = await createStaff(app)
  const first = await staffBrowser(app, staff)
  const second = await staffBrowser(app, staff)
  const bystander = await staffBrowser(app, other)
  const token = first.cookies.get('united_session') as string
  t.equal(await sessionCount(app, staff.id), 2)

  await app.services.users.update(staff.id, { isActive: false }, { actor: null })
  t.equal(await noSessionsLeft(app, staff.id), 0, 'every session of the user ends')
  for (const browser of [first, second]) {
    const res = await browser.get('/admin/audit')
    t.equal(res.statusCode, 303)
    t.equal(res.headers.location, '/admin/login?next=%2Fadmin%2Faudit')
  }
  t.equal((await bystander.get('/admin')).statusCode, 200, 'other users keep theirs')
  await app.services.users.update(staff.id, { isActive: true }, { actor: null })
  t.equal((await withSession(app, token)).statusCode, 303, 'reactivation does not revive the old cookie')
})

t.test('a password change ends the user\'s sessions', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  const token = browser.cookies.get('united_session') as string
  await app.services.users.update(staff.id, { password: 'a-brand-new-password' }, { actor: null })
  t.equal(await noSessionsLeft(app, staff.id), 0)
  t.equal((await withSession(app, token)).statusCode, 303, 'the old cookie no longer works')
  t.equal((await browser.get('/admin')).statusCode, 303)
  t.equal((await browser.login(staff.username, staff.password)).statusCode, 401, 'the old password is refused')
  t.equal((await browser.login(staff.username, 'a-brand-new-password')).statusCode, 303, 'the new one works')
  t.equal((await browser.get('/admin')).statusCode, 200)
})

// ---------------------------------------------------------------- log-out

t.test('log-out: a confirmation form, then the session ends for good', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  const token = browser.cookies.get('united_session') as string
  t.equal(await sessionCount(app, staff.id), 1)

  const form = await browser.get('/admin/logout')
  t.equal(form.statusCode, 200)
  t.equal(h1Of(form.body), 'Log out')
  t.match(form.body, /<form method="post" action="\/admin\/logout">\s*<input type="hidden" name="_csrf" value="[^"]+">/)
  t.equal(await sessionCount(app, staff.id), 1, 'GET changes nothing')

  const res = await browser.post('/admin/logout')
  t.equal(res.statusCode, 303)
  t.equal(res.headers.location, '/admin/login?notice=logged_out')
  const cleared = cookieOf(res, 'united_session')
  t.ok(cleared, 'the cookie is cleared')
  t.equal(cleared?.value, '')
  t.equal(cleared?.path, '/admin')
  t.ok(cleared?.expires !== undefined && cleared.expires.getTime() <= Date.now(), 'expired')
  t.equal(await sessionCount(app, staff.id), 0, 'the session row is deleted')

  const login = await browser.get('/admin/login?notice=logged_out')
  t.equal(login.statusCode, 200)
  t.match(login.body, '<p class="notice" role="status">You are logged out.</p>')
  t.equal((await browser.get('/admin')).statusCode, 303)
  const replay = await withSession(app, token)
  t.equal(replay.statusCode, 303, 'the old cookie, replayed, no longer works')
  t.equal(replay.headers.location, '/admin/login')

  const notice = await app.inject({ method: 'GET', url: '/admin/login?notice=%3Cscript%3Ealert(1)%3C%2Fscript%3E' })
  t.notMatch(notice.body, /class="notice"/, 'an unknown notice shows nothing (no injected text)')
})

// ---------------------------------------------------------------- CSRF

t.test('the log-in form refuses a POST without a valid CSRF token', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const cold = new AdminBrowser(app)
  const noSecret = await cold.post('/admin/login', { username: staff.username, password: staff.password })
  t.equal(noSecret.statusCode, 403, 'no CSRF cookie, no token')
  t.equal(h1Of(noSecret.body), 'This form has expired')
  t.match(noSecret.headers['content-type'], /^text\/html/)

  const browser = await visitor(app)
  for (const _csrf of [null, '', 'forged-token']) {
    const res = await browser.post('/admin/login', { _csrf, username: staff.username, password: staff.password })
    t.equal(res.statusCode, 403, `_csrf=${String(_csrf)}`)
    t.equal(h1Of(res.body), 'This form has expired')
    t.notOk(cookieOf(res, 'united_session'))
  }
  t.equal(await app.db.models.AdminSession.count(), 0, 'no session was created')
  t.equal((await app.services.audit.list({ action: 'user.login' })).items.length, 0)

  const other = await visitor(app)
  const stolen = await browser.post('/admin/login', { _csrf: other.csrf, username: staff.username, password: staff.password })
  t.equal(stolen.statusCode, 403, 'a token from another browser')

  await browser.get('/admin/login')
  t.equal((await browser.post('/admin/login', { username: staff.username, password: staff.password })).statusCode, 303, 'with its own token it works')
})

t.test('every representative form refuses a POST without its CSRF token, and nothing changes', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const alice = await createUser(app)
  const robot = await createRobot(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const me = { id: staff.id, username: staff.username, isStaff: true }
  const browser = await staffBrowser(app, staff)
  await browser.get(`/admin/robots/${robot.uuid}`)

  const forms: Array<[string, string, Record<string, string>]> = [
    ['log out', '/admin/logout', {}],
    ['create a robot', '/admin/robots', { serial: 'CSRF-1', name: 'x' }],
    ['edit a robot', `/admin/robots/${robot.uuid}`, { serial: robot.serial, name: 'renamed' }],
    ['create a user', '/admin/users', { username: 'csrf-made', password: 'long-enough-password' }],
    ['edit a user', `/admin/users/${alice.id}`, { password: '', is_staff: 'on', is_active: 'on' }],
    ['send a command', `/admin/robots/${robot.uuid}/commands`, { command: 'idle' }],
    ['grant access (robot page)', `/admin/robots/${robot.uuid}/access`, { username: alice.username }],
    ['grant access (user page)', `/admin/users/${alice.id}/access`, { serial: robot.serial }],
    ['disable a robot', `/admin/robots/${robot.uuid}/disable`, {}],
    ['delete a robot', `/admin/robots/${robot.uuid}/delete`, {}],
    ['delete a user', `/admin/users/${alice.id}/delete`, {}]
  ]
  const auditBefore = (await app.services.audit.list({ limit: 1000 })).items.length
  for (const [name, url, form] of forms) {
    for (const _csrf of [null, 'forged-token']) {
      const res = await browser.post(url, { ...form, _csrf })
      t.equal(res.statusCode, 403, `${name}, _csrf=${String(_csrf)}`)
      t.match(res.headers['content-type'], /^text\/html/, name)
      t.equal(h1Of(res.body), 'This form has expired', name)
      t.match(res.body, 'reload the page and try again', name)
    }
  }
  t.equal(await sessionCount(app, staff.id), 1, 'still logged in')
  t.equal((await browser.get('/admin')).statusCode, 200)
  t.equal(await app.services.robots.findBySerial('CSRF-1'), null)
  t.match(await app.services.robots.get(robot.uuid), { name: '', enabled: true })
  t.equal(await app.services.users.findByUsername('csrf-made'), null)
  t.match(await app.services.users.get(alice.id), { is_staff: false, is_active: true })
  t.same((await app.services.commands.list(me, robot.uuid)).items, [])
  t.same(await app.services.access.usersOf(robot.uuid), [])
  t.equal((await app.services.audit.list({ limit: 1000 })).items.length, auditBefore, 'nothing was audited')

  // The same forms with the token of the page do work (the refusals above were about the token).
  await browser.get('/admin/robots/new')
  t.equal((await browser.post('/admin/robots', { serial: 'CSRF-1', name: 'x' })).statusCode, 201)
  await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal((await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'idle' })).statusCode, 303)
  t.equal((await app.services.commands.list(me, robot.uuid)).items.length, 1)
  await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal((await browser.post(`/admin/robots/${robot.uuid}/access`, { username: alice.username })).statusCode, 303)
  t.same(await app.services.access.usersOf(robot.uuid), [alice.id])
})

t.test('a CSRF token from another session is refused', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const other = await createStaff(app)
  const mine = await staffBrowser(app, staff)
  const theirs = await staffBrowser(app, other)
  await mine.get('/admin/robots/new')
  await theirs.get('/admin/robots/new')
  const res = await mine.post('/admin/robots', { _csrf: theirs.csrf, serial: 'CROSS-1' })
  t.equal(res.statusCode, 403)
  t.equal(h1Of(res.body), 'This form has expired')
  t.equal(await app.services.robots.findBySerial('CROSS-1'), null)

  // Two sessions in one browser (same CSRF secret cookie): a token of the first is refused in the second.
  const browser = await staffBrowser(app, staff)
  await browser.get('/admin/robots/new')
  const firstToken = browser.csrf
  await browser.post('/admin/login', { username: other.username, password: other.password })
  t.equal(browser.cookies.has('united_csrf'), true)
  const res2 = await browser.post('/admin/robots', { _csrf: firstToken, serial: 'CROSS-2' })
  t.equal(res2.statusCode, 403, 'a token of the previous session')
  t.equal(await app.services.robots.findBySerial('CROSS-2'), null)
})

t.test('a CSRF token obtained before log-in is refused after it (tokens are bound to the session)', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await visitor(app)
  const anonymousToken = browser.csrf
  const login = await browser.post('/admin/login', { username: staff.username, password: staff.password })
  t.equal(login.statusCode, 303)
  const res = await browser.post('/admin/robots', { _csrf: anonymousToken, serial: 'PRE-1' })
  t.equal(res.statusCode, 403)
  t.equal(h1Of(res.body), 'This form has expired')
  t.equal(await app.services.robots.findBySerial('PRE-1'), null)
  const logout = await browser.post('/admin/logout', { _csrf: anonymousToken })
  t.equal(logout.statusCode, 403, 'not even to log out')
  t.equal(await sessionCount(app, staff.id), 1)

  // And a token of the session is refused once logged out.
  await browser.get('/admin/robots/new')
  const sessionToken = browser.csrf
  t.equal((await browser.post('/admin/logout')).statusCode, 303)
  const relogin = await browser.post('/admin/login', { _csrf: sessionToken, username: staff.username, password: staff.password })
  t.equal(relogin.statusCode, 403, 'the log-in form refuses a token of the ended session')
})

// ---------------------------------------------------------------- rate limit

t.test('log-in attempts are rate-limited per client address; other pages still work', async (t) => {
  const app = await build(t, { ADMIN_LOGIN_RATE: '3' })
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff) // attempt 1
  const attacker = await visitor(app)
  t.equal((await attacker.post('/admin/login', { username: staff.username, password: 'guess-1' })).statusCode, 401) // 2
  t.equal((await attacker.post('/admin/login', { username: staff.username, password: 'guess-2' })).statusCode, 401) // 3
  const limited = await attacker.post('/admin/login', { username: staff.username, password: staff.password })
  t.equal(limited.statusCode, 429, 'the 4th attempt in a minute is refused, even with the right password')
  t.match(limited.headers['content-type'], /^text\/html/)
  t.equal(h1Of(limited.body), 'Too many attempts')
  t.match(limited.headers['retry-after'], /^\d+$/)
  t.notOk(cookieOf(limited, 'united_session'))
  t.equal(await sessionCount(app, staff.id), 1, 'only the first log-in made a session')
  t.equal((await app.services.audit.list({ action: 'user.login_failed' })).items.length, 2, 'the refused attempt did not reach the password check')

  t.equal((await attacker.get('/admin/login')).statusCode, 200, 'the form itself still loads')
  t.equal((await browser.get('/admin')).statusCode, 200, 'a logged-in staff user is not affected')
  await browser.get('/admin/robots/new')
  t.equal((await browser.post('/admin/robots', { serial: 'AFTER-LIMIT' })).statusCode, 201, 'nor are other forms')
  const elsewhere = await rawLogin(app, staff.username, staff.password, { remoteAddress: '198.51.100.9' })
  t.equal(elsewhere.res.statusCode, 303, 'another address may still log in')
})

// ---------------------------------------------------------------- dashboard

t.test('the dashboard shows robots, online now, users, frames of the last hour and commands by status', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  await createUser(app)
  const inactive = await createUser(app)
  await app.services.users.update(inactive.id, { isActive: false }, { actor: null })
  await createStaff(app)
  const online = await createRobot(app)
  const listening = await createRobot(app)
  const disabled = await createRobot(app)
  await app.services.robots.update(disabled.uuid, { enabled: false }, { actor: null })
  const now = new Date()
  await app.services.robots.setConnections([
    { uuid: online.uuid, dataConnected: true, commandConnected: false },
    { uuid: listening.uuid, dataConnected: false, commandConnected: true }
  ], now)

  const { Robot } = app.db.models
  const idOf = async (uuid: string): Promise<number> => (await Robot.findOne({ where: { uuid } }))?.id as number
  const hoursAgo = (h: number): Date => new Date(Date.now() - h * 3600_000)
  await app.services.frames.store(await idOf(online.uuid), [
    { frameId: 'n1', type: 1, data: { speed: 1 }, recordedAt: null },
    { frameId: 'n2', type: 1, data: { speed: 2 }, recordedAt: null, receivedAt: hoursAgo(0.5) },
    { frameId: 'n3', type: 3, data: { battery: 90 }, recordedAt: now, receivedAt: hoursAgo(0.95) },
    { frameId: 'old1', type: 1, data: { speed: 3 }, recordedAt: null, receivedAt: hoursAgo(1.05) },
    { frameId: 'old2', type: 1, data: { speed: 4 }, recordedAt: null, receivedAt: hoursAgo(26) }
  ])
  await app.services.frames.store(await idOf(listening.uuid), [
    { frameId: 'n1', type: 1, data: { speed: 1 }, recordedAt: null },
    { frameId: 'old1', type: 1, data: { speed: 1 }, recordedAt: null, receivedAt: hoursAgo(2) }
  ])

  const { commands, presence } = app.services
  const me = { id: staff.id, username: staff.username, isStaff: true }
  presence.set(online.uuid, { data: 1, command: 1 })
  await commands.issue(me, online.uuid, 'idle', { actor: null })
  await commands.issue(me, online.uuid, 'auto', { actor: null })
  t.equal(await commands.expireOverdue(new Date(Date.now() + (app.config.COMMAND_TIMEOUT + 5) * 1000)), 2)
  const issued = []
  for (const c of ['idle', 'auto', 'manual', 'idle', 'auto'] as const) issued.push(await commands.issue(me, online.uuid, c, { actor: null }))
  t.ok(await commands.markDelivered(issued[2]?.id as string))
  t.equal(await commands.acknowledge(online.uuid, issued[3]?.id as string, true), 'done')
  t.equal(await commands.acknowledge(online.uuid, issued[4]?.id as string, false, 'no'), 'failed')

  const browser = await staffBrowser(app, staff)
  const res = await browser.get('/admin')
  t.equal(res.statusCode, 200)
  const body = res.body
  t.match(body, /<span class="n">3<\/span> robots <small>2 enabled<\/small>/, '3 robots, 2 enabled')
  t.match(body, /<span class="n" id="online-count">1<\/span> online now/, 'one robot online (data connection)')
  t.match(body, /<span class="n">4<\/span> users <small>2 staff, 3 active<\/small>/, '4 users, 2 staff, 3 active')
  t.match(body, /<span class="n">4<\/span> frames stored in the last hour/, 'frames older than an hour are not counted')
  t.match(body, /<th><\/th><th>queued<\/th><th>pending<\/th><th>delivered<\/th><th>done<\/th><th>failed<\/th><th>expired<\/th><th>cancelled<\/th>/)
  t.same(commandRow(body, 'commands-day'), [0, 2, 1, 1, 1, 2, 0], 'sent in the last 24 hours: 0 queued, 2 pending, 1 delivered, 1 done, 1 failed, 2 expired, 0 cancelled')
  await commands.refreshCounts()
  t.same(commandRow((await browser.get('/admin')).body, 'commands-open'), [0, 2, 1], 'open now, once counted: 2 pending, 1 delivered')
})

/** The numbers of one row of the dashboard's commands table. */
function commandRow (body: string, id: string): number[] {
  const cells = new RegExp(`<tr id="${id}">([\\s\\S]*?)<\\/tr>`).exec(body)?.[1] ?? ''
  return [...cells.matchAll(/<td>(\d+)<\/td>/g)].map((m) => Number(m[1]))
}

t.test('an empty fleet shows zeros', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const browser = await staffBrowser(app, staff)
  const res = await browser.get('/admin')
  t.equal(res.statusCode, 200)
  t.match(res.body, /<span class="n">0<\/span> robots <small>0 enabled<\/small>/)
  t.match(res.body, /<span class="n" id="online-count">0<\/span> online now/)
  t.match(res.body, /<span class="n">1<\/span> users <small>1 staff, 1 active<\/small>/)
  t.match(res.body, /<span class="n">0<\/span> frames stored in the last hour/)
  t.same(commandRow(res.body, 'commands-open'), [0, 0, 0])
  t.same(commandRow(res.body, 'commands-day'), [0, 0, 0, 0, 0, 0, 0])
})

// ---------------------------------------------------------------- audit log

t.test('the audit log pages 20 rows at a time, newest first, every row once', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app, { serial: 'AUDIT-ROBOT' })
  for (let i = 1; i <= 45; i++) {
    await app.services.audit.record(staffActor(staff), { action: 'robot.updated', robotUuid: robot.uuid, details: { seq: i } })
  }
  const browser = await staffBrowser(app, staff)
  const expected = (await app.services.audit.list({ limit: 1000 })).items
  t.equal(expected.length, 48, 'user.created, robot.created, 45 updates, user.login')

  const seen: AuditRow[] = []
  const sizes: number[] = []
  let url: string | undefined = '/admin/audit'
  while (url !== undefined && sizes.length < 10) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 200, url)
    const rows = auditRows(res.body)
    sizes.push(rows.length)
    seen.push(...rows)
    if (sizes.length > 1) t.match(res.body, /<a href="\/admin\/audit">« Newest<\/a>/, 'a link back to the newest')
    url = olderLink(res.body)
  }
  t.same(sizes, [20, 20, 8], 'pages of 20 rows, the last one partial with no "Older" link')
  t.same(seen.map((r) => r.action), expected.map((e) => e.action), 'the same order as the log: newest first')
  const seqs = seen.filter((r) => r.action === 'robot.updated').map((r) => Number(/seq=(\d+)/.exec(r.details)?.[1]))
  t.same(seqs, Array.from({ length: 45 }, (_, i) => 45 - i), 'every update once, newest first')
  t.match(seen[0], { action: 'user.login', who: staff.username, details: 'via=admin', ip: '127.0.0.1' }, 'the admin log-in is on top')
  t.match(seen[47], { action: 'user.created', who: 'system', user: `#${staff.id}` }, 'the first event is last')
  t.match(seen[46], { action: 'robot.created', robot: 'AUDIT-ROBOT' })
})

t.test('the audit log filters by robot (uuid or serial), user (actor or target) and action', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app, { username: 'boss' })
  const alice = await createUser(app, { username: 'alice' })
  const bob = await createUser(app, { username: 'bob' })
  const by = staffActor(staff)
  const alpha = await app.services.robots.create({ serial: 'ALPHA-1' }, by)
  const beta = await app.services.robots.create({ serial: 'BETA-2' }, by)
  await app.services.access.grant(alice.id, alpha.uuid, by)
  await app.services.access.grant(bob.id, beta.uuid, by)
  const apiLogin = await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username: 'alice', password: alice.password } })
  t.equal(apiLogin.statusCode, 200)
  const failed = await visitor(app)
  t.equal((await failed.post('/admin/login', { username: 'alice', password: alice.password })).statusCode, 401)
  t.equal((await failed.post('/admin/login', { username: 'boss', password: 'wrong-password' })).statusCode, 401)
  const browser = await staffBrowser(app, staff)

  const actions = async (query: string): Promise<AuditRow[]> => {
    const res = await browser.get(`/admin/audit${query}`)
    t.equal(res.statusCode, 200, query)
    return auditRows(res.body)
  }
  const names = (rows: AuditRow[]): string[] => rows.map((r) => r.action)

  t.same(names(await actions(`?robot=${alpha.uuid}`)), ['access.granted', 'robot.created'], 'by uuid')
  t.same(names(await actions('?robot=ALPHA-1')), ['access.granted', 'robot.created'], 'by serial')
  t.same(names(await actions(`?robot=${alpha.uuid.toUpperCase()}`)), ['access.granted', 'robot.created'], 'by uuid in capitals')
  t.same(names(await actions('?robot=BETA-2')), ['access.granted', 'robot.created'])
  const byRobot = await browser.get('/admin/audit?robot=ALPHA-1')
  t.equal(inputValue(byRobot.body, 'robot'), 'ALPHA-1', 'the filter is kept in the form')

  const aliceRows = await actions('?user=alice')
  t.same(names(aliceRows), ['user.login_failed', 'user.login', 'access.granted', 'user.created'], 'alice as actor or as target')
  t.match(aliceRows[0], { who: 'system', user: `#${alice.id}`, details: /username=alice/ })
  t.match(aliceRows[1], { who: 'alice', user: `#${alice.id}` })
  t.match(aliceRows[2], { who: 'boss', user: `#${alice.id}`, robot: 'ALPHA-1' })

  const bossRows = await actions('?user=boss')
  t.same(names(bossRows), ['user.login', 'user.login_failed', 'access.granted', 'access.granted', 'robot.created', 'robot.created', 'user.created'])
  t.match(bossRows[0], { who: 'boss', details: 'via=admin' }, 'the admin log-in, as user.login')
  t.match(bossRows[1], { who: 'system', user: `#${staff.id}`, details: /(^| )username=boss( |$)/ }, 'the failed one (wrong password), as user.login_failed against boss')
  t.match(bossRows[1]?.details, /(^| )via=admin( |$)/)

  t.same(names(await actions('?action=access.granted')), ['access.granted', 'access.granted'])
  t.same(names(await actions('?action=user.login_failed')), ['user.login_failed', 'user.login_failed'])
  t.same(names(await actions('?user=alice&action=access.granted')), ['access.granted'])
  t.same(names(await actions('?robot=ALPHA-1&action=robot.created')), ['robot.created'])
  const selected = await browser.get('/admin/audit?action=access.granted')
  t.match(selected.body, '<option value="access.granted" selected>', 'the chosen action stays selected')

  for (const query of ['?robot=NOPE-404', `?robot=${randomUUID()}`, '?user=nobody', '?action=robot.exploded', '?robot=ALPHA-1&user=bob', '?user=alice&robot=NOPE']) {
    const res = await browser.get(`/admin/audit${query}`)
    t.equal(res.statusCode, 200, query)
    t.same(auditRows(res.body), [], `${query}: nothing, not everything`)
    t.match(res.body, 'Nothing recorded matches these filters.', query)
  }

  // Filtered pages keep the filter in the "Older" link.
  for (let i = 0; i < 25; i++) await app.services.audit.record(by, { action: 'robot.updated', robotUuid: beta.uuid, details: { seq: i } })
  const first = await browser.get('/admin/audit?robot=BETA-2&action=robot.updated')
  t.equal(auditRows(first.body).length, 20)
  const older = olderLink(first.body)
  t.match(older, /^\/admin\/audit\?robot=BETA-2&action=robot.updated&cursor=/)
  const second = await browser.get(older as string)
  const rest = auditRows(second.body)
  t.equal(rest.length, 5)
  t.ok(rest.every((r) => r.action === 'robot.updated'), 'only the filtered action on the next page')
  t.equal(olderLink(second.body), undefined)
})

// ---------------------------------------------------------------- escaping and headers

t.test('a robot named <script>alert(1)</script> is escaped on every page', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const alice = await createUser(app)
  const NAME = '<script>alert(1)</script>'
  const SERIAL = '"><img src=x onerror=alert(2)>'
  const ESCAPED_NAME = '&lt;script&gt;alert(1)&lt;/script&gt;'
  const ESCAPED_SERIAL = '&quot;&gt;&lt;img src=x onerror=alert(2)&gt;'
  const browser = await staffBrowser(app, staff)

  const safe = (label: string, res: Response, expectName: boolean, expectSerial = expectName): void => {
    t.ok(res.statusCode < 500, `${label}: ${res.statusCode}`)
    t.notMatch(res.body, '<script>alert(1)', `${label}: never raw`)
    t.notMatch(res.body, '<img src=x', `${label}: never raw`)
    if (expectName) t.match(res.body, ESCAPED_NAME, `${label}: the name shown escaped`)
    if (expectSerial) t.match(res.body, ESCAPED_SERIAL, `${label}: the serial shown escaped`)
    t.notMatch(res.body, /<script(?![^>]*\bsrc=)[^>]*>/, `${label}: no inline script at all (CSP allows none)`)
  }

  await browser.get('/admin/robots/new')
  const created = await browser.post('/admin/robots', { serial: SERIAL, name: NAME })
  t.equal(created.statusCode, 201)
  safe('the new robot\'s secret page', created, false, true)
  const robot = await app.services.robots.findBySerial(SERIAL)
  if (robot === null) throw new Error('robot not created')
  t.equal(robot.name, NAME, 'stored as typed')

  await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal((await browser.post(`/admin/robots/${robot.uuid}/access`, { username: alice.username })).statusCode, 303)

  safe('dashboard', await browser.get('/admin'), false, false)
  safe('robots list', await browser.get('/admin/robots'), true)
  safe('robots search', await browser.get(`/admin/robots?q=${encodeURIComponent(NAME)}`), true)
  safe('robot page', await browser.get(`/admin/robots/${robot.uuid}`), true)
  safe('edit page', await browser.get(`/admin/robots/${robot.uuid}/edit`), true)
  safe('delete page', await browser.get(`/admin/robots/${robot.uuid}/delete`), true)
  safe('audit log', await browser.get('/admin/audit'), true)
  safe('audit log by serial', await browser.get(`/admin/audit?robot=${encodeURIComponent(SERIAL)}`), true)
  safe('user page (robots alice can access)', await browser.get(`/admin/users/${alice.id}`), true)
  await browser.get(`/admin/robots/${robot.uuid}/edit`)
  const invalid = await browser.post(`/admin/robots/${robot.uuid}`, { serial: '', name: NAME })
  t.equal(invalid.statusCode, 400)
  safe('edit form with an error', invalid, true, true)
  const auditRowsNow = auditRows((await browser.get(`/admin/audit?robot=${robot.uuid}`)).body)
  const createdRow = auditRowsNow.find((r) => r.action === 'robot.created')
  t.equal(createdRow?.robot, SERIAL, 'the audit row shows the real serial once unescaped')
  t.ok(createdRow?.details.includes(`name=${NAME}`), 'and the real name')

  // Reflected input on public pages is escaped too.
  const anon = new AdminBrowser(app)
  safe('log-in form with a hostile next', await anon.get(`/admin/login?next=${encodeURIComponent(`/admin/${NAME}`)}`), false, false)
  await anon.get('/admin/login')
  const typed = await anon.post('/admin/login', { username: NAME, password: 'x' })
  t.equal(typed.statusCode, 401)
  safe('failed log-in keeping a hostile username', typed, true, false)
})

t.test('pages carry the security headers', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const browser = await staffBrowser(app, staff)
  const responses: Array<[string, Response]> = [
    ['log-in form', await app.inject({ method: 'GET', url: '/admin/login' })],
    ['redirect to log-in', await app.inject({ method: 'GET', url: '/admin/robots' })],
    ['dashboard', await browser.get('/admin')],
    ['robot page', await browser.get(`/admin/robots/${robot.uuid}`)],
    ['404 page', await browser.get('/admin/nowhere')],
    ['CSRF refusal', await browser.post('/admin/robots', { _csrf: null, serial: 'X' })],
    ['token.json', await browser.get('/admin/token.json')]
  ]
  for (const [name, res] of responses) {
    const csp = res.headers['content-security-policy'] as string
    t.match(csp, /(^|; )script-src 'self'(;|$)/, `${name}: CSP script-src 'self'`)
    t.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, name)
    t.match(csp, /(^|; )object-src 'none'(;|$)/, name)
    t.notMatch(csp, /unsafe-inline|unsafe-eval/, name)
    t.equal(res.headers['x-frame-options'], 'DENY', name)
    t.equal(res.headers['x-content-type-options'], 'nosniff', name)
    t.equal(res.headers['cache-control'], 'no-store', `${name}: never cached`)
  }
  const css = await app.inject({ method: 'GET', url: '/admin/static/admin.css' })
  t.equal(css.statusCode, 200)
  t.notMatch(css.headers['cache-control'], /no-store/, 'static files may be cached')
})

// ---------------------------------------------------------------- error pages

t.test('unknown pages, unknown ids and malformed cursors get HTML error pages', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  const robot = await createRobot(app)
  const browser = await staffBrowser(app, staff)
  const notFound = [
    '/admin/whatever', '/admin/robots/not-a-uuid', `/admin/robots/${randomUUID()}`, `/admin/robots/${randomUUID()}/edit`,
    '/admin/robots/not-a-uuid/delete', '/admin/users/999999', '/admin/users/abc', '/admin/users/0', '/admin/users/1e3'
  ]
  for (const url of notFound) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 404, url)
    t.match(res.headers['content-type'], /^text\/html/, url)
    t.equal(h1Of(res.body), 'Not found', url)
    t.match(res.body, `<span class="who">${staff.username}</span>`, `${url}: inside the admin layout`)
  }
  await browser.get('/admin/robots')
  const post404 = await browser.post('/admin/robots/not-a-uuid/delete')
  t.equal(post404.statusCode, 404, 'a form on an unknown robot')
  t.equal(h1Of(post404.body), 'Not found')

  const badCursors = [
    '/admin/audit?cursor=garbage', '/admin/audit?cursor=%5B%5D', `/admin/audit?cursor=${Buffer.from('["x"]').toString('base64url')}`,
    '/admin/robots?cursor=!!!', '/admin/users?cursor=nope', `/admin/robots/${robot.uuid}?cursor=zzz`
  ]
  for (const url of badCursors) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 400, url)
    t.match(res.headers['content-type'], /^text\/html/, url)
    t.equal(h1Of(res.body), 'Bad request', url)
    t.match(res.body, 'malformed cursor', url)
    t.notMatch(res.body, /\bat \S+ \(|node_modules|"statusCode"/, `${url}: no stack, no JSON`)
  }
  t.equal((await browser.get('/admin')).statusCode, 200, 'the app carries on')
})
