// The example robot's fleet mode (`--fleet N --credentials FILE`) as a real
// process against a real United: failures are shown (each robot's error once,
// and again when it changes), `connected M of N` follows the connections, the
// summary counts every error, `--count` ends even when a robot is refused,
// and Ctrl-C ends it at once, whatever it was waiting for.
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { bearer } from '../helper.js'
import { createRobot, createStaff, type TestRobot } from '../factory.js'
import { connectRobot } from '../mqtt.js'
import { tempDir } from './spawn.js'
import { credentialsFile, linesOf, serve, spawnRobot, type RobotProcess } from './robot-spawn.js'

/** Every summary line's count of failed connection attempts, in order. */
function failedAttempts (output: string): number[] {
  return [...output.matchAll(/\d+ robots, \d+ connected: .*?(\d+) failed connection attempts?/g)].map((m) => Number(m[1]))
}

/**
 * The robot exits soon after the signal. The limit is generous next to the 2 s
 * it stops in, and far below what each case took before (forever, or 10 s).
 */
async function exitsAfter (t: Test, r: RobotProcess, signal: NodeJS.Signals): Promise<number | null> {
  r.child.kill(signal)
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([r.exit(), new Promise<'late'>((resolve) => { timer = setTimeout(() => { resolve('late') }, 5000) })])
  clearTimeout(timer)
  t.not(code, 'late', `exits within 5 s of ${signal}:\n${r.output()}`)
  return code === 'late' ? null : code
}

/** A TCP server that accepts connections and never answers: an HTTP server or MQTT broker that hangs. */
async function silentServer (t: Test): Promise<{ port: number, connected: Promise<unknown> }> {
  const sockets: Socket[] = []
  const server: Server = createServer((s) => { sockets.push(s) })
  const connected = once(server, 'connection')
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  const address = server.address()
  return { port: typeof address === 'object' && address !== null ? address.port : 0, connected }
}

