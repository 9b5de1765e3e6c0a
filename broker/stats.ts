// Live statistics (docs/protocol.md §6.2): the last known value of each field, published
// on robots/{uuid}/stats after stored frames and retained, so that a
// dashboard that subscribes later sees the latest values at once. Frames that
// commit together (one batch) are merged into one message per robot.
//
// A robot's model fields (docs/protocol.md §14.2) are top-level keys beside
// the fixed ones. When its model changes, every key that is not a fixed one
// and that the new model does not declare, or whose last value the new
// declaration refuses, is dropped: the statistics always fit the robot's
// current model.
import { STATS_SCHEMA } from '../src/contract/messages.js'
import type { CompiledModel } from '../src/contract/models.js'
import { robotTopic } from '../src/contract/topics.js'

const POSITION = { speed: null, position_x: null, position_y: null, angle_theta: null, datetime: null }
/** The keys of §6.2 (position, geo, hardware and the robot's own): never a model's to drop. */
const FIXED = new Set(Object.keys((STATS_SCHEMA as unknown as { properties: Record<string, unknown> }).properties))
// Any valid date-time: a value is checked by the model's own validator, alone in a frame's data.
const SOME_DATETIME = '2000-01-01 00:00:00'

/** True when `model` would accept `value` as its field `key`. */
function fits (model: CompiledModel | null, key: string, value: unknown): boolean {
  return model !== null && model.checkData({ datetime: SOME_DATETIME, [key]: value }) === null
}

/** Drops the model keys that do not fit `model`; true when any was dropped. */
function prune (stats: Record<string, unknown>, model: CompiledModel | null): boolean {
  let dropped = false
  for (const [key, value] of Object.entries(stats)) {
    if (FIXED.has(key) || fits(model, key, value)) continue
    delete stats[key]
    dropped = true
  }
  return dropped
}

export function createStats ({ publish }: { publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void }) {
  const last = new Map<string, Record<string, unknown>>()
  const dirty = new Set<string>()

  function current (uuid: string): Record<string, unknown> {
    let stats = last.get(uuid)
    if (stats === undefined) {
      last.set(uuid, stats = { robot_uuid: uuid, state: null, ...POSITION, data_connected: false, command_connected: false })
    }
    return stats
  }

  function send (uuid: string): void {
    publish(robotTopic(uuid, 'stats'), current(uuid), { retain: true, qos: 0 })
  }

  return {
    /**
     * Seeds the state of a robot that connects (from its row), and fits its
     * statistics to its model as just loaded (a change this node missed while
     * Redis was away is caught up here).
     */
    seed (uuid: string, state: string, model: CompiledModel | null = null): void {
      const stats = current(uuid)
      stats.state = state
      prune(stats, model)
    },
    /**
     * A frame was stored: merge its fields; publish once the batch's frames
     * are all merged. `model`, for a type-4 frame checked under a model the
     * robot no longer has (it changed while the frame was being stored):
     * only the fields that fit the new one are merged.
     */
    frame (uuid: string, data: Record<string, unknown>, model?: CompiledModel | null): void {
      const stats = current(uuid)
      if (model === undefined) Object.assign(stats, data)
      else for (const [key, value] of Object.entries(data)) if (FIXED.has(key) || fits(model, key, value)) stats[key] = value
      if (dirty.size === 0) {
        setImmediate(() => {
          for (const robot of dirty) send(robot)
          dirty.clear()
        })
      }
      dirty.add(uuid)
    },
    state (uuid: string, state: string): void {
      current(uuid).state = state
      send(uuid)
    },
    /**
     * The robot's model changed: the keys the new model does not take are
     * dropped, and the statistics published again when `publish` (this node
     * holds the robot's connection, or is the only node: another node's
     * copy would overwrite newer statistics with older ones).
     */
    model (uuid: string, model: CompiledModel | null, publish: boolean): void {
      const stats = last.get(uuid)
      if (stats === undefined || !prune(stats, model) || !publish) return
      send(uuid)
    },
    connection (uuid: string, flags: { data_connected: boolean, command_connected: boolean }): void {
      Object.assign(current(uuid), flags)
    },
    forget (uuid: string): void {
      last.delete(uuid)
      dirty.delete(uuid)
    }
  }
}

export type Stats = ReturnType<typeof createStats>
