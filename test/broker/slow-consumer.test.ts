// A subscriber that stops reading (a frozen browser tab, a stuck dashboard)
// must never delay robots' acks or other users' statistics. The frozen
// clients are written by hand with mqtt-packet, so that they can stop reading
// for real: once the kernel's buffers and the broker's high-water mark are
// full, the broker must drop their statistics rather than wait for them.
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { SLOW_CONSUMER_BYTES } from '../../broker/hooks.js'
import { build } from '../helper.js'
import { createRobot, createUser, grant, type TestRobot, type TestUser } from '../factory.js'
import { brokerUrl, connectRobot, connectUser, listen, messageWhere, positionFrame, sendFrame, suback, TRANSPORTS, type Transport } from '../mqtt.js'

const WINDOW = 200

/**
 * Bytes a connection that is never read swallows before the broker sees any
 * backlog: the kernel's send buffer (autotuned up to the maximum of
 * tcp_wmem) and the reader's receive buffer (the default of tcp_rmem).
 */
function kernelBuffers (): number {
  const sysctl = (name: string): number[] | undefined => {
    try {
      return readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number)
    } catch {
      return undefined
    }
  }
  return (sysctl('tcp_wmem')?.[2] ?? 4 * 1024 * 1024) + (sysctl('tcp_rmem')?.[1] ?? 128 * 1024)
}

interface Frozen {
  /** Stops reading: the connection's buffers fill up from now on. */
  freeze: () => void
  /** Reads again; resolves with how many stats it got, or null if the broker closed it meanwhile. */
  thaw: () => Promise<number | null>
}

/** A user's MQTT connection written by hand, subscribed to robots/+/stats at QoS 0. */
async function frozenSubscriber (t: Test, app: FastifyInstance, user: TestUser, transport: Transport): Promise<Frozen> {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  let stats = 0
  let closed = false
  parser.on('packet', (p: Packet) => { if (p.cmd === 'publish') stats++ })
  const packet = async <T extends Packet>(cmd: T['cmd']): Promise<T> => await new Promise<T>((resolve, reject) => {
    const onPacket = (p: Packet): void => {
      if (p.cmd !== cmd) return
      parser.off('packet', onPacket)
      resolve(p as T)
    }
    parser.on('packet', onPacket)
    parser.once('error', reject)
  })

  let send: (p: Packet) => void
  let pause: () => void
  let resume: () => void
  let whenClosed: Promise<unknown>
  if (transport === 'tcp') {
    const socket = tcpConnect(app.broker.port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    socket.on('error', () => {})
    await once(socket, 'connect')
    socket.on('data', (buf: Buffer) => { parser.parse(buf) })
    whenClosed = once(socket, 'close')
    send = (p) => { socket.write(mqttPacket.generate(p)) }
    pause = () => { socket.pause() }
    resume = () => { socket.resume() }
  } else {
    await listen(app)
    const ws = new WebSocket(brokerUrl(app, 'ws'), 'mqtt')
    t.teardown(() => { ws.terminate() })
    ws.on('error', () => {})
    await once(ws, 'open')
    ws.on('message', (data: Buffer) => { parser.parse(data) })
    whenClosed = once(ws, 'close')
    send = (p) => { ws.send(mqttPacket.generate(p)) }
    pause = () => { ws.pause() }
    resume = () => { ws.resume() }
  }
  void whenClosed.then(() => { closed = true })

  const connack = packet<mqttPacket.IConnackPacket>('connack')
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `frozen-${user.id}-${transport}`, keepalive: 0, username: user.username, password: Buffer.from(user.jwt) })
  t.equal((await connack).returnCode, 0, `the frozen user is connected over ${transport}`)
  const subAck = packet<mqttPacket.ISubackPacket>('suback')
  send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'robots/+/stats', qos: 0 }] })
  t.same((await subAck).granted, [0], 'and subscribed to robots/+/stats')

  return {
    freeze: pause,
    async thaw () {
      if (closed) return null
      resume()
      // PINGRESP is queued behind everything the broker wrote before it.
      const pong = packet('pingresp')
      send({ cmd: 'pingreq' })
      await Promise.race([pong, whenClosed])
      return closed ? null : stats
    }
  }
}

