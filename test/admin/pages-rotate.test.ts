// docs/admin.md and docs/protocol.md §2.4, the robot page's rotate form with its optional grace
// period, driven like a browser (cookies, the CSRF token of the page on
// screen): a valid grace keeps the old secret working until a time the "New
// secret" page and the robot page show, and the robot connected; an invalid
// one is an error next to the field that rotates nothing; an empty one is a
// rotation as before grace periods (old secret, tokens and connection end).
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { helpers } from '../../admin/helpers.js'
import { createRobot } from '../factory.js'
import { closedByServer, connect, refusedWith, robotToken, sendFrame, suback } from '../mqtt.js'
import { staffSetup } from './browser.js'
import { errorFields, errorNextTo, inputValue, selectedOption, unescape } from './html.js'

const NOT_AUTHORIZED = 5

function shownSecret (body: string): string | undefined {
  return /<code class="secret" id="robot-secret">([^<]*)<\/code>/.exec(body)?.[1]
}

async function login (app: FastifyInstance, serial: string, token: string): Promise<number> {
  return (await app.inject({ method: 'POST', url: '/robots/robot/obtain_token', payload: { serial, token } })).statusCode
}

async function rotations (app: FastifyInstance, uuid: string) {
  return (await app.services.audit.list({ robotUuid: uuid, limit: 100 })).items.filter((e) => e.action === 'robot.token_rotated')
}

t.test('the robot page offers the rotate form with a grace field, a unit and its CSRF token', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  const form = /<form method="post" action="\/admin\/robots\/[0-9a-f-]+\/rotate"[\s\S]*?<\/form>/.exec(page.body)?.[0] ?? ''
  t.match(form, 'name="_csrf"', 'the form carries the CSRF token')
  t.equal(inputValue(form, 'grace'), '', 'the grace field starts empty')
  t.match(form, /<option value="seconds">[\s\S]*<option value="minutes">[\s\S]*<option value="hours">/, 'seconds, minutes or hours')
  t.notMatch(page.body, 'id="robot-previous-secret"', 'no previous secret yet')
})

t.test('a valid grace keeps the old secret working until the time shown, and the robot connected', async (t) => {
  const { app, staff, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { username: robot.uuid, password: token })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  let closes = 0
  client.on('close', () => { closes++ })
  await browser.get(`/admin/robots/${robot.uuid}`)

  const started = Date.now()
  const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`, { grace: '2', grace_unit: 'hours' })
  t.equal(res.statusCode, 200)
  const secret = shownSecret(res.body)
  t.match(secret, /^[0-9a-f]{48}$/, 'the new secret is shown')
  t.notMatch(res.body, 'The old secret no longer works')
  const until = /id="previous-secret">The old secret keeps working at obtain_token until <strong>([^<]+)<\/strong>/.exec(res.body)?.[1]
  t.ok(until, 'the page says until when the old secret works')
  const shownAt = Date.parse(unescape(until ?? '').replace(' UTC', 'Z').replace(' ', 'T'))
  t.ok(shownAt >= Math.floor((started + 7200 * 1000) / 1000) * 1000 && shownAt <= Date.now() + 7200 * 1000, `about 2 hours from now (${until ?? ''})`)

  const id = randomUUID()
  t.same(await sendFrame(client, robot.uuid, id), { id, status: 'ok' }, 'the connected robot is still served')
  t.equal(closes, 0, 'its connection never closed')
  t.equal(await app.services.robotTokens.resolve(token), robot.uuid, 'its token is still valid')
  t.equal(await login(app, robot.serial, robot.secret), 201, 'the old secret works')
  t.equal(await login(app, robot.serial, secret as string), 201, 'the new one too')

  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  const fact = /<dd id="robot-previous-secret">([^<]*)<\/dd>/.exec(page.body)?.[1]
  t.equal(fact, `still works until ${until ?? ''}`, 'the robot page shows the previous secret\'s expiry')
  t.notMatch(page.body, secret as string, 'but not the secret')
  const [entry] = await rotations(app, robot.uuid)
  t.match(entry, { actor_id: staff.id, details: { grace_seconds: 7200 } })
})

t.test('grace in seconds and minutes is converted; 7 days is the most', async (t) => {
  const { app, browser } = await staffSetup(t)
  for (const [grace, unit, seconds] of [['90', 'seconds', 90], ['15', 'minutes', 900], ['168', 'hours', 604800], [' 3 ', 'minutes', 180]] as const) {
    const robot = await createRobot(app)
    await browser.get(`/admin/robots/${robot.uuid}`)
    const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`, { grace, grace_unit: unit })
    t.equal(res.statusCode, 200, `${grace} ${unit}`)
    t.match((await rotations(app, robot.uuid))[0], { details: { grace_seconds: seconds } }, `${grace} ${unit} is ${seconds} s`)
    t.equal(await login(app, robot.serial, robot.secret), 201, 'the old secret still works')
  }
})

