// fp plugin 'broker': the embedded MQTT broker (Aedes) on TCP at MQTT_PORT
// and on WebSocket at /mqtt of the HTTP server, sharing one broker. It closes
// in preClose: stop accepting, finish the frames in flight, close clients.
import { createServer, type Server } from 'node:net'
import { Aedes, type Client } from 'aedes'
import fp from 'fastify-plugin'
import { createAccessCache } from './access-cache.js'
import { createKeyConnections } from './api-keys.js'
import { createAckSender } from './acks.js'
import { createAuthenticate } from './authenticate.js'
import { createCommandRelay } from './commands.js'
import { capConnections } from './connection-caps.js'
import { createDeliveryTracker } from './deliveries.js'
import { createAuthorizers, SLOW_CONSUMER_BYTES } from './hooks.js'
import { createIngest } from './ingest.js'
import { limitPacketSize } from './packet-limit.js'
import { createPresenceTracker } from './presence.js'
import { createRobotModels } from './robot-models.js'
import { indexRetained, writeFirst } from './retained.js'
import { isRevoked, markRevoked, principalOf, revokeClient, revokedSinceLogin, short } from './principal.js'
import { interceptRobotPublishes } from './robot-publishes.js'
import { createStats } from './stats.js'
import { acceptProxied, proxiedAddress } from './proxy-protocol.js'
import { createTakeover } from './takeover.js'
import { createTlsListener, type TlsListener } from './tls.js'
import { attachWebSocket } from './websocket.js'
import { ownChannel, robotTopic } from '../src/contract/topics.js'
import { createLocalCounter } from '../src/cluster/connections.js'
import { createLocalSessionRegistry } from '../src/cluster/sessions.js'

/**
 * A client's address: the socket's peer, or on a WebSocket behind a trusted
 * proxy (TRUST_PROXY) the address the proxy appended to X-Forwarded-For,
 * as Fastify reads request.ip for the REST API, or on the MQTT port behind a
 * TCP balancer (MQTT_PROXY_PROTOCOL) the address its PROXY header named.
 */
function clientAddress (client: Client, trustProxy: boolean): string | undefined {
  const req = client.req
  if (req !== undefined) {
    const forwarded = trustProxy ? req.headers['x-forwarded-for'] : undefined
    const list = Array.isArray(forwarded) ? forwarded.join(',') : forwarded
    const last = list?.split(',').map((a) => a.trim()).filter((a) => a !== '').pop()
    return last ?? req.socket?.remoteAddress
  }
  return proxiedAddress(client.conn) ?? (client.conn as { remoteAddress?: string }).remoteAddress
}

export interface BrokerHandle {
  /** The TCP port MQTT listens on (useful with MQTT_PORT=0). */
  port: number
  /** The port of MQTT over TLS, when MQTT_TLS_PORT is set. */
  tlsPort?: number
  /** Reads the TLS certificate and key again (what SIGHUP does); false when a file is bad (the old pair stays). */
  reloadTls: () => boolean
  connectedRobots: () => number
  connectedUsers: () => number
}

declare module 'fastify' {
  interface FastifyInstance { broker: BrokerHandle }
}

