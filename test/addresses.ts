// Requests and MQTT connections from chosen loopback source addresses
// (127.0.0.2, 127.0.0.3, …: the whole 127/8 is local), for the rules that
// count per client address (the log-in limits of docs/protocol.md §9).
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { brokerUrl, listen, TEST_CA, type Transport } from './mqtt.js'

export interface HttpAnswer { statusCode: number, headers: Record<string, string | string[] | undefined>, body: any }

/** A JSON request over a real socket bound to `from`. */
export async function httpFrom (app: FastifyInstance, from: string, method: string, url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  await listen(app)
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const body = payload === undefined ? undefined : JSON.stringify(payload)
  return await new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method,
      path: url,
      localAddress: from,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...headers }
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: parsed })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** An MQTT client whose connection leaves from `from` (TCP or WebSocket). Not yet connected. */
export function mqttFrom (t: Test, app: FastifyInstance, from: string, transport: Transport, opts: IClientOptions): MqttClient {
  const base: IClientOptions = { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts }
  let client: MqttClient
  if (transport === 'tcp') {
    client = new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: app.broker.port, localAddress: from }), base)
  } else if (transport === 'tls') {
    client = new mqtt.MqttClient(() => tlsConnect({ socket: netConnect({ host: '127.0.0.1', port: app.broker.tlsPort as number, localAddress: from }), host: '127.0.0.1', ca: TEST_CA }), base)
  } else {
    client = mqtt.connect(brokerUrl(app, 'ws'), { ...base, wsOptions: { ...(opts.wsOptions ?? {}), localAddress: from } as IClientOptions['wsOptions'] })
  }
  t.teardown(() => { client.end(true) })
  return client
}

/** The CONNACK return code of a CONNECT from `from`: 0 when it connected (then the client is closed). */
export async function connackFrom (t: Test, app: FastifyInstance, from: string, transport: Transport, opts: IClientOptions): Promise<number> {
  if (transport === 'ws') await listen(app)
  const client = mqttFrom(t, app, from, transport, opts)
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { client.end(true); resolve(0) })
    client.once('error', (err: Error & { code?: number }) => {
      if (typeof err.code === 'number') resolve(err.code)
      else reject(err)
    })
  })
}
