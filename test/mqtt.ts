// Real mqtt.js clients against the real broker, over TCP or WebSocket.
import { readFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Test } from 'tap'
import type { TestRobot, TestUser } from './factory.js'

export type Transport = 'tcp' | 'ws' | 'tls'
/** The transports every app has; TLS needs an app built with TLS_SETTINGS (TLS_TRANSPORTS). */
export const TRANSPORTS: Array<'tcp' | 'ws'> = ['tcp', 'ws']
export const TLS_TRANSPORTS: Transport[] = ['tcp', 'ws', 'tls']

/** The test-only certificate files (test/fixtures/tls/README.md). */
export const TLS_FIXTURES = {
  ca: fileURLToPath(new URL('./fixtures/tls/ca.pem', import.meta.url)),
  cert: fileURLToPath(new URL('./fixtures/tls/server.pem', import.meta.url)),
  key: fileURLToPath(new URL('./fixtures/tls/server.key', import.meta.url)),
  cert2: fileURLToPath(new URL('./fixtures/tls/server2.pem', import.meta.url)),
  key2: fileURLToPath(new URL('./fixtures/tls/server2.key', import.meta.url))
}
/** Overrides for build(t, …): MQTT over TLS on an ephemeral port with the test certificate. */
export const TLS_SETTINGS: Record<string, string> = { MQTT_TLS_PORT: '0', TLS_CERT_FILE: TLS_FIXTURES.cert, TLS_KEY_FILE: TLS_FIXTURES.key }
export const TEST_CA = readFileSync(TLS_FIXTURES.ca)

export function brokerUrl (app: FastifyInstance, transport: Transport): string {
  if (transport === 'tcp') return `mqtt://127.0.0.1:${app.broker.port}`
  if (transport === 'tls') {
    if (app.broker.tlsPort === undefined) throw new Error('this app has no MQTT over TLS: build it with TLS_SETTINGS')
    return `mqtts://127.0.0.1:${app.broker.tlsPort}`
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return `ws://127.0.0.1:${port}/mqtt`
}

const listening = new WeakMap<FastifyInstance, Promise<unknown>>()
/** Makes sure the HTTP server listens (for WebSocket tests); concurrent callers share one listen. */
export async function listen (app: FastifyInstance): Promise<void> {
  if (app.server.listening) return
  let started = listening.get(app)
  if (started === undefined) listening.set(app, started = app.listen({ host: '127.0.0.1', port: 0 }))
  await started
}

export interface ConnectOptions extends IClientOptions { transport?: Transport }

/** Connects and resolves on CONNACK 0; closed on teardown. */
export async function connect (t: Test, app: FastifyInstance, opts: ConnectOptions = {}): Promise<MqttClient> {
  const transport = opts.transport ?? 'tcp'
  if (transport === 'ws') await listen(app)
  return await opened(t, mqtt.connect(brokerUrl(app, transport), { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...(transport === 'tls' ? { ca: TEST_CA } : {}), ...opts }))
}

/**
 * A client just created: TCP_NODELAY on its socket, ended on teardown;
 * resolves on CONNACK 0. TCP_NODELAY, as most MQTT clients set it (mqtt.js
 * does not): without it a client that acks a message and then publishes
 * waits ~40 ms for the server's delayed ACK before its PUBLISH leaves
 * (Nagle), so a test that sends 1,063 frames one after the other took 49 s
 * over TCP, 3 s over WebSocket.
 */
export async function opened (t: Test, client: MqttClient): Promise<MqttClient> {
  ;(client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true)
  t.teardown(() => { client.end(true) })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => { resolve() })
    client.once('error', reject)
    client.once('close', () => { reject(new Error('closed before CONNACK')) })
  })
  return client
}

/** Connects expecting a refusal; resolves with the CONNACK return code. */
export async function refusedWith (t: Test, app: FastifyInstance, opts: ConnectOptions = {}): Promise<number | undefined> {
  const transport = opts.transport ?? 'tcp'
  if (transport === 'ws') await listen(app)
  const client = mqtt.connect(brokerUrl(app, transport), { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...(transport === 'tls' ? { ca: TEST_CA } : {}), ...opts })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { reject(new Error('connected, but a refusal was expected')) })
    client.once('error', (err: Error & { code?: number }) => { resolve(err.code) })
  })
}

export async function robotToken (app: FastifyInstance, robot: TestRobot): Promise<string> {
  return (await app.services.robotTokens.obtain(robot.serial, robot.secret)).access_token
}

export async function connectRobot (t: Test, app: FastifyInstance, robot: TestRobot, opts: ConnectOptions = {}): Promise<MqttClient> {
  return await connect(t, app, { username: robot.uuid, password: await robotToken(app, robot), ...opts })
}

export async function connectUser (t: Test, app: FastifyInstance, user: TestUser, opts: ConnectOptions = {}): Promise<MqttClient> {
  return await connect(t, app, { username: user.username, password: user.jwt, ...opts })
}

export async function subscribe (client: MqttClient, topic: string | string[], qos: 0 | 1 = 1): Promise<number[]> {
  const granted = await client.subscribeAsync(topic, { qos })
  return granted.map((g) => g.qos)
}

