// Child processes of the benchmark (United, the bare broker, the CLI) and
// what /proc says about them: CPU time and resident memory.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import WebSocket from 'ws'

const CLK_TCK = 100 // sysconf(_SC_CLK_TCK) on Linux
const children = new Set<ChildProcess>()

/** CPU seconds (user + system, all threads) of a process, from /proc/<pid>/stat. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name is in parentheses and may hold spaces: fields start after the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** CPU seconds of each process named `name`, by pid, from /proc. */
function cpuByPid (name: string): Map<number, number> {
  const out = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== name) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / CLK_TCK)
    } catch { /* gone meanwhile */ }
  }
  return out
}

/**
 * CPU used by every process named `name` (e.g. the PostgreSQL server's
 * backends) over an interval. Sampled twice a second, so that a process that
 * exits meanwhile (an idle pool connection closing) still counts, up to its
 * last sample.
 */
export class CommandCpuMeter {
  private readonly start: Map<number, number>
  private readonly last = new Map<number, number>()
  private readonly timer: NodeJS.Timeout
  constructor (private readonly name: string) {
    this.start = cpuByPid(name)
    this.timer = setInterval(() => { this.sample() }, 500)
  }

  private sample (): void {
    for (const [pid, cpu] of cpuByPid(this.name)) this.last.set(pid, cpu)
  }

  stop (): number {
    clearInterval(this.timer)
    this.sample()
    let sum = 0
    for (const [pid, cpu] of this.last) sum += cpu - (this.start.get(pid) ?? 0)
    return sum
  }
}

/** Resident set size in MiB, from VmRSS in /proc/<pid>/status. */
export function rssMiB (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return m === null ? NaN : Number(m[1]) / 1024
}

/** The whole machine's CPU counters (all cores) from /proc/stat, in seconds: busy (steal included) and steal alone. */
export function hostCpuSeconds (): { busy: number, steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: (total - (f[3] ?? 0) - (f[4] ?? 0)) / CLK_TCK, steal: (f[7] ?? 0) / CLK_TCK }
}

/**
 * Forces a full garbage collection in a child started with --inspect, through
 * the inspector protocol (HeapProfiler.collectGarbage), so that RSS readings
 * compare live memory rather than garbage that happens not to be collected yet.
 */
export async function collectGarbage (inspectorUrl: string): Promise<void> {
  const ws = new WebSocket(inspectorUrl)
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => { resolve() })
      ws.once('error', reject)
    })
    for (let i = 1; i <= 2; i++) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error('no answer to HeapProfiler.collectGarbage')) }, 30_000)
        ws.on('message', function onMessage (data) {
          const msg = JSON.parse(String(data)) as { id?: number, error?: { message: string } }
          if (msg.id !== i) return
          ws.off('message', onMessage)
          clearTimeout(timer)
          if (msg.error !== undefined) reject(new Error(msg.error.message))
          else resolve()
        })
        ws.send(JSON.stringify({ id: i, method: 'HeapProfiler.collectGarbage' }))
      })
    }
  } finally {
    ws.terminate()
  }
}

/** Samples a process's CPU and peak RSS over an interval. */
export class ProcMeter {
  private cpu0: number
  private peak: number
  private timer: NodeJS.Timeout
  constructor (private readonly pid: number) {
    this.cpu0 = cpuSeconds(pid)
    this.peak = rssMiB(pid)
    this.timer = setInterval(() => { this.sample() }, 200)
  }

  private sample (): void {
    try { this.peak = Math.max(this.peak, rssMiB(this.pid)) } catch { /* exited */ }
  }

  stop (): { cpu_s: number, rss_mib: number } {
    clearInterval(this.timer)
    this.sample()
    let cpu = NaN
    try { cpu = cpuSeconds(this.pid) - this.cpu0 } catch { /* exited */ }
    return { cpu_s: cpu, rss_mib: this.peak }
  }
}

/**
 * Waits until a process is quiet (under 5% of a core for two half-second
 * samples in a row), or `maxMs` passed: after a scenario, United still
 * writes presence and disconnects; the next scenario should not pay for it.
 */
export async function settle (pid: number, maxMs = 20_000): Promise<void> {
  const until = Date.now() + maxMs
  let quiet = 0
  let last = cpuSeconds(pid)
  while (Date.now() < until && quiet < 2) {
    await sleep(500)
    const now = cpuSeconds(pid)
    quiet = now - last < 0.025 ? quiet + 1 : 0
    last = now
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms) })
}

