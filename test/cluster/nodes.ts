// Real cluster nodes for the tests of docs/operations.md §4: a redis-server of the
// test's own on a free port (so that it can be frozen with SIGSTOP, killed
// and restarted empty without touching the machine's Redis), a PostgreSQL
// database of its own, and United nodes as real processes (dist/src/server.js)
// sharing both.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { pgBase, testDatabase, TEST_JWT_SECRET } from '../helper.js'
import { opened } from '../mqtt.js'
import { MANAGE, mqttPortOf, postJson, run, startServer, tempDir } from '../process/spawn.js'

/** Cluster tests need PostgreSQL: they run in the suite's PostgreSQL run (TEST_DATABASE_URL). */
export const clusterCapable = pgBase !== undefined

export async function freePort (host = '127.0.0.1'): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, host, resolve) })
  const address = server.address()
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  return typeof address === 'object' && address !== null ? address.port : 0
}

export interface PrivateRedis { url: string, port: number, child: ChildProcess, stop: () => Promise<void>, freeze: () => void, thaw: () => void, restart: () => Promise<void> }

async function spawnRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      probe.disconnect()
      await new Promise((resolve) => { setTimeout(resolve, 50) })
    }
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server did not start on port ${port}`)
}

export async function privateRedis (t: Test): Promise<PrivateRedis> {
  const port = await freePort()
  const redis: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    child: await spawnRedis(port),
    async stop () {
      const child = redis.child
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await once(child, 'exit')
    },
    freeze () { redis.child.kill('SIGSTOP') },
    thaw () { redis.child.kill('SIGCONT') },
    /** Killed and started again on the same port, empty. */
    async restart () {
      await redis.stop()
      redis.child = await spawnRedis(port)
    }
  }
  t.teardown(async () => { await redis.stop() })
  return redis
}

export interface Node { id: string, url: string, mqttPort: number, child: ChildProcess, output: () => { stdout: string, stderr: string } }

export interface ClusterSetup { databaseUrl: string, redis: PrivateRedis, cwd: string, env: Record<string, string> }

/** A PostgreSQL database and a Redis of the test's own, the schema, and a staff user `chief` (password `chief-password`). */
export async function clusterSetup (t: Test, env: Record<string, string> = {}): Promise<ClusterSetup> {
  const db = await testDatabase()
  const redis = await privateRedis(t)
  const cwd = tempDir(t)
  // The database is dropped after every node of the test is gone (teardowns run last-registered first).
  t.teardown(async () => { await db.drop() })
  // createsuperuser migrates the new database first
  const staff = await run(MANAGE, ['createsuperuser', '--username', 'chief', '--password', 'chief-password'], { cwd, env: { DATABASE_URL: db.url } })
  if (staff.code !== 0) throw new Error(`createsuperuser failed: ${staff.stderr}`)
  return { databaseUrl: db.url, redis, cwd, env }
}

/** Starts a node; killed on teardown if still running. */
export async function startNode (t: Test, setup: ClusterSetup, id: string, env: Record<string, string> = {}): Promise<Node> {
  const server = await startServer(t, {
    cwd: setup.cwd,
    env: {
      DATABASE_URL: setup.databaseUrl,
      REDIS_URL: setup.redis.url,
      REDIS_PREFIX: 'united-test:',
      JWT_SECRET: TEST_JWT_SECRET,
      NODE_ID: id,
      CLUSTER_NODE_TIMEOUT: '3',
      LOG_LEVEL: 'warn',
      ...setup.env,
      ...env
    }
  })
  // A node that dies in a test says why: its last output goes to the test's comments.
  server.child.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL' && code !== 0) t.comment(`${id} exited with ${String(code ?? signal)}:\n${server.output().stderr.slice(-3000)}${server.output().stdout.slice(-3000)}`)
  })
  return { id, url: server.url, mqttPort: mqttPortOf(server.output().stdout), child: server.child, output: server.output }
}

/** Stops a node with SIGTERM and waits for it to exit. */
export async function stopNode (node: Node): Promise<number | null> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return node.child.exitCode
  node.child.kill('SIGTERM')
  const [code] = await once(node.child, 'exit') as [number | null]
  return code
}

export async function login (node: Node, username: string, password: string): Promise<string> {
  const body = await postJson(node.url, '/users/obtain_token/', { username, password })
  if (typeof body.access !== 'string') throw new Error(`log-in failed: ${JSON.stringify(body)}`)
  return body.access
}

export async function api (node: Node, method: string, path: string, jwt: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${jwt}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? null : JSON.parse(text) }
}

/** A robot made through node `node`'s Management API: uuid, serial and secret. */
export async function makeRobot (node: Node, staffJwt: string, serial: string): Promise<{ uuid: string, serial: string, secret: string }> {
  const res = await api(node, 'POST', '/admin/api/robots', staffJwt, { serial })
  if (res.status !== 201) throw new Error(`robot not created: ${res.status} ${JSON.stringify(res.body)}`)
  return { uuid: res.body.uuid, serial, secret: res.body.token }
}

export async function robotTokenAt (node: Node, robot: { serial: string, secret: string }): Promise<string> {
  const body = await postJson(node.url, '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })
  if (typeof body.access_token !== 'string') throw new Error(`obtain_token failed: ${JSON.stringify(body)}`)
  return body.access_token
}

/** An MQTT client of a node, over TCP (TCP_NODELAY) or WebSocket; ended on teardown. */
export async function mqttTo (t: Test, node: Node, opts: IClientOptions & { ws?: boolean }): Promise<MqttClient> {
  const url = opts.ws === true ? `${node.url.replace(/^http/, 'ws')}/mqtt` : `mqtt://127.0.0.1:${node.mqttPort}`
  return await opened(t, mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts }))
}

/** The CONNACK code of a refused connection. */
export async function refusedAt (t: Test, node: Node, opts: IClientOptions): Promise<number | undefined> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts })
  t.teardown(() => { client.end(true) })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { reject(new Error('connected, but a refusal was expected')) })
    client.once('error', (err: Error & { code?: number }) => { resolve(err.code) })
  })
}

export interface Cluster { setup: ClusterSetup, nodes: Node[], staff: string }

/**
 * A test of docs/operations.md §4: a fresh database and Redis, `nodes` nodes named
 * node-a, node-b, … (2 by default) started with `env`, and a staff JWT from
 * node-a. On SQLite the file says, in one passing line, where it runs instead.
 */
export function clusterTest (name: string, opts: { nodes?: number, env?: Record<string, string> }, fn: (t: Test, cluster: Cluster) => Promise<void>): void {
  if (!clusterCapable) {
    t.pass('cluster mode needs PostgreSQL: these tests run in the PostgreSQL run of the suite (TEST_DATABASE_URL)')
    return
  }
  t.test(name, async (t) => {
    const setup = await clusterSetup(t, opts.env)
    const nodes: Node[] = []
    for (let i = 0; i < (opts.nodes ?? 2); i++) nodes.push(await startNode(t, setup, `node-${String.fromCharCode(97 + i)}`))
    await fn(t, { setup, nodes, staff: await login(nodes[0] as Node, 'chief', 'chief-password') })
  })
}
