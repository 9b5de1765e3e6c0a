// npm run bench -- --cluster (docs/operations.md §4, issue 25): two United nodes of
// one cluster against one standalone United, in the same run, on the same
// PostgreSQL database.
//
//   cluster-tcp-ingest  closed-loop TCP ingest, alternating rounds: the
//                       standalone United, node A alone (node B idle in the
//                       cluster), and both nodes (half the robots each)
//   cluster-command     a command posted to node B's REST API, to a robot on
//                       node A, while the robots stream at --stream-hz
//   cluster-fanout      stats of a robot on node A to --users WebSocket users on node B
//   cluster-storm       --cluster-storm robots at once, spread over both nodes
//   cluster-rss         each process's RSS after a full GC, at the end
//
// The cluster is the bench's own: a redis-server on a free port (no disk),
// started and killed here, and two United processes with REDIS_URL, a
// REDIS_PREFIX of this run, their own NODE_IDs and one JWT_SECRET. Each
// cluster figure carries Redis' share: its CPU (INFO cpu) and the commands
// and PUBLISHes it ran (INFO stats, commandstats) over the measured
// intervals, per command, per message and per unit of work.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import type { Fields, Meter } from './history.js'
import { closedLoop, now, Recorder, round, type Robot } from './load.js'
import { ProcMeter, rssMiB, settle, sleep, track, type Spawned } from './proc.js'
import { United, type Target } from './targets.js'

export const CLUSTER_SCENARIOS = ['cluster-tcp-ingest', 'cluster-command', 'cluster-fanout', 'cluster-storm', 'cluster-rss'] as const
export const CLUSTER_ALIASES: Record<string, string[]> = {
  tcp: ['cluster-tcp-ingest'],
  ingest: ['cluster-tcp-ingest'],
  command: ['cluster-command'],
  commands: ['cluster-command'],
  fanout: ['cluster-fanout'],
  storm: ['cluster-storm'],
  rss: ['cluster-rss']
}

/** Issue 25's targets. The storm, the RSS and Redis' cost are reported, not judged. */
const GOALS = {
  ingestRatio: 0.9, // node A's closed-loop frames/s over the standalone's
  commandP99Ms: 25, // REST at node B → the robot at node A
  fanoutP99Ms: 50 // a robot at node A → WebSocket users at node B
}

/** How long the idle cluster is watched for Redis' baseline (heartbeats, PINGs). */
const IDLE_MS = 5000

/** A process the runner watches (bench.ts' Mark takes these). */
export interface Watched { readonly proc: { readonly pid: number } }

export interface ClusterContext {
  /** the standalone United (no REDIS_URL), already provisioned and restarted by bench.ts */
  standalone: United
  files: { server: string, manage: string }
  runId: string
  databaseUrl: string
  scenarios: ReadonlySet<string>
  robots: number
  /** robots of cluster-storm */
  stormRobots: number
  users: number
  window: number
  duration: number
  rounds: number
  warmup: number
  say: (s: string) => void
  emit: (lines: Fields[]) => void
  /** lines of `target` count the warnings these processes logged */
  warningsOf: (target: string, procs: () => Spawned[]) => void
  /** removes what the cluster left on disk when the runner leaves, whatever happens */
  cleanup: (fn: () => void) => void
  /** bench.ts' Mark: `target`'s CPU and RSS, the database's, the runner's, and the rest of the machine's but `others` */
  mark: (target: Watched, others: Watched[]) => Meter
  openFleet: (t: Target, indexes: number[], transport: 'tcp' | 'ws', commands: boolean, rec: Recorder) => Promise<Robot[]>
  closeFleet: (fleet: Robot[]) => Promise<void>
  nextTag: () => string
  errorFields: (rec: Recorder) => Fields
  // bench.ts' scenarios, each with the cluster's second node where it takes one
  commandLatency: (t: Target, mark: Meter, via?: Target) => Promise<Fields>
  fanout: (t: Target, mark: Meter, watchers?: Target) => Promise<Fields>
  storm: (t: Target, mark: Meter, robots: number, spread?: Target[]) => Promise<Fields>
}

