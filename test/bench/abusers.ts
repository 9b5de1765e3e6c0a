// The abusers of the noisy-neighbour bench (abuse.ts): users, scrapers and a
// robot using what the rules allow at their limits, in a worker thread of
// the runner. The fleet whose acks are timed stays on the runner's main
// thread: thousands of HTTP answers a second handled on the same event loop
// would delay the acks' timestamps, and the bench would measure its own
// client instead of United. (The two threads still share the machine's
// cores: Mark's client_cpu_s counts both.)
//
// One worker per case: it gets the job in workerData, waits for "go", runs
// for job.durationMs, aborts whatever is still in flight, and posts back
// what the abusers saw. 429 and 400 are answers the rules give, not
// failures: they are counted, and the abuser asks again (at once, as an
// abuser would, or after Retry-After with --abuse-retry after).
import { randomBytes, randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { Agent, request, type IncomingMessage } from 'node:http'
import { createConnection } from 'node:net'
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import mqttPacket from 'mqtt-packet'
import { connect, now, percentiles, round } from './load.js'
import { sleep } from './proc.js'

export const ABUSE_CASES = ['history-aggregate', 'history-export', 'metrics', 'command-queue', 'slow-exports', 'login-flood'] as const
export type AbuseCase = typeof ABUSE_CASES[number]

export type Fields = Record<string, unknown>

export interface AbuseJob {
  case: AbuseCase
  httpUrl: string
  mqttUrl: string
  durationMs: number
  /** on 429: ask again at once, or after the answer's Retry-After */
  retry: 'now' | 'after'
  /** the users' access JWTs (history and slow exports: user k's; command-queue: the first) */
  tokens: string[]
  /** requests at once per user (HISTORY_CONCURRENCY) */
  perUser: number
  historyRobot: string
  historyFrames: number
  /** history-aggregate: the requests, taken in turn by each worker; `frames`: what the buckets must count (undefined: not checked) */
  aggregates: Array<{ label: string, query: string, frames?: number }>
  /** metrics: scrapers back to back */
  scrapers: number
  /** slow-exports: readers (reader j is user j % tokens.length) and the bytes each reads per second */
  readers: number
  slowBytesPerS: number
  /** command-queue: COMMAND_QUEUE_LIMIT, the ttl of the queued commands and the robots that are offline */
  queueLimit: number
  commandTtl: number
  offline: Array<{ uuid: string, password: string }>
  /** login-flood: the attackers' loopback addresses, and the bad log-ins and MQTT CONNECTs each keeps in flight */
  floodAddresses: string[]
  floodLogins: number
  floodConnects: number
}

/** What one kind of request got: statuses, the codes of the error bodies, and the time of each answer. */
class Tally {
  requests = 0
  readonly statuses = new Map<string, number>()
  readonly codes = new Map<string, number>()
  readonly latencies: number[] = []
  /** cut at the end of the case, still in flight */
  aborted = 0
  /** no HTTP answer (a reset or refused connection), except at the end */
  networkErrors = 0
  /** answers that were not what the rules say (a 200 counting the wrong frames, an export cut short) */
  wrong = 0
  readonly wrongDetail: string[] = []

  add (a: Answer): void {
    if (a.aborted && a.status === 0) { this.aborted++; return }
    this.requests++
    const key = a.status === 0 ? 'no_answer' : String(a.status)
    this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1)
    if (a.status === 0) this.networkErrors++
    if (a.code !== undefined) this.codes.set(a.code, (this.codes.get(a.code) ?? 0) + 1)
    if (a.status !== 0 && a.completed) this.latencies.push(a.ms)
    if (a.aborted) this.aborted++
  }

  bad (what: string): void {
    this.wrong++
    if (this.wrongDetail.length < 5) this.wrongDetail.push(what)
  }

  report (elapsedS: number): Fields {
    const lat = percentiles(this.latencies)
    return {
      requests: this.requests,
      per_s: round(this.requests / elapsedS, 1),
      statuses: Object.fromEntries(this.statuses),
      ...(this.codes.size > 0 ? { codes: Object.fromEntries(this.codes) } : {}),
      answer_p50_ms: lat.p50_ms,
      answer_p99_ms: lat.p99_ms,
      answer_max_ms: lat.max_ms,
      aborted_at_end: this.aborted,
      ...(this.networkErrors > 0 ? { network_errors: this.networkErrors } : {}),
      ...(this.wrong > 0 ? { wrong_answers: this.wrong, wrong_detail: this.wrongDetail } : {})
    }
  }
}

