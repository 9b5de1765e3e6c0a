// MQTT over WebSocket runs on websocket-stream (broker/websocket.ts), with
// ws 8 under it through the package.json override: websocket-stream itself
// declares ws 3, unmaintained, which an upgrade request with more headers
// than Node keeps crashes (CVE-2024-37890, fixed in ws 8.17.1).
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { connect as netConnect, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import t from 'tap'
import { WebSocket } from 'ws'
import { SLOW_CONSUMER_BYTES } from '../../broker/hooks.js'
import { attachWebSocket } from '../../broker/websocket.js'
import { createRobot } from '../factory.js'
import { build } from '../helper.js'
import { connectRobot, listen, sendFrame, subscribe } from '../mqtt.js'

const require = createRequire(import.meta.url)

t.test('the ws that websocket-stream loads is ws 8 or newer, the one the rest of United uses', async (t) => {
  const fromWebsocketStream = createRequire(require.resolve('websocket-stream'))
  const version = (fromWebsocketStream('ws/package.json') as { version: string }).version
  t.ok(Number(version.split('.')[0]) >= 8, `websocket-stream runs ws ${version}`)
  t.equal(fromWebsocketStream.resolve('ws'), require.resolve('ws'), 'one ws for the whole process')
})

/** Sends `request` on a raw TCP socket; resolves with all the server answers until it closes. */
async function rawHttp (port: number, request: string): Promise<string> {
  const socket = netConnect({ host: '127.0.0.1', port })
  socket.write(request)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => {})
  await once(socket, 'close')
  return Buffer.concat(chunks).toString('latin1')
}

t.test('an upgrade request with more headers than Node keeps is refused, and the broker goes on', async (t) => {
  const app = await build(t)
  await listen(app)
  const port = (app.server.address() as AddressInfo).port
  // Node keeps the first 2000 headers (maxHeadersCount), and the upgrade
  // headers come after them; short ones, so that all of it stays under
  // Node's 16 KiB header limit (over it, Node itself answers 431).
  const filler = 'a:\r\n'.repeat(2010)
  const answer = await rawHttp(port, 'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n' + filler +
    'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 4\d\d /, `refused: ${answer.split('\r\n')[0] ?? ''}`)

  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'the server is still up')
  const robot = await createRobot(app)
  const client = await connectRobot(t, app, robot, { transport: 'ws' })
  t.same(await subscribe(client, `robots/${robot.uuid}/ack`), [1])
  t.same(await sendFrame(client, robot.uuid, 'after-headers'), { id: 'after-headers', status: 'ok' }, 'MQTT over WebSocket still works')
})

t.test("the broker's WebSocket stream reports its backlog like a TCP socket", async (t) => {
  const server = createServer()
  const accepted = new Promise<Duplex>((resolve) => {
    const ws = attachWebSocket(server, (stream: Duplex, _req: IncomingMessage) => { resolve(stream) }, { maxPayload: 1024 * 1024 })
    t.teardown(() => { ws.close(); server.close() })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/mqtt`, 'mqtt')
  t.teardown(() => { client.terminate() })
  let received = 0
  client.on('message', (data: Buffer) => { received += data.length })
  await once(client, 'open')
  const stream = await accepted
  t.equal(stream.writableHighWaterMark, SLOW_CONSUMER_BYTES, "the TCP listener's high-water mark")
  t.equal(stream.writableLength, 0)
  t.equal(stream.writableNeedDrain, false)

  // A reader that stops: the kernel's buffers fill, then the stream's own.
  client.pause()
  const chunk = Buffer.alloc(64 * 1024, 1)
  let written = 0
  while (stream.write(chunk)) {
    written += chunk.length
    if (written > 256 * 1024 * 1024) break // a stream that never says "full" fails below
  }
  written += chunk.length
  t.equal(stream.writableNeedDrain, true, 'write() said full, and writableNeedDrain says so too')
  t.ok(stream.writableLength >= SLOW_CONSUMER_BYTES, `the backlog is visible: ${stream.writableLength} bytes`)

  client.resume()
  await once(stream, 'drain')
  t.equal(stream.writableNeedDrain, false, 'drained')
  while (received < written) await new Promise((resolve) => { setTimeout(resolve, 10) })
  t.equal(received, written, 'every byte arrived')
})