const range = (n: number, from = 0): number[] => Array.from({ length: Math.max(0, n - from) }, (_, i) => from + i)
const errText = (err: unknown): string => err instanceof Error ? err.message : String(err)

// ---- Redis ------------------------------------------------------------------

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const address = server.address()
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  if (typeof address !== 'object' || address === null) throw new Error('no free port')
  return address.port
}

/** What Redis counts, at one moment. */
interface RedisCounters {
  /** used_cpu_user + used_cpu_sys (all its threads) */
  cpuS: number
  /** total_commands_processed */
  commands: number
  /** commandstats: calls and microseconds spent in each command */
  calls: Map<string, { calls: number, usec: number }>
  netIn: number
  netOut: number
  /** pubsub_channels and pubsub_patterns: the nodes' subscriptions in Redis right now */
  channels: number
  patterns: number
}

/** Redis' work over one or more intervals. */
export interface RedisDelta {
  cpuS: number
  /** commands of United's nodes: total_commands_processed without the runner's INFOs */
  commands: number
  publishes: number
  calls: Map<string, { calls: number, usec: number }>
  netIn: number
  netOut: number
  /** subscribed channels and patterns at the end (gauges, not sums) */
  channels: number
  patterns: number
}

const emptyDelta = (): RedisDelta => ({ cpuS: 0, commands: 0, publishes: 0, calls: new Map(), netIn: 0, netOut: 0, channels: 0, patterns: 0 })

function addDelta (into: RedisDelta, d: RedisDelta): void {
  into.cpuS += d.cpuS
  into.commands += d.commands
  into.publishes += d.publishes
  into.netIn += d.netIn
  into.netOut += d.netOut
  into.channels = d.channels
  into.patterns = d.patterns
  for (const [name, c] of d.calls) {
    const sum = into.calls.get(name) ?? { calls: 0, usec: 0 }
    into.calls.set(name, { calls: sum.calls + c.calls, usec: sum.usec + c.usec })
  }
}

function parseInfo (text: string): RedisCounters {
  const values = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) values.set(line.slice(0, colon), line.slice(colon + 1))
  }
  const num = (key: string): number => Number(values.get(key) ?? NaN)
  const calls = new Map<string, { calls: number, usec: number }>()
  for (const [key, value] of values) {
    if (!key.startsWith('cmdstat_')) continue
    const m = /calls=(\d+),usec=(\d+)/.exec(value)
    if (m !== null) calls.set(key.slice('cmdstat_'.length), { calls: Number(m[1]), usec: Number(m[2]) })
  }
  return { cpuS: num('used_cpu_user') + num('used_cpu_sys'), commands: num('total_commands_processed'), calls, netIn: num('total_net_input_bytes'), netOut: num('total_net_output_bytes'), channels: num('pubsub_channels'), patterns: num('pubsub_patterns') }
}

function deltaOf (a: RedisCounters, b: RedisCounters): RedisDelta {
  const calls = new Map<string, { calls: number, usec: number }>()
  for (const [name, c] of b.calls) {
    const before = a.calls.get(name) ?? { calls: 0, usec: 0 }
    if (c.calls > before.calls && name !== 'info') calls.set(name, { calls: c.calls - before.calls, usec: c.usec - before.usec })
  }
  // The runner's own INFO (one per interval: the one that read `a`) is not United's work.
  const infos = (b.calls.get('info')?.calls ?? 0) - (a.calls.get('info')?.calls ?? 0)
  return {
    cpuS: b.cpuS - a.cpuS,
    commands: b.commands - a.commands - infos,
    publishes: calls.get('publish')?.calls ?? 0,
    calls,
    netIn: b.netIn - a.netIn,
    netOut: b.netOut - a.netOut,
    channels: b.channels,
    patterns: b.patterns
  }
}

/** The bench's own redis-server: no disk, on a free loopback port, killed with the runner's other children. */
class RedisServer implements Watched {
  private constructor (readonly proc: { pid: number, stop: () => Promise<void> }, readonly url: string, private readonly client: Redis) {}

