/// <reference lib="dom" />
// The admin in a real browser (issue #4): headless Chromium driven by
// playwright-core against the real app on a real port. The browser is the one
// @sparticuz/chromium ships inside its npm package (so `npm ci && npm test`
// needs nothing from apt); CHROMIUM_PATH selects another one.
// A staff user logs in, creates a robot and a user, grants access; then,
// while a real robot client sends frames over MQTT, the robot page's live
// panel (MQTT over WebSocket from the page itself) shows new rows without a
// reload; a command sent from the page reaches the robot, which acks it, and
// the page shows it done. The live panel says "Robot: online" apart from its
// own "Live feed: connected", and its plots have axes with units and UTC
// times. The history charts read with scripts off, and the fleet page follows
// the robot live ("Last seen" of a robot that went offline is a stored time,
// not "now"). At 390 px wide neither page scrolls sideways. Screenshots of
// the robot page, its history and the fleet page are saved under
// .tap/screenshots/.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createStaff } from '../factory.js'
import { build } from '../helper.js'
import { chromiumPage, overflow, serve } from './chromium.js'
import { connectRobot, positionFrame, subscribe } from '../mqtt.js'

export const SCREENSHOT = join('.tap', 'screenshots', 'admin-robot-page.png')
export const HISTORY_SCREENSHOT = join('.tap', 'screenshots', 'admin-robot-history.png')
export const FLEET_SCREENSHOT = join('.tap', 'screenshots', 'admin-fleet.png')
export const PHONE_SCREENSHOTS = [join('.tap', 'screenshots', 'admin-robot-page-390.png'), join('.tap', 'screenshots', 'admin-fleet-390.png')]

