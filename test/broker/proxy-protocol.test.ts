// MQTT_PROXY_PROTOCOL (docs/operations.md §4, "The load balancer"):
// behind a TCP balancer the PROXY header names the client, and the log-in
// limits of docs/protocol.md §9 count that address, not the balancer's. A connection without
// a valid header is closed; without the setting a header is not MQTT.
import { connect as netConnect, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import mqtt, { type IClientOptions } from 'mqtt'
import t, { type Test } from 'tap'
import { parseProxyHeader } from '../../broker/proxy-protocol.js'
import { createRobot } from '../factory.js'
import { build } from '../helper.js'
import { eventually, opened, robotToken, sendFrame, subscribe } from '../mqtt.js'

const v1 = (source: string): Buffer => Buffer.from(`PROXY ${source.includes(':') ? 'TCP6' : 'TCP4'} ${source} ${source.includes(':') ? '::1' : '127.0.0.1'} 40000 1883\r\n`)

/** A version 2 PROXY header: PROXY over TCP from an IPv4 `source`, or LOCAL (the balancer's own check). */
function v2 (source: string | null): Buffer {
  const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]
  if (source === null) return Buffer.from([...signature, 0x20, 0x00, 0x00, 0x00])
  return Buffer.from([...signature, 0x21, 0x11, 0x00, 0x0c, ...source.split('.').map(Number), 127, 0, 0, 1, 0x9c, 0x40, 0x07, 0x5b])
}

/** The first bytes of a connection to the MQTT port: `header`, then MQTT. */
function socketWith (app: FastifyInstance, header: Buffer): Socket {
  const socket = netConnect({ host: '127.0.0.1', port: app.broker.port })
  socket.setNoDelay(true)
  if (header.length > 0) socket.write(header)
  return socket
}

/** CONNACK's return code (0: connected) of a CONNECT sent after `header`, or 'closed' when the server closed first. */
async function connack (t: Test, app: FastifyInstance, header: Buffer, opts: IClientOptions): Promise<number | 'closed'> {
  const client = new mqtt.MqttClient(() => socketWith(app, header), { reconnectPeriod: 0, connectTimeout: 8000, protocolVersion: 4, ...opts })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve) => {
    client.once('connect', () => { resolve(0) })
    client.once('error', (err: Error & { code?: number }) => { resolve(typeof err.code === 'number' ? err.code : 'closed') })
    client.once('close', () => { resolve('closed') })
  })
}

t.test('the header is framed and parsed: versions 1 and 2, IPv4 and IPv6, LOCAL and UNKNOWN; anything else is refused', async (t) => {
  t.same(parseProxyHeader(Buffer.concat([v1('10.1.2.3'), Buffer.from([0x10, 0x20])])), { length: v1('10.1.2.3').length, address: '10.1.2.3' }, 'v1 TCP4, MQTT after it')
  t.same(parseProxyHeader(v1('2001:db8::7')), { length: v1('2001:db8::7').length, address: '2001:db8::7' }, 'v1 TCP6')
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { length: 15, address: undefined }, 'v1 UNKNOWN: no address')
  t.same(parseProxyHeader(v2('10.4.5.6')), { length: 28, address: '10.4.5.6' }, 'v2 IPv4')
  t.same(parseProxyHeader(v2(null)), { length: 16, address: undefined }, 'v2 LOCAL: no address')
  const six = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21, 0x00, 0x24, 0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 0x09, ...new Array<number>(15).fill(0), 1, 0x9c, 0x40, 0x07, 0x5b])
  t.same(parseProxyHeader(six), { length: 52, address: '2001:db8::9' }, 'v2 IPv6, zeros compressed')
  t.equal(parseProxyHeader(v1('10.1.2.3').subarray(0, 20)), 'more', 'a v1 header in two pieces')
  t.equal(parseProxyHeader(v2('10.4.5.6').subarray(0, 14)), 'more', 'a v2 header in two pieces')
  t.equal(parseProxyHeader(Buffer.from([0x10, 0x1a, 0x00, 0x04])), 'bad', 'MQTT without a header')
  t.equal(parseProxyHeader(Buffer.from('PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n')), 'bad', 'a v1 header without an address')
  t.equal(parseProxyHeader(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)), 'bad', 'a v1 line longer than 107 bytes')
  const huge = v2('10.4.5.6')
  huge.writeUInt16BE(60_000, 14)
  t.equal(parseProxyHeader(huge), 'bad', 'a v2 header that announces 60,000 bytes')
})

