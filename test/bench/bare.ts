// The benchmark's baseline: a bare Aedes 1.x broker that does what United's
// broker does on the wire, minus everything United adds (log-in, access
// rules, validation, storage, presence, retained statistics). For each
// publish on robots/{id}/data it
//   - acks at once: {"id": <frame id>, "status": "ok"} QoS 1 on robots/{id}/ack,
//   - republishes the frame as robots/{id}/stats QoS 0 (for the fan-out scenario).
// A minimal `POST /robots/robot/command {robot_uuid, command}` on its HTTP
// port publishes {id, command, issued_by, issued_at} QoS 1 on
// robots/{uuid}/commands and answers 201 {id}, so that the command-latency
// scenario runs the same client code on both sides.
//
// Broker options match United's (concurrency, drainTimeout, connectTimeout,
// client id length) so that the comparison isolates what United adds.
//
// Env: BARE_HOST (127.0.0.1), BARE_MQTT_PORT (0), BARE_HTTP_PORT (0). Prints
// `bare mqtt=<port> http=<port>` on stdout once both listen; SIGTERM/SIGINT close it.
import { randomUUID } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { createWebSocketStream, WebSocketServer } from 'ws'

const HOST = process.env.BARE_HOST ?? '127.0.0.1'
const MQTT_PORT = Number(process.env.BARE_MQTT_PORT ?? 0)
const HTTP_PORT = Number(process.env.BARE_HTTP_PORT ?? 0)
const DATA_TOPIC = /^robots\/([^/]+)\/data$/

function publish (topic: string, payload: Buffer, qos: 0 | 1): void {
  aedes.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, () => {})
}

const aedes: Aedes = await Aedes.createBroker({
  concurrency: 1000,
  drainTimeout: 10_000,
  connectTimeout: 10_000,
  maxClientsIdLength: 128,
  published (packet, client, done) {
    // client is null for the broker's own publishes (acks, stats, $SYS)
    if (client !== null && client !== undefined) {
      const m = DATA_TOPIC.exec(packet.topic)
      if (m !== null) {
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
        let id: unknown = null
        try {
          const frame = JSON.parse(payload.toString()) as { id?: unknown }
          id = typeof frame.id === 'string' ? frame.id : null
        } catch { /* acked with id null, like United */ }
        publish(`robots/${m[1]}/ack`, Buffer.from(JSON.stringify({ id, status: 'ok' })), 1)
        publish(`robots/${m[1]}/stats`, payload, 0)
      }
    }
    done(null)
  }
})

const tcp = createTcpServer({ noDelay: true }, (socket) => {
  socket.on('error', () => { socket.destroy() })
  aedes.handle(socket)
})

function readBody (req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => { resolve(body) })
    req.on('error', reject)
  })
}

function reply (res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

const http = createHttpServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0]?.replace(/\/+$/, '')
  if (req.method !== 'POST' || path !== '/robots/robot/command') {
    reply(res, 404, { statusCode: 404, error: 'Not Found', message: 'not found' })
    return
  }
  readBody(req).then((text) => {
    let body: { robot_uuid?: unknown, command?: unknown }
    try { body = JSON.parse(text) as typeof body } catch { body = {} }
    if (typeof body.robot_uuid !== 'string' || typeof body.command !== 'string') {
      reply(res, 400, { statusCode: 400, error: 'Bad Request', message: 'robot_uuid and command are required' })
      return
    }
    const command = { id: randomUUID(), command: body.command, issued_by: 'bench', issued_at: new Date().toISOString() }
    publish(`robots/${body.robot_uuid}/commands`, Buffer.from(JSON.stringify(command)), 1)
    reply(res, 201, { ...command, robot_uuid: body.robot_uuid, status: 'pending', created_at: command.issued_at })
  }, () => { res.destroy() })
})

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
http.on('upgrade', (req, socket, head) => {
  if ((req.url ?? '/').split('?')[0] !== '/mqtt') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    return
  }
  socket.on('error', () => { socket.destroy() })
  wss.handleUpgrade(req, socket, head, (ws) => {
    const stream = createWebSocketStream(ws)
    stream.on('error', () => { stream.destroy() })
    aedes.handle(stream, req)
  })
})

/** Listens with United's accept queue (4096), so that a connection storm meets the same kernel queue on both. */
function listen (server: { listen: (opts: { port: number, host: string, backlog: number }, cb: () => void) => unknown, once: (ev: 'error', cb: (err: Error) => void) => unknown, address: () => AddressInfo | string | null }, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port, host: HOST, backlog: 4096 }, () => {
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : port)
    })
  })
}

const mqttPort = await listen(tcp, MQTT_PORT)
const httpPort = await listen(http, HTTP_PORT)
process.stdout.write(`bare mqtt=${mqttPort} http=${httpPort}\n`)

let closing = false
function close (): void {
  if (closing) return
  closing = true
  for (const ws of wss.clients) ws.terminate()
  tcp.close()
  http.close()
  aedes.close(() => { process.exit(0) })
  setTimeout(() => { process.exit(0) }, 3000).unref()
}
process.on('SIGTERM', close)
process.on('SIGINT', close)
// The runner's stdin is a pipe: when the runner dies, so does the baseline.
process.stdin.on('end', close)
process.stdin.resume()
