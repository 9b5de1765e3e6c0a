// npm run bench: United against a bare Aedes broker, the same workloads in the
// same run. United (dist/src/server.js, on DATABASE_URL or a fresh SQLite
// file) and the bare broker (bare.ts) run as child processes, so that their
// CPU time and RSS can be read from /proc; the robots and users are mqtt.js
// clients in this process. Prints one JSON line per scenario and target on
// stdout (the United line carries `ratio` = United/bare of `ratio_of`), a
// summary on stderr, and writes the chart (chart.svg beside this file).
//
//   npm run bench -- [--robots 100] [--window 10] [--duration 30 | --frames N]
//                    [--scenarios a,b,…] [--idle 1000,5000] [--chart 10,50,100,200]
//                    [--storm 100,5000] [--bad-logins 32] [--history-frames 1000000]
//                    [--abuse-cases …] [--abuse-users 5] [--abuse-commands 1000000] [--abuse-retry now|after]
//   npm run bench -- --cluster [--cluster-storm 1000] [--scenarios …]   (two United nodes against one, cluster.ts)
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import type { MqttClient } from 'mqtt'
import { ABUSE_CASES, ABUSE_OFFLINE_ROBOTS, abuseExtra, runAbuse, type AbuseCase } from './abuse.js'
import { renderChart, type ChartPoint } from './chart.js'
import { CLUSTER_ALIASES, CLUSTER_SCENARIOS, clusterExtra, runCluster } from './cluster.js'
import { HISTORY_SCENARIOS, runHistory, type Meter, type RunnerTools } from './history.js'
import { MODELS_SCENARIOS, runModels } from './models.js'
import { closedLoop, connect, mapLimit, now, paced, percentiles, Recorder, Robot, round } from './load.js'
import { provisionRoles, rolesRobotsNeeded, runRolesFanout, type RolesSetup } from './roles.js'
import { CommandCpuMeter, cpuSeconds, hostCpuSeconds, killChildren, ProcMeter, rssMiB, settle, sleep, stopChildren, type Spawned } from './proc.js'
import { Bare, United, type Target } from './targets.js'

const ROOT = resolve(import.meta.dirname, '..', '..', '..') // dist/test/bench → the repository
const FILES = {
  server: join(ROOT, 'dist', 'src', 'server.js'),
  manage: join(ROOT, 'dist', 'src', 'cli', 'manage.js'),
  bare: join(import.meta.dirname, 'bare.js')
}

const SCENARIOS = ['connection-storm', 'login-storm', 'tcp-ingest', 'ws-ingest', 'tcp-paced-1000', 'tcp-paced-5000', 'ws-fanout', 'command-latency', 'roles-fanout', 'chart', 'idle-rss', ...MODELS_SCENARIOS, ...HISTORY_SCENARIOS, 'abuse'] as const
type Scenario = typeof SCENARIOS[number]
const ALIASES: Record<string, Scenario[]> = {
  all: [...SCENARIOS],
  storm: ['connection-storm'],
  login: ['login-storm'],
  tcp: ['tcp-ingest'],
  ws: ['ws-ingest'],
  ingest: ['tcp-ingest', 'ws-ingest'],
  paced: ['tcp-paced-1000', 'tcp-paced-5000'],
  fanout: ['ws-fanout'],
  command: ['command-latency'],
  commands: ['command-latency'],
  roles: ['roles-fanout'],
  idle: ['idle-rss'],
  rss: ['idle-rss'],
  history: [...HISTORY_SCENARIOS],
  model: ['models'],
  'noisy-neighbour': ['abuse']
}

const USAGE = `usage: npm run bench -- [options]

  --robots N          robots of the workloads (default 100)
  --window N          frames in flight per robot, closed loop (default 10)
  --duration S        seconds per workload (default 30; command-latency runs at least 30)
  --frames N          frames per robot for the closed loops, instead of --duration
  --rounds N          closed loops alternate between United and bare in N rounds of
                      duration/N s each, so that the machine's drift weighs on both (default 3);
                      roles-fanout: N rounds of --duration s per variant (direct, groups, …)
  --warmup S          closed loops: S s of the same load on each target before the
                      measured rounds, not counted but for its errors (default 3; 0: none)
  --scenarios LIST    comma list (default all): ${SCENARIOS.join(', ')}
                      (aliases: storm, login, tcp, ws, ingest, paced, fanout, command, roles, idle,
                      history, model = models, noisy-neighbour = abuse)
  --storm LIST        robot counts of connection-storm (default: --robots)
  --bad-logins N      login-storm: concurrent bad log-ins while --robots robots stream at
                      --stream-hz (default 32)
  --idle LIST         idle robot counts for idle-rss (default 1000,5000)
  --chart LIST        robot counts of the chart, closed-loop TCP (default 10,50,100,200)
  --chart-file PATH   where the chart goes (default test/bench/chart.svg)
  --users N           WebSocket users of ws-fanout (default 100)
  --fanout-hz N       ws-fanout: the robot sends N frames/s (default 100; 0: closed loop with --window)
  --command-rate N    command-latency: commands per second (default 20)
  --roles-connections N  roles-fanout: connections of each watcher user, each subscribed to
                      robots/+/stats (default 1; more: more checks per stats message)
  --stream-hz N       command-latency: frames/s of each robot meanwhile (default 10; 0: none);
                      login-storm, history-retention and abuse stream at it too;
                      roles-fanout too (0: closed loop with --window)
  --history-frames N  history-*: frames of the robot that is aggregated and exported, and
                      expired frames that retention removes; abuse: frames of its own history
                      robot; models: frames of each of its two aggregated robots (default 1000000)
  --abuse-cases LIST  abuse: the cases after its baseline (default all): ${ABUSE_CASES.join(', ')}
  --abuse-users N     abuse: users of the history cases, each at HISTORY_CONCURRENCY (default 5:
                      5 × 2 = 10 at once, the node's HISTORY_NODE_CONCURRENCY of 8 and 2 over it)
  --abuse-commands N  abuse: finished commands in the table while /metrics is scraped (default 1000000)
  --abuse-retry WHEN  abuse: after a 429 the abusers ask again \`now\` (default) or \`after\` its Retry-After
  --timeout MIN       give up after this many minutes (default 45)
  --cluster           instead: two United nodes of one cluster (REDIS_URL, a redis-server of the
                      bench's own) against one standalone United, on PostgreSQL only; --scenarios
                      then picks among ${CLUSTER_SCENARIOS.join(', ')}
                      (aliases: tcp, ingest, command, fanout, storm, rss)
  --cluster-storm N   cluster-storm: robots at once, spread over both nodes (default 1000)

Env: DATABASE_URL (United's database; default: SQLite in a fresh temp directory; --cluster: a PostgreSQL URL).
     BENCH_SERVER_NODE_ARGS (extra node flags for United, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").`

class UsageError extends Error {}

