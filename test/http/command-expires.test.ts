// expires_at of a command item (POST /robots/robot/command, GET
// /robots/{uuid}/commands, cancel): while a command is open it is the moment
// it expires, and the expiry sweep expires it exactly then. A queued command
// expires ttl after it was issued; a sent one (pending, delivered)
// COMMAND_TIMEOUT after it was published, whether at once or when its queue
// was released; a finished one has none. Sent commands store no expires_at:
// it is computed from sent_at, as the sweep decides.
import type { FastifyInstance } from 'fastify'
import { QueryTypes } from 'sequelize'
import t from 'tap'
import { commandItems, queueCommand, sendCommand, type CommandItem } from '../commands.js'
import { ownedRobot, type TestUser } from '../factory.js'
import { bearer, build } from '../helper.js'

const TIMEOUT = 45 // seconds: not the default 30, so that a hard-coded default would show

async function item (app: FastifyInstance, user: TestUser, uuid: string, id: string): Promise<CommandItem> {
  const found = (await commandItems(app, user, uuid)).find((c) => c.id === id)
  if (found === undefined) throw new Error(`command ${id} not listed`)
  return found
}

/** The stored expires_at and sent_at of a command, as dates (or null). */
async function stored (app: FastifyInstance, id: string): Promise<{ expires_at: number | null, sent_at: number | null }> {
  const [row] = await app.db.sequelize.query<{ expires_at: unknown, sent_at: unknown }>('SELECT expires_at, sent_at FROM commands WHERE id = ?', { replacements: [id], type: QueryTypes.SELECT })
  const time = (v: unknown): number | null => v === null || v === undefined ? null : new Date(v instanceof Date ? v : String(v).replace(' +00:00', 'Z').replace(' ', 'T')).getTime()
  return { expires_at: time(row?.expires_at), sent_at: time(row?.sent_at) }
}

t.test('a pending command expires COMMAND_TIMEOUT after it was sent: expires_at says when, in the answer and the list, and the sweep agrees', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: String(TIMEOUT) })
  const { user, robot } = await ownedRobot(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })

  const res = await sendCommand(app, user, robot.uuid, 'auto')
  t.equal(res.statusCode, 201)
  const created = res.json() as CommandItem
  t.equal(created.status, 'pending')
  t.equal(Date.parse(created.expires_at as string) - Date.parse(created.created_at), TIMEOUT * 1000, 'answered: created_at + COMMAND_TIMEOUT')
  t.equal((await item(app, user, robot.uuid, created.id)).expires_at, created.expires_at, 'listed with the same expires_at')
  t.same(await stored(app, created.id), { expires_at: null, sent_at: Date.parse(created.created_at) }, 'stored: sent_at, and no expires_at of its own')

  const at = Date.parse(created.expires_at as string)
  t.equal(await app.services.commands.expireOverdue(new Date(at - 1)), 0, 'not expired a millisecond before expires_at')
  t.equal((await item(app, user, robot.uuid, created.id)).status, 'pending')
  t.equal(await app.services.commands.expireOverdue(new Date(at + 1)), 1, 'expired just after it')
  t.match(await item(app, user, robot.uuid, created.id), { status: 'expired', expires_at: null }, 'finished: no expires_at')
})

t.test('a delivered command keeps the expires_at of its sending; an acknowledged one has none', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: String(TIMEOUT) })
  const { user, robot } = await ownedRobot(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const created = (await sendCommand(app, user, robot.uuid, 'manual')).json() as CommandItem

  t.ok(await app.services.commands.markDelivered(created.id), 'PUBACK')
  t.match(await item(app, user, robot.uuid, created.id), { status: 'delivered', expires_at: created.expires_at }, 'delivered: still expires COMMAND_TIMEOUT after it was sent')
  t.equal(await app.services.commands.acknowledge(robot.uuid, created.id, true), 'done')
  t.match(await item(app, user, robot.uuid, created.id), { status: 'done', expires_at: null })
})

t.test('a cancelled pending command has no expires_at', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: String(TIMEOUT) })
  const { user, robot } = await ownedRobot(app)
  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const created = (await sendCommand(app, user, robot.uuid, 'idle')).json() as CommandItem
  t.not(created.expires_at, null)
  const res = await app.inject({ method: 'POST', url: `/robots/${robot.uuid}/commands/${created.id}/cancel`, headers: bearer(user.jwt) })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { status: 'cancelled', expires_at: null })
})

t.test('a queued command expires ttl after it was issued; once its queue is released, COMMAND_TIMEOUT after that', async (t) => {
  const app = await build(t, { COMMAND_TIMEOUT: String(TIMEOUT) })
  const { user, robot } = await ownedRobot(app)
  const ttl = 600
  const queued = await queueCommand(app, user, robot.uuid, 'auto', ttl)
  t.equal(Date.parse(queued.expires_at as string) - Date.parse(queued.created_at), ttl * 1000, 'queued: created_at + ttl')
  t.equal((await stored(app, queued.id)).expires_at, Date.parse(queued.expires_at as string), 'stored as the queue deadline')

  app.services.presence.set(robot.uuid, { data: 1, command: 1 })
  const before = Date.now()
  t.equal(await app.services.commands.releaseQueued(robot.uuid), 1, 'released')
  const after = Date.now()
  const sent = await item(app, user, robot.uuid, queued.id)
  t.equal(sent.status, 'pending')
  const expires = Date.parse(sent.expires_at as string)
  const { sent_at: sentAt } = await stored(app, queued.id)
  t.equal(expires, (sentAt as number) + TIMEOUT * 1000, 'sent_at + COMMAND_TIMEOUT')
  t.ok(sentAt !== null && sentAt >= before && sentAt <= after, 'sent_at is the release')

  t.equal(await app.services.commands.expireOverdue(new Date(expires - 1)), 0, 'the ttl no longer counts once it is sent')
  t.equal(await app.services.commands.expireOverdue(new Date(expires + 1)), 1, 'the sweep expires it at the expires_at shown')
  t.match(await item(app, user, robot.uuid, queued.id), { status: 'expired', expires_at: null })
})

t.test('the OpenAPI document says what expires_at means', async (t) => {
  const app = await build(t)
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  const text = JSON.stringify(doc.paths['/robots/{uuid}/commands'])
  t.match(text, /COMMAND_TIMEOUT after it was published/)
  t.notMatch(text, /null for the others/)
})
