// The two systems under test, as the runner sees them: United (the compiled
// server, provisioned through its Management API) and the bare Aedes broker.
// Both run as child processes; the load comes from the runner's process.
import { randomBytes, randomUUID } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { mapLimit, now, type Credentials } from './load.js'
import { collectGarbage, runNode, sleep, spawnNode, type Spawned } from './proc.js'

/**
 * The node flags of `npm start` (package.json), which the Dockerfile's CMD
 * repeats: the benchmark runs United as it ships.
 */
const UNITED_NODE_ARGS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }
  const words = pkg.scripts.start.split(/\s+/)
  return words.slice(words.indexOf('node') + 1).filter((w) => w.startsWith('--'))
})()

export type TargetName = 'united' | 'bare'

export interface Target {
  readonly name: TargetName
  readonly proc: Spawned
  readonly mqttUrl: string
  readonly wsUrl: string
  /** robot i's credentials (a cached token on United) */
  robot: (i: number) => Promise<Credentials>
  /** robot i obtains a new token now (the connection storm) */
  freshRobot: (i: number) => Promise<Credentials>
  /** makes sure robots 0..n-1 have a token (outside the measurements) */
  prepareRobots: (n: number) => Promise<void>
  /** the robot of the fan-out scenario (not among the numbered ones) */
  fanoutRobot: () => Promise<Credentials>
  /** credentials of fan-out user k (who may watch the fan-out robot) */
  user: (k: number) => Promise<Credentials>
  /** the commanding user logs in (outside the measurements: a log-in costs a deliberately slow password hash) */
  prepareCommander: () => Promise<void>
  /** POST /robots/robot/command; resolves with the HTTP status and the command id */
  command: (uuid: string, command: string) => Promise<{ status: number, id?: string }>
  /** a full garbage collection in the server process (through its inspector) */
  gc: () => Promise<void>
  start: () => Promise<void>
  stop: () => Promise<void>
}

async function gcOf (proc: Spawned): Promise<void> {
  const url = proc.inspector()
  if (url === undefined) throw new Error('the process has no inspector to collect garbage with')
  await collectGarbage(url)
}

interface HttpResult { status: number, json: Record<string, unknown> | null, text: string }

/** Runs at most `limit` of the functions given to it at once, the rest in order. */
class Limiter {
  private running = 0
  private readonly waiting: Array<() => void> = []
  constructor (private readonly limit: number) {}
  async run<T> (fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.running++
    try { return await fn() } finally {
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.running--
    }
  }
}

async function http (base: string, method: string, path: string, body?: object, token?: string): Promise<HttpResult> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json: Record<string, unknown> | null = null
  try { json = text === '' ? null : JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: res.status, json, text }
}

/** A JSON POST on a connection of its own (no keep-alive pool), optionally from a chosen local address. */
async function postJson (base: string, path: string, body: object, localAddress?: string): Promise<HttpResult> {
  const url = new URL(path, base)
  const text = JSON.stringify(body)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', localAddress, agent: false, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const answer = Buffer.concat(chunks).toString('utf8')
        let json: Record<string, unknown> | null = null
        try { json = answer === '' ? null : JSON.parse(answer) as Record<string, unknown> } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, json, text: answer })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(text)
  })
}

function expect (res: HttpResult, status: number, what: string): Record<string, unknown> {
  if (res.status !== status || res.json === null) throw new Error(`${what}: HTTP ${res.status} ${res.text.slice(0, 300)}`)
  return res.json
}

interface Provisioned { serial: string, secret: string, uuid: string }

