// The example robot (the original robot.py, in TypeScript): it obtains its
// access token, connects over MQTT, sends a position frame every second and a
// hardware frame (battery, CPU, temperature, memory) every few seconds,
// prints each ack, obeys commands and acknowledges them, and reconnects with a
// fresh token whenever the old one is refused. `--fleet N` runs N of them.
// With `--model FILE` (a robot model, docs/protocol.md §14) it also sends
// type-4 frames of the model's fields and answers the model's commands with
// a `result`.
// It imports only src/contract, mqtt and its two neighbours (robot-sim.ts, the
// readings; robot-fleet.ts, the reporting): everything a robot maker needs.
//
//   npm run robot -- --serial S --token T [--url http://127.0.0.1:8000] [--mqtt mqtt://127.0.0.1:1883] [--model examples/cleaner.json]
//   npm run robot -- --fleet 50 --credentials fleet.json [--url …]
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { checkModel, compileModel, type CompiledModel, type ModelDefinition } from '../contract/models.js'
import { ROBOT_COMMANDS, INITIAL_ROBOT_STATE } from '../contract/payloads.js'
import { robotTopic } from '../contract/topics.js'
import { doneLine, fleetReporter, readCredentials, summaryLine, verboseReporter, type Credential } from './robot-fleet.js'
import { createSimulation, createTelemetry } from './robot-sim.js'

const USAGE = `usage: npm run robot -- --serial S --token T [options]
       npm run robot -- --fleet N --credentials FILE [options]

  --url URL          United's HTTP address (default http://127.0.0.1:8000)
  --mqtt URL         MQTT broker: mqtt://host:port for TCP; default is the
                     WebSocket endpoint of --url (ws://host:port/mqtt)
  --interval MS      time between position frames (default 1000); a hardware
                     frame goes along every 5 s
  --count N          stop after N position frames (default: run until Ctrl-C);
                     a robot that is refused (wrong or revoked secret) gives up
  --fleet N          run the first N robots of --credentials (default: all)
  --credentials FILE a JSON array of {"serial","token"}, as written by
                     npm run manage -- create-robots
  --quiet            print only errors, connection counts and a summary
  --summary S        seconds between summary lines of a fleet (default 10)
  --model FILE       a robot model (JSON, as posted to /admin/api/models): send
                     type-4 frames of its fields with every hardware frame, and
                     answer its commands with a result (give the robot this
                     model first, on its admin page or the Management API)

Exit status: 0 when every frame was acked ok and nothing failed (with --count:
every robot sent its N frames), 1 otherwise, 2 for a usage mistake.`

/** Between two hardware frames. */
const HARDWARE_EVERY_MS = 5000
/** How long a robot that reached --count waits for its last acks. */
const LAST_ACKS_MS = 5000

export interface RobotOptions {
  serial: string
  token: string
  url: string
  mqttUrl?: string
  intervalMs: number
  count?: number
  /** The robot's model, if it has one: its telemetry is sent, its commands answered. */
  model?: ModelDefinition
  onEvent: (event: RobotEvent) => void
}

/** What happens to a robot, for a reporter to print. */
export type RobotEvent =
  | { kind: 'connected', uuid: string, state: string }
  /** `expected`: the robot closed it itself (it is done, or stopped). */
  | { kind: 'disconnected', expected: boolean }
  | { kind: 'failed', message: string, retryInMs: number }
  | { kind: 'gave-up', message: string }
  | { kind: 'ack', id: string, ok: boolean, errors: string[] }
  | { kind: 'command', command: string, issuedBy: string, state: string, params?: unknown, result?: Record<string, unknown>, error?: string }

export interface RobotStats {
  /** Frames published (position and hardware). */
  sent: number
  ok: number
  rejected: number
  /** Frames still without an ack when the robot finished. */
  unacked: number
  failedAttempts: number
  lost: number
  connected: boolean
  /** Refused with --count: it stopped trying. */
  gaveUp: boolean
  /** Reached --count, every frame acked. */
  completed: boolean
  /** The error since the robot was last connected, if any. */
  lastError?: string
}

