// The example robot (the original robot.py, in TypeScript): it obtains its
// access token, connects over MQTT, sends a position frame every second,
// prints each ack, obeys commands and acknowledges them, and reconnects with a
// fresh token whenever the old one is refused. `--fleet N` runs N of them.
// It imports only src/contract and mqtt: everything a robot maker needs.
//
//   npm run robot -- --serial S --token T [--url http://127.0.0.1:8000] [--mqtt mqtt://127.0.0.1:1883]
//   npm run robot -- --fleet 50 --credentials fleet.json [--url …]
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { ROBOT_COMMANDS, INITIAL_ROBOT_STATE } from '../contract/payloads.js'
import { robotTopic } from '../contract/topics.js'

const USAGE = `usage: npm run robot -- --serial S --token T [options]
       npm run robot -- --fleet N --credentials FILE [options]

  --url URL          United's HTTP address (default http://127.0.0.1:8000)
  --mqtt URL         MQTT broker: mqtt://host:port for TCP; default is the
                     WebSocket endpoint of --url (ws://host:port/mqtt)
  --interval MS      time between frames (default 1000)
  --count N          stop after N frames (default: run until Ctrl-C)
  --fleet N          run N robots from --credentials, a JSON array of {"serial","token"}
  --quiet            print only errors and a summary line per 10 s`

export interface RobotOptions {
  serial: string
  token: string
  url: string
  mqttUrl?: string
  intervalMs: number
  count?: number
  log: (line: string) => void
}

interface AccessToken { access_token: string, expires_in: number, robot_uuid: string }

/** POST /robots/robot/obtain_token, form-encoded like the original robot. */
async function obtainToken (url: string, serial: string, token: string): Promise<AccessToken> {
  const res = await fetch(new URL('/robots/robot/obtain_token', url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ serial, token }).toString()
  })
  if (res.status !== 201) {
    const body = await res.json().catch(() => ({})) as { message?: string }
    throw new Error(`obtain_token answered ${res.status}: ${body.message ?? res.statusText}`)
  }
  return await res.json() as AccessToken
}

function brokerUrl (opts: RobotOptions): string {
  if (opts.mqttUrl !== undefined) return opts.mqttUrl
  const url = new URL('/mqtt', opts.url)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.toString()
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** One simulated robot. Resolves when it has sent `count` frames (and had them acked), or on stop(). */
export function runRobot (opts: RobotOptions): { done: Promise<void>, stop: () => void, stats: { sent: number, ok: number, errors: number } } {
  const stats = { sent: 0, ok: 0, errors: 0 }
  let state: string = INITIAL_ROBOT_STATE
  let stopped = false
  let client: MqttClient | undefined
  let wake: (() => void) | undefined
  const position = { x: 0, y: 0, theta: 0 }

  function frame (seq: number): string {
    position.theta += (Math.random() - 0.5) * 0.3
    const speed = state === 'idle' || state === 'error' ? 0 : 0.5 + Math.random()
    position.x += Math.cos(position.theta) * speed
    position.y += Math.sin(position.theta) * speed
    const round = (n: number): number => Math.round(n * 1000) / 1000
    return JSON.stringify({
      id: `${opts.serial}-${Date.now()}-${seq}`,
      type: 1,
      data: {
        speed: round(speed),
        position_x: round(position.x),
        position_y: round(position.y),
        angle_theta: round(position.theta),
        datetime: new Date().toISOString().slice(0, 19).replace('T', ' ')
      }
    })
  }

  /** Connects with a fresh token; retries (with backoff) until it works or we stop. */
  async function connect (): Promise<MqttClient | undefined> {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        const token = await obtainToken(opts.url, opts.serial, opts.token)
        const c = mqtt.connect(brokerUrl(opts), {
          username: token.robot_uuid,
          password: token.access_token,
          clientId: `robot-${opts.serial}`,
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 10_000
        })
        await new Promise<void>((resolve, reject) => {
          c.once('connect', () => { resolve() })
          c.once('error', reject)
          c.once('close', () => { reject(new Error('connection closed')) })
        })
        c.removeAllListeners('error')
        c.on('error', () => {})
        const uuid = token.robot_uuid
        // Listening before subscribing: commands queued while the robot was
        // away (CONTRACT §12) are published as soon as the broker has the
        // subscription, and may arrive in the same read as the SUBACK.
        c.on('message', (topic, payload) => { onMessage(c, uuid, topic, payload) })
        await c.subscribeAsync([robotTopic(uuid, 'ack'), robotTopic(uuid, 'commands')], { qos: 1 })
        c.once('close', () => {
          if (!stopped) opts.log(`${opts.serial}: connection lost; reconnecting with a fresh token`)
          wake?.()
        })
        opts.log(`${opts.serial}: connected as ${uuid} (state ${state})`)
        return c
      } catch (err) {
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6))
        opts.log(`${opts.serial}: ${(err as Error).message}; retrying in ${delay} ms`)
        await sleep(delay)
      }
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
      if (body.status === 'ok') stats.ok++
      else stats.errors++
      opts.log(`${opts.serial}: ack ${String(body.id)} ${String(body.status)}${Array.isArray(body.errors) ? ` ${body.errors.join('; ')}` : ''}`)
      wake?.()
    } else if (topic === robotTopic(uuid, 'commands')) {
      const command = String(body.command)
      const known = (ROBOT_COMMANDS as readonly string[]).includes(command)
      if (known) state = command
      opts.log(`${opts.serial}: command ${command} from ${String(body.issued_by)} → state ${state}`)
      const ack = known ? { id: body.id, status: 'ok', state } : { id: body.id, status: 'error', message: `unknown command ${command}` }
      c.publish(robotTopic(uuid, 'commands/ack'), JSON.stringify(ack), { qos: 1 })
    }
  }

  async function loop (): Promise<void> {
    let seq = 0
    while (!stopped && (opts.count === undefined || seq < opts.count)) {
      if (client === undefined || !client.connected) {
        client?.end(true)
        client = await connect()
        if (client === undefined) break
      }
      const c = client
      const uuid = (c.options.username ?? '')
      seq++
      stats.sent++
      c.publish(robotTopic(uuid, 'data'), frame(seq), { qos: 1 })
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.intervalMs)
        wake = () => { if (!c.connected) { clearTimeout(timer); resolve() } }
      })
    }
    // Wait (briefly) for the last acks before leaving.
    for (let i = 0; i < 50 && !stopped && stats.ok + stats.errors < stats.sent; i++) await sleep(100)
    stopped = true
    client?.end()
  }

  const done = loop()
  return {
    done,
    stats,
    stop: () => {
      stopped = true
      wake?.()
      client?.end(true)
    }
  }
}

