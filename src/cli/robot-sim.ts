// What the example robot reports, made up but plausible: a position that
// wanders while the robot moves, and hardware readings that go with it. The
// battery drains (faster while moving) and, at 20 %, the robot stops to
// charge back to full; CPU load follows the work; temperature follows the
// CPU and charging, slowly. Fields as the position and hardware frame types
// define them.
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
