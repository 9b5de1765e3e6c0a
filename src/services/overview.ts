// The admin dashboard's figures: read from the database, so every node of a
// cluster shows the same numbers. Commands: those open now (the command
// service's background count) and those created in the last 24 hours by
// status, through the index on created_at: never a count of the whole table.
import { QueryTypes } from 'sequelize'
import type { Database } from '../db/index.js'
import { COMMAND_STATUSES, FRAME_TYPES, type CommandStatus } from '../contract/payloads.js'
import { commandsByCreatedAt, type CommandService } from './commands.js'

export interface Overview {
  robots: { total: number, online: number, enabled: number }
  users: { total: number, staff: number, active: number }
  framesLastHour: number
  commands: { open: ReturnType<CommandService['countByStatus']>['open'], lastDay: Record<CommandStatus, number> }
}

const FRAME_TYPE_LIST = Object.values(FRAME_TYPES).join(', ')

export function createOverviewService ({ db, commands }: { db: Database, commands: CommandService }) {
  const { Robot, User } = db.models
  return {
    async get (now = new Date()): Promise<Overview> {
      const since = new Date(now.getTime() - 3600_000)
      // Frames are indexed by (robot_id, received_at): one range scan per
      // robot, driven from the robots table, instead of a scan of every frame.
      // The history index leads with (robot_id, type): one range per robot and
      // type, the robots as the outer loop (CROSS JOIN keeps them so on
      // SQLite, whose planner otherwise scanned the whole index).
      const framesSql = `SELECT COUNT(*) AS n FROM robots r CROSS JOIN frames f WHERE f.robot_id = r.id AND f.type IN (${FRAME_TYPE_LIST}) AND f.received_at > :since`
      const lastDaySql = `SELECT status, COUNT(*) AS n FROM commands ${commandsByCreatedAt(db.dialect)} WHERE created_at > :day GROUP BY status`
      const [robotsTotal, online, enabled, usersTotal, staff, active, frameRows, lastDayRows] = await Promise.all([
        Robot.count(),
        Robot.count({ where: { dataConnected: true } }),
        Robot.count({ where: { enabled: true } }),
        User.count(),
        User.count({ where: { isStaff: true } }),
        User.count({ where: { isActive: true } }),
        db.sequelize.query<{ n: number | string }>(framesSql, { replacements: { since }, type: QueryTypes.SELECT }),
        db.sequelize.query<{ status: CommandStatus, n: number | string }>(lastDaySql, { replacements: { day: new Date(now.getTime() - 86400_000) }, type: QueryTypes.SELECT })
      ])
      const lastDay = Object.fromEntries(COMMAND_STATUSES.map((status) => [status, 0])) as Record<CommandStatus, number>
      for (const r of lastDayRows) if (r.status in lastDay) lastDay[r.status] = Number(r.n)
      return {
        robots: { total: robotsTotal, online, enabled },
        users: { total: usersTotal, staff, active },
        framesLastHour: Number(frameRows[0]?.n ?? 0),
        commands: { open: commands.countByStatus().open, lastDay }
      }
    }
  }
}

export type OverviewService = ReturnType<typeof createOverviewService>