/** The next message on `topic` (exact match), parsed as JSON. */
export async function nextMessage<T = Record<string, unknown>> (client: MqttClient, topic: string | ((t: string) => boolean), timeoutMs = 5000): Promise<T> {
  const match = typeof topic === 'string' ? (t: string) => t === topic : topic
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { client.off('message', onMessage); reject(new Error(`no message on ${String(topic)} within ${timeoutMs} ms`)) }, timeoutMs)
    function onMessage (t: string, payload: Buffer): void {
      if (!match(t)) return
      clearTimeout(timer)
      client.off('message', onMessage)
      resolve(JSON.parse(payload.toString()) as T)
    }
    client.on('message', onMessage)
  })
}

/** Collects every message on matching topics until stopped. */
export function collect (client: MqttClient, match: (topic: string) => boolean): Array<{ topic: string, body: Record<string, unknown> }> {
  const seen: Array<{ topic: string, body: Record<string, unknown> }> = []
  client.on('message', (topic, payload) => {
    if (match(topic)) seen.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> })
  })
  return seen
}

/** Resolves when the client's connection closes. */
export async function closed (client: MqttClient): Promise<void> {
  if (!client.connected) return
  await new Promise<void>((resolve) => { client.once('close', () => { resolve() }) })
}

export function positionFrame (id: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ id, type: 1, data: { speed: 1.5, position_x: 10, position_y: 20, angle_theta: 0.5, datetime: '2024-05-01 12:00:00', ...extra } })
}

/** The next message on `topic` whose body satisfies `match` (messages before it are skipped). */
export async function messageWhere<T = Record<string, unknown>> (client: MqttClient, topic: string, match: (body: T) => boolean, timeoutMs = 5000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { client.off('message', onMessage); reject(new Error(`no matching message on ${topic} within ${timeoutMs} ms`)) }, timeoutMs)
    function onMessage (t: string, payload: Buffer): void {
      if (t !== topic) return
      const body = JSON.parse(payload.toString()) as T
      if (!match(body)) return
      clearTimeout(timer)
      client.off('message', onMessage)
      resolve(body)
    }
    client.on('message', onMessage)
  })
}

/**
 * Calls `probe` until `done` accepts its result (yielding to the event loop
 * between calls), for state written asynchronously; fails after `timeoutMs`.
 */
export async function eventually<T> (probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`)
    await new Promise((resolve) => { setTimeout(resolve, 10) })
  }
}

/** Publishes a position frame at QoS 1 and resolves with its ack (the robot must be subscribed to its ack topic). */
export async function sendFrame (client: MqttClient, uuid: string, id: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const [ack] = await Promise.all([
    messageWhere(client, `robots/${uuid}/ack`, (body) => body.id === id),
    client.publishAsync(`robots/${uuid}/data`, positionFrame(id, extra), { qos: 1 })
  ])
  return ack
}

/** Resolves when the broker closes this client's connection; socket errors on the way are expected. */
export async function closedByServer (client: MqttClient): Promise<void> {
  client.on('error', () => {})
  await closed(client)
}

/**
 * The SUBACK return codes of one SUBSCRIBE, refusals (0x80 = 128) included
 * (`subscribe` rejects when any filter is refused).
 */
export async function suback (client: MqttClient, topic: string | string[], qos: 0 | 1 = 1): Promise<number[]> {
  try {
    return await subscribe(client, topic, qos)
  } catch (err) {
    const granted = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted
    if (granted === undefined) throw err
    return granted.map((g) => typeof g === 'number' ? g : g.qos)
  }
}

export interface HoldingClient {
  /** The ids of the messages received on the topic, in order. */
  received: string[]
  /** Sends the PUBACKs of the first `n` (default: all) messages not yet PUBACKed. */
  puback: (n?: number) => void
}

/**
 * A client of the broker on `port` subscribed (QoS 1, clean session) to
 * `topic`, which holds the PUBACK of each message until `puback()` lets it
 * go, and records each message's JSON `id`. Written with mqtt-packet on a
 * raw socket: mqtt.js stops reading while it holds one PUBACK back. Closed on
 * teardown.
 */
export async function holdingPubacks (t: Test, port: number, username: string, password: string, topic: string): Promise<HoldingClient> {
  const received: string[] = []
  const held: number[] = []
  const socket = createConnection({ host: '127.0.0.1', port })
  t.teardown(() => { socket.destroy() })
  socket.setNoDelay(true)
  const send = (p: Record<string, unknown>): void => { socket.write(mqttPacket.generate(p as unknown as Packet)) }
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  socket.on('data', (buf: Buffer) => { parser.parse(buf) })
  socket.on('error', () => {})
  const subscribed = new Promise<void>((resolve, reject) => {
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connack' && p.returnCode !== 0) reject(new Error(`CONNACK ${String(p.returnCode)}`))
      if (p.cmd === 'connack' && p.returnCode === 0) send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
      if (p.cmd === 'suback') resolve()
      if (p.cmd === 'publish' && p.topic === topic) {
        received.push(String((JSON.parse(p.payload.toString()) as { id?: unknown }).id))
        held.push(p.messageId as number)
      }
    })
  })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `holding-${username}`, keepalive: 60, username, password: Buffer.from(password) })
  await subscribed
  return { received, puback: (n = held.length) => { for (const messageId of held.splice(0, n)) send({ cmd: 'puback', messageId }) } }
}