export class United implements Target {
  readonly name = 'united'
  proc!: Spawned
  mqttUrl = ''
  wsUrl = ''
  httpUrl = ''
  readonly dir: string
  private readonly env: NodeJS.ProcessEnv
  private readonly robots: Provisioned[] = []
  private readonly tokens = new Map<number, Credentials>()
  private fanout: Provisioned | undefined
  private fanoutToken: Credentials | undefined
  private readonly users: Array<{ username: string, password: string, id: number }> = []
  private readonly userJwts = new Map<number, { jwt: string, at: number }>()
  private readonly logins = new Limiter(4)
  private staffJwt: { jwt: Promise<string>, at: number } | undefined
  private admin: { username: string, password: string }
  /** names the process in errors ('United', 'United node A') */
  private readonly label: string

  /**
   * `opts.env` is added to the environment of every start (a cluster node's
   * REDIS_URL, NODE_ID and the JWT_SECRET its nodes share); `opts.label`
   * names the process in errors.
   */
  constructor (private readonly files: { server: string, manage: string }, private readonly runId: string, databaseUrl: string | undefined, opts: { env?: NodeJS.ProcessEnv, label?: string } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'united-bench-'))
    mkdirSync(join(this.dir, 'data'))
    this.env = {
      ...process.env,
      HTTP_PORT: '0',
      MQTT_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      JWT_SECRET: randomBytes(32).toString('hex'),
      // as the Docker image runs United (see the Dockerfile and test/bench/README.md, "Memory")
      MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072',
      ...opts.env
    }
    // Without DATABASE_URL United uses sqlite:./data/united.sqlite in its cwd: the fresh temp directory.
    if (databaseUrl === undefined) delete this.env.DATABASE_URL
    else this.env.DATABASE_URL = databaseUrl
    this.admin = { username: `bench-${runId}-admin`, password: randomBytes(12).toString('hex') }
    this.label = opts.label ?? 'United'
  }

  /**
   * Another process on the same database (a second cluster node) serves the
   * robots, users and staff user that `from` provisioned: its tokens and
   * log-ins are then obtained from this process.
   */
  adopt (from: United): void {
    this.robots.splice(0, this.robots.length, ...from.robots)
    this.users.splice(0, this.users.length, ...from.users)
    this.fanout = from.fanout
    this.admin = from.admin
  }

  async createSuperuser (): Promise<void> {
    await runNode(this.files.manage, ['createsuperuser', '--username', this.admin.username, '--password', this.admin.password], { cwd: this.dir, env: this.env, label: 'manage createsuperuser' })
  }

  /** Starts United; `extraEnv` is added to its environment for this start only (the history scenarios' retention settings). */
  async start (extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    // The flags United runs with (npm start, the Dockerfile), then
    // BENCH_SERVER_NODE_ARGS: extra node flags for United, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
    const nodeArgs = [...UNITED_NODE_ARGS, ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '')]
    this.proc = spawnNode(this.files.server, [], { cwd: this.dir, env: { ...this.env, ...extraEnv }, label: this.label, inspect: true, nodeArgs })
    await this.proc.waitFor(/MQTT \(WS\)\s+\S+/, 60_000)
    const out = this.proc.output()
    this.httpUrl = (/REST API\s+(http:\/\/\S+?)\/?\s/.exec(out)?.[1]) ?? ''
    this.mqttUrl = (/MQTT \(TCP\)\s+(mqtt:\/\/\S+)/.exec(out)?.[1]) ?? ''
    this.wsUrl = (/MQTT \(WS\)\s+(ws:\/\/\S+)/.exec(out)?.[1]) ?? ''
    if (this.httpUrl === '' || this.mqttUrl === '' || this.wsUrl === '') throw new Error(`could not read the banner of ${this.label}:\n${out}`)
    // tokens live in the server's memory: a new process knows none of them
    this.tokens.clear()
    this.fanoutToken = undefined
    this.staffJwt = undefined
    this.userJwts.clear()
  }

  async stop (): Promise<void> {
    await this.proc?.stop()
  }

  async gc (): Promise<void> {
    await gcOf(this.proc)
  }

  removeDir (): void {
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** United's SQLite file (relative URLs are relative to its working directory, the temp dir), or undefined on PostgreSQL. */
  sqliteFile (): string | undefined {
    const url = this.env.DATABASE_URL ?? 'sqlite:./data/united.sqlite'
    if (!url.startsWith('sqlite:')) return undefined
    const path = url.replace(/^sqlite:(\/\/)?/, '')
    if (path === '' || path === ':memory:') throw new Error('an in-memory SQLite database cannot be reached from the bench')
    return isAbsolute(path) ? path : join(this.dir, path)
  }

  /** The staff JWT (staff see every robot), for REST calls of the runner's own. */
  async staffToken (): Promise<string> {
    return await this.staff()
  }

  /** The staff JWT, renewed well before JWT_ACCESS_TTL (300 s by default). */
  private async staff (): Promise<string> {
    if (this.staffJwt === undefined || now() - this.staffJwt.at > 120_000) {
      const jwt = http(this.httpUrl, 'POST', '/users/obtain_token/', this.admin).then((res) => expect(res, 200, 'staff log-in').access as string)
      this.staffJwt = { jwt, at: now() }
      jwt.catch(() => { this.staffJwt = undefined })
    }
    return await this.staffJwt.jwt
  }

  /**
   * A robot with a secret the server generates (192 random bits, returned
   * once), as a fleet is provisioned through the Management API. A secret
   * typed in by an admin would be hashed with scrypt instead (src/http/README.md,
   * "Secrets at rest"); `BENCH_TYPED_SECRETS=1` provisions those, for comparison.
   */
  private async createRobot (serial: string): Promise<Provisioned> {
    const typed = process.env.BENCH_TYPED_SECRETS === '1' ? randomBytes(16).toString('hex') : undefined
    const res = await http(this.httpUrl, 'POST', '/admin/api/robots', typed === undefined ? { serial } : { serial, token: typed }, await this.staff())
    const body = expect(res, 201, `POST /admin/api/robots ${serial}`)
    return { serial, secret: typed ?? body.token as string, uuid: body.uuid as string }
  }

  /** Creates robots up to `n` (32 at a time), the fan-out robot and `users` users granted it (each password costs an scrypt). */
  async provision (n: number, users: number, progress: (done: number, total: number) => void): Promise<void> {
    const missing = Array.from({ length: Math.max(0, n - this.robots.length) }, (_, k) => this.robots.length + k)
    let done = 0
    await mapLimit(missing, 32, async (i) => {
      this.robots[i] = await this.createRobot(`bench-${this.runId}-${i}`)
      if (++done % 500 === 0) progress(done, missing.length)
    })
    this.fanout ??= await this.createRobot(`bench-${this.runId}-fanout`)
    const fanout = this.fanout
    const newUsers = Array.from({ length: Math.max(0, users - this.users.length) }, (_, k) => this.users.length + k)
    await mapLimit(newUsers, 32, async (k) => {
      const username = `bench-${this.runId}-u${k}`
      const password = randomBytes(12).toString('hex')
      const res = await http(this.httpUrl, 'POST', '/admin/api/users', { username, password }, await this.staff())
      const id = expect(res, 201, `POST /admin/api/users ${username}`).id as number
      const grant = await http(this.httpUrl, 'PUT', `/admin/api/robots/${fanout.uuid}/users/${id}`, undefined, await this.staff())
      if (grant.status !== 204) throw new Error(`grant: HTTP ${grant.status} ${grant.text}`)
      this.users[k] = { username, password, id }
    })
  }

  // Building blocks of roles-fanout (roles.ts), through the Management API.
  // Call them after provision(): it counts the fan-out users from the start of the same list.

  /** A user granted nothing (`bench-<run>-<name>`, one scrypt); resolves with its index for user(k). */
  async addUser (name: string): Promise<number> {
    const username = `bench-${this.runId}-${name}`
    const password = randomBytes(12).toString('hex')
    const res = await http(this.httpUrl, 'POST', '/admin/api/users', { username, password }, await this.staff())
    const id = expect(res, 201, `POST /admin/api/users ${username}`).id as number
    return this.users.push({ username, password, id }) - 1
  }

  robotUuid (i: number): string {
    return this.provisioned(i).uuid
  }

  /** A group of robots (`bench-<run>-<name>`); resolves with its id. */
  async createGroup (name: string): Promise<number> {
    const res = await http(this.httpUrl, 'POST', '/admin/api/groups', { name: `bench-${this.runId}-${name}` }, await this.staff())
    return expect(res, 201, `POST /admin/api/groups ${name}`).id as number
  }

  async groupRobot (groupId: number, i: number): Promise<void> {
    await this.put(`/admin/api/groups/${groupId}/robots/${this.provisioned(i).uuid}`)
  }

  /** Grants user k the group (`body`: role, expires_at). */
  async grantGroup (groupId: number, k: number, body: { role?: string, expires_at?: string | null }): Promise<void> {
    await this.put(`/admin/api/groups/${groupId}/users/${this.userId(k)}`, body)
  }

  /** Grants user k robot i directly (without a body: operator, for good, as before roles). */
  async grantRobot (i: number, k: number, body?: { role?: string, expires_at?: string | null }): Promise<void> {
    await this.put(`/admin/api/robots/${this.provisioned(i).uuid}/users/${this.userId(k)}`, body)
  }

  private userId (k: number): number {
    const u = this.users[k]
    if (u === undefined) throw new Error(`user ${k} was not provisioned`)
    return u.id
  }

  private async put (path: string, body?: object): Promise<void> {
    const res = await http(this.httpUrl, 'PUT', path, body, await this.staff())
    if (res.status !== 204) throw new Error(`PUT ${path}: HTTP ${res.status} ${res.text.slice(0, 300)}`)
  }

  /** One more robot outside the numbered ones (`bench-<run>-<name>`, e.g. a robot that only holds history); resolves with its uuid. */
  async extraRobot (name: string): Promise<string> {
    return (await this.createRobot(`bench-${this.runId}-${name}`)).uuid
  }

  private async obtain (p: Provisioned): Promise<Credentials> {
    // Each robot its own connection, as devices have, over node:http: fetch
    // (undici) cost the load generator ~2 ms of CPU per request in a
    // 5,000-robot storm, and the generator's CPU then bounded the storm.
    const res = await postJson(this.httpUrl, '/robots/robot/obtain_token', { serial: p.serial, token: p.secret })
    const body = expect(res, 201, `obtain_token ${p.serial}`)
    if (body.robot_uuid !== p.uuid) throw new Error(`obtain_token ${p.serial}: robot_uuid ${String(body.robot_uuid)} is not ${p.uuid}`)
    return { uuid: p.uuid, username: p.uuid, password: body.access_token as string }
  }

  private provisioned (i: number): Provisioned {
    const p = this.robots[i]
    if (p === undefined) throw new Error(`robot ${i} was not provisioned`)
    return p
  }

  async robot (i: number): Promise<Credentials> {
    let creds = this.tokens.get(i)
    if (creds === undefined) this.tokens.set(i, creds = await this.obtain(this.provisioned(i)))
    return creds
  }

  async freshRobot (i: number): Promise<Credentials> {
    const creds = await this.obtain(this.provisioned(i))
    this.tokens.set(i, creds)
    return creds
  }

  async prepareRobots (n: number): Promise<void> {
    await mapLimit(Array.from({ length: n }, (_, i) => i), 32, async (i) => { await this.robot(i) })
  }

  async fanoutRobot (): Promise<Credentials> {
    if (this.fanout === undefined) throw new Error('the fan-out robot was not provisioned')
    this.fanoutToken ??= await this.obtain(this.fanout)
    return this.fanoutToken
  }

  async user (k: number): Promise<Credentials> {
    const u = this.users[k]
    if (u === undefined) throw new Error(`user ${k} was not provisioned`)
    const cached = this.userJwts.get(k)
    if (cached !== undefined && now() - cached.at < 120_000) return { uuid: '', username: u.username, password: cached.jwt }
    // All the bench's users log in from this one address: more than its line
    // of password checks holds (8) at once would get 503 UNITED_BUSY, each
    // counted toward the address's limit. So at most 4 are in flight, and a
    // 503 is asked again after its Retry-After (1 s), as a client should.
    const res = await this.logins.run(async () => {
      let answer = await http(this.httpUrl, 'POST', '/users/obtain_token/', { username: u.username, password: u.password })
      for (let tries = 1; answer.status === 503 && tries < 10; tries++) {
        await sleep(1000)
        answer = await http(this.httpUrl, 'POST', '/users/obtain_token/', { username: u.username, password: u.password })
      }
      return answer
    })
    const jwt = expect(res, 200, `log-in ${u.username}`).access as string
    this.userJwts.set(k, { jwt, at: now() })
    return { uuid: '', username: u.username, password: jwt }
  }

  async prepareCommander (): Promise<void> {
    // A fresh JWT: the 120 s until staff() logs in again start now.
    this.staffJwt = undefined
    await this.staff()
  }

  async command (uuid: string, command: string): Promise<{ status: number, id?: string }> {
    const res = await http(this.httpUrl, 'POST', '/robots/robot/command', { robot_uuid: uuid, command }, await this.staff())
    return { status: res.status, id: typeof res.json?.id === 'string' ? res.json.id : undefined }
  }

  /** One log-in with the staff user's name and a wrong password, from the loopback address `from`; resolves with the HTTP status (0: no answer). */
  async badLogin (from: string): Promise<number> {
    try {
      return (await postJson(this.httpUrl, '/users/obtain_token/', { username: this.admin.username, password: 'wrong-password' }, from)).status
    } catch {
      return 0
    }
  }
}