interface Answer {
  status: number
  ms: number
  /** the whole body arrived */
  completed: boolean
  /** the case ended while this was in flight */
  aborted: boolean
  code?: string
  retryAfterS?: number
  /** the JSON body of a 200 when asked for, or of an error */
  json?: unknown
  bytes: number
  lines: number
}

// Keep-alive: abusers that ask again at once, on a fresh connection each
// time, would run out of the machine's ephemeral ports within seconds
// (sockets in TIME_WAIT) and measure that instead.
const agent = new Agent({ keepAlive: true, maxSockets: Infinity })

interface CallOptions {
  method?: 'GET' | 'POST'
  token?: string
  body?: object
  signal: AbortSignal
  /** what to do with a 200's body: keep it as JSON, or count its bytes and lines */
  read: 'json' | 'count'
  /** read a 200's body at about this many bytes a second (pausing the stream: TCP's window then holds the server back) */
  slowBytesPerS?: number
  /** called with the body's bytes so far (slow readers report what they hold open) */
  onBody?: (res: IncomingMessage) => void
  /** the local address to send from (login-flood: each attacker its own loopback address) */
  localAddress?: string
}

/** One HTTP request; never rejects: a failure is an answer with status 0. */
async function call (url: string, opts: CallOptions): Promise<Answer> {
  const t0 = now()
  return await new Promise((resolve) => {
    let settled = false
    let status = 0
    let bytes = 0
    let lines = 0
    let retryAfterS: number | undefined
    const chunks: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    const finish = (completed: boolean): void => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      let json: unknown
      let code: string | undefined
      if (chunks.length > 0) {
        try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { /* not JSON, or cut */ }
        const c = (json as { code?: unknown } | undefined)?.code
        if (status !== 200 && typeof c === 'string') code = c
      }
      resolve({ status, ms: now() - t0, completed, aborted: opts.signal.aborted, code, retryAfterS, json, bytes, lines })
    }
    const text = opts.body === undefined ? undefined : JSON.stringify(opts.body)
    const headers: Record<string, string> = {}
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
    if (text !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(text))
    }
    const req = request(url, { method: opts.method ?? 'GET', agent, headers, signal: opts.signal, localAddress: opts.localAddress }, (res) => {
      status = res.statusCode ?? 0
      const ra = Number(res.headers['retry-after'])
      if (Number.isFinite(ra) && ra >= 0) retryAfterS = ra
      const keep = status !== 200 || opts.read === 'json'
      const bodyStart = now()
      opts.onBody?.(res)
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (keep) chunks.push(chunk)
        else for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
        if (status === 200 && opts.slowBytesPerS !== undefined) {
          const due = bodyStart + (bytes / opts.slowBytesPerS) * 1000
          const wait = due - now()
          if (wait > 20) {
            res.pause()
            timer = setTimeout(() => { timer = undefined; if (!settled) res.resume() }, wait)
          }
        }
      })
      res.on('end', () => { finish(true) })
      res.on('error', () => { finish(false) })
      res.on('close', () => { finish(false) })
    })
    req.on('error', () => { finish(false) })
    req.end(text)
  })
}

/** Resolves when `signal` aborts: one promise (and one listener) per signal, however often it is asked for. */
const ends = new WeakMap<AbortSignal, Promise<void>>()
function aborted (signal: AbortSignal): Promise<void> {
  let end = ends.get(signal)
  if (end === undefined) {
    end = new Promise((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => { resolve() }, { once: true })
    })
    ends.set(signal, end)
  }
  return end
}

