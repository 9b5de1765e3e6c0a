// The load: mqtt.js robots and users in the runner's process, and the
// workloads they run. Everything here speaks only the wire (docs/protocol.md §3-§5),
// so it runs unchanged against United and against the bare broker.
import { performance } from 'node:perf_hooks'
import { createConnection } from 'node:net'
import mqtt, { MqttClient, type IClientOptions } from 'mqtt'
import { sleep } from './proc.js'

export const now = (): number => performance.now()

/** How long a workload waits for the acks still missing after it stops sending. */
export const DRAIN_MS = 15_000

export interface Credentials { uuid: string, username: string, password: string }

/** Latency samples and error counts of one scenario on one target. */
export class Recorder {
  samples: number[] = []
  ok = 0
  errorAcks = 0
  missing = 0
  duplicateAcks = 0
  disconnects = 0
  failures = 0 // refused connections, failed HTTP calls, failed publishes
  sent = 0
  firstSend = 0
  lastAck = 0

  get errors (): number {
    return this.errorAcks + this.missing + this.disconnects + this.failures
  }

  /** Counts `other`'s errors (and duplicate acks) here too, but none of its frames or latencies. */
  addErrors (other: Recorder): void {
    this.errorAcks += other.errorAcks
    this.missing += other.missing
    this.disconnects += other.disconnects
    this.failures += other.failures
    this.duplicateAcks += other.duplicateAcks
  }

  latency (): { p50_ms: number, p99_ms: number, max_ms: number } {
    return percentiles(this.samples)
  }
}

export function percentiles (samples: number[]): { p50_ms: number, p99_ms: number, max_ms: number } {
  if (samples.length === 0) return { p50_ms: NaN, p99_ms: NaN, max_ms: NaN }
  const sorted = Float64Array.from(samples).sort()
  const rank = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number
  return { p50_ms: round(rank(0.5)), p99_ms: round(rank(0.99)), max_ms: round(sorted[sorted.length - 1] as number) }
}

export function round (x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/**
 * Connects and resolves on CONNACK; rejects on a refusal, an error or a timeout.
 * TCP sockets get TCP_NODELAY (as most MQTT clients set it; mqtt.js does not):
 * otherwise Nagle's algorithm holds a frame back while the PUBACK of the previous
 * ack is unacknowledged, and the latencies measure the client's delayed ACK
 * (up to 40 ms) instead of the server. ws sets it on its own.
 */
export async function connect (url: string, opts: IClientOptions): Promise<MqttClient> {
  const options: IClientOptions = { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60, clean: true, ...opts }
  const u = new URL(url)
  const client = u.protocol === 'mqtt:'
    ? new MqttClient(() => createConnection({ host: u.hostname, port: Number(u.port), noDelay: true }), options)
    : mqtt.connect(url, options)
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => { resolve() })
      client.once('error', reject)
      client.once('close', () => { reject(new Error('closed before CONNACK')) })
    })
  } catch (err) {
    client.end(true)
    throw err
  }
  client.removeAllListeners('error')
  client.removeAllListeners('close')
  client.on('error', () => {}) // counted through 'close'
  return client
}

/** A position frame of about 200 bytes; `x` travels in position_x (the fan-out scenario uses it as a sequence number). */
export function positionFrame (id: string, x: number): string {
  return `{"id":"${id}","type":1,"data":{"speed":1.523456,"position_x":${x},"position_y":-45.678912,"angle_theta":0.785398,"datetime":"2024-05-01 12:00:00"}}`
}

/**
 * One robot connection: publishes frames on robots/{uuid}/data and matches
 * the acks on robots/{uuid}/ack by frame id. It may also take commands and
 * acknowledge them on robots/{uuid}/commands/ack, like the example robot.
 */
export class Robot {
  readonly pending = new Map<string, number>()
  rec: Recorder | null = null
  /** called after each ack of a frame this robot sent (the closed loop sends the next one) */
  onAck: (() => void) | null = null
  onCommand: ((id: string, at: number) => void) | null = null
  /** when set, gives position_x of the next frame (the fan-out scenario numbers its frames with it) */
  nextX: (() => number) | null = null
  /** when set, writes the frame instead of positionFrame (the models scenario's telemetry frames) */
  frame: ((id: string, x: number) => string) | null = null
  private seq = 0
  private closing = false
  private readonly dataTopic: string
  private readonly ackTopic: string
  private readonly commandsTopic: string

