// Live statistics (docs/protocol.md §6.2): the last known value of each field, published
// on robots/{uuid}/stats after stored frames and retained, so that a
// dashboard that subscribes later sees the latest values at once. Frames that
// commit together (one batch) are merged into one message per robot.
import { robotTopic } from '../src/contract/topics.js'

const POSITION = { speed: null, position_x: null, position_y: null, angle_theta: null, datetime: null }

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
    /** Seeds the state of a robot that connects (from its row). */
    seed (uuid: string, state: string): void {
      current(uuid).state = state
    },
    /** A frame was stored: merge its fields; publish once the batch's frames are all merged. */
    frame (uuid: string, data: Record<string, unknown>): void {
      Object.assign(current(uuid), data)
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
