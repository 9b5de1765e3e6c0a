// MQTT over TLS (docs/operations.md §3): the same log-in and rules as plain MQTT, a bad
// certificate or key file stops the start naming it (exit 78), and SIGHUP
// swaps the certificate without dropping a connection. The certificates are
// test/fixtures/tls/'s.
import { once } from 'node:events'
import { copyFileSync, writeFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { SLOW_CONSUMER_BYTES } from '../../broker/hooks.js'
import { createTlsListener } from '../../broker/tls.js'
import { loadConfig } from '../../src/config.js'
import { createRobot, createUser } from '../factory.js'
import { build, TEST_JWT_SECRET } from '../helper.js'
import { connect, connectRobot, connectUser, refusedWith, robotToken, sendFrame, suback, TEST_CA, TLS_FIXTURES, TLS_SETTINGS } from '../mqtt.js'
import { run, SERVER, startServer, tempDir } from '../process/spawn.js'

const BAD_CREDENTIALS = 4

/** The SHA-256 fingerprint of the certificate a new TLS handshake on `port` gets. */
async function servedFingerprint (port: number): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: TEST_CA })
  await once(socket, 'secureConnect')
  const fingerprint = socket.getPeerCertificate().fingerprint256
  socket.destroy()
  return fingerprint
}

/** Copies of the first fixture pair in `dir`, and `renew()`, which overwrites them with the second (a renewal in place). */
function renewableCertificate (dir: string): { cert: string, key: string, renew: () => void } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  copyFileSync(TLS_FIXTURES.cert, cert)
  copyFileSync(TLS_FIXTURES.key, key)
  return { cert, key, renew: () => { copyFileSync(TLS_FIXTURES.cert2, cert); copyFileSync(TLS_FIXTURES.key2, key) } }
}

async function fingerprintOf (certFile: string): Promise<string> {
  const { X509Certificate } = await import('node:crypto')
  const { readFileSync } = await import('node:fs')
  return new X509Certificate(readFileSync(certFile)).fingerprint256
}

t.test('robots and users log in over TLS with the same rules as over TCP; TCP keeps working beside it', async (t) => {
  const app = await build(t, TLS_SETTINGS)
  t.ok(app.broker.tlsPort !== undefined && app.broker.tlsPort > 0, 'a TLS port')
  const robot = await createRobot(app)
  const other = await createRobot(app)
  const user = await createUser(app)
  const client = await connectRobot(t, app, robot, { transport: 'tls' })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1], 'its own ack topic')
  t.same(await suback(client, `robots/${other.uuid}/ack`), [128], "another robot's: 0x80")
  t.same(await sendFrame(client, robot.uuid, 'over-tls'), { id: 'over-tls', status: 'ok' }, 'a frame is stored and acked')
  const watcher = await connectUser(t, app, user, { transport: 'tls' })
  t.same(await suback(watcher, `robots/${robot.uuid}/data`), [128], 'a user may not read data')
  t.equal(await refusedWith(t, app, { transport: 'tls', username: robot.uuid, password: 'f'.repeat(64) }), BAD_CREDENTIALS, 'a bad token: CONNACK 4')
  t.equal(await refusedWith(t, app, { transport: 'tls', username: user.username, password: 'not-a-jwt' }), BAD_CREDENTIALS)
  const plain = await connectRobot(t, app, robot, { transport: 'tcp', clientId: 'plain' })
  t.equal(plain.connected, true, 'plain TCP beside it')
  t.equal(await servedFingerprint(app.broker.tlsPort as number), await fingerprintOf(TLS_FIXTURES.cert), 'the configured certificate is served')
})

t.test('a client that does not trust the certificate, or speaks plain MQTT to the TLS port, gets nothing and harms nothing', async (t) => {
  const app = await build(t, TLS_SETTINGS)
  const robot = await createRobot(app)
  const untrusting = tlsConnect({ host: '127.0.0.1', port: app.broker.tlsPort as number })
  const [err] = await once(untrusting, 'error') as [Error & { code?: string }]
  t.match(err.code, /SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/, 'the handshake fails on the client')
  // A plain MQTT CONNECT (protocol level 4, client id "x") on the TLS port: the socket is closed, no CONNACK.
  const socket = netConnect({ host: '127.0.0.1', port: app.broker.tlsPort as number }, () => { socket.write(Buffer.from('100d00044d5154540402001e000178', 'hex')) })
  const answers: Buffer[] = []
  socket.on('data', (d: Buffer) => answers.push(d))
  socket.on('error', () => {})
  await once(socket, 'close')
  t.notOk(Buffer.concat(answers).includes(Buffer.from([0x20, 0x02])), 'plain MQTT on the TLS port gets no CONNACK, the socket is closed')
  const client = await connectRobot(t, app, robot, { transport: 'tls' })
  t.equal(client.connected, true, 'the server is still serving')
})