  static async start (): Promise<RedisServer> {
    const port = await freePort()
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] })
    track(child)
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { out += b.toString() })
    const failed = new Promise<never>((_resolve, reject) => {
      child.once('error', (err) => { reject(new Error(`redis-server could not be started (${err.message}): --cluster needs redis-server on the PATH`)) })
      child.once('exit', (code, signal) => { reject(new Error(`redis-server exited (${String(code ?? signal)}):\n${out}`)) })
    })
    failed.catch(() => {})
    // the runner's own connection, for INFO only; a fresh one per try until redis-server listens
    const ready = (async (): Promise<Redis> => {
      for (let i = 0; i < 100; i++) {
        const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectionName: 'united-bench' })
        client.on('error', () => {})
        try {
          await client.connect()
          await client.ping()
          return client
        } catch {
          client.disconnect()
          await sleep(50)
        }
      }
      throw new Error(`redis-server did not answer on port ${port} within 5 s:\n${out}`)
    })()
    const client = await Promise.race([ready, failed])
    const stop = async (): Promise<void> => {
      client.disconnect()
      if (child.exitCode !== null || child.signalCode !== null) return
      const exit = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      await exit
      clearTimeout(timer)
    }
    return new RedisServer({ pid: child.pid as number, stop }, `redis://127.0.0.1:${port}`, client)
  }

  /** One INFO for the three sections, so that they describe the same moment. */
  async counters (): Promise<RedisCounters> {
    return parseInfo(await this.client.info('cpu', 'stats', 'commandstats'))
  }

  async stop (): Promise<void> {
    await this.proc.stop()
  }
}

/** Redis' figures of a line: what it did, per command and per message, and per unit of the scenario's work (frames, stats messages…). */
function redisFields (d: RedisDelta, per: Record<string, number>): Fields {
  const top = [...d.calls].sort((a, b) => b[1].calls - a[1].calls).slice(0, 8)
  const fields: Fields = {
    redis_cpu_s: round(d.cpuS, 3),
    redis_commands: d.commands,
    redis_publishes: d.publishes,
    redis_cpu_us_per_command: d.commands > 0 ? round((d.cpuS * 1e6) / d.commands, 1) : null,
    redis_cpu_us_per_publish: d.publishes > 0 ? round((d.cpuS * 1e6) / d.publishes, 1) : null,
    redis_net_in_bytes: d.netIn,
    redis_net_out_bytes: d.netOut,
    redis_pubsub_channels: d.channels,
    redis_pubsub_patterns: d.patterns
  }
  for (const [unit, n] of Object.entries(per)) {
    if (!(n > 0)) continue
    fields[`redis_commands_per_${unit}`] = round(d.commands / n, 3)
    fields[`redis_publishes_per_${unit}`] = round(d.publishes / n, 3)
    fields[`redis_cpu_us_per_${unit}`] = round((d.cpuS * 1e6) / n, 1)
  }
  // commandstats: which commands, and Redis' own time in each (usec excludes reading and writing the sockets)
  fields.redis_top_commands = Object.fromEntries(top.map(([name, c]) => [name, { calls: c.calls, usec_per_call: round(c.usec / Math.max(1, c.calls), 2) }]))
  return fields
}

// ---- measuring a node, its peer and Redis -------------------------------------

/**
 * bench.ts' Mark on the measured process, plus, in the cluster, the other
 * node's CPU and peak RSS and Redis' counters over the same interval. It is
 * a Meter, so that bench.ts' scenarios start and stop it where they start
 * and stop their own measurement; Redis answers asynchronously, so its
 * figures are read by `fields()` once the scenario returned.
 */
class NodesMeter implements Meter {
  private peerMeter: ProcMeter | undefined
  private redis0: Promise<RedisCounters> | undefined
  private redis1: Promise<RedisCounters> | undefined
  private t0 = 0
  private wallS = 0
  private peerResult: { cpu_s: number, rss_mib: number } | undefined
  private stopped = false

  constructor (private readonly base: Meter, private readonly cluster?: { peer: Watched, redis: RedisServer }) {}

  get result (): Fields | undefined {
    return this.base.result
  }

  async start (): Promise<void> {
    await this.base.start()
    this.t0 = now()
    if (this.cluster !== undefined) {
      this.peerMeter = new ProcMeter(this.cluster.peer.proc.pid)
      this.redis0 = this.cluster.redis.counters()
      await this.redis0
    }
  }

