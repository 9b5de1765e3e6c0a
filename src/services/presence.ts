// Which robots are connected right now, and how (CONTRACT §3): the broker
// reports connections; the command endpoint asks before publishing.
export interface PresenceCounts {
  /** open connections of the robot */
  data: number
  /** connections subscribed to its commands topic */
  command: number
}

export interface Presence {
  robot_uuid: string
  online: boolean
  data_connected: boolean
  command_connected: boolean
}

export function createPresenceService () {
  const live = new Map<string, PresenceCounts>()
  return {
    set (robotUuid: string, counts: PresenceCounts): void {
      if (counts.data <= 0 && counts.command <= 0) live.delete(robotUuid)
      else live.set(robotUuid, { ...counts })
    },
    get (robotUuid: string): Presence {
      const counts = live.get(robotUuid)
      const data = (counts?.data ?? 0) > 0
      return { robot_uuid: robotUuid, online: data, data_connected: data, command_connected: (counts?.command ?? 0) > 0 }
    },
    isCommandConnected (robotUuid: string): boolean {
      return (live.get(robotUuid)?.command ?? 0) > 0
    },
    onlineCount (): number {
      return live.size
    }
  }
}

export type PresenceService = ReturnType<typeof createPresenceService>