export class Bare implements Target {
  readonly name = 'bare'
  proc!: Spawned
  mqttUrl = ''
  wsUrl = ''
  httpUrl = ''
  private readonly uuids: string[] = []
  private readonly fanoutUuid = randomUUID()

  constructor (private readonly file: string) {}

  async start (): Promise<void> {
    this.proc = spawnNode(this.file, [], { cwd: process.cwd(), env: { ...process.env }, label: 'bare broker', inspect: true })
    const m = await this.proc.waitFor(/bare mqtt=(\d+) http=(\d+)/, 30_000)
    this.mqttUrl = `mqtt://127.0.0.1:${m[1] as string}`
    this.httpUrl = `http://127.0.0.1:${m[2] as string}`
    this.wsUrl = `ws://127.0.0.1:${m[2] as string}/mqtt`
  }

  async stop (): Promise<void> {
    await this.proc?.stop()
  }

  async gc (): Promise<void> {
    await gcOf(this.proc)
  }

  private uuid (i: number): string {
    this.uuids[i] ??= randomUUID()
    return this.uuids[i]
  }

  async robot (i: number): Promise<Credentials> {
    return { uuid: this.uuid(i), username: this.uuid(i), password: 'none' }
  }

  async freshRobot (i: number): Promise<Credentials> {
    return await this.robot(i)
  }

  async prepareRobots (): Promise<void> {}

  async fanoutRobot (): Promise<Credentials> {
    return { uuid: this.fanoutUuid, username: this.fanoutUuid, password: 'none' }
  }

  async user (k: number): Promise<Credentials> {
    return { uuid: '', username: `user-${k}`, password: 'none' }
  }

  async prepareCommander (): Promise<void> {} // no log-in: the bare broker has no users

  async command (uuid: string, command: string): Promise<{ status: number, id?: string }> {
    const res = await http(this.httpUrl, 'POST', '/robots/robot/command', { robot_uuid: uuid, command })
    return { status: res.status, id: typeof res.json?.id === 'string' ? res.json.id : undefined }
  }
}
