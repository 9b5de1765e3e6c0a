// roles-fanout: what roles, groups and expiries cost the per-message check
// (broker/access-cache.ts canAccess, run for every stats message forwarded to
// a user). On United alone: the bare broker has no access rules.
//
//   direct   a watcher user granted the --robots streaming robots directly (operator,
//            no expiry: the path of before roles)
//   groups   another watcher holding (viewer) 10 groups of 50 robots none of which
//            streams, granted first so that the check (in the order the view loads
//            the grants: grant order, in practice) looks through them before it
//            finds the robot in the last one: a group of 1,000 robots (the streaming
//            ones among them); the big group and every other small one end in a year
//            (expires_at), so the check compares those ends with the clock
//
// Each watcher subscribes over WebSocket to robots/+/stats (QoS 0; with
// --roles-connections N, N connections of the same user, each checked) while the
// robots (TCP, connected throughout) stream at --stream-hz (or closed loop
// with --window when it is 0). The variants alternate in --rounds rounds of
// --duration s each (direct, groups, direct…), after --warmup s of each, so
// that the machine's drift weighs on both; only the round's watcher is
// connected during it (it connects before, and leaves after). Delivery
// latency = publish of a frame → the stats message carrying its position_x
// at the watcher (United merges one batch's frames of a robot into one
// message, which carries the last one's), as in ws-fanout.
import type { MqttClient } from 'mqtt'
import { createAccessCache } from '../../broker/access-cache.js'
import { createEventBus } from '../../src/events.js'
import type { Fields, Meter, RunnerTools } from './history.js'
import { closedLoop, connect, mapLimit, now, paced, percentiles, Recorder, round, type Robot } from './load.js'
import { sleep } from './proc.js'
import type { United } from './targets.js'

/** The group the groups watcher sees the streaming robots through (more when --robots is larger). */
export const ROLES_GROUP_ROBOTS = 1000
const OTHER_GROUPS = 10
const OTHER_GROUP_ROBOTS = 50
/** the issue's bound: delivery p99 and ingest within 10 % of the direct path */
const GOAL_RATIO = 1.1

export const VARIANTS = ['direct', 'groups'] as const
export type RolesVariant = typeof VARIANTS[number]

/** Robots roles-fanout needs provisioned: the big group's. */
export function rolesRobotsNeeded (robots: number): number {
  return Math.max(robots, ROLES_GROUP_ROBOTS)
}

/** The two watchers (indexes for united.user(k)) and what they were given. */
export interface RolesSetup {
  watchers: Record<RolesVariant, number>
  grants: Record<RolesVariant, Fields>
}

/**
 * Creates the two watchers, the 11 groups, their robots and the grants,
 * through the Management API (32 requests at a time). Runs once per bench,
 * before United restarts for the measurements.
 */
export async function provisionRoles (united: United, robots: number, say: (s: string) => void): Promise<RolesSetup> {
  const t0 = now()
  const big = rolesRobotsNeeded(robots)
  const [direct, groups] = await Promise.all([united.addUser('roles-direct'), united.addUser('roles-groups')])
  // the small groups among the robots that do not stream, overlapping (a robot may be in two)
  const others = big - robots
  const small = Array.from({ length: OTHER_GROUPS }, (_, g) => Array.from({ length: Math.min(OTHER_GROUP_ROBOTS, others) }, (_, j) => robots + ((g * (OTHER_GROUP_ROBOTS - 5) + j) % Math.max(1, others))))
  // ids in creation order: the small groups first, then the big one
  const ids: number[] = []
  for (let g = 0; g < OTHER_GROUPS; g++) ids.push(await united.createGroup(`roles-${g}`))
  const bigId = await united.createGroup('roles-all')
  const placements: Array<[number, number]> = [
    ...small.flatMap((members, g) => members.map((i): [number, number] => [ids[g] as number, i])),
    ...Array.from({ length: big }, (_, i): [number, number] => [bigId, i])
  ]
  await mapLimit(placements, 32, async ([id, i]) => { await united.groupRobot(id, i) })
  await mapLimit(Array.from({ length: robots }, (_, i) => i), 32, async (i) => { await united.grantRobot(i, direct) })
  const inAYear = new Date(Date.now() + 365 * 86_400_000).toISOString()
  // one after the other, small groups first: the order the access view loads and checks them in
  for (let g = 0; g < OTHER_GROUPS; g++) await united.grantGroup(ids[g] as number, groups, { role: 'viewer', ...(g % 2 === 1 ? { expires_at: inAYear } : {}) })
  await united.grantGroup(bigId, groups, { role: 'viewer', expires_at: inAYear })
  say(`roles-fanout: 2 watchers, ${OTHER_GROUPS + 1} groups (${placements.length} placements), ${robots} direct grants in ${((now() - t0) / 1000).toFixed(1)} s`)
  return {
    watchers: { direct, groups },
    grants: {
      direct: { direct_grants: robots, groups: 0 },
      groups: { direct_grants: 0, groups: OTHER_GROUPS + 1, group_robots: big, other_group_robots: small[0]?.length ?? 0, role: 'viewer', expiring_groups: 1 + Math.floor(OTHER_GROUPS / 2) }
    }
  }
}

