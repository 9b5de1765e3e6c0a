// Which robots are connected right now, and how (docs/protocol.md §3.3): the broker
// reports this node's connections; the command endpoint asks before
// publishing. In cluster mode a robot may be connected through another node
// (docs/protocol.md §11): `remote` answers for the whole cluster, and while it
// cannot (Redis down), this node answers for what it sees itself.
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

/** The cluster's view: is the robot command-connected through any node? */
export interface RemotePresence { commandConnected: (robotUuid: string) => Promise<boolean> }

export function createPresenceService ({ remote }: { remote?: RemotePresence } = {}) {
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
    async isCommandConnected (robotUuid: string): Promise<boolean> {
      if ((live.get(robotUuid)?.command ?? 0) > 0) return true
      if (remote === undefined) return false
      try {
        return await remote.commandConnected(robotUuid)
      } catch {
        return false
      }
    },
    onlineCount (): number {
      return live.size
    }
  }
}

export type PresenceService = ReturnType<typeof createPresenceService>