/** After a 429: at once, or after its Retry-After (at least 1 s when it has none), unless the case ends first. */
async function backOff (job: AbuseJob, a: Answer, signal: AbortSignal): Promise<void> {
  if (a.status === 0 && !signal.aborted) await Promise.race([sleep(10), aborted(signal)]) // no answer: not a loop of refused connects
  if (a.status !== 429 || job.retry === 'now') return
  await Promise.race([sleep(Math.max(1, a.retryAfterS ?? 1) * 1000), aborted(signal)])
}

/** `count` loops of `fn` until the signal aborts. */
async function loops (count: number, signal: AbortSignal, fn: (k: number) => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: count }, async (_, k) => {
    while (!signal.aborted) await fn(k)
  }))
}

// ---- the cases ------------------------------------------------------------------

/** Every user runs `perUser` aggregates at once, back to back, each worker taking the kinds in turn. */
async function historyAggregate (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const kinds = job.aggregates.map((a) => ({ ...a, tally: new Tally() }))
  const all = new Tally()
  const t0 = now()
  let turn = 0
  await loops(job.tokens.length * job.perUser, signal, async (w) => {
    const kind = kinds[turn++ % kinds.length] as typeof kinds[number]
    const a = await call(`${job.httpUrl}/robots/${job.historyRobot}/frames/aggregate?${kind.query}`, { token: job.tokens[w % job.tokens.length], signal, read: 'json' })
    all.add(a)
    kind.tally.add(a)
    if (a.status === 200 && a.completed && kind.frames !== undefined) {
      const items = (a.json as { items?: Array<{ count?: number }> } | undefined)?.items
      const counted = Array.isArray(items) ? items.reduce((s, b) => s + (b.count ?? 0), 0) : NaN
      if (counted !== kind.frames) kind.tally.bad(`${kind.label}: the buckets count ${counted} frames, not ${kind.frames}`)
    }
    await backOff(job, a, signal)
  })
  const s = (now() - t0) / 1000
  for (const k of kinds) all.wrong += k.tally.wrong
  return { ...all.report(s), users: job.tokens.length, per_user: job.perUser, kinds: Object.fromEntries(kinds.map((k) => [k.label, k.tally.report(s)])) }
}

/** Every user runs `perUser` exports of the whole history at once, back to back, read as fast as the worker can. */
async function historyExport (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const tally = new Tally()
  const t0 = now()
  let lines = 0
  let bytes = 0
  let whole = 0
  await loops(job.tokens.length * job.perUser, signal, async (w) => {
    const a = await call(`${job.httpUrl}/robots/${job.historyRobot}/frames/export`, { token: job.tokens[w % job.tokens.length], signal, read: 'count' })
    tally.add(a)
    if (a.status === 200) {
      lines += a.lines
      bytes += a.bytes
      if (a.completed && a.lines === job.historyFrames) whole++
      else if (a.completed) tally.bad(`an export of ${a.lines} lines, not ${job.historyFrames}`)
    }
    await backOff(job, a, signal)
  })
  const s = (now() - t0) / 1000
  return { ...tally.report(s), users: job.tokens.length, per_user: job.perUser, whole_exports: whole, lines_read: lines, lines_per_s: round(lines / s, 0), mib_per_s: round(bytes / 1048576 / s, 1) }
}

/** Anonymous scrapers of /metrics, back to back. */
async function metrics (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const tally = new Tally()
  const t0 = now()
  await loops(job.scrapers, signal, async () => {
    const a = await call(`${job.httpUrl}/metrics`, { signal, read: 'count' })
    tally.add(a)
    await backOff(job, a, signal)
  })
  return { ...tally.report((now() - t0) / 1000), scrapers: job.scrapers }
}

/**
 * Readers that open an export and read it at `slowBytesPerS`, holding it
 * open for the whole case; one that gets 429 asks again. `open_max`: the most
 * exports that answered 200 and were open at the same time.
 */