/** A refusal that retrying will not change: wrong, revoked or malformed credentials. */
class Refused extends Error {}

interface AccessToken { access_token: string, expires_in: number, robot_uuid: string }

/** POST /robots/robot/obtain_token, form-encoded like the original robot. */
async function obtainToken (url: string, serial: string, token: string, signal: AbortSignal): Promise<AccessToken> {
  let res: Response
  try {
    res = await fetch(new URL('/robots/robot/obtain_token', url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ serial, token }).toString(),
      signal
    })
  } catch (err) {
    if (signal.aborted) throw err
    // fetch says only "fetch failed"; the cause says why (ECONNREFUSED…).
    throw new Error(`obtain_token failed: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
  }
  if (res.status !== 201) {
    const body = await res.json().catch(() => ({})) as { code?: string, message?: string }
    const message = `obtain_token answered ${res.status}${body.code === undefined ? '' : ` ${body.code}`}: ${body.message ?? res.statusText}`
    if (res.status === 400 || res.status === 401 || res.status === 403) throw new Refused(message)
    const retryAfter = Number(res.headers.get('retry-after'))
    throw Object.assign(new Error(message), Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {})
  }
  return await res.json() as AccessToken
}

/** An MQTT connection error, with CONNACK 4 (bad user name or password) and 5 (not authorized) as refusals. */
function mqttError (err: Error & { code?: unknown }): Error {
  if (err.code === 4 || err.code === 5) return new Refused(`MQTT CONNACK ${err.code}: ${err.message.replace(/^Connection refused: /, '')}`)
  return new Error(`MQTT: ${err.message}`)
}

function brokerUrl (opts: RobotOptions): string {
  if (opts.mqttUrl !== undefined) return opts.mqttUrl
  const url = new URL('/mqtt', opts.url)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.toString()
}

/**
 * One simulated robot. `done` resolves when it has sent `count` position
 * frames and had them acked (it stays connected, obeying commands, until
 * stop()), when it gives up, or after stop(). stop(true) abandons everything
 * at once: the request or connection in progress, and the acks not yet back.
 */
export function runRobot (opts: RobotOptions): { done: Promise<void>, stop: (force?: boolean) => void, stats: RobotStats } {
  const stats: RobotStats = { sent: 0, ok: 0, rejected: 0, unacked: 0, failedAttempts: 0, lost: 0, connected: false, gaveUp: false, completed: false }
  const sim = createSimulation()
  // version 0: the robot checks parameters with its own copy; the server has checked them already
  const model: CompiledModel | undefined = opts.model === undefined ? undefined : compileModel({ name: opts.model.name, version: 0 }, opts.model)
  const telemetry = opts.model === undefined ? undefined : createTelemetry(opts.model)
  const abort = new AbortController()
  const awaitingAck = new Set<string>()
  const runId = Date.now().toString(36)
  let state: string = INITIAL_ROBOT_STATE
  let stopped = false
  let finished = false
  let client: MqttClient | undefined
  let connecting: MqttClient | undefined
  let frames = 0
  let lastHardwareAt = -Infinity
  let endPause: (() => void) | undefined

  /** Waits `ms`; cut short by stop(), a lost connection, or an ack while waiting for the last ones. */
  async function pause (ms: number): Promise<void> {
    if (stopped) return
    await new Promise<void>((resolve) => {
      const end = (): void => { clearTimeout(timer); endPause = undefined; resolve() }
      const timer = setTimeout(end, ms)
      endPause = end
    })
  }

  function publish (c: MqttClient, uuid: string, frame: { type: number, data: object }, kind: string): void {
    // Unique per robot across runs (frame ids are idempotent per robot) and short for any serial.
    const id = `${kind}-${runId}-${++frames}`
    awaitingAck.add(id)
    stats.sent++
    c.publish(robotTopic(uuid, 'data'), JSON.stringify({ id, ...frame }), { qos: 1 })
  }

  async function connectOnce (): Promise<MqttClient> {
    const token = await obtainToken(opts.url, opts.serial, opts.token, abort.signal)
    if (stopped) throw new Error('stopped')
    const c = mqtt.connect(brokerUrl(opts), {
      username: token.robot_uuid,
      password: token.access_token,
      clientId: `robot-${opts.serial}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000
    })
    connecting = c
    try {
      const closed = new Promise<never>((_resolve, reject) => { c.once('close', () => { reject(new Error('MQTT: the connection closed while connecting')) }) })
      closed.catch(() => {})
      await Promise.race([closed, new Promise<void>((resolve, reject) => {
        c.once('connect', () => { resolve() })
        c.once('error', (err) => { reject(mqttError(err)) })
      })])
      c.removeAllListeners('error')
      c.on('error', () => {})
      const uuid = token.robot_uuid
      // Listening before subscribing: commands queued while the robot was
      // away are published as soon as the broker has the subscription, and
      // may arrive in the same read as the SUBACK.
      c.on('message', (topic, payload) => { onMessage(c, uuid, topic, payload) })
      await Promise.race([closed, c.subscribeAsync([robotTopic(uuid, 'ack'), robotTopic(uuid, 'commands')], { qos: 1 })])
      return c
    } catch (err) {
      c.end(true)
      throw err
    } finally {
      connecting = undefined
    }
  }

  /** Connects with a fresh token; retries (with backoff) until it works, it is stopped, or (with --count) it is refused. */
  async function connect (): Promise<MqttClient | undefined> {
    for (let attempt = 0; !stopped; attempt++) {
      let c: MqttClient
      try {
        c = await connectOnce()
      } catch (err) {
        if (stopped) return undefined
        stats.failedAttempts++
        stats.lastError = (err as Error).message
        if (err instanceof Refused && opts.count !== undefined) {
          stats.gaveUp = true
          opts.onEvent({ kind: 'gave-up', message: stats.lastError })
          return undefined
        }
        // Backoff, or longer when the server says when to come back (429, 503).
        const delay = Math.max(Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)), Math.min(300_000, (err as { retryAfterMs?: number }).retryAfterMs ?? 0))
        opts.onEvent({ kind: 'failed', message: stats.lastError, retryInMs: delay })
        await pause(delay)
        continue
      }
      stats.connected = true
      stats.lastError = undefined
      c.once('close', () => {
        stats.connected = false
        const expected = stopped || finished
        if (!expected) stats.lost++
        opts.onEvent({ kind: 'disconnected', expected })
        endPause?.()
      })
      opts.onEvent({ kind: 'connected', uuid: c.options.username ?? '', state })
      return c
    }
    return undefined
  }

  function onMessage (c: MqttClient, uuid: string, topic: string, payload: Buffer): void {
    let body: Record<string, unknown>
    try {
      body = JSON.parse(payload.toString()) as Record<string, unknown>
    } catch {
      return
    }
    if (topic === robotTopic(uuid, 'ack')) {
      const id = String(body.id)
      if (!awaitingAck.delete(id)) return // a duplicate (QoS 1 may deliver twice)
      const ok = body.status === 'ok'
      if (ok) stats.ok++
      else stats.rejected++
      opts.onEvent({ kind: 'ack', id, ok, errors: Array.isArray(body.errors) ? body.errors.map(String) : [] })
      if (finished) endPause?.()
    } else if (topic === robotTopic(uuid, 'commands')) {
      const command = String(body.command)
      const known = (ROBOT_COMMANDS as readonly string[]).includes(command)
      const ofModel = model?.commands.get(command)
      let ack: Record<string, unknown>
      if (known) {
        state = command
        ack = { id: body.id, status: 'ok', state }
        opts.onEvent({ kind: 'command', command, issuedBy: String(body.issued_by), state })
      } else if (ofModel !== undefined) {
        // A model command leaves the state alone (docs/protocol.md §14.3); its answer is a result.
        const errors = ofModel.checkParams(body.params ?? undefined)
        if (errors === null) {
          const result = { ok: true, command, params: body.params ?? {} }
          ack = { id: body.id, status: 'ok', result }
          opts.onEvent({ kind: 'command', command, issuedBy: String(body.issued_by), state, params: body.params, result })
        } else {
          ack = { id: body.id, status: 'error', message: errors.join('; ').slice(0, 1000) }
          opts.onEvent({ kind: 'command', command, issuedBy: String(body.issued_by), state, params: body.params, error: String(ack.message) })
        }
      } else {
        ack = { id: body.id, status: 'error', message: `unknown command ${command}` }
        opts.onEvent({ kind: 'command', command, issuedBy: String(body.issued_by), state })
      }
      c.publish(robotTopic(uuid, 'commands/ack'), JSON.stringify(ack), { qos: 1 })
    }
  }

  async function loop (): Promise<void> {
    let positions = 0
    while (!stopped && (opts.count === undefined || positions < opts.count)) {
      if (client === undefined || !client.connected) {
        client?.end(true)
        client = await connect()
        if (client === undefined) return
      }
      const uuid = client.options.username ?? ''
      // A hardware frame with the first position frame, then every few seconds.
      if (Date.now() - lastHardwareAt >= HARDWARE_EVERY_MS) {
        lastHardwareAt = Date.now()
        publish(client, uuid, sim.hardware(state), 'h')
        if (telemetry !== undefined && telemetry.fields.length > 0) publish(client, uuid, telemetry.telemetry(), 't')
      }
      positions++
      publish(client, uuid, sim.position(state, opts.intervalMs / 1000), 'p')
      await pause(opts.intervalMs)
    }
    if (stopped) return
    finished = true
    const deadline = Date.now() + LAST_ACKS_MS
    while (!stopped && awaitingAck.size > 0 && client?.connected === true && Date.now() < deadline) await pause(deadline - Date.now())
    stats.unacked = awaitingAck.size
    stats.completed = !stopped && stats.unacked === 0
  }

  const done = loop()
  return {
    done,
    stats,
    stop: (force = true) => {
      // Frames still in flight when it is stopped are abandoned, not counted as errors.
      stopped = true
      abort.abort()
      endPause?.()
      connecting?.end(true)
      client?.end(force)
    }
  }
}

