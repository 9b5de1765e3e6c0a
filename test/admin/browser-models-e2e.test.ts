/// <reference lib="dom" />
// Robot models in a real browser (headless Chromium driven by playwright-core,
// as test/admin/browser-e2e.test.ts): a staff user creates a model from the
// JSON of examples/cleaner.json pasted in the models page, adds a robot with
// that model from the robot form, and on the robot page sees the model's
// telemetry arrive live from a real MQTT robot; then fills the form of a model
// command (a text, a number, a select, a checkbox): a mistake comes back next
// to its field with the values kept, and once corrected the command reaches
// the robot with typed params, and its result shows on the page.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createStaff } from '../factory.js'
import { build } from '../helper.js'
import { chromiumPage, overflow, serve } from './chromium.js'
import { connectRobot, subscribe } from '../mqtt.js'

export const SCREENSHOT = join('.tap', 'screenshots', 'admin-robot-model.png')
const EXAMPLE = readFileSync(new URL('../../examples/cleaner.json', import.meta.url), 'utf8')

t.test('staff create a model, give it to a robot and send it a model command from its page, in Chromium', async (t) => {
  const app = await build(t)
  const base = await serve(app)
  const staff = await createStaff(app, { username: 'modeller' })
  const { page, errors: pageErrors } = await chromiumPage(t)

  await page.goto(`${base}/admin/models`)
  await page.fill('#f-username', staff.username)
  await page.fill('#f-password', staff.password)
  await page.click('button[type=submit]:has-text("Log in")')
  await page.waitForURL(`${base}/admin/models`)

  // A model from pasted JSON: first with a mistake, shown under the textarea, the text kept.
  const broken = EXAMPLE.replace('"type": "boolean"', '"type": "bool"')
  await page.fill('#f-model', broken)
  await page.click('#new-model button:has-text("Create")')
  await page.waitForSelector('#model-errors')
  t.match(await page.textContent('#model-errors'), 'telemetry.mopping.type must be one of', 'the mistake, named')
  t.equal(await page.inputValue('#f-model'), broken, 'the text is kept')
  await page.fill('#f-model', EXAMPLE)
  await page.click('#new-model button:has-text("Create")')
  await page.waitForURL(/\/admin\/models\/cleaner\/versions\/1\?notice=model_created$/)
  t.match(await page.textContent('#fields-table'), 'brush_rpm', 'the version’s fields')

  // A robot with that model, from the robot form.
  await page.goto(`${base}/admin/robots/new`)
  await page.fill('#f-serial', 'CLEAN-1')
  await page.selectOption('#f-model', 'cleaner@1')
  await page.click('button:has-text("Add robot")')
  const secret = (await page.textContent('#robot-secret'))?.trim() ?? ''
  await page.click('text=Go to the robot')
  const uuid = /\/admin\/robots\/([0-9a-f-]{36})$/.exec(page.url())?.[1] ?? ''
  t.equal(await page.textContent('#robot-model'), 'cleaner v1', 'the robot page names its model')

  // A real robot: it sends the model's telemetry and answers its commands with a result.
  const robot = await connectRobot(t, app, { uuid, serial: 'CLEAN-1', secret })
  await subscribe(robot, `robots/${uuid}/commands`)
  const received: Array<{ id: string, command: string, params: unknown }> = []
  robot.on('message', (topic, payload) => {
    if (topic !== `robots/${uuid}/commands`) return
    const command = JSON.parse(payload.toString()) as { id: string, command: string, params: unknown }
    received.push(command)
    robot.publish(`robots/${uuid}/commands/ack`, JSON.stringify({ id: command.id, status: 'ok', result: { cleaned: true, area_m2: 42.5 } }), { qos: 1 })
  })

  await page.reload()
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'Live feed: connected' && document.querySelector('#live-robot .robot-online')?.textContent === 'Robot: online')
  robot.publish(`robots/${uuid}/data`, JSON.stringify({ id: 't-1', type: 4, data: { datetime: new Date().toISOString(), brush_rpm: 1200, water_level: 71.5, mopping: true, mode: 'eco' } }), { qos: 1 })
  await page.waitForFunction(() => document.querySelector('#model-values [data-field="brush_rpm"] .value')?.textContent === '1200')
  t.equal(await page.textContent('#model-values [data-field="water_level"]'), 'water_level71.50 %', 'the model’s values arrive live, with their units')
  t.equal(await page.textContent('#model-values [data-field="mopping"] .value'), 'yes')
  t.equal(await page.textContent('#model-values [data-field="mode"] .value'), 'eco')

  // The clean_zone form: a mistake first (passes over its maximum).
  const form = '#mc-clean_zone'
  await page.fill(`${form} input[name="p.zone"]`, 'lobby')
  await page.fill(`${form} input[name="p.passes"]`, '9')
  await page.selectOption(`${form} select[name="p.mode"]`, { label: 'deep' })
  await page.check(`${form} input[name="p.mop"]`)
  await page.click(`${form} button:has-text("Send clean_zone")`)
  await page.waitForSelector(`${form} .field.invalid small.error`)
  t.equal(await page.textContent(`${form} .field.invalid small.error`), 'params.passes must be <= 5', 'the mistake next to its field')
  t.equal(await page.inputValue(`${form} input[name="p.zone"]`), 'lobby', 'the values are kept')
  t.ok(await page.isChecked(`${form} input[name="p.mop"]`), 'the checkbox too')
  t.equal(received.length, 0, 'nothing reached the robot')

  await page.fill(`${form} input[name="p.passes"]`, '3')
  await page.click(`${form} button:has-text("Send clean_zone")`)
  await page.waitForURL(/notice=command_sent/)
  t.same(received.map((c) => [c.command, c.params]), [['clean_zone', { zone: 'lobby', passes: 3, mode: 'deep', mop: true }]], 'the robot got the command with typed params')
  await page.waitForFunction(() => document.querySelector('#command-rows tr td.status')?.textContent === 'done', undefined, { timeout: 15_000 })
  await page.waitForFunction(() => document.querySelector('#command-rows tr small.result')?.textContent === '→ {"cleaned":true,"area_m2":42.5}')
  t.pass('the page shows it done, with the robot’s result')
  t.equal(await page.textContent('#robot-state'), 'idle', 'a model command leaves the state alone')
  mkdirSync(join('.tap', 'screenshots'), { recursive: true })
  await page.screenshot({ path: SCREENSHOT, fullPage: true })
  t.same([...readFileSync(SCREENSHOT).subarray(1, 4)], [...Buffer.from('PNG')], `screenshot saved to ${SCREENSHOT}`)

  // A phone, 390 px wide: neither the robot page with its model nor the model's pages scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 })
  for (const path of [`/admin/robots/${uuid}`, '/admin/models', '/admin/models/cleaner', '/admin/models/cleaner/versions/1']) {
    await page.goto(`${base}${path}`)
    const o = await overflow(page, '.scroll, pre')
    t.ok(o.scrollWidth <= 390, `${path} is ${o.scrollWidth} px wide at 390 (${o.wide.join(', ') || 'nothing sticks out'})`)
  }

  // the two refused forms answer 400 (the page shows the mistakes), which the console notes
  t.same(pageErrors.filter((e) => !/status of 400/.test(e)), [], 'no script errors in the page')
  t.equal(pageErrors.length, 2, 'only the two refused forms')
})
