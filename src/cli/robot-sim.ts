// What the example robot reports, made up but plausible: a position that
// wanders while the robot moves, and hardware readings that go with it. The
// battery drains (faster while moving) and, at 20 %, the robot stops to
// charge back to full; CPU load follows the work; temperature follows the
// CPU and charging, slowly. Fields as the position and hardware frame types
// define them. With a robot model, its telemetry fields too (createTelemetry).
import type { FieldDeclaration, ModelDefinition } from '../contract/models.js'
import { FRAME_TYPES } from '../contract/payloads.js'

export interface PositionData { speed: number, position_x: number, position_y: number, angle_theta: number, datetime: string }
export interface HardwareData { datetime: string, battery: number, cpu: number, temperature: number, memory: number }

const LOW_BATTERY = 20 // % at which it goes charging
const CHARGE_PER_S = 0.5 // % a second
const DRAIN_IDLE_PER_S = 0.1
const DRAIN_PER_METRE = 0.15 // % per metre driven, on top

const clamp = (n: number, min: number, max: number): number => Math.min(max, Math.max(min, n))
const round = (n: number, places: number): number => Math.round(n * 10 ** places) / 10 ** places
/** `YYYY-MM-DD HH:MM:SS`, UTC: what the original robot sends. */
const originalDatetime = (at: Date): string => at.toISOString().slice(0, 19).replace('T', ' ')

export function createSimulation (random: () => number = Math.random) {
  const position = { x: 0, y: 0, theta: 0 }
  let battery = 40 + random() * 60
  let charging = false
  let cpu = 10
  let temperature: number | undefined
  let memory = 30 + random() * 20
  let driven = 0 // metres since the last hardware reading
  let lastHardwareAt: number | undefined

  const moving = (state: string): boolean => !charging && (state === 'auto' || state === 'manual')

  return {
    /** The next position frame's data, one step (`seconds` long) later. */
    position (state: string, seconds: number, at = new Date()): { type: typeof FRAME_TYPES.position, data: PositionData } {
      position.theta += (random() - 0.5) * 0.3
      const speed = moving(state) ? 0.5 + random() : 0
      const step = speed * seconds
      position.x += Math.cos(position.theta) * step
      position.y += Math.sin(position.theta) * step
      driven += step
      return {
        type: FRAME_TYPES.position,
        data: { speed: round(speed, 3), position_x: round(position.x, 3), position_y: round(position.y, 3), angle_theta: round(position.theta, 3), datetime: originalDatetime(at) }
      }
    },

    /** The next hardware frame's data, from what happened since the last one. */
    hardware (state: string, at = new Date()): { type: typeof FRAME_TYPES.hardware, data: HardwareData } {
      const seconds = lastHardwareAt === undefined ? 0 : Math.max(0, (at.getTime() - lastHardwareAt) / 1000)
      lastHardwareAt = at.getTime()
      if (charging) {
        battery = Math.min(100, battery + CHARGE_PER_S * seconds)
        if (battery >= 100) charging = false
      } else {
        battery = Math.max(0, battery - DRAIN_IDLE_PER_S * seconds - DRAIN_PER_METRE * driven)
        if (battery <= LOW_BATTERY) charging = true
      }
      driven = 0
      const busy = moving(state) ? 45 : 12
      cpu = clamp(cpu + (busy - cpu) * 0.5 + (random() - 0.5) * 10 + (random() < 0.05 ? 30 : 0), 1, 100)
      const warm = 32 + cpu * 0.3 + (charging ? 6 : 0)
      temperature = temperature === undefined ? warm : temperature + (warm - temperature) * Math.min(1, seconds / 20) + (random() - 0.5) * 0.4
      memory = clamp(memory + (random() - 0.5), 20, 80)
      return {
        type: FRAME_TYPES.hardware,
        data: { datetime: at.toISOString(), battery: round(battery, 1), cpu: round(cpu, 1), temperature: round(temperature, 1), memory: round(memory, 1) }
      }
    }
  }
}

export type Simulation = ReturnType<typeof createSimulation>

const ZONES = ['kitchen', 'lobby', 'hall', 'office', 'corridor', 'dock']

/**
 * A robot model's telemetry (docs/protocol.md §14.2), made up but plausible:
 * each number wanders within its declared bounds (0–100 when none are
 * given), integers stay whole, a boolean flips now and then, an enum moves
 * to another of its values now and then, and a free string is a short word
 * cut to the field's max_length. Every frame has every field.
 */
export function createTelemetry (model: Pick<ModelDefinition, 'telemetry'>, random: () => number = Math.random) {
  type Walker = () => unknown
  const walkers: Array<[string, Walker]> = []
  for (const [field, decl] of Object.entries(model.telemetry)) {
    const walker = walkerOf(decl, random)
    if (walker !== undefined) walkers.push([field, walker])
  }
  return {
    /** Whether the model has a field this can send (a type-4 frame needs one). */
    fields: walkers.map(([field]) => field),
    /** The next type-4 frame's data. */
    telemetry (at = new Date()): { type: typeof FRAME_TYPES.telemetry, data: Record<string, unknown> } {
      const data: Record<string, unknown> = { datetime: at.toISOString() }
      for (const [field, next] of walkers) data[field] = next()
      return { type: FRAME_TYPES.telemetry, data }
    }
  }
}

function walkerOf (decl: FieldDeclaration, random: () => number): (() => unknown) | undefined {
  switch (decl.type) {
    case 'boolean': {
      let on = random() < 0.5
      return () => { if (random() < 0.1) on = !on; return on }
    }
    case 'string': {
      if (decl.enum !== undefined && decl.enum.length > 0) {
        const values = decl.enum
        let i = Math.floor(random() * values.length)
        return () => { if (random() < 0.2) i = Math.floor(random() * values.length); return values[i] }
      }
      const max = decl.max_length ?? 256
      let i = Math.floor(random() * ZONES.length)
      return () => { if (random() < 0.1) i = Math.floor(random() * ZONES.length); return (ZONES[i] as string).slice(0, max) }
    }
    default: {
      const min = decl.minimum ?? -Number.MAX_VALUE
      const max = decl.maximum ?? Number.MAX_VALUE
      // 0–100 unless the bounds say otherwise; huge spans are narrowed to 100 from the value nearest 0
      let lo = decl.minimum ?? Math.min(0, (decl.maximum ?? 100) - 100)
      let hi = decl.maximum ?? lo + 100
      if (!Number.isFinite(hi - lo)) { lo = clamp(0, min, max); hi = Math.min(max, lo + 100) }
      const integer = decl.type === 'integer'
      if (integer) { lo = Math.ceil(lo); hi = Math.floor(hi) }
      if (lo > hi) return undefined // no whole number between the bounds
      let v = lo + (hi - lo) * random()
      return () => {
        v = clamp(v + (random() - 0.5) * (hi - lo) * 0.1, lo, hi)
        return integer ? clamp(Math.round(v), lo, hi) : clamp(round(v, 2), lo, hi)
      }
    }
  }
}
