// What the broker speaks (docs/protocol.md §1): MQTT
// 3.1 and 3.1.1. Aedes 1.x refuses any other protocol level with CONNACK 1
// (unacceptable protocol version, MQTT-3.1.2-2), MQTT 5 included: pinned
// here byte by byte, over TCP and WebSocket.
import { connect as netConnect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { WebSocket } from 'ws'
import { createRobot } from '../factory.js'
import { build } from '../helper.js'
import { brokerUrl, connect, listen, robotToken, TRANSPORTS, type Transport } from '../mqtt.js'

/** Sends one CONNECT and resolves with the first bytes the broker answers. */
async function firstAnswer (app: FastifyInstance, transport: Transport, connectPacket: Buffer): Promise<Buffer> {
  if (transport === 'tcp') {
    return await new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port: app.broker.port }, () => { socket.write(connectPacket) })
      socket.once('data', (data: Buffer) => { socket.destroy(); resolve(data) })
      socket.once('error', reject)
    })
  }
  await listen(app)
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(brokerUrl(app, 'ws'), ['mqtt'])
    ws.on('open', () => { ws.send(connectPacket) })
    ws.once('message', (data: Buffer) => { ws.terminate(); resolve(Buffer.from(data)) })
    ws.once('error', reject)
  })
}

const connectOf = (protocolVersion: 3 | 4 | 5, username: string, password: string): Buffer => mqttPacket.generate({
  cmd: 'connect',
  protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
  protocolVersion,
  clean: true,
  clientId: `v${protocolVersion}`,
  keepalive: 30,
  username,
  password: Buffer.from(password),
  ...(protocolVersion === 5 ? { properties: {} } : {})
})

for (const transport of TRANSPORTS) {
  t.test(`${transport}: MQTT 5 gets CONNACK 1 (unacceptable protocol version), even with valid credentials`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    const answer = await firstAnswer(app, transport, connectOf(5, robot.uuid, await robotToken(app, robot)))
    t.same([...answer.subarray(0, 4)], [0x20, 0x02, 0x00, 0x01], 'CONNACK, remaining length 2, no session, return code 1')
  })

  t.test(`${transport}: MQTT 3.1 and 3.1.1 connect`, async (t) => {
    const app = await build(t)
    const robot = await createRobot(app)
    for (const version of [3, 4] as const) {
      const answer = await firstAnswer(app, transport, connectOf(version, robot.uuid, await robotToken(app, robot)))
      t.same([...answer.subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], `protocol level ${version}: CONNACK 0`)
    }
    const client = await connect(t, app, { transport, protocolVersion: 3, protocolId: 'MQIsdp', username: robot.uuid, password: await robotToken(app, robot) })
    t.equal(client.connected, true, 'an mqtt.js client on MQTT 3.1 connects')
  })
}