t.test('--fleet runs several robots from a credentials file; --count reached by all: exit 0', async (t) => {
  const { app, url } = await serve(t)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  const r = spawnRobot(t, ['--fleet', '3', '--credentials', credentialsFile(t, robots), '--url', url, '--interval', '20', '--count', '4'])
  t.equal(await r.exit(), 0, 'exits 0')
  t.match(r.output(), /connected 3 of 3\n/)
  t.match(r.output(), /done: \d+ frames acked ok, 0 errors\n/)
  const staff = await createStaff(app)
  for (const robot of robots) {
    const frames = (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=100`, headers: bearer(staff.jwt) })).json().items as Array<{ type: number }>
    t.equal(frames.filter((f) => f.type === 1).length, 4, `${robot.serial}: its 4 position frames`)
    t.ok(frames.some((f) => f.type === 3), `${robot.serial}: and a hardware frame`)
  }
})

t.test('a robot whose secret was rotated: its error is printed once, not per retry, and counted; connected 2 of 3; Ctrl-C exits 1', async (t) => {
  const { app, url } = await serve(t)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  const dead = robots[1] as TestRobot
  await app.services.robots.rotate(dead.uuid, { actor: null }, 0)
  const r = spawnRobot(t, ['--fleet', '3', '--credentials', credentialsFile(t, robots), '--url', url, '--interval', '50', '--summary', '0.3'])
  await r.waitFor(/connected 2 of 3\n/)
  // Four attempts at least (backoff 0.5, 1, 2 s), seen in the summary.
  while ((failedAttempts(r.output()).at(-1) ?? 0) < 4) await once(r.child.stdout!, 'data')
  const code = await exitsAfter(t, r, 'SIGINT')
  t.equal(code, 1, 'a run with errors exits 1')

  const lines = linesOf(r.output(), dead.serial)
  t.equal(lines.filter((l) => l.includes('obtain_token answered 401 UNITED_CREDENTIAL_REVOKED')).length, 1, `the 401 is printed once:\n${r.output()}`)
  t.ok(lines.length < (failedAttempts(r.output()).at(-1) ?? 0), 'fewer lines than attempts')
  for (let i = 1; i < lines.length; i++) t.not(lines[i], lines[i - 1], 'a line is printed again only when the error changes')
  for (const ok of [robots[0] as TestRobot, robots[2] as TestRobot]) t.same(linesOf(r.output(), ok.serial), [], `${ok.serial}: no error, nothing printed`)
  t.match(r.output(), new RegExp(`3 robots, 2 connected: \\d+ frames sent, \\d+ acked ok; \\d+ errors \\(\\d+ failed connection attempts\\); failing: ${dead.serial}\\n`), 'the summary counts the errors and names the failing robot')
  t.match(r.output(), /done: \d+ frames acked ok, \d+ errors \(\d+ failed connection attempts\)\n/)
})

t.test('a changed error is printed again: 401, then 429 once the serial is blocked', async (t) => {
  const { app, url } = await serve(t, { AUTH_FAIL_LIMIT: '2' })
  const good = await createRobot(app)
  const wrong = await createRobot(app)
  const r = spawnRobot(t, ['--fleet', '2', '--credentials', credentialsFile(t, [good, { ...wrong, secret: 'not-the-secret-at-all' }]), '--url', url, '--interval', '50', '--summary', '0.3'])
  await r.waitFor(new RegExp(`${wrong.serial}: obtain_token answered 429`))
  while ((failedAttempts(r.output()).at(-1) ?? 0) < 3) await once(r.child.stdout!, 'data')
  await exitsAfter(t, r, 'SIGINT')
  const lines = linesOf(r.output(), wrong.serial)
  t.equal(lines.length, 2, `two lines for three attempts or more: the 401 (twice) and the 429:\n${lines.join('\n')}`)
  t.match(lines[0], /obtain_token answered 401/)
  t.match(lines[1], /obtain_token answered 429/)
})

t.test('--count with a refused robot: the others finish, the refused one gives up and says so, exit 1', async (t) => {
  const { app, url } = await serve(t)
  const robots = [await createRobot(app), await createRobot(app), await createRobot(app)]
  const dead = robots[2] as TestRobot
  await app.services.robots.rotate(dead.uuid, { actor: null }, 0)
  const r = spawnRobot(t, ['--fleet', '3', '--credentials', credentialsFile(t, robots), '--url', url, '--interval', '20', '--count', '5'])
  t.equal(await r.exit(), 1, 'exits 1: --count could not be reached')
  t.match(r.output(), new RegExp(`${dead.serial}: gave up: obtain_token answered 401 UNITED_CREDENTIAL_REVOKED`))
  t.match(r.output(), new RegExp(`done: \\d+ frames acked ok, 1 error \\(1 failed connection attempt\\); 1 of 3 gave up: ${dead.serial}\\n`))
  const staff = await createStaff(app)
  for (const robot of robots.slice(0, 2)) {
    const frames = (await app.inject({ method: 'GET', url: `/robots/${robot.uuid}/frames?limit=100`, headers: bearer(staff.jwt) })).json().items as Array<{ type: number }>
    t.equal(frames.filter((f) => f.type === 1).length, 5, `${robot.serial} sent its 5 position frames`)
  }
})

t.test('--count with a robot refused at MQTT CONNECT (CONNACK 5, its connections at the cap): it gives up, exit 1', async (t) => {
  const { app, url } = await serve(t, { MAX_CONNECTIONS_PER_ROBOT: '1' })
  const robot = await createRobot(app)
  await connectRobot(t, app, robot, { clientId: 'already-here' })
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--mqtt', `mqtt://127.0.0.1:${app.broker.port}`, '--interval', '20', '--count', '3'])
  t.equal(await r.exit(), 1)
  t.match(r.output(), /MQTT CONNACK 5: Not authorized; giving up/)
  t.match(r.output(), /done: 0 frames acked ok, 1 error \(1 failed connection attempt\); 1 of 1 gave up/)
})

t.test('--fleet 50 with 3 credentials is refused, and so is a malformed file', async (t) => {
  const { app, url } = await serve(t)
  const file = credentialsFile(t, [await createRobot(app), await createRobot(app), await createRobot(app)])
  const r = spawnRobot(t, ['--fleet', '50', '--credentials', file, '--url', url])
  t.equal(await r.exit(), 2)
  t.match(r.output(), /--fleet 50 asks for more robots than the 3 in \S+fleet\.json: run --fleet 3/)
  t.notMatch(r.output(), /connected/, 'nothing ran')

  const all = spawnRobot(t, ['--credentials', file, '--url', url, '--interval', '20', '--count', '2'])
  t.equal(await all.exit(), 0, 'without --fleet: every robot of the file')
  t.match(all.output(), /connected 3 of 3/)

  const dir = tempDir(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['object.json', { serial: 'a', token: 'b' }, /must hold a JSON array of \{"serial","token"\}/],
    ['entry.json', [{ serial: 'a', token: 'bbbbbbbb' }, { serial: 'b' }], /entry 2 is not \{"serial","token"\}/],
    ['twice.json', [{ serial: 'a', token: 'bbbbbbbb' }, { serial: 'a', token: 'cccccccc' }], /the serial a appears twice/],
    ['empty.json', [], /holds no credentials/]
  ]
  for (const [name, content, message] of cases) {
    writeFileSync(join(dir, name), JSON.stringify(content))
    const bad = spawnRobot(t, ['--credentials', join(dir, name), '--url', url])
    t.equal(await bad.exit(), 2, name)
    t.match(bad.output(), message, name)
  }
})

t.test('Ctrl-C while obtain_token hangs: the request is abandoned and the robot exits at once', async (t) => {
  const hung = await silentServer(t)
  const r = spawnRobot(t, ['--serial', 'SN-hang', '--token', 'whatever-secret', '--url', `http://127.0.0.1:${hung.port}`])
  await hung.connected
  t.equal(await exitsAfter(t, r, 'SIGINT'), 0, 'nothing failed: exit 0')
  t.match(r.output(), /done: 0 frames acked ok, 0 errors\n/)
})

t.test('Ctrl-C while the broker does not answer CONNECT: the connection is dropped and the robot exits at once', async (t) => {
  const { app, url } = await serve(t)
  const robot = await createRobot(app)
  const broker = await silentServer(t)
  const r = spawnRobot(t, ['--serial', robot.serial, '--token', robot.secret, '--url', url, '--mqtt', `mqtt://127.0.0.1:${broker.port}`])
  await broker.connected
  t.equal(await exitsAfter(t, r, 'SIGINT'), 0)
})

t.test('Ctrl-C in a fleet with a robot waiting to retry and the others streaming: it exits at once', async (t) => {
  const { app, url } = await serve(t)
  const good = await createRobot(app)
  const wrong = await createRobot(app)
  const r = spawnRobot(t, ['--fleet', '2', '--credentials', credentialsFile(t, [good, { ...wrong, secret: 'not-the-secret-at-all' }]), '--url', url, '--interval', '50', '--summary', '0.3'])
  await r.waitFor(/connected 1 of 2\n/)
  // The third failure: it now waits 2 s to try again.
  while ((failedAttempts(r.output()).at(-1) ?? 0) < 3) await once(r.child.stdout!, 'data')
  t.equal(await exitsAfter(t, r, 'SIGINT'), 1)
  t.match(r.output(), /done: /)
})