  stop (): void {
    if (this.stopped || this.t0 === 0) return
    this.stopped = true
    this.base.stop()
    this.wallS = (now() - this.t0) / 1000
    this.peerResult = this.peerMeter?.stop()
    // sent now: Redis answers with its counters of this moment
    this.redis1 = this.cluster?.redis.counters()
  }

  /** CPU seconds, peak RSS and wall time of this interval (additive over rounds, but for the peaks), and Redis' work. */
  async measure (): Promise<{ fields: Fields, wallS: number, redis: RedisDelta | undefined }> {
    this.stop()
    const base = { ...(this.base.result ?? {}) }
    delete base.server_cpu_pct // recomputed over the rounds
    const redis = this.redis0 !== undefined && this.redis1 !== undefined ? deltaOf(await this.redis0, await this.redis1) : undefined
    if (this.cluster === undefined || this.peerResult === undefined) return { fields: base, wallS: this.wallS, redis }
    const a = typeof base.server_cpu_s === 'number' ? base.server_cpu_s : NaN
    const fields: Fields = {
      ...base,
      server_cpu_s: round(a + this.peerResult.cpu_s),
      node_a_cpu_s: a,
      node_b_cpu_s: round(this.peerResult.cpu_s),
      node_a_rss_mib: base.server_rss_mib,
      node_b_rss_mib: round(this.peerResult.rss_mib, 1)
    }
    return { fields, wallS: this.wallS, redis }
  }
}

/** Adds the measurements of several rounds: CPU and other seconds add up, peaks (RSS, stalls) take the highest. */
function addRounds (rounds: Array<{ fields: Fields, wallS: number, redis: RedisDelta | undefined }>): { fields: Fields, wallS: number, redis: RedisDelta | undefined } {
  const fields: Fields = {}
  let wallS = 0
  let redis: RedisDelta | undefined
  for (const r of rounds) {
    wallS += r.wallS
    for (const [key, value] of Object.entries(r.fields)) {
      if (typeof value !== 'number') continue
      const before = fields[key]
      const peak = /_rss_mib$|_max_ms$/.test(key)
      fields[key] = typeof before !== 'number' ? value : peak ? Math.max(before, value) : round(before + value)
    }
    if (r.redis !== undefined) addDelta(redis ??= emptyDelta(), r.redis)
  }
  return { fields, wallS, redis }
}

/** `server_cpu_pct` over the whole measured time, after the sums. */
function withPct (m: { fields: Fields, wallS: number }): Fields {
  const cpu = m.fields.server_cpu_s
  return { ...m.fields, ...(typeof cpu === 'number' && m.wallS > 0 ? { server_cpu_pct: round((100 * cpu) / m.wallS, 0) } : {}) }
}

function ratio (a: unknown, b: unknown, digits = 3): number | null {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 && Number.isFinite(a) ? round(a / b, digits) : null
}

// ---- the run ---------------------------------------------------------------

/** Runs the cluster scenarios; resolves with the nodes, whose warnings the summary lists. */
export async function runCluster (ctx: ClusterContext): Promise<Array<{ label: string, proc: Spawned }>> {
  const { say, standalone: solo } = ctx
  const redis = await RedisServer.start()
  say(`redis-server up (${redis.url}, pid ${redis.proc.pid})`)
  // One JWT_SECRET for both nodes (a user's JWT from one works at the
  // other); a prefix of this run's own, as deployments sharing a Redis would.
  const clusterEnv = { REDIS_URL: redis.url, REDIS_PREFIX: `bench-${ctx.runId}:`, JWT_SECRET: randomBytes(32).toString('hex') }
  // Serials `bench-<run>c-<i>`: the cluster's robots are not the standalone's,
  // whose presence and tokens live in another process (same database).
  const a = new United(ctx.files, `${ctx.runId}c`, ctx.databaseUrl, { env: { ...clusterEnv, NODE_ID: 'bench-a' }, label: 'United node A' })
  const b = new United(ctx.files, `${ctx.runId}c`, ctx.databaseUrl, { env: { ...clusterEnv, NODE_ID: 'bench-b' }, label: 'United node B' })
  ctx.cleanup(() => { a.removeDir(); b.removeDir() })
  ctx.warningsOf('standalone', () => [solo.proc])
  ctx.warningsOf('node-a', () => [a.proc])
  for (const target of ['cluster', 'nodes-a+b']) ctx.warningsOf(target, () => [a.proc, b.proc])
  const nodes = [{ label: 'United node A', proc: a.proc }, { label: 'United node B', proc: b.proc }]
  try {
    await startCluster(ctx, a, b)
    nodes[0] = { label: 'United node A', proc: a.proc }
    nodes[1] = { label: 'United node B', proc: b.proc }
    await scenarios(ctx, redis, a, b)
    nodes[0] = { label: 'United node A', proc: a.proc }
    nodes[1] = { label: 'United node B', proc: b.proc }
  } finally {
    // the nodes first: they tell Redis they leave
    await Promise.all([a.stop(), b.stop()]).catch(() => {})
    await redis.stop()
  }
  return nodes
}

