// docs/protocol.md §4.1, "what is stored is what was validated": a frame whose JSON
// repeats a key is read as JSON.parse reads it (the last one wins) by the
// validator, the ack, the REST history and the database's own JSON functions
// alike, on SQLite and on PostgreSQL.
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { createRobot, createStaff, type TestRobot, type TestUser } from '../factory.js'
import { bearer, build, pgBase } from '../helper.js'
import { connectRobot, messageWhere, suback, TRANSPORTS } from '../mqtt.js'

const VALID = '{"speed":1.5,"position_x":10,"position_y":20,"angle_theta":0.5,"datetime":"2024-05-01 12:00:00"}'

interface Setup { app: FastifyInstance, robot: TestRobot, staff: TestUser, client: MqttClient }

async function setup (t: Test, transport: 'tcp' | 'ws'): Promise<Setup> {
  const app = await build(t)
  const robot = await createRobot(app)
  const staff = await createStaff(app)
  const client = await connectRobot(t, app, robot, { transport })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  return { app, robot, staff, client }
}

/** Publishes a raw payload and resolves with the next ack. */
async function publishRaw (s: Setup, payload: string): Promise<Record<string, unknown>> {
  const [ack] = await Promise.all([
    messageWhere(s.client, `robots/${s.robot.uuid}/ack`, () => true),
    s.client.publishAsync(`robots/${s.robot.uuid}/data`, payload, { qos: 1 })
  ])
  return ack
}

async function history (s: Setup): Promise<{ status: number, items: Array<{ frame_id: string, type: number, data: Record<string, unknown> }> }> {
  const res = await s.app.inject({ method: 'GET', url: `/robots/${s.robot.uuid}/frames`, headers: bearer(s.staff.jwt) })
  return { status: res.statusCode, items: res.statusCode === 200 ? res.json().items : [] }
}

/** What the database's own JSON functions read of each stored frame. */
async function stored (s: Setup): Promise<Array<{ frame_id: string, type: number, speed: string | null, data_type: string }>> {
  const sql = pgBase === undefined
    ? "SELECT f.frame_id, f.type, CAST(json_extract(f.data, '$.speed') AS TEXT) AS speed, json_type(f.data) AS data_type FROM frames f JOIN robots r ON r.id = f.robot_id WHERE r.uuid = ? ORDER BY f.frame_id"
    : 'SELECT f.frame_id, f.type, f.data->>\'speed\' AS speed, jsonb_typeof(f.data::jsonb) AS data_type FROM frames f JOIN robots r ON r.id = f.robot_id WHERE r.uuid = ? ORDER BY f.frame_id'
  const [rows] = await s.app.db.sequelize.query(sql, { replacements: [s.robot.uuid] }) as [Array<{ frame_id: string, type: number, speed: string | number | null, data_type: string }>, unknown]
  return rows.map((r) => ({ frame_id: r.frame_id, type: Number(r.type), speed: r.speed === null ? null : String(Number(r.speed)), data_type: r.data_type }))
}

for (const transport of TRANSPORTS) {
  t.test(`${transport}: a repeated data key: the last one, which was validated, is what is stored`, async (t) => {
    const s = await setup(t, transport)
    const ack = await publishRaw(s, `{"id":"a","type":1,"data":{"speed":"<b>x</b>","injected":1},"data":${VALID}}`)
    t.same(ack, { id: 'a', status: 'ok' })
    await s.app.services.frameWriter.flush()
    const h = await history(s)
    t.equal(h.status, 200)
    t.same(h.items.map((i) => i.data), [JSON.parse(VALID)], 'REST: the valid data')
    t.same(await stored(s), [{ frame_id: 'a', type: 1, speed: '1.5', data_type: 'object' }], 'the database reads the valid data too')
  })

  t.test(`${transport}: a first "data": null or a string before a valid one`, async (t) => {
    const s = await setup(t, transport)
    t.same(await publishRaw(s, `{"id":"n","type":1,"data":null,"data":${VALID}}`), { id: 'n', status: 'ok' })
    t.same(await publishRaw(s, `{"id":"s","type":1,"data":"a string","data":${VALID}}`), { id: 's', status: 'ok' })
    await s.app.services.frameWriter.flush()
    const h = await history(s)
    t.equal(h.status, 200, 'the history answers 200')
    t.same(h.items.map((i) => i.frame_id).sort(), ['n', 's'], 'both are stored')
    t.ok(h.items.every((i) => i.data.speed === 1.5), 'with the validated data')
    t.same((await stored(s)).map((r) => [r.frame_id, r.speed, r.data_type]), [['n', '1.5', 'object'], ['s', '1.5', 'object']])
  })

  t.test(`${transport}: the last of a repeated valid data wins over an invalid last one: refused`, async (t) => {
    const s = await setup(t, transport)
    const ack = await publishRaw(s, `{"id":"v","type":1,"data":${VALID},"data":{"speed":"<b>x</b>"}}`)
    t.equal(ack.status, 'error', 'the last data is the one validated, and it is invalid')
    t.equal(ack.id, 'v')
    await s.app.services.frameWriter.flush()
    t.same(await stored(s), [], 'nothing is stored')
  })

  t.test(`${transport}: repeated id and type keys: the ack and the database name the same, last ones`, async (t) => {
    const s = await setup(t, transport)
    t.same(await publishRaw(s, `{"id":"first","id":"second","type":1,"data":${VALID}}`), { id: 'second', status: 'ok' }, 'the ack names the last id')
    const geo = '{"latitude":1,"longitude":2,"datetime":"2024-05-01 12:00:00"}'
    t.same(await publishRaw(s, `{"id":"t","type":1,"type":2,"data":${geo}}`), { id: 't', status: 'ok' }, 'a geo frame (type 2, the last)')
    t.equal((await publishRaw(s, `{"id":"u","type":2,"type":1,"data":${geo}}`)).status, 'error', 'type 2 then 1: read as a position frame, which geo data is not')
    await s.app.services.frameWriter.flush()
    const rows = await stored(s)
    t.same(rows.map((r) => [r.frame_id, r.type]), [['second', 1], ['t', 2]], 'ids and types as acked')
    const h = await history(s)
    t.same(h.items.map((i) => [i.frame_id, i.type]).sort(), [['second', 1], ['t', 2]])
  })

  t.test(`${transport}: a repeated key inside data: the database's JSON functions read the validated value`, async (t) => {
    const s = await setup(t, transport)
    const payload = '{"id":"d","type":1,"data":{"speed":"<b>x</b>","speed":2.5,"position_x":10,"position_y":20,"angle_theta":0.5,"datetime":"2024-05-01 12:00:00"}}'
    t.same(await publishRaw(s, payload), { id: 'd', status: 'ok' })
    const refused = '{"id":"e","type":1,"data":{"speed":2.5,"speed":"<b>x</b>","position_x":10,"position_y":20,"angle_theta":0.5,"datetime":"2024-05-01 12:00:00"}}'
    t.equal((await publishRaw(s, refused)).status, 'error', 'a valid value followed by an invalid one: refused')
    await s.app.services.frameWriter.flush()
    t.same(await stored(s), [{ frame_id: 'd', type: 1, speed: '2.5', data_type: 'object' }], 'json_extract / ->> give 2.5, not the string')
    const h = await history(s)
    t.equal(h.items[0]?.data.speed, 2.5, 'REST gives 2.5')
  })
}
