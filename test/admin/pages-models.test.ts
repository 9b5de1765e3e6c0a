// docs/admin.md, the models pages and a robot's model on its pages, driven
// like a browser (cookies, the CSRF token of the page on screen) against the
// real app and database: only staff reach them; the list (latest version,
// versions, robots using each), a model's versions, a version's fields and
// commands; a new version from JSON with every mistake listed next to the
// textarea and the text kept (nothing created); deleting a version (refused
// while a robot uses it); every text escaped. On the robot pages: the model
// select of the forms, the model's latest values with units, charts of its
// numeric fields, and a form per model command whose inputs follow the
// parameter schema; a post is typed by the schema and reaches a real MQTT
// robot, a refused one shows each mistake next to its field with the values kept.
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { bearer } from '../helper.js'
import { CLEANER_MODEL, createModel, createRobot, createUser, robotIdOf, setModel } from '../factory.js'
import { connectRobot, nextMessage, subscribe } from '../mqtt.js'
import { AdminBrowser, staffSetup } from './browser.js'
import { errorNextTo, follow, location, notice, section, selectedOption, unescape } from './html.js'

/** The worked example of the README: examples/cleaner.json. */
const EXAMPLE = JSON.parse(readFileSync(new URL('../../examples/cleaner.json', import.meta.url), 'utf8')) as { name: string } & Record<string, unknown>

const STAFF = (id: number, username: string) => ({ id, username, isStaff: true })

async function auditActions (app: FastifyInstance): Promise<string[]> {
  return (await app.services.audit.list({ limit: 1000 })).items.map((e) => e.action)
}