/** Node A provisions the cluster's robots and users, restarts (as bench.ts restarts United), then node B starts on the same database. */
async function startCluster (ctx: ClusterContext, a: United, b: United): Promise<void> {
  const has = (s: string): boolean => ctx.scenarios.has(s)
  // tcp-ingest: robots 0..n-1 on A alone, then n..2n-1 over both nodes
  const needed = Math.max(ctx.robots, has('cluster-tcp-ingest') ? 2 * ctx.robots : 0, has('cluster-storm') ? ctx.stormRobots : 0)
  const users = has('cluster-fanout') ? ctx.users : 0
  const t0 = now()
  await a.createSuperuser()
  await a.start()
  ctx.say(`cluster node A up (${a.httpUrl}, ${a.mqttUrl}); provisioning ${needed} robots and ${users} users through it…`)
  await a.provision(needed, users, (done, total) => { ctx.say(`  ${done}/${total} robots`) })
  await a.stop()
  await a.start()
  b.adopt(a)
  await b.start()
  ctx.say(`cluster up in ${((now() - t0) / 1000).toFixed(1)} s: node A ${a.httpUrl} ${a.mqttUrl}, node B ${b.httpUrl} ${b.wsUrl}`)
  // Both nodes must see each other before anything is measured.
  const until = now() + 15_000
  for (;;) {
    const res = await fetch(`${b.httpUrl}/admin/api/cluster`, { headers: { authorization: `Bearer ${await b.staffToken()}` } })
    const body = await res.json() as { nodes?: Array<{ node_id: string }> }
    const ids = (body.nodes ?? []).map((n) => n.node_id).sort()
    if (ids.includes('bench-a') && ids.includes('bench-b')) break
    if (now() > until) throw new Error(`node B does not see both nodes: HTTP ${res.status} ${JSON.stringify(body)}`)
    await sleep(200)
  }
}

