// Commands that wait (docs/protocol.md §5.3) on the robot's admin page: the command
// form can let a command wait for an offline robot, the commands table shows
// each queued command's expiry, and queued or pending ones have a Cancel
// button, a form with the page's CSRF token.
import t from 'tap'
import { createRobot } from '../factory.js'
import { collect, connectRobot, eventually, subscribe } from '../mqtt.js'
import { staffSetup } from './browser.js'
import { errorNextTo, follow, location, notice, section, selectedOption } from './html.js'

const commandsOf = (body: string): string => section(body, '<section id="commands">', '</section>')

t.test('a command to an offline robot waits when the form says so, with its expiry and a Cancel button', async (t) => {
  const { app, staff, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  await browser.get(`/admin/robots/${robot.uuid}`)
  t.match(commandsOf(browser.last?.body ?? ''), /<select id="f-ttl" name="ttl">/, 'the form asks how long to wait')

  const sent = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'manual', ttl: '3600' })
  t.equal(sent.statusCode, 303)
  t.equal(location(sent), `/admin/robots/${robot.uuid}?notice=command_queued#commands`)
  const page = await follow(browser, sent)
  t.equal(notice(page.body), 'The robot is not listening for commands: the command waits for it.')
  const [queued] = (await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid)).items
  t.match(queued, { command: 'manual', status: 'queued', issued_by: staff.username })
  const table = commandsOf(page.body)
  t.match(table, /<td class="status status-queued">queued<\/td>/)
  t.match(table, new RegExp(`<td class="expires">${(queued?.expires_at ?? '').slice(0, 16).replace('T', ' ')}`), 'the expiry is shown')
  t.match(table, `action="/admin/robots/${robot.uuid}/commands/${queued?.id ?? ''}/cancel"`, 'a Cancel form')
  t.match(table, /name="_csrf" value="[^"]+"/, 'with the CSRF token')

  // without the CSRF token: refused, nothing changes
  const forged = await browser.post(`/admin/robots/${robot.uuid}/commands/${queued?.id ?? ''}/cancel`, { _csrf: null })
  t.equal(forged.statusCode, 403)
  t.equal((await app.services.commands.list({ id: staff.id, username: staff.username, isStaff: true }, robot.uuid)).items[0]?.status, 'queued')

  await browser.get(`/admin/robots/${robot.uuid}`)
  const cancelled = await browser.post(`/admin/robots/${robot.uuid}/commands/${queued?.id ?? ''}/cancel`)
  t.equal(cancelled.statusCode, 303)
  t.equal(location(cancelled), `/admin/robots/${robot.uuid}?notice=command_cancelled#commands`)
  const after = await follow(browser, cancelled)
  t.equal(notice(after.body), 'Command cancelled.')
  t.match(commandsOf(after.body), /<td class="status status-cancelled">cancelled<\/td>/)
  t.notMatch(commandsOf(after.body), '/cancel"', 'no Cancel button for a cancelled command')

  const again = await browser.post(`/admin/robots/${robot.uuid}/commands/${queued?.id ?? ''}/cancel`)
  t.equal(location(again), `/admin/robots/${robot.uuid}?notice=command_finished#commands`, 'cancelling twice: a notice, no error page')
  const unknown = await browser.post(`/admin/robots/${robot.uuid}/commands/00000000-0000-4000-8000-000000000000/cancel`)
  t.equal(unknown.statusCode, 404)

  const audit = (await app.services.audit.list({ limit: 100 })).items.map((e) => e.action)
  t.ok(audit.includes('command.queued') && audit.includes('command.cancelled'), 'queued and cancelled are audited')

  // once the robot listens, nothing of it is published
  const client = await connectRobot(t, app, robot)
  const received = collect(client, (topic) => topic === `robots/${robot.uuid}/commands`)
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])
  await new Promise((resolve) => { setTimeout(resolve, 200) })
  t.same(received, [], 'the cancelled command never went out')
})

t.test('the wait must be one of the listed ones; without one, an offline robot still refuses', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  await browser.get(`/admin/robots/${robot.uuid}`)
  for (const ttl of ['0', '61', 'forever', '604801']) {
    const res = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'auto', ttl })
    t.equal(res.statusCode, 400, `ttl ${ttl}`)
    t.equal(errorNextTo(res.body, 'command'), 'Choose one of the listed waits.')
  }
  const refused = await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'auto', ttl: '' })
  t.equal(refused.statusCode, 409)
  t.equal(selectedOption(refused.body, 'ttl'), undefined, 'no wait chosen: the first option, "refuse it"')
  t.equal(await app.db.models.Command.count(), 0, 'nothing stored')
})

t.test('a queued command goes out when the robot subscribes, and the page shows it delivered', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  await browser.get(`/admin/robots/${robot.uuid}`)
  await browser.post(`/admin/robots/${robot.uuid}/commands`, { command: 'auto', ttl: '60' })
  const client = await connectRobot(t, app, robot)
  const received = collect(client, (topic) => topic === `robots/${robot.uuid}/commands`)
  t.same(await subscribe(client, `robots/${robot.uuid}/commands`), [1])
  await eventually(async () => received.length, (n) => n === 1)
  const page = await eventually(async () => await browser.get(`/admin/robots/${robot.uuid}`), (res) => res.body.includes('status-delivered'))
  const [sent] = (await app.services.commands.list({ id: 0, username: 'page', isStaff: true }, robot.uuid)).items
  t.match(sent, { status: 'delivered', expires_at: String })
  t.match(commandsOf(page.body), `<td class="expires">${(sent?.expires_at ?? '').slice(0, 16).replace('T', ' ')}`, 'sent: the expiry COMMAND_TIMEOUT after it went out, not the wait')
  t.notMatch(commandsOf(page.body), '/cancel"', 'a delivered command has no Cancel button')
})