/** United's figure over bare's for one field, or null when either is missing. */
function unitedOverBare (united: Fields, bare: Fields | undefined, key: string): number | null {
  const u = united[key]
  const b = bare?.[key]
  return typeof u === 'number' && typeof b === 'number' && b !== 0 ? round(u / b, 3) : null
}

function list (s: string, what: string): number[] {
  const out = s.split(',').filter((x) => x.trim() !== '').map((x) => Number(x))
  if (out.some((n) => !Number.isInteger(n) || n <= 0)) throw new UsageError(`--${what} takes positive integers separated by commas`)
  return out
}

function positive (s: string | undefined, what: string, integer = true): number {
  const n = Number(s)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new UsageError(`--${what} must be a positive ${integer ? 'integer' : 'number'}`)
  return n
}

function parseOptions () {
  try {
    return readOptions()
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}\n`)
      process.exit(64)
    }
    throw err
  }
}

function readOptions () {
  const { values } = parseArgs({
    options: {
      robots: { type: 'string', default: '100' },
      window: { type: 'string', default: '10' },
      duration: { type: 'string', default: '30' },
      frames: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '3' },
      scenarios: { type: 'string', default: 'all' },
      idle: { type: 'string', default: '1000,5000' },
      storm: { type: 'string' },
      'bad-logins': { type: 'string', default: '32' },
      chart: { type: 'string', default: '10,50,100,200' },
      'chart-file': { type: 'string' },
      users: { type: 'string', default: '100' },
      'fanout-hz': { type: 'string', default: '100' },
      'command-rate': { type: 'string', default: '20' },
      'roles-connections': { type: 'string', default: '1' },
      'stream-hz': { type: 'string', default: '10' },
      'history-frames': { type: 'string', default: '1000000' },
      'abuse-cases': { type: 'string', default: ABUSE_CASES.join(',') },
      'abuse-users': { type: 'string', default: '5' },
      'abuse-commands': { type: 'string', default: '1000000' },
      'abuse-retry': { type: 'string', default: 'now' },
      timeout: { type: 'string', default: '45' },
      cluster: { type: 'boolean', default: false },
      'cluster-storm': { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true
  })
  if (values.help === true) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const scenarios = new Set<Scenario>()
  // --cluster has scenarios of its own (cluster.ts): --scenarios picks among them
  const clusterScenarios = new Set<string>()
  for (const name of values.scenarios.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (values.cluster) {
      const names = name === 'all' ? [...CLUSTER_SCENARIOS] : CLUSTER_ALIASES[name] ?? ((CLUSTER_SCENARIOS as readonly string[]).includes(name) ? [name] : undefined)
      if (names === undefined) throw new UsageError(`unknown cluster scenario ${name}: ${CLUSTER_SCENARIOS.join(', ')}`)
      for (const n of names) clusterScenarios.add(n)
      continue
    }
    const names = ALIASES[name] ?? ((SCENARIOS as readonly string[]).includes(name) ? [name as Scenario] : undefined)
    if (names === undefined) throw new UsageError(`unknown scenario ${name}: ${SCENARIOS.join(', ')}`)
    for (const n of names) scenarios.add(n)
  }
  const abuseCases = new Set<AbuseCase>()
  for (const name of values['abuse-cases'].split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!(ABUSE_CASES as readonly string[]).includes(name)) throw new UsageError(`unknown abuse case ${name}: ${ABUSE_CASES.join(', ')}`)
    abuseCases.add(name as AbuseCase)
  }
  if (values['abuse-retry'] !== 'now' && values['abuse-retry'] !== 'after') throw new UsageError('--abuse-retry is now or after')
  return {
    robots: positive(values.robots, 'robots'),
    window: positive(values.window, 'window'),
    duration: positive(values.duration, 'duration', false),
    frames: values.frames === undefined ? undefined : positive(values.frames, 'frames'),
    // with --frames each robot sends its frames in one go: rounds would not split them
    rounds: values.frames === undefined ? positive(values.rounds, 'rounds') : 1,
    warmup: nonNegative(values.warmup, 'warmup'),
    scenarios,
    idle: [...new Set(list(values.idle, 'idle'))].sort((a, b) => a - b),
    storm: values.storm === undefined ? undefined : [...new Set(list(values.storm, 'storm'))].sort((a, b) => a - b),
    badLogins: positive(values['bad-logins'], 'bad-logins'),
    chart: [...new Set(list(values.chart, 'chart'))].sort((a, b) => a - b),
    chartFile: resolve(values['chart-file'] ?? join(ROOT, 'test', 'bench', 'chart.svg')),
    users: positive(values.users, 'users'),
    fanoutHz: nonNegative(values['fanout-hz'], 'fanout-hz'),
    commandRate: positive(values['command-rate'], 'command-rate', false),
    rolesConnections: positive(values['roles-connections'], 'roles-connections'),
    streamHz: nonNegative(values['stream-hz'], 'stream-hz'),
    historyFrames: positive(values['history-frames'], 'history-frames'),
    abuseCases,
    abuseUsers: positive(values['abuse-users'], 'abuse-users'),
    abuseCommands: nonNegative(values['abuse-commands'], 'abuse-commands'),
    abuseRetry: values['abuse-retry'] as 'now' | 'after',
    timeoutMin: positive(values.timeout, 'timeout', false),
    cluster: values.cluster,
    clusterScenarios,
    clusterStorm: positive(values['cluster-storm'], 'cluster-storm')
  }
}

function nonNegative (s: string, what: string): number {
  const n = Number(s)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${what} must be a number ≥ 0`)
  return n
}
type Fields = Record<string, unknown>

// each line with the time of day (UTC), so that it can be matched with the server's and the database's logs
const say = (s: string): void => { process.stderr.write(`bench: ${new Date().toISOString().slice(11, 19)} ${s}\n`) }
const range = (n: number, from = 0): number[] => Array.from({ length: Math.max(0, n - from) }, (_, i) => from + i)
const errText = (err: unknown): string => err instanceof Error ? err.message : String(err)

/** A process the runner watches: a target, a cluster node, the cluster bench's redis-server. */
interface Watched { readonly proc: { readonly pid: number } }

/** Starts (after letting both servers settle) and stops the measurement of the server's CPU and RSS. */
class Mark {
  private meter: ProcMeter | undefined
  private cpu0: NodeJS.CpuUsage | undefined
  private t0 = 0
  private host0 = { busy: 0, steal: 0 }
  private others0 = 0
  private dbMeter: CommandCpuMeter | undefined
  private lag: IntervalHistogram | undefined
  result: Fields | undefined
  /** `db`: the name of the database server's processes when it runs on this machine (postgres) */
  constructor (private readonly target: Watched, private readonly others: Watched[], private readonly db?: string) {}

  async start (): Promise<void> {
    await Promise.all([this.target, ...this.others].map(async (t) => { await settle(t.proc.pid) }))
    this.meter = new ProcMeter(this.target.proc.pid)
    this.cpu0 = process.cpuUsage()
    this.t0 = now()
    this.host0 = hostCpuSeconds()
    this.others0 = this.othersCpu()
    this.dbMeter = this.db === undefined ? undefined : new CommandCpuMeter(this.db)
    this.lag = monitorEventLoopDelay({ resolution: 5 })
    this.lag.enable()
  }