async function scenarios (ctx: ClusterContext, redis: RedisServer, a: United, b: United): Promise<void> {
  const { say, emit, standalone: solo } = ctx
  const has = (s: string): boolean => ctx.scenarios.has(s)
  const all: Watched[] = [solo, a, b, redis]
  const others = (t: Watched): Watched[] => all.filter((o) => o !== t)
  /** Measures the standalone United alone. */
  const soloMeter = (): NodesMeter => new NodesMeter(ctx.mark(solo, others(solo)))
  /** Measures node A, node B and Redis. */
  const clusterMeter = (): NodesMeter => new NodesMeter(ctx.mark(a, others(a)), { peer: b, redis })

  const alive = (scenario: string): void => {
    for (const [name, t] of [['the standalone United', solo], ['node A', a], ['node B', b]] as const) {
      if (t.proc.exited()) throw new Error(`${name} exited during ${scenario}; its last output:\n${t.proc.output().slice(-4000)}`)
    }
  }

  // Redis' baseline: what the idle cluster costs it (heartbeats, each node's PING every second).
  {
    await Promise.all(all.map(async (t) => { await settle(t.proc.pid) }))
    const c0 = await redis.counters()
    await sleep(IDLE_MS)
    const d = deltaOf(c0, await redis.counters())
    emit([{
      scenario: 'cluster-redis-idle',
      target: 'redis',
      seconds: IDLE_MS / 1000,
      redis_commands_per_s: round(d.commands / (IDLE_MS / 1000), 1),
      redis_cpu_pct: round((100 * d.cpuS) / (IDLE_MS / 1000), 2),
      ...redisFields(d, {}),
      note: 'the idle cluster: both nodes up, no client; every cluster line includes this much per second'
    }])
  }

  /**
   * Runs a scenario on the standalone United, then on the cluster, and prints
   * both lines; the cluster's carries `ratio` (cluster / standalone of
   * `ratioOf`), Redis' figures per `units` of its work, and its target.
   */
  async function versus (scenario: string, ratioOf: string, run: (side: 'standalone' | 'cluster', meter: NodesMeter) => Promise<Fields>, units: (f: Fields) => Record<string, number>, goal?: { text: string, met: (f: Fields) => boolean }): Promise<void> {
    const lines: Fields[] = []
    for (const side of ['standalone', 'cluster'] as const) {
      const meter = side === 'standalone' ? soloMeter() : clusterMeter()
      say(`${scenario} on the ${side === 'standalone' ? 'standalone United' : 'cluster (robots at node A, REST and users at node B)'}…`)
      let fields: Fields
      try {
        fields = await run(side, meter)
      } catch (err) {
        fields = { error: errText(err) }
        say(`${scenario} on the ${side} failed: ${errText(err)}`)
      }
      const m = await meter.measure()
      alive(scenario)
      lines.push({ scenario, target: side, ...fields, ...withPct(m), ...(m.redis === undefined ? {} : redisFields(m.redis, units(fields))) })
    }
    const [s, c] = lines as [Fields, Fields]
    c.ratio = ratio(c[ratioOf], s[ratioOf])
    c.ratio_of = `${ratioOf} (cluster / standalone)`
    if (goal !== undefined && c.error === undefined) Object.assign(c, { goal: goal.text, goal_met: goal.met(c) })
    emit(lines)
  }

  if (has('cluster-storm')) {
    await versus('cluster-storm', 'total_s', async (side, meter) => side === 'standalone'
      ? await ctx.storm(solo, meter, ctx.stormRobots)
      : { ...await ctx.storm(a, meter, ctx.stormRobots, [a, b]), note: 'robot i obtains its token from and connects to node A (even i) or node B (odd i): POST obtain_token, CONNECT, SUBSCRIBE ack+commands; latencies per robot' },
    (f) => ({ robot: typeof f.connected === 'number' ? f.connected : 0 }))
  }

  if (has('cluster-tcp-ingest')) await ingest(ctx, { solo, a, b, soloMeter, clusterMeter, alive })

  if (has('cluster-fanout')) {
    await versus('cluster-fanout', 'p99_ms', async (side, meter) => side === 'standalone'
      ? await ctx.fanout(solo, meter)
      : { ...await ctx.fanout(a, meter, b), note: 'p50/p99/max: frame publish at node A (TCP) → stats message at a WebSocket user of node B' },
    // each user receives every stats message once: the messages A published are the deliveries over the users
    (f) => ({ stats_message: typeof f.deliveries === 'number' && typeof f.users === 'number' && f.users > 0 ? f.deliveries / f.users : 0, frame: typeof f.frames === 'number' ? f.frames : 0 }),
    { text: `delivery p99 ≤ ${GOALS.fanoutP99Ms} ms`, met: (f) => typeof f.p99_ms === 'number' && f.p99_ms <= GOALS.fanoutP99Ms })
  }

  if (has('cluster-command')) {
    await versus('cluster-command', 'p99_ms', async (side, meter) => side === 'standalone'
      ? await ctx.commandLatency(solo, meter)
      : { ...await ctx.commandLatency(a, meter, b), note: `p50/p99/max: POST /robots/robot/command sent to node B → command received by the robot at node A, while every robot streams to node A; post_*: node B's REST response time` },
    // `robot_command`: a command to a robot (`redis_commands_per_command` would read as Redis' own)
    (f) => ({ robot_command: typeof f.commands === 'number' ? f.commands : 0 }),
    { text: `command p99 ≤ ${GOALS.commandP99Ms} ms`, met: (f) => typeof f.p99_ms === 'number' && f.p99_ms <= GOALS.commandP99Ms })
  }

  if (has('cluster-rss')) await idleRss(ctx, [['standalone', solo], ['node-a', a], ['node-b', b]], all)
}