  /** frame ids are `${tag}-${seq}`: a fresh tag per scenario keeps them unique per robot */
  private tag = 'f'

  private constructor (readonly client: MqttClient, readonly uuid: string) {
    this.dataTopic = `robots/${uuid}/data`
    this.ackTopic = `robots/${uuid}/ack`
    this.commandsTopic = `robots/${uuid}/commands`
    client.on('message', (topic, payload) => { this.message(topic, payload) })
    client.on('close', () => {
      if (!this.closing && this.rec !== null) this.rec.disconnects++
      this.closing = true
    })
  }

  static async connect (url: string, creds: Credentials, opts: { commands: boolean, tag: string }): Promise<Robot> {
    const client = await connect(url, { username: creds.username, password: creds.password, clientId: `bench-${opts.tag}-${creds.uuid}` })
    const robot = new Robot(client, creds.uuid)
    const topics: Record<string, { qos: 1 }> = { [robot.ackTopic]: { qos: 1 } }
    if (opts.commands) topics[robot.commandsTopic] = { qos: 1 }
    const granted = await client.subscribeAsync(topics)
    if (granted.some((g) => g.qos !== 1)) {
      client.end(true)
      throw new Error(`subscription refused for robot ${creds.uuid}: ${JSON.stringify(granted)}`)
    }
    return robot
  }

  get outstanding (): number {
    return this.pending.size
  }

  /** Publishes the next frame (QoS 1) and starts its latency clock. */
  send (x?: number): void {
    const rec = this.rec
    const id = `${this.tag}-${this.seq}`
    const frame = (this.frame ?? positionFrame)(id, x ?? this.nextX?.() ?? 10.123456 + (this.seq % 1000))
    this.seq++
    const t = now()
    this.pending.set(id, t)
    if (rec !== null) {
      rec.sent++
      if (rec.firstSend === 0) rec.firstSend = t
    }
    this.client.publish(this.dataTopic, frame, { qos: 1 }, (err) => {
      if (err !== undefined && err !== null && rec !== null && !this.closing) rec.failures++
    })
  }

  /** A fresh tag for the frame ids of the next scenario (ids stay unique per robot). */
  retag (tag: string): void {
    this.tag = tag
    this.seq = 0
  }

  private message (topic: string, payload: Buffer): void {
    const t = now()
    if (topic === this.ackTopic) {
      let ack: { id?: unknown, status?: unknown }
      try { ack = JSON.parse(payload.toString()) as typeof ack } catch { ack = {} }
      const id = typeof ack.id === 'string' ? ack.id : ''
      const sentAt = this.pending.get(id)
      const rec = this.rec
      if (sentAt === undefined) {
        if (rec !== null) rec.duplicateAcks++
        return
      }
      this.pending.delete(id)
      if (rec !== null) {
        if (ack.status === 'ok') {
          rec.ok++
          rec.samples.push(t - sentAt)
        } else {
          rec.errorAcks++
          if (rec.errorAcks <= 3) process.stderr.write(`bench: error ack ${payload.toString()}\n`)
        }
        rec.lastAck = t
      }
      this.onAck?.()
    } else if (topic === this.commandsTopic) {
      let cmd: { id?: unknown, command?: unknown }
      try { cmd = JSON.parse(payload.toString()) as typeof cmd } catch { cmd = {} }
      if (typeof cmd.id !== 'string') return
      this.onCommand?.(cmd.id, t)
      this.client.publish(`${this.commandsTopic}/ack`, JSON.stringify({ id: cmd.id, status: 'ok', state: cmd.command }), { qos: 1 })
    }
  }

  async close (): Promise<void> {
    this.closing = true
    await this.client.endAsync().catch(() => {})
  }

