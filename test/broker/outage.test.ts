// The database goes away and comes back: frames meanwhile get `retry` acks,
// nothing acked is lost, nothing crashes, and ingestion resumes by itself.
// On PostgreSQL (TEST_DATABASE_URL) the outage is real: the test database
// stops accepting connections and every session of the app is terminated.
// On the embedded SQLite, which cannot go away, the frame INSERT fails with
// the driver's connection error instead.
import pg from 'pg'
import t from 'tap'
import { bearer, build, onFrameInsert, pgBase } from '../helper.js'
import { ownedRobot } from '../factory.js'
import { connectRobot, positionFrame, subscribe } from '../mqtt.js'

async function admin (sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgBase })
  await client.connect()
  try { await client.query(sql) } finally { await client.end() }
}

t.test('a database outage costs retries, not frames, and ingestion resumes by itself', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/ack`)
  const acks = new Map<string, { status: string, retry?: boolean }>()
  let onAck: (() => void) | undefined
  client.on('message', (_topic, payload) => {
    const ack = JSON.parse(payload.toString()) as { id: string, status: string, retry?: boolean }
    acks.set(ack.id, ack)
    onAck?.()
  })
  const sendAndWait = async (ids: string[]): Promise<void> => {
    const pending = new Set(ids)
    const done = new Promise<void>((resolve) => { onAck = () => { for (const id of ids) if (acks.has(id)) pending.delete(id); if (pending.size === 0) resolve() } })
    for (const id of ids) acks.delete(id)
    for (const id of ids) client.publish(`robots/${robot.uuid}/data`, positionFrame(id), { qos: 1 })
    await done
  }

  await sendAndWait(['before-1', 'before-2'])
  t.same([acks.get('before-1')?.status, acks.get('before-2')?.status], ['ok', 'ok'])

  let restore: () => Promise<void>
  if (pgBase !== undefined) {
    const name = new URL(app.config.DATABASE_URL).pathname.slice(1)
    await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`)
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid()`)
    restore = async () => { await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`) }
  } else {
    const put = onFrameInsert(t, app, async () => {
      const err = new Error('SQLITE_CANTOPEN: unable to open database file') as Error & { code: string }
      err.code = 'SQLITE_CANTOPEN'
      throw err
    })
    restore = async () => { put() }
  }
  t.teardown(async () => { await restore() })

  const during = Array.from({ length: 20 }, (_, i) => `during-${i}`)
  await sendAndWait(during)
  t.same(during.map((id) => acks.get(id)?.status), during.map(() => 'error'), 'frames during the outage are refused…')
  t.ok(during.every((id) => acks.get(id)?.retry === true), '…with retry: true')
  t.ok(client.connected, 'the robot stays connected')
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'the process is alive')

  await restore()
  // The robot resends what was refused; new frames flow again, on new connections.
  await sendAndWait([...during, 'after-1'])
  t.same([...during, 'after-1'].map((id) => acks.get(id)?.status), [...during, 'after-1'].map(() => 'ok'), 'ingestion resumed by itself')

  const res = await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=1000`, headers: bearer(user.jwt) })
  const ids = (res.json().items as Array<{ frame_id: string }>).map((f) => f.frame_id).sort()
  t.same(ids, ['after-1', 'before-1', 'before-2', ...during].sort(), 'every acked frame stored, once')
})