  private othersCpu (): number {
    return this.others.reduce((sum, t) => { try { return sum + cpuSeconds(t.proc.pid) } catch { return sum } }, 0)
  }

  stop (): void {
    if (this.meter === undefined || this.result !== undefined) return
    const m = this.meter.stop()
    const c = process.cpuUsage(this.cpu0)
    const client = (c.user + c.system) / 1e6
    const host1 = hostCpuSeconds()
    const host = host1.busy - this.host0.busy
    const db = this.dbMeter?.stop() ?? 0
    this.lag?.disable()
    this.result = {
      server_cpu_s: round(m.cpu_s),
      server_cpu_pct: round((100 * m.cpu_s) / ((now() - this.t0) / 1000), 0),
      server_rss_mib: round(m.rss_mib, 1),
      ...(this.db === undefined ? {} : { db_cpu_s: round(db) }),
      client_cpu_s: round(client),
      // the load generator's longest event-loop stall: the latencies it measured include it
      client_stall_max_ms: this.lag === undefined ? undefined : round(this.lag.max / 1e6, 1),
      // CPU used meanwhile by anything else on the machine: a large value means the figures were disturbed
      other_cpu_s: round(Math.max(0, host - m.cpu_s - client - db - (this.othersCpu() - this.others0))),
      // of which the hypervisor ran something else on this VM's cores (steal time)
      steal_cpu_s: round(host1.steal - this.host0.steal)
    }
  }
}

/** The CPU and memory fields of several Marks of one target: sums, and the highest RSS and stall. */
function sumMarks (marks: Fields[], wallS: number): Fields {
  const sum = (key: string): number | undefined => marks.some((m) => typeof m[key] === 'number') ? round(marks.reduce((s, m) => s + (typeof m[key] === 'number' ? m[key] : 0), 0)) : undefined
  const max = (key: string): number | undefined => marks.some((m) => typeof m[key] === 'number') ? Math.max(...marks.map((m) => typeof m[key] === 'number' ? m[key] : 0)) : undefined
  const cpu = sum('server_cpu_s')
  const fields: Fields = {
    server_cpu_s: cpu,
    server_cpu_pct: cpu === undefined || wallS <= 0 ? undefined : round((100 * cpu) / wallS, 0),
    server_rss_mib: max('server_rss_mib'),
    db_cpu_s: sum('db_cpu_s'),
    client_cpu_s: sum('client_cpu_s'),
    other_cpu_s: sum('other_cpu_s'),
    steal_cpu_s: sum('steal_cpu_s'),
    client_stall_max_ms: max('client_stall_max_ms')
  }
  for (const k of Object.keys(fields)) if (fields[k] === undefined) delete fields[k]
  return fields
}

function errorFields (rec: Recorder): Fields {
  if (rec.errors === 0 && rec.duplicateAcks === 0) return { errors: 0 }
  return {
    errors: rec.errors,
    error_detail: { error_acks: rec.errorAcks, missing_acks: rec.missing, disconnects: rec.disconnects, failures: rec.failures, duplicate_acks: rec.duplicateAcks }
  }
}

