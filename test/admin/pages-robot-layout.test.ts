// The robot page as an operator reads it, from the server-rendered HTML:
// state first, then the live panel, the history and the stored frames, the
// commands, and last the secret and the actions that end things (rotate,
// disable, delete); the live panel names the robot's presence ("Robot:
// online", from the database until the live feed takes over) apart from the
// page's own feed; the stored frames are a table of numbers with their units
// and fixed decimals. The same page in a real browser (live updates, 390 px)
// is browser-e2e.test.ts.
import t from 'tap'
import { fixed, frameTable } from '../../admin/units.js'
import { createRobot, robotIdOf } from '../factory.js'
import { connectRobot, eventually, listen, subscribe } from '../mqtt.js'
import { staffSetup } from './browser.js'
import { section, unescape } from './html.js'

/** The text of an element's HTML, tags removed and blanks folded. */
const textOf = (html: string): string => unescape(html.replace(/<[^>]+>/g, '')).replace(/\s+/g, ' ').trim()
const liveRobot = (body: string): string => textOf(/<p id="live-robot"[^>]*>([\s\S]*?)<\/p>/.exec(body)?.[1] ?? '')
const liveFeed = (body: string): string => textOf(/<span id="live-status"[^>]*>([\s\S]*?)<\/span>/.exec(body)?.[1] ?? '')

t.test('the robot page reads in an operator\'s order: state, live, history, stored frames, commands, access; secret, disable and delete last', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app, { serial: 'SN-ORDER' })
  const { body } = await browser.get(`/admin/robots/${robot.uuid}`)
  const marks = ['id="robot-facts"', '<section id="live"', '<section id="history"', '<section id="stats"', '<section id="commands"', '<section id="access"', '<section id="manage"']
  const at = marks.map((m) => body.indexOf(m))
  t.notOk(at.includes(-1), `every part is on the page (${marks.filter((_, i) => at[i] === -1).join(', ') || 'all'})`)
  t.same([...at].sort((a, b) => a - b), at, marks.join(' < '))
  const manage = section(body, '<section id="manage"', '<script')
  for (const action of ['rotate', 'disable', 'delete']) t.match(manage, `/admin/robots/${robot.uuid}/${action}"`, `${action} is in the last section`)
  const before = body.slice(0, body.indexOf('<section id="manage"'))
  for (const action of ['rotate', 'disable', 'enable', 'delete']) t.notMatch(before, `/admin/robots/${robot.uuid}/${action}"`, `no ${action} before it`)
  t.match(section(body, '<div class="heading">', '</div>\n</div>'), 'href="#manage"', 'the heading links down to them')
  t.match(body, 'id="f-grace"', 'the rotate form is still there')

  await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null, ip: '127.0.0.1' })
  const disabled = await browser.get(`/admin/robots/${robot.uuid}`)
  t.match(section(disabled.body, '<section id="manage"', '<script'), `/admin/robots/${robot.uuid}/enable"`, 'Enable takes the place of Disable')
  t.match(disabled.body, 'id="robot-disabled"', 'a disabled robot says so at the top')
})

t.test('the live panel shows the robot\'s presence apart from the page\'s own feed', async (t) => {
  const { app, browser } = await staffSetup(t)
  await listen(app)
  const robot = await createRobot(app, { serial: 'SN-PRESENCE' })
  const fresh = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(liveRobot(fresh.body), 'Robot: offline no data connection, not listening for commands')
  t.equal(liveFeed(fresh.body), 'Live feed: needs JavaScript', 'the page\'s own connection is a separate line')

  const client = await connectRobot(t, app, robot)
  await eventually(async () => await app.services.robots.get(robot.uuid), (r) => r.data_connected)
  t.equal(liveRobot((await browser.get(`/admin/robots/${robot.uuid}`)).body), 'Robot: online data connected, not listening for commands')
  await subscribe(client, `robots/${robot.uuid}/commands`)
  await eventually(async () => await app.services.robots.get(robot.uuid), (r) => r.command_connected)
  const listening = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(liveRobot(listening.body), 'Robot: online data connected, listening for commands')
  t.match(listening.body, /<p id="live-robot" class="robot-presence on"><span class="dot on"><\/span>/)

  await app.services.robots.update(robot.uuid, { enabled: false }, { actor: null, ip: '127.0.0.1' })
  // at once, before the broker has written the closed connections to the row
  const disabled = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(liveRobot(disabled.body), 'Robot: offline disabled: it cannot log in', 'a disabled robot is offline, and the panel says why')
  t.match(disabled.body, /<p id="live-robot" class="robot-presence off">/)
  t.equal(liveFeed(disabled.body), 'Live feed: needs JavaScript')
})