t.test('MQTT_PROXY_PROTOCOL=true: the header names the client; the log-in limits count that address, not the balancer\'s', async (t) => {
  const app = await build(t, { MQTT_PROXY_PROTOCOL: 'true', AUTH_FAIL_LIMIT: '3', AUTH_FAIL_WINDOW: '60' })
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)

  // A robot through the balancer: connected, and its frames stored and acked.
  const client = await opened(t, new mqtt.MqttClient(() => socketWith(app, v1('10.1.1.1')), { reconnectPeriod: 0, protocolVersion: 4, username: robot.uuid, password: token }))
  await subscribe(client, `robots/${robot.uuid}/ack`)
  t.match(await sendFrame(client, robot.uuid, 'pp-1'), { id: 'pp-1', status: 'ok' }, 'a frame through a PROXY connection is stored and acked')

  // An attacker behind the same balancer fails until its address is blocked…
  for (let i = 0; i < 3; i++) t.equal(await connack(t, app, v1('10.6.6.6'), { username: robot.uuid, password: 'wrong' }), 4, `attempt ${i + 1} from 10.6.6.6: bad credentials`)
  t.equal(await connack(t, app, v1('10.6.6.6'), { username: robot.uuid, password: token }), 5, '10.6.6.6 is blocked, even with the right token')
  // …and the robots behind the balancer, on the same TCP peer, are not.
  t.equal(await connack(t, app, v1('10.1.1.2'), { username: robot.uuid, password: token, clientId: 'other-address' }), 0, 'another client address behind the balancer still logs in')
  t.equal(await connack(t, app, v2('10.1.1.3'), { username: robot.uuid, password: token, clientId: 'v2-address' }), 0, 'a v2 header as well')
  t.equal(await connack(t, app, v2('10.6.6.6'), { username: robot.uuid, password: token, clientId: 'v2-blocked' }), 5, 'the blocked address is blocked whichever version names it')
  const audit = await eventually(async () => (await app.services.audit.list({})).items, (items) => items.some((e) => e.action === 'auth.login_blocked'))
  t.same([...new Set(audit.filter((e) => e.action === 'robot.login_failed' || e.action === 'auth.login_blocked').map((e) => e.ip))], ['10.6.6.6'], 'the audit log names the address from the header, never the balancer\'s')
})

t.test('MQTT_PROXY_PROTOCOL=true: no header, a broken one, or one that never ends: the connection is closed', async (t) => {
  const app = await build(t, { MQTT_PROXY_PROTOCOL: 'true' })
  const robot = await createRobot(app)
  const token = await robotToken(app, robot)
  t.equal(await connack(t, app, Buffer.alloc(0), { username: robot.uuid, password: token }), 'closed', 'MQTT without a header: closed, no CONNACK')
  t.equal(await connack(t, app, Buffer.from('PROXY TCP4 x y 1 2\r\n'), { username: robot.uuid, password: token }), 'closed', 'a header that names no address: closed')
  t.equal(await connack(t, app, v2(null), { username: robot.uuid, password: token }), 0, 'a LOCAL header (the balancer\'s own check) then MQTT: served, from the peer\'s address')
  const slow = socketWith(app, Buffer.from('PROXY TCP4 10.1.'))
  const started = Date.now()
  await new Promise<void>((resolve) => { slow.once('close', () => { resolve() }) })
  t.ok(Date.now() - started >= 4000, `a header that never ends: closed after ${Date.now() - started} ms`)
})

t.test('without MQTT_PROXY_PROTOCOL a PROXY header is not MQTT: closed', async (t) => {
  const app = await build(t)
  const robot = await createRobot(app)
  t.equal(await connack(t, app, v1('10.1.1.1'), { username: robot.uuid, password: await robotToken(app, robot) }), 'closed')
})