async function slowExports (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const tally = new Tally()
  const t0 = now()
  let open = 0
  let openMax = 0
  let bytes = 0
  await loops(job.readers, signal, async (j) => {
    const a = await call(`${job.httpUrl}/robots/${job.historyRobot}/frames/export`, {
      token: job.tokens[j % job.tokens.length],
      signal,
      read: 'count',
      slowBytesPerS: job.slowBytesPerS,
      onBody: (res) => {
        if (res.statusCode !== 200) return
        openMax = Math.max(openMax, ++open)
        res.once('close', () => { open-- })
      }
    })
    tally.add(a)
    if (a.status === 200) bytes += a.bytes
    await backOff(job, a, signal)
  })
  return { ...tally.report((now() - t0) / 1000), readers: job.readers, users: job.tokens.length, read_bytes_per_s_each: job.slowBytesPerS, open_max: openMax, kib_read: round(bytes / 1024, 0) }
}

/**
 * A user queues commands for an offline robot up to the limit, and one more
 * (which the limit answers 429 UNITED_QUEUE_FULL); the robot then connects
 * (mqtt.js), subscribes to its commands QoS 1 and acks each one on
 * robots/{uuid}/commands/ack, and the release is timed from its SUBSCRIBE to
 * the last of its queued commands received. Then the next offline robot, in
 * turn, until the case ends. A robot's commands not received (a release cut
 * by the end of the case, or over RELEASE_TIMEOUT_MS) stay expected at its
 * next connection.
 */
const RELEASE_TIMEOUT_MS = 20_000
async function commandQueue (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const posts = new Tally()
  const token = job.tokens[0] as string
  const expected = new Map<string, Set<string>>(job.offline.map((r) => [r.uuid, new Set<string>()]))
  const releases: number[] = []
  const connects: number[] = []
  let cycles = 0
  let queued = 0
  let answeredPending = 0
  let received = 0
  let extra = 0
  let timeouts = 0
  let cut = 0
  let mqttErrors = 0
  const names = ['auto', 'idle', 'manual']
  const t0 = now()
  for (let k = 0; !signal.aborted; k++) {
    const robot = job.offline[k % job.offline.length] as AbuseJob['offline'][number]
    const ids = expected.get(robot.uuid) as Set<string>
    // the queue, filled 4 requests at a time, and one request over the limit
    let next = 0
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next <= job.queueLimit && !signal.aborted) {
        const n = next++
        const a = await call(`${job.httpUrl}/robots/robot/command`, { method: 'POST', token, body: { robot_uuid: robot.uuid, command: names[n % names.length], ttl: job.commandTtl }, signal, read: 'json' })
        posts.add(a)
        const body = a.json as { id?: unknown, status?: unknown } | undefined
        if (a.status === 201 && typeof body?.id === 'string') {
          if (body.status === 'queued') { queued++; ids.add(body.id) } else answeredPending++
        }
      }
    }))
    if (signal.aborted) break
    // the robot comes online
    const c0 = now()
    let client
    try {
      client = await connect(job.mqttUrl, { username: robot.uuid, password: robot.password, clientId: `bench-abuse-${robot.uuid}` })
    } catch {
      mqttErrors++
      await Promise.race([sleep(100), aborted(signal)])
      continue
    }
    connects.push(now() - c0)
    const topic = `robots/${robot.uuid}/commands`
    let last = 0
    let all: () => void = () => {}
    const allIn = new Promise<void>((resolve) => { all = resolve })
    if (ids.size === 0) all()
    // listening before SUBSCRIBE: the first commands may arrive with the SUBACK
    client.on('message', (t, payload) => {
      if (t !== topic) return
      let cmd: { id?: unknown, command?: unknown }
      try { cmd = JSON.parse(payload.toString()) as typeof cmd } catch { return }
      if (typeof cmd.id !== 'string') return
      if (ids.delete(cmd.id)) { received++; last = now() } else extra++
      client.publish(`${topic}/ack`, JSON.stringify({ id: cmd.id, status: 'ok', state: cmd.command }), { qos: 1 })
      if (ids.size === 0) all()
    })
    const s0 = now()
    let outcome: 'done' | 'timeout' | 'cut'
    try {
      await client.subscribeAsync(topic, { qos: 1 })
      outcome = await Promise.race([
        allIn.then(() => 'done' as const),
        sleep(RELEASE_TIMEOUT_MS).then(() => 'timeout' as const),
        aborted(signal).then(() => 'cut' as const)
      ])
    } catch {
      mqttErrors++
      outcome = 'cut'
    }
    if (outcome === 'done') releases.push(last === 0 ? 0 : last - s0)
    else if (outcome === 'timeout') timeouts++
    else cut++
    cycles++
    await Promise.race([client.endAsync().catch(() => {}), sleep(2000)])
    client.end(true)
  }
  const lat = percentiles(releases)
  const missing = [...expected.values()].reduce((n, s) => n + s.size, 0)
  return {
    ...posts.report((now() - t0) / 1000),
    queue_limit: job.queueLimit,
    offline_robots: job.offline.length,
    cycles,
    queued,
    ...(answeredPending > 0 ? { answered_pending: answeredPending } : {}),
    releases: releases.length,
    release_p50_ms: lat.p50_ms,
    release_max_ms: lat.max_ms,
    connect_max_ms: percentiles(connects).max_ms,
    commands_received: received,
    commands_not_received: missing,
    ...(extra > 0 ? { commands_unexpected: extra } : {}),
    releases_timed_out: timeouts,
    releases_cut_at_end: cut,
    ...(mqttErrors > 0 ? { mqtt_errors: mqttErrors } : {})
  }
}