t.test('the live panel brings the stored positions of its window, on the server\'s clock, and each field\'s unit and decimals', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const now = Date.now()
  const frame = (id: string, at: number, x: number) => ({ frameId: id, type: 1, data: { speed: 1, position_x: x, position_y: 0, angle_theta: 0, datetime: '2020-01-01 00:00:00' }, recordedAt: new Date(at), receivedAt: new Date(at) })
  await app.services.frames.store(robotId, [frame('old', now - 10 * 60_000, 1), frame('recent', now - 60_000, 2)])
  const { body } = await browser.get(`/admin/robots/${robot.uuid}`)
  const attr = (name: string): string => unescape(new RegExp(`<section id="live"[^>]* data-${name}="([^"]*)"`).exec(body)?.[1] ?? '')
  const points = JSON.parse(attr('points')) as Array<{ t: number, x: number }>
  t.same(points.map((p) => p.x), [2], 'only the frames of the last 5 minutes')
  t.equal(points[0]?.t, now - 60_000, 'at the time the server received them, not the robot\'s datetime')
  t.ok(Number(attr('now')) >= now, 'the page carries the server\'s time, which the panel takes as its clock')
  t.equal(attr('window'), '300000')
  t.match(JSON.parse(attr('fields')), { speed: { unit: 'm/s', decimals: 2 }, battery: { unit: '%' }, angle_theta: { unit: 'rad' } })
  const values = section(body, '<dl class="readings" id="live-values">', '</dl>')
  t.match(values, '<div data-field="speed"><dt>Speed</dt><dd><span class="value">—</span> <span class="unit">m/s</span></dd></div>')
  t.match(values, '<div data-field="temperature" hidden><dt>Temperature</dt>', 'the fields a robot may not send wait, hidden')
  t.match(body, 'Speed (m/s) over the last 5 min, time in UTC')
})

t.test('stored frames are a table: a column per field with its unit, fixed decimals, the exact value in the title', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const at = Date.UTC(2026, 11, 7, 9, 0, 0)
  await app.services.frames.store(robotId, [
    { frameId: 'p<1>', type: 1, data: { speed: 1.23456789, position_x: -0.0001, position_y: 12345.678, angle_theta: 3.14159265, datetime: '2026-12-07T09:00:00Z' }, recordedAt: new Date(at), receivedAt: new Date(at) },
    { frameId: 'h1', type: 3, data: { battery: 87, cpu: 12.345, datetime: '2026-12-07T09:00:01Z' }, recordedAt: new Date(at + 1000), receivedAt: new Date(at + 1000) },
    { frameId: 'p-huge', type: 1, data: { speed: 1.37e12, position_x: -Number.MAX_VALUE, position_y: 5e-324, angle_theta: 0, datetime: '2026-12-07T09:00:02Z' }, recordedAt: new Date(at + 2000), receivedAt: new Date(at + 2000) }
  ])
  const { body } = await browser.get(`/admin/robots/${robot.uuid}`)
  const table = section(body, '<table class="compact frames" id="stats-table">', '</table>')
  const headings = [...section(table, '<thead>', '</thead>').matchAll(/<th[^>]*>([^<]*)<\/th>/g)].map((m) => unescape(m[1] as string))
  t.same(headings, ['Received (UTC)', 'Type', 'Frame id', 'Robot time (UTC)', 'Speed (m/s)', 'x (m)', 'y (m)', 'θ (rad)', 'Battery (%)', 'CPU (%)'], 'the fields of the page\'s frames, in the contract\'s order, with units')
  const rows = [...table.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].slice(1).map((m) => [...(m[1] as string).matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => textOf(c[1] as string)))
  t.same(rows, [
    ['2026-12-07 09:00:02 UTC', 'position', 'p-huge', '2026-12-07 09:00:02 UTC', '1.370e12', '-1.798e308', '0.00', '0.000', '', ''],
    ['2026-12-07 09:00:01 UTC', 'hardware', 'h1', '2026-12-07 09:00:01 UTC', '', '', '', '', '87.0', '12.3'],
    ['2026-12-07 09:00:00 UTC', 'position', 'p<1>', '2026-12-07 09:00:00 UTC', '1.23', '0.00', '12345.68', '3.142', '', '']
  ], 'newest first; values with their decimals, huge ones in exponent form, blank where a frame has no such field')
  t.match(table, '<td class="num" title="1.23456789">1.23</td>', 'the exact stored value in the title')
  t.match(table, '<code>p&lt;1&gt;</code>', 'frame ids are escaped')
  t.notMatch(table, 'class="data"', 'no raw key=value text')
})

t.test('fixed(): the field\'s decimals, never -0, exponent form from a billion, anything else as it came', async (t) => {
  t.equal(fixed(1.5, 2), '1.50')
  t.equal(fixed(-0.0001, 2), '0.00')
  t.equal(fixed(-0, 1), '0.0')
  t.equal(fixed(-1.25, 1), '-1.3')
  t.equal(fixed(999_999_999.5, 1), '999999999.5')
  t.equal(fixed(1e9, 1), '1.000e9')
  t.equal(fixed(-Number.MAX_VALUE, 2), '-1.798e308')
  t.equal(fixed(Number.MIN_VALUE, 2), '0.00')
  t.equal(fixed('12', 2), '12', 'a string stays as stored')
  t.equal(fixed(null, 2), 'null')
  const table = frameTable([{ frame_id: 'x', type: 1, data: { speed: 1, firmware_extra: 'v2' }, recorded_at: null, received_at: '2026-12-07T09:00:00.000Z' }])
  t.same(table.columns.map((c) => c.heading), ['Speed (m/s)'])
  t.equal(table.other, true)
  t.equal(table.rows[0]?.other, 'firmware_extra=v2', 'a field the table does not know is still shown')
})