async function main (): Promise<void> {
  const opts = parseOptions()
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`
  const databaseUrl = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? process.env.DATABASE_URL : undefined
  const dbLabel = databaseUrl === undefined ? 'SQLite (embedded, temp dir)' : databaseUrl.startsWith('sqlite:') ? databaseUrl : `PostgreSQL ${databaseUrl.replace(/\/\/[^@/]*@/, '//***@')}`
  if (opts.cluster && !/^postgres(ql)?:\/\//.test(databaseUrl ?? '')) {
    // before anything starts: United itself refuses REDIS_URL on SQLite (exit 78)
    process.stderr.write('bench: --cluster needs a PostgreSQL DATABASE_URL: cluster mode (REDIS_URL) runs on PostgreSQL only (docs/operations.md §4). For example:\n' +
      '  createdb -h 127.0.0.1 -U postgres united_bench_cluster\n' +
      '  DATABASE_URL=postgres://postgres@127.0.0.1:5432/united_bench_cluster npm run bench -- --cluster\n')
    process.exit(64)
  }
  const watchdog = setTimeout(() => {
    say(`gave up after ${opts.timeoutMin} minutes (--timeout)`)
    void shutdown(2)
  }, opts.timeoutMin * 60_000)
  watchdog.unref()

  // a PostgreSQL server on this machine: its CPU is reported as db_cpu_s (all its processes, whoever they serve)
  const dbProcess = databaseUrl !== undefined && /^postgres(ql)?:\/\/([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(databaseUrl) ? 'postgres' : undefined
  // --cluster: `united` is the standalone United the cluster is compared with; no bare broker
  const united = new United(FILES, runId, databaseUrl, { label: opts.cluster ? 'United (standalone)' : 'United' })
  const bare = new Bare(FILES.bare)
  cleanups.push(() => { united.removeDir() })
  const targets: Target[] = opts.cluster ? [united] : [united, bare]
  const has = (s: Scenario): boolean => opts.scenarios.has(s)

  say(`run ${runId}: ${opts.robots} robots, window ${opts.window}, ${opts.frames !== undefined ? `${opts.frames} frames/robot` : `${opts.duration} s`} per workload; United on ${dbLabel}; ${cpus().length} CPUs; Node ${process.version}`)
  say(`scenarios: ${[...(opts.cluster ? opts.clusterScenarios : opts.scenarios)].join(', ')}`)
  {
    const b0 = hostCpuSeconds().busy
    const c0 = process.cpuUsage()
    await sleep(2000)
    const c = process.cpuUsage(c0)
    const busy = (hostCpuSeconds().busy - b0 - (c.user + c.system) / 1e6) / 2
    if (busy > 0.15) say(`warning: other processes use ${Math.round(busy * 100)}% of a core on this ${cpus().length}-CPU machine: the figures will be disturbed (see other_cpu_s)`)
  }

  // What is needed: robots 0..n-1 (every workload takes the first ones), the fan-out robot and its users.
  const stormCounts = opts.storm ?? [opts.robots]
  const needed = opts.cluster
    ? Math.max(opts.robots, opts.clusterScenarios.has('cluster-storm') ? opts.clusterStorm : 0)
    : Math.max(
      opts.robots,
      has('connection-storm') ? Math.max(...stormCounts) : 0,
      has('chart') ? Math.max(...opts.chart) : 0,
      has('idle-rss') ? Math.max(...opts.idle) : 0,
      // abuse: robots after the fleet's that stay offline until commands are queued for them
      has('abuse') ? opts.robots + ABUSE_OFFLINE_ROBOTS : 0,
      // roles-fanout: a group of 1,000 robots, the streaming ones among them
      has('roles-fanout') ? rolesRobotsNeeded(opts.robots) : 0
    )
  const fanoutUsers = (opts.cluster ? opts.clusterScenarios.has('cluster-fanout') : has('ws-fanout')) ? opts.users : 0
  const t0 = now()
  if (!opts.cluster) await bare.start()
  await united.createSuperuser()
  await united.start()
  say(`United up (${united.httpUrl}, ${united.mqttUrl})${opts.cluster ? '' : `, bare up (${bare.mqttUrl}, ${bare.wsUrl})`}; provisioning ${needed} robots and ${fanoutUsers} users through the Management API…`)
  await united.provision(needed, fanoutUsers, (done, total) => { say(`  ${done}/${total} robots`) })
  // after provision(), which counts the fan-out users from the start of the users' list
  const rolesSetup: RolesSetup | undefined = !opts.cluster && has('roles-fanout') ? await provisionRoles(united, opts.robots, say) : undefined
  say(`provisioned in ${((now() - t0) / 1000).toFixed(1)} s; restarting United so that provisioning does not weigh on the measurements`)
  await united.stop()
  await united.start()

  const results: Fields[] = []
  let tagCounter = 0
  const nextTag = (): string => `s${++tagCounter}`

  /** Runs a scenario on United, then on bare, and prints both lines. */
  async function pair (scenario: string, ratioOf: string, run: (t: Target, mark: Mark) => Promise<Fields>): Promise<Fields[]> {
    const lines: Fields[] = []
    for (const t of targets) {
      const mark = new Mark(t, targets.filter((o) => o !== t), dbProcess)
      let fields: Fields
      say(`${scenario} on ${t.name}…`)
      try {
        fields = await run(t, mark)
      } catch (err) {
        fields = { error: errText(err) }
        say(`${scenario} on ${t.name} failed: ${errText(err)}`)
      }
      mark.stop()
      if (t.proc.exited()) throw new Error(`${t.name} exited during ${scenario}; its last output:\n${t.proc.output().slice(-4000)}`)
      lines.push({ scenario, target: t.name, ...fields, ...(mark.result ?? {}) })
    }
    const [u, b] = lines as [Fields, Fields]
    Object.assign(u, { ratio: unitedOverBare(u, b, ratioOf), ratio_of: ratioOf })
    emit(lines)
    return lines
  }

  /** The processes whose warnings a line of each target counts (the cluster bench adds its nodes). */
  const warningSources = new Map<string, () => Spawned[]>([['united', () => [united.proc]]])

  function emit (lines: Fields[]): void {
    for (const l of lines) {
      const warnings = (warningSources.get(String(l.target))?.() ?? []).reduce((n, p) => n + p.warnings.length, 0)
      if (warnings > 0) l.server_warnings_total = warnings
      process.stdout.write(JSON.stringify(l) + '\n')
      results.push(l)
    }
  }

  async function openFleet (t: Target, indexes: number[], transport: 'tcp' | 'ws', commands: boolean, rec: Recorder): Promise<Robot[]> {
    const url = transport === 'tcp' ? t.mqttUrl : t.wsUrl
    let reported = 0
    const robots = await mapLimit(indexes, 50, async (i) => {
      try {
        return await Robot.connect(url, await t.robot(i), { commands, tag: transport })
      } catch (err) {
        rec.failures++
        if (reported++ < 3) say(`robot ${i} could not connect to ${t.name}: ${errText(err)}`)
        return null
      }
    })
    return robots.filter((r): r is Robot => r !== null)
  }

  async function closeFleet (fleet: Robot[]): Promise<void> {
    await mapLimit(fleet, 200, async (r) => { await r.close() })
  }

  // ---- the scenarios -------------------------------------------------------

  /**
   * Closed-loop ingest on both targets, in `opts.rounds` alternating rounds
   * (United, bare, United, bare…) of duration/rounds seconds each, with both
   * fleets connected throughout: a slow minute of the machine then weighs on
   * both targets instead of on whichever ran during it. Frames, time, CPU and
   * latency samples add up over the rounds. Before the first round each
   * target gets `opts.warmup` seconds of the same load, measured for nothing
   * but its errors: the first seconds of a fresh process cost more per frame
   * (code not yet optimized by V8, a heap still growing, PostgreSQL's first
   * pages of an empty table), and a fleet streams for hours, not seconds.
   */
  async function ingestPair (scenario: string, transport: 'tcp' | 'ws', robots: number): Promise<Fields[]> {
    const sides = targets.map((t) => ({ t, rec: new Recorder(), fleet: [] as Robot[], elapsed: 0, marks: [] as Fields[], error: undefined as string | undefined }))
    say(`${scenario} on ${targets.map((t) => t.name).join(' and ')}, ${opts.warmup > 0 ? `${opts.warmup} s of warm-up each, then ` : ''}${opts.rounds} alternating round${opts.rounds === 1 ? '' : 's'}…`)
    try {
      for (const side of sides) {
        try {
          await side.t.prepareRobots(robots)
          side.fleet = await openFleet(side.t, range(robots), transport, false, side.rec)
        } catch (err) {
          side.error = errText(err)
          say(`${scenario} on ${side.t.name} failed: ${side.error}`)
        }
      }
      for (const side of sides) {
        if (side.error !== undefined || opts.warmup === 0) continue
        const warm = new Recorder()
        try {
          await closedLoop(side.fleet, warm, { window: opts.window, durationS: opts.warmup, tag: nextTag() })
        } catch (err) {
          side.error = errText(err)
          say(`${scenario} on ${side.t.name} failed while warming up: ${side.error}`)
        }
        side.rec.addErrors(warm)
      }
      for (let r = 0; r < opts.rounds; r++) {
        for (const side of sides) {
          if (side.error !== undefined) continue
          const mark = new Mark(side.t, targets.filter((o) => o !== side.t), dbProcess)
          try {
            await mark.start()
            side.elapsed += await closedLoop(side.fleet, side.rec, { window: opts.window, frames: opts.frames, durationS: opts.duration / opts.rounds, tag: nextTag() })
          } catch (err) {
            side.error = errText(err)
            say(`${scenario} on ${side.t.name} failed: ${side.error}`)
          }
          mark.stop()
          side.marks.push(mark.result ?? {})
          if (side.t.proc.exited()) throw new Error(`${side.t.name} exited during ${scenario}; its last output:\n${side.t.proc.output().slice(-4000)}`)
        }
      }
    } finally {
      for (const side of sides) await closeFleet(side.fleet)
    }
    const lines: Fields[] = sides.map(({ t, rec, elapsed, marks, error }) => ({
      scenario,
      target: t.name,
      ...(error !== undefined
        ? { error }
        : {
            robots,
            window: opts.window,
            rounds: opts.rounds,
            warmup_s: opts.warmup,
            frames: rec.ok,
            duration_s: round(elapsed),
            frames_per_s: round(rec.ok / elapsed, 0),
            ...rec.latency(),
            ...errorFields(rec)
          }),
      ...sumMarks(marks, elapsed)
    }))
    const [u, b] = lines as [Fields, Fields]
    Object.assign(u, { ratio: unitedOverBare(u, b, 'frames_per_s'), ratio_of: 'frames_per_s' })
    emit(lines)
    return lines
  }

  async function pacedRun (t: Target, mark: Mark, rate: number): Promise<Fields> {
    const rec = new Recorder()
    await t.prepareRobots(opts.robots)
    const fleet = await openFleet(t, range(opts.robots), 'tcp', false, rec)
    try {
      await mark.start()
      const elapsed = await paced(fleet, rec, { totalRate: rate, durationS: opts.duration, tag: nextTag() })
      mark.stop()
      return {
        robots: opts.robots,
        rate_hz_per_robot: round(rate / opts.robots, 1),
        frames: rec.ok,
        duration_s: round(elapsed),
        frames_per_s: round(rec.ok / elapsed, 0),
        ...rec.latency(),
        ...errorFields(rec)
      }
    } finally {
      await closeFleet(fleet)
    }
  }

  /** `spread`: robot i obtains its token from and connects to spread[i % spread.length] (the cluster's nodes); by default all go to `t`. */
  async function storm (t: Target, mark: Meter, robots: number, spread: Target[] = [t]): Promise<Fields> {
    const rec = new Recorder()
    await mark.start()
    const start = now()
    const fleet = await Promise.all(range(robots).map(async (i) => {
      const t1 = now()
      const node = spread[i % spread.length] as Target
      try {
        const robot = await Robot.connect(node.mqttUrl, await node.freshRobot(i), { commands: true, tag: 'tcp' })
        rec.samples.push(now() - t1)
        return robot
      } catch (err) {
        if (rec.failures++ < 3) say(`storm: robot ${i} on ${node === t ? t.name : `node ${i % spread.length}`}: ${errText(err)}`)
        return null
      }
    }))
    const total = (now() - start) / 1000
    mark.stop()
    const ok = fleet.filter((r): r is Robot => r !== null)
    await closeFleet(ok)
    return {
      robots,
      connected: ok.length,
      total_s: round(total, 3),
      connects_per_s: round(ok.length / total, 0),
      ...rec.latency(),
      ...errorFields(rec),
      note: t.name === 'united' ? 'each robot: POST obtain_token, CONNECT, SUBSCRIBE ack+commands; latencies per robot' : 'each robot: CONNECT, SUBSCRIBE (no token); latencies per robot'
    }
  }

  /** `watchers`: where the users log in and connect over WebSocket (a cluster's other node); by default `t`, where the robot is. */
  async function fanout (t: Target, mark: Meter, watchers: Target = t): Promise<Fields> {
    const rec = new Recorder()
    const robotCreds = await t.fanoutRobot()
    const topic = `robots/${robotCreds.uuid}/stats`
    const sentAt = new Map<number, number>()
    const latencies: number[] = []
    let deliveries = 0
    let measuring = false
    let userDisconnects = 0
    let userFailures = 0
    const users = (await mapLimit(range(opts.users), 20, async (k) => {
      try {
        const creds = await watchers.user(k)
        const client = await connect(watchers.wsUrl, { username: creds.username, password: creds.password, clientId: `bench-user-${runId}-${k}` })
        client.on('message', (tp: string, payload: Buffer) => {
          if (tp !== topic || !measuring) return
          let msg: { position_x?: unknown, data?: { position_x?: unknown } }
          try { msg = JSON.parse(payload.toString()) as typeof msg } catch { return }
          const x = msg.position_x ?? msg.data?.position_x
          const at = typeof x === 'number' ? sentAt.get(x) : undefined
          if (at === undefined) return
          deliveries++
          latencies.push(now() - at)
        })
        client.on('close', () => { if (measuring) userDisconnects++ })
        const granted = await client.subscribeAsync(topic, { qos: 0 })
        if (granted.some((g) => (g.qos as number) === 128)) throw new Error(`subscription to ${topic} refused`)
        return client
      } catch (err) {
        if (userFailures++ < 3) say(`fan-out user ${k} on ${t.name}: ${errText(err)}`)
        return null
      }
    })).filter((c): c is MqttClient => c !== null)
    const robot = await Robot.connect(t.mqttUrl, robotCreds, { commands: false, tag: 'fanout' })
    try {
      await mark.start()
      let seq = 0
      robot.nextX = () => { const s = seq++; sentAt.set(s, now()); return s }
      measuring = true
      const elapsed = opts.fanoutHz > 0
        ? await paced([robot], rec, { totalRate: opts.fanoutHz, durationS: opts.duration, tag: nextTag() })
        : await closedLoop([robot], rec, { window: opts.window, frames: opts.frames, durationS: opts.duration, tag: nextTag() })
      await sleep(500) // the last statistics are on their way
      measuring = false
      mark.stop()
      const lat = new Recorder()
      lat.samples = latencies
      const ack = rec.latency()
      rec.failures += userFailures
      rec.disconnects += userDisconnects
      return {
        robots: 1,
        users: users.length,
        ...(opts.fanoutHz > 0 ? { rate_hz: opts.fanoutHz } : { window: opts.window }),
        frames: rec.ok,
        duration_s: round(elapsed),
        frames_per_s: round(rec.ok / elapsed, 0),
        deliveries,
        deliveries_per_s: round(deliveries / elapsed, 0),
        deliveries_per_frame: round(deliveries / Math.max(1, rec.ok), 2),
        ...lat.latency(),
        ack_p50_ms: ack.p50_ms,
        ack_p99_ms: ack.p99_ms,
        ...errorFields(rec),
        note: 'p50/p99/max: frame publish → stats message at a user; United merges the frames of one storage batch into one stats message'
      }
    } finally {
      measuring = false
      await robot.close()
      await mapLimit(users, 100, async (c) => { await c.endAsync().catch(() => {}) })
    }
  }

  /**
   * docs/protocol.md §10: log-ins must not starve ingest. On United only (bare Aedes
   * has no log-in): --robots robots stream at --stream-hz for --duration s,
   * once quiet and once while --bad-logins clients post wrong passwords
   * back to back. Each of them comes from its own loopback address and moves
   * to a fresh one whenever it is blocked (429), as an attacker with many
   * addresses would, so that every attempt it can make costs a password hash.
   */
  async function loginStorm (): Promise<Fields[]> {
    const rate = opts.robots * Math.max(opts.streamHz, 1)
    const lines: Fields[] = []
    await united.prepareRobots(opts.robots)
    for (const withStorm of [false, true]) {
      const rec = new Recorder()
      const mark = new Mark(united, [bare], dbProcess)
      const fleet = await openFleet(united, range(opts.robots), 'tcp', false, rec)
      const statuses = new Map<number, number>()
      let stop = false
      let nextAddress = 0
      const address = (): string => { const k = nextAddress++; return `127.1.${Math.floor(k / 250) % 250}.${(k % 250) + 1}` }
      let attempts = 0
      try {
        say(`login-storm on united, ${withStorm ? `with ${opts.badLogins} concurrent bad log-ins` : 'without bad log-ins'}: ${opts.robots} robots at ${rate / opts.robots} Hz for ${opts.duration} s…`)
        await mark.start()
        const attackers = withStorm
          ? Array.from({ length: opts.badLogins }, async () => {
            let from = address()
            while (!stop) {
              const status = await united.badLogin(from)
              attempts++
              statuses.set(status, (statuses.get(status) ?? 0) + 1)
              if (status === 429) from = address()
              if (status === 0 || status === 503) await sleep(10)
            }
          })
          : []
        const elapsed = await paced(fleet, rec, { totalRate: rate, durationS: opts.duration, tag: nextTag() })
        stop = true
        await Promise.all(attackers)
        mark.stop()
        lines.push({
          scenario: 'login-storm',
          target: 'united',
          storm: withStorm,
          robots: opts.robots,
          rate_hz_per_robot: rate / opts.robots,
          frames: rec.ok,
          frames_per_s: round(rec.ok / elapsed, 0),
          ...rec.latency(),
          ...errorFields(rec),
          ...(withStorm ? { bad_logins: opts.badLogins, login_attempts: attempts, login_attempts_per_s: round(attempts / elapsed, 0), login_statuses: Object.fromEntries(statuses), addresses_used: nextAddress } : {}),
          ...(mark.result ?? {}),
          note: 'p50/p99/max: frame-ack latency of the streaming robots'
        })
      } finally {
        stop = true
        await closeFleet(fleet)
      }
    }
    const [quiet, stormy] = lines as [Fields, Fields]
    stormy.ratio = typeof stormy.p99_ms === 'number' && typeof quiet.p99_ms === 'number' && quiet.p99_ms > 0 ? round(stormy.p99_ms / quiet.p99_ms, 2) : null
    stormy.ratio_of = 'p99_ms (with the storm / without)'
    return lines
  }

  /** `via`: where the commands are posted (a cluster's other node); by default `t`, where the robots are. */
  async function commandLatency (t: Target, mark: Meter, via: Target = t): Promise<Fields> {
    const rec = new Recorder()
    const cmd = new Recorder()
    await t.prepareRobots(opts.robots)
    const fleet = await openFleet(t, range(opts.robots), 'tcp', true, rec)
    const received = new Map<string, number>()
    for (const r of fleet) r.onCommand = (id, at) => { received.set(id, at) }
    const posted = new Map<string, number>()
    const statuses = new Map<number, number>()
    const responses: number[] = []
    const rate = opts.robots * opts.streamHz
    // At least 30 s: at 20 commands/s that is ~570 samples, enough for a p99
    // that one hiccup (a checkpoint, a GC) does not decide alone.
    const duration = Math.max(opts.duration, 30)
    try {
      // A user logs in once and then sends commands: the log-in (a scrypt
      // hash, slow by design) is not part of any command's latency.
      // Left inside, it delayed the first commands by up to 220 ms and
      // decided the p99 of a fresh process.
      await via.prepareCommander()
      await mark.start()
      const poster = (async () => {
        await sleep(1000) // the stream is up
        const interval = 1000 / opts.commandRate
        const count = Math.max(1, Math.floor((duration - 1.5) * opts.commandRate))
        const start = now()
        const inflight: Array<Promise<void>> = []
        const names = ['auto', 'idle', 'manual']
        for (let k = 0; k < count; k++) {
          const wait = start + k * interval - now()
          if (wait > 0) await sleep(wait)
          const robot = fleet[k % fleet.length] as Robot
          const sent = now()
          inflight.push(via.command(robot.uuid, names[k % names.length] as string).then((res) => {
            responses.push(now() - sent)
            if (res.status === 201 && res.id !== undefined) posted.set(res.id, sent)
            else { cmd.failures++; statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1) }
          }, () => { cmd.failures++ }))
        }
        await Promise.all(inflight)
      })()
      const stream = rate > 0 ? paced(fleet, rec, { totalRate: rate, durationS: duration, tag: nextTag() }) : sleep(duration * 1000).then(() => duration)
      const [, elapsed] = await Promise.all([poster, stream])
      const until = now() + 5000
      while (now() < until && [...posted.keys()].some((id) => !received.has(id))) await sleep(20)
      mark.stop()
      for (const [id, sent] of posted) {
        const at = received.get(id)
        if (at === undefined) cmd.missing++
        else cmd.samples.push(at - sent)
      }
      if (statuses.size > 0) say(`command-latency on ${t.name}: HTTP statuses other than 201: ${JSON.stringify(Object.fromEntries(statuses))}`)
      const ack = rec.latency()
      const errors = errorFields(rec)
      const post = percentiles(responses)
      return {
        robots: opts.robots,
        stream_frames_per_s: round(rec.ok / elapsed, 0),
        commands: cmd.samples.length,
        commands_per_s: opts.commandRate,
        ...cmd.latency(),
        errors: cmd.errors + rec.errors,
        ...(cmd.errors > 0 ? { command_errors: { missing: cmd.missing, failed_posts: cmd.failures } } : {}),
        ...(rec.errors > 0 ? { stream_errors: errors.error_detail } : {}),
        post_p50_ms: post.p50_ms,
        post_p99_ms: post.p99_ms,
        ack_p50_ms: ack.p50_ms,
        ack_p99_ms: ack.p99_ms,
        note: `p50/p99/max: REST POST sent → command received by the robot, while every robot streams at ${opts.streamHz} Hz; post_*: REST response time`
      }
    } finally {
      for (const r of fleet) r.onCommand = null
      await closeFleet(fleet)
    }
  }

  /** RSS per idle robot connection: connect robots up to each count and compare the server's RSS with its RSS before. */
  async function idleRss (t: Target): Promise<Fields[]> {
    const max = Math.max(...opts.idle)
    const t1 = now()
    await t.prepareRobots(max)
    if (t.name === 'united') say(`  tokens for ${max} robots obtained in ${((now() - t1) / 1000).toFixed(1)} s`)
    await Promise.all(targets.map(async (o) => { await settle(o.proc.pid) }))
    // RSS after a forced full garbage collection (the median of three readings)
    const median = async (): Promise<number> => {
      await t.gc()
      await sleep(500)
      const xs: number[] = []
      for (let k = 0; k < 3; k++) { xs.push(rssMiB(t.proc.pid)); await sleep(300) }
      return xs.sort((a, b) => a - b)[1] as number
    }
    const base = await median()
    const rec = new Recorder()
    const fleet: Robot[] = []
    const lines: Fields[] = []
    let next = 0
    try {
      for (const count of opts.idle) {
        const cpu = new ProcMeter(t.proc.pid)
        const start = now()
        const more = await openFleet(t, range(count, next), 'tcp', true, rec)
        next = count
        for (const r of more) r.rec = rec
        fleet.push(...more)
        const connectS = (now() - start) / 1000
        await settle(t.proc.pid)
        await sleep(1000)
        const rss = await median()
        const m = cpu.stop()
        lines.push({
          scenario: 'idle-rss',
          target: t.name,
          robots: count,
          connected: fleet.length,
          connect_s: round(connectS),
          rss_base_mib: round(base, 1),
          rss_mib: round(rss, 1),
          rss_per_conn_kib: round(((rss - base) * 1024) / Math.max(1, fleet.length), 1),
          ...errorFields(rec),
          server_cpu_s: round(m.cpu_s),
          server_rss_mib: round(m.rss_mib, 1)
        })
      }
    } finally {
      for (const r of fleet) r.rec = null
      await mapLimit(fleet, 500, async (r) => { r.kill() })
    }
    return lines
  }

  // ---- the run ---------------------------------------------------------------

  if (opts.cluster) {
    const nodes = await runCluster({
      standalone: united,
      files: FILES,
      runId,
      databaseUrl: databaseUrl as string,
      scenarios: opts.clusterScenarios,
      robots: opts.robots,
      stormRobots: opts.clusterStorm,
      users: opts.users,
      window: opts.window,
      duration: opts.duration,
      rounds: opts.rounds,
      warmup: opts.warmup,
      say,
      emit,
      warningsOf: (target, procs) => { warningSources.set(target, procs) },
      cleanup: (fn) => { cleanups.push(fn) },
      mark: (target, others) => new Mark(target, others, dbProcess),
      openFleet,
      closeFleet,
      nextTag,
      errorFields,
      commandLatency,
      fanout,
      storm
    })
    summary(results, [{ label: 'United (standalone)', proc: united.proc }, ...nodes])
    return
  }

  if (has('connection-storm')) for (const count of stormCounts) await pair('connection-storm', 'total_s', async (t, m) => await storm(t, m, count))
  if (has('login-storm')) emit(await loginStorm())
  let tcpIngest: Fields[] | undefined
  if (has('tcp-ingest')) tcpIngest = await ingestPair('tcp-ingest', 'tcp', opts.robots)
  if (has('ws-ingest')) await ingestPair('ws-ingest', 'ws', opts.robots)
  if (has('tcp-paced-1000')) await pair('tcp-paced-1000', 'p50_ms', async (t, m) => await pacedRun(t, m, 1000))
  if (has('tcp-paced-5000')) await pair('tcp-paced-5000', 'p50_ms', async (t, m) => await pacedRun(t, m, 5000))
  if (has('ws-fanout')) await pair('ws-fanout', opts.fanoutHz > 0 ? 'p50_ms' : 'deliveries_per_s', fanout)
  if (has('command-latency')) await pair('command-latency', 'p50_ms', commandLatency)
  // What the roles, history and abuse scenarios borrow from the runner.
  const tools: RunnerTools = {
    say,
    emit,
    mark: () => new Mark(united, [bare], dbProcess),
    openFleet: async (indexes, rec) => await openFleet(united, indexes, 'tcp', false, rec),
    closeFleet,
    nextTag,
    errorFields
  }
  if (rolesSetup !== undefined) {
    await runRolesFanout({
      united,
      setup: rolesSetup,
      runId,
      robots: opts.robots,
      streamHz: opts.streamHz,
      window: opts.window,
      durationS: opts.duration,
      rounds: opts.rounds,
      warmupS: opts.warmup,
      connections: opts.rolesConnections,
      sumMarks,
      ...tools
    })
  }

  if (has('chart')) {
    const points: Fields[] = []
    for (const count of opts.chart) {
      if (count === opts.robots && tcpIngest !== undefined) {
        const copies = tcpIngest.map((l) => ({ ...l, scenario: 'chart-tcp-ingest', same_as: 'tcp-ingest' }))
        emit(copies)
        points.push(...copies)
      } else {
        points.push(...await ingestPair('chart-tcp-ingest', 'tcp', count))
      }
    }
    const series = (name: string): ChartPoint[] => points.filter((p) => p.target === name && typeof p.frames_per_s === 'number')
      .map((p) => ({ robots: p.robots as number, frames_per_s: p.frames_per_s as number, p99_ms: p.p99_ms as number }))
    const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU'
    const svg = renderChart({
      title: 'United vs bare Aedes: closed-loop MQTT ingest over TCP',
      subtitle: `QoS 1, ~200-byte position frames, window ${opts.window}, ${opts.frames !== undefined ? `${opts.frames} frames/robot` : `${opts.duration} s`} per point; United on ${databaseUrl === undefined ? 'embedded SQLite' : dbLabel.split(' ')[0]}; ${cpus().length} × ${cpu}; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}`,
      counts: opts.chart,
      series: [
        { label: 'United (auth + storage)', color: '#1f6feb', points: series('united') },
        { label: 'bare Aedes (ack only)', color: '#d9822b', points: series('bare') }
      ]
    })
    writeFileSync(opts.chartFile, svg)
    say(`chart written to ${opts.chartFile}`)
  }

  if (has('idle-rss')) {
    const lines: Fields[][] = []
    for (const t of targets) {
      // A fresh process, as the figures of the issue were taken: RSS that an
      // earlier scenario's bursts left behind says nothing about idle robots.
      say(`idle-rss on ${t.name} (restarted)…`)
      try {
        await t.stop()
        await t.start()
        lines.push(await idleRss(t))
      } catch (err) {
        say(`idle-rss on ${t.name} failed: ${errText(err)}`)
        lines.push(opts.idle.map((count) => ({ scenario: 'idle-rss', target: t.name, robots: count, error: errText(err) })))
      }
      if (t.proc.exited()) throw new Error(`${t.name} exited during idle-rss; its last output:\n${t.proc.output().slice(-4000)}`)
    }
    const [u, b] = lines as [Fields[], Fields[]]
    u.forEach((l, i) => {
      // ratio: the whole process after a full GC; peak_ratio: the highest RSS
      // sampled while the robots connected (no forced GC); per_conn_ratio: the growth per connection
      l.ratio = unitedOverBare(l, b[i], 'rss_mib')
      l.ratio_of = 'rss_mib'
      l.peak_ratio = unitedOverBare(l, b[i], 'server_rss_mib')
      l.per_conn_ratio = unitedOverBare(l, b[i], 'rss_per_conn_kib')
      emit([l, b[i] as Fields])
    })
  }

  // Robot models: type-4 ingest against type 1, then aggregates of loaded frames (it restarts United).
  if (has('models')) {
    await runModels({
      united,
      databaseUrl,
      runId,
      robots: opts.robots,
      window: opts.window,
      durationS: opts.duration,
      rounds: opts.rounds,
      warmupS: opts.warmup,
      frames: opts.historyFrames,
      sumMarks,
      ...tools
    })
  }

  // Last: they load millions of rows and restart United, the retention one with FRAME_RETENTION_DAYS set.
  if (HISTORY_SCENARIOS.some(has)) {
    await runHistory({
      united,
      databaseUrl,
      dbProcess,
      scenarios: opts.scenarios,
      frames: opts.historyFrames,
      robots: opts.robots,
      streamHz: Math.max(opts.streamHz, 1),
      ...tools
    })
  }

  // After the history scenarios: it loads its own history and commands, and restarts United.
  if (has('abuse')) {
    await runAbuse({
      united,
      databaseUrl,
      dbProcess,
      cases: opts.abuseCases,
      robots: opts.robots,
      streamHz: Math.max(opts.streamHz, 1),
      offlineFrom: opts.robots,
      durationS: opts.duration,
      historyFrames: opts.historyFrames,
      commandRows: Math.floor(opts.abuseCommands),
      users: opts.abuseUsers,
      retry: opts.abuseRetry,
      ...tools
    })
  }

  summary(results, [{ label: 'United', proc: united.proc }])
}

/** The table on stderr, then the warnings each United process logged. */
function summary (results: Fields[], servers: Array<{ label: string, proc: Spawned }>): void {
  const cell = (v: unknown): string => v === undefined || v === null ? '' : typeof v === 'number' ? String(v) : String(v)
  const cols = ['scenario', 'target', 'robots', 'frames_per_s', 'p50_ms', 'p99_ms', 'max_ms', 'errors', 'server_cpu_s', 'server_rss_mib', 'ratio']
  const extra = (r: Fields): string => {
    if (r.scenario === 'connection-storm') return `total ${cell(r.total_s)} s`
    if (r.scenario === 'login-storm') return r.storm === true ? `with ${cell(r.bad_logins)} bad log-ins: ${cell(r.login_attempts_per_s)}/s ${JSON.stringify(r.login_statuses)}` : 'without bad log-ins'
    if (r.scenario === 'idle-rss') return `${cell(r.rss_per_conn_kib)} KiB/conn`
    if (r.scenario === 'ws-fanout') return `${cell(r.deliveries_per_s)} deliveries/s`
    if (r.error === undefined && r.scenario === 'roles-fanout') {
      return r.variant === 'groups/direct'
        ? `groups / direct: delivery p99 ${cell(r.p99_ratio)}× (median of the rounds' ${cell(r.round_p99_median_ratio)}×), p50 ${cell(r.p50_ratio)}×, deliveries/s ${cell(r.deliveries_per_s_ratio)}×, frames/s ${cell(r.frames_per_s_ratio)}×, ack p99 ${cell(r.ack_p99_ratio)}× (${cell(r.round_ack_p99_median_ratio)}×), CPU/frame ${cell(r.cpu_per_frame_ratio)}×; the check alone ${cell(r.check_direct_ns)} → ${cell(r.check_groups_ns)} ns`
        : `${cell(r.variant)}: ${cell(r.deliveries_per_s)} deliveries/s to ${cell(r.robots_seen)} robots, round p99 ${JSON.stringify(r.round_p99_ms)} ms, round ack p99 ${JSON.stringify(r.round_ack_p99_ms)} ms, ${cell(r.server_cpu_us_per_frame)} µs CPU/frame`
    }
    if (r.error === undefined && r.scenario === 'models-ingest') return r.variant === 'type-4' ? `type 4 (${cell(r.frame_bytes)} B) / type 1: frames/s ${cell(r.ratio)}×, CPU/frame ${cell(r.cpu_per_frame_ratio)}×` : `${cell(r.variant)} (${cell(r.frame_bytes)} B), ${cell(r.server_cpu_us_per_frame)} µs CPU/frame`
    if (r.error === undefined && r.scenario === 'models-aggregate') return `${cell(r.variant)}: ${cell(r.buckets)} buckets of ${cell(r.bucket_s)} s over ${cell(r.frames)} frames, ${cell(r.fields)} fields; first ${cell(r.first_ms)} ms; rolled up in ${cell(r.rollup_s)} s${r.ratio === undefined ? '' : `; p50 type 4 / type 1 ${cell(r.ratio)}×`}`
    if (r.error === undefined && r.scenario === 'history-aggregate') return `${cell(r.buckets)} buckets of ${cell(r.bucket_s)} s over ${cell(r.frames)} frames; first ${cell(r.first_ms)} ms`
    if (r.error === undefined && r.scenario === 'history-export') return `${cell(r.frames)} lines, ${cell(r.mib_per_s)} MiB/s, RSS +${cell(r.rss_growth_mib)} MiB`
    if (r.error === undefined && r.scenario === 'history-retention') return `${cell(r.frames_removed)} removed in ${cell(r.removal_s)} s; ack p99 before / after it ${cell(r.before_p99_ms)} / ${cell(r.after_p99_ms)} ms`
    if (r.error !== undefined) return `ERROR ${cell(r.error)}`
    return abuseExtra(r) ?? clusterExtra(r) ?? ''
  }
  // the history and abuse scenarios carry their targets (issues 26 and 32)
  const goal = (r: Fields): string => typeof r.goal === 'string' ? `; target ${r.goal}: ${r.goal_met === true ? 'met' : 'MISSED'}` : ''
  const rows = [[...cols, ''], ...results.map((r) => [...cols.map((c) => cell(r[c])), extra(r) + goal(r)])]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)))
  process.stderr.write('\n' + rows.map((row) => row.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()).join('\n') + '\n')
  for (const { label, proc } of servers) warningsOf(label, proc.warnings)
}

