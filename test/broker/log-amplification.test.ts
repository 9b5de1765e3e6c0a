// Anything a client controls is cut short in log lines (docs/operations.md §7, the
// wave-1 review's log amplification): 64 KB client ids, usernames and topics
// cost a bounded log line, and over-long client ids get CONNACK 2 before any
// credential is looked at.
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loggerOptions } from '../../src/logger.js'
import { createRobot, createUser } from '../factory.js'
import { testConfig, testDatabase } from '../helper.js'
import { connect, connectRobot, refusedWith, robotToken, suback, TRANSPORTS } from '../mqtt.js'

/** The real app, logging at `debug` into a counter of bytes and lines. */
async function loggingApp (t: Test): Promise<{ app: FastifyInstance, log: { bytes: number, lines: string[] } }> {
  const db = await testDatabase()
  const log = { bytes: 0, lines: [] as string[] }
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      log.bytes += chunk.length
      log.lines.push(chunk.toString('utf8'))
      done()
    }
  })
  const app = await buildApp(testConfig(db.url, { LOG_LEVEL: 'debug', AUTH_FAIL_LIMIT: '0' }), { ...loggerOptions('debug'), stream })
  t.teardown(async () => { await app.close(); await db.drop() })
  return { app, log }
}

const HUGE = 'x'.repeat(60_000) // about 64 KB: the longest string an MQTT packet holds is 65,535 bytes

for (const transport of TRANSPORTS) {
  t.test(`${transport}: 64 KB client ids, usernames and topics cost short log lines`, async (t) => {
    const { app, log } = await loggingApp(t)
    const robot = await createRobot(app)
    const user = await createUser(app)
    const token = await robotToken(app, robot)
    const before = log.bytes
    const attempts = 20
    for (let i = 0; i < attempts; i++) {
      t.equal(await refusedWith(t, app, { transport, clientId: HUGE, username: HUGE, password: 'wrong' }), 2, 'a 64 KB client id: CONNACK 2')
      t.equal(await refusedWith(t, app, { transport, clientId: `c${i}`, username: HUGE, password: 'f'.repeat(64) }), 4, 'a 64 KB username: CONNACK 4')
    }
    const client = await connectRobot(t, app, robot, { transport, clientId: 'ok' })
    t.same(await suback(client, `robots/${robot.uuid}/${HUGE}`), [128], 'a 64 KB topic: refused')
    const userClient = await connect(t, app, { transport, username: user.username, password: user.jwt })
    t.same(await suback(userClient, HUGE), [128])
    t.ok(token.length > 0)
    const written = log.bytes - before
    const perAttempt = written / (attempts * 2)
    t.ok(perAttempt < 2048, `at most 2 KiB of log per refused CONNECT (${perAttempt.toFixed(0)} bytes)`)
    const longest = Math.max(...log.lines.map((l) => l.length))
    t.ok(longest < 4096, `no log line over 4 KiB (longest ${longest})`)
    t.notOk(log.lines.some((l) => l.includes('x'.repeat(300))), 'no long run of the client-controlled text')
  })
}