/**
 * One MQTT 3.1.1 CONNECT on a TCP connection of its own from `localAddress`
 * (mqtt.js cannot bind one); resolves with the CONNACK's return code
 * (undefined: none came) once the server has closed the connection, as
 * United does after a refusal (the server closing first leaves the
 * TIME_WAIT on its side, not on the attacker's ports).
 */
async function mqttConnect (url: URL, localAddress: string, username: string, password: string, signal: AbortSignal): Promise<{ returnCode?: number, ms: number }> {
  const t0 = now()
  return await new Promise((resolve) => {
    let returnCode: number | undefined
    let ms = 0
    let got = Buffer.alloc(0)
    let settled = false
    const socket = createConnection({ host: url.hostname, port: Number(url.port), localAddress, noDelay: true })
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal.removeEventListener('abort', finish)
      socket.destroy()
      resolve({ returnCode, ms })
    }
    // no CONNACK in 20 s (United waits up to 10 s for the attempts being checked that fill a limit), or still open 1 s after it: given up
    let timer = setTimeout(finish, 20_000)
    signal.addEventListener('abort', finish, { once: true })
    socket.on('connect', () => {
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: `bench-flood-${randomBytes(6).toString('hex')}`, username, password: Buffer.from(password) }))
    })
    socket.on('data', (chunk: Buffer) => {
      if (returnCode !== undefined) return
      got = Buffer.concat([got, chunk])
      if (got.length < 4) return
      // CONNACK: 0x20, remaining length 2, flags, return code
      returnCode = got[0] === 0x20 ? got[3] as number : -1
      ms = now() - t0
      clearTimeout(timer)
      timer = setTimeout(finish, 1000)
    })
    socket.on('error', () => {}) // 'close' follows
    socket.on('close', finish)
  })
}

/**
 * A log-in flood from `floodAddresses` (loopback addresses of their own):
 * each keeps `floodLogins` bad log-ins in flight at POST /users/obtain_token/,
 * back to back, each with a new unknown username (so no identity is ever
 * blocked: only the address, after AUTH_FAIL_ADDRESS_LIMIT failures, its
 * 503 UNITED_BUSY included), and `floodConnects` MQTT CONNECTs with made-up
 * credentials (a robot token, then a forged JWT, in turn), each on a new
 * connection. A 401 is a password checked (one scrypt); a 429 (and CONNACK
 * 5) a refusal of a blocked address, which costs no hash.
 */