t.test('an invalid grace is an error next to the field, keeps what was typed, and rotates nothing', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  const client = await connect(t, app, { username: robot.uuid, password: token })
  const cases: Array<[string, string, string]> = [
    ['-5', 'seconds', 'A whole number'],
    ['abc', 'seconds', 'A whole number'],
    ['1.5', 'hours', 'A whole number'],
    ['1e3', 'seconds', 'A whole number'],
    ['604801', 'seconds', 'At most 7 days'],
    ['169', 'hours', 'At most 7 days'],
    ['99999999', 'seconds', 'A whole number'],
    ['10', 'weeks', 'Choose one of the listed units.']
  ]
  for (const [grace, unit, message] of cases) {
    await browser.get(`/admin/robots/${robot.uuid}`)
    const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`, { grace, grace_unit: unit })
    t.equal(res.statusCode, 400, `${grace} ${unit}`)
    t.same(errorFields(res.body), ['grace'], 'one error, for the grace field')
    t.match(errorNextTo(res.body, 'grace'), new RegExp(`^${message}`), 'shown next to it')
    t.equal(inputValue(res.body, 'grace'), grace.slice(0, 32), 'what was typed is kept')
    if (unit !== 'weeks') t.equal(selectedOption(res.body, 'grace_unit'), unit, 'and the unit')
    t.equal(shownSecret(res.body), undefined, 'no secret is shown')
  }
  t.ok(client.connected, 'the robot stays connected')
  t.equal(await login(app, robot.serial, robot.secret), 201, 'its secret was not rotated')
  t.same(await rotations(app, robot.uuid), [], 'nothing audited')
})

t.test('without a grace (empty field) the rotation is as before: old secret, tokens and connection end', async (t) => {
  const { app, browser } = await staffSetup(t)
  for (const form of [{ grace: '', grace_unit: 'hours' }, { grace: '0', grace_unit: 'seconds' }, {}]) {
    const robot = await createRobot(app)
    const token = await robotToken(app, robot)
    const client = await connect(t, app, { username: robot.uuid, password: token })
    await browser.get(`/admin/robots/${robot.uuid}`)
    const gone = closedByServer(client)
    const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`, form)
    const name = JSON.stringify(form)
    t.equal(res.statusCode, 200, name)
    t.match(res.body, 'The old secret no longer works', `${name}: the page says so`)
    t.notMatch(res.body, 'id="previous-secret"')
    await gone
    t.notOk(client.connected, `${name}: the robot is kicked`)
    t.equal(await refusedWith(t, app, { username: robot.uuid, password: token }), NOT_AUTHORIZED, `${name}: its token is void (revoked)`)
    t.equal(await login(app, robot.serial, robot.secret), 401, `${name}: the old secret is refused`)
    t.equal(await login(app, robot.serial, shownSecret(res.body) as string), 201, `${name}: the new one works`)
    t.match((await rotations(app, robot.uuid))[0], { details: { grace_seconds: 0 } })
    t.notMatch((await browser.get(`/admin/robots/${robot.uuid}`)).body, 'id="robot-previous-secret"', `${name}: no previous secret on the robot page`)
  }
})

t.test('the rotate form with a grace still needs its CSRF token', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  await browser.get(`/admin/robots/${robot.uuid}`)
  for (const _csrf of [null, 'forged']) {
    const res = await browser.post(`/admin/robots/${robot.uuid}/rotate`, { _csrf, grace: '60', grace_unit: 'seconds' })
    t.equal(res.statusCode, 403, `_csrf=${String(_csrf)}`)
  }
  t.equal(await login(app, robot.serial, robot.secret), 201, 'the secret was not rotated')
  t.same(await rotations(app, robot.uuid), [])
})

t.test('the previous secret disappears from the robot page once it has expired', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal((await browser.post(`/admin/robots/${robot.uuid}/rotate`, { grace: '2', grace_unit: 'seconds' })).statusCode, 200)
  const until = await app.services.robots.previousSecretExpiry(robot.uuid)
  t.ok(until, 'a previous secret is valid')
  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.match(page.body, `still works until ${helpers.time(until)}`)
  await new Promise((resolve) => { setTimeout(resolve, Math.max(0, Date.parse(until as string) - Date.now()) + 50) })
  t.notMatch((await browser.get(`/admin/robots/${robot.uuid}`)).body, 'id="robot-previous-secret"', 'gone after its expiry')
  t.equal(await login(app, robot.serial, robot.secret), 401, 'and the old secret is refused')
})
