// The fleet page (issue 26): every robot's presence, state and last seen,
// 50 a page, filtered by serial or name, presence and state; a row per robot
// with the cells that fleet.js fills from the robot's retained stats. The
// live updates themselves are checked in the real browser
// (browser-e2e.test.ts).
import t from 'tap'
import { helpers } from '../../admin/helpers.js'
import { createRobot, createUser } from '../factory.js'
import { staffBrowser, staffSetup } from './browser.js'
import { section, unescape, walkPages } from './html.js'
import { connectRobot, eventually, listen, subscribe } from '../mqtt.js'

/** The robot uuids of the fleet table's rows, in order. */
const rowsOf = (body: string): string[] => [...body.matchAll(/<tr data-robot="([0-9a-f-]{36})"/g)].map((m) => m[1] as string)
const rowOf = (body: string, uuid: string): string => {
  const i = body.indexOf(`<tr data-robot="${uuid}"`)
  return i < 0 ? '' : body.slice(i, body.indexOf('</tr>', i))
}

t.test('the fleet page lists every robot, 50 a page, in the order they were added', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robots = []
  for (let i = 0; i < 55; i++) robots.push(await createRobot(app, { serial: `FL-${String(i).padStart(3, '0')}` }))
  const walked = await walkPages(browser, '/admin/fleet', rowsOf)
  t.same(walked.statuses, [200, 200])
  t.same(walked.pages.map((p) => p.length), [50, 5], '50, then the rest')
  t.same(walked.pages.flat(), robots.map((r) => r.uuid), 'each robot once, in order')
  const first = await browser.get('/admin/fleet')
  t.match(first.body, '<a href="/admin/fleet" aria-current="page">Fleet</a>', 'in the navigation')
  const row = rowOf(first.body, robots[0]?.uuid ?? '')
  t.match(row, `<a href="/admin/robots/${robots[0]?.uuid ?? ''}">FL-000</a>`, 'a link to the robot page')
  t.match(row, '<span class="dot off"></span><span class="presence-text">offline</span>')
  t.match(row, '<td class="state">idle</td>')
  for (const cell of ['speed num', 'position_x num', 'position_y num', 'battery num', 'cpu num', 'datetime']) t.match(row, `<td class="${cell}"></td>`, `a ${cell} cell for the live values`)
  t.match(row, '<td class="last-seen" title="—" data-at="">never</td>')
  t.match(first.body, 'data-token-url="/admin/token.json"')
  t.match(first.body, '<script src="/admin/static/fleet.js"></script>')

  const bad = await browser.get('/admin/fleet?cursor=nonsense')
  t.equal(bad.statusCode, 400, 'a malformed cursor is a 400 page')
})

t.test('the fleet page filters by serial or name, presence and state, and the pager keeps the filters', async (t) => {
  const { app, staff, browser } = await staffSetup(t)
  await listen(app)
  const moving = await createRobot(app, { serial: 'MOVER-1', name: 'Forklift <b>' })
  const still = await createRobot(app, { serial: 'STILL-1', name: 'parked' })
  await createRobot(app, { serial: 'OTHER-1' })
  // A real robot: it connects, listens for commands and acks `auto`, so it is online in state auto.
  const client = await connectRobot(t, app, moving)
  await subscribe(client, `robots/${moving.uuid}/commands`)
  client.on('message', (topic, payload) => {
    const { id } = JSON.parse(payload.toString()) as { id: string }
    client.publish(`robots/${moving.uuid}/commands/ack`, JSON.stringify({ id, status: 'ok', state: 'auto' }), { qos: 1 })
  })
  await eventually(async () => await app.services.robots.get(moving.uuid), (r) => r.command_connected)
  await app.services.commands.issue({ id: staff.id, username: staff.username, isStaff: true }, moving.uuid, 'auto', { actor: { id: staff.id, username: staff.username }, ip: '127.0.0.1' })
  await eventually(async () => await app.services.robots.get(moving.uuid), (r) => r.state === 'auto')

  const byName = await browser.get('/admin/fleet?q=forklift')
  t.same(rowsOf(byName.body), [moving.uuid], 'q searches the name, case-insensitive')
  t.match(byName.body, 'Forklift &lt;b&gt;', 'names are escaped')
  t.notMatch(byName.body, 'Forklift <b>')
  t.same(rowsOf((await browser.get('/admin/fleet?q=STILL')).body), [still.uuid], 'and the serial')
  const online = await browser.get('/admin/fleet?online=yes')
  t.same(rowsOf(online.body), [moving.uuid], 'online')
  t.match(rowOf(online.body, moving.uuid), '<span class="dot on"></span><span class="presence-text">online, commands</span>')
  t.match(rowOf(online.body, moving.uuid), '<td class="state">auto</td>')
  t.equal(rowsOf((await browser.get('/admin/fleet?online=no')).body).length, 2, 'offline')
  t.same(rowsOf((await browser.get('/admin/fleet?state=auto')).body), [moving.uuid], 'by state')
  t.same(rowsOf((await browser.get('/admin/fleet?state=idle&q=1')).body).length, 2, 'filters combine')
  const none = await browser.get('/admin/fleet?state=auto&online=no')
  t.same(rowsOf(none.body), [])
  t.match(none.body, 'No robots match these filters.')
  const unknown = await browser.get('/admin/fleet?state=%3Cx%3E&online=maybe')
  t.equal(unknown.statusCode, 200, 'an unknown state or presence filter means all')
  t.equal(rowsOf(unknown.body).length, 3)
  t.notMatch(unknown.body, '<x>')
  t.match(unescape(unknown.body), '<option value="" selected>all</option>')

  for (let i = 0; i < 50; i++) await createRobot(app, { serial: `IDLE-${i}` })
  const walked = await walkPages(browser, '/admin/fleet?state=idle&online=no', rowsOf)
  t.same(walked.pages.map((p) => p.length), [50, 2], 'paged within the filter')
  t.match(walked.links[0], /^\/admin\/fleet\?online=no&state=idle&cursor=/, 'the next link keeps the filters')
})