  /** Hard close (no DISCONNECT handshake wait). */
  kill (): void {
    this.closing = true
    this.client.end(true)
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** Waits until no robot has a frame in flight, or DRAIN_MS passed; what is left counts as missing acks. */
async function drain (fleet: Robot[], rec: Recorder): Promise<void> {
  const until = now() + DRAIN_MS
  while (now() < until && fleet.some((r) => r.outstanding > 0)) await sleep(20)
  for (const r of fleet) {
    rec.missing += r.outstanding
    r.pending.clear()
  }
}

function attach (fleet: Robot[], rec: Recorder, tag: string): void {
  for (const r of fleet) {
    r.rec = rec
    r.retag(tag)
    r.onAck = null
  }
}

/** Ends a workload: the robots stop recording (commands still arrive: the command scenario clears onCommand itself). */
export function detach (fleet: Robot[]): void {
  for (const r of fleet) {
    r.rec = null
    r.onAck = null
    r.nextX = null
  }
}

/**
 * Closed loop: each robot keeps `window` frames in flight, sending the next
 * one when an ack arrives, for `durationS` seconds (or `frames` frames per robot).
 * Returns the elapsed seconds, from the first publish to the last ack.
 */
export async function closedLoop (fleet: Robot[], rec: Recorder, opts: { window: number, frames?: number, durationS: number, tag: string }): Promise<number> {
  attach(fleet, rec, opts.tag)
  const t0 = now()
  const deadline = opts.frames !== undefined ? Infinity : t0 + opts.durationS * 1000
  const sentBy = new Map<Robot, number>()
  const canSend = (r: Robot): boolean => opts.frames !== undefined ? (sentBy.get(r) ?? 0) < opts.frames : now() < deadline
  const sendOne = (r: Robot): void => {
    sentBy.set(r, (sentBy.get(r) ?? 0) + 1)
    r.send()
  }
  let finished: () => void = () => {}
  const done = new Promise<void>((resolve) => { finished = resolve })
  let active = fleet.length
  for (const r of fleet) {
    let stopped = false
    r.onAck = () => {
      if (stopped) return
      if (canSend(r)) sendOne(r)
      else if (r.outstanding === 0) {
        stopped = true
        if (--active === 0) finished()
      }
    }
  }
  for (const r of fleet) for (let i = 0; i < opts.window; i++) sendOne(r)
  // a robot whose acks stop coming (or a closed connection) must not stall the run
  const watchdog = setInterval(() => {
    if (now() > (opts.frames !== undefined ? Infinity : deadline + DRAIN_MS)) finished()
  }, 100)
  if (opts.frames !== undefined) {
    // frames mode: give up when no ack came for DRAIN_MS
    let lastCount = -1
    let lastChange = now()
    const stall = setInterval(() => {
      const c = rec.ok + rec.errorAcks
      if (c !== lastCount) { lastCount = c; lastChange = now() } else if (now() - lastChange > DRAIN_MS) finished()
    }, 200)
    await done
    clearInterval(stall)
  } else {
    await done
  }
  clearInterval(watchdog)
  await drain(fleet, rec)
  detach(fleet)
  return ((rec.lastAck > 0 ? rec.lastAck : now()) - t0) / 1000
}

/**
 * Paced (open loop): the fleet sends `totalRate` frames/s in all, each robot
 * at totalRate/fleet.length Hz, spread evenly in time, for `durationS`
 * seconds, or until `stop` returns true (checked at every tick: a workload
 * that lasts as long as something in the server does); then waits for the
 * last acks.
 */
export async function paced (fleet: Robot[], rec: Recorder, opts: { totalRate: number, durationS: number, tag: string, stop?: () => boolean }): Promise<number> {
  attach(fleet, rec, opts.tag)
  const hz = opts.totalRate / fleet.length
  const perRobot = Math.round(hz * opts.durationS)
  const sent = new Array<number>(fleet.length).fill(0)
  const t0 = now()
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = (now() - t0) / 1000
      let all = true
      for (let i = 0; i < fleet.length; i++) {
        const due = Math.min(perRobot, Math.floor(elapsed * hz + i / fleet.length))
        while ((sent[i] as number) < due) {
          (fleet[i] as Robot).send()
          sent[i] = (sent[i] as number) + 1
        }
        if ((sent[i] as number) < perRobot) all = false
      }
      if (all || opts.stop?.() === true) { clearInterval(tick); resolve() }
    }, 2)
  })
  await drain(fleet, rec)
  detach(fleet)
  return ((rec.lastAck > 0 ? rec.lastAck : now()) - t0) / 1000
}