function warningsOf (label: string, warnings: string[]): void {
  if (warnings.length > 0) {
    const byMsg = new Map<string, { n: number, first: string }>()
    for (const w of warnings) {
      let msg = w
      try { msg = String((JSON.parse(w) as { msg?: unknown }).msg) } catch { /* keep the line */ }
      const seen = byMsg.get(msg)
      if (seen === undefined) byMsg.set(msg, { n: 1, first: w })
      else seen.n++
    }
    process.stderr.write(`\n${label} logged ${warnings.length} warnings/errors (count × message, then the first such line):\n`)
    for (const [msg, { n, first }] of byMsg) process.stderr.write(`  ${n} × ${msg}\n    ${first.slice(0, 1500)}\n`)
  }
}

// ---- leaving: kill the children, whatever happens --------------------------

const cleanups: Array<() => void> = []
let leaving = false
async function shutdown (code: number): Promise<never> {
  if (!leaving) {
    leaving = true
    await stopChildren(5000).catch(() => {})
    killChildren()
    for (const c of cleanups) { try { c() } catch { /* best effort */ } }
  }
  process.exit(code)
}
process.on('exit', () => { killChildren() })
process.on('SIGINT', () => { say('interrupted'); void shutdown(130) })
process.on('SIGTERM', () => { say('terminated'); void shutdown(143) })
process.on('uncaughtException', (err) => { say(`uncaught: ${err.stack ?? String(err)}`); void shutdown(1) })
process.on('unhandledRejection', (err) => { say(`unhandled rejection: ${err instanceof Error ? err.stack ?? err.message : String(err)}`); void shutdown(1) })

main().then(async () => { await shutdown(0) }, async (err: unknown) => {
  say(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  await shutdown(1)
})
