// Who may see and command which robot (docs/protocol.md §3, §6): the many-to-many
// grants, plus "staff see every robot". A robot a user cannot access and a
// robot that does not exist get the same 404.
import type { Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { AuditContext, AuditService } from './audit.js'

/** An authenticated user, as every service sees them. */
export interface UserPrincipal { id: number, username: string, isStaff: boolean }

/** What other services need of a robot they were allowed to touch. */
export interface RobotRef { id: number, uuid: string, enabled: boolean, state: string }

export function createAccessService ({ db, events, audit }: { db: Database, events: EventBus, audit: AuditService }) {
  const { Robot, RobotAccess, User } = db.models

  async function both (userId: number, robotUuid: string) {
    const [user, robot] = await Promise.all([User.findByPk(userId), Robot.findOne({ where: { uuid: robotUuid } })])
    if (user === null) throw new Errors.USER_NOT_FOUND()
    if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
    return { user, robot }
  }

  return {
    /**
     * The robot if `principal` may access it; 404 otherwise (no existence leak).
     * The command path applies the same rule in SQL (commands.ts, PG_ISSUE and
     * SQLITE_ISSUE): a change to it goes there too.
     */
    async robotFor (principal: UserPrincipal, robotUuid: string): Promise<RobotRef> {
      // One query: a user's grant is an inner join (no row = no robot or no grant).
      const robot = await Robot.findOne({
        where: { uuid: robotUuid },
        attributes: ['id', 'uuid', 'enabled', 'state'],
        include: principal.isStaff ? [] : [{ model: User, as: 'users', where: { id: principal.id }, attributes: [], through: { attributes: [] }, required: true }],
        subQuery: false
      })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      return { id: robot.id, uuid: robot.uuid, enabled: robot.enabled, state: robot.state }
    },

    /** Idempotent: granting twice is not an error and audits once. */
    async grant (userId: number, robotUuid: string, ctx: AuditContext): Promise<void> {
      const { user, robot } = await both(userId, robotUuid)
      const changed = await db.transaction(async (transaction) => {
        const [, created] = await RobotAccess.findOrCreate({ where: { userId: user.id, robotId: robot.id }, transaction })
        if (created) await audit.record(ctx, { action: 'access.granted', robotUuid, targetUserId: userId, details: { username: user.username, serial: robot.serial } }, transaction)
        return created
      })
      if (changed) events.emit('accessChanged', { userId, robotUuid, granted: true })
    },

    /** Idempotent: revoking a grant that does not exist is not an error. */
    async revoke (userId: number, robotUuid: string, ctx: AuditContext): Promise<void> {
      const { user, robot } = await both(userId, robotUuid)
      const changed = await db.transaction(async (transaction) => {
        const removed = await RobotAccess.destroy({ where: { userId: user.id, robotId: robot.id }, transaction })
        if (removed > 0) await audit.record(ctx, { action: 'access.revoked', robotUuid, targetUserId: userId, details: { username: user.username, serial: robot.serial } }, transaction)
        return removed > 0
      })
      if (changed) events.emit('accessChanged', { userId, robotUuid, granted: false })
    },

    /** The ids of the users granted a robot. */
    async usersOf (robotUuid: string): Promise<number[]> {
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id'] })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      const rows = await RobotAccess.findAll({ where: { robotId: robot.id }, attributes: ['userId'], order: [['userId', 'ASC']] })
      return rows.map((r) => r.userId)
    }
  }
}

export type AccessService = ReturnType<typeof createAccessService>