function main (argv: string[]): void {
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
        help: { type: 'boolean', default: false }
      },
      strict: true
    }))
  } catch (err) {
    process.stderr.write(`robot: ${(err as Error).message}\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const intervalMs = Number(values.interval)
  const count = values.count === undefined ? undefined : Number(values.count)
  if (!Number.isFinite(intervalMs) || intervalMs < 1 || (count !== undefined && !(Number.isInteger(count) && count > 0))) {
    process.stderr.write(`robot: --interval and --count take positive numbers\n${USAGE}\n`)
    process.exitCode = 2
    return
  }

  let credentials: Array<{ serial: string, token: string }>
  if (values.fleet !== undefined) {
    const n = Number(values.fleet)
    if (values.credentials === undefined || !Number.isInteger(n) || n < 1) {
      process.stderr.write(`robot: --fleet N needs a positive N and --credentials FILE\n${USAGE}\n`)
      process.exitCode = 2
      return
    }
    try {
      credentials = (JSON.parse(readFileSync(values.credentials, 'utf8')) as Array<{ serial: string, token: string }>).slice(0, n)
    } catch (err) {
      process.stderr.write(`robot: cannot read ${values.credentials}: ${(err as Error).message}\n`)
      process.exitCode = 2
      return
    }
  } else if (values.serial !== undefined && values.token !== undefined) {
    credentials = [{ serial: values.serial, token: values.token }]
  } else {
    process.stderr.write(`robot: --serial and --token are required\n${USAGE}\n`)
    process.exitCode = 2
    return
  }

  const quiet = values.quiet || credentials.length > 1
  const log = quiet ? () => {} : (line: string) => { process.stdout.write(`${new Date().toISOString()} ${line}\n`) }
  const robots = credentials.map((c) => runRobot({ serial: c.serial, token: c.token, url: values.url, mqttUrl: values.mqtt, intervalMs, count, log }))
  const summary = quiet
    ? setInterval(() => {
      const total = robots.reduce((acc, r) => ({ sent: acc.sent + r.stats.sent, ok: acc.ok + r.stats.ok, errors: acc.errors + r.stats.errors }), { sent: 0, ok: 0, errors: 0 })
      process.stdout.write(`${new Date().toISOString()} ${robots.length} robots: ${total.sent} frames sent, ${total.ok} ok, ${total.errors} errors\n`)
    }, 10_000)
    : undefined
  const stop = (): void => { for (const r of robots) r.stop() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  void Promise.all(robots.map(async (r) => { await r.done })).then(() => {
    if (summary !== undefined) clearInterval(summary)
    const errors = robots.reduce((n, r) => n + r.stats.errors, 0)
    process.stdout.write(`done: ${robots.reduce((n, r) => n + r.stats.ok, 0)} frames acked ok, ${errors} errors\n`)
  })
}

// Run only as a program, so that tests and tools can import runRobot.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2))