async function loginFlood (job: AbuseJob, signal: AbortSignal): Promise<Fields> {
  const addresses = job.floodAddresses
  const logins = new Tally()
  const mqttUrl = new URL(job.mqttUrl)
  const connack = new Map<string, number>()
  const connackMs: number[] = []
  let connects = 0
  let connectsCut = 0
  /** ms from the start to each address's first 429 */
  const blockedAt = new Map<string, number>()
  let last401 = NaN
  let after429 = 0
  let n = 0
  let kind = 0
  const b64 = (bytes: number): string => randomBytes(bytes).toString('base64url')
  const t0 = now()
  await Promise.all([
    loops(addresses.length * job.floodLogins, signal, async (w) => {
      const from = addresses[w % addresses.length] as string
      const a = await call(`${job.httpUrl}/users/obtain_token/`, { method: 'POST', body: { username: `bench-flood-${process.pid}-${n++}`, password: 'wrong-password' }, signal, read: 'json', localAddress: from })
      logins.add(a)
      if (a.status === 401) last401 = now() - t0
      if (a.status === 429) {
        if (!blockedAt.has(from)) {
          blockedAt.set(from, now() - t0)
          // the runner splits the fleet's acks there (before and after every attacker was blocked)
          if (blockedAt.size === addresses.length) parentPort?.postMessage({ event: 'all-blocked' })
        }
        after429++
      }
      await backOff(job, a, signal)
    }),
    loops(addresses.length * job.floodConnects, signal, async (w) => {
      const from = addresses[w % addresses.length] as string
      const robot = kind++ % 2 === 0
      const c = await mqttConnect(mqttUrl, from, robot ? randomUUID() : `bench-flood-${n++}`, robot ? randomBytes(32).toString('hex') : `${b64(20)}.${b64(40)}.${b64(32)}`, signal)
      if (c.returnCode === undefined && signal.aborted) { connectsCut++; return }
      connects++
      const key = c.returnCode === undefined ? 'no_answer' : String(c.returnCode)
      connack.set(key, (connack.get(key) ?? 0) + 1)
      if (c.returnCode !== undefined) connackMs.push(c.ms)
      else await Promise.race([sleep(10), aborted(signal)])
    })
  ])
  const s = (now() - t0) / 1000
  const blocked = [...blockedAt.values()].sort((x, y) => x - y)
  const at = (q: number): number => round(blocked[Math.min(blocked.length - 1, Math.floor(q * blocked.length))] as number, 0)
  const lat = percentiles(connackMs)
  return {
    addresses: addresses.length,
    logins_per_address: job.floodLogins,
    connects_per_address: job.floodConnects,
    ...logins.report(s),
    hashed_401: logins.statuses.get('401') ?? 0,
    last_401_ms: round(last401, 0),
    addresses_blocked: blocked.length,
    ...(blocked.length > 0 ? { blocked_after_ms: { first: at(0), median: at(0.5), last: at(1) } } : {}),
    refused_429: after429,
    mqtt: { connects, per_s: round(connects / s, 1), connack: Object.fromEntries(connack), connack_p50_ms: lat.p50_ms, connack_p99_ms: lat.p99_ms, connack_max_ms: lat.max_ms, aborted_at_end: connectsCut }
  }
}

const CASES: Record<AbuseCase, (job: AbuseJob, signal: AbortSignal) => Promise<Fields>> = {
  'history-aggregate': historyAggregate,
  'history-export': historyExport,
  metrics,
  'command-queue': commandQueue,
  'slow-exports': slowExports,
  'login-flood': loginFlood
}

// ---- the worker ----------------------------------------------------------------------

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const job = workerData as AbuseJob
  port.once('message', () => {
    const ac = new AbortController()
    // every request in flight listens to it (100 slow readers at once): not a leak
    setMaxListeners(Infinity, ac.signal)
    const timer = setTimeout(() => { ac.abort() }, job.durationMs)
    CASES[job.case](job, ac.signal).then((fields) => {
      clearTimeout(timer)
      agent.destroy()
      port.postMessage({ ok: true, fields })
    }, (err: unknown) => {
      agent.destroy()
      port.postMessage({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) })
    })
  })
  port.postMessage({ ready: true })
}