t.test('staff manage a fleet and watch a robot live in Chromium', async (t) => {
  const app = await build(t)
  const base = await serve(app)
  const staff = await createStaff(app, { username: 'chief' })
  const { browser, page, errors: pageErrors } = await chromiumPage(t)
  page.on('response', (res) => { if (res.status() === 404) pageErrors.push(`404 ${res.url()}`) })

  // Anonymous → log-in form → dashboard.
  await page.goto(`${base}/admin/robots`)
  t.match(new URL(page.url()).pathname, '/admin/login', 'an anonymous visitor is sent to the log-in form')
  await page.fill('#f-username', staff.username)
  await page.fill('#f-password', staff.password)
  await page.click('button[type=submit]:has-text("Log in")')
  await page.waitForURL(`${base}/admin/robots`)
  t.equal(await page.textContent('h1'), 'Robots', 'back where the visitor wanted to go')

  // Create a robot; its generated secret is shown once.
  await page.click('text=Add a robot')
  await page.fill('#f-serial', 'E2E-001')
  await page.fill('#f-name', 'Rover <one>')
  await page.click('button:has-text("Add robot")')
  const secret = (await page.textContent('#robot-secret'))?.trim() ?? ''
  t.match(secret, /^[0-9a-f]{48}$/, 'the generated secret is shown')
  await page.click('text=Go to the robot')
  const uuid = /\/admin\/robots\/([0-9a-f-]{36})$/.exec(page.url())?.[1] ?? ''
  t.match(uuid, /^[0-9a-f-]{36}$/, 'on the robot page')
  t.match(await page.textContent('h1'), 'Rover <one>', 'the name is shown as text')

  // Create a user and grant them the robot, from the user's page.
  await page.goto(`${base}/admin/users/new`)
  await page.fill('#f-username', 'operator1')
  await page.fill('#f-password', 'operator-password')
  await page.click('button:has-text("Add user")')
  await page.waitForURL(/\/admin\/users\/\d+\?notice=user_created$/)
  await page.fill('#f-serial', 'E2E-001')
  await page.click('#access button:has-text("Grant")')
  await page.waitForURL(/notice=access_granted/)
  t.match(await page.textContent('#access'), 'E2E-001', 'the user page lists the granted robot')
  const operator = await app.services.users.findByUsername('operator1')
  t.same(await app.services.access.visibleUuids(operator?.id ?? 0), [uuid], 'the grant is in the database')

  // A real robot: token from its secret, MQTT over TCP, obeys commands.
  const robot = await connectRobot(t, app, { uuid, serial: 'E2E-001', secret })
  await subscribe(robot, `robots/${uuid}/commands`)
  robot.on('message', (topic, payload) => {
    if (topic !== `robots/${uuid}/commands`) return
    const command = JSON.parse(payload.toString()) as { id: string, command: string }
    robot.publish(`robots/${uuid}/commands/ack`, JSON.stringify({ id: command.id, status: 'ok', state: command.command }), { qos: 1 })
  })

  // The robot page: the live panel connects over WebSocket as the staff user.
  await page.goto(`${base}/admin/robots/${uuid}`)
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'Live feed: connected')
  await page.waitForFunction(() => document.querySelector('#live-robot .robot-detail')?.textContent?.includes('listening for commands · online since') === true)
  t.equal(await page.textContent('#live-robot .robot-online'), 'Robot: online', 'the robot\'s presence, from its retained presence message')
  t.match(await page.textContent('#live-robot .robot-detail'), /^data connected, listening for commands · online since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/)
  await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true })
  t.equal(await page.locator('#live-rows tr').count(), 0, 'no live rows before the robot sends')

  for (let i = 0; i < 5; i++) {
    robot.publish(`robots/${uuid}/data`, positionFrame(`f-${i}`, { position_x: 1.5 + i, position_y: 2 * i, speed: 0.25 * i }), { qos: 1 })
    await page.waitForFunction((n) => document.querySelectorAll('#live-rows tr').length >= n, i + 1)
  }
  t.ok(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded === true), 'the rows arrived without a reload')
  t.match(await page.textContent('#live-rows tr:first-child'), '5.50', 'the newest row shows the last position_x, with its decimals')
  t.equal(await page.textContent('#live-values [data-field="speed"]'), 'Speed1.00 m/s', 'the latest speed, with its unit')
  t.equal(await page.textContent('#live-values [data-field="position_x"] .value'), '5.50')
  await page.waitForFunction(() => document.querySelectorAll('#plot-path polyline').length === 1 && document.querySelectorAll('#plot-speed polyline').length === 1)
  t.pass('the path and the speed are plotted')
  const axes = async (id: string) => await page.evaluate((sel) => ({
    x: Array.from(document.querySelectorAll(sel + ' .axis.x text:not(.unit)')).map((e) => e.textContent),
    y: Array.from(document.querySelectorAll(sel + ' .axis.y text:not(.unit)')).map((e) => e.textContent),
    units: Array.from(document.querySelectorAll(sel + ' .axis text.unit')).map((e) => e.textContent)
  }), '#' + id)
  const speedAxes = await axes('plot-speed')
  t.same(speedAxes.units, ['m/s', 'time (UTC)'], 'the speed plot names its units')
  t.ok(speedAxes.x.length >= 2 && speedAxes.x.every((l) => /^\d\d:\d\d(:\d\d)?$/.test(l ?? '')), `UTC times on the time axis: ${speedAxes.x.join(', ')}`)
  t.ok(speedAxes.y.length >= 2 && speedAxes.y.every((l) => /^-?\d+(\.\d+)?$/.test(l ?? '')), `a scale on the speed axis: ${speedAxes.y.join(', ')}`)
  const pathAxes = await axes('plot-path')
  t.same(pathAxes.units, ['y (m)', 'x (m)'], 'the path names both axes, in metres')
  t.ok(pathAxes.x.length >= 2 && pathAxes.y.length >= 2, `a scale on both: x ${pathAxes.x.join(', ')}; y ${pathAxes.y.join(', ')}`)
  t.equal(await page.locator('#plot-path circle.plot-dot.start').count(), 1, 'where the path starts')

  // A command from the page: sent, delivered, acked → done, without a manual reload.
  await page.selectOption('#f-command', 'auto')
  await page.click('#commands button:has-text("Send")')
  await page.waitForURL(/notice=command_sent/)
  await page.waitForFunction(() => document.querySelector('#command-rows tr td.status')?.textContent === 'done', undefined, { timeout: 15_000 })
  t.equal(await page.textContent('#command-rows tr td.status'), 'done', 'the command is done')
  await page.waitForFunction(() => document.getElementById('robot-state')?.textContent === 'auto')
  const commands = await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, uuid)
  t.equal(commands.items[0]?.status, 'done', 'and so it is in the database')

  // The statistics table, after a reload, has the stored frames.
  await page.reload()
  t.equal(await page.locator('#stats-table tbody tr').count(), 5, 'five stored frames in the statistics table')

  mkdirSync(join('.tap', 'screenshots'), { recursive: true })
  await page.screenshot({ path: SCREENSHOT, fullPage: true })
  t.same([...readFileSync(SCREENSHOT).subarray(1, 4)], [...Buffer.from('PNG')], `screenshot saved to ${SCREENSHOT}`)

  // History charts: an hour of stored frames (a loop at varying speed, a
  // draining battery), drawn on the server; they read with scripts off.
  const robotId = (await app.services.robots.ref(uuid))?.id ?? 0
  const now = Date.now()
  const history = []
  for (let i = 0; i < 110; i++) {
    const receivedAt = new Date(now - (115 - i) * 30_000)
    const a = i / 110 * 2 * Math.PI
    history.push({ frameId: `h-p${i}`, type: 1, data: { speed: 1 + 0.8 * Math.sin(3 * a), position_x: 20 * Math.cos(a), position_y: 10 * Math.sin(a), angle_theta: a, datetime: receivedAt.toISOString() }, recordedAt: receivedAt, receivedAt })
    history.push({ frameId: `h-h${i}`, type: 3, data: { battery: 95 - i * 0.4, cpu: 35 + 25 * Math.abs(Math.sin(5 * a)), datetime: receivedAt.toISOString() }, recordedAt: receivedAt, receivedAt })
  }
  await app.services.frames.store(robotId, history)
  const noScript = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } })
  t.teardown(async () => { await noScript.close() })
  const plain = await noScript.newPage()
  await plain.context().addCookies((await page.context().cookies()).map((c) => ({ ...c })))
  await plain.goto(`${base}/admin/robots/${uuid}#history`)
  for (const id of ['chart-speed', 'chart-path', 'chart-battery', 'chart-cpu']) {
    t.equal(await plain.locator(`#${id} path.chart-line`).count(), 1, `${id} has its line without JavaScript`)
  }
  t.ok(await plain.locator('#chart-speed .axis.x text').count() >= 4, 'time labels on the speed chart')
  await plain.click('#history a:has-text("Last day")')
  t.match(await plain.textContent('#history'), 'in buckets of 10 min', 'the range links work')
  await plain.click('#history a:has-text("Last hour")')
  await plain.locator('#history').screenshot({ path: HISTORY_SCREENSHOT })
  t.same([...readFileSync(HISTORY_SCREENSHOT).subarray(1, 4)], [...Buffer.from('PNG')], `screenshot saved to ${HISTORY_SCREENSHOT}`)

  // The fleet page: a row per robot, filled from the retained stats at once, then live.
  for (const [serial, name] of [['E2E-002', 'Loader'], ['E2E-003', 'Sweeper'], ['E2E-004', 'Tug']]) await app.services.robots.create({ serial, name }, { actor: { id: staff.id, username: staff.username }, ip: '127.0.0.1' })
  await page.goto(`${base}/admin/fleet`)
  await page.waitForFunction(() => document.getElementById('fleet-status')?.textContent === 'Live feed: connected')
  const row = `#fleet tr[data-robot="${uuid}"]`
  await page.waitForFunction((sel) => document.querySelector(sel + ' td.position_x')?.textContent === '5.50', row)
  t.equal(await page.textContent(`${row} td.speed`), '1.00', 'the last stats, before the robot sends again, with their decimals')
  t.equal(await page.textContent(`${row} td.last-seen`), 'now', 'an online robot is seen now')
  t.match(await page.textContent(`${row} td.presence`), 'online, commands', 'presence')
  t.equal(await page.textContent(`${row} td.state`), 'auto', 'state')
  await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true })
  robot.publish(`robots/${uuid}/data`, positionFrame('f-live', { position_x: 8.25, position_y: -1, speed: 7.25 }), { qos: 1 })
  robot.publish(`robots/${uuid}/data`, JSON.stringify({ id: 'f-hw', type: 3, data: { battery: 64.5, cpu: 12, datetime: new Date().toISOString() } }), { qos: 1 })
  await page.waitForFunction((sel) => document.querySelector(sel + ' td.speed')?.textContent === '7.25' && document.querySelector(sel + ' td.battery')?.textContent === '64.5', row)
  t.equal(await page.textContent(`${row} td.position_x`), '8.25', 'the row follows the robot live')
  t.equal(await page.textContent(`${row} td.cpu`), '12.0')
  t.ok(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded === true), 'without a reload')
  t.equal(await page.locator('#fleet tbody tr').count(), 4, 'every robot has its row')
  await page.screenshot({ path: FLEET_SCREENSHOT, fullPage: true })
  t.same([...readFileSync(FLEET_SCREENSHOT).subarray(1, 4)], [...Buffer.from('PNG')], `screenshot saved to ${FLEET_SCREENSHOT}`)
  const beforeEnd = Date.now()
  robot.end(true)
  await page.waitForFunction((sel) => document.querySelector(sel + ' td.presence')?.textContent === 'offline', row)
  t.pass('the row goes offline when the robot disconnects')
  const lastSeen = await page.evaluate((sel) => { const td = document.querySelector(sel + ' td.last-seen') as HTMLElement; return { text: td.textContent, at: Number(td.dataset.at), title: td.title } }, row)
  t.match(lastSeen.text, /^\d+ s ago$/, `"Last seen" of the robot that went offline is a time, not "now": ${lastSeen.text ?? ''}`)
  t.ok(lastSeen.at >= beforeEnd - 1000, 'the time it went offline (the presence message\'s since, which the server stores as last seen)')
  t.match(lastSeen.title, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/)
  await page.reload()
  await page.waitForFunction((sel) => /^\d+ s ago$/.test(document.querySelector(sel + ' td.last-seen')?.textContent ?? ''), row)
  t.pass('and so after a reload')

  // Robot presence is not the page's connection: a robot disabled while its
  // page is open goes offline there, and the live feed stays connected.
  const other = await app.services.robots.create({ serial: 'E2E-005', name: 'Watched' }, { actor: { id: staff.id, username: staff.username }, ip: '127.0.0.1' })
  const watched = await connectRobot(t, app, { uuid: other.uuid, serial: other.serial, secret: other.token })
  t.teardown(() => { watched.end(true) })
  await page.goto(`${base}/admin/robots/${other.uuid}`)
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'Live feed: connected' && document.querySelector('#live-robot .robot-online')?.textContent === 'Robot: online')
  await app.services.robots.update(other.uuid, { enabled: false }, { actor: { id: staff.id, username: staff.username }, ip: '127.0.0.1' })
  await page.waitForFunction(() => document.querySelector('#live-robot .robot-online')?.textContent === 'Robot: offline')
  t.pass('the disabled robot goes offline on its page')
  t.equal(await page.textContent('#live-status'), 'Live feed: connected', 'while the page\'s own live feed stays connected')
  t.match(await page.textContent('#robot-presence'), 'offline')

  // A phone, 390 px wide: nothing scrolls sideways, on the robot page (live
  // panel drawn, messages open, history and stored frames) or the fleet page.
  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(`${base}/admin/robots/${uuid}`)
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'Live feed: connected' && document.querySelectorAll('#plot-speed .axis text').length > 0)
  await page.evaluate(() => { (document.getElementById('live-messages') as HTMLDetailsElement).open = true })
  t.ok(await page.locator('#stats-table tbody tr').count() > 0 && await page.locator('#chart-speed').count() === 1, 'the full robot page: stored frames and charts')
  const robotPage = await overflow(page)
  t.ok(robotPage.scrollWidth <= 390, `the robot page is ${robotPage.scrollWidth} px wide at 390 (${robotPage.wide.join(', ') || 'nothing sticks out'})`)
  t.same(robotPage.wide, [], 'nothing sticks out of the robot page')
  await page.screenshot({ path: PHONE_SCREENSHOTS[0] as string, fullPage: true })
  await page.goto(`${base}/admin/fleet`)
  await page.waitForFunction(() => document.getElementById('fleet-status')?.textContent === 'Live feed: connected')
  const fleetPage = await overflow(page)
  t.ok(fleetPage.scrollWidth <= 390, `the fleet page is ${fleetPage.scrollWidth} px wide at 390 (${fleetPage.wide.join(', ') || 'nothing sticks out'})`)
  t.same(fleetPage.wide, [], 'nothing sticks out of the fleet page')
  await page.screenshot({ path: PHONE_SCREENSHOTS[1] as string, fullPage: true })
  t.same(pageErrors, [], 'no script errors in the page')
})