interface IngestDeps {
  solo: United
  a: United
  b: United
  soloMeter: () => NodesMeter
  clusterMeter: () => NodesMeter
  alive: (scenario: string) => void
}

/**
 * Closed-loop TCP ingest as bench.ts' tcp-ingest runs it (warm-up, then
 * alternating rounds with every fleet connected throughout), over three
 * sides: the standalone United; node A alone, with node B idle in the
 * cluster (the same load as the standalone: what cluster mode costs a
 * node); and both nodes, half the robots each (the cluster's total on this
 * machine's cores, which the two nodes share with the load and PostgreSQL).
 */
async function ingest (ctx: ClusterContext, { solo, a, b, soloMeter, clusterMeter, alive }: IngestDeps): Promise<void> {
  const scenario = 'cluster-tcp-ingest'
  const n = ctx.robots
  const half = Math.ceil(n / 2)
  const sides = [
    { target: 'standalone', parts: [{ t: solo, indexes: range(n) }], meter: soloMeter, nodes: 1 },
    { target: 'node-a', parts: [{ t: a, indexes: range(n) }], meter: clusterMeter, nodes: 1 },
    { target: 'nodes-a+b', parts: [{ t: a, indexes: range(n + half, n) }, { t: b, indexes: range(2 * n, n + half) }], meter: clusterMeter, nodes: 2 }
  ].map((s) => ({ ...s, rec: new Recorder(), fleet: [] as Robot[], elapsed: 0, rounds: [] as Array<Awaited<ReturnType<NodesMeter['measure']>>>, error: undefined as string | undefined }))
  ctx.say(`${scenario} on the standalone United, node A alone and both nodes, ${ctx.warmup > 0 ? `${ctx.warmup} s of warm-up each, then ` : ''}${ctx.rounds} alternating round${ctx.rounds === 1 ? '' : 's'}…`)
  try {
    for (const side of sides) {
      try {
        for (const part of side.parts) side.fleet.push(...await ctx.openFleet(part.t, part.indexes, 'tcp', false, side.rec))
      } catch (err) {
        side.error = errText(err)
        ctx.say(`${scenario} on ${side.target} failed: ${side.error}`)
      }
    }
    for (const side of sides) {
      if (side.error !== undefined || ctx.warmup === 0) continue
      const warm = new Recorder()
      try {
        await closedLoop(side.fleet, warm, { window: ctx.window, durationS: ctx.warmup, tag: ctx.nextTag() })
      } catch (err) {
        side.error = errText(err)
      }
      side.rec.addErrors(warm)
    }
    for (let r = 0; r < ctx.rounds; r++) {
      for (const side of sides) {
        if (side.error !== undefined) continue
        const meter = side.meter()
        try {
          await meter.start()
          side.elapsed += await closedLoop(side.fleet, side.rec, { window: ctx.window, durationS: ctx.duration / ctx.rounds, tag: ctx.nextTag() })
        } catch (err) {
          side.error = errText(err)
          ctx.say(`${scenario} on ${side.target} failed: ${side.error}`)
        }
        side.rounds.push(await meter.measure())
        alive(scenario)
      }
    }
  } finally {
    for (const side of sides) await ctx.closeFleet(side.fleet)
  }
  const lines: Fields[] = sides.map((side) => {
    const m = addRounds(side.rounds)
    const frames = side.rec.ok
    const fps = round(frames / side.elapsed, 0)
    const cpu = m.fields.server_cpu_s
    return {
      scenario,
      target: side.target,
      ...(side.error !== undefined
        ? { error: side.error }
        : {
            robots: side.fleet.length,
            ...(side.nodes > 1 ? { robots_per_node: side.parts.map((p) => p.indexes.length) } : {}),
            window: ctx.window,
            rounds: ctx.rounds,
            warmup_s: ctx.warmup,
            frames,
            duration_s: round(side.elapsed),
            frames_per_s: fps,
            frames_per_s_per_node: round(fps / side.nodes, 0),
            ...side.rec.latency(),
            ...ctx.errorFields(side.rec),
            // United's CPU per stored frame (both nodes' on the cluster lines)
            server_cpu_us_per_frame: typeof cpu === 'number' && frames > 0 ? round((cpu * 1e6) / frames, 1) : null
          }),
      ...withPct({ fields: m.fields, wallS: side.elapsed }),
      ...(m.redis === undefined ? {} : redisFields(m.redis, { frame: frames }))
    }
  })
  const [s, one, two] = lines as [Fields, Fields, Fields]
  Object.assign(one, { ratio: ratio(one.frames_per_s, s.frames_per_s), ratio_of: 'frames_per_s (node A in the cluster / standalone, same load)' })
  if (one.error === undefined) Object.assign(one, { goal: `≥ ${GOALS.ingestRatio}× standalone`, goal_met: typeof one.ratio === 'number' && one.ratio >= GOALS.ingestRatio })
  Object.assign(two, { ratio: ratio(two.frames_per_s, s.frames_per_s), ratio_of: 'frames_per_s (both nodes together / standalone)' })
  ctx.emit(lines)
}

