// docs/protocol.md §14 in cluster mode: a robot's model changed through one node
// applies to the robot connected to another within about a second (the
// robotModelChanged event relayed over Redis, src/cluster/events.ts): its
// type-4 frames are checked with the new model on the open connection, and
// its statistics, published by the node that holds it, drop the old fields.
import type { MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { CLEANER_MODEL } from '../factory.js'
import { eventually, messageWhere, subscribe } from '../mqtt.js'
import { api, clusterTest, login, mqttTo, robotTokenAt, type Node } from './nodes.js'

interface Ack { id: string | null, status: 'ok' | 'error', errors?: string[] }
const DT = '2026-12-07T10:15:30Z'

const MOWER = { name: 'mower', telemetry: { blade_rpm: { type: 'integer', minimum: 0, maximum: 4000 }, grass_mm: { type: 'number' } }, commands: {} }

async function send (client: MqttClient, uuid: string, id: string, data: Record<string, unknown>): Promise<Ack> {
  const [ack] = await Promise.all([
    messageWhere<Ack>(client, `robots/${uuid}/ack`, (a) => a.id === id),
    client.publishAsync(`robots/${uuid}/data`, JSON.stringify({ id, type: 4, data }), { qos: 1 })
  ])
  return ack
}

async function modelOn (t: Test, node: Node, staff: string, body: unknown): Promise<{ name: string, version: number }> {
  const res = await api(node, 'POST', '/admin/api/models', staff, body)
  t.equal(res.status, 201, `model ${JSON.stringify(res.body).slice(0, 120)}`)
  return { name: res.body.name, version: res.body.version }
}

clusterTest('a model changed through A applies within about a second to the robot connected to B, and the other way round', {}, async (t, { nodes: [a, b], staff }) => {
  const cleaner = await modelOn(t, a, staff, CLEANER_MODEL)
  const mower = await modelOn(t, b, staff, MOWER)
  const created = await api(a, 'POST', '/admin/api/robots', staff, { serial: 'CL-M1', model: cleaner })
  t.equal(created.status, 201)
  const robot = { uuid: created.body.uuid as string, serial: 'CL-M1', secret: created.body.token as string }
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'watcher', password: 'watcher-password' })
  t.equal((await api(a, 'PUT', `/admin/api/robots/${robot.uuid}/users/${user.body.id as number}`, staff)).status, 204)

  // The robot on B (over WebSocket too: a second connection of it), the watcher on A.
  const client = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot), clientId: 'tcp' })
  const wsClient = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot), clientId: 'ws', ws: true })
  for (const c of [client, wsClient]) t.same(await subscribe(c, `robots/${robot.uuid}/ack`), [1])
  const watcher = await mqttTo(t, a, { username: 'watcher', password: await login(a, 'watcher', 'watcher-password') })
  t.same(await subscribe(watcher, `robots/${robot.uuid}/stats`, 0), [0])

  const first = messageWhere<Record<string, unknown>>(watcher, `robots/${robot.uuid}/stats`, (s) => s.mode === 'eco')
  t.same(await send(client, robot.uuid, 'c1', { datetime: DT, brush_rpm: 1200, mode: 'eco' }), { id: 'c1', status: 'ok' })
  t.match(await first, { brush_rpm: 1200, mode: 'eco' }, 'the stats carry the model fields, on the other node too')
  t.same((await send(client, robot.uuid, 'c2', { datetime: DT, blade_rpm: 10 })).errors, ['data.blade_rpm is not a field of model cleaner v1'])

  // Changed through A: B's open connections follow (polled, no timing assert).
  const pruned = messageWhere<Record<string, unknown>>(watcher, `robots/${robot.uuid}/stats`, (s) => !('mode' in s), 10_000)
  t.equal((await api(a, 'PATCH', `/admin/api/robots/${robot.uuid}`, staff, { model: mower })).status, 200)
  for (const [name, c] of [['tcp', client], ['ws', wsClient]] as const) {
    let n = 0
    const ack = await eventually(async () => await send(c, robot.uuid, `m-${name}-${n++}`, { datetime: DT, blade_rpm: 3000 }), (ack) => ack.status === 'ok', 10_000)
    t.equal(ack.status, 'ok', `${name} on B: a mower field is accepted after the change on A`)
    t.same((await send(c, robot.uuid, `old-${name}`, { datetime: DT, brush_rpm: 5 })).errors, ['data.brush_rpm is not a field of model mower v1'], `${name} on B: a cleaner field is refused`)
  }
  const stats = await pruned
  t.notOk('brush_rpm' in stats, 'the stats B publishes drop the fields of the old model')

  // And back through B, for a robot connected to A.
  const other = await api(b, 'POST', '/admin/api/robots', staff, { serial: 'CL-M2', model: mower })
  const onA = await mqttTo(t, a, { username: other.body.uuid, password: await robotTokenAt(a, { serial: 'CL-M2', secret: other.body.token }) })
  t.same(await subscribe(onA, `robots/${other.body.uuid as string}/ack`), [1])
  t.same(await send(onA, other.body.uuid, 'o1', { datetime: DT, grass_mm: 35.5 }), { id: 'o1', status: 'ok' })
  t.equal((await api(b, 'PATCH', `/admin/api/robots/${other.body.uuid as string}`, staff, { model: null })).status, 200)
  let n = 0
  const refused = await eventually(async () => await send(onA, other.body.uuid, `o-${n++}`, { datetime: DT, grass_mm: 1 }), (ack) => ack.status === 'error', 10_000)
  t.same(refused.errors, ['this robot has no model: type 4 (telemetry) frames need one'], 'a robot on A without a model after the change on B')
})

clusterTest('a model change made while Redis was dead (its event lost) reaches the robot on the other node once Redis is back', {}, async (t, { setup, nodes: [a, b], staff }) => {
  const cleaner = await modelOn(t, a, staff, CLEANER_MODEL)
  const mower = await modelOn(t, a, staff, MOWER)
  const created = await api(a, 'POST', '/admin/api/robots', staff, { serial: 'CL-M3', model: cleaner })
  const robot = { uuid: created.body.uuid as string, serial: 'CL-M3', secret: created.body.token as string }
  const client = await mqttTo(t, b, { username: robot.uuid, password: await robotTokenAt(b, robot) })
  t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1])
  t.same(await send(client, robot.uuid, 'r1', { datetime: DT, mode: 'eco' }), { id: 'r1', status: 'ok' })

  await setup.redis.stop()
  t.equal((await api(a, 'PATCH', `/admin/api/robots/${robot.uuid}`, staff, { model: mower })).status, 200, 'changed through A while Redis is dead')
  t.same((await send(client, robot.uuid, 'r2', { datetime: DT, blade_rpm: 1 })).errors, ['data.blade_rpm is not a field of model cleaner v1'], 'B has not heard of it yet')
  await setup.redis.restart()
  let n = 0
  const ack = await eventually(async () => await send(client, robot.uuid, `r-${n++}`, { datetime: DT, blade_rpm: 1 }), (ack) => ack.status === 'ok', 15_000)
  t.equal(ack.status, 'ok', 'B read the robot\'s row again once Redis was back')
  t.same((await send(client, robot.uuid, 'r3', { datetime: DT, mode: 'eco' })).errors, ['data.mode is not a field of model mower v1'])
})
