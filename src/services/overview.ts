// The admin dashboard's figures (CONTRACT §8): read from the database, so
// every node of a cluster shows the same numbers.
import { QueryTypes } from 'sequelize'
import type { Database } from '../db/index.js'
import type { CommandService } from './commands.js'

export interface Overview {
  robots: { total: number, online: number, enabled: number }
  users: { total: number, staff: number, active: number }
  framesLastHour: number
  commands: Awaited<ReturnType<CommandService['countByStatus']>>
}

export function createOverviewService ({ db, commands }: { db: Database, commands: CommandService }) {
  const { Robot, User } = db.models
  return {
    async get (now = new Date()): Promise<Overview> {
      const since = new Date(now.getTime() - 3600_000)
      // Frames are indexed by (robot_id, received_at): one range scan per
      // robot, driven from the robots table, instead of a scan of every frame.
      const framesSql = 'SELECT COUNT(*) AS n FROM robots r JOIN frames f ON f.robot_id = r.id AND f.received_at > :since'
      const [robotsTotal, online, enabled, usersTotal, staff, active, frameRows, byStatus] = await Promise.all([
        Robot.count(),
        Robot.count({ where: { dataConnected: true } }),
        Robot.count({ where: { enabled: true } }),
        User.count(),
        User.count({ where: { isStaff: true } }),
        User.count({ where: { isActive: true } }),
        db.sequelize.query<{ n: number | string }>(framesSql, { replacements: { since }, type: QueryTypes.SELECT }),
        commands.countByStatus()
      ])
      return {
        robots: { total: robotsTotal, online, enabled },
        users: { total: usersTotal, staff, active },
        framesLastHour: Number(frameRows[0]?.n ?? 0),
        commands: byStatus
      }
    }
  }
}

export type OverviewService = ReturnType<typeof createOverviewService>