t.test('"Last seen" of an offline robot is its stored time, of an online one "now"; the statistics columns name their units', async (t) => {
  const { app, browser } = await staffSetup(t)
  await listen(app)
  const gone = await createRobot(app, { serial: 'GONE-1' })
  const here = await createRobot(app, { serial: 'HERE-1' })
  const seenAt = new Date(Date.now() - 2 * 3600_000 - 60_000)
  await app.services.robots.touch([gone.uuid], seenAt)
  const client = await connectRobot(t, app, here)
  await eventually(async () => await app.services.robots.get(here.uuid), (r) => r.data_connected)

  const page = await browser.get('/admin/fleet')
  t.match(rowOf(page.body, gone.uuid), `<td class="last-seen" title="${helpers.time(seenAt.toISOString())}" data-at="${seenAt.getTime()}">2 h ago</td>`, 'offline: how long ago it was last seen, by the stored time; the time itself in the title')
  t.match(rowOf(page.body, gone.uuid), 'data-online="no"')
  t.match(rowOf(page.body, here.uuid), /<td class="last-seen" title="[^"]+ UTC" data-at="\d+">now<\/td>/, 'online: now')
  t.match(rowOf(page.body, here.uuid), 'data-online="yes"')
  t.match(page.body, /<table class="compact" id="fleet" data-token-url="\/admin\/token.json" data-now="\d+" data-fields="/, 'the page\'s time and the fields\' decimals for fleet.js')
  const headings = [...section(page.body, '<thead>', '</thead>').matchAll(/<th[^>]*>([^<]*)<\/th>/g)].map((m) => m[1])
  t.same(headings, ['Robot', 'Presence', 'State', 'Speed (m/s)', 'x (m)', 'y (m)', 'Battery (%)', 'CPU (%)', 'Robot time', 'Last seen'])

  await client.endAsync()
  const after = await eventually(async () => await browser.get('/admin/fleet'), (res) => rowOf(res.body, here.uuid).includes('data-online="no"'))
  const stored = (await app.services.robots.get(here.uuid)).last_seen_at as string
  t.match(rowOf(after.body, here.uuid), `<td class="last-seen" title="${helpers.time(stored)}" data-at="${Date.parse(stored)}">`, 'once it goes offline: the time stored when it disconnected')
  t.match(rowOf(after.body, here.uuid), /data-at="\d+">\d+ s ago<\/td>/, 'seconds ago, not "now"')
})

t.test('the fleet page is for staff only', async (t) => {
  const { app } = await staffSetup(t)
  const user = await createUser(app, { username: 'plain' })
  const anonymous = await app.inject({ method: 'GET', url: '/admin/fleet' })
  t.equal(anonymous.statusCode, 303, 'anonymous: to the log-in form')
  t.match(anonymous.headers.location, '/admin/login')
  const notStaff = await staffBrowser(app, user).catch((err: Error) => err)
  t.type(notStaff, Error, 'a user who is not staff cannot log in to the admin at all')
})