/** Sends frames 0…count-1 (position_x = index), `window` at a time in flight; resolves with the acks by frame id. */
async function sendMany (client: MqttClient, uuid: string, count: number, window: number): Promise<Map<string, { status: string }>> {
  const acks = new Map<string, { status: string }>()
  const waiting = new Map<string, () => void>()
  client.on('message', (topic, payload) => {
    if (topic !== `robots/${uuid}/ack`) return
    const ack = JSON.parse(payload.toString()) as { id: string, status: string }
    acks.set(ack.id, ack)
    waiting.get(ack.id)?.()
  })
  let next = 0
  async function lane (): Promise<void> {
    while (next < count) {
      const i = next++
      // 64 characters: the longest frame id there is.
      const id = `frame-${String(i).padStart(6, '0')}-`.padEnd(64, 'x')
      const acked = new Promise<void>((resolve) => { waiting.set(id, resolve) })
      client.publish(`robots/${uuid}/data`, positionFrame(id, { position_x: i }), { qos: 1 })
      await acked
      waiting.delete(id)
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  return acks
}

t.test('frozen subscribers delay neither robots’ acks nor other users’ stats (TCP and WebSocket at once)', async (t) => {
  const app = await build(t)
  const frozenUser = await createUser(app)
  const healthyUser = await createUser(app)
  const robots: TestRobot[] = []
  for (const _ of TRANSPORTS) {
    const robot = await createRobot(app)
    await grant(app, frozenUser, robot)
    await grant(app, healthyUser, robot)
    robots.push(robot)
  }

  const frozen: Frozen[] = []
  const healthy: MqttClient[] = []
  const robotClients: MqttClient[] = []
  for (const [i, transport] of TRANSPORTS.entries()) {
    frozen.push(await frozenSubscriber(t, app, frozenUser, transport))
    const client = await connectUser(t, app, healthyUser, { transport })
    t.same(await suback(client, 'robots/+/stats'), [1], `a healthy user subscribes over ${transport}`)
    healthy.push(client)
    const robotClient = await connectRobot(t, app, robots[i]!, { transport })
    t.same(await suback(robotClient, `robots/${robots[i]!.uuid}/ack`), [1], `a robot connects over ${transport}`)
    robotClients.push(robotClient)
  }

  // Enough frames that every frozen connection overflows its kernel buffers
  // and the broker's high-water mark, with a good margin.
  const first = messageWhere(healthy[0]!, `robots/${robots[0]!.uuid}/stats`, () => true)
  t.same(await sendFrame(robotClients[0]!, robots[0]!.uuid, 'sizing'), { id: 'sizing', status: 'ok' })
  const statsPacket = Buffer.byteLength(JSON.stringify(await first)) + `robots/${robots[0]!.uuid}/stats`.length + 8
  const total = Math.ceil((kernelBuffers() + SLOW_CONSUMER_BYTES) / statsPacket) + 1000
  const perRobot = Math.ceil(total / robots.length)
  t.comment(`${perRobot} frames from each of ${robots.length} robots; stats of about ${statsPacket} bytes`)

  for (const f of frozen) f.freeze()
  const lastStats = healthy.flatMap((client) => robots.map(async (robot) =>
    await messageWhere(client, `robots/${robot.uuid}/stats`, (s) => s.position_x === perRobot - 1, 120_000)))
  const acks = await Promise.all(robots.map(async (robot, i) => await sendMany(robotClients[i]!, robot.uuid, perRobot, WINDOW)))
  for (const [i, robotAcks] of acks.entries()) {
    t.equal(robotAcks.size, perRobot, `all frames of the ${TRANSPORTS[i]} robot are acked`)
    t.ok([...robotAcks.values()].every((a) => a.status === 'ok'), 'every ack is ok')
  }
  for (const stats of await Promise.all(lastStats)) t.equal(stats.position_x, perRobot - 1)
  t.pass('the healthy user receives the stats of every robot’s last frame over both transports')

  // The robots are still served, and the frozen subscribers were never waited
  // for: Aedes closes a subscriber it has been waiting for drainTimeout long.
  for (const [i, robot] of robots.entries()) {
    t.same(await sendFrame(robotClients[i]!, robot.uuid, 'after'), { id: 'after', status: 'ok' })
  }
  for (const [i, f] of frozen.entries()) {
    const got = await f.thaw()
    t.comment(`the frozen ${TRANSPORTS[i]} subscriber got ${got === null ? 'disconnected' : `${got} of ${perRobot * robots.length + 3} stats`}`)
    t.not(got, null, `the frozen ${TRANSPORTS[i]} subscriber is still connected: nothing waited for it`)
    t.ok(got !== null && got < perRobot * robots.length, `the frozen ${TRANSPORTS[i]} subscriber fell behind: its stats were dropped`)
  }
})