export interface Spawned {
  child: ChildProcess
  pid: number
  /** the inspector's WebSocket URL (when started with `inspect: true`) */
  inspector: () => string | undefined
  /** resolves with the first match of `re` on stdout */
  waitFor: (re: RegExp, timeoutMs: number) => Promise<RegExpExecArray>
  /** the last 64 KiB of stdout and stderr */
  output: () => string
  /** pino lines at level warn or above, seen so far */
  warnings: string[]
  exited: () => boolean
  stop: (timeoutMs?: number) => Promise<void>
}

/** Spawns `node file args` and keeps track of it, so that it is killed when the runner exits. */
export function spawnNode (file: string, args: string[], opts: { cwd: string, env: NodeJS.ProcessEnv, label: string, inspect?: boolean, nodeArgs?: string[] }): Spawned {
  // --inspect on a random local port: only to force garbage collections before RSS readings
  const nodeArgs = [...(opts.inspect === true ? ['--inspect=127.0.0.1:0'] : []), ...(opts.nodeArgs ?? [])]
  const child = spawn(process.execPath, [...nodeArgs, file, ...args], { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(child)
  let out = ''
  const warnings: string[] = []
  let partial = ''
  const keep = (s: string): void => {
    out += s
    if (out.length > 65536) out = out.slice(-65536)
  }
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (s: string) => {
    keep(s)
    partial += s
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (!line.startsWith('{')) continue
      try {
        const rec = JSON.parse(line) as { level?: number }
        if ((rec.level ?? 0) >= 40) warnings.push(line)
      } catch { /* not a log line */ }
    }
  })
  let inspector: string | undefined
  child.stderr.on('data', (s: string) => {
    keep(s)
    inspector ??= /Debugger listening on (ws:\/\/\S+)/.exec(s)?.[1]
  })
  child.stdin.on('error', () => {})
  const exit = new Promise<void>((resolve) => { child.once('exit', () => { children.delete(child); resolve() }) })
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null

  return {
    child,
    pid: child.pid as number,
    inspector: () => inspector,
    warnings,
    output: () => out,
    exited,
    waitFor: async (re, timeoutMs) => await new Promise<RegExpExecArray>((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(out)
        if (m !== null) { done(); resolve(m) }
      }
      const onExit = (): void => { done(); reject(new Error(`${opts.label} exited (${String(child.exitCode ?? child.signalCode)}) before it was ready:\n${out}`)) }
      const timer = setTimeout(() => { done(); reject(new Error(`${opts.label} was not ready within ${timeoutMs} ms:\n${out}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); child.stdout.off('data', check); child.off('exit', onExit) }
      child.stdout.on('data', check)
      child.once('exit', onExit)
      check()
    }),
    stop: async (timeoutMs = 15_000) => {
      if (exited()) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
      await exit
      clearTimeout(timer)
    }
  }
}

/** Runs `node file args` to completion; rejects on a non-zero exit. */
export async function runNode (file: string, args: string[], opts: { cwd: string, env: NodeJS.ProcessEnv, label: string }): Promise<string> {
  const p = spawnNode(file, args, opts)
  p.child.stdin?.end()
  await new Promise<void>((resolve) => { p.child.once('exit', () => { resolve() }) })
  if (p.child.exitCode !== 0) throw new Error(`${opts.label} failed (${String(p.child.exitCode ?? p.child.signalCode)}):\n${p.output()}`)
  return p.output()
}

/** Keeps track of a child that is not a node process (the cluster bench's redis-server), so that it is stopped and killed with the others. */
export function track (child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => { children.delete(child) })
}

/** Kills every child still running (SIGKILL: used on the way out). */
export function killChildren (): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/** Asks every child still running to stop, waits a little, then kills the rest. */
export async function stopChildren (timeoutMs = 5000): Promise<void> {
  const waiting = [...children].filter((c) => c.exitCode === null && c.signalCode === null).map(async (c) => {
    const exit = new Promise<void>((resolve) => { c.once('exit', () => { resolve() }) })
    c.kill('SIGTERM')
    await Promise.race([exit, sleep(timeoutMs)])
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  })
  await Promise.all(waiting)
}