export interface RolesContext extends RunnerTools {
  united: United
  setup: RolesSetup
  runId: string
  robots: number
  /** frames/s of each robot; 0: closed loop with `window` */
  streamHz: number
  window: number
  durationS: number
  rounds: number
  warmupS: number
  /** connections of each watcher user, each subscribed (1: the issue's one watcher) */
  connections: number
  /** bench.ts' sum of several Marks' CPU and memory fields */
  sumMarks: (marks: Fields[], wallS: number) => Fields
}

interface Side {
  variant: RolesVariant
  rec: Recorder
  latencies: number[]
  deliveries: number
  elapsed: number
  marks: Fields[]
  roundP99: number[]
  roundAckP99: number[]
  roundCpu: number[]
  /** the fewest streaming robots seen by the watcher in a measured round */
  robotsSeen: number
  error: string | undefined
}

/**
 * The per-message check alone, in this process, on views of the scenario's
 * shapes: nanoseconds per canAccess of a streaming robot for the direct
 * watcher and for the groups watcher (10 groups looked through before the
 * big one). What the broker adds per forwarded message, free of the
 * machine's noise that dominates the end-to-end figures.
 */
export async function measureCheck (robots: number): Promise<{ direct_ns: number, groups_ns: number }> {
  const uuid = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`
  const streaming = Array.from({ length: robots }, (_, i) => uuid(i))
  const far = new Date(Date.now() + 365 * 86_400_000).toISOString()
  const smalls = Array.from({ length: 10 }, (_, g) => ({ groupId: g + 2, role: 'viewer' as const, expiresAt: g % 2 === 0 ? far : null }))
  const cache = createAccessCache({
    events: createEventBus(),
    load: {
      viewOf: async (userId) => userId === 1
        ? { direct: streaming.map((robotUuid) => ({ robotUuid, role: 'operator' as const, expiresAt: null })), groups: [] }
        : { direct: [], groups: [...smalls, { groupId: 1, role: 'viewer' as const, expiresAt: far }] },
      groupRobotUuids: async (id) => id === 1
        ? Array.from({ length: Math.max(1000, robots) }, (_, i) => uuid(i))
        : Array.from({ length: 50 }, (_, i) => uuid(100_000 + id * 50 + i))
    }
  })
  await cache.acquire({ id: 1, username: 'direct', isStaff: false })
  await cache.acquire({ id: 2, username: 'groups', isStaff: false })
  const reps = 2_000_000
  const time = (userId: number): number => {
    let seen = 0
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < reps; i++) if (cache.canAccess(userId, streaming[i % robots] as string)) seen++
    const ns = Number(process.hrtime.bigint() - t0) / reps
    if (seen !== reps) throw new Error('measureCheck: a streaming robot was not visible')
    return ns
  }
  time(1); time(2) // warm-up
  const direct: number[] = []
  const groups: number[] = []
  for (let r = 0; r < 5; r++) { direct.push(time(1)); groups.push(time(2)) }
  cache.close()
  return { direct_ns: round(median(direct), 1), groups_ns: round(median(groups), 1) }
}

/** The median of a few numbers (NaN for none). */
function median (values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2)
}

export async function runRolesFanout (ctx: RolesContext): Promise<Fields[]> {
  const { united, say } = ctx
  const mode = ctx.streamHz > 0 ? `${ctx.streamHz} Hz each` : `closed loop, window ${ctx.window}`
  say(`roles-fanout on united: ${ctx.robots} robots (${mode}), ${ctx.connections} connection${ctx.connections === 1 ? '' : 's'} per watcher, ${ctx.warmupS > 0 ? `${ctx.warmupS} s of warm-up per variant, then ` : ''}${ctx.rounds} rounds of ${ctx.durationS} s per variant, alternating ${VARIANTS.join(' / ')}…`)
  const fleetRec = new Recorder()
  await united.prepareRobots(ctx.robots)
  const fleet = await ctx.openFleet(Array.from({ length: ctx.robots }, (_, i) => i), fleetRec)
  const streaming = new Set(fleet.map((r) => r.uuid))
  const sides: Side[] = VARIANTS.map((variant) => ({ variant, rec: new Recorder(), latencies: [], deliveries: 0, elapsed: 0, marks: [], roundP99: [], roundAckP99: [], roundCpu: [], robotsSeen: Infinity, error: undefined }))
  let x = 0 // position_x of the next frame, unique over the scenario
  let connections = 0

  /** One round of a variant: its watcher connects and subscribes, the fleet streams, the watcher leaves. */
  async function runRound (side: Side, durationS: number, measured: boolean): Promise<void> {
    const rec = measured ? side.rec : new Recorder()
    const sentAt = new Map<number, number>()
    const latencies: number[] = []
    const seen = new Set<string>()
    let deliveries = 0
    let measuring = false
    const clients: MqttClient[] = []
    try {
      const creds = await united.user(ctx.setup.watchers[side.variant])
      for (let c = 0; c < ctx.connections; c++) {
        const client = await connect(united.wsUrl, { username: creds.username, password: creds.password, clientId: `bench-roles-${ctx.runId}-${side.variant}-${connections++}` })
        clients.push(client)
        client.on('message', (topic: string, payload: Buffer) => {
          if (!measuring) return // the retained messages of the subscription, the last ones after a round
          let msg: { robot_uuid?: unknown, position_x?: unknown }
          try { msg = JSON.parse(payload.toString()) as typeof msg } catch { return }
          const at = typeof msg.position_x === 'number' ? sentAt.get(msg.position_x) : undefined
          if (at === undefined) return
          deliveries++
          latencies.push(now() - at)
          if (typeof msg.robot_uuid === 'string') seen.add(msg.robot_uuid)
        })
        client.on('close', () => { if (measuring) rec.disconnects++ })
        const granted = await client.subscribeAsync('robots/+/stats', { qos: 0 })
        if (granted.some((g) => (g.qos as number) === 128)) throw new Error('subscription to robots/+/stats refused')
      }
      await sleep(300) // the retained stats of the watcher's robots arrive
      for (const r of fleet) r.nextX = () => { const s = x++; sentAt.set(s, now()); return s }
      const mark: Meter | undefined = measured ? ctx.mark() : undefined
      await mark?.start()
      measuring = true
      const ackFrom = rec.samples.length
      const tag = ctx.nextTag()
      const elapsed = ctx.streamHz > 0
        ? await paced(fleet, rec, { totalRate: ctx.robots * ctx.streamHz, durationS, tag })
        : await closedLoop(fleet, rec, { window: ctx.window, durationS, tag })
      await sleep(500) // the last statistics are on their way
      measuring = false
      mark?.stop()
      if (measured) {
        side.elapsed += elapsed
        side.deliveries += deliveries
        for (const l of latencies) side.latencies.push(l) // (not a spread: --roles-connections 20 makes 600,000 of them)
        side.roundP99.push(percentiles(latencies).p99_ms)
        side.roundAckP99.push(percentiles(rec.samples.slice(ackFrom)).p99_ms)
        side.robotsSeen = Math.min(side.robotsSeen, [...seen].filter((u) => streaming.has(u)).length)
        side.marks.push(mark?.result ?? {})
        side.roundCpu.push(typeof mark?.result?.server_cpu_s === 'number' ? mark.result.server_cpu_s : NaN)
      }
    } catch (err) {
      rec.failures++
      side.error = err instanceof Error ? err.message : String(err)
      say(`roles-fanout ${side.variant} failed: ${side.error}`)
    } finally {
      measuring = false
      for (const r of fleet) r.nextX = null
      await Promise.all(clients.map(async (c) => { await c.endAsync().catch(() => {}) }))
      if (!measured) side.rec.addErrors(rec)
    }
    if (united.proc.exited()) throw new Error(`united exited during roles-fanout; its last output:\n${united.proc.output().slice(-4000)}`)
  }

  try {
    if (ctx.warmupS > 0) for (const side of sides) await runRound(side, ctx.warmupS, false)
    for (let r = 0; r < ctx.rounds; r++) {
      for (const side of sides) if (side.error === undefined) await runRound(side, ctx.durationS, true)
    }
  } finally {
    await ctx.closeFleet(fleet)
  }

  const lines: Fields[] = sides.map((side) => {
    side.rec.addErrors(fleetRec)
    const base = { scenario: 'roles-fanout', target: 'united', variant: side.variant }
    if (side.error !== undefined) return { ...base, error: side.error, ...ctx.sumMarks(side.marks, side.elapsed) }
    const marks = ctx.sumMarks(side.marks, side.elapsed)
    const ack = side.rec.latency()
    const lat = percentiles(side.latencies)
    const cpu = marks.server_cpu_s
    return {
      ...base,
      ...ctx.setup.grants[side.variant],
      robots: ctx.robots,
      ...(ctx.streamHz > 0 ? { rate_hz_per_robot: ctx.streamHz } : { window: ctx.window }),
      connections: ctx.connections,
      rounds: ctx.rounds,
      round_s: ctx.durationS,
      warmup_s: ctx.warmupS,
      frames: side.rec.ok,
      duration_s: round(side.elapsed),
      frames_per_s: round(side.rec.ok / side.elapsed, 0),
      ack_p50_ms: ack.p50_ms,
      ack_p99_ms: ack.p99_ms,
      deliveries: side.deliveries,
      deliveries_per_s: round(side.deliveries / side.elapsed, 0),
      deliveries_per_frame: round(side.deliveries / Math.max(1, side.rec.ok), 2),
      ...lat,
      round_p99_ms: side.roundP99,
      round_p99_median_ms: median(side.roundP99),
      round_ack_p99_ms: side.roundAckP99,
      round_ack_p99_median_ms: median(side.roundAckP99),
      round_server_cpu_s: side.roundCpu,
      robots_seen: Number.isFinite(side.robotsSeen) ? side.robotsSeen : 0,
      ...ctx.errorFields(side.rec),
      ...marks,
      server_cpu_us_per_frame: typeof cpu === 'number' && side.rec.ok > 0 ? round((cpu * 1e6) / side.rec.ok, 1) : undefined,
      note: 'p50/p99/max: frame publish → stats message at the watcher (robots/+/stats, WebSocket, QoS 0); ack_*: the frames\' acks (ingest)'
    }
  })
  const [direct, groups] = lines as [Fields, Fields]
  const ratio = (key: string): number | null => {
    const g = groups[key]
    const d = direct[key]
    return typeof g === 'number' && typeof d === 'number' && Number.isFinite(g) && Number.isFinite(d) && d !== 0 ? round(g / d, 3) : null
  }
  const ratios = {
    p99_ratio: ratio('p99_ms'),
    p50_ratio: ratio('p50_ms'),
    deliveries_per_s_ratio: ratio('deliveries_per_s'),
    frames_per_s_ratio: ratio('frames_per_s'),
    ack_p99_ratio: ratio('ack_p99_ms'),
    round_p99_median_ratio: ratio('round_p99_median_ms'),
    round_ack_p99_median_ratio: ratio('round_ack_p99_median_ms'),
    cpu_per_frame_ratio: ratio('server_cpu_us_per_frame')
  }
  const within = (r: number | null, up: boolean): boolean => r !== null && (up ? r <= GOAL_RATIO : r >= 1 / GOAL_RATIO)
  const complete = lines.every((l) => l.robots_seen === ctx.robots && l.errors === 0)
  const check = await measureCheck(ctx.robots)
  const comparison: Fields = {
    scenario: 'roles-fanout',
    target: 'united',
    variant: 'groups/direct',
    ...ratios,
    check_direct_ns: check.direct_ns,
    check_groups_ns: check.groups_ns,
    ratio: ratios.round_p99_median_ratio,
    ratio_of: 'the median of the rounds\' delivery p99, groups / direct',
    // Per round, then the median: one round disturbed by the machine (steal time, another process) moves a pooled p99 of
    // either variant, and the acks, which no forwarding check touches, move with it.
    goal: `delivery p99 ≤ ${GOAL_RATIO}× and ingest (frames/s ≥ ${round(1 / GOAL_RATIO, 2)}×, ack p99 ≤ ${GOAL_RATIO}×) of direct, each p99 the median of the rounds', every streaming robot seen, no error`,
    goal_met: complete && within(ratios.round_p99_median_ratio, true) && within(ratios.frames_per_s_ratio, false) && within(ratios.round_ack_p99_median_ratio, true)
  }
  const out = [...lines, comparison]
  for (const l of out) for (const k of Object.keys(l)) if (l[k] === undefined) delete l[k]
  ctx.emit(out)
  return out
}