/**
 * Each process's RSS at the end, idle, after a full GC (the median of three
 * readings): what a cluster node holds beyond a standalone United (the Redis
 * connections, the emitter, the persistence).
 */
async function idleRss (ctx: ClusterContext, procs: Array<[string, United]>, all: Watched[]): Promise<void> {
  ctx.say('cluster-rss: each process, idle, after a full GC…')
  await Promise.all(all.map(async (t) => { await settle(t.proc.pid) }))
  const lines: Fields[] = []
  for (const [target, t] of procs) {
    try {
      await t.gc()
      await sleep(500)
      const xs: number[] = []
      for (let k = 0; k < 3; k++) { xs.push(rssMiB(t.proc.pid)); await sleep(300) }
      lines.push({ scenario: 'cluster-rss', target, rss_mib: round(xs.sort((x, y) => x - y)[1] as number, 1), note: 'whole-process RSS after a forced full GC, idle, after the other scenarios' })
    } catch (err) {
      lines.push({ scenario: 'cluster-rss', target, error: errText(err) })
    }
  }
  const solo = lines[0]?.rss_mib
  for (const l of lines.slice(1)) Object.assign(l, { ratio: ratio(l.rss_mib, solo), ratio_of: 'rss_mib (node / standalone)' })
  ctx.emit(lines)
}

/** The table's last column for the cluster's lines (bench.ts' summary). */
export function clusterExtra (r: Fields): string | undefined {
  if (typeof r.scenario !== 'string' || !r.scenario.startsWith('cluster-')) return undefined
  const v = (x: unknown): string => x === undefined || x === null ? '?' : String(x)
  const nodes = r.node_b_rss_mib !== undefined ? `; RSS A/B ${v(r.node_a_rss_mib)}/${v(r.node_b_rss_mib)} MiB, CPU A/B ${v(r.node_a_cpu_s)}/${v(r.node_b_cpu_s)} s` : ''
  const redis = (unit: string): string => r.redis_cpu_s !== undefined ? `; Redis ${v(r.redis_cpu_us_per_command)} µs/cmd, ${v(r.redis_cpu_us_per_publish)} µs/publish, ${v(r[`redis_commands_per_${unit}`])} cmds/${unit.replace('_', ' ')}` : ''
  switch (r.scenario) {
    case 'cluster-redis-idle': return `Redis idle: ${v(r.redis_commands_per_s)} cmds/s, ${v(r.redis_cpu_pct)} % CPU`
    case 'cluster-storm': return `total ${v(r.total_s)} s${nodes}${redis('robot')}`
    case 'cluster-tcp-ingest': return `${v(r.server_cpu_us_per_frame)} µs/frame${nodes}${redis('frame')}`
    case 'cluster-fanout': return `${v(r.deliveries_per_s)} deliveries/s${nodes}${redis('stats_message')}`
    case 'cluster-command': return `post p99 ${v(r.post_p99_ms)} ms${nodes}${redis('robot_command')}`
    case 'cluster-rss': return `${v(r.rss_mib)} MiB after a full GC, idle`
    default: return ''
  }
}