t.test('the three settings go together, and a bad file is refused naming it', async (t) => {
  const dir = tempDir(t)
  const garbage = join(dir, 'garbage.pem')
  writeFileSync(garbage, 'not a certificate\n')
  const base = { NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: 'sqlite::memory:' }
  const refuse = (env: Record<string, string>, pattern: RegExp, what: string): void => {
    t.throws(() => loadConfig({ ...base, ...env }), pattern, what)
  }
  refuse({ MQTT_TLS_PORT: '8883' }, /missing TLS_CERT_FILE, TLS_KEY_FILE/, 'a port alone')
  refuse({ TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: TLS_FIXTURES.key }, /missing MQTT_TLS_PORT/, 'files without a port')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.cert }, /missing TLS_KEY_FILE/, 'no key')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: join(dir, 'nope.pem'), TLS_KEY_FILE: TLS_FIXTURES.key }, /TLS_CERT_FILE \S*nope\.pem cannot be read \(ENOENT\)/, 'a missing certificate')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: join(dir, 'nope.key') }, /TLS_KEY_FILE \S*nope\.key cannot be read/, 'a missing key')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: garbage, TLS_KEY_FILE: TLS_FIXTURES.key }, /TLS_CERT_FILE \S*garbage\.pem holds no PEM certificate/, 'a garbage certificate')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: garbage }, /TLS_KEY_FILE \S*garbage\.pem holds no PEM private key/, 'a garbage key')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: TLS_FIXTURES.key2 }, /TLS_KEY_FILE \S*server2\.key does not match the certificate in TLS_CERT_FILE \S*server\.pem/, 'a key of another certificate')
  refuse({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.key, TLS_KEY_FILE: TLS_FIXTURES.cert }, /TLS_CERT_FILE \S*server\.key holds no PEM certificate/, 'the two swapped')
  t.doesNotThrow(() => loadConfig({ ...base, MQTT_TLS_PORT: '8883', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: TLS_FIXTURES.key }), 'a good pair')
})

t.test('the server refuses to start with a bad TLS file: exit 78, the file named, no key material printed', async (t) => {
  const res = await run(SERVER, [], { cwd: tempDir(t), env: { HTTP_PORT: '0', MQTT_PORT: '0', MQTT_TLS_PORT: '0', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: TLS_FIXTURES.key2 } })
  t.equal(res.code, 78)
  t.match(res.stderr, /TLS_KEY_FILE \S*server2\.key does not match/)
  t.notMatch(res.stderr + res.stdout, /PRIVATE KEY|at .*\.js:\d+/, 'no key and no stack trace')
})

t.test('reload: a renewed certificate is served to new handshakes, open connections stay, a bad file keeps the old one', async (t) => {
  const { cert, key, renew } = renewableCertificate(tempDir(t))
  const app = await build(t, { MQTT_TLS_PORT: '0', TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
  const port = app.broker.tlsPort as number
  const robot = await createRobot(app)
  const client = await connectRobot(t, app, robot, { transport: 'tls' })
  t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
  let closes = 0
  client.on('close', () => { closes++ })
  t.equal(await servedFingerprint(port), await fingerprintOf(TLS_FIXTURES.cert), 'before: the first certificate')

  renew()
  t.equal(app.broker.reloadTls(), true, 'reloaded')
  t.equal(await servedFingerprint(port), await fingerprintOf(TLS_FIXTURES.cert2), 'new handshakes get the renewed certificate')
  t.same(await sendFrame(client, robot.uuid, 'after-reload'), { id: 'after-reload', status: 'ok' }, 'the open connection still works')
  const fresh = await connect(t, app, { transport: 'tls', username: robot.uuid, password: await robotToken(app, robot), clientId: 'fresh' })
  t.equal(fresh.connected, true, 'a new MQTT client connects')

  writeFileSync(key, 'garbage')
  t.equal(app.broker.reloadTls(), false, 'a bad key is not loaded')
  t.equal(await servedFingerprint(port), await fingerprintOf(TLS_FIXTURES.cert2), 'the renewed certificate stays in use')
  t.same(await sendFrame(client, robot.uuid, 'after-bad-reload'), { id: 'after-bad-reload', status: 'ok' })
  t.equal(closes, 0, 'the connection never closed')
})

t.test('SIGHUP to the server process reloads the certificate and does not stop it', async (t) => {
  const cwd = tempDir(t)
  const { cert, key, renew } = renewableCertificate(cwd)
  const server = await startServer(t, { cwd, env: { MQTT_TLS_PORT: '0', TLS_CERT_FILE: cert, TLS_KEY_FILE: key } })
  const port = Number(/MQTT \(TLS\)\s+mqtts:\/\/[^:]+:(\d+)/.exec(server.output().stdout)?.[1])
  t.ok(port > 0, 'the banner names the TLS port')
  t.equal(await servedFingerprint(port), await fingerprintOf(TLS_FIXTURES.cert))
  renew()
  server.child.kill('SIGHUP')
  const deadline = Date.now() + 5000
  let served = ''
  while (Date.now() < deadline && served !== await fingerprintOf(TLS_FIXTURES.cert2)) {
    await new Promise((resolve) => { setTimeout(resolve, 50) })
    served = await servedFingerprint(port)
  }
  t.equal(served, await fingerprintOf(TLS_FIXTURES.cert2), 'the renewed certificate after SIGHUP')
  t.equal(server.child.exitCode, null, 'the server is still running')
  const health = await fetch(`${server.url}/health`)
  t.equal(health.status, 200)
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0, 'SIGTERM still stops it cleanly')
})

t.test('TLS sockets get the TCP listener\'s write high-water mark, which slow-consumer protection counts on', async (t) => {
  const accepted: Array<{ writableHighWaterMark: number }> = []
  const log = { info () {}, error () {}, warn () {}, debug () {} } as unknown as Parameters<typeof createTlsListener>[1]['log']
  const listener = createTlsListener({ certFile: TLS_FIXTURES.cert, keyFile: TLS_FIXTURES.key }, { highWaterMark: SLOW_CONSUMER_BYTES, log }, (socket) => { accepted.push(socket) })
  await new Promise<void>((resolve) => { listener.server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { listener.server.close() })
  const address = listener.server.address()
  await servedFingerprint(typeof address === 'object' && address !== null ? address.port : 0)
  t.equal(accepted[0]?.writableHighWaterMark, SLOW_CONSUMER_BYTES, `${SLOW_CONSUMER_BYTES} bytes, not TLS' default 16 KiB`)
})