interface Args { robots: Credential[], url: string, mqttUrl?: string, intervalMs: number, count?: number, quiet: boolean, summaryMs: number, model?: ModelDefinition }

/** The model file of --model, checked as the server checks it; a message for the user otherwise. */
function readModel (file: string): ModelDefinition | { usage: string } {
  let body: unknown
  try {
    body = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    return { usage: `--model ${file}: ${(err as Error).message}` }
  }
  const checked = checkModel(body)
  return checked.ok ? checked.model : { usage: `--model ${file} is not a valid model: ${checked.errors.join('; ')}` }
}

/** The command line, or a message for the user (exit 2). */
function parse (argv: string[]): Args | { usage: string } | { help: true } {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        serial: { type: 'string' },
        token: { type: 'string' },
        url: { type: 'string', default: 'http://127.0.0.1:8000' },
        mqtt: { type: 'string' },
        interval: { type: 'string', default: '1000' },
        count: { type: 'string' },
        fleet: { type: 'string' },
        credentials: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        summary: { type: 'string', default: '10' },
        model: { type: 'string' },
        help: { type: 'boolean', default: false }
      },
      strict: true
    }))
  } catch (err) {
    return { usage: (err as Error).message }
  }
  if (values.help) return { help: true }
  const intervalMs = Number(values.interval)
  const count = values.count === undefined ? undefined : Number(values.count)
  const summaryMs = Number(values.summary) * 1000
  if (!Number.isFinite(intervalMs) || intervalMs < 1 || (count !== undefined && !(Number.isInteger(count) && count > 0)) || !(summaryMs >= 100)) {
    return { usage: '--interval, --count and --summary take positive numbers' }
  }
  const fleetMode = values.fleet !== undefined || values.credentials !== undefined
  if (fleetMode && (values.serial !== undefined || values.token !== undefined)) return { usage: 'give either --serial and --token (one robot) or --fleet and --credentials (a fleet), not both' }
  let robots: Credential[]
  if (fleetMode) {
    const n = values.fleet === undefined ? undefined : Number(values.fleet)
    if (values.credentials === undefined || (n !== undefined && !(Number.isInteger(n) && n > 0))) return { usage: '--fleet N needs a positive N and --credentials FILE' }
    try {
      robots = readCredentials(values.credentials, n)
    } catch (err) {
      return { usage: (err as Error).message }
    }
  } else if (values.serial !== undefined && values.token !== undefined) {
    robots = [{ serial: values.serial, token: values.token }]
  } else {
    return { usage: '--serial and --token are required' }
  }
  let model: ModelDefinition | undefined
  if (values.model !== undefined) {
    const read = readModel(values.model)
    if ('usage' in read) return read
    model = read
  }
  return { robots, url: values.url, mqttUrl: values.mqtt, intervalMs, count, quiet: values.quiet || robots.length > 1, summaryMs, model }
}