/** The list page's rows: name, latest version, versions, robots. */
function listed (body: string): Array<[string, string, string, number]> {
  return [...body.matchAll(/<tr data-model="[^"]*">\s*<td><a [^>]*>([^<]*)<\/a><\/td>\s*<td class="num"><a [^>]*>([^<]*)<\/a><\/td>\s*<td class="versions">([\s\S]*?)<\/td>\s*<td class="num robots">(\d+)<\/td>/g)]
    .map((m) => [unescape(m[1] as string), m[2] as string, (m[3] as string).replace(/<[^>]+>/g, ''), Number(m[4])])
}

/** The textarea's text, unescaped. */
function textarea (body: string, name: string): string | undefined {
  const m = new RegExp(`<textarea id="f-${name}" name="${name}"[^>]*>([\\s\\S]*?)</textarea>`).exec(body)
  return m === null ? undefined : unescape(m[1] as string)
}

/** The form of a model command on the robot page. */
function commandForm (body: string, command: string): string {
  const i = body.indexOf(`id="mc-${command}"`)
  if (i < 0) return ''
  return body.slice(body.lastIndexOf('<form', i), body.indexOf('</form>', i))
}

// ---------------------------------------------------------------- who

t.test('the models pages are for staff: in the navigation; anonymous visitors and user JWTs go to the log-in form; forms need the CSRF token', async (t) => {
  const { app, browser } = await staffSetup(t)
  const plain = await createUser(app)
  await createModel(app)

  const list = await browser.get('/admin/models')
  t.equal(list.statusCode, 200)
  t.match(list.body, '<a href="/admin/models" aria-current="page">Models</a>', 'Models in the navigation, current')
  t.match((await browser.get('/admin')).body, '<a href="/admin/models">Models</a>', 'and on every page')
  t.equal((await browser.get('/admin/models/cleaner')).statusCode, 200)
  t.equal((await browser.get('/admin/models/cleaner/versions/1')).statusCode, 200)
  for (const missing of ['/admin/models/nothing', '/admin/models/cleaner/versions/2', '/admin/models/cleaner/versions/abc', '/admin/models/Bad%20Name', '/admin/models/cleaner/versions/0']) {
    t.equal((await browser.get(missing)).statusCode, 404, `${missing}: the not-found page`)
  }

  for (const path of ['/admin/models', '/admin/models/cleaner', '/admin/models/cleaner/versions/1']) {
    const anonymous = await app.inject({ method: 'GET', url: path })
    t.equal(anonymous.statusCode, 303, `${path}, anonymous`)
    t.equal(anonymous.headers.location, `/admin/login?next=${encodeURIComponent(path)}`)
    t.equal(anonymous.body, '', 'nothing of the page is sent')
    t.equal((await app.inject({ method: 'GET', url: path, headers: bearer(plain.jwt) })).statusCode, 303, `${path}, a user JWT is no admin session`)
  }
  t.equal((await new AdminBrowser(app).login(plain.username, plain.password)).statusCode, 401, 'a non-staff user cannot log in to the admin')

  const before = (await auditActions(app)).length
  const visitor = new AdminBrowser(app)
  await visitor.get('/admin/login')
  for (const url of ['/admin/models', '/admin/models/cleaner/versions/1/delete']) {
    const res = await visitor.post(url, { model: JSON.stringify({ ...CLEANER_MODEL, name: 'anon' }) })
    t.equal(res.statusCode, 303, `anonymous POST ${url}`)
    t.equal(res.headers.location, '/admin/login')
  }
  await browser.get('/admin/models')
  t.equal((await browser.post('/admin/models', { model: JSON.stringify({ ...CLEANER_MODEL, name: 'forged' }), _csrf: null })).statusCode, 403, 'no CSRF token: refused')
  t.equal((await browser.post('/admin/models/cleaner/versions/1/delete', { _csrf: 'forged' })).statusCode, 403, 'a forged one too')
  t.same((await app.services.models.list()).map((m) => [m.name, m.versions]), [['cleaner', [1]]], 'nothing created or deleted')
  t.equal((await auditActions(app)).length, before, 'nothing audited')
})

// ---------------------------------------------------------------- list, versions, create

t.test('the list shows each model’s latest version, its versions and the robots using them; a version shows its fields and commands', async (t) => {
  const { app, browser } = await staffSetup(t)
  t.match((await browser.get('/admin/models')).body, 'No models yet.')
  const v1 = await createModel(app)
  await createModel(app, EXAMPLE)
  await createModel(app, { name: 'arm', telemetry: {}, commands: {} })
  await createRobot(app, { model: v1 })
  await createRobot(app, { model: v1 })
  await createRobot(app, { model: { name: 'cleaner', version: 2 } })

  const list = await browser.get('/admin/models')
  t.same(listed(list.body), [['arm', 'v1', 'v1', 0], ['cleaner', 'v2', 'v1, v2', 3]], 'by name: latest version, versions, robots of all versions')

  const versions = await browser.get('/admin/models/cleaner')
  t.equal(versions.statusCode, 200)
  const rows = [...versions.body.matchAll(/<tr data-version="(\d+)">[\s\S]*?<td class="num robots">(\d+)<\/td>/g)].map((m) => [Number(m[1]), Number(m[2])])
  t.same(rows, [[2, 1], [1, 2]], 'newest first, each with its robots')
  t.match(versions.body, 'href="/admin/models?from=cleaner&amp;version=2#new-model"', 'a new version starts from the latest')

  const page = await browser.get('/admin/models/cleaner/versions/2')
  t.equal(page.statusCode, 200)
  const fields = section(page.body, '<section id="fields"', '</section>')
  for (const [field, type, values, unit] of [['brush_rpm', 'integer', '0 to 3000', 'rpm'], ['water_level', 'number', '0 to 100', '%'], ['mopping', 'boolean', '', ''], ['zone', 'string', 'at most 32 characters', ''], ['mode', 'string', 'one of eco, normal, deep', '']]) {
    t.match(fields, `<tr><td><code>${field}</code></td><td>${type}</td><td>${values}</td><td>${unit}</td>`, `field ${field}: ${type}, ${values || 'any'}, ${unit || 'no unit'}`)
  }
  const commands = section(page.body, '<section id="model-commands"', '</section>')
  t.match(commands, '<code>clean_zone</code> <small class="muted">timeout 600 s</small>')
  t.match(commands, '<li><code>zone</code> (required): string, not empty, at most 32 characters — the zone&#39;s name</li>')
  t.match(commands, '<li><code>passes</code>: integer, ≥ 1, ≤ 5</li>')
  t.match(commands, '<code>dock</code>')
  t.match(page.body, '<dd id="model-robots">1</dd>', 'the robots using this version')

  // the form starts from a version when asked
  const from = await browser.get('/admin/models?from=cleaner&version=2')
  t.same(JSON.parse(textarea(from.body, 'model') ?? ''), EXAMPLE, 'the version’s JSON, as posted')
  t.equal(textarea((await browser.get('/admin/models?from=cleaner&version=9')).body, 'model'), '', 'an unknown version starts empty')
})

t.test('creating a version from JSON: the next version, audited; invalid JSON or an invalid model lists every mistake next to the textarea, keeps the text and creates nothing', async (t) => {
  const { app, staff, browser } = await staffSetup(t)
  await browser.get('/admin/models')
  const created = await browser.post('/admin/models', { model: JSON.stringify(EXAMPLE, null, 2) })
  t.equal(created.statusCode, 303)
  t.equal(location(created), '/admin/models/cleaner/versions/1?notice=model_created')
  const shown = await follow(browser, created)
  t.equal(notice(shown.body), 'Model version created.')
  t.match(shown.body, '<h1>cleaner <small>v1</small></h1>')
  const again = await browser.post('/admin/models', { model: JSON.stringify({ ...EXAMPLE, description: 'second' }) })
  t.equal(location(again), '/admin/models/cleaner/versions/2?notice=model_created', 'the same name again: its next version')
  const audit = (await app.services.audit.list({ limit: 100 })).items.filter((e) => e.action === 'model.created')
  t.equal(audit.length, 2, 'audited')
  t.match(audit[0], { actor_id: staff.id, actor: staff.username, details: { model: 'cleaner', version: 2 } })

  const cases: Array<[string, string, RegExp[]]> = [
    ['not JSON', '{"name": "broken",', [/^This is not valid JSON: /]],
    ['empty', '   ', [/^Paste the model as JSON/]],
    ['a list', '[1, 2]', [/^a model must be a JSON object/]],
    ['bad model', JSON.stringify({ name: 'Bad Name', telemetry: { speed: { type: 'float' }, state: { type: 'number' } }, commands: { auto: {}, go: { params: { type: 'object', properties: { x: { type: 'string', pattern: '.*' } } } } } }), [
      /^name must match/,
      /^telemetry: "state" is reserved/,
      /^telemetry\.speed\.type must be one of/,
      /^commands: "auto" is reserved/,
      /^commands\.go\.params\.properties\.x\.pattern: the keyword "pattern" is not allowed/
    ]]
  ]
  for (const [what, json, expected] of cases) {
    await browser.get('/admin/models')
    const res = await browser.post('/admin/models', { model: json })
    t.equal(res.statusCode, 400, `${what}: 400`)
    t.match(errorNextTo(res.body, 'model') ?? '', /^The model was not created/, `${what}: the error is next to the textarea`)
    const errors = [...section(res.body, '<ul class="errors" id="model-errors">', '</ul>').matchAll(/<li>([^<]*)<\/li>/g)].map((m) => unescape(m[1] as string))
    t.equal(errors.length, expected.length, `${what}: ${errors.join(' | ')}`)
    for (const re of expected) t.ok(errors.some((e) => re.test(e)), `${what}: ${String(re)}`)
    t.equal(textarea(res.body, 'model'), json, `${what}: the text is kept`)
  }
  t.same((await app.services.models.list()).map((m) => [m.name, m.versions]), [['cleaner', [1, 2]]], 'nothing else created')
})

// ---------------------------------------------------------------- delete

t.test('deleting a version: refused with a clear message while a robot uses it; then deleted, its number not given out again', async (t) => {
  const { app, browser } = await staffSetup(t)
  const v1 = await createModel(app)
  await createModel(app)
  const robot = await createRobot(app, { model: v1 })

  await browser.get('/admin/models/cleaner/versions/1')
  const refused = await browser.post('/admin/models/cleaner/versions/1/delete')
  t.equal(refused.statusCode, 409)
  t.match(refused.body, '<p class="error" role="alert" id="delete-error">Not deleted: a robot uses cleaner v1. Give it another model (or none) on its edit page first.</p>')
  t.same((await app.services.models.versionsOf('cleaner')).map((m) => m.version), [2, 1], 'still there')

  await setModel(app, robot, null)
  const deleted = await browser.post('/admin/models/cleaner/versions/1/delete')
  t.equal(deleted.statusCode, 303)
  t.equal(location(deleted), '/admin/models/cleaner?notice=model_deleted', 'back to the model, which has a version left')
  t.equal(notice((await follow(browser, deleted)).body), 'Model version deleted.')
  t.equal((await browser.get('/admin/models/cleaner/versions/1')).statusCode, 404)
  t.ok((await auditActions(app)).includes('model.deleted'), 'audited')

  await browser.get('/admin/models/cleaner/versions/2')
  const last = await browser.post('/admin/models/cleaner/versions/2/delete')
  t.equal(location(last), '/admin/models?notice=model_deleted', 'the last version: back to the list')
  t.equal((await browser.get('/admin/models/cleaner')).statusCode, 404)
  t.equal((await createModel(app)).version, 3, 'the numbers are not given out again')
  t.equal((await browser.post('/admin/models/cleaner/versions/1/delete')).statusCode, 404, 'a deleted version: not found')
})

// ---------------------------------------------------------------- escaping

t.test('every text of a model is escaped: descriptions, units, enum values, on the models pages and the robot page', async (t) => {
  const { app, browser } = await staffSetup(t)
  const evil = '<script>alert(1)</script>'
  const model = await createModel(app, {
    name: 'evil',
    description: evil,
    telemetry: { level: { type: 'number', unit: '<b>u</b>', description: evil }, kind: { type: 'string', enum: ['<i>a</i>', '"b"'] } },
    commands: { go: { description: evil, params: { type: 'object', properties: { where: { type: 'string', enum: ['<img src=x onerror=alert(1)>'], description: evil } } } } }
  })
  const robot = await createRobot(app, { model })
  for (const url of ['/admin/models', '/admin/models/evil', '/admin/models/evil/versions/1', `/admin/robots/${robot.uuid}`]) {
    const res = await browser.get(url)
    t.equal(res.statusCode, 200, url)
    t.notMatch(res.body, '<script>alert', `${url}: no script tag from the model`)
    t.notMatch(res.body, '<img src=x', `${url}: no img tag`)
    t.notMatch(res.body, '<b>u</b>', `${url}: no markup from a unit`)
    t.ok(!/<i>a<\/i>/.test(res.body), `${url}: no markup from an enum value`)
  }
  t.match((await browser.get('/admin/models')).body, '&lt;script&gt;alert(1)&lt;/script&gt;', 'shown as text')
  const robotPage = (await browser.get(`/admin/robots/${robot.uuid}`)).body
  t.match(robotPage, '<span class="unit">&lt;b&gt;u&lt;/b&gt;</span>', 'the unit as text on the robot page')
  t.match(robotPage, '&lt;img src=x onerror=alert(1)&gt;</option>', 'the enum value as the text of its option')

  // the JSON posted back into the textarea is escaped too
  await browser.get('/admin/models')
  const res = await browser.post('/admin/models', { model: `{"name": "x</textarea><script>alert(1)</script>"` })
  t.equal(res.statusCode, 400)
  t.notMatch(res.body, '<script>alert', 'the text kept in the textarea cannot close it')
})

// ---------------------------------------------------------------- robot forms

t.test('the robot forms set the model: none or one of the listed versions; an unknown choice is an error next to the field', async (t) => {
  const { app, browser } = await staffSetup(t)
  await createModel(app)
  await createModel(app, EXAMPLE)
  const form = await browser.get('/admin/robots/new')
  t.equal(selectedOption(form.body, 'model'), '', 'none, first')
  const options = [...section(form.body, '<select id="f-model" name="model">', '</select>').matchAll(/<option value="([^"]*)"[^>]*>([^<]*)<\/option>/g)].map((m) => [m[1], unescape(m[2] as string)])
  t.same(options, [['', 'none'], ['cleaner@2', 'cleaner v2 — a floor-cleaning robot'], ['cleaner@1', 'cleaner v1 — a floor-cleaning robot']], 'every version, newest first')

  const created = await browser.post('/admin/robots', { serial: 'M-1', name: '', model: 'cleaner@1' })
  t.equal(created.statusCode, 201)
  const robot = await app.services.robots.findBySerial('M-1')
  t.same(robot?.model, { name: 'cleaner', version: 1 }, 'created with the model')

  await browser.get('/admin/robots/new')
  const bad = await browser.post('/admin/robots', { serial: 'M-2', name: '', model: 'cleaner@7' })
  t.equal(bad.statusCode, 400)
  t.equal(errorNextTo(bad.body, 'model'), 'Choose one of the listed models.')
  t.equal(await app.services.robots.findBySerial('M-2'), null, 'nothing created')

  const uuid = robot?.uuid ?? ''
  const edit = await browser.get(`/admin/robots/${uuid}/edit`)
  t.equal(selectedOption(edit.body, 'model'), 'cleaner@1', 'the edit form shows the robot’s model')
  const moved = await browser.post(`/admin/robots/${uuid}`, { serial: 'M-1', name: 'mover', model: 'cleaner@2' })
  t.equal(moved.statusCode, 303)
  t.same((await app.services.robots.get(uuid)).model, { name: 'cleaner', version: 2 }, 'moved to v2')
  const page = await follow(browser, moved)
  t.match(page.body, '<dd id="robot-model"><a href="/admin/models/cleaner/versions/2">cleaner v2</a></dd>', 'the robot page links its model')
  await browser.get(`/admin/robots/${uuid}/edit`)
  t.equal((await browser.post(`/admin/robots/${uuid}`, { serial: 'M-1', name: 'mover', model: 'x@1' })).statusCode, 400, 'an unknown model: refused')
  t.same((await app.services.robots.get(uuid)).model, { name: 'cleaner', version: 2 }, 'unchanged')
  t.equal((await browser.post(`/admin/robots/${uuid}`, { serial: 'M-1', name: 'mover', model: '' })).statusCode, 303)
  t.equal((await app.services.robots.get(uuid)).model, null, 'none')
  t.match((await browser.get(`/admin/robots/${uuid}`)).body, /<dd id="robot-model">none/, 'the robot page says so')
})

// ---------------------------------------------------------------- robot page

t.test('a robot with a model: its latest values with units, charts of its numeric fields, and a command form whose inputs follow the parameter schema', async (t) => {
  const { app, browser } = await staffSetup(t)
  const model = await createModel(app, EXAMPLE)
  const robot = await createRobot(app, { model })
  const robotId = await robotIdOf(app, robot.uuid)
  const now = Date.now()
  const frames = []
  for (let i = 0; i < 20; i++) {
    const at = new Date(now - (20 - i) * 30_000)
    frames.push({ frameId: `t-${i}`, type: 4, data: { datetime: at.toISOString(), brush_rpm: 1000 + i * 10, water_level: 80 - i * 0.5, mopping: i % 2 === 0, zone: 'lobby', mode: 'eco' }, recordedAt: at, receivedAt: at })
  }
  // the newest frame carries one field only: the others come from the frames before it
  frames.push({ frameId: 't-last', type: 4, data: { datetime: new Date(now).toISOString(), brush_rpm: 1500 }, recordedAt: new Date(now), receivedAt: new Date(now) })
  await app.services.frames.store(robotId, frames)

  const res = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(res.statusCode, 200)
  const values = section(res.body, '<dl class="readings" id="model-values">', '</dl>')
  const reading = (field: string): string | undefined => {
    const m = new RegExp(`<div data-field="${field}"[^>]*><dt>${field}</dt><dd><span class="value"[^>]*>([^<]*)</span> <span class="unit">([^<]*)</span>`).exec(values)
    return m === null ? undefined : `${unescape(m[1] as string)} ${unescape(m[2] as string)}`.trim()
  }
  t.equal(reading('brush_rpm'), '1500 rpm', 'the last stored value of each field, with its unit')
  t.equal(reading('water_level'), '70.50 %', 'from the newest frame that has it')
  t.equal(reading('dirt_level'), '— %', 'a field never sent')
  t.equal(reading('mopping'), 'no')
  t.equal(reading('zone'), 'lobby')
  t.equal(reading('mode'), 'eco')
  t.match(res.body, /data-model-fields="[^"]*brush_rpm[^"]*"/, 'the live panel knows the model’s fields')

  const history = section(res.body, '<section id="history"', '</section>')
  for (const field of ['brush_rpm', 'water_level', 'dirt_level']) t.match(history, `id="chart-model-${field}"`, `a chart of ${field}`)
  t.notMatch(history, 'chart-model-mopping', 'no chart of a boolean')
  t.match(section(history, 'id="chart-model-brush_rpm"', '</figure>'), /<path class="chart-line" d="M[^"]+"/, 'the stored values are drawn')
  t.match(section(history, 'id="chart-model-brush_rpm"', '</figure>'), 'brush_rpm (rpm)', 'with the unit')
  const day = await browser.get(`/admin/robots/${robot.uuid}?range=week`)
  t.equal(day.statusCode, 200, 'the week')
  t.equal(/<p class="error" id="history-unavailable">([^<]*)/.exec(day.body)?.[1], undefined, 'its charts are drawn')
  t.match(section(day.body, 'id="chart-model-water_level"', '</figure>'), /<path class="chart-line"|<circle class="chart-dot point"/, 'and over a week')

  const clean = commandForm(res.body, 'clean_zone')
  t.match(clean, `action="/admin/robots/${robot.uuid}/model-commands"`)
  t.match(clean, '<input type="hidden" name="command" value="clean_zone">')
  t.match(clean, /name="_csrf" value="[^"]+"/, 'with the CSRF token')
  t.match(clean, /<label for="f-mc\d-0">zone <span class="required" title="required">\*<\/span><\/label>\s*<input id="f-mc\d-0" name="p\.zone" type="text" value="" maxlength="32" required/, 'zone: a required text input of at most 32 characters')
  t.match(clean, /<input id="f-mc\d-1" name="p\.passes" type="number" value="" step="1" min="1" max="5">/, 'passes: a whole number from 1 to 5, not required')
  t.match(clean, /<select id="f-mc\d-2" name="p\.mode">\s*<option value="" selected>—<\/option>\s*<option value="0">eco<\/option>\s*<option value="1">normal<\/option>\s*<option value="2">deep<\/option>/, 'mode: a select of the enum, may be left empty')
  t.match(clean, /<input type="checkbox" id="f-mc\d-3" name="p\.mop" value="true">/, 'mop: a checkbox')
  const dock = commandForm(res.body, 'dock')
  t.match(dock, '<input type="hidden" name="command" value="dock">')
  t.notMatch(dock, 'name="p.', 'dock: no parameters, a button')
  t.match(commandForm(res.body, 'set_brush'), /name="p\.rpm" type="number" value="" step="1" min="0" max="3000" required/)

  // a robot without a model has none of it
  const plain = await createRobot(app)
  const other = await browser.get(`/admin/robots/${plain.uuid}`)
  t.notMatch(other.body, 'id="model-values"')
  t.notMatch(other.body, 'model-commands')
  t.notMatch(other.body, 'chart-model-')
  t.notMatch(section(other.body, '<section id="history"', '</section>'), 'e308', 'an empty chart’s axis is 0–1, not ±MAX_VALUE')
})

t.test('a model command from the page: typed by the schema, it reaches a real MQTT robot; bad params are shown next to their field with the values kept, and nothing is sent', async (t) => {
  const { app, staff, browser } = await staffSetup(t)
  const model = await createModel(app, EXAMPLE)
  const robot = await createRobot(app, { model })
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/commands`)
  const commands = async () => (await app.services.commands.list(STAFF(staff.id, staff.username), robot.uuid)).items

  const bad: Array<[Record<string, string>, string, string]> = [
    [{ 'p.zone': 'lobby', 'p.passes': '9' }, 'passes', 'params.passes must be <= 5'],
    [{ 'p.zone': 'lobby', 'p.passes': 'two' }, 'passes', 'params.passes must be a number'],
    [{ 'p.zone': 'lobby', 'p.passes': '1.5' }, 'passes', 'params.passes must be an integer'],
    [{ 'p.zone': '', 'p.passes': '2' }, 'zone', 'params.zone is required'],
    [{ 'p.zone': 'x'.repeat(33) }, 'zone', 'params.zone must NOT have more than 32 characters']
  ]
  for (const [values, field, message] of bad) {
    await browser.get(`/admin/robots/${robot.uuid}`)
    const res = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'clean_zone', 'p.mode': '2', 'p.mop': 'true', ...values })
    t.equal(res.statusCode, 400, `${JSON.stringify(values)}: 400`)
    const form = commandForm(res.body, 'clean_zone')
    const error = new RegExp(`name="p\\.${field}"[^>]*aria-invalid="true">[\\s\\S]*?<small class="error">([^<]*)</small>`).exec(form)?.[1]
    t.equal(unescape(error ?? ''), message, `the error next to ${field}`)
    t.match(form, `name="p.zone" type="text" value="${(values['p.zone'] ?? '').replace(/"/g, '&quot;')}"`, 'the zone is kept')
    if (values['p.passes'] !== undefined) t.match(form, `name="p.passes" type="number" value="${values['p.passes']}"`, 'the passes are kept')
    t.match(form, '<option value="2" selected>deep</option>', 'the mode is kept')
    t.match(form, /name="p\.mop" value="true" checked>/, 'the checkbox stays checked')
  }
  t.same(await commands(), [], 'nothing stored')

  // The service's own refusal (a model changed under the page) shows too: a command of no model.
  await browser.get(`/admin/robots/${robot.uuid}`)
  const unknown = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'fly' })
  t.equal(unknown.statusCode, 400)
  t.match(section(unknown.body, '<ul class="errors" role="alert" id="model-command-errors">', '</ul>'), '<li>command fly is not a command of model cleaner v1.</li>')

  await browser.get(`/admin/robots/${robot.uuid}`)
  const received = nextMessage<{ id: string, command: string, params: unknown }>(client, `robots/${robot.uuid}/commands`)
  const sent = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'clean_zone', 'p.zone': 'lobby', 'p.passes': '2', 'p.mode': '2', 'p.mop': 'true' })
  t.equal(sent.statusCode, 303)
  t.equal(location(sent), `/admin/robots/${robot.uuid}?notice=command_sent#commands`)
  const message = await received
  t.same(message.params, { zone: 'lobby', passes: 2, mode: 'deep', mop: true }, 'the robot gets typed params: a number, the enum’s value, a boolean')
  client.publish(`robots/${robot.uuid}/commands/ack`, JSON.stringify({ id: message.id, status: 'ok', result: { area_m2: 118.5 } }), { qos: 1 })
  let items = await commands()
  for (let i = 0; i < 100 && items[0]?.status !== 'done'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    items = await commands()
  }
  t.match(items[0], { command: 'clean_zone', status: 'done', params: { zone: 'lobby', passes: 2, mode: 'deep', mop: true }, result: { area_m2: 118.5 } })
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  const row = section(page.body, `<tr data-command-id="${message.id}">`, '</tr>')
  t.match(row, 'clean_zone <code class="params">{&quot;zone&quot;:&quot;lobby&quot;,&quot;passes&quot;:2,&quot;mode&quot;:&quot;deep&quot;,&quot;mop&quot;:true}</code>', 'the recent commands show the params')
  t.match(row, '<small class="result">→ {&quot;area_m2&quot;:118.5}</small>', 'and the result')

  // Unchecked, the checkbox is false; empty optional fields are left out.
  const next = nextMessage<{ params: unknown }>(client, `robots/${robot.uuid}/commands`)
  await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'clean_zone', 'p.zone': 'hall', 'p.passes': '', 'p.mode': '' })
  t.same((await next).params, { zone: 'hall', mop: false })

  // A form made for another version of the model (the robot moved since the page was shown) is refused.
  await createModel(app, EXAMPLE)
  await setModel(app, robot, { name: 'cleaner', version: 2 })
  const stale = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'clean_zone', model: 'cleaner@1', 'p.zone': 'hall', 'p.mode': '0' })
  t.equal(stale.statusCode, 409)
  t.match(commandForm(stale.body, 'clean_zone'), 'The robot&#39;s model is now cleaner v2, not the one this form was made for')
  t.match(commandForm(stale.body, 'clean_zone'), '<input type="hidden" name="model" value="cleaner@2">', 'the form shown again is for v2')

  // A command without parameters; an offline robot with a wait: queued.
  client.end(true)
  await new Promise((resolve) => setTimeout(resolve, 200))
  await browser.get(`/admin/robots/${robot.uuid}`)
  const refused = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'dock' })
  t.equal(refused.statusCode, 409, 'not listening, no wait: refused')
  t.match(commandForm(refused.body, 'dock'), 'The robot is not connected to its commands topic right now')
  const queued = await browser.post(`/admin/robots/${robot.uuid}/model-commands`, { command: 'dock', ttl: '600' })
  t.equal(location(queued), `/admin/robots/${robot.uuid}?notice=command_queued#commands`)
  t.match((await commands())[0], { command: 'dock', status: 'queued' })
})
