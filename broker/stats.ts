// Live statistics (CONTRACT §6): the last known value of each field, published
// on robots/{uuid}/stats after every stored frame and retained, so that a
// dashboard that subscribes later sees the latest values at once.
import { robotTopic } from '../src/contract/topics.js'

const POSITION = { speed: null, position_x: null, position_y: null, angle_theta: null, datetime: null }

export function createStats ({ publish }: { publish: (topic: string, payload: object, opts: { retain: boolean, qos: 0 | 1 }) => void }) {
  const last = new Map<string, Record<string, unknown>>()

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
    /** A frame was stored: merge its fields and publish. */
    frame (uuid: string, data: Record<string, unknown>): void {
      Object.assign(current(uuid), data)
      send(uuid)
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
    }
  }
}

export type Stats = ReturnType<typeof createStats>