/** A model command's parameters and result printed beside the reporter's line (one robot, not --quiet). */
function modelEvents (print: (line: string) => void, serial: string, quiet: boolean, next: (event: RobotEvent) => void): (event: RobotEvent) => void {
  return (event) => {
    next(event)
    if (quiet || event.kind !== 'command' || (event.result === undefined && event.error === undefined)) return
    const outcome = event.result !== undefined ? `result ${JSON.stringify(event.result)}` : `refused: ${event.error ?? ''}`
    print(`${serial}: model command ${event.command} params ${JSON.stringify(event.params ?? {})} → ${outcome}`)
  }
}

/** Leaves at the latest this long after Ctrl-C, or after the last robot is done, whatever is still open. */
const EXIT_WITHIN_MS = 1500

function main (argv: string[]): void {
  const args = parse(argv)
  if ('help' in args) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  if ('usage' in args) {
    process.stderr.write(`robot: ${args.usage}\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  const print = (line: string): void => { process.stdout.write(`${new Date().toISOString()} ${line}\n`) }
  const reporter = args.quiet ? fleetReporter(print, args.robots.length) : verboseReporter(print)
  const robots = args.robots.map((c) => ({
    serial: c.serial,
    ...runRobot({ serial: c.serial, token: c.token, url: args.url, mqttUrl: args.mqttUrl, intervalMs: args.intervalMs, count: args.count, model: args.model, onEvent: modelEvents(print, c.serial, args.quiet, reporter.robot(c.serial)) })
  }))
  const summary = args.quiet ? setInterval(() => { print(summaryLine(robots)) }, args.summaryMs) : undefined

  let ended = false
  const end = (interrupted: boolean): void => {
    if (ended) return
    ended = true
    clearInterval(summary)
    reporter.finish()
    for (const r of robots) r.stop(interrupted)
    const incomplete = args.count !== undefined && robots.some((r) => !r.stats.completed)
    const failed = robots.some((r) => r.stats.failedAttempts + r.stats.lost + r.stats.rejected + r.stats.unacked > 0)
    process.stdout.write(`${doneLine(robots, interrupted && incomplete)}\n`)
    process.exitCode = incomplete || failed ? 1 : 0
    // Whatever is still open (a socket the server does not close) does not hold the exit up.
    setTimeout(() => { process.exit() }, EXIT_WITHIN_MS).unref()
  }
  const onSignal = (): void => {
    if (ended) process.exit() // a second Ctrl-C: at once
    end(true)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  void Promise.all(robots.map(async (r) => { await r.done })).then(() => { end(false) })
}

// Run only as a program, so that tests and tools can import runRobot.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2))