export default fp(async (fastify) => {
  const { config, services, cluster } = fastify
  const log = fastify.log.child({ module: 'broker' })
  // Internal publishes fail by the thousand while Redis is away in cluster
  // mode (statistics at 10 Hz per robot): one line per 10 s, with a count.
  let publishFailures = 0
  let publishLoggedAt = 0
  const publishFailed = (err: Error, topic: string): void => {
    publishFailures++
    const now = Date.now()
    if (now - publishLoggedAt < 10_000) return
    publishLoggedAt = now
    log.warn({ err: short(err.message, 200), topic: short(topic, 200), failures: publishFailures }, cluster !== null ? 'internal publishes failing (Redis unreachable?): statistics, presence and commands to other nodes wait for it' : 'internal publish failed')
    publishFailures = 0
  }
  // The largest MQTT packet accepted: frames over MAX_FRAME_BYTES still get
  // an error ack; packets this large only get their connection closed.
  const packetLimit = Math.max(config.MAX_FRAME_BYTES * 4, 1024 * 1024)

  const access = createAccessCache({ events: services.events, load: services.access, log })
  let aedes: Aedes | undefined
  const broker = (): Aedes => aedes as Aedes

  const publishBuffer = (topic: string, payload: Buffer, opts: { retain: boolean, qos: 0 | 1 }): void => {
    if (aedes === undefined || aedes.closed) return
    aedes.publish({ cmd: 'publish', topic, payload, qos: opts.qos, retain: opts.retain, dup: false }, (err) => {
      if (err !== undefined && err !== null) publishFailed(err, topic)
    })
  }
  const publish = (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }): void => {
    publishBuffer(topic, Buffer.from(JSON.stringify(payload)), opts)
  }
  // Cluster mode: presence is in Redis before it is published (retained.ts).
  const presenceWriter = cluster === null ? null : writeFirst(cluster.mqtt.storeRetainedNow, publishBuffer)

  /** An empty retained message deletes the retained one (MQTT-3.3.1-10). */
  const clearRetained = (topic: string): void => {
    if (aedes === undefined || aedes.closed) return
    aedes.publish({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }, () => {})
  }

  const stats = createStats({ publish })
  // Each robot's compiled model, loaded at CONNECT and swapped on robotModelChanged (robot-models.ts).
  const robotModels = createRobotModels({
    compile: services.models.compiled,
    // The statistics follow the new model; published by the node holding the robot (or the only node).
    swapped: (uuid, model) => { stats.model(uuid, model, cluster === null || presence.clientsOf(uuid).length > 0) },
    log
  })
  const presence = createPresenceTracker({
    services,
    publish: presenceWriter?.publish ?? publish,
    onChange: (uuid, flags) => { stats.connection(uuid, flags) },
    // docs/protocol.md §5.3: the commands queued for it go out now, oldest first.
    onCommandConnected: (uuid) => { commands.release(uuid) },
    log,
    ...(cluster === null ? {} : { cluster: { nodeId: cluster.nodeId, report: cluster.presence.report, get: cluster.presence.get } })
  })
  const acks = createAckSender({
    // Cluster mode: acks never go through the emitter (Redis), persistent sessions included.
    direct: cluster !== null,
    clientsOf: (uuid) => presence.connections(uuid),
    publish: (topic, payload) => {
      if (aedes === undefined || aedes.closed) return
      aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (err) => {
        if (err !== undefined && err !== null) publishFailed(err, topic)
      })
    }
  })
  const ingest = createIngest({
    services,
    sendAck: acks.send,
    onStored: (robot, data, checkedWith) => {
      // A type-4 frame checked under a model swapped since: only what fits the new one reaches the statistics.
      const model = robotModels.of(robot.uuid)
      stats.frame(robot.uuid, data, checkedWith === undefined || checkedWith === model ? undefined : model)
      presence.seen(robot.uuid)
    },
    modelOf: robotModels.of,
    maxFrameBytes: config.MAX_FRAME_BYTES,
    metrics: fastify.metrics,
    log
  })
  const commands = createCommandRelay({ services, publish, log })
  const authorizers = createAuthorizers({ access, log })
  const deliveries = createDeliveryTracker()

  const takeover = createTakeover({ cluster, log })
  aedes = await Aedes.createBroker({
    authenticate: capConnections(createAuthenticate({ services, addressOf: (client) => clientAddress(client, config.TRUST_PROXY), access, log, models: robotModels, robotAccepted: (uuid, state, model) => { stats.seed(uuid, state, model) } }), {
      caps: { user: config.MAX_CONNECTIONS_PER_USER, robot: config.MAX_CONNECTIONS_PER_ROBOT },
      counter: cluster?.connections ?? createLocalCounter(),
      held: takeover.held,
      refused: (client) => { const who = principalOf(client); if (who?.kind === 'user') access.release(who.id) },
      log
    }),
    ...authorizers,
    // A will is published only by the connection that still holds its client id (docs/protocol.md §11, §3.3).
    authorizePublish: takeover.authorizePublish(authorizers.authorizePublish),
    // Cluster mode: the emitter and persistence in Redis, and an id of this start's own.
    ...(cluster === null ? {} : { id: cluster.brokerId, mq: cluster.mqtt.mq, persistence: cluster.mqtt.persistence as unknown as NonNullable<Parameters<typeof Aedes.createBroker>[0]>['persistence'] }),
    authorizeForward: (client, packet) => deliveries.outgoing(client, authorizers.authorizeForward(client, packet)),
    // A subscriber that stops reading is disconnected after this long.
    drainTimeout: 10_000,
    connectTimeout: 10_000,
    concurrency: 1000,
    maxClientsIdLength: 128
  })
  interceptRobotPublishes(aedes, (client, packet, done) => {
    const who = principalOf(client)
    if (who?.kind !== 'robot') return false
    if (isRevoked(client)) {
      // Authorized just before the revocation, published after it: dropped.
      done(null)
      return true
    }
    const channel = ownChannel(packet.topic, who.uuid)
    if (channel === 'data') {
      // Backpressure: while the storage queue is full, this frame waits for a
      // place and Aedes reads no more from the robot's socket until `done`,
      // so memory stays bounded and no frame is dropped.
      const waiting = ingest.frame(who, packet.payload as Buffer)
      if (waiting === undefined) done(null)
      else void waiting.then(() => { done(null) })
      return true
    }
    if (channel === 'commands/ack') {
      commands.acknowledged(who, packet.payload as Buffer)
      done(null)
      return true
    }
    return false
  })
  // PUBACKs of clean sessions reach the 'ack' event with their command (deliveries.ts).
  deliveries.wrap((aedes as unknown as { persistence: Parameters<typeof deliveries.wrap>[0] }).persistence)
  // Before any client connects: a subscription finds its retained messages by
  // topic. In cluster mode the retained messages live in Redis, for every node.
  if (cluster === null) indexRetained((aedes as unknown as { persistence: Parameters<typeof indexRetained>[0] }).persistence)
  takeover.attach(aedes)
  // Persistent sessions expire and are capped per identity (in Redis in cluster mode, started with the cluster).
  const sessions = cluster?.sessions ?? createLocalSessionRegistry({
    drop: async (id) => { await (aedes as unknown as { persistence: { cleanSubscriptions: (client: { id: string }) => Promise<unknown> } }).persistence.cleanSubscriptions({ id }) },
    ttlSeconds: config.MQTT_SESSION_TTL,
    cap: config.MQTT_SESSIONS_PER_IDENTITY,
    log
  })
  if (cluster === null) sessions.start()
  // Aedes reports what it cannot recover from (a persistence that failed) as 'error': logged, never a crash.
  ;(aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) => { log.error({ err: short(err.message, 300) }, 'MQTT broker error') })

  aedes.on('client', (client: Client) => {
    // Revoked between its log-in and now (the log-in itself was checked): closed at once.
    if (revokedSinceLogin(client)) {
      void closeRevoked(client)
      return
    }
    takeover.connected(client)
    if (client.clean === false) sessions.connected(client.id)
    const who = principalOf(client)
    if (who?.kind !== 'robot') return
    acks.connected(client, who.uuid)
    presence.connected(client, who)
  })
  aedes.on('clientDisconnect', (client: Client) => {
    takeover.disconnected(client)
    if (client.clean === false) sessions.disconnected(client.id)
    const who = principalOf(client)
    if (who?.kind === 'robot') presence.disconnected(client, who)
    else if (who?.kind === 'user') access.release(who.id)
  })
  aedes.on('subscribe', (subs, client) => {
    const who = principalOf(client)
    if (who?.kind === 'robot') presence.subscribed(client, who, subs.filter((s) => (s.qos as number) !== 128).map((s) => s.topic))
  })
  aedes.on('unsubscribe', (topics, client) => {
    const who = principalOf(client)
    if (who?.kind === 'robot') presence.unsubscribed(client, who, topics)
  })
  aedes.on('ack', (packet, client) => {
    const who = principalOf(client)
    if (who?.kind === 'robot' && packet !== undefined && packet !== null && 'topic' in packet) {
      commands.delivered(who, packet.topic, packet.payload as Buffer)
    }
  })
  aedes.on('clientError', (client, err) => { log.debug({ clientId: short(client.id), err: short(err.message, 200) }, 'MQTT client error') })
  aedes.on('connectionError', (client, err) => { log.debug({ err: short(err.message, 200) }, 'MQTT connection error') })

  /**
   * Closes a connection whose principal lost its rights: marked first, so
   * that nothing it sends from now on is authorized and its will is not
   * published (docs/protocol.md §2.4).
   */
  const closeRevoked = async (client: Client): Promise<void> => {
    revokeClient(client)
    await new Promise<void>((resolve) => { client.close(() => { resolve() }) })
  }
  const closeUser = ({ userId }: { userId: number }): void => {
    markRevoked({ kind: 'user', id: userId })
    for (const client of Object.values((aedes as unknown as { clients: Record<string, Client> }).clients)) {
      const who = principalOf(client)
      if (who?.kind === 'user' && who.id === userId) void closeRevoked(client)
    }
  }
  // docs/protocol.md §13.4: a deleted or expired API key closes the connections it opened.
  const keyConnections = createKeyConnections({ aedes, events: services.events, close: closeRevoked })

  // Revocation (docs/protocol.md §2.4): disabled, deleted or rotated robots, and
  // users deactivated, deleted or given a new password, lose their connections at once.
  const offRobot = services.events.on('robotRevoked', ({ robotUuid, reason }) => {
    markRevoked({ kind: 'robot', uuid: robotUuid })
    const closing = presence.clientsOf(robotUuid).map(closeRevoked)
    if (reason !== 'deleted') return
    // A deleted robot leaves no retained presence or statistics behind: clear
    // them once its connections (and their last presence update) are gone.
    void Promise.all(closing).then(() => {
      stats.forget(robotUuid)
      robotModels.forget(robotUuid)
      for (const channel of ['presence', 'stats'] as const) clearRetained(robotTopic(robotUuid, channel))
    })
  })
  const offUser = services.events.on('userRevoked', closeUser)
  const offPassword = services.events.on('passwordChanged', closeUser)
  const offState = services.events.on('robotStateChanged', ({ robotUuid, state }) => { stats.state(robotUuid, state) })
  // docs/protocol.md §14: a robot given another model (through any node) is checked with it at once, on its open connections.
  const offModel = services.events.on('robotModelChanged', ({ robotUuid, model }) => { robotModels.changed(robotUuid, model) })

  const handle = (stream: Parameters<Aedes['handle']>[0], req?: Parameters<Aedes['handle']>[1]): void => {
    const client = aedes!.handle(stream, req)
    limitPacketSize(client, packetLimit)
  }

  // TCP_NODELAY: the PUBACK and the ack are two small writes; without it each
  // ack waits for the client's delayed ACK (~40 ms).
  const tcp: Server = createServer({ noDelay: true, highWaterMark: SLOW_CONSUMER_BYTES }, (socket) => {
    socket.on('error', () => { socket.destroy() })
    if (config.MQTT_PROXY_PROTOCOL) acceptProxied(socket, handle)
    else handle(socket)
  })
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    // A deep accept queue: a whole fleet reconnects at once (see src/server.ts).
    tcp.listen({ port: config.MQTT_PORT, host: config.HOST, backlog: 4096 }, () => { tcp.off('error', reject); resolve() })
  })
  let tls: TlsListener | undefined
  let tlsPort: number | undefined
  if (config.MQTT_TLS_PORT !== undefined && config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE !== undefined) {
    const listener = createTlsListener({ certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE }, { highWaterMark: SLOW_CONSUMER_BYTES, log }, (socket) => { handle(socket) })
    tls = listener
    await new Promise<void>((resolve, reject) => {
      listener.server.once('error', reject)
      listener.server.listen({ port: config.MQTT_TLS_PORT, host: config.HOST, backlog: 4096 }, () => { listener.server.off('error', reject); resolve() })
    })
    const tlsAddress = listener.server.address()
    tlsPort = typeof tlsAddress === 'object' && tlsAddress !== null ? tlsAddress.port : config.MQTT_TLS_PORT
  }
  // SIGHUP re-reads the certificate (90-day certificates are renewed in place).
  const onHangup = (): void => { tls?.reload() }
  const ignoreHangup = (): void => {}
  if (tls !== undefined) process.on('SIGHUP', onHangup)
  const ws = attachWebSocket(fastify.server, handle, { maxPayload: packetLimit })
  const address = tcp.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.MQTT_PORT
  log.info({ port, tlsPort, websocket: '/mqtt' }, 'MQTT broker listening')

  fastify.metrics.gauge('united_connected_robots', 'Robots with an open MQTT connection', () => presence.onlineCount)
  fastify.metrics.gauge('united_connected_users', 'Users with an open MQTT connection', () => access.size)
  fastify.metrics.gauge('united_frames_waiting', 'Frames waiting for a place in the full storage queue', () => services.frameWriter.waiting)
  fastify.metrics.gauge('united_mqtt_clients', 'Open MQTT connections', () => aedes?.connectedClients ?? 0)

  if (cluster !== null) {
    await cluster.start({
      counts: () => ({ robots: presence.onlineCount, users: access.size }),
      release: async (node, robots) => { await presence.release(node, robots) },
      clientIds: takeover.clientIds
    })
    cluster.onReconnect(() => {
      log.info('Redis is back: this node reports its robots again')
      presence.reassert()
      // Model changes relayed while Redis was away are lost: the connected robots' rows say what they are now.
      void robotModels.refresh(presence.robotUuids(), async (uuid) => { const robot = await services.robots.ref(uuid); return robot === null ? undefined : robot.model })
    })
  }

  fastify.decorate('broker', {
    port,
    tlsPort,
    reloadTls: () => tls?.reload() ?? false,
    connectedRobots: () => presence.onlineCount,
    connectedUsers: () => access.size
  })

  // Registered after the database's onClose: the process may stop on SIGHUP again.
  fastify.addHook('onClose', async () => { process.off('SIGHUP', ignoreHangup) })

  fastify.addHook('preClose', async () => {
    const tcpClosed = new Promise<void>((resolve) => { tcp.close(() => { resolve() }) })
    process.off('SIGHUP', onHangup)
    const tlsClosed = tls === undefined ? Promise.resolve() : new Promise<void>((resolve) => { tls?.server.close(() => { resolve() }) })
    // SIGHUP's default action kills the process: while frames are flushed, it does nothing.
    if (tls !== undefined) process.on('SIGHUP', ignoreHangup)
    ws.close()
    // Frames already received are stored and acknowledged before clients go.
    await services.frameWriter.flush().catch((err: unknown) => { log.error({ err }, 'frames could not be written at shutdown') })
    await new Promise<void>((resolve) => { setImmediate(resolve) })
    // Cluster mode: while the emitter still runs, the other nodes learn what
    // this node's robots are without it (offline, or connected elsewhere).
    if (cluster !== null) await presence.release(cluster.nodeId, presence.robotUuids()).catch(() => {})
    await presenceWriter?.settle()
    if (cluster === null) sessions.close()
    await new Promise<void>((resolve) => { aedes!.close(() => { resolve() }) })
    await tcpClosed
    await tlsClosed
    await presence.settle()
    await commands.settle()
    commands.close()
    access.close()
    offRobot()
    offUser()
    offPassword()
    keyConnections.close()
    offState()
    offModel()
    robotModels.close()
  })
}, { name: 'broker', dependencies: ['services', 'metrics'] })
